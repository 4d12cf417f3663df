"""The png frame codec, the original imagingDB's: 2D numpy frames <-> standard lossless PNG bytes.

Pure functions, bytes in and bytes out. Every PNG written here is a plain
PNG (tests read it back with pypng and libpng). zlib, hashlib and the numpy
ufuncs used here release the GIL, so callers encode and decode in threads.

Encoding filters the scanlines with numpy over the whole frame (PNG filter
"up" or "sub"; "none" is there for comparison) and deflates them in pieces,
with Intel ISA-L (the isal package) or zlib. Decoding parses the chunks,
inflates and undoes the filters with numpy: a blocked running sum when
every row is "up" (what imagingdb writes, see :func:`_unfilter_all_up`),
else row by row (see :func:`_unfilter_rows`); rows filtered with PNG
"average" or "paeth" need a per-byte Python loop, which is slow and holds
the GIL. Each thread reuses its buffers (see :func:`encode_png_reusing`).

The default, ``level=3, strategy="auto", png_filter="up"``, deflates
16-bit camera frames with ISA-L and 8-bit or mostly-zero frames with zlib's
RLE (see :func:`_choose`). Why these choices, and the figures of every
setting measured, are in docs/performance.md ("The PNG codec").
"""

from __future__ import annotations

import math
import struct
import sys
import threading
import zlib
from typing import NamedTuple, Optional

import numpy as np

try:
    # zlib-ng writes and reads the same deflate streams as zlib, faster: on
    # 1024x1024 uint16 frames, RLE/Huffman-only deflate 17 ms instead of 33 ms,
    # inflate 6.8 ms instead of 9.0 ms (one core; docs/performance.md). Both
    # release the GIL. Plain zlib is the fallback where no wheel exists.
    from zlib_ng import zlib_ng as _zlib
except ImportError:  # pragma: no cover - zlib-ng is a dependency
    _zlib = zlib
try:
    # Intel's ISA-L deflates camera frames faster still (levels 0-3; at 3 as
    # small as zlib-ng's RLE: 0.958 of zlib -1 on the bench frames, ~11 ms a
    # frame instead of ~17) and inflates ~10% faster. It releases the GIL.
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - isal is a dependency
    _isal = None

from . import FrameCodec, pixel_sha256

__all__ = ["PngCodec", "encode_png", "encode_png_reusing", "decode_png", "decode_png_into",
           "pixel_sha256", "frame_dtype_check", "refusal"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_STRATEGIES = {
    "auto": None,  # "isal" for 16-bit frames, "rle" for 8-bit and mostly-zero ones (see _choose)
    "isal": None,  # ISA-L's deflate, its level 0-3 (zlib-ng's RLE where isal is missing)
    "default": zlib.Z_DEFAULT_STRATEGY,
    "filtered": zlib.Z_FILTERED,
    "huffman": zlib.Z_HUFFMAN_ONLY,
    "rle": zlib.Z_RLE,
}
_WRITE_FILTERS = {"none": 0, "sub": 1, "up": 2}
# memLevel 9 (zlib's maximum) gives larger deflate blocks: ~0.3% smaller, same speed.
_MEM_LEVEL = 9
# PNG colour type -> samples per pixel, for the types decoded here with numpy
# (palette images, type 3, go through pypng).
_SAMPLES_PER_PIXEL = {0: 1, 2: 3, 4: 2, 6: 4}
_VALID_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_UPLOAD_WHOLE = "or upload the file whole with upload_type: file"


# --------------------------------------------------------------- validation


def refusal(dtype: str, shape: tuple[int, ...]) -> Optional[str]:
    """Why PNG frames cannot hold ``dtype`` pixels of ``shape``, and how to convert; None if they can.

    PNG frames hold uint8 or uint16 samples (either byte order), grayscale
    (H, W) or RGB (H, W, 3), H and W >= 1. imagingdb never rounds or clips
    silently: the message says how to convert, or to keep the file whole.
    """
    kind = np.dtype(dtype)
    if not (kind.kind == "u" and kind.itemsize in (1, 2)):
        return f"{kind} pixels cannot be stored as PNG frames: {_conversion_advice(kind)}"
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] == 3)) or 0 in shape[:2]:
        return (f"frames must be 2D (height, width) grayscale or (height, width, 3) RGB with "
                f"height and width >= 1, got shape {tuple(shape)}: split stacks into 2D frames "
                f"first, {_UPLOAD_WHOLE}")
    return None


