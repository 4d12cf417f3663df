"""The ``tif_folder`` splitter: a folder holding one TIFF file per frame.

What a source means: a folder; every ``*.tif`` / ``*.tiff`` file directly in
it is one frame, taken in natural order (``img_2`` before ``img_10``). This is
what Micro-Manager 1.4 writes with "save as separate image files" for one
position, and what many scripts write.

A multi-position acquisition is a folder of position folders (``Pos0/``,
``Pos1/``... or the stage positions' labels), each a folder as above with its
own ``metadata.txt``. It is recognised when the source holds no TIFF file
itself but subfolders that do. A folder's position index is the index of its
name among the summary's ``InitialPositionList`` labels, else its rank in
natural order; it overrides a position the filename parser gives (a parser
giving another one is an error).

- **Indexes** come from each file's name through the upload config's
  ``filename_parser`` (default ``parse_idx_from_name``: Micro-Manager's
  ``img_<time>_<channel>_<slice>.tif`` or four integers channel, slice, time,
  position). A channel given by name gets its index from the summary's
  ``ChNames``, else from the order in which names first appear.
- **Global metadata** is the ``Summary`` of the folder's ``metadata.txt``
  (Micro-Manager's JSON: PixelType, BitDepth, Width, Height, ChNames,
  Channels, Slices, Frames...), when the file is there. Its sizes are the
  dataset's dimensions, so an acquisition stopped early keeps them and its
  missing frames are known; without it they are learnt from the names.
- **Frame metadata** is the file's TIFF tags by name, with Micro-Manager's
  per-image metadata at the top level: the ``MicroManagerMetadata`` tag if the
  file has one, else the ``metadata.txt`` entry whose FileName is this file
  (so a ``meta_schema`` can check Micro-Manager keys), plus any other keys the
  filename parser returns.

Everything but the pixels is read when the folder is opened and in the
metadata pass; pixels are read one file at a time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pluggy

from ..acquisition import Acquisition, Dimensions, Frame, FrameIndex, SplitOptions, Splitter
from ..errors import SplitterError
from ..parsers import parse_idx_from_name
from . import tiff_pages

hookimpl = pluggy.HookimplMarker("imagingdb")

METADATA_FILE = "metadata.txt"
_AXES = ("channel", "slice", "time", "position")
_PARSED_KEYS = {"channel": "channel_idx", "slice": "slice_idx", "time": "time_idx",
                "position": "pos_idx"}
_SUMMARY_SIZES = {"channel": "Channels", "slice": "Slices", "time": "Frames"}


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


class TifFolderAcquisition(Acquisition):
    """A folder of TIFF files: names parsed and summary read at open, pixels streamed."""

    def __init__(self, source: Path, options: SplitOptions):
        self.source = source
        folders = _position_folders(source)
        summaries, files, folder_position = [], [], {}
        self._frame_entries: dict[Path, dict[str, Any]] = {}
        for position, folder, folder_files in folders:
            metadata_txt = _read_metadata_txt(folder / METADATA_FILE)
            summary = metadata_txt.get("Summary")
            summaries.append(summary if isinstance(summary, dict) else {})
            self._frame_entries.update(
                (folder / name, entry) for name, entry in _frame_entries_by_file(metadata_txt).items())
            files += folder_files
            folder_position.update((path, position) for path in folder_files)
        summary = summaries[0]  # the acquisition's; each position folder has a copy
        summary_file = folders[0][1] / METADATA_FILE
        multi_position = folders[0][0] is not None
        parse = options.filename_parser or parse_idx_from_name
        self._plan = _plan_frames(files, summary, SplitOptions(filename_parser=parse), folder_position)
        self._plan = [f for f in self._plan
                      if options.positions is None or f.index.position in options.positions]
        _check_positions(source, self._plan, options.positions)
        self._format = _first_format(self._plan[0].path)
        _check_summary_format(summary, self._format, summary_file)
        self.channel_names = _channel_names(summary, self._plan)
        # A multi-position acquisition's summary says how many positions there
        # should be: a position folder missing is then recorded as missing frames.
        declared = 0
        if multi_position and options.positions is None:
            declared = _summary_count(summary, "Positions") or 0
        self.dims = _dimensions(summary, self._plan, self._format, len(self.channel_names), declared)
        _check_within(summary, self._plan, summary_file)
        self.global_meta = {**summary, "file_origin": str(source), "nbr_files": len(files)}
        if multi_position:
            self.global_meta["position_folders"] = {str(p): f.name for p, f, _ in folders}

    def iter_frames(self, pixels: bool = True) -> Iterator[Frame]:
        for planned in self._plan:
            yield self._frame(planned, pixels)

    def _frame(self, planned: _PlannedFrame, pixels: bool) -> Frame:
        path = planned.path
        with tiff_pages.opened(path) as tif:
            page = tiff_pages.first_page(tif, path)
            with tiff_pages.reading(f"{path}: page 1"):
                extra_page = len(tif.pages) > 1
            if extra_page:
                raise SplitterError(
                    f"{path} holds {len(tif.pages)} pages; tif_folder expects one frame per "
                    "file (use frames_format: tif_id for a stack in one file)")
            self._format.check_same(tiff_pages.PixelFormat.of(page, str(path)), str(path),
                                    f"the first file ({self._plan[0].path.name})")
            metadata = {**self._frame_entries.get(path, {}),
                        **tiff_pages.page_metadata(page), **planned.name_metadata}
            data = tiff_pages.read_pixels(page, str(path)) if pixels else None
        return Frame(planned.index, planned.channel_name, metadata, data, origin=path.name)


def _position_folders(source: Path) -> list[tuple[Optional[int], Path, list[Path]]]:
    """[(None, source, its TIFF files)] for a folder of TIFF files; [(position,
    folder, its TIFF files)...] for a multi-position acquisition (see the
    module's docstring), by position."""
    if not source.is_dir():
        if source.is_file():
            raise SplitterError(f"{source} is a file; tif_folder takes a folder of TIFF files "
                                "(use frames_format: tif_id for a stack in one file)")
        raise SplitterError(f"{source}: no such folder")
    files = _tiff_files(source)
    if files:
        return [(None, source, files)]
    subfolders = sorted((p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")),
                        key=tiff_pages.natural_key)
    folders = [(folder, files) for folder in subfolders if (files := _tiff_files(folder))]
    if not folders:
        raise SplitterError(f"{source}: folder contains no .tif file, nor position folders "
                            "that do (Pos0/, Pos1/...)")
    labels = _position_labels(_read_metadata_txt(folders[0][0] / METADATA_FILE))
    positioned: dict[int, tuple[Optional[int], Path, list[Path]]] = {}
    for rank, (folder, files) in enumerate(folders):
        position = labels.index(folder.name) if folder.name in labels else rank
        if position in positioned:
            raise SplitterError(f"{folder} and {positioned[position][1]} are both position "
                                f"{position} (by the InitialPositionList of "
                                f"{folders[0][0] / METADATA_FILE} and the folders' order)")
        positioned[position] = (position, folder, files)
    return [positioned[position] for position in sorted(positioned)]


def _position_labels(metadata_txt: dict[str, Any]) -> list[Optional[str]]:
    """The Label of each stage position in the summary's InitialPositionList."""
    summary = metadata_txt.get("Summary")
    positions = summary.get("InitialPositionList") if isinstance(summary, dict) else None
    if not isinstance(positions, list):
        return []
    return [p.get("Label") if isinstance(p, dict) else None for p in positions]


def _tiff_files(folder: Path) -> list[Path]:
    """The folder's .tif/.tiff files in natural order."""
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in tiff_pages.TIFF_SUFFIXES),
                  key=tiff_pages.natural_key)


