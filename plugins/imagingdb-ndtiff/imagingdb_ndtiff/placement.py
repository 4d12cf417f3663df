"""Where each NDTiff image goes in imagingdb's (channel, slice, time, position) grid.

NDTiff names an image by its axes, e.g. ``{"channel": "DAPI", "z": 3, "time": 0}``
or ``{"row": 1, "column": -2, "channel": 0}``. Numbers are kept as they are;
labels (NDTiff 3.2 lets any axis hold strings) become indexes in an order the
dataset gives, and are kept beside the index so that no label is ever
separated from its frames:

- channel labels: the summary's ``ChNames`` when it lists each label once,
  else sorted order;
- position labels, in the first of these that fits:

  1. the summary's ``StagePositions`` (Micro-Manager's position list, read by
     :func:`imagingdb.splitters.micromanager.position_labels`, which knows each
     spelling of the key: ``Label``, and 2.0's ``label``) when it lists each
     label once: a position's place in that list is its index;
  2. labels that are all Micro-Manager's own ``Pos<n>``, each n once and below
     the position count the summary declares (if it declares one): position n.
     Micro-Manager names the position at index n of its list ``Pos<n>``, and
     imagingdb's ``ome_tiff`` splitter reads ``Pos<n>`` as n, so an acquisition
     gets the same positions whether it was saved as NDTiff or OME-TIFF. A gap
     stays a gap: of Pos0, Pos2 and Pos3 (Pos1 skipped, or never reached), Pos2
     is position 2 and position 1 is missing. Closing the gap (Pos2 at 1) would
     store Pos2 where the acquisition's own numbering, and every other copy of
     it, has Pos1. A label at or beyond the declared count cannot be an index
     (positions were renamed or removed from the list): the labels then go by 3;
  3. natural order (``Pos2`` before ``Pos10``, case aside), not the order the
     images were written, which is only the order in which the acquisition
     visited the positions.

  ndtiff's own ``as_array()`` stacks labelled positions in text order (Pos10
  before Pos2) and closes gaps; for a full Pos0 to Pos9 (NDStorage's
  labeled_positions test data) that is the same order. Beyond Pos9, or with a
  gap, imagingdb follows Micro-Manager's numbering instead; every frame keeps
  its label either way;
- row/column tiles (Explore, Magellan, stitched datasets): each tile that has
  an image is a position, in row-major order (by row, then column; rows and
  columns may be negative). A dataset with both positions and tiles is refused:
  imagingdb has one position axis, and folding both into it would lose which
  is which.

Any other axis, and a z or time that is not a number of 0 or more, is refused:
imagingdb never guesses what an axis means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from imagingdb.acquisition import FrameIndex
from imagingdb.errors import SplitterError
from imagingdb.splitters.micromanager import position_labels, summary_size
from imagingdb.splitters.tiff_pages import natural_key

#: NDTiff axis -> FrameIndex field
AXES = {"channel": "channel", "z": "slice", "time": "time", "position": "position"}
TILE_AXES = ("row", "column")
#: axes whose values may be labels (strings) rather than numbers
LABELLED_AXES = ("channel", "position")
_LAST_RESORT = "upload the dataset whole with upload_type: file"
#: the label Micro-Manager gives the position at index n of its position list
_NUMBERED_POSITION = re.compile(r"Pos([0-9]+)")


@dataclass(frozen=True)
class PlacedImage:
    axes: dict[str, Any]  # the NDTiff coordinates, to read the image back
    index: FrameIndex
    labels: dict[str, Any]  # what imagingdb adds to the frame's metadata: position_name, row, column


@dataclass
class Placement:
    images: list[PlacedImage]  # sorted by position, time, slice, channel
    channel_labels: Optional[list[str]] = None  # index -> label, when channels are labels
    #: index -> label, when positions are labels; None at a Pos<n> gap (see the module docstring)
    position_names: Optional[list[Optional[str]]] = None
    tiles: list[tuple[int, int]] = field(default_factory=list)  # position -> (row, column)


def place(folder: Path, coordinates: list[dict[str, Any]], summary: dict[str, Any]) -> Placement:
    """Every image's FrameIndex, and the label tables that explain the indexes."""
    _check_axes(folder, coordinates)
    channel_labels = _labels(coordinates, "channel", summary.get("ChNames"), sorted)
    position_names = _labels(coordinates, "position", position_labels(summary),
                             lambda found: _positions_by_label(found, summary_size(summary, "position")))
    tiles = sorted({(axes["row"], axes["column"]) for axes in coordinates if "row" in axes})
    channel_of = {label: number for number, label in enumerate(channel_labels or [])}
    position_of = {label: number for number, label in enumerate(position_names or [])
                   if label is not None}
    tile_of = {tile: number for number, tile in enumerate(tiles)}
    images, placed = [], {}
    for axes in coordinates:
        values, labels = {}, {}
        for axis, name in AXES.items():
            value = axes.get(axis, 0)
            if axis == "channel" and isinstance(value, str):
                value = channel_of[value]
            elif axis == "position" and isinstance(value, str):
                labels["position_name"] = value
                value = position_of[value]
            elif axis == "position" and tiles:
                labels.update(row=axes["row"], column=axes["column"])
                value = tile_of[axes["row"], axes["column"]]
            if value < 0:
                raise SplitterError(f"{folder}: image {axes} has {axis} {value}, not an index of "
                                    f"0 or more; imagingdb stores indexes from 0 ({_LAST_RESORT})")
            values[name] = value
        image = PlacedImage(axes, FrameIndex(**values), labels)
        if image.index in placed:  # e.g. {"z": 0} beside {}: an absent axis reads as 0
            raise SplitterError(f"{folder}: images {placed[image.index]} and {axes} would both be "
                                f"frame {image.index}; the dataset's axes do not tell them apart "
                                f"({_LAST_RESORT})")
        placed[image.index] = axes
        images.append(image)
    images.sort(key=lambda image: (image.index.position, image.index.time,
                                   image.index.slice, image.index.channel))
    return Placement(images, channel_labels, position_names, tiles)


