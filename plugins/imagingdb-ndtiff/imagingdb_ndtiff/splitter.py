"""Micro-Manager 2 NDTiff datasets as imagingdb frames, read with the ``ndtiff`` package.

The dataset's index (``NDTiff.index``) is read when it is opened: it lists
every image's axes, file, offset, size and pixel type, so dimensions, channel
names and consistency are known before any pixel is read. Pixels and each
image's metadata are then read one image at a time.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from imagingdb.acquisition import Acquisition, Dimensions, Frame, FrameIndex, SplitOptions, Splitter
from imagingdb.errors import SplitterError

INDEX_FILE = "NDTiff.index"
#: NDTiff axis -> imagingdb axis; any other axis (row, column of tiles) is refused
AXES = {"channel": "channel", "z": "slice", "time": "time", "position": "position"}
# ndtiff's pixel type codes (ndtiff_file.SingleNDTiffReader)
_PIXEL_TYPES = {0: ("uint8", 1), 1: ("uint16", 1), 2: ("uint8", 3), 3: ("uint16", 1),
                4: ("uint16", 1), 5: ("uint16", 1), 6: ("uint16", 1)}


class NDTiffSplitter(Splitter):
    """Splits a Micro-Manager 2 NDTiff dataset (``frames_format: ndtiff``)."""

    name = "ndtiff"

    def open(self, source: "os.PathLike[str] | str", options: SplitOptions) -> "NDTiffAcquisition":
        return NDTiffAcquisition(_dataset_folder(Path(source)), options)


@dataclass(frozen=True)
class _Image:
    axes: dict[str, Any]  # the NDTiff coordinates, to read the image back
    index: FrameIndex
    channel_name: str


class NDTiffAcquisition(Acquisition):
    def __init__(self, folder: Path, options: SplitOptions):
        self.source = folder
        self._dataset = _open_dataset(folder)
        try:
            summary = dict(self._dataset.summary_metadata or {})
            entries = dict(self._dataset.index)
            if not entries:
                raise SplitterError(f"{folder}: the NDTiff dataset holds no image")
            self._format = _common_format(folder, entries.values())
            self._images = _place_images(folder, self._dataset, summary, entries.keys())
            self._images = [image for image in self._images
                            if options.positions is None or image.index.position in options.positions]
            _check_positions(folder, self._images, options.positions)
        except BaseException:
            self.close()
            raise
        self.channel_names = _channel_names(summary, self._images)
        self.dims = _dimensions(summary, self._images, self._format, len(self.channel_names))
        self.global_meta = {**options.name_metadata(folder), **summary, "file_origin": str(folder)}

    def iter_frames(self, pixels: bool = True) -> Iterator[Frame]:
        for image in self._images:
            where = f"{self.source}: image {image.axes}"
            try:
                metadata = self._dataset.read_metadata(**image.axes)
                data = self._dataset.read_image(**image.axes) if pixels else None
            except Exception as exc:  # ndtiff raises plain Exceptions on damaged files
                raise SplitterError(f"{where} cannot be read ({type(exc).__name__}: {exc})") from None
            yield Frame(image.index, image.channel_name,
                        metadata if isinstance(metadata, dict) else {"metadata": metadata},
                        _native(data) if data is not None else None,
                        origin=f"image {image.axes}")

    def close(self) -> None:
        if self._dataset is not None:
            self._dataset.close()
            self._dataset = None


def _dataset_folder(source: Path) -> Path:
    folder = source.parent if source.name == INDEX_FILE else source
    if not (folder / INDEX_FILE).is_file():
        raise SplitterError(f"{source}: not an NDTiff dataset (no {INDEX_FILE} in the folder)")
    return folder


def _open_dataset(folder: Path) -> Any:
    import ndtiff

    # ndtiff prints its progress on stdout, which imagingdb keeps for machine-readable output.
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            dataset = ndtiff.Dataset(str(folder))
    except Exception as exc:  # a damaged index or stack raises struct/OS/plain errors
        raise SplitterError(f"{folder}: the NDTiff dataset cannot be read "
                            f"({type(exc).__name__}: {exc})") from None
    if not hasattr(dataset, "index"):
        raise SplitterError(f"{folder}: a multi-resolution (Explore) NDTiff dataset; "
                            "only single-resolution datasets can be split into frames")
    return dataset


def _common_format(folder: Path, entries: Any) -> tuple[int, int, str, int]:
    """(height, width, dtype, colours) shared by every image, from the index alone."""
    formats = set()
    for entry in entries:
        pixel_type = _PIXEL_TYPES.get(entry["pixel_type"])
        if pixel_type is None:
            raise SplitterError(f"{folder}: unknown NDTiff pixel type {entry['pixel_type']}")
        formats.add((entry["image_height"], entry["image_width"], *pixel_type))
    if len(formats) > 1:
        raise SplitterError(f"{folder}: images differ in size or pixel type "
                            f"({', '.join(map(str, sorted(formats)))}); all frames of a "
                            "dataset must share them")
    return formats.pop()


def _place_images(folder: Path, dataset: Any, summary: dict[str, Any], keys: Any) -> list[_Image]:
    """Every image's FrameIndex and channel name, from its NDTiff axes."""
    coordinates = [dict(key) for key in keys]
    unknown = sorted({axis for axes in coordinates for axis in axes} - set(AXES))
    if unknown:
        raise SplitterError(f"{folder}: NDTiff axes {', '.join(unknown)} are not supported; "
                            f"frames are indexed by {', '.join(AXES)}")
    channel_index = _channel_index(folder, summary, coordinates)
    images = []
    for axes in coordinates:
        values = {}
        for axis, name in AXES.items():
            value = axes.get(axis, 0)
            if axis == "channel" and isinstance(value, str):
                value = channel_index[value]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SplitterError(f"{folder}: image {axes} has {axis} {value!r}, not an index "
                                    "of 0 or more")
            values[name] = value
        channel = axes.get("channel", 0)
        name = channel if isinstance(channel, str) else _channel_label(dataset, summary, axes)
        images.append(_Image(axes, FrameIndex(**values), name))
    return sorted(images, key=lambda image: (image.index.position, image.index.time,
                                             image.index.slice, image.index.channel))