def _conversion_advice(dtype: np.dtype) -> str:
    if dtype.kind == "f":
        return ("PNG frames hold integers only and imagingdb never rounds silently: convert the "
                "images to 16-bit first (Fiji: Image > Type > 16-bit; numpy: "
                "np.round(image).astype('uint16') after checking the values fit 0-65535), "
                f"{_UPLOAD_WHOLE}")
    if dtype.kind == "b":
        return f"convert to uint8 (e.g. mask.astype(numpy.uint8) * 255), {_UPLOAD_WHOLE}"
    if dtype.kind in "iu":
        return ("convert to uint16 if every value is within 0..65535 (check min/max, then "
                f"frame.astype(numpy.uint16)), {_UPLOAD_WHOLE}")
    return f"convert the images to uint8 or uint16 (Fiji: Image > Type > 16-bit), {_UPLOAD_WHOLE}"


def frame_dtype_check(pixels) -> None:
    """Raise ValueError unless ``pixels`` is a frame :func:`encode_png` can store (see :func:`refusal`)."""
    if not isinstance(pixels, np.ndarray):
        raise ValueError(f"a frame must be a numpy array, got {type(pixels).__name__}")
    reason = refusal(pixels.dtype.name, pixels.shape)
    if reason is not None:
        raise ValueError(reason)


class PngCodec(FrameCodec):
    """Frames as standard PNG files (``im_c000_z000_t000_p000.png``), the original's layout."""

    name = "png"
    suffix = ".png"

    def __init__(self, *, png_filter: str = "up", strategy: str = "auto", level: int = 3):
        self.settings = {"png_filter": png_filter, "strategy": strategy, "level": level}

    def refusal(self, dtype: str, shape: tuple[int, ...]) -> Optional[str]:
        return refusal(dtype, shape)

    def encode(self, pixels: np.ndarray) -> memoryview:
        return encode_png_reusing(pixels, **self.settings)

    def decode_into(self, data, out: np.ndarray, *, check: bool = False) -> None:
        decode_png_into(data, out, check_crc=check)


# ----------------------------------------------------------------- encoding


def encode_png(pixels, *, level: int = 3, strategy: str = "auto", png_filter: str = "up") -> bytes:
    """Encode a uint8/uint16 grayscale (H, W) or RGB (H, W, 3) frame as PNG bytes.

    ``strategy`` is "isal" (Intel ISA-L's deflate, the fastest; ``level``
    is then ISA-L's, 0-3, higher values meaning 3; zlib's "rle" where the
    isal package is missing), a zlib strategy: "default", "filtered",
    "huffman" or "rle", with ``level`` (0-9) the zlib level, which "huffman"
    and "rle" ignore except 0 (stored), or "auto": "isal" where it is as
    small as "rle", "rle" where it is smaller (see :func:`_choose`).
    ``png_filter`` is the PNG filter applied to every row: "none", "sub" or
    "up". Output is lossless; 16-bit samples are written big-endian as PNG
    requires. Raises ValueError for anything else (see
    :func:`frame_dtype_check`).
    """
    return bytes(encode_png_reusing(pixels, level=level, strategy=strategy, png_filter=png_filter))


