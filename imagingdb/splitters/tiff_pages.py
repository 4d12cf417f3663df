"""Reading TIFF pages one at a time, for the ``ome_tiff``, ``tif_folder`` and ``tif_id`` splitters.

Every problem a file can have (not a TIFF, truncated, corrupt page, no 2D
frame in it) becomes a :class:`SplitterError` naming the file and the page.
Page caching is off, so memory stays flat whatever the file size. tifffile
and numpy are imported lazily.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

from ..errors import SplitterError

if TYPE_CHECKING:
    import numpy as np
    import tifffile

MM_METADATA_TAG = 51123  # MicroManagerMetadata: per-page JSON
IJ_METADATA_TAG = 50839  # IJMetadata: ImageJ's Info, slice Labels, Ranges, LUTs (splitters.imagej)
TIFF_SUFFIXES = (".tif", ".tiff")
OME_TIFF_SUFFIXES = (".ome.tif", ".ome.tiff")


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def natural_key(path: "Path | str") -> list[Any]:
    """Sort img_2 before img_10 (a path by its name)."""
    name = path if isinstance(path, str) else path.name
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def listed(folder: Path, suffixes: tuple[str, ...] = TIFF_SUFFIXES, *,
           folders: bool = False) -> list[Path]:
    """The folder's files with one of ``suffixes`` (or, with ``folders``, its subfolders), in
    natural order, hidden ones left out.

    Hidden names are not the acquisition's: macOS leaves ``._<name>`` AppleDouble
    files beside every file copied to a non-Mac share, and editors their own.
    """
    found = []
    for path in folder.iterdir():
        if path.name.startswith("."):
            continue
        if folders and path.is_dir():
            found.append(path)
        elif not folders and path.name.lower().endswith(suffixes) and path.is_file():
            found.append(path)
    return sorted(found, key=natural_key)


def unreadable_reason(source: Path) -> Optional[str]:
    """Why no splitter could read ``source``, when the reason is plain: an empty file, a file
    that is not a TIFF, an empty folder, a folder with no TIFF file; None otherwise."""
    if source.is_dir():
        if not any(not path.name.startswith(".") for path in source.iterdir()):
            return "an empty folder"
        if not listed(source) and not any(listed(sub) for sub in listed(source, folders=True)):
            return "a folder with no TIFF file in it or in its subfolders"
        return None
    try:
        with open(source, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if not head:
        return "an empty file (0 bytes)"
    if head not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "not a TIFF file"
    return None


#: the most frames a source may declare: beyond it no acquisition is real, and the grid of
#: its missing frames (listed by show, walked by read) would not fit in memory
MAX_DECLARED_FRAMES = 10_000_000
#: how many declared frames may stand for each frame a source holds (an acquisition stopped
#: early), once the grid is larger than SMALL_GRID
MAX_DECLARED_PER_FRAME = 1000
SMALL_GRID = 100_000


def check_declared_frames(where: str, declared: int, present: int) -> None:
    """Refuse a source that declares more frames than any acquisition it holds could have.

    A file stopped early keeps the sizes it declared and records the frames
    never written as missing; but a header declaring a billion frames over a
    few pages is a damaged or hostile file, and building its grid would
    exhaust memory. Call it before anything is sized from the declaration.
    """
    if declared > MAX_DECLARED_FRAMES:
        raise SplitterError(f"{where} declares {declared:,} frames, more than the "
                            f"{MAX_DECLARED_FRAMES:,} imagingdb stores in one dataset (a damaged "
                            "header?); store the file whole with upload_type: file")
    if declared > SMALL_GRID and declared > MAX_DECLARED_PER_FRAME * max(present, 1):
        raise SplitterError(f"{where} declares {declared:,} frames but holds {present:,} (a "
                            "damaged header?); store the file whole with upload_type: file")


@dataclass(frozen=True)
class PixelFormat:
    """Shape and pixel type of a page; every frame of a dataset must share it."""

    shape: tuple[int, ...]  # (height, width) or (height, width, 3)
    dtype: str

    @property
    def colors(self) -> int:
        return self.shape[2] if len(self.shape) == 3 else 1

    @classmethod
    def of(cls, page: "tifffile.TiffPage", where: str) -> "PixelFormat":
        """The page's format, or a SplitterError if it holds no 2D frame.

        Whether frames of this pixel type can be stored is the frame codec's
        rule (:mod:`imagingdb.codecs`), asked by the upload: splitters read what
        a file holds.
        """
        if page.dtype is None:
            raise SplitterError(f"{where} has a pixel type tifffile cannot read (sample format "
                                f"{page.sampleformat}, {page.bitspersample} bits): store the file "
                                "whole with upload_type: file")
        dtype = page.dtype.name
        shape = tuple(page.shape)
        if 0 in shape:
            raise SplitterError(f"{where} has no pixels (shape {shape}): a damaged file")
        if not (len(shape) == 2 or (len(shape) == 3 and shape[2] == 3)):
            raise SplitterError(
                f"{where} has shape {shape}; frames must be (height, width) or RGB "
                "(height, width, 3): store the file whole with upload_type: file")
        return cls(shape, dtype)

    def check_same(self, other: "PixelFormat", where: str, first: str) -> None:
        if other != self:
            raise SplitterError(
                f"{where} is {other.shape} {other.dtype} but {first} is {self.shape} {self.dtype}: "
                "all frames of a dataset must share shape and pixel type")


@contextmanager
def reading(where: str) -> Iterator[None]:
    """Turn whatever tifffile raises on a corrupt page into a SplitterError."""
    try:
        yield
    except SplitterError:
        raise
    except Exception as exc:  # tifffile, struct, numpy... raise many kinds on bad files
        raise SplitterError(
            f"{where} cannot be read, the file is truncated or corrupt ({describe(exc)})") from exc


@contextmanager
def opened(path: Path) -> Iterator["tifffile.TiffFile"]:
    """Open a TIFF file with page caching off, or raise a SplitterError naming it."""
    import tifffile

    try:
        if path.stat().st_size == 0:
            raise SplitterError(f"{path}: empty file (0 bytes), not a TIFF file")
        tif = tifffile.TiffFile(path)
    except SplitterError:
        raise
    except Exception as exc:  # TiffFileError, OSError, struct.error...
        raise SplitterError(f"{path}: not a readable TIFF file ({describe(exc)})") from exc
    with closing(tif):
        tif.pages.cache = False
        tif.pages.useframes = False
        yield tif


@contextmanager
def closing(tif: "tifffile.TiffFile") -> Iterator["tifffile.TiffFile"]:
    """Close ``tif`` at the end, and free its pages now rather than at the next cycle
    collection.

    A TiffFile, its pages and their tags refer to one another, so a closed file
    waits for Python's cycle collector, which may not run for the whole upload;
    meanwhile the first page's tags stay in memory, Micro-Manager's OME-XML
    among them (3.3 MB at 8,192 frames, for each time a file was opened: the
    claim, the first page, each pass over the pages). Dropping the pages breaks
    the cycle.
    """
    try:
        with tif:
            yield tif
    finally:
        tif.pages = None  # type: ignore[assignment]


def first_page(tif: "tifffile.TiffFile", path: Path) -> "tifffile.TiffPage":
    try:
        page = tif.pages.first
    except Exception as exc:  # IndexError, TiffFileError, struct.error... on a cut file
        raise SplitterError(f"{path}: TIFF file has no readable page (truncated or corrupt: "
                            f"{describe(exc)})") from None
    check_data_in_file(tif, page, f"{path}: page 0")
    return page


def page_count(tif: "tifffile.TiffFile", path: Path) -> int:
    """How many pages the file holds (walks the page chain; reads no pixels), or a
    SplitterError if the chain does not end as a whole file's does (:func:`check_chain_end`)."""
    with reading(f"{path}: page list"):
        count = len(tif.pages)
    check_chain_end(tif, path, count)
    return count


