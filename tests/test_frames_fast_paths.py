"""The decoder's fast path for frames whose every row uses PNG "up" (what imagingdb writes)."""

import concurrent.futures as cf
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from imagingdb.codecs.png import _unfilter_rows, decode_png, decode_png_into, encode_png


def frames_to_encode():
    shapes = st.tuples(st.integers(1, 70), st.integers(1, 40)) | st.tuples(
        st.integers(1, 40), st.integers(1, 20), st.just(3))
    return st.one_of(arrays(np.uint8, shapes), arrays(np.uint16, shapes),
                     arrays(np.dtype(">u2"), shapes))


def row_by_row(png_bytes: bytes, like: np.ndarray) -> np.ndarray:
    """The generic path: undo each row's filter one row at a time, then fix the byte order."""
    start = png_bytes.index(b"IDAT") + 4
    length = int.from_bytes(png_bytes[start - 8:start - 4], "big")
    height = like.shape[0]
    scanlines = np.frombuffer(zlib.decompress(png_bytes[start:start + length]), np.uint8)
    filtered = scanlines.reshape(height, -1)
    out = np.empty(like.shape, like.dtype.newbyteorder(">"))
    channels = 1 if like.ndim == 2 else like.shape[2]
    _unfilter_rows(filtered, channels * like.itemsize, out.view(np.uint8).reshape(height, -1))
    return out


@settings(max_examples=150, deadline=None)
@given(frames_to_encode())
def test_all_up_frames_decode_exactly_like_the_row_by_row_path(pixels):
    data = encode_png(pixels)
    decoded = decode_png(data)
    np.testing.assert_array_equal(decoded, pixels)
    np.testing.assert_array_equal(decoded, row_by_row(data, decoded))
    assert decoded.dtype.isnative


@settings(max_examples=50, deadline=None)
@given(frames_to_encode(), st.integers(0, 2))
def test_all_up_frames_decode_into_a_slot_of_a_bigger_array(pixels, slot):
    big = np.zeros((3, *pixels.shape), pixels.dtype.newbyteorder("="))
    decode_png_into(encode_png(pixels), big[slot])
    np.testing.assert_array_equal(big[slot], pixels)
    assert not big[[i for i in range(3) if i != slot]].any()


def test_all_up_frames_decode_into_a_strided_view():
    pixels = np.arange(24 * 10, dtype=np.uint16).reshape(24, 10) * 271
    big = np.zeros((24, 20), np.uint16)
    decode_png_into(encode_png(pixels), big[:, ::2])
    np.testing.assert_array_equal(big[:, ::2], pixels)
    assert not big[:, 1::2].any()


def test_frames_of_changing_sizes_decode_in_one_thread():
    """The per-thread scratch buffer is reused for smaller frames and grown for bigger ones."""
    rng = np.random.default_rng(0)
    for shape in [(64, 64), (8, 5), (100, 90), (3, 2, 3), (64, 64)]:
        pixels = rng.integers(0, 65536, shape, dtype=np.uint16)
        np.testing.assert_array_equal(decode_png(encode_png(pixels)), pixels)


def test_many_threads_decode_at_once():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 4096, (80 + n, 64), dtype=np.uint16) for n in range(24)]
    encoded = [encode_png(f) for f in frames]
    with cf.ThreadPoolExecutor(6) as pool:
        decoded = list(pool.map(decode_png, encoded))
    for original, back in zip(frames, decoded):
        np.testing.assert_array_equal(back, original)


def test_idat_crc_is_checked_only_when_the_image_data_fails():
    """zlib's Adler-32 guards the pixels; the IDAT CRC is read to explain a failure."""
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8) * 997
    data = bytearray(encode_png(pixels))
    crc_at = data.index(b"IEND") - 8  # the IDAT's CRC, just before IEND's length and tag
    data[crc_at] ^= 0xFF
    np.testing.assert_array_equal(decode_png(bytes(data)), pixels)
    data[data.index(b"IDAT") + 6] ^= 0xFF  # now damage the compressed data too
    with pytest.raises(ValueError, match="CRC mismatch in its b'IDAT' chunk"):
        decode_png(bytes(data))


def test_frames_written_with_zlib_ng_or_plain_zlib_read_back_with_either(monkeypatch):
    from imagingdb.codecs import png as frames

    pixels = np.random.default_rng(2).integers(100, 900, (40, 30), dtype=np.uint16)
    with_ng = encode_png(pixels)
    monkeypatch.setattr(frames, "_zlib", zlib)  # the fallback where zlib-ng has no wheel
    with_zlib = encode_png(pixels)
    for data in (with_ng, with_zlib):
        np.testing.assert_array_equal(decode_png(data), pixels)
    monkeypatch.undo()
    assert frames._zlib is not zlib, "zlib-ng is a dependency and should be in use"
    for data in (with_ng, with_zlib):
        np.testing.assert_array_equal(decode_png(data), pixels)


@pytest.mark.parametrize("height", [1000, 1024, 1031])
def test_tall_frames_decode_exactly(height):
    """The running sum goes down blocks of rows; a height that is no multiple of the block too."""
    pixels = np.random.default_rng(height).integers(0, 65535, (height, 24), dtype=np.uint16)
    data = encode_png(pixels)
    decoded = decode_png(data)
    np.testing.assert_array_equal(decoded, pixels)
    np.testing.assert_array_equal(decoded, row_by_row(data, decoded))


def test_inflate_reuses_one_buffer_per_thread_and_checks_the_length():
    from imagingdb.codecs.png import _INFLATE_ERRORS, _inflate

    raw = np.random.default_rng(1).integers(0, 255, 300_000, dtype=np.uint8).tobytes()
    stream = zlib.compress(raw, 1)
    first, size = _inflate(stream, len(raw))
    assert size == len(raw) and first.tobytes() == raw
    again, _ = _inflate(zlib.compress(raw[::-1], 1), len(raw))
    assert again.tobytes() == raw[::-1]
    assert np.shares_memory(first, again)  # the same buffer: no fresh memory per frame
    longer, size = _inflate(stream, len(raw) - 10)
    assert size == len(raw) and len(longer) == len(raw) - 10  # counted, not kept
    with pytest.raises(_INFLATE_ERRORS):
        _inflate(stream[:-100], len(raw))


def test_decode_reports_image_data_of_the_wrong_length():
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    data = bytearray(encode_png(pixels))
    data[16:24] = (8).to_bytes(4, "big") + (7).to_bytes(4, "big")  # IHDR now says 8x7
    crc = zlib.crc32(bytes(data[12:29]))
    data[29:33] = crc.to_bytes(4, "big")
    with pytest.raises(ValueError, match="bytes of image data, expected"):
        decode_png(bytes(data))


def test_encode_reusing_writes_the_same_png_into_one_buffer_per_thread():
    from imagingdb.codecs.png import encode_png_reusing

    rng = np.random.default_rng(7)
    first_frame, second_frame = rng.integers(0, 4000, (2, 300, 200), dtype=np.uint16)
    first = encode_png_reusing(first_frame)
    assert bytes(first) == encode_png(first_frame)
    kept = bytes(first)
    second = encode_png_reusing(second_frame)
    assert bytes(second) == encode_png(second_frame)
    assert np.shares_memory(np.asarray(first), np.asarray(second))  # valid until the next encode
    np.testing.assert_array_equal(decode_png(kept), first_frame)
    with cf.ThreadPoolExecutor(1) as pool:  # another thread has its own buffer
        other = pool.submit(lambda: np.asarray(encode_png_reusing(first_frame))).result()
    assert not np.shares_memory(other, np.asarray(second))
    assert other.tobytes() == kept