def _channel_index(folder: Path, summary: dict[str, Any],
                   coordinates: list[dict[str, Any]]) -> dict[str, int]:
    """Channel name -> index: the summary's ChNames order, else sorted order."""
    names = {axes["channel"] for axes in coordinates if isinstance(axes.get("channel"), str)}
    declared = [str(name) for name in summary.get("ChNames") or []]
    if names and names <= set(declared):
        return {name: declared.index(name) for name in names}
    return {name: number for number, name in enumerate(sorted(names))}


def _channel_label(dataset: Any, summary: dict[str, Any], axes: dict[str, Any]) -> str:
    channel = axes.get("channel", 0)
    declared = summary.get("ChNames") or []
    if channel < len(declared):
        return str(declared[channel])
    try:
        metadata = dataset.read_metadata(**axes)
    except Exception:  # noqa: BLE001 - iter_frames reports unreadable images
        metadata = {}
    name = metadata.get("Channel") if isinstance(metadata, dict) else None
    return str(name) if name else f"channel{channel}"


def _check_positions(folder: Path, images: list[_Image], wanted: Optional[list[int]]) -> None:
    if wanted is None:
        return
    missing = sorted(set(wanted) - {image.index.position for image in images})
    if missing:
        raise SplitterError(f"{folder}: position(s) {', '.join(map(str, missing))} not found")


def _channel_names(summary: dict[str, Any], images: list[_Image]) -> list[str]:
    by_index = {image.index.channel: image.channel_name for image in images}
    count = max(_intended(summary, "channel") or 0, max(by_index) + 1)
    return [by_index.get(c, f"channel{c}") for c in range(count)]


def _intended(summary: dict[str, Any], axis: str) -> Optional[int]:
    """An axis' size in the summary's IntendedDimensions (Micro-Manager 2), if any."""
    intended = summary.get("IntendedDimensions")
    value = intended.get(axis) if isinstance(intended, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _dimensions(summary: dict[str, Any], images: list[_Image], pixel_format: tuple[int, int, str, int],
                nbr_channels: int) -> Dimensions:
    def size(axis: str, attribute: str) -> int:
        found = max(getattr(image.index, attribute) for image in images) + 1
        return max(_intended(summary, axis) or 0, found)

    height, width, dtype, colors = pixel_format
    return Dimensions(
        nbr_channels=nbr_channels,
        nbr_slices=size("z", "slice"),
        nbr_timepoints=size("time", "time"),
        nbr_positions=len({image.index.position for image in images}),
        im_height=height, im_width=width, im_colors=colors, bit_depth=dtype,
    )


def _native(pixels: Any) -> Any:
    """A C-contiguous, native-endian copy-free view where possible."""
    import numpy as np

    pixels = np.asarray(pixels)
    if not pixels.dtype.isnative:
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    return np.ascontiguousarray(pixels)