def check_chain_end(tif: "tifffile.TiffFile", path: Path, count: int) -> None:
    """The last page must link to no next page.

    tifffile stops at a link into the void with only a log message, so a file
    cut anywhere in its page chain would otherwise read as a whole file of
    fewer pages. Writers link the last page to 0 when they finish, and a copy
    cut short keeps the links to the pages it lost: a broken chain is a damaged
    file, never an acquisition that stopped early.
    """
    fh = tif.filehandle
    with reading(f"{path}: page list"):
        fh.seek(tif.pages.next_page_offset)
        raw = fh.read(tif.tiff.offsetsize)
    if len(raw) != tif.tiff.offsetsize or struct.unpack(tif.tiff.offsetformat, raw)[0] != 0:
        raise SplitterError(
            f"{path}: the chain of pages breaks after page {count - 1}: the file is truncated "
            "or corrupt (copy it again from the original; a file a crash cut short can be "
            "stored whole with upload_type: file)")


def numbered_pages(tif: "tifffile.TiffFile", path: Path,
                   stop: Optional[int] = None) -> Iterator[tuple[int, "tifffile.TiffPage"]]:
    """(number, page) in file order, each page checked to lie in the file, and the chain
    checked to end properly after the last one.

    ``stop``: read no page past number ``stop - 1`` (and leave the chain's end
    to :func:`page_count`, which counted ``stop``).
    """
    pages = iter(tif.pages)
    for number in itertools.count() if stop is None else range(stop):
        where = f"{path}: page {number}"
        with reading(where):
            page = next(pages, None)
        if page is None:
            check_chain_end(tif, path, number)
            return
        check_data_in_file(tif, page, where)
        yield number, page