def encode_png_reusing(pixels, *, level: int = 3, strategy: str = "auto",
                       png_filter: str = "up") -> memoryview:
    """:func:`encode_png` into a buffer this thread reuses: valid until it encodes again.

    For a thread that stores each frame before encoding the next (upload):
    every step writes into memory the thread already has, so no frame makes
    the kernel map fresh memory (~1,800 page faults a 1024x1024 uint16
    frame otherwise, a tenth of its encoding time on the bench's VM).
    """
    frame_dtype_check(pixels)
    if strategy not in _STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(_STRATEGIES)}, got {strategy!r}")
    if png_filter not in _WRITE_FILTERS:
        raise ValueError(f"png_filter must be one of {sorted(_WRITE_FILTERS)}, got {png_filter!r}")
    if not 0 <= level <= 9:
        raise ValueError(f"level must be 0..9, got {level!r}")
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else 3
    row_bytes = width * channels * pixels.itemsize
    big_endian = pixels.dtype.newbyteorder(">")
    if pixels.dtype == big_endian and pixels.flags.c_contiguous:  # uint8, or already PNG's order
        samples = pixels
    else:  # PNG stores 16-bit samples big-endian; the copy also makes the rows contiguous
        samples = _thread_buffer("samples", height * row_bytes).view(big_endian).reshape(pixels.shape)
        samples[...] = pixels
    rows = samples.view(np.uint8).reshape(height, row_bytes)
    filtered = _thread_buffer("filtered", height * (row_bytes + 1)).reshape(height, row_bytes + 1)
    _filter_rows(rows, channels * pixels.itemsize, png_filter, filtered)
    if strategy == "auto":
        strategy, level = _choose(pixels.itemsize, filtered, level)
    color_type = 0 if channels == 1 else 2
    ihdr = struct.pack(">IIBBBBB", width, height, 8 * pixels.itemsize, color_type, 0, 0, 0)
    return _assemble_png(ihdr, _deflate_pieces(filtered.reshape(-1), level, strategy),
                         most=_deflate_bound(filtered.size))


def _choose(itemsize: int, filtered: np.ndarray, level: int) -> tuple[str, int]:
    """The strategy and level "auto" means for this frame.

    ISA-L's deflate looks for repeats (LZ77) and so cannot code
    low-entropy bytes as tightly as zlib's run-length mode. Measured against
    ``zlib -1`` on the camera model of docs/performance.md: 16-bit frames
    0.935-0.982 with ISA-L level 3, 0.935-0.971 with RLE, at ~1.5x the speed;
    the same frames in 8 bits 0.89-0.97 against 0.76-0.82; background-
    subtracted 16-bit frames (97% zeros) 0.95 against 0.81. So ISA-L for
    16-bit frames, RLE for 8-bit ones and where most filtered bytes are 0
    (a camera frame's are ~50%: the high bytes).
    """
    if itemsize == 2 and np.count_nonzero(filtered) > filtered.size // 4:
        return "isal", level
    return "rle", max(level, 1)


def _deflate_pieces(data: np.ndarray, level: int, strategy: str) -> list:
    """zlib stream of ``data`` in pieces: small outputs, which malloc recycles."""
    if strategy == "isal" and _isal is not None:
        compressor = _isal.compressobj(min(level, 3), zlib.DEFLATED, 15, _MEM_LEVEL)
    else:
        if strategy == "isal":  # without the isal package: its nearest zlib setting
            strategy, level = "rle", max(level, 1)
        compressor = _zlib.compressobj(level, zlib.DEFLATED, 15, _MEM_LEVEL, _STRATEGIES[strategy])
    pieces = [compressor.compress(data[start:start + _DEFLATE_PIECE])
              for start in range(0, len(data), _DEFLATE_PIECE)]
    pieces.append(compressor.flush())
    return pieces


def _deflate_bound(size: int) -> int:
    """The most bytes deflating ``size`` bytes can give (zlib's compressBound)."""
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13


def _assemble_png(ihdr: bytes, idat_pieces: list, most: int) -> memoryview:
    """Signature, IHDR, one IDAT of the pieces and IEND, in this thread's output buffer.

    ``most`` bounds the IDAT's size: the buffer is made that big at once, so
    frames of one acquisition, which compress to different sizes, share it.
    """
    idat_size = sum(len(piece) for piece in idat_pieces)
    head = b"".join([_SIGNATURE, *_chunk(b"IHDR", ihdr), struct.pack(">I", idat_size), b"IDAT"])
    tail_start = len(head) + idat_size
    size = tail_start + 4 + 12
    out = memoryview(_thread_buffer("png", size, len(head) + max(most, idat_size) + 16))
    out[:len(head)] = head
    position, crc = len(head), _zlib.crc32(b"IDAT")
    for piece in idat_pieces:
        out[position:position + len(piece)] = piece
        position += len(piece)
        crc = _zlib.crc32(piece, crc)
    out[tail_start:size] = b"".join([struct.pack(">I", crc), *_chunk(b"IEND", b"")])
    return out[:size]


