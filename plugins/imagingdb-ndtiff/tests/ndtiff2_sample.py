"""NDTiff 2.0 datasets, written as Micro-Manager's Java writer of that version wrote them.

The ``ndtiff`` package reads NDTiff 2 but writes only NDTiff 3, so the tests
need a writer of their own. It follows NDStorage's Java code of the 2.0 format
(micro-manager/NDStorage at b7c0172, 2021, src/main/java/org/micromanager/
multiresstorage/): ``MultipageTiffWriter.writeMMHeaderAndSummaryMD`` (a 24-byte
header: TIFF header, 483729, major version 2, summary header 2355492, summary
length; NDTiff 3 adds a minor version and takes 28), ``writeIFD`` (13 entries;
next-IFD offset, [RGB bits per sample], X and Y resolution, pixels, metadata;
IFDs on even offsets; the last next-IFD offset 0 and the file cut after the last
metadata), ``processSummaryMD`` (resolution in pixels per cm from
``PixelSizeUm``/``PixelSize_um``), ``IndexEntryData.asByteBuffer`` and
``serializeAxes`` (each index entry: axes JSON with sorted keys, file name, 8
uint32s), ``ResolutionLevel.createBaseFilename`` (``<prefix>_NDTiffStack.tif``,
then ``_1.tif``...) and ``MultiResMultipageTiffStorage`` (everything in
``<prefix>_1/Full resolution/``, ``display_settings.txt`` beside it).

``test_v2_writer_reproduces_a_real_ndtiff2_dataset`` rewrites a real NDTiff 2.0
dataset (NDStorage's test_data/v2/ndtiffv2.0_test) from what ndtiff's own reader
reads in it and compares the files byte for byte.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Iterable, Union

import numpy as np

NDTIFF_MAGIC = 483729
MAJOR_VERSION = 2
SUMMARY_MD_HEADER = 2355492
MAX_FILE_BYTES = 4 * 1024 ** 3  # TIFF's 32-bit offsets
_SAFETY_MARGIN = 5_000_000  # the Java writer starts a new file this far before the limit
# TIFF tags in the Java writer's order: (tag, type)
_WIDTH, _HEIGHT, _BITS, _COMPRESSION, _PHOTOMETRIC = 256, 257, 258, 259, 262
_STRIP_OFFSETS, _SAMPLES, _ROWS_PER_STRIP, _STRIP_BYTES = 273, 277, 278, 279
_X_RESOLUTION, _Y_RESOLUTION, _RESOLUTION_UNIT, _MM_METADATA = 282, 283, 296, 51123
_ENTRIES = 13

Json = Union[dict, bytes]  # a dict is serialised as Java's JSONObject.toString() does: compactly


def write_ndtiff_v2(parent: Path, prefix: str, summary: Json,
                    images: Iterable[tuple[dict[str, int], np.ndarray, Json]],
                    max_file_bytes: int = MAX_FILE_BYTES) -> Path:
    """Write an NDTiff 2.0 dataset of ``images`` (axes, pixels, metadata); return its folder.

    Pixels are (height, width) uint8 or uint16, or (height, width, 3) uint8 RGB
    (stored in the order given). ``max_file_bytes`` below 4 GiB makes the
    dataset roll over into ``_1.tif``... files sooner, as big acquisitions do.
    """
    summary_bytes = _json_bytes(summary)
    root = parent / f"{prefix}_1"
    level = root / "Full resolution"
    level.mkdir(parents=True)
    (root / "display_settings.txt").write_text("{}", encoding="utf-8")
    index, stack, files = bytearray(), None, 0
    for axes, pixels, metadata in images:
        metadata_bytes = _json_bytes(metadata)
        if stack is None or not stack.has_space(pixels, metadata_bytes, max_file_bytes):
            if stack is not None:
                stack.finish()
            name = f"{prefix}_NDTiffStack{'' if files == 0 else f'_{files}'}.tif"
            stack, files = _StackFile(level / name, summary_bytes, _resolution(summary)), files + 1
        index += _index_entry(axes, stack.path.name, *stack.write(pixels, metadata_bytes))
    if stack is not None:
        stack.finish()
    (level / "NDTiff.index").write_bytes(bytes(index))
    return root


class _StackFile:
    def __init__(self, path: Path, summary: bytes, resolution: tuple[int, int]):
        self.path = path
        self._file = open(path, "wb")
        self._resolution = resolution
        first_ifd = 24 + len(summary)
        first_ifd += first_ifd % 2
        self._file.write(b"II" + struct.pack("<HIIIII", 42, first_ifd, NDTIFF_MAGIC, MAJOR_VERSION,
                                             SUMMARY_MD_HEADER, len(summary)) + summary)
        self._next_ifd_location = None

    def has_space(self, pixels: np.ndarray, metadata: bytes, limit: int) -> bool:
        ifd_bytes = _ENTRIES * 12 + 4 + 16
        return len(metadata) + ifd_bytes + pixels.nbytes + _SAFETY_MARGIN + self._file.tell() < limit

    def write(self, pixels: np.ndarray, metadata: bytes) -> tuple[int, int, int, int, int, int]:
        """Write one IFD, its pixels and metadata; return the index entry's numbers."""
        rgb = pixels.ndim == 3
        height, width = pixels.shape[:2]
        if self._file.tell() % 2:
            self._file.write(b"\0")  # the Java writer skips a byte of its zero-filled file
        start = self._file.tell()
        self._next_ifd_location = start + 2 + _ENTRIES * 12
        bits_offset = self._next_ifd_location + 4
        x_resolution = bits_offset + (6 if rgb else 0)
        pixel_offset = x_resolution + 16
        metadata_offset = pixel_offset + pixels.nbytes
        next_ifd = metadata_offset + len(metadata)
        next_ifd += next_ifd % 2
        bits = 8 * pixels.dtype.itemsize
        entries = [(_WIDTH, 4, 1, width), (_HEIGHT, 4, 1, height),
                   (_BITS, 3, 3 if rgb else 1, bits_offset if rgb else bits), (_COMPRESSION, 3, 1, 1),
                   (_PHOTOMETRIC, 3, 1, 2 if rgb else 1), (_STRIP_OFFSETS, 4, 1, pixel_offset),
                   (_SAMPLES, 3, 1, 3 if rgb else 1), (_ROWS_PER_STRIP, 3, 1, height),
                   (_STRIP_BYTES, 4, 1, pixels.nbytes), (_X_RESOLUTION, 5, 1, x_resolution),
                   (_Y_RESOLUTION, 5, 1, x_resolution + 8), (_RESOLUTION_UNIT, 3, 1, 3),
                   (_MM_METADATA, 2, len(metadata), metadata_offset)]
        ifd = struct.pack("<H", _ENTRIES) + b"".join(_ifd_entry(*entry) for entry in entries)
        ifd += struct.pack("<I", next_ifd) + (struct.pack("<3H", bits, bits, bits) if rgb else b"")
        ifd += struct.pack("<4I", *self._resolution, *self._resolution)
        self._file.write(ifd + np.ascontiguousarray(pixels).astype("<" + pixels.dtype.str[1:]).tobytes()
                         + metadata)
        pixel_type = 2 if rgb else (0 if pixels.dtype == np.uint8 else 1)
        return pixel_offset, width, height, pixel_type, metadata_offset, len(metadata)

    def finish(self) -> None:
        end = self._file.tell()
        if self._next_ifd_location is not None:
            self._file.seek(self._next_ifd_location)
            self._file.write(struct.pack("<I", 0))
        self._file.truncate(end)
        self._file.close()


