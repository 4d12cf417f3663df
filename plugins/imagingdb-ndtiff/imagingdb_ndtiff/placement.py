"""Where each NDTiff image goes in imagingdb's (channel, slice, time, position) grid.

NDTiff names an image by its axes, e.g. ``{"channel": "DAPI", "z": 3, "time": 0}``
or ``{"row": 1, "column": -2, "channel": 0}``. Numbers are kept as they are;
labels (NDTiff 3.2 lets any axis hold strings) become indexes in an order the
dataset gives, and are kept beside the index so that no label is ever
separated from its frames:

- channel labels: the summary's ``ChNames`` when it lists each label once,
  else sorted order;
- position labels: the summary's ``StagePositions`` labels (Micro-Manager's
  position list, read by :func:`imagingdb.splitters.micromanager.position_labels`,
  which knows each spelling of their key: ``Label``, and 2.0's ``label``) when
  it lists each label once, else sorted order. Sorted,
  not the order images were written: it does not depend on the order in which
  an acquisition happened to visit the positions, and it is the order in which
  ndtiff's own ``as_array()`` stacks them (NDStorage's labeled_positions test
  pins it), so imagingdb's position i is ndtiff's position i;
- row/column tiles (Explore, Magellan, stitched datasets): each tile that has
  an image is a position, in row-major order (by row, then column; rows and
  columns may be negative). A dataset with both positions and tiles is refused:
  imagingdb has one position axis, and folding both into it would lose which
  is which.

Any other axis, and a z or time that is not a number of 0 or more, is refused:
imagingdb never guesses what an axis means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from imagingdb.acquisition import FrameIndex
from imagingdb.errors import SplitterError
from imagingdb.splitters.micromanager import position_labels

#: NDTiff axis -> FrameIndex field
AXES = {"channel": "channel", "z": "slice", "time": "time", "position": "position"}
TILE_AXES = ("row", "column")
#: axes whose values may be labels (strings) rather than numbers
LABELLED_AXES = ("channel", "position")
_LAST_RESORT = "upload the dataset whole with upload_type: file"


@dataclass(frozen=True)
class PlacedImage:
    axes: dict[str, Any]  # the NDTiff coordinates, to read the image back
    index: FrameIndex
    labels: dict[str, Any]  # what imagingdb adds to the frame's metadata: position_name, row, column


@dataclass
class Placement:
    images: list[PlacedImage]  # sorted by position, time, slice, channel
    channel_labels: Optional[list[str]] = None  # index -> label, when channels are labels
    position_names: Optional[list[str]] = None  # index -> label, when positions are labels
    tiles: list[tuple[int, int]] = field(default_factory=list)  # position -> (row, column)


def place(folder: Path, coordinates: list[dict[str, Any]], summary: dict[str, Any]) -> Placement:
    """Every image's FrameIndex, and the label tables that explain the indexes."""
    _check_axes(folder, coordinates)
    channel_labels = _labels(coordinates, "channel", summary.get("ChNames"))
    position_names = _labels(coordinates, "position", position_labels(summary))
    tiles = sorted({(axes["row"], axes["column"]) for axes in coordinates if "row" in axes})
    channel_of = {label: number for number, label in enumerate(channel_labels or [])}
    position_of = {label: number for number, label in enumerate(position_names or [])}
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


def _labels(coordinates: list[dict[str, Any]], axis: str, declared: Any) -> Optional[list[str]]:
    """An axis' labels in index order (see the module docstring); None if it holds numbers."""
    found = {axes[axis] for axes in coordinates if isinstance(axes.get(axis), str)}
    if not found:
        return None
    declared = list(declared) if isinstance(declared, list) else []
    if (all(isinstance(label, str) for label in declared) and len(set(declared)) == len(declared)
            and found <= set(declared)):
        return declared
    return sorted(found)