# Deflate's input goes in pieces this size, so each output piece stays small
# (ISA-L makes a deflate block of each: smaller pieces cost it speed).
_DEFLATE_PIECE = 512 << 10
# Buffers kept per thread up to this size; bigger frames get fresh memory each time.
_REUSE_LIMIT = 64 << 20
_buffers = threading.local()


def _thread_buffer(name: str, size: int, capacity: int = 0) -> np.ndarray:
    """``size`` bytes (uint8) of a buffer this thread keeps under ``name``: reused, not zeroed.

    A new buffer, when one is needed, gets ``capacity`` bytes if that is more.
    """
    if size > _REUSE_LIMIT:
        return np.empty(size, np.uint8)
    buffer = getattr(_buffers, name, None)
    if buffer is None or len(buffer) < size:
        buffer = np.empty(max(size, min(capacity, _REUSE_LIMIT)), np.uint8)
        setattr(_buffers, name, buffer)
    return buffer[:size]


def _filter_rows(rows: np.ndarray, bpp: int, png_filter: str, filtered: np.ndarray) -> None:
    """Write PNG scanlines into ``filtered``: each row prefixed by its filter type byte, filtered.

    Filters work on bytes modulo 256 (uint8 arithmetic wraps); ``bpp`` is
    bytes per pixel, the distance to the "left" byte of the Sub filter.
    """
    filtered[:, 0] = _WRITE_FILTERS[png_filter]
    body = filtered[:, 1:]
    if png_filter == "none":
        body[...] = rows
    elif png_filter == "sub":
        body[:, :bpp] = rows[:, :bpp]
        np.subtract(rows[:, bpp:], rows[:, :-bpp], out=body[:, bpp:])
    else:  # "up": the row above the first row counts as zeros
        body[0] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=body[1:])


def _chunk(tag: bytes, body) -> tuple:
    """The parts of one PNG chunk: length, tag, body, CRC of tag + body."""
    crc = _zlib.crc32(body, _zlib.crc32(tag))
    return struct.pack(">I", len(body)), tag, body, struct.pack(">I", crc)


# ----------------------------------------------------------------- decoding


class _Header(NamedTuple):
    width: int
    height: int
    bit_depth: int
    color_type: int
    interlace: int

    @property
    def needs_pypng(self) -> bool:
        """Palette, sub-byte samples and interlacing are rare: leave them to pypng."""
        return self.color_type == 3 or self.bit_depth < 8 or self.interlace != 0

    @property
    def shape(self) -> tuple:
        channels = _SAMPLES_PER_PIXEL[self.color_type]
        return (self.height, self.width) if channels == 1 else (self.height, self.width, channels)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16 if self.bit_depth == 16 else np.uint8)

    @property
    def bytes_per_pixel(self) -> int:
        return _SAMPLES_PER_PIXEL[self.color_type] * self.bit_depth // 8


def decode_png(data: bytes, *, check_crc: bool = False) -> np.ndarray:
    """Decode PNG bytes into a uint8 or uint16 array (native byte order).

    Shape is (H, W) for grayscale, (H, W, C) otherwise (C = 2 gray+alpha,
    3 RGB, 4 RGBA; palette images come back as RGB or RGBA). Sample values
    are returned as stored: ancillary chunks (tRNS, sBIT, gAMA...) are
    ignored, sub-byte samples are not rescaled. Raises ValueError for data
    that is not a valid PNG. ``check_crc`` also checks the image data's
    CRCs (what `imagingdb verify` wants: any changed byte is an error).
    """
    header, idat = _read_chunks(data, check_idat_crc=check_crc)
    if header.needs_pypng:
        return _decode_with_pypng(data)
    out = np.empty(header.shape, header.dtype)
    _inflate_into(data, header, idat, out)
    return out