def _read_metadata_txt(path: Path) -> dict[str, Any]:
    """Micro-Manager's metadata.txt as a dict; {} when the folder has none."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SplitterError(f"{path} is not valid JSON ({tiff_pages.describe(exc)})") from None
    if not isinstance(data, dict):
        raise SplitterError(f"{path} must hold a JSON object with a 'Summary' key")
    return data


def _frame_entries_by_file(metadata_txt: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """metadata.txt's per-image entries ("FrameKey-t-c-z" in 1.4) by their FileName."""
    entries = {}
    for key, value in metadata_txt.items():
        if key != "Summary" and isinstance(value, dict) and isinstance(value.get("FileName"), str):
            entries[os.path.basename(value["FileName"])] = value
    return entries


def _plan_frames(files: list[Path], summary: dict[str, Any], options: SplitOptions,
                 folder_position: dict[Path, Optional[int]]) -> list[_PlannedFrame]:
    """Parse every name; place each file in the grid; refuse two files at one index.

    ``folder_position``: the position of each file's position folder (None
    for a single folder: the parser's position, if any, holds).
    """
    known_names = [str(n) for n in summary.get("ChNames") or [] if n is not None]
    discovered: list[str] = []
    plan, seen = [], {}
    for path in files:
        parsed = dict(options.parse_name(path))
        by_index = "channel_idx" in parsed
        name = parsed.pop("channel_name", None)
        values = {axis: _index(parsed.pop(_PARSED_KEYS[axis], 0), path, axis) for axis in _AXES}
        folder_pos = folder_position.get(path)
        if folder_pos is not None:
            if values["position"] not in (0, folder_pos):
                raise SplitterError(f"{path}: the file name says position {values['position']} "
                                    f"but its folder is position {folder_pos}")
            values["position"] = folder_pos
        if name is not None and not by_index:
            name = str(name)
            if known_names:
                if name not in known_names:
                    raise SplitterError(
                        f"{path}: channel {name!r} is not in {METADATA_FILE}'s ChNames "
                        f"({', '.join(known_names)})")
                values["channel"] = known_names.index(name)
            else:
                if name not in discovered:
                    discovered.append(name)
                values["channel"] = discovered.index(name)
        index = FrameIndex(**values)
        if index in seen:
            raise SplitterError(f"{path} and {seen[index].name} are both frame (channel "
                                f"{index.channel}, slice {index.slice}, time {index.time}, "
                                f"position {index.position})")
        seen[index] = path
        channel_name = name if name is not None else _known(known_names, index.channel)
        plan.append(_PlannedFrame(path, index, channel_name, parsed))
    return plan


