"""The ``ome_tiff`` splitter: Micro-Manager (1.4 / 2.0) multipage OME-TIFF acquisitions.

What a source means:

- a folder: every ``*.ome.tif`` / ``*.ome.tiff`` file in it (not recursive),
  i.e. all positions and their split continuation files;
- a file: that file plus its continuation files ``<stem>_1.ome.tif``,
  ``<stem>_2.ome.tif``... Other positions' files (``..._Pos1.ome.tif``) are
  *not* gathered, even when the summary lists more positions: give the folder
  to get every position.

Each page's ``MicroManagerMetadata`` tag (51123, JSON) gives the frame's
indexes: ChannelIndex, SliceIndex (or Slice), FrameIndex (or Frame),
PositionIndex (else the index of PositionName in the summary's position list,
else the ``_MMStack_Pos<p>`` number in the file name, else 0). A missing
channel/slice/time index counts as 0; a clash is then reported as a duplicate.

The acquisition summary comes from the first file: Micro-Manager's file header
(``TiffFile.micromanager_metadata['Summary']``), else the ImageJ ``Info`` of
the IJMetadata tag on page 0, else a ``Summary`` key in page 0's
MicroManagerMetadata. It gives the dimensions (Channels, Slices, Frames; 2.0's
IntendedDimensions) and the channel names (ChNames); without it they are
learnt from a metadata pass over the pages at open time. Pages missing from an
incomplete acquisition are not an error: the summary's dimensions are kept and
the frames present are yielded.

Pages are read one at a time and not cached, so memory stays flat whatever the
file size. numpy and tifffile are imported lazily.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import struct
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import pluggy

from ..acquisition import Acquisition, Dimensions, Frame, FrameIndex, SourceClaim, SplitOptions, Splitter
from ..errors import SplitterError
from . import ome_xml, tiff_pages

if TYPE_CHECKING:
    import tifffile

hookimpl = pluggy.HookimplMarker("imagingdb")

MM_METADATA_TAG = tiff_pages.MM_METADATA_TAG  # MicroManagerMetadata: per-page JSON
IJ_METADATA_TAG = tiff_pages.IJ_METADATA_TAG  # IJMetadata, whose Info holds Micro-Manager's summary
OME_TIFF_SUFFIXES = (".ome.tif", ".ome.tiff")

# Magic numbers of Micro-Manager's file header (bytes 8-40 of the file).
_MM_INDEX_MAP_HEADER = 54773648
_MM_SUMMARY_HEADER = 2355492

_INDEX = {"type": "integer", "minimum": 0}

#: Per-frame metadata Micro-Manager writes; the original imagingDB required the
#: channel, slice and frame indexes and the channel name.
OME_TIFF_META_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Micro-Manager per-frame metadata (MicroManagerMetadata TIFF tag)",
    "type": "object",
    "required": ["ChannelIndex", "FrameIndex", "Channel"],
    "anyOf": [{"required": ["SliceIndex"]}, {"required": ["Slice"]}],
    "properties": {
        "ChannelIndex": _INDEX,
        "SliceIndex": _INDEX,
        "Slice": _INDEX,
        "FrameIndex": _INDEX,
        "Frame": _INDEX,
        "PositionIndex": _INDEX,
        "Channel": {"type": "string", "minLength": 1},
        "PositionName": {"type": "string"},
        "FileName": {"type": "string"},
    },
}

# Summary keys giving each axis' size: Micro-Manager 1.4 key, 2.0 IntendedDimensions key.
_SIZE_KEYS = {
    "channel": ("Channels", "channel"),
    "slice": ("Slices", "z"),
    "time": ("Frames", "time"),
    "position": ("Positions", "position"),
}
_POSITION_IN_NAME = re.compile(r"_MMStack_Pos(\d+)(?:_\d+)?\.ome\.tiff?$", re.IGNORECASE)


class OmeTiffSplitter(Splitter):
    """Splits Micro-Manager OME-TIFF files into frames (``frames_format: ome_tiff``)."""

    name = "ome_tiff"
    default_meta_schema = OME_TIFF_META_SCHEMA

    def open(self, source: "os.PathLike[str] | str", options: SplitOptions) -> Acquisition:
        source = Path(source)
        if ome_xml.is_generic_ome(source):  # OME-XML without Micro-Manager's tags: Bio-Formats...
            return ome_xml.OmeXmlAcquisition(source, options)
        return OmeTiffAcquisition(source, _source_files(source), options)


@hookimpl
def register_splitters(register: Callable[[str, Callable[[], Splitter]], None]) -> None:
    register("ome_tiff", OmeTiffSplitter)


@hookimpl
def claim_source(source: Path) -> Optional[SourceClaim]:
    return ome_xml._claim_generic_ome(source)


# --------------------------------------------------------------------------
# The opened acquisition
# --------------------------------------------------------------------------


class OmeTiffAcquisition(Acquisition):
    """A Micro-Manager OME-TIFF acquisition: summary read at once, pages streamed."""

    def __init__(self, source: Path, files: list[Path], options: SplitOptions):
        self.source = source
        self.files = files
        summary, self._format = _read_first_page(files[0])
        self._position_labels = _position_labels(summary)
        census = _take_census(files, summary, self._position_labels)
        self._positions_by_file = census.positions_by_file
        self._selected = _select_positions(source, census.positions(), options.positions)
        nbr_positions = len(self._selected)
        if source.is_dir() and options.positions is None:
            # An acquisition stopped before its last positions keeps its declared count,
            # so the positions it never reached are known to be missing.
            nbr_positions = max(nbr_positions, _summary_size(summary, "position") or 0)
        self.dims = _dimensions(summary, census, self._format, nbr_positions)
        self.channel_names = _channel_names(summary, census, self.dims.nbr_channels)
        # Largest index + 1 per axis; positions are only bounded by the summary.
        self._index_limits = {
            "channel": self.dims.nbr_channels,
            "slice": self.dims.nbr_slices,
            "time": self.dims.nbr_timepoints,
            "position": _summary_size(summary, "position"),
        }
        self.global_meta = {
            **options.name_metadata(source),
            **summary,
            "file_origin": str(source),
            "source_files": [path.name for path in files],
        }
        # Frame generators still running, closed by close() with their files.
        self._running: "weakref.WeakSet[Iterator[Frame]]" = weakref.WeakSet()

    def iter_frames(self, pixels: bool = True) -> Iterator[Frame]:
        frames = self._frames(pixels)
        self._running.add(frames)
        return frames

    def close(self) -> None:
        for frames in list(self._running):
            frames.close()

    def _frames(self, pixels: bool) -> Iterator[Frame]:
        first_seen: dict[FrameIndex, str] = {}  # index -> where it was read
        for path in self.files:
            if not self._positions_by_file[path] & self._selected:
                continue
            for number, page, metadata in _iter_pages(path):
                where = f"{path}: page {number}"
                self._format.check_same(tiff_pages.PixelFormat.of(page, where), where,
                                        "the first page")
                index = _frame_index(metadata, path, number, self._position_labels)
                if index.position not in self._selected:
                    continue
                self._check_index(index, path, number)
                if index in first_seen:
                    raise SplitterError(
                        f"{path}: page {number} repeats frame {_describe_index(index)} "
                        f"already read from {first_seen[index]}")
                first_seen[index] = f"{path.name} page {number}"
                yield Frame(
                    index=index,
                    channel_name=self._channel_name(metadata, index.channel),
                    metadata=metadata,
                    pixels=tiff_pages.read_pixels(page, f"{path}: page {number}") if pixels else None,
                    origin=first_seen[index],
                )

    def _check_index(self, index: FrameIndex, path: Path, number: int) -> None:
        for axis, limit in self._index_limits.items():
            value = getattr(index, axis)
            if limit is not None and value >= limit:
                raise SplitterError(
                    f"{path}: page {number} has {axis} index {value} but the acquisition "
                    f"summary declares {limit} {axis}(s)")

    def _channel_name(self, metadata: dict[str, Any], channel: int) -> str:
        name = metadata.get("Channel")
        if isinstance(name, str) and name:
            return name
        return self.channel_names[channel]


# --------------------------------------------------------------------------
# Finding files
# --------------------------------------------------------------------------


def _source_files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted((path for path in source.iterdir()
                        if path.is_file() and _ome_tiff_suffix(path.name)), key=tiff_pages.natural_key)
        if not files:
            raise SplitterError(f"{source}: folder contains no .ome.tif file")
        return files
    if not source.is_file():
        raise SplitterError(f"{source}: no such file or folder")
    return [source, *_continuation_files(source)]


def _ome_tiff_suffix(name: str) -> str:
    """The name's .ome.tif(f) suffix as written, or '' if it has none."""
    lowered = name.lower()
    for suffix in OME_TIFF_SUFFIXES:
        if lowered.endswith(suffix):
            return name[-len(suffix):]
    return ""


