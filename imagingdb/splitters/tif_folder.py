"""The ``tif_folder`` splitter: a folder holding one TIFF file per frame.

What a source means: a folder; every ``*.tif`` / ``*.tiff`` file directly in
it is one frame, taken in natural order (``img_2`` before ``img_10``); hidden
files and the ``._*`` files macOS leaves on other disks are not. This is
what Micro-Manager writes with "save as separate image files" (1.4:
``img_<time>_<channel>_<slice>.tif``; 2.0:
``img_channel000_position000_time000000000_z000.tif``, only the axes the
acquisition used), and what many scripts write.

A multi-position acquisition is a folder of position folders (``Pos0/``,
``Pos1/``... or the stage positions' labels), each a folder as above with its
own ``metadata.txt``. It is recognised when the source holds no TIFF file
itself but subfolders that do.

- **Indexes** come from Micro-Manager's metadata where it has them: the
  file's entry in ``metadata.txt`` (1.4's ``FrameKey-<t>-<c>-<z>``, 2.0's
  ``Coords-<file>``/``Metadata-<file>``), else the JSON the image file itself
  carries (its ImageJ ``Info``, or a ``MicroManagerMetadata`` tag). The file
  name, through the upload config's ``filename_parser`` (default
  ``parse_idx_from_name``), gives what the metadata does not; a name that
  disagrees with the metadata is refused, naming both. A channel given by name
  gets its index from the summary's ``ChNames``, else from the order in which
  names first appear.
- **Positions** of position folders: the PositionIndex their images record,
  else 1.4's Summary PositionIndex, else the folder name's place among the
  summary's stage position labels (1.4 InitialPositionList, 2.0
  StagePositions); sources that disagree are refused. Without any of them, a
  folder named ``Pos<n>`` (Micro-Manager's name for a position without a
  label) is position n, else the one position all its file names give (2.0's
  ``position<n>``); a position folder nothing places is refused, never placed
  by the folders' order (a position skipped leaves no folder, and label
  folders sort by name). A folder given alone keeps the positions its file
  names give, unless its metadata (or, when the names give none, a ``Pos<n>``
  name) says which position it is.
- **Global metadata** is the ``Summary`` of the ``metadata.txt`` (kept whole),
  when the file is there. Its declared sizes (1.4 Channels, Slices, Frames,
  Positions; 2.0 IntendedDimensions, -1 meaning undeclared) are the dataset's
  dimensions, so an acquisition stopped early keeps them and its missing
  frames are known; without it they are learnt from the images. A
  ``metadata.txt`` cut short (no closing brace: the acquisition crashed or is
  still running) keeps its complete entries, with a warning; a missing one is
  accepted.
- **Frame metadata** is the file's TIFF tags by name, with Micro-Manager's
  per-image metadata at the top level (the ``metadata.txt`` entry, the
  ImageJ Info or ``MicroManagerMetadata`` JSON), plus any other keys the
  filename parser returns.

Everything but the pixels is read when the folder is opened and in the
metadata pass; pixels are read one file at a time.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pluggy

from ..acquisition import (
    CERTAIN,
    LIKELY,
    Acquisition,
    Dimensions,
    Frame,
    FrameIndex,
    SourceClaim,
    SplitOptions,
    Splitter,
)
from ..errors import SplitterError
from ..parsers import parse_idx_from_name
from . import micromanager as mm
from . import tiff_pages

hookimpl = pluggy.HookimplMarker("imagingdb")

METADATA_FILE = mm.METADATA_FILE
_PARSED_KEYS = {"channel": "channel_idx", "slice": "slice_idx", "time": "time_idx",
                "position": "pos_idx"}
_MM14_NAME = re.compile(r"^img_\d+_.+_\d+\.tiff?$", re.IGNORECASE)
_MM20_NAME = re.compile(r"^img(_(channel|position|time|z)\d+)+\.tiff?$", re.IGNORECASE)
_FOUR_INTEGERS = re.compile(r"^\D*\d+\D+\d+\D+\d+\D+\d+\D*$")


class TifFolderSplitter(Splitter):
    """Splits a folder of single-frame TIFF files (``frames_format: tif_folder``)."""

    name = "tif_folder"

    def open(self, source: "os.PathLike[str] | str", options: SplitOptions) -> "TifFolderAcquisition":
        return TifFolderAcquisition(Path(source), options)


@hookimpl
def register_splitters(register: Callable[[str, Callable[[], Splitter]], None]) -> None:
    register("tif_folder", TifFolderSplitter)


@dataclass
class _PlannedFrame:
    path: Path
    index: FrameIndex
    channel_name: str
    name_metadata: dict[str, Any]  # what the parser said beyond the indexes
    entry: Optional[str] = None  # the metadata.txt entry that placed it, checked against tags
    recorded_position: Optional[int] = None  # the PositionIndex Micro-Manager recorded
    position_name: Optional[str] = None  # the PositionName Micro-Manager recorded
    entry_metadata: dict[str, Any] = field(default_factory=dict)
    named_position: Optional[int] = None  # the position the file name gave


@dataclass
class _Folder:
    """A folder of image files: the source itself, or one position folder of it."""

    path: Path
    files: list[Path]
    metadata_txt: Optional[mm.MetadataTxt]
    entries: dict[str, mm.ImageEntry] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        return self.metadata_txt.summary if self.metadata_txt else {}


class TifFolderAcquisition(Acquisition):
    """A folder of TIFF files: names and metadata read at open, pixels streamed."""

    def __init__(self, source: Path, options: SplitOptions):
        self.source = source
        folders, multi_position = _folders(source)
        summary = next((f.summary for f in folders if f.summary), {})  # each folder has a copy
        summary_file = next((f.metadata_txt.path for f in folders if f.metadata_txt),
                            source / METADATA_FILE)
        positions = _FolderPositions(summary)
        plan = _plan(folders, multi_position, summary, options, positions)
        mm.check_positions_found(source, options.positions, {f.index.position for f in plan})
        self._plan = [f for f in plan
                      if options.positions is None or f.index.position in options.positions]
        self._format = _first_format(self._plan[0].path)
        _check_summary_format(summary, self._format, summary_file)
        self.channel_names = _channel_names(summary, self._plan)
        # A multi-position acquisition's summary says how many positions there
        # should be: a position folder missing is then recorded as missing frames.
        declared = 0
        if multi_position and options.positions is None:
            declared = mm.summary_size(summary, "position") or 0
        self.dims = _dimensions(summary, self._plan, self._format, len(self.channel_names), declared)
        _check_within(summary, self._plan, summary_file)
        self.kind = _kind(summary, folders, multi_position)
        self.warnings = _warnings(folders, summary, summary_file)
        self.global_meta = {**summary, "file_origin": str(source),
                            "nbr_files": sum(len(f.files) for f in folders)}
        if multi_position:
            self.global_meta["position_folders"] = positions.folder_names()
        labels = positions.labels(self._plan)
        if labels:
            self.global_meta["position_labels"] = labels

    def iter_frames(self, pixels: bool = True) -> Iterator[Frame]:
        for planned in self._plan:
            yield self._frame(planned, pixels)

    def _frame(self, planned: _PlannedFrame, pixels: bool) -> Frame:
        path = planned.path
        with tiff_pages.opened(path) as tif:
            page = tiff_pages.first_page(tif, path)
            pages = tiff_pages.page_count(tif, path)  # a file cut in its chain is refused
            if pages > 1:
                raise SplitterError(
                    f"{path} holds {pages} pages; tif_folder expects one frame per "
                    "file (use frames_format: tif_id for a stack in one file)")
            self._format.check_same(tiff_pages.PixelFormat.of(page, str(path)), str(path),
                                    f"the first file ({self._plan[0].path.name})")
            recorded, tag = _recorded_metadata(page)
            if planned.entry is not None:
                _check_tags_agree(path, recorded, tag, planned)
            metadata = {**planned.entry_metadata, **tiff_pages.page_metadata(page), **recorded,
                        **planned.name_metadata}
            data = tiff_pages.read_pixels(page, str(path)) if pixels else None
        return Frame(planned.index, planned.channel_name, metadata, data, origin=path.name)


# --------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------


def _folders(source: Path) -> tuple[list[_Folder], bool]:
    """The folders of image files, and whether they are position folders (see the
    module's docstring)."""
    if not source.is_dir():
        if source.is_file():
            raise SplitterError(f"{source} is a file; tif_folder takes a folder of TIFF files "
                                "(use frames_format: tif_id for a stack in one file)")
        raise SplitterError(f"{source}: no such folder")
    files = tiff_pages.listed(source)
    if files:
        return [_open_folder(source, files)], False
    folders = [_open_folder(folder, files) for folder in tiff_pages.listed(source, folders=True)
               if (files := tiff_pages.listed(folder))]
    if not folders:
        raise SplitterError(f"{source}: folder contains no .tif file, nor position folders "
                            "that do (Pos0/, Pos1/...)")
    return folders, True


def _open_folder(path: Path, files: list[Path]) -> _Folder:
    metadata_txt = mm.read_metadata_txt(path / METADATA_FILE, len(files))
    entries = metadata_txt.image_entries() if metadata_txt else {}
    return _Folder(path, files, metadata_txt, entries)


class _FolderPositions:
    """Which position each position folder is, from everything that says so."""

    def __init__(self, summary: dict[str, Any]):
        self._labels = mm.position_labels(summary)
        self._folders: dict[int, Path] = {}

    def place(self, folder: _Folder, position_folder: bool, planned: list[_PlannedFrame]) -> None:
        """Set the position of the folder's frames; refuse sources that disagree.

        ``position_folder``: one of the source's position folders (else the source itself,
        whose frames keep the positions their names give unless Micro-Manager says which
        position the folder is: a position folder given alone).
        """
        found = self._position(folder, position_folder, planned)
        if found is None:
            return
        position, why = found
        if position in self._folders:
            raise SplitterError(f"{folder.path} and {self._folders[position]} are both position "
                                f"{position} (by {why})")
        self._folders[position] = folder.path
        for frame in planned:
            if frame.recorded_position is None and frame.index.position not in (0, position):
                raise SplitterError(f"{frame.path}: the file name says position "
                                    f"{frame.index.position} but its folder is position {position}")
            frame.index = FrameIndex(frame.index.channel, frame.index.slice, frame.index.time,
                                     position)
            if position_folder:  # Micro-Manager names position folders after the position
                frame.position_name = frame.position_name or folder.path.name

    def _position(self, folder: _Folder, position_folder: bool,
                  planned: list[_PlannedFrame]) -> Optional[tuple[int, str]]:
        found = (self._recorded_position(folder, planned)
                 or _named_position(folder, position_folder, planned))
        if found is None and position_folder:
            # The folders' order is no position: a position skipped leaves no folder, and
            # label folders list by name, not in the position list's order.
            raise SplitterError(
                f"{folder.path}: nothing says which position this folder is (its images and "
                f"{METADATA_FILE} record no PositionIndex, its name is neither Pos<n> nor a label "
                "of the summary's position list, its file names give no position); keep each "
                f"position folder's {METADATA_FILE}, or upload each position folder as its own "
                "dataset (one CSV row each)")
        return found

    def _recorded_position(self, folder: _Folder,
                           planned: list[_PlannedFrame]) -> Optional[tuple[int, str]]:
        """What Micro-Manager's metadata says; sources that disagree are refused."""
        recorded = {f.recorded_position for f in planned if f.recorded_position is not None}
        if len(recorded) > 1:
            raise SplitterError(f"{folder.path}: its images record positions "
                                f"{', '.join(map(str, sorted(recorded)))}; a position folder "
                                "holds one position")
        candidates = []  # (position, what says so), most authoritative first
        if recorded:
            candidates.append((recorded.pop(), "the PositionIndex its images record"))
        summary_index = folder.summary.get("PositionIndex")
        if isinstance(summary_index, int) and not isinstance(summary_index, bool):
            candidates.append((summary_index, f"the Summary PositionIndex of {METADATA_FILE}"))
        by_label = mm.label_position(self._labels, folder.path.name)
        if by_label is not None:
            candidates.append((by_label, f"the folder name {folder.path.name!r} in the "
                                         "summary's position list"))
        for position, why in candidates[1:]:
            if position != candidates[0][0]:
                raise SplitterError(f"{folder.path}: {candidates[0][1]} says position "
                                    f"{candidates[0][0]} but {why} says {position}")
        return candidates[0] if candidates else None

    def folder_names(self) -> dict[str, str]:
        return {str(p): self._folders[p].name for p in sorted(self._folders)}

    def labels(self, plan: list[_PlannedFrame]) -> dict[str, str]:
        """Each position's label: the PositionName its images (or folder) carry, else the
        position list's."""
        labels: dict[int, str] = {}
        for frame in plan:
            if frame.position_name and frame.index.position not in labels:
                labels[frame.index.position] = frame.position_name
        for p in {f.index.position for f in plan} - set(labels):
            listed = self._labels[p] if p < len(self._labels) else None
            if mm.label_position(self._labels, listed) == p:  # a label, not a placeholder
                labels[p] = listed
        return {str(p): labels[p] for p in sorted(labels)}


def _named_position(folder: _Folder, position_folder: bool,
                    planned: list[_PlannedFrame]) -> Optional[tuple[int, str]]:
    """The position that names give a folder without metadata: ``Pos<n>`` (what Micro-Manager
    names a position without a label), else the one position all its file names give.

    A folder given alone whose file names give positions is a flat multi-position folder:
    its name is then not its position.
    """
    named = {frame.named_position for frame in planned}
    numbered = mm.numbered_position(folder.path.name)
    if numbered is not None and (position_folder or named == {None}):
        return numbered, f"the folder name {folder.path.name!r}"
    if position_folder and len(named) == 1 and None not in named:
        return named.pop(), "the position its file names give"
    return None


# --------------------------------------------------------------------------
# Placing each file
# --------------------------------------------------------------------------


def _plan(folders: list[_Folder], multi_position: bool, summary: dict[str, Any],
          options: SplitOptions, positions: "_FolderPositions") -> list[_PlannedFrame]:
    """Every file placed in the grid; two files at one index are refused."""
    parse = SplitOptions(filename_parser=options.filename_parser or parse_idx_from_name)
    planner = _Planner(summary, parse)
    plan: list[_PlannedFrame] = []
    for folder in folders:
        planned = [planner.plan(folder, path) for path in folder.files]
        positions.place(folder, multi_position, planned)
        plan += planned
    _check_unique(plan)
    return plan


class _Planner:
    """Places one file in the grid, from its recorded metadata and its name."""

    def __init__(self, summary: dict[str, Any], options: SplitOptions):
        self._known_names = mm.channel_names(summary)
        self._discovered: list[str] = []
        self._options = options

    def plan(self, folder: _Folder, path: Path) -> _PlannedFrame:
        entry = folder.entries.get(path.name)
        if entry is not None:
            recorded, metadata = entry.indexes, entry.metadata
            where = entry.describe(folder.metadata_txt.path)
        else:
            metadata, tag = _read_recorded_metadata(path)
            where = f"its own metadata ({tag})"
            recorded = mm.image_indexes(metadata, f"{path}: {where}")
            _check_file_name(path, metadata, where)
        parsed = self._parse(path, bool(recorded))
        name = parsed.pop("channel_name", None)
        values = {axis: _index(parsed.pop(_PARSED_KEYS[axis], None), path, axis)
                  for axis in _PARSED_KEYS}
        named_position = values["position"]
        for axis, value in recorded.items():
            if values[axis] is not None and values[axis] != value:
                raise SplitterError(f"{path}: the file name says {axis} {values[axis]} but "
                                    f"{where} says {axis} {value}")
            values[axis] = value
        channel_name = self._channel(path, values, name, metadata.get("Channel"), where)
        index = FrameIndex(**{axis: values[axis] or 0 for axis in _PARSED_KEYS})
        position_name = metadata.get("PositionName")
        return _PlannedFrame(path, index, channel_name, parsed, where if entry else None,
                             recorded.get("position"),
                             position_name if isinstance(position_name, str) else None,
                             entry.metadata if entry else {}, named_position)

    def _parse(self, path: Path, recorded: bool) -> dict[str, Any]:
        try:
            return dict(self._options.parse_name(path))
        except SplitterError:
            if recorded:  # Micro-Manager's metadata places it: the name need not
                return {}
            raise

    def _channel(self, path: Path, values: dict[str, Optional[int]], name: Optional[str],
                 entry_name: Any, where: str) -> str:
        """The channel's name; its index from ChNames when only the name gives it."""
        known = self._known_names
        if values["channel"] is not None:
            expected = known[values["channel"]] if values["channel"] < len(known) else entry_name
            if name is not None and expected is not None and str(name) != str(expected):
                raise SplitterError(f"{path}: the file name says channel {name!r} but {where} "
                                    f"says channel {values['channel']} ({expected})")
            if name is not None:
                return str(name)
            return str(expected) if expected is not None else str(values["channel"])
        if name is None:
            values["channel"] = 0
            return known[0] if known else "0"
        name = str(name)
        if known:
            if name not in known:
                raise SplitterError(f"{path}: channel {name!r} is not in {METADATA_FILE}'s "
                                    f"ChNames ({', '.join(known)})")
            values["channel"] = known.index(name)
        else:
            if name not in self._discovered:
                self._discovered.append(name)
            values["channel"] = self._discovered.index(name)
        return name


def _index(value: Any, path: Path, axis: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SplitterError(f"{path}: the filename parser gave {axis} index {value!r}, "
                            "not a non-negative integer")
    return value


def _read_recorded_metadata(path: Path) -> tuple[dict[str, Any], str]:
    with tiff_pages.opened(path) as tif:
        return _recorded_metadata(tiff_pages.first_page(tif, path))


def _recorded_metadata(page: Any) -> tuple[dict[str, Any], str]:
    """The JSON Micro-Manager stores in an image file, and which tag holds it: a
    MicroManagerMetadata tag, else the ImageJ ``Info`` (where ImageJ's FileSaver puts it
    for 1.4 and 2.0)."""
    imagej = page.tags.valueof(tiff_pages.IJ_METADATA_TAG)
    for tag, value in (("MicroManagerMetadata", page.tags.valueof(tiff_pages.MM_METADATA_TAG)),
                       ("ImageJ Info", imagej.get("Info") if isinstance(imagej, dict) else None)):
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):  # JSON nested too deeply: not metadata
                continue
        if isinstance(value, dict):
            return value, tag
    return {}, "none"


def _check_file_name(path: Path, metadata: dict[str, Any], where: str) -> None:
    """Micro-Manager records each image's FileName: a renamed file is not where it says."""
    recorded = metadata.get("FileName")
    if isinstance(recorded, str) and os.path.basename(recorded) != path.name:
        raise SplitterError(f"{path}: {where} says this image is {os.path.basename(recorded)}; "
                            "give the file back its name (Micro-Manager's metadata places "
                            "images by it)")


def _check_tags_agree(path: Path, recorded: dict[str, Any], tag: str,
                      planned: _PlannedFrame) -> None:
    """The image's own JSON must place it where its metadata.txt entry did."""
    where = f"{path}'s own metadata ({tag})"
    for axis, value in mm.image_indexes(recorded, where).items():
        if getattr(planned.index, axis) != value:
            raise SplitterError(f"{where} says {axis} {value} but {planned.entry} says "
                                f"{axis} {getattr(planned.index, axis)}")


def _check_unique(plan: list[_PlannedFrame]) -> None:
    seen: dict[FrameIndex, Path] = {}
    for planned in plan:
        index = planned.index
        if index in seen:
            raise SplitterError(f"{planned.path} and {seen[index].name} are both frame "
                                f"{mm.describe_index(index)}")
        seen[index] = planned.path


# --------------------------------------------------------------------------
# Dimensions and what the dataset is
# --------------------------------------------------------------------------


def _first_format(path: Path) -> tiff_pages.PixelFormat:
    with tiff_pages.opened(path) as tif:
        return tiff_pages.PixelFormat.of(tiff_pages.first_page(tif, path), str(path))


def _check_summary_format(summary: dict[str, Any], page_format: tiff_pages.PixelFormat,
                          where: Path) -> None:
    """The summary's Width/Height must describe the files it sits beside (2.0's image-file
    storage writes 0 for both: unknown)."""
    expected = {"Height": page_format.shape[0], "Width": page_format.shape[1]}
    for key, actual in expected.items():
        if summary.get(key) not in (None, 0, actual):
            raise SplitterError(f"{where}: Summary {key} is {summary[key]} but the TIFF files "
                                f"are {actual} pixels")


def _channel_names(summary: dict[str, Any], plan: list[_PlannedFrame]) -> list[str]:
    names = mm.channel_names(summary)
    by_index = {f.index.channel: f.channel_name for f in plan}
    count = max(mm.summary_size(summary, "channel") or 0, len(names), max(by_index) + 1)
    return [names[c] if c < len(names) else by_index.get(c, str(c)) for c in range(count)]


def _dimensions(summary: dict[str, Any], plan: list[_PlannedFrame],
                page_format: tiff_pages.PixelFormat, nbr_channels: int,
                declared_positions: int) -> Dimensions:
    def size(axis: str) -> int:
        found = max(getattr(f.index, axis) for f in plan) + 1
        return max(mm.summary_size(summary, axis) or 0, found)

    return Dimensions(
        nbr_channels=nbr_channels,
        nbr_slices=size("slice"),
        nbr_timepoints=size("time"),
        nbr_positions=max(len({f.index.position for f in plan}), declared_positions),
        im_height=page_format.shape[0],
        im_width=page_format.shape[1],
        im_colors=page_format.colors,
        bit_depth=page_format.dtype,
    )


def _check_within(summary: dict[str, Any], plan: list[_PlannedFrame], where: Path) -> None:
    """A file beyond the summary's declared sizes means names and summary disagree."""
    for axis in ("channel", "slice", "time"):
        declared = mm.summary_size(summary, axis)
        for planned in plan:
            value = getattr(planned.index, axis)
            if declared is not None and value >= declared:
                raise SplitterError(
                    f"{planned.path}: {axis} index {value} but {where} declares "
                    f"{declared} {axis}(s)")


def _warnings(folders: list[_Folder], summary: dict[str, Any], summary_file: Path) -> list[str]:
    warnings = mm.cut_warnings(f.metadata_txt for f in folders)
    odd_axes = mm.undeclared_axes(summary)
    if odd_axes:
        warnings.append(f"{summary_file.name}: IntendedDimensions names axes Micro-Manager's "
                        f"image files cannot hold ({', '.join(odd_axes)}); kept in the metadata, "
                        "not used as dimensions")
    return warnings


def _kind(summary: dict[str, Any], folders: list[_Folder], multi_position: bool) -> str:
    names = [path.name for folder in folders for path in folder.files]
    version = _mm_version(summary, names)
    where = (f"{len(folders)} position folder{'' if len(folders) == 1 else 's'}"
             if multi_position else f"{len(names)} file{'' if len(names) == 1 else 's'}")
    if version is None:
        return f"folder of TIFF files ({where})"
    return f"Micro-Manager {version} image-file acquisition ({where})".replace("  ", " ")


def _mm_version(summary: dict[str, Any], names: list[str]) -> Optional[str]:
    """"1.4", "2.0", "" (Micro-Manager, version unknown) or None (not Micro-Manager)."""
    version = mm.version(summary)
    if version in ("1.4", "2.0"):
        return version
    if names and all(_MM20_NAME.match(name) for name in names):
        return "2.0"
    if names and all(_MM14_NAME.match(name) for name in names):
        return "1.4"
    return "" if summary else None


# --------------------------------------------------------------------------
# Claiming sources (frames_format: auto)
# --------------------------------------------------------------------------


@hookimpl
def claim_source(source: Path) -> Optional[SourceClaim]:
    """Micro-Manager image-file folders (CERTAIN: a metadata.txt with a Summary, or
    Micro-Manager's file names, in the folder or its position folders); folders whose
    TIFF names each hold four integers (LIKELY); nothing else.

    A folder of one number per file is an image sequence, one of .ome.tif files
    an OME-TIFF acquisition: other splitters'. Reads the folder's listing (and
    its subfolders' until one holds TIFFs) and the first bytes of one metadata.txt.
    """
    try:
        if not source.is_dir():
            return None
        names = _tiff_names(source)
        if names:
            return _claim_folder(source, names, None)
        subfolders = tiff_pages.listed(source, folders=True)
        first = next((folder for folder in subfolders if _tiff_names(folder)), None)
        return _claim_folder(first, _tiff_names(first), len(subfolders)) if first else None
    except OSError:
        return None


def _claim_folder(folder: Path, names: list[str],
                  position_folders: Optional[int]) -> Optional[SourceClaim]:
    if any(tiff_pages.has_ome_suffix(name) for name in names):
        return None
    version = "" if _has_summary(folder / METADATA_FILE) else None
    if all(_MM20_NAME.match(name) for name in names):
        version = "2.0"
    elif all(_MM14_NAME.match(name) for name in names):
        version = "1.4"
    where = (f"{position_folders} position folder{'' if position_folders == 1 else 's'}"
             if position_folders else f"{len(names)} file{'' if len(names) == 1 else 's'}")
    if version is not None:
        label = f"Micro-Manager {version} image-file acquisition".replace("  ", " ")
        return SourceClaim("tif_folder", f"{label} ({where})", CERTAIN)
    if all(_FOUR_INTEGERS.match(name) for name in names):
        return SourceClaim("tif_folder", f"folder of TIFF files named by four integers ({where})",
                           LIKELY)
    return None


def _tiff_names(folder: Path) -> list[str]:
    return [path.name for path in tiff_pages.listed(folder)]


def _has_summary(path: Path) -> bool:
    """Micro-Manager's metadata.txt starts with its Summary (a FIFO by that name is not
    opened: opening one waits for a writer)."""
    try:
        if not path.is_file():
            return False
        with open(path, "rb") as fh:
            head = fh.read(64).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    return re.match(r'\s*\{\s*"Summary"\s*:', head) is not None