def _known(names: list[str], channel: int) -> str:
    # The original imagingDB named channels it could not name by their index.
    return names[channel] if channel < len(names) else str(channel)


def _index(value: Any, path: Path, axis: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SplitterError(f"{path}: the filename parser gave {axis} index {value!r}, "
                            "not a non-negative integer")
    return value


def _check_positions(source: Path, plan: list[_PlannedFrame], wanted: Optional[list[int]]) -> None:
    if not plan:
        raise SplitterError(f"{source}: no file of position(s) {wanted} in the folder")
    if wanted is not None:
        missing = sorted(set(wanted) - {f.index.position for f in plan})
        if missing:
            raise SplitterError(f"{source}: no file of position(s) {', '.join(map(str, missing))}")


def _first_format(path: Path) -> tiff_pages.PixelFormat:
    with tiff_pages.opened(path) as tif:
        return tiff_pages.PixelFormat.of(tiff_pages.first_page(tif, path), str(path))


def _check_summary_format(summary: dict[str, Any], page_format: tiff_pages.PixelFormat,
                          where: Path) -> None:
    """The summary's Width/Height/BitDepth must describe the files it sits beside."""
    expected = {"Height": page_format.shape[0], "Width": page_format.shape[1]}
    for key, actual in expected.items():
        if key in summary and summary[key] != actual:
            raise SplitterError(f"{where}: Summary {key} is {summary[key]} but the TIFF files "
                                f"are {actual} pixels")


def _channel_names(summary: dict[str, Any], plan: list[_PlannedFrame]) -> list[str]:
    names = [str(n) for n in summary.get("ChNames") or []]
    by_index = {f.index.channel: f.channel_name for f in plan}
    count = max(_summary_size(summary, "channel") or 0, len(names), max(by_index) + 1)
    return [names[c] if c < len(names) else by_index.get(c, str(c)) for c in range(count)]


def _summary_size(summary: dict[str, Any], axis: str) -> Optional[int]:
    return _summary_count(summary, _SUMMARY_SIZES[axis])


def _summary_count(summary: dict[str, Any], key: str) -> Optional[int]:
    value = summary.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _dimensions(summary: dict[str, Any], plan: list[_PlannedFrame],
                page_format: tiff_pages.PixelFormat, nbr_channels: int,
                declared_positions: int) -> Dimensions:
    def size(axis: str) -> int:
        found = max(getattr(f.index, axis) for f in plan) + 1
        return max(_summary_size(summary, axis) or 0, found)

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
        declared = _summary_size(summary, axis)
        for planned in plan:
            value = getattr(planned.index, axis)
            if declared is not None and value >= declared:
                raise SplitterError(
                    f"{planned.path}: {axis} index {value} but {where} declares "
                    f"{declared} {axis}(s) ({_SUMMARY_SIZES[axis]})")