def _continuation_files(path: Path) -> list[Path]:
    """Micro-Manager's split files of ``path``: <stem>_1<suffix>, <stem>_2<suffix>..."""
    suffix = _ome_tiff_suffix(path.name) or path.suffix
    stem = path.name[:len(path.name) - len(suffix)]
    found: list[Path] = []
    while True:
        candidate = path.with_name(f"{stem}_{len(found) + 1}{suffix}")
        if not candidate.is_file():
            return found
        found.append(candidate)


# --------------------------------------------------------------------------
# Reading pages
# --------------------------------------------------------------------------


def _iter_pages(path: Path) -> Iterator[tuple[int, "tifffile.TiffPage", dict[str, Any]]]:
    """Yield (page number, page, MicroManagerMetadata) for each page, in file order."""
    with tiff_pages.opened(path) as tif:
        tiff_pages.first_page(tif, path)
        pages = iter(tif.pages)
        for number in itertools.count():
            with tiff_pages.reading(f"{path}: page {number}"):
                page = next(pages, None)
                if page is None:
                    break
                tiff_pages.check_data_in_file(tif, page, f"{path}: page {number}")
                metadata = _mm_metadata(page, path, number)
            yield number, page, metadata
        _check_chain_end(tif, path, number)


def _check_chain_end(tif: "tifffile.TiffFile", path: Path, count: int) -> None:
    """The last page must link to no next page; tifffile only logs a broken chain.

    A file cut inside an IFD loses its last pages silently otherwise.
    """
    fh = tif.filehandle
    fh.seek(tif.pages.next_page_offset)
    raw = fh.read(tif.tiff.offsetsize)
    if len(raw) != tif.tiff.offsetsize or struct.unpack(tif.tiff.offsetformat, raw)[0] != 0:
        raise SplitterError(
            f"{path}: the chain of pages breaks after page {count - 1} "
            "(truncated or corrupt file)")


