"""Micro-Manager's own metadata, as its 1.4 and 2.0 writers record it.

Shared by the ``ome_tiff`` and ``tif_folder`` splitters, so that both read a
summary, a position list and an image's indexes the same way:

- the acquisition **summary**: axis sizes (1.4's Channels, Slices, Frames,
  Positions; 2.0's IntendedDimensions, whose 1.4-style copies it also writes;
  -1 means "not declared"), channel names (ChNames), the stage positions'
  labels (1.4's InitialPositionList, 2.0's StagePositions; ``Label``, and
  ``label`` in 2.0 alpha files), the version that wrote it;
- an **image's indexes**: 1.4 and 2.0 write ChannelIndex, SliceIndex,
  FrameIndex, PositionIndex (2.0 also Slice and Frame, copies of the same);
  2.0 beta wrote ``completeCoords``, and 2.0's metadata.txt has a
  ``Coords-<file>`` entry per image (alpha: ``{"channel", "z", "time", "position"}``);
- **metadata.txt**, the per-folder JSON of image-file acquisitions: a
  ``Summary`` then one entry per image (1.4: ``FrameKey-<t>-<c>-<z>``; 2.0:
  ``Coords-<file>`` and ``Metadata-<file>``). Micro-Manager appends an entry
  per image and writes the closing ``}`` when the acquisition ends, so a
  crashed or still-running acquisition leaves it cut: every complete entry is
  kept and the cut is reported.

Nothing here imports tifffile or numpy.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from ..acquisition import FrameIndex
from ..errors import InputError, SplitterError

AXES = ("channel", "slice", "time", "position")
METADATA_FILE = "metadata.txt"

# Summary keys giving each axis' size: Micro-Manager 1.4's key, 2.0's IntendedDimensions key.
_SIZE_KEYS = {
    "channel": ("Channels", "channel"),
    "slice": ("Slices", "z"),
    "time": ("Frames", "time"),
    "position": ("Positions", "position"),
}
# Per-image index keys, first found wins; 2.0 writes Slice/Frame beside SliceIndex/FrameIndex.
_INDEX_KEYS = {
    "channel": ("ChannelIndex",),
    "slice": ("SliceIndex", "Slice"),
    "time": ("FrameIndex", "Frame"),
    "position": ("PositionIndex",),
}
# Axis names of 2.0's Coords (completeCoords, alpha metadata.txt Coords entries).
_COORDS_AXES = {"channel": "channel", "z": "slice", "time": "time", "position": "position"}
_FRAME_KEY = re.compile(r"^FrameKey-(\d+)-(\d+)-(\d+)$")
_LABEL_KEYS = ("Label", "LABEL", "label")  # PropertyKey.MULTI_STAGE_POSITION__LABEL's spellings
_VERSION = re.compile(r"^\s*(\d+)\.(\d+)")
_NUMBERED = re.compile(r"Pos(\d+)")


# --------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------


def summary_size(summary: dict[str, Any], axis: str) -> Optional[int]:
    """The size the summary declares for ``axis`` (one of AXES), None when undeclared."""
    key, intended_key = _SIZE_KEYS[axis]
    intended = summary.get("IntendedDimensions")
    for value in (intended.get(intended_key) if isinstance(intended, dict) else None,
                  summary.get(key)):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def undeclared_axes(summary: dict[str, Any]) -> list[str]:
    """IntendedDimensions axes other than channel, z, time, position (none can hold images)."""
    intended = summary.get("IntendedDimensions")
    known = {intended_key for _, intended_key in _SIZE_KEYS.values()}
    return sorted(str(axis) for axis in intended if axis not in known) \
        if isinstance(intended, dict) else []


def channel_names(summary: dict[str, Any]) -> list[str]:
    names = summary.get("ChNames")
    return [str(name) for name in names] if isinstance(names, list) else []


def position_labels(summary: dict[str, Any]) -> list[Optional[str]]:
    """Each stage position's label, in position-index order (None where it has none)."""
    positions = summary.get("InitialPositionList") or summary.get("StagePositions") or []
    if not isinstance(positions, list):
        return []
    labels: list[Optional[str]] = []
    for entry in positions:
        label = None
        if isinstance(entry, dict):
            label = next((entry[key] for key in _LABEL_KEYS if isinstance(entry.get(key), str)),
                         None)
        labels.append(label)
    return labels


def label_position(labels: list[Optional[str]], label: Any) -> Optional[int]:
    """The position whose label is ``label``, when exactly one position has it."""
    if not isinstance(label, str) or labels.count(label) != 1:
        return None
    return labels.index(label)


def numbered_position(name: str) -> Optional[int]:
    """n for ``Pos<n>``: Micro-Manager's name for a position without a label (its files, its
    folder), None for any other name."""
    numbered = _NUMBERED.fullmatch(name)
    return int(numbered[1]) if numbered else None


