"""The ``ome_tiff`` splitter: Micro-Manager (1.4 / 2.0) multipage OME-TIFF acquisitions, and
(through :mod:`.ome_xml`) any other OME-TIFF, whose OME-XML alone says where each page goes.

What a source means:

- a folder: every ``*.ome.tif`` / ``*.ome.tiff`` file in it (not recursive;
  hidden files and the ``._*`` files macOS leaves on other disks are not the
  acquisition's), i.e. all positions and their split continuation files;
- a file: that file plus its continuation files ``<stem>_1.ome.tif``,
  ``<stem>_2.ome.tif``... Other positions' files (``..._Pos1.ome.tif``) are
  *not* gathered, even when the summary lists more positions: give the folder
  to get every position.

The files must be one acquisition's, all of it (else the upload is refused,
naming the file): Micro-Manager names every file ``<prefix>_MMStack_...`` and
copies the summary into each, so two prefixes, or summaries whose Prefix,
UUID (1.4) or StartTime, or ChNames differ, are two acquisitions, which
would otherwise merge. It names a position's files
``<prefix>_MMStack_<position label>`` (``Pos<index>`` when the position has
no label) and continues a full file in ``_1``, ``_2``..., so a number missing
from that run is a file lost in a copy (a label the summary lists, such as
``cell_1``, is a position of its own, not a continuation). For a folder, the
dataset's OME-XML also names every file (each page's TiffData UUID FileName,
or the pointer to the file that holds it): one of them absent is refused too,
but for the positions the CSV ``positions`` column leaves out.

Each page's ``MicroManagerMetadata`` tag (51123, JSON) gives the frame's
indexes: ChannelIndex, SliceIndex, FrameIndex, PositionIndex (written by 1.4
and 2.0; 2.0 also writes Slice and Frame, 2.0 beta ``completeCoords``, see
:mod:`.micromanager`). A page without PositionIndex is placed by its
PositionName among the summary's position labels, else by the label in its
file name. A file name whose label says another position than its pages is
refused, naming both. A missing channel/slice/time index counts as 0; a clash
is then reported as a duplicate.

The acquisition summary comes from the first file: Micro-Manager's file header
(``TiffFile.micromanager_metadata['Summary']``), else the ImageJ ``Info`` of
the IJMetadata tag on page 0 (after the "Acquisition comments" Micro-Manager
puts first), else a ``Summary`` key in page 0's MicroManagerMetadata. It gives
the dimensions (Channels, Slices, Frames; 2.0's IntendedDimensions) and the
channel names (ChNames; 2.0 pages carry no channel name); without it they are
learnt from a metadata pass over the pages at open time. Pages missing from an
incomplete acquisition are not an error: the summary's dimensions are kept and
the frames present are yielded.

Global metadata is the summary, plus the dataset's whole OME-XML
(``ome_xml``): Micro-Manager writes it in the first ImageDescription of the
first position's files and a ``BinaryOnly`` pointer to one of them in the
others, which is followed.

An acquisition stopped early keeps the summary's sizes, and its frames never
acquired are recorded as missing; the blank pages with which Micro-Manager
completes such an acquisition's last time point (MicroManagerMetadata
``NULL``, absent from the index map) are not frames and are skipped.

Pages are read one at a time and not cached, so memory stays flat whatever the
file size. numpy and tifffile are imported lazily.
"""

from __future__ import annotations

import json
import os
import re
import struct
import weakref
from dataclasses import dataclass, field
from html import unescape  # XML's entities and numeric references (xml.sax.saxutils': ~60 ms)
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

import pluggy

from ..acquisition import (
    CERTAIN,
    Acquisition,
    Dimensions,
    Frame,
    FrameIndex,
    SourceClaim,
    SplitOptions,
    Splitter,
    frames_numbered,
)
from ..errors import SplitterError
from . import micromanager as mm
from . import ome_xml, tiff_pages

if TYPE_CHECKING:
    import tifffile

hookimpl = pluggy.HookimplMarker("imagingdb")

# Magic numbers of Micro-Manager's file header (bytes 8-40 of the file).
_MM_INDEX_MAP_HEADER = 54773648
_MM_SUMMARY_HEADER = 2355492