def _mm_metadata(page: "tifffile.TiffPage", path: Path, number: int) -> dict[str, Any]:
    tag = page.tags.get(MM_METADATA_TAG)
    if tag is None:
        raise SplitterError(
            f"{path} has no MicroManagerMetadata on page {number}: not a Micro-Manager "
            "OME-TIFF; use frames_format: tif_id for plain TIFF stacks")
    value = tag.value  # tifffile decodes the JSON; None if it is invalid
    if isinstance(value, (bytes, str)):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise SplitterError(f"{path}: MicroManagerMetadata on page {number} is not a JSON object")
    return value


# --------------------------------------------------------------------------
# Summary, indexes and dimensions
# --------------------------------------------------------------------------


def _read_first_page(path: Path) -> tuple[dict[str, Any], tiff_pages.PixelFormat]:
    """The acquisition summary and the pixel format, from page 0 of ``path``."""
    with tiff_pages.opened(path) as tif:
        page = tiff_pages.first_page(tif, path)  # checks its data: else a cut file looks untagged
        metadata = _mm_metadata(page, path, 0)
        page_format = tiff_pages.PixelFormat.of(page, f"{path}: page 0")
        with tiff_pages.reading(f"{path}: page 0"):
            summary = (_mm_header_block(tif.filehandle, "Summary")
                       or _imagej_summary(page)
                       or metadata.get("Summary"))
    return (dict(summary) if isinstance(summary, dict) else {}), page_format