def decode_png_into(data: bytes, out: np.ndarray, *, check_crc: bool = False) -> None:
    """Decode PNG bytes into ``out``, e.g. a view of a bigger array.

    ``out`` must have exactly the shape and dtype :func:`decode_png` would
    return; otherwise ValueError names both. A C-contiguous ``out`` (such as
    ``big[p, t, c, z]`` of a (P, T, C, Z, Y, X) array) is filled without an
    intermediate copy. ``check_crc`` as for :func:`decode_png`.
    """
    header, idat = _read_chunks(data, check_idat_crc=check_crc)
    pixels = _decode_with_pypng(data) if header.needs_pypng else None
    shape, dtype = (pixels.shape, pixels.dtype) if pixels is not None else (header.shape, header.dtype)
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(
            f"PNG holds {dtype} pixels of shape {shape}, but the output array is "
            f"{out.dtype} of shape {out.shape}"
        )
    if pixels is not None:
        out[...] = pixels
    else:
        _inflate_into(data, header, idat, out)


def _read_chunks(data: bytes, check_idat_crc: bool = False) -> tuple[_Header, list]:
    """Check signature and CRCs; return the header and the IDAT chunk bodies.

    The CRCs of IDAT chunks (the image data, nearly all the bytes) are only
    checked when ``check_idat_crc``: zlib verifies its own Adler-32 of the
    inflated data, so a damaged IDAT fails to inflate anyway, and only then
    does :func:`_inflate_into` look for the CRC that explains it. That saves
    ~0.5 ms of a ~12 ms decode of a 1024x1024 uint16 frame.
    """
    if bytes(data[:8]) != _SIGNATURE:
        raise ValueError("not a PNG: the data does not start with the PNG signature")
    view = memoryview(data)
    position, header, idat = 8, None, []
    while True:
        if position + 12 > len(view):
            raise ValueError("truncated PNG: it ends before the IEND chunk")
        length, tag = struct.unpack_from(">I4s", view, position)
        end = position + 8 + length
        if end + 4 > len(view):
            raise ValueError(f"truncated PNG: its {tag!r} chunk is cut short")
        body = view[position + 8:end]
        (crc,) = struct.unpack_from(">I", view, end)
        if (tag != b"IDAT" or check_idat_crc) and _zlib.crc32(body, _zlib.crc32(tag)) != crc:
            raise ValueError(f"corrupt PNG: CRC mismatch in its {tag!r} chunk")
        if tag == b"IHDR":
            header = _parse_ihdr(body)
        elif tag == b"IDAT":
            idat.append(body)
        elif tag == b"IEND":
            break
        position = end + 4
    if header is None or not idat:
        raise ValueError("invalid PNG: no IHDR or no IDAT chunk")
    return header, idat


def _parse_ihdr(body) -> _Header:
    """Unpack and sanity-check the IHDR chunk."""
    if len(body) != 13:
        raise ValueError(f"invalid PNG: IHDR has {len(body)} bytes, not 13")
    width, height, depth, color, compression, filter_method, interlace = struct.unpack(">IIBBBBB", body)
    if (width == 0 or height == 0 or depth not in _VALID_BIT_DEPTHS.get(color, ())
            or compression != 0 or filter_method != 0 or interlace not in (0, 1)):
        raise ValueError(
            f"invalid PNG header: {width}x{height}, bit depth {depth}, colour type {color}, "
            f"compression {compression}, filter method {filter_method}, interlace {interlace}"
        )
    return _Header(width, height, depth, color, interlace)


def _inflate_into(data: bytes, header: _Header, idat: list, out: np.ndarray) -> None:
    """Inflate and unfilter the image data into ``out`` (shape/dtype already checked)."""
    row_bytes = header.width * header.bytes_per_pixel
    expected = header.height * (row_bytes + 1)
    try:
        scanlines, size = _inflate(idat[0] if len(idat) == 1 else b"".join(idat), expected)
        problem = None if size == expected else f"{size} bytes of image data, expected {expected}"
    except _INFLATE_ERRORS as error:
        problem = f"image data does not inflate ({error})"
    if problem is not None:
        _read_chunks(data, check_idat_crc=True)  # a CRC mismatch says more, if there is one
        raise ValueError(f"corrupt PNG: {problem}")
    filtered = scanlines.reshape(header.height, row_bytes + 1)
    target = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
    rows = target.view(np.uint8).reshape(header.height, row_bytes)
    if (filtered[:, 0] == 2).all():
        _unfilter_all_up(scanlines, target, rows)
    else:
        # Unfilter straight into out's memory; PNG bytes are big-endian, so
        # 16-bit samples are swapped in place afterwards.
        _unfilter_rows(filtered, header.bytes_per_pixel, rows)
        if target.itemsize == 2 and sys.byteorder == "little":
            target.byteswap(inplace=True)
    if target is not out:
        out[...] = target