def has_micromanager_metadata(page: "tifffile.TiffPage") -> bool:
    return MM_METADATA_TAG in page.tags


def is_ndtiff(tif: "tifffile.TiffFile") -> bool:
    """NDTiff's header (its magic number after the TIFF header), as tifffile tells it."""
    try:
        return bool(tif.is_ndtiff)
    except Exception:  # noqa: BLE001 - an unreadable header is simply not NDTiff's
        return False


def check_data_in_file(tif: "tifffile.TiffFile", page: "tifffile.TiffPage", where: str) -> None:
    """The page's tags, their values and its pixel data must lie in the file.

    tifffile zero-fills pixel data past the end of a file and reads a tag value
    the end cuts as what is left of it: either is a truncated file.
    """
    size = tif.filehandle.size
    with reading(where):  # a damaged size tag makes tifffile's own arithmetic raise
        if _tags_end(tif, page) > size:
            raise SplitterError(f"{where}: its tags run past the end of the file (truncated "
                                "file; copy it again from the original)")
        ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)]
        if not ends or 0 in page.dataoffsets or max(ends) > size:
            raise SplitterError(f"{where}: pixel data is missing or runs past the end of the "
                                "file (truncated file)")
        if page.compression == 1 and sum(page.databytecounts) < page.nbytes:
            # Corrupt dimensions: reading would allocate their size and zero-fill it.
            raise SplitterError(
                f"{where} declares {page.shape} {page.dtype} pixels ({page.nbytes} bytes) "
                f"but stores {sum(page.databytecounts)} bytes (corrupt file)")


@functools.lru_cache(maxsize=None)
def _value_bytes(kind: int) -> int:
    """Bytes per value of the TIFF field type ``kind`` (tifffile's table); 0 if unknown."""
    import tifffile

    data_format = tifffile.TIFF.DATA_FORMATS.get(kind)
    return struct.calcsize(f"<{data_format}") if data_format else 0