def _mm_header_block(fh: Any, key: str) -> Any:
    """'Summary' or 'IndexMap' from Micro-Manager's file header; None without a header."""
    import tifffile

    fh.seek(0)
    head = fh.read(40)
    if len(head) < 40 or head[:2] not in (b"II", b"MM"):
        return None
    byteorder = "<" if head[:2] == b"II" else ">"
    fields = struct.unpack(byteorder + "8I", head[8:40])
    if fields[0] != _MM_INDEX_MAP_HEADER or fields[6] != _MM_SUMMARY_HEADER:
        return None
    if not _mm_block_fits(fh, byteorder, key, index_offset=fields[1], summary_length=fields[7]):
        return None  # a corrupt length: tifffile would try to read gigabytes
    return tifffile.read_micromanager_metadata(fh, {key}).get(key)


def _mm_block_fits(fh: Any, byteorder: str, key: str, *, index_offset: int,
                   summary_length: int) -> bool:
    """True if the header block's declared length lies inside the file."""
    size = fh.seek(0, os.SEEK_END)
    if key == "Summary":
        return 40 + summary_length <= size
    fh.seek(index_offset)
    head = fh.read(8)
    if len(head) < 8:
        return False
    _marker, count = struct.unpack(byteorder + "2I", head)
    return index_offset + 8 + 20 * count <= size


def _imagej_summary(page: "tifffile.TiffPage") -> Optional[dict[str, Any]]:
    """Micro-Manager's summary, stored as JSON in the ImageJ Info entry."""
    imagej = page.tags.valueof(IJ_METADATA_TAG)
    info = imagej.get("Info") if isinstance(imagej, dict) else None
    try:
        summary = json.loads(info) if isinstance(info, str) else None
    except ValueError:
        return None
    return summary if isinstance(summary, dict) else None


def _summary_size(summary: dict[str, Any], axis: str) -> Optional[int]:
    key, intended_key = _SIZE_KEYS[axis]
    intended = summary.get("IntendedDimensions")
    value = summary.get(key)
    if value is None and isinstance(intended, dict):
        value = intended.get(intended_key)
    try:
        size = int(value)
    except (TypeError, ValueError):
        return None
    return size if size > 0 else None


def _position_labels(summary: dict[str, Any]) -> list[Optional[str]]:
    """Position names in index order: 1.4's InitialPositionList or 2.0's StagePositions."""
    positions = summary.get("InitialPositionList") or summary.get("StagePositions") or []
    if not isinstance(positions, list):
        return []
    return [entry.get("Label") if isinstance(entry, dict) else None for entry in positions]


def _index_value(metadata: dict[str, Any], keys: tuple[str, ...], path: Path, number: int) -> int:
    """The first of ``keys`` present in ``metadata`` as a non-negative int (0 if none is)."""
    for key in keys:
        if key in metadata:
            value = metadata[key]
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SplitterError(
                    f"{path}: MicroManagerMetadata {key} on page {number} is {value!r}, "
                    "not a non-negative integer")
            return value
    return 0


def _frame_index(metadata: dict[str, Any], path: Path, number: int,
                 position_labels: list[Optional[str]]) -> FrameIndex:
    if "PositionIndex" in metadata:
        position = _index_value(metadata, ("PositionIndex",), path, number)
    else:
        position = _position_from_name(metadata.get("PositionName"), position_labels, path)
    return FrameIndex(
        channel=_index_value(metadata, ("ChannelIndex",), path, number),
        slice=_index_value(metadata, ("SliceIndex", "Slice"), path, number),
        time=_index_value(metadata, ("FrameIndex", "Frame"), path, number),
        position=position,
    )