def version(summary: dict[str, Any]) -> Optional[str]:
    """"1.4" or "2.0" (major.minor of MicroManagerVersion), None when unknown."""
    match = _VERSION.match(str(summary.get("MicroManagerVersion", "")))
    return f"{match[1]}.{match[2]}" if match else None


# --------------------------------------------------------------------------
# An image's indexes
# --------------------------------------------------------------------------


def image_indexes(metadata: dict[str, Any], where: str) -> dict[str, int]:
    """The indexes Micro-Manager recorded for one image, by axis (only those it recorded).

    ``where`` names the metadata in errors, e.g. "x.ome.tif: page 3's MicroManagerMetadata";
    a ``{key}`` in it says where the key's name goes (else it is appended).
    """
    found: dict[str, int] = {}
    coords = metadata.get("completeCoords")
    if isinstance(coords, dict):
        _add_coords(found, coords, _at(where, "completeCoords"))
    for axis, keys in _INDEX_KEYS.items():
        for key in keys:
            if key in metadata:
                _add(found, axis, _index(metadata[key], _at(where, key)), _at(where, key))
    return found


def _at(where: str, key: str) -> str:
    return where.replace("{key}", key) if "{key}" in where else f"{where} {key}"


def coords_indexes(coords: dict[str, Any], where: str) -> dict[str, int]:
    """Indexes of a 2.0 metadata.txt ``Coords-<file>`` entry (gamma's keys, or alpha's axes)."""
    found = image_indexes(coords, where)
    _add_coords(found, coords, where)
    return found


def _add_coords(found: dict[str, int], coords: dict[str, Any], where: str) -> None:
    for name, axis in _COORDS_AXES.items():
        if name in coords:
            _add(found, axis, _index(coords[name], _at(where, name)), _at(where, name))


def _add(found: dict[str, int], axis: str, value: int, where: str) -> None:
    if axis in found and found[axis] != value:
        raise SplitterError(f"{where} is {value} but the same image's other {axis} index "
                            f"is {found[axis]}")
    found[axis] = value