def _ifd_entry(tag: int, kind: int, count: int, value: int) -> bytes:
    if kind == 3 and count == 1:  # a SHORT sits left-justified in the 4-byte value field
        return struct.pack("<HHIHH", tag, kind, count, value, 0)
    return struct.pack("<HHII", tag, kind, count, value)


def _index_entry(axes: dict[str, int], file_name: str, pixel_offset: int, width: int, height: int,
                 pixel_type: int, metadata_offset: int, metadata_length: int) -> bytes:
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in axes.values()):
        raise TypeError(f"NDTiff 2 axes hold integers only, not {axes}")
    key = _json_bytes(dict(sorted(axes.items())))
    name = file_name.encode("utf-8")
    return (struct.pack("<I", len(key)) + key + struct.pack("<I", len(name)) + name
            + struct.pack("<8I", pixel_offset, width, height, pixel_type, 0,
                          metadata_offset, metadata_length, 0))


def _resolution(summary: Json) -> tuple[int, int]:
    """(numerator, denominator) of the X/Y resolution tags, in pixels per cm, as Java computes it."""
    values = json.loads(summary) if isinstance(summary, bytes) else summary
    cm_per_pixel = 0.0001
    for key in ("PixelSizeUm", "PixelSize_um"):
        if isinstance(values.get(key), (int, float)):
            cm_per_pixel = 0.0001 * values[key]
            break
    if math.log10(cm_per_pixel) >= 0:
        return 1, int(cm_per_pixel)
    return int(1 / cm_per_pixel), 1


def _json_bytes(value: Json) -> bytes:
    if isinstance(value, bytes):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")



def write_v2_acquisition(parent: Path, *, channels: tuple[str, ...] = ("DAPI", "FITC"), slices: int = 2,
                         times: int = 3, dtype: str = "uint16", rgb: bool = False, size: int = 32,
                         max_file_bytes: int = MAX_FILE_BYTES, seed: int = 0) -> tuple[Path, dict]:
    """An AcqEngJ acquisition saved as NDTiff 2.0, like NDStorage's test_data/v2/ndtiffv2.0_test.

    As there, channels are numbers in the axes, their names only in each
    image's ``Channel`` metadata (the summary has no ChNames), and the
    metadata's own ChannelIndex/SliceIndex/FrameIndex are left at 0, as AcqEngJ
    wrote them: only the axes place an image. Returns the dataset folder and
    {(c, z, t): pixels}.
    """
    from imagingdb.testing import FluorescenceScene

    scene = FluorescenceScene(size, size, dtype, nbr_slices=slices, seed=seed)
    summary = {"TiledImageStorage": False, "PixelSize_um": 1, "DateAndTime": "2022/08/21 13:21:40",
               "Core-Camera": "Camera", "Core-Focus": "Z", "Core-XYStage": "XY",
               "AffineTransform": "1.0_0.0_0.0_1.0", "PixelType": "RGB32" if rgb else f"GRAY{dtype[4:]}"}
    written, images = {}, []
    for t in range(times):
        for z in range(slices):
            for c, channel in enumerate(channels):
                pixels = scene.frame(c, z, t, 0)
                if rgb:
                    pixels = np.stack([pixels, pixels // 2, 255 - pixels], axis=-1)
                axes = {"channel": c, "z": z, "time": t}
                images.append((axes, pixels, {"Channel": channel, "Axes": axes, "ChannelIndex": 0,
                                              "SliceIndex": 0, "FrameIndex": 0, "Exposure": 10 + c}))
                written[c, z, t] = pixels
    return write_ndtiff_v2(parent, "acq", summary, images, max_file_bytes=max_file_bytes), written