# Inflated data comes out in pieces of about this size, copied into a buffer
# each thread keeps: inflating a frame into a new 2 MB bytes object made the
# kernel map fresh memory for every frame (512 page faults, ~2.5 ms of a
# ~10 ms decode on the bench's VM); pieces this small are recycled by malloc.
_INFLATE_PIECE = 64 << 10
_INFLATE_INPUT_PIECE = 32 << 10  # ~60 KB out for camera frames
_INFLATE_ERRORS = (zlib.error, _zlib.error) + ((_isal.error,) if _isal is not None else ())


def _inflate(stream: bytes, expected: int) -> tuple[np.ndarray, int]:
    """The inflated zlib ``stream`` (uint8, in this thread's reused buffer) and its size.

    The array is valid until this thread inflates again and holds at most
    ``expected`` bytes; a longer stream is only counted. Raises one of
    :data:`_INFLATE_ERRORS` for a damaged or truncated stream.
    """
    pieces = _inflated_pieces(stream, expected)
    if pieces is None:  # plain zlib before Python 3.12: one piece
        data = _zlib.decompress(stream, bufsize=expected)
        return np.frombuffer(data, np.uint8), len(data)
    buffer = _thread_buffer("inflate", expected)
    view = memoryview(buffer)
    size = 0
    for piece in pieces:
        end = size + len(piece)
        if end <= expected:
            view[size:end] = piece
        size = end
    return buffer[:min(size, expected)], size


def _inflated_pieces(stream: bytes, expected: int):
    """The inflated ``stream`` as an iterator of pieces, None if only whole is possible."""
    if _isal is not None:
        return _isal_pieces(stream)
    decompressor_class = getattr(_zlib, "_ZlibDecompressor", None)
    return None if decompressor_class is None else _zlib_pieces(decompressor_class(), stream)


def _isal_pieces(stream: bytes):
    # Input in pieces, so each output piece stays small (ISA-L's decompressor
    # has no output limit that does not copy the remaining input each time).
    decompressor = _isal.decompressobj()
    view = memoryview(stream)
    for start in range(0, len(view), _INFLATE_INPUT_PIECE):
        yield decompressor.decompress(view[start:start + _INFLATE_INPUT_PIECE])
    yield decompressor.flush()
    if not decompressor.eof:
        raise _isal.error("incomplete or truncated stream")


def _zlib_pieces(decompressor, stream: bytes):
    piece = decompressor.decompress(stream, _INFLATE_PIECE)
    while True:
        yield piece
        if decompressor.eof:
            return
        if not piece and decompressor.needs_input:
            raise _zlib.error("incomplete or truncated stream")
        piece = decompressor.decompress(b"", _INFLATE_PIECE)


def _unfilter_all_up(scanlines: np.ndarray, target: np.ndarray, rows: np.ndarray) -> None:
    """Undo "up" on every row (what :func:`encode_png` writes by default), fast.

    "Up" adds each byte to the one above it, so unfiltering is a running sum
    down every byte column. Columns are independent, so the samples are first
    copied to ``target`` already in native byte order (one pass, the byteswap
    for free), then summed there in blocks of rows: first down every block
    at once (row 1 of every block += row 0, row 2 += row 1...), then each
    block adds the last row of the block above. For 1024 rows that is 62
    numpy calls, each over many rows, touching the image ~3 times: measured
    ~0.4 ms on 1024x1024 uint16 where a pass per row (1024 calls, GIL taken
    for each) or log2(height) whole-image passes (10x the memory traffic)
    took 1.5-3 ms.
    """
    height, row_bytes = rows.shape
    samples = np.ndarray(target.shape, dtype=target.dtype.newbyteorder(">"), buffer=scanlines,
                         offset=1, strides=(row_bytes + 1, *target.strides[1:]))
    target[...] = samples
    block = max(1, math.isqrt(height))
    count = height // block
    blocks = rows[:count * block].reshape(count, block, row_bytes)
    for r in range(1, block):
        np.add(blocks[:, r], blocks[:, r - 1], out=blocks[:, r])
    for b in range(1, count):
        np.add(blocks[b], blocks[b - 1, block - 1], out=blocks[b])
    for y in range(count * block, height):
        np.add(rows[y], rows[y - 1], out=rows[y])