def _index(value: Any, where: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SplitterError(f"{where} is {value!r}, not a non-negative integer index")
    return value


def check_positions_found(source: Path, wanted: Optional[Iterable[int]], available: set[int],
                          hint: str = "") -> None:
    """Refuse a CSV positions column that asks for positions the source does not hold."""
    missing = sorted(set(wanted or ()) - available)
    if missing:
        raise SplitterError(f"{source}: position(s) {', '.join(map(str, missing))} not found; "
                            f"available positions: {', '.join(map(str, sorted(available)))}{hint}")


def describe_index(index: FrameIndex) -> str:
    """A frame as the readers' errors name it: "(channel 1, slice 0, time 2, position 0)"."""
    return (f"(channel {index.channel}, slice {index.slice}, time {index.time}, "
            f"position {index.position})")


# --------------------------------------------------------------------------
# metadata.txt
# --------------------------------------------------------------------------


@dataclass
class ImageEntry:
    """What a metadata.txt says about one image file."""

    keys: list[str]  # the entries describing it, e.g. ["Coords-Pos0/img_...tif", "Metadata-..."]
    indexes: dict[str, int]
    metadata: dict[str, Any]

    def describe(self, path: Path) -> str:
        return f"{path} entry {' / '.join(repr(key) for key in self.keys)}"


@dataclass
class MetadataTxt:
    """A folder's metadata.txt: its Summary and every complete entry."""

    path: Path
    summary: dict[str, Any]
    entries: dict[str, Any] = field(default_factory=dict)  # all but the Summary, in file order
    warning: Optional[str] = None  # what a cut file lost

    def image_entries(self) -> dict[str, ImageEntry]:
        """The per-image entries by the base name of the file they describe."""
        images: dict[str, ImageEntry] = {}
        for key, value in self.entries.items():
            if not isinstance(value, dict):
                continue
            name = _entry_file(key, value)
            if name is None:
                continue
            where = f"{self.path} entry {key!r}"
            indexes = (coords_indexes(value, where) if key.startswith("Coords-")
                       else image_indexes(value, where))
            frame_key = _FRAME_KEY.match(key)
            if frame_key:  # 1.4 names the entry after the image's time, channel and slice
                for axis, number in zip(("time", "channel", "slice"), frame_key.groups()):
                    _add(indexes, axis, int(number), f"{where}'s own name")
            entry = images.setdefault(name, ImageEntry([], {}, {}))
            entry.keys.append(key)
            for axis, index in indexes.items():
                if axis in entry.indexes and entry.indexes[axis] != index:
                    raise SplitterError(
                        f"{self.path}: entries {' and '.join(map(repr, entry.keys))} give "
                        f"{name} {axis} {entry.indexes[axis]} and {index}")
                entry.indexes[axis] = index
            if not key.startswith("Coords-") or not entry.metadata:
                entry.metadata = {**entry.metadata, **value}
        return images


def _entry_file(key: str, value: dict[str, Any]) -> Optional[str]:
    for prefix in ("Coords-", "Metadata-"):
        if key.startswith(prefix):
            return os.path.basename(key[len(prefix):])
    if isinstance(value.get("FileName"), str):
        return os.path.basename(value["FileName"])
    return None


#: bytes of a metadata.txt: Micro-Manager writes a few KB per image, so a folder's file may
#: hold this much for its summary and this much more per image file; a larger one is refused
#: rather than read, since its JSON takes up to about 25 times its size in memory
METADATA_TXT_BASE = 16 * 2**20
METADATA_TXT_PER_FILE = 256 * 2**10


def read_metadata_txt(path: Path, image_files: int = 0) -> Optional[MetadataTxt]:
    """The metadata.txt of a folder of ``image_files`` image files, None when there is none.

    A cut file (no closing brace, or an entry half written) keeps its complete
    entries and gets a warning; anything else that is not JSON is refused, and
    so is one that is not a regular file, larger than a folder of that many images needs,
    or nested deeper than Python's JSON reader goes.
    """
    from ..input_files import read_text

    if not os.path.exists(path):
        return None
    try:
        text = read_text(path, "Micro-Manager metadata file",
                         METADATA_TXT_BASE + image_files * METADATA_TXT_PER_FILE)
    except InputError as exc:
        raise SplitterError(str(exc)) from None
    try:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return _read_cut(path, text)
    except RecursionError:
        raise SplitterError(f"{path} is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSON that Python cannot make: an integer of 5000 digits
        raise SplitterError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SplitterError(f"{path} must hold a JSON object with a 'Summary' key")
    summary = data.pop("Summary", {})
    return MetadataTxt(path, summary if isinstance(summary, dict) else {}, data)


def _read_cut(path: Path, text: str) -> MetadataTxt:
    entries, cut_inside = _complete_entries(path, text)
    count = len(entries)
    summary = entries.pop("Summary", None)
    result = MetadataTxt(path, summary if isinstance(summary, dict) else {}, entries)
    inside = "" if cut_inside is None else f", inside entry {count + 1} {cut_inside!r}"
    lost_summary = "" if summary is not None else "; its Summary is lost with it"
    result.warning = (
        f"{path.name}: cut after entry {count}{inside} (the acquisition stopped or is still "
        f"running); {len(result.image_entries())} image entries kept, the rest read from the "
        f"files' names/tags{lost_summary}")
    return result


_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"\s*")
# What may be left of a number or literal that the file ends in the middle of.
_TOKEN_PREFIX = re.compile(r"[-+.\deE]*|t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?")


def _complete_entries(path: Path, text: str) -> tuple[dict[str, Any], Optional[str]]:
    """The entries before the cut, and the key of the entry cut in two (None if none was).

    Micro-Manager writes ``{``, then ``"key": value`` entries joined by commas,
    then ``}`` at the very end: an error that runs to the end of the file is
    the cut; one before it means the file is damaged some other way.
    """
    entries: dict[str, Any] = {}
    position = _skip(text, 0)
    if position == len(text):
        return entries, None
    _expect(path, text, position, "{")
    position = _skip(text, position + 1)
    while position < len(text):
        if text[position] == "}":
            raise SplitterError(f"{path} is not valid JSON: text follows its closing brace "
                                f"at line {text.count(chr(10), 0, position) + 1}")
        if entries:
            _expect(path, text, position, ",")
            position = _skip(text, position + 1)
        key, position = _decode(path, text, position)
        if key is _CUT:
            return entries, None
        position = _skip(text, position)
        if position == len(text):
            return entries, str(key)
        _expect(path, text, position, ":")
        value, position = _decode(path, text, _skip(text, position + 1))
        if value is _CUT:
            return entries, str(key)
        entries[str(key)] = value
        position = _skip(text, position)
    return entries, None


_CUT = object()


def _decode(path: Path, text: str, position: int) -> tuple[Any, int]:
    if position == len(text):
        return _CUT, position
    try:
        return _DECODER.raw_decode(text, position)
    except json.JSONDecodeError as exc:
        rest = text[exc.pos:].strip()
        if exc.msg.startswith("Unterminated string") or _TOKEN_PREFIX.fullmatch(rest):
            return _CUT, len(text)
        raise SplitterError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} "
                            f"column {exc.colno}, before its end (not a cut file)") from None


def _expect(path: Path, text: str, position: int, char: str) -> None:
    if text[position] != char:
        line = text.count("\n", 0, position) + 1
        raise SplitterError(f"{path} is not valid JSON: expected {char!r} at line {line}, "
                            f"found {text[position]!r}")


def _skip(text: str, position: int) -> int:
    return _WHITESPACE.match(text, position).end()


def cut_warnings(metadata_txts: Iterable[Optional[MetadataTxt]]) -> list[str]:
    """The warnings of cut metadata.txt files."""
    return [txt.warning for txt in metadata_txts if txt is not None and txt.warning]