def _position_from_name(name: Any, labels: list[Optional[str]], path: Path) -> int:
    """Position of a page without PositionIndex: its label's place, or the file's Pos<p>."""
    if name is not None and name in labels:
        return labels.index(name)
    match = _POSITION_IN_NAME.search(path.name)
    return int(match.group(1)) if match else 0


def _describe_index(index: FrameIndex) -> str:
    return (f"(channel {index.channel}, slice {index.slice}, "
            f"time {index.time}, position {index.position})")


@dataclass
class _Census:
    """What the files hold, learnt at open: positions per file, and from a page
    scan (only when the summary lacks them) axis sizes and channel names."""

    positions_by_file: dict[Path, set[int]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=lambda: {"channel": 0, "slice": 0, "time": 0})
    channel_names: dict[int, str] = field(default_factory=dict)

    def positions(self) -> set[int]:
        return set().union(*self.positions_by_file.values())

    def scan(self, path: Path, position_labels: list[Optional[str]]) -> set[int]:
        """Read every page's metadata (not pixels); return the positions in ``path``."""
        positions = set()
        for number, _page, metadata in _iter_pages(path):
            index = _frame_index(metadata, path, number, position_labels)
            positions.add(index.position)
            for axis in self.sizes:
                self.sizes[axis] = max(self.sizes[axis], getattr(index, axis) + 1)
            if isinstance(metadata.get("Channel"), str):
                self.channel_names.setdefault(index.channel, metadata["Channel"])
        return positions


def _take_census(files: list[Path], summary: dict[str, Any],
                 position_labels: list[Optional[str]]) -> _Census:
    """Positions from Micro-Manager's index maps when the summary is complete,
    else from a metadata pass over the pages."""
    census = _Census()
    summary_complete = (all(_summary_size(summary, axis) for axis in census.sizes)
                        and isinstance(summary.get("ChNames"), list))
    for path in files:
        positions = _index_map_positions(path) if summary_complete else None
        if positions is None:
            positions = census.scan(path, position_labels)
        census.positions_by_file[path] = positions
    return census


def _index_map_positions(path: Path) -> Optional[set[int]]:
    """Positions listed in the file's Micro-Manager index map, None without one."""
    try:
        with open(path, "rb") as fh:
            index_map = _mm_header_block(fh, "IndexMap")
    except (OSError, ValueError, struct.error):
        return None  # the page scan that follows reports what is wrong
    if index_map is None or len(index_map) == 0:
        return None
    return set(index_map[:, 3].tolist())


def _select_positions(source: Path, available: set[int],
                      wanted: Optional[list[int]]) -> set[int]:
    if wanted is None:
        return available
    missing = sorted(set(wanted) - available)
    if missing:
        hint = "" if source.is_dir() else " (a file holds only its own positions: give the folder)"
        raise SplitterError(
            f"{source}: position(s) {', '.join(map(str, missing))} not found; "
            f"available positions: {', '.join(map(str, sorted(available)))}{hint}")
    return set(wanted)


def _dimensions(summary: dict[str, Any], census: _Census, page_format: tiff_pages.PixelFormat,
                nbr_positions: int) -> Dimensions:
    sizes = {axis: _summary_size(summary, axis) or max(census.sizes[axis], 1)
             for axis in census.sizes}
    return Dimensions(
        nbr_channels=sizes["channel"],
        nbr_slices=sizes["slice"],
        nbr_timepoints=sizes["time"],
        nbr_positions=nbr_positions,
        im_height=page_format.shape[0],
        im_width=page_format.shape[1],
        im_colors=page_format.shape[2] if len(page_format.shape) == 3 else 1,
        bit_depth=page_format.dtype,
    )


def _channel_names(summary: dict[str, Any], census: _Census, nbr_channels: int) -> list[str]:
    names = summary.get("ChNames")
    if not isinstance(names, list):
        names = []
    return [
        str(names[channel]) if channel < len(names)
        else census.channel_names.get(channel, f"channel{channel}")
        for channel in range(nbr_channels)
    ]