def _unfilter_rows(filtered: np.ndarray, bpp: int, rows: np.ndarray) -> None:
    """Undo the PNG filter of each scanline in ``filtered``, writing ``rows``.

    Row by row, on purpose: each row may use its own filter, and measured on
    1024x2048-byte images a loop of one numpy add per row (2 ms) undoes "up"
    nine times faster than np.cumsum over axis 0 (20 ms).
    """
    filter_types = filtered[:, 0]
    if filter_types.max(initial=0) > 4:
        raise ValueError(f"corrupt PNG: unknown filter type {int(filter_types.max())}")
    if (filter_types == 1).all():  # all Sub, as OpenCV writes: one call for the image
        _unfilter_sub(filtered[:, 1:], None, rows, bpp)
        return
    prior = np.zeros(rows.shape[1], np.uint8)  # the row above the first row is zeros
    for y, filter_type in enumerate(filter_types.tolist()):
        _UNFILTERS[filter_type](filtered[y, 1:], prior, rows[y], bpp)
        prior = rows[y]


def _unfilter_none(line, prior, row, bpp):
    row[...] = line


def _unfilter_sub(line, prior, row, bpp):
    # Each byte adds the reconstructed byte bpp to its left: a running sum
    # (mod 256, uint8 wraps) over the pixels of the row. Works on one row or
    # on a block of rows.
    pixels = line.shape[:-1] + (-1, bpp)
    np.cumsum(line.reshape(pixels), axis=-2, dtype=np.uint8, out=row.reshape(pixels))


def _unfilter_up(line, prior, row, bpp):
    np.add(line, prior, out=row)


def _unfilter_average(line, prior, row, bpp):
    # Sequential: each byte needs the reconstructed byte bpp to its left.
    current, above = line.tolist(), prior.tolist()
    for i in range(bpp):
        current[i] = (current[i] + (above[i] >> 1)) & 0xFF
    for i in range(bpp, len(current)):
        current[i] = (current[i] + ((current[i - bpp] + above[i]) >> 1)) & 0xFF
    row[...] = current


def _unfilter_paeth(line, prior, row, bpp):
    # Sequential like average. Predictor per the PNG spec with p = a + b - c:
    # pa = |p - a| = |b - c|, pb = |p - b| = |a - c|, pc = |p - c| = |a + b - 2c|.
    current, above = line.tolist(), prior.tolist()
    for i in range(bpp):  # no left pixel: a = c = 0, so the predictor is b
        current[i] = (current[i] + above[i]) & 0xFF
    for i in range(bpp, len(current)):
        a, b, c = current[i - bpp], above[i], above[i - bpp]
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        current[i] = (current[i] + predictor) & 0xFF
    row[...] = current


_UNFILTERS = (_unfilter_none, _unfilter_sub, _unfilter_up, _unfilter_average, _unfilter_paeth)


def _decode_with_pypng(data: bytes) -> np.ndarray:
    """Decode palette, sub-byte or interlaced PNGs with pypng (pure Python, slow)."""
    import png  # only needed for these rare files

    try:
        width, height, rows, info = png.Reader(bytes=bytes(data)).read()
        samples = np.array([np.asarray(row) for row in rows])
    except (png.Error, zlib.error) as error:
        raise ValueError(f"invalid PNG: {error}") from None
    # A palette image is the one colour (not greyscale) type with one plane;
    # info["palette"] alone is no sign, RGB files may carry a suggested one.
    if info["planes"] == 1 and not info["greyscale"]:
        palette = np.asarray(info["palette"], np.uint8)  # RGB, or RGBA if the file has tRNS
        if samples.max() >= len(palette):
            raise ValueError("corrupt PNG: a pixel indexes past the end of the palette")
        return palette[samples]
    dtype = np.uint16 if info["bitdepth"] > 8 else np.uint8
    planes = info["planes"]
    shape = (height, width) if planes == 1 else (height, width, planes)
    return samples.astype(dtype).reshape(shape)