_INDEX = {"type": "integer", "minimum": 0}

#: Per-frame metadata Micro-Manager writes; the original imagingDB required the
#: channel, slice and frame indexes and the channel name. 2.0 names channels in
#: the summary only; its pages are told by the ScopeDataKeys (or 2.0 beta's
#: completeCoords) that 1.4 never writes.
OME_TIFF_META_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Micro-Manager per-frame metadata (MicroManagerMetadata TIFF tag)",
    "type": "object",
    "required": ["ChannelIndex", "FrameIndex"],
    "allOf": [
        {"anyOf": [{"required": ["SliceIndex"]}, {"required": ["Slice"]}]},
        {"anyOf": [{"required": ["Channel"]}, {"required": ["ScopeDataKeys"]},
                   {"required": ["completeCoords"]}]},
    ],
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

_LABEL_IN_NAME = re.compile(r"_MMStack_(?P<label>.+?)\.ome\.tiff?$", re.IGNORECASE)
_ROLLOVER = re.compile(r"^(?P<label>.+)_\d+$")
_NDTIFF_INDEX = "NDTiff.index"
_NDTIFF_MAJOR_HEADER = 483729  # NDTiff >= 2 puts it where Micro-Manager's index map header goes


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


# --------------------------------------------------------------------------
# The opened acquisition
# --------------------------------------------------------------------------