def _check_axes(folder: Path, coordinates: list[dict[str, Any]]) -> None:
    """Refuse any axis, or mix of axes, whose meaning imagingdb would have to guess."""
    names = {axis for axes in coordinates for axis in axes}
    unknown = sorted(names - set(AXES) - set(TILE_AXES))
    if unknown:
        raise SplitterError(f"{folder}: NDTiff axes {', '.join(unknown)} are not supported; frames "
                            "are indexed by channel, z, time, position and row/column tiles "
                            f"({_LAST_RESORT})")
    if names & set(TILE_AXES) and "position" in names:
        raise SplitterError(f"{folder}: an NDTiff dataset with both position and row/column axes "
                            "(tiles at several positions); imagingdb stores tiles as positions "
                            f"and cannot keep both apart ({_LAST_RESORT})")
    for axes in coordinates:
        if names & set(TILE_AXES) and not set(TILE_AXES) <= set(axes):
            raise SplitterError(f"{folder}: image {axes} lacks a row or column in a tiled NDTiff "
                                f"dataset, so it has no tile to be stored at ({_LAST_RESORT})")
    for axis in sorted(names):
        _check_values(folder, axis, {_value_kind(axes[axis]) for axes in coordinates if axis in axes})


def _check_values(folder: Path, axis: str, kinds: set[str]) -> None:
    if kinds == {"number"} or (kinds == {"label"} and axis in LABELLED_AXES):
        return
    if len(kinds) > 1:
        problem = f"holds both {' and '.join(sorted(kinds))} values, whose indexes could collide"
    elif kinds == {"label"}:
        problem = f"holds labels, not numbers, and imagingdb does not guess the order of {axis} labels"
    else:
        problem = f"holds {kinds.pop()} values, not numbers"
    raise SplitterError(f"{folder}: NDTiff axis {axis} {problem} ({_LAST_RESORT})")


def _value_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "number"
    return "label" if isinstance(value, str) else type(value).__name__


def _labels(coordinates: list[dict[str, Any]], axis: str, declared: Any,
            undeclared: Callable[[set[str]], list[Optional[str]]]) -> Optional[list[Optional[str]]]:
    """An axis' labels in index order: ``declared`` when it lists each label found once, else
    ``undeclared(found)`` (see the module docstring); None if the axis holds numbers."""
    found = {axes[axis] for axes in coordinates if isinstance(axes.get(axis), str)}
    if not found:
        return None
    declared = list(declared) if isinstance(declared, list) else []
    if (all(isinstance(label, str) for label in declared) and len(set(declared)) == len(declared)
            and found <= set(declared)):
        return declared
    return undeclared(found)


def _positions_by_label(found: set[str], declared_count: Optional[int]) -> list[Optional[str]]:
    """Pos<n> at n when every label is one and fits the declared count, else natural order."""
    numbers = {label: int(match[1]) for label in found
               if (match := _NUMBERED_POSITION.fullmatch(label))}
    if (len(numbers) == len(found) and len(set(numbers.values())) == len(found)
            and (declared_count is None or max(numbers.values()) < declared_count)):
        names: list[Optional[str]] = [None] * (max(numbers.values()) + 1)
        for label, number in numbers.items():
            names[number] = label
        return names
    return sorted(found, key=lambda label: (natural_key(label), label))