def _tags_end(tif: "tifffile.TiffFile", page: "tifffile.TiffPage") -> int:
    """Where the page's IFD (its entries and next-page link) and their values end, read from
    the file's own bytes: tifffile drops, with a log line only, a tag whose value the end of
    the file cuts, so ``page.tags`` cannot tell."""
    tiff, fh = tif.tiff, tif.filehandle
    fh.seek(page.offset)
    head = fh.read(tiff.tagnosize)
    if len(head) < tiff.tagnosize:
        return page.offset + tiff.tagnosize
    count = struct.unpack(tiff.tagnoformat, head)[0]
    end = page.offset + tiff.tagnosize + count * tiff.tagsize + tiff.offsetsize
    entries = fh.read(count * tiff.tagsize)
    if len(entries) < count * tiff.tagsize:
        return end
    for at in range(0, len(entries), tiff.tagsize):
        _code, kind, values, inline = struct.unpack(
            tiff.tagformat1 + tiff.tagformat2[1:], entries[at:at + tiff.tagsize])
        nbytes = values * _value_bytes(kind)
        if nbytes > tiff.tagoffsetthreshold:  # the value lies elsewhere; ``inline`` is where
            end = max(end, struct.unpack(tiff.offsetformat, inline)[0] + nbytes)
    return end


def read_pixels(page: "tifffile.TiffPage", where: str) -> "np.ndarray":
    with reading(where):
        pixels = page.asarray()
    if not pixels.dtype.isnative:  # big-endian ('MM') files
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    return pixels


def page_metadata(page: "tifffile.TiffPage") -> dict[str, Any]:
    """A page's tags by name as JSON-able metadata; MicroManagerMetadata merged in at the top.

    Micro-Manager keys (ChannelIndex, Exposure-ms...) sit at the top level, so
    a ``meta_schema`` checks them as it does for ``ome_tiff``; binary blobs
    (ImageJ LUTs, ICC profiles, strip offsets) are left out.
    """
    metadata: dict[str, Any] = {}
    micromanager: dict[str, Any] = {}
    for tag in page.tags:
        if tag.code == MM_METADATA_TAG:
            micromanager = _json_object(tag.value)
            continue
        if tag.code in (IJ_METADATA_TAG, 273, 279, 324, 325, 34675):  # offsets, counts, ICC
            continue
        value = tag.value
        if isinstance(value, (bytes, bytearray)) and len(value) > 1024:
            continue
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, tuple) and len(value) > 256:
            continue  # colour maps and other tables
        metadata[tag.name] = value.name if hasattr(value, "name") and hasattr(value, "value") else value
    metadata.update(micromanager)
    return metadata


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, (bytes, str)):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # JSON nested too deeply: not metadata
            return {}
    return value if isinstance(value, dict) else {}


def file_tags(path: Path) -> dict[str, Any]:
    """TIFF tags of the first page as metadata of a file kept whole (``upload_type: file``),
    when it is a TIFF; {} otherwise, and a ``tiff_error`` line when it cannot be read."""
    if path.suffix.lower() not in (".tif", ".tiff", ".btf", ".tf8"):
        return {}
    import tifffile

    try:
        with closing(tifffile.TiffFile(path)) as tif:
            page = tif.pages.first
            tags = {}
            for tag in page.tags:
                value = tag.value
                if isinstance(value, (bytes, bytearray)) and len(value) > 4096:
                    continue  # binary blobs (ICC profiles...) are not metadata
                tags[tag.name] = value
            return {"tiff_tags": tags, "nbr_pages": len(tif.pages)}
    except Exception as exc:  # noqa: BLE001 - kept whole anyway; say why there are no tags
        return {"tiff_error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def ome_suffix(name: str) -> str:
    """The name's .ome.tif(f) suffix as written (a continuation file keeps its case), or ''."""
    lowered = name.lower()
    return next((name[-len(suffix):] for suffix in OME_TIFF_SUFFIXES if lowered.endswith(suffix)),
                "")


def has_ome_suffix(name: str) -> bool:
    return bool(ome_suffix(name))