class OmeTiffAcquisition(Acquisition):
    """A Micro-Manager OME-TIFF acquisition: summary read at once, pages streamed."""

    def __init__(self, source: Path, files: list[Path], options: SplitOptions):
        self.source = source
        self.files = files
        first = _read_first_page(files[0])
        summary, self._format = first.summary, first.pixel_format
        self._position_labels = mm.position_labels(summary)
        dataset_xml, ome_warning = _dataset_ome_xml(files[0], first.ome_xml)
        _check_one_acquisition(source, files, summary, self._position_labels)
        if source.is_dir() and dataset_xml:
            _check_listed_files(source, dataset_xml, options.positions, self._position_labels)
        census = _take_census(files, summary, self._position_labels)
        self._positions_by_file = census.positions_by_file
        self._selected = _select_positions(source, census.positions(), options.positions)
        nbr_positions = len(self._selected)
        if source.is_dir() and options.positions is None:
            # An acquisition stopped before its last positions keeps its declared count,
            # so the positions it never reached are known to be missing.
            nbr_positions = max(nbr_positions, mm.summary_size(summary, "position") or 0)
        self.dims = _dimensions(summary, census, self._format, nbr_positions)
        self.channel_names = _channel_names(summary, census, self.dims.nbr_channels)
        # Largest index + 1 per axis; positions are only bounded by the summary.
        self._index_limits = {
            "channel": self.dims.nbr_channels,
            "slice": self.dims.nbr_slices,
            "time": self.dims.nbr_timepoints,
            "position": mm.summary_size(summary, "position"),
        }
        self.kind = _kind(summary, files)
        self.warnings = [ome_warning] if ome_warning else []
        self.global_meta = {
            **options.name_metadata(source),
            **summary,
            **({"ome_xml": dataset_xml} if dataset_xml else {}),
            "position_labels": {str(p): label for p in sorted(self._selected)
                                if p < len(self._position_labels)
                                and mm.label_position(self._position_labels,
                                                      label := self._position_labels[p]) == p},
            "file_origin": str(source),
            "source_files": [path.name for path in files],
        }
        # Frame generators still running, closed by close() with their files.
        self._running: "weakref.WeakSet[Iterator[Frame]]" = weakref.WeakSet()

    samples_anywhere = True

    def iter_frames(self, pixels: bool = True) -> Iterator[Frame]:
        frames = self._frames(pixels)
        self._running.add(frames)
        return frames

    def sample_frames(self, numbers: Sequence[int]) -> Iterator[Frame]:
        """Only the pages of the frames asked for are read for their pixels."""
        wanted = set(numbers)
        frames = self._frames(False, read=wanted.__contains__)
        self._running.add(frames)
        return frames_numbered(frames, wanted)

    def close(self) -> None:
        for frames in list(self._running):
            frames.close()

    def _frames(self, pixels: bool,
                read: Optional[Callable[[int], bool]] = None) -> Iterator[Frame]:
        """``read``: without ``pixels``, the frames (by their number in this order) whose
        pixels are read all the same."""
        first_seen: dict[FrameIndex, str] = {}  # index -> where it was read
        for path in self.files:
            if not self._positions_by_file[path] & self._selected:
                continue
            for number, page, metadata in _iter_pages(path):
                if metadata is None:  # a blank page, no image Micro-Manager acquired
                    continue
                where = f"{path}: page {number}"
                self._format.check_same(tiff_pages.PixelFormat.of(page, where), where,
                                        "the first page")
                index = _frame_index(metadata, path, number, self._position_labels)
                if index.position not in self._selected:
                    continue
                self._check_index(index, path, number)
                if index in first_seen:
                    raise SplitterError(
                        f"{path}: page {number} repeats frame {mm.describe_index(index)} "
                        f"already read from {first_seen[index]}")
                first_seen[index] = f"{path.name} page {number}"
                wanted = pixels or (read is not None and read(len(first_seen) - 1))
                yield Frame(
                    index=index,
                    channel_name=self._channel_name(metadata, index.channel),
                    metadata=metadata,
                    pixels=tiff_pages.read_pixels(page, f"{path}: page {number}") if wanted else None,
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
    """A folder's OME-TIFF files, or a file with the rollover files that continue it."""
    files = ome_xml.source_files(source)
    return files if source.is_dir() else [source, *_continuation_files(source)]


def _continuation_files(path: Path) -> list[Path]:
    """Micro-Manager's split files of ``path``: <stem>_1<suffix>, <stem>_2<suffix>..., all of
    them, so that one missing in the middle can be named (:func:`_check_rollovers`)."""
    suffix = _suffix(path.name)
    numbered = re.compile(re.escape(_stem(path.name)) + r"_([1-9]\d*)" + re.escape(suffix))
    candidates = tiff_pages.listed(path.parent, (suffix.lower(),))
    parts = {int(match[1]): candidate for candidate in candidates
             if (match := numbered.fullmatch(candidate.name))}
    return [parts[part] for part in sorted(parts)]


def _suffix(name: str) -> str:
    return tiff_pages.ome_suffix(name) or os.path.splitext(name)[1]


def _stem(name: str) -> str:
    return name[:len(name) - len(_suffix(name))]


# --------------------------------------------------------------------------
# The files of one acquisition
# --------------------------------------------------------------------------

_PREFIX = re.compile(r"^(?P<prefix>.+?)_MMStack(?=[_.])", re.IGNORECASE)


def _check_one_acquisition(source: Path, files: list[Path], summary: dict[str, Any],
                           labels: list[Optional[str]]) -> None:
    """The files must be one acquisition's, each position's split files all there.

    Micro-Manager names every file of an acquisition ``<prefix>_MMStack_...`` and
    copies its summary into each; two acquisitions in one folder would otherwise
    merge, the second's positions under the first's summary.
    """
    first = files[0]
    for path in files[1:]:
        prefixes = (_prefix(first), _prefix(path))
        if prefixes[0] != prefixes[1]:
            _refuse_two_acquisitions(source, first, path, "file names' prefixes "
                                     f"{prefixes[0] or '(none)'} and {prefixes[1] or '(none)'}")
        differs = _summary_difference(summary, _read_first_page(path).summary)
        if differs:
            _refuse_two_acquisitions(source, first, path, f"summaries' {differs}")
    _check_rollovers(source, files, labels)


def _prefix(path: Path) -> Optional[str]:
    match = _PREFIX.match(path.name)
    return match["prefix"] if match else None


def _summary_difference(summary: dict[str, Any], other: dict[str, Any]) -> Optional[str]:
    """The key that tells two acquisitions' summaries apart (UUID is 1.4's, StartTime both
    versions'), None when they may be one acquisition's."""
    identity = next((key for key in ("UUID", "StartTime") if key in summary and key in other),
                    None)
    for key in ("Prefix", "ChNames", identity):
        if key is not None and key in summary and key in other and summary[key] != other[key]:
            return key
    return None


def _refuse_two_acquisitions(source: Path, first: Path, other: Path, what: str) -> None:
    raise SplitterError(f"{source}: {first.name} and {other.name} are files of two Micro-Manager "
                        f"acquisitions (their {what} differ); upload each acquisition as its "
                        "own CSV row")


_CONTINUATION = re.compile(r"(?P<base>.+)_(?P<part>[1-9]\d*)")


def _check_rollovers(source: Path, files: list[Path], labels: list[Optional[str]]) -> None:
    """A position's files run <base>, <base>_1, <base>_2...: one missing is a copy gone wrong,
    whose frames would otherwise be recorded as never acquired."""
    parts: dict[tuple[str, str], set[int]] = {}
    for path in files:
        base, part = (_stem(path.name), 0) if path == source else _rollover_part(path, labels)
        parts.setdefault((base, _suffix(path.name)), set()).add(part)
    for (base, suffix), found in parts.items():
        missing = min(set(range(max(found))) - found, default=None)
        if missing is not None:
            name = f"{base}_{missing}{suffix}" if missing else f"{base}{suffix}"
            folder = source if source.is_dir() else source.parent
            raise SplitterError(
                f"{source}: {name} is missing: Micro-Manager continues a position's pages in "
                f"{base}_1{suffix}, _2..., and {base}_{max(found)}{suffix} is there; copy every "
                f"file of the acquisition into {folder}")


def _rollover_part(path: Path, labels: list[Optional[str]]) -> tuple[str, int]:
    """(base, n) of Micro-Manager's n-th continuation file <base>_<n>; (stem, 0) for a
    position's first file, or one whose label (``Site_1``) is itself a listed position's."""
    stem = _stem(path.name)
    continuation = _CONTINUATION.fullmatch(stem)
    label = stem.split("_MMStack_", 1)[1] if "_MMStack_" in stem else None
    if continuation is None or (label is not None and label in labels):
        return stem, 0
    return continuation["base"], int(continuation["part"])


_LISTED_FILE = re.compile(r'<(?:\w+:)?UUID\b[^>]*?\bFileName="(?P<name>[^"]*)"')


def _check_listed_files(source: Path, dataset_xml: str, wanted: Optional[list[int]],
                        labels: list[Optional[str]]) -> None:
    """Every file the dataset's OME-XML names (a TiffData UUID's FileName for each page, or
    the BinaryOnly pointer to the file holding the whole of it, when that file could not be
    read) must be in the folder, but those of positions left out with the CSV positions column.

    Micro-Manager writes the OME-XML as the acquisition ends: a file it names was written.
    """
    names = [unescape(match["name"]) for match in _LISTED_FILE.finditer(dataset_xml)]
    pointer = _BINARY_ONLY.search(dataset_xml[:4096])
    if pointer:
        names.append(unescape(pointer["file"]))
    for name in dict.fromkeys(names):
        if Path(name).name != name or (source / name).is_file():
            continue
        position = _file_name_position(Path(name), labels)
        if wanted is not None and position is not None and position not in wanted:
            continue
        raise SplitterError(
            f"{source}: {name} is missing, though the acquisition's OME-XML names it; copy "
            "every file of the acquisition into the folder (or leave its position out with "
            "the CSV positions column)")


# --------------------------------------------------------------------------
# Reading pages
# --------------------------------------------------------------------------


def _iter_pages(path: Path) -> Iterator[tuple[int, "tifffile.TiffPage", Optional[dict[str, Any]]]]:
    """Yield (page number, page, MicroManagerMetadata or None if blank) for each page; a
    file cut anywhere is refused (:func:`tiff_pages.numbered_pages` checks the chain's end)."""
    with tiff_pages.opened(path) as tif:
        tiff_pages.first_page(tif, path)
        for number, page in tiff_pages.numbered_pages(tif, path):
            with tiff_pages.reading(f"{path}: page {number}"):
                metadata = _mm_metadata(page, path, number)
            yield number, page, metadata


def _mm_metadata(page: "tifffile.TiffPage", path: Path, number: int) -> Optional[dict[str, Any]]:
    """The page's MicroManagerMetadata; None for the blank pages with which Micro-Manager
    completes the last time point of an aborted acquisition (writeBlankIFD: "NULL ")."""
    tag = page.tags.get(tiff_pages.MM_METADATA_TAG)
    if tag is None:
        raise SplitterError(
            f"{path} has no MicroManagerMetadata on page {number}: not a Micro-Manager "
            "OME-TIFF; use frames_format: tif_id for plain TIFF stacks")
    value = tag.value  # tifffile decodes the JSON; None if it is invalid
    if value is None and tag.count < 16:
        fh = page.parent.filehandle
        fh.seek(tag.valueoffset)
        value = fh.read(tag.count)
    if isinstance(value, (bytes, str)):
        if (value.encode() if isinstance(value, str) else value).strip(b"\0 ") == b"NULL":
            return None
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # JSON nested too deeply: not metadata
            value = None
    if not isinstance(value, dict):
        raise SplitterError(f"{path}: MicroManagerMetadata on page {number} is not a JSON object")
    return value


# --------------------------------------------------------------------------
# Summary, indexes and dimensions
# --------------------------------------------------------------------------


@dataclass
class _FirstPage:
    summary: dict[str, Any]
    pixel_format: tiff_pages.PixelFormat
    ome_xml: Optional[str]  # the first ImageDescription, where Micro-Manager puts the OME-XML


def _read_first_page(path: Path) -> _FirstPage:
    """The acquisition summary, the pixel format and the OME-XML, from page 0 of ``path``."""
    with tiff_pages.opened(path) as tif:
        page = tiff_pages.first_page(tif, path)  # checks its data: else a cut file looks untagged
        metadata = _mm_metadata(page, path, 0) or {}
        page_format = tiff_pages.PixelFormat.of(page, f"{path}: page 0")
        with tiff_pages.reading(f"{path}: page 0"):
            _check_header_blocks_in_file(tif.filehandle, path)
            summary = (_mm_header_block(tif.filehandle, "Summary")
                       or _imagej_summary(page)
                       or metadata.get("Summary"))
            description = page.tags.valueof(270)
    ome_xml = description if isinstance(description, str) and "<OME" in description[:1000] else None
    return _FirstPage(dict(summary) if isinstance(summary, dict) else {}, page_format, ome_xml)


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


#: the blocks Micro-Manager's file header points at: (name, the header fields of the
#: pointer's magic number and of the offset, the pointer's magic, the block's magic, bytes per
#: unit of the block's length). Display settings and comments are written as the file closes.
_HEADER_BLOCKS = (("index map", 0, 1, _MM_INDEX_MAP_HEADER, 3453623, 20),
                  ("display settings", 2, 3, 483765892, 347834724, 1),
                  ("comments", 4, 5, 99384722, 84720485, 1))


def _check_header_blocks_in_file(fh: Any, path: Path) -> None:
    """Each block the header points at must lie in the file: the last ones are written as
    the file closes, after every page, so a file cut after its pages loses them first."""
    fh.seek(0)
    head = fh.read(40)
    if len(head) < 40 or head[:2] not in (b"II", b"MM"):
        return
    byteorder = "<" if head[:2] == b"II" else ">"
    fields = struct.unpack(byteorder + "8I", head[8:40])
    size = fh.seek(0, os.SEEK_END)
    for name, pointer_at, offset_at, pointer, magic, unit in _HEADER_BLOCKS:
        offset = fields[offset_at]
        if fields[pointer_at] != pointer or offset == 0:
            continue  # no such block: never written (a crashed acquisition) or not Micro-Manager's
        fh.seek(offset)
        block = fh.read(8)
        found, length = struct.unpack(byteorder + "2I", block) if len(block) == 8 else (None, 0)
        if found is None or (found == magic and offset + 8 + length * unit > size):
            raise SplitterError(f"{path}: its Micro-Manager {name} runs past the end of the file "
                                "(a truncated copy: copy it again from the original)")


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
    """Micro-Manager's summary, stored as JSON in the ImageJ Info entry.

    With a comment, Micro-Manager writes "Acquisition comments: \\n<comment>\\n\\n\\n"
    before the JSON, and the comment may hold anything: the summary is the
    JSON object that runs to the end.
    """
    imagej = page.tags.valueof(tiff_pages.IJ_METADATA_TAG)
    info = imagej.get("Info") if isinstance(imagej, dict) else None
    if not isinstance(info, str):
        return None
    starts = [0] if not info.startswith("Acquisition comments:") else [
        match.end() for match in re.finditer(r"\n\n\n(?=\{)", info)]
    for start in starts:
        try:
            summary = json.loads(info[start:])
        except (ValueError, RecursionError):  # JSON nested too deeply: not metadata
            continue
        if isinstance(summary, dict):
            return summary
    return None


def _frame_index(metadata: dict[str, Any], path: Path, number: int,
                 position_labels: list[Optional[str]]) -> FrameIndex:
    where = f"{path}: page {number}'s MicroManagerMetadata"
    found = mm.image_indexes(metadata, f"{path}: MicroManagerMetadata {{key}} on page {number}")
    name = metadata.get("PositionName")
    by_label = mm.label_position(position_labels, name)
    position = found.get("position")
    if position is None:
        # A page without PositionIndex nor a listed PositionName: its file name says
        position = by_label if by_label is not None else (
            _file_name_position(path, position_labels) or 0)
    elif by_label is not None and by_label != position:
        raise SplitterError(f"{where} says PositionIndex {position} but its PositionName "
                            f"{name!r} is position {by_label} in the summary's position list")
    _check_file_name(path, name, position, position_labels, where)
    return FrameIndex(channel=found.get("channel", 0), slice=found.get("slice", 0),
                      time=found.get("time", 0), position=position)


def _labels_in_file_name(path: Path) -> list[str]:
    """What the file name can say about its position: the label after ``_MMStack_``,
    and that label less a continuation file's ``_<n>``."""
    match = _LABEL_IN_NAME.search(path.name)
    if match is None or match["label"].isdigit():  # <prefix>_MMStack_1: positions not split
        return []
    label = match["label"]
    rollover = _ROLLOVER.match(label)
    return [label, rollover["label"]] if rollover else [label]


def _file_name_position(path: Path, labels: list[Optional[str]]) -> Optional[int]:
    """The position a file's name says, None when it says none."""
    for label in _labels_in_file_name(path):
        said = _label_in_name_position(label, labels)
        if said is not None:
            return said
    return None


def _check_file_name(path: Path, name: Any, position: int, labels: list[Optional[str]],
                     where: str) -> None:
    """Micro-Manager names a position's files after its PositionName, else Pos<index>."""
    in_name = _labels_in_file_name(path)
    if not in_name:
        return
    if isinstance(name, str) and name:
        if name not in in_name:
            raise SplitterError(f"{path}: the file name says position {in_name[-1]!r} but {where} "
                                f"says PositionName {name!r}; Micro-Manager names a position's "
                                "files after it")
        return
    meant = {said for said in (_label_in_name_position(label, labels) for label in in_name)
             if said is not None}
    if meant and position not in meant:
        raise SplitterError(f"{path}: the file name says position {in_name[-1]!r} but {where} "
                            f"says PositionIndex {position}; Micro-Manager names a position's "
                            "files after it")


def _label_in_name_position(label: str, labels: list[Optional[str]]) -> Optional[int]:
    by_label = mm.label_position(labels, label)
    return by_label if by_label is not None else mm.numbered_position(label)


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
            if metadata is None:
                continue
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
    summary_complete = (all(mm.summary_size(summary, axis) for axis in census.sizes)
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
    # A file Micro-Manager never finished keeps its reserved, all-zero entries.
    return set(index_map[index_map[:, 4] != 0, 3].tolist())


def _select_positions(source: Path, available: set[int],
                      wanted: Optional[list[int]]) -> set[int]:
    if wanted is None:
        return available
    hint = "" if source.is_dir() else " (a file holds only its own positions: give the folder)"
    mm.check_positions_found(source, wanted, available, hint)
    return set(wanted)


def _dimensions(summary: dict[str, Any], census: _Census, page_format: tiff_pages.PixelFormat,
                nbr_positions: int) -> Dimensions:
    sizes = {axis: mm.summary_size(summary, axis) or max(census.sizes[axis], 1)
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


def _kind(summary: dict[str, Any], files: list[Path]) -> str:
    version = mm.version(summary)
    name = f"Micro-Manager {version} OME-TIFF" if version else "Micro-Manager OME-TIFF"
    return f"{name} ({len(files)} file{'' if len(files) == 1 else 's'})"


# --------------------------------------------------------------------------
# The dataset's OME-XML
# --------------------------------------------------------------------------

_BINARY_ONLY = re.compile(r'<BinaryOnly\b[^>]*\bMetadataFile="(?P<file>[^"]*)"')


def _dataset_ome_xml(path: Path, ome_xml: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """The whole OME-XML, and a warning when only a pointer to it could be found.

    Micro-Manager writes it into the files of one position (the first with
    room for it) and a ``BinaryOnly`` pointer to the last of them into every
    other file; when no file has room, into a text file ``OMEXMLMetadata.ome``.
    """
    pointer = _BINARY_ONLY.search(ome_xml[:4096]) if ome_xml else None
    if pointer is None:
        return ome_xml, None
    target = path.with_name(unescape(pointer["file"]))
    full = None
    if target.is_file() and target != path:
        full = _text_file(target) if target.suffix == ".ome" else _read_ome_xml(target)
    if full is None or _BINARY_ONLY.search(full[:4096]):
        return ome_xml, (f"{path.name}: its OME-XML points to {target.name}, which is not "
                         "in the folder or holds no OME-XML; only the pointer is kept")
    return full, None


def _read_ome_xml(path: Path) -> Optional[str]:
    try:
        return _read_first_page(path).ome_xml
    except SplitterError:
        return None


def _text_file(path: Path) -> Optional[str]:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


# --------------------------------------------------------------------------
# Claiming sources (frames_format: auto)
# --------------------------------------------------------------------------


@hookimpl
def claim_source(source: Path) -> Optional[SourceClaim]:
    """The sources this splitter reads: Micro-Manager's OME-TIFFs (CERTAIN), other OME-TIFFs
    (LIKELY). One hookimpl per module, asking each kind in turn."""
    return _claim_micromanager(source) or ome_xml.claim_generic_ome(source)


def _claim_micromanager(source: Path) -> Optional[SourceClaim]:
    """Micro-Manager OME-TIFFs: a file, or a folder of them; never an NDTiff stack.

    NDTiff stacks carry Micro-Manager's page tags too, but sit next to their
    ``NDTiff.index`` (and NDTiff >= 2 has its own header): the NDTiff plugin's.
    Reads one folder listing and the header and page-0 tags of one file.
    """
    try:
        files = _claimable_files(source)
        summary = _claimed_summary(files[0]) if files else None
    except (OSError, ValueError, struct.error, SplitterError):
        return None
    if summary is None:
        return None
    return SourceClaim("ome_tiff", _kind(summary, files), CERTAIN)


def _claimable_files(source: Path) -> list[Path]:
    if source.is_dir():
        if (source / _NDTIFF_INDEX).exists():
            return []
        return tiff_pages.listed(source, tiff_pages.OME_TIFF_SUFFIXES)
    if (not source.is_file() or source.suffix.lower() not in tiff_pages.TIFF_SUFFIXES
            or source.with_name(_NDTIFF_INDEX).exists()):
        return []
    return [source, *_continuation_files(source)]


def _claimed_summary(path: Path) -> Optional[dict[str, Any]]:
    """The summary of a Micro-Manager OME-TIFF ({} if it has none), None if it is not one."""
    with open(path, "rb") as fh:
        head = fh.read(16)
        if len(head) < 16 or head[:2] not in (b"II", b"MM"):
            return None
        byteorder = "<" if head[:2] == b"II" else ">"
        if struct.unpack(byteorder + "I", head[8:12])[0] == _NDTIFF_MAJOR_HEADER:
            return None
        summary = _mm_header_block(fh, "Summary")
    if isinstance(summary, dict):
        return summary
    with tiff_pages.opened(path) as tif:
        page = tiff_pages.first_page(tif, path)
        if tiff_pages.MM_METADATA_TAG not in page.tags:
            return None
        return _imagej_summary(page) or {}
