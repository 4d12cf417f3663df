"""Micro-Manager NDTiff datasets (versions 2 and 3) as imagingdb frames, read with ``ndtiff``.

The full-resolution level's index (``NDTiff.index``) is read when the dataset
is opened: it lists every image's axes, file, offset, size and pixel type, so
dimensions, channel names and consistency are known before any pixel is read.
Pixels and each image's metadata are then read one image at a time. Where the
files are is :mod:`.layout`'s business; where each image goes in the grid,
:mod:`.placement`'s.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional

from imagingdb.acquisition import Acquisition, Dimensions, Frame, SplitOptions, Splitter
from imagingdb.errors import SplitterError
from imagingdb.splitters.micromanager import summary_size

from .layout import FULL_RESOLUTION, INDEX_FILE, DatasetLayout, locate
from .placement import PlacedImage, Placement, place

# Pixel type codes -> (dtype, colours): NDTiff 3 (ndtiff_file.SingleNDTiffReader) knows 10-,
# 11-, 12- and 14-bit codes besides 8-bit, 16-bit and 8-bit RGB; ndtiff's NDTiff 2 reader
# (old_format_version_readers/nd_tiff_v2.py) only the last three.
_PIXEL_TYPES = {0: ("uint8", 1), 1: ("uint16", 1), 2: ("uint8", 3), 3: ("uint16", 1),
                4: ("uint16", 1), 5: ("uint16", 1), 6: ("uint16", 1)}
_PIXEL_TYPES_V2 = {code: _PIXEL_TYPES[code] for code in (0, 1, 2)}


class NDTiffSplitter(Splitter):
    """Splits a Micro-Manager NDTiff dataset (``frames_format: ndtiff``)."""

    name = "ndtiff"

    def open(self, source: "os.PathLike[str] | str", options: SplitOptions) -> "NDTiffAcquisition":
        source = Path(source)
        layout = locate(source)
        if layout is None:
            where = "beside it" if source.is_file() else f"in it or in its '{FULL_RESOLUTION}' folder"
            raise SplitterError(f"{source}: not an NDTiff dataset (no {INDEX_FILE} {where}); "
                                "give the dataset folder, or choose another frames_format")
        if layout.given_level is not None:
            raise SplitterError(f"{source} is the {layout.given_level} level of the multi-resolution "
                                f"NDTiff dataset {layout.root}; give the dataset folder instead "
                                "(imagingdb stores its full resolution)")
        return NDTiffAcquisition(layout, options)


class NDTiffAcquisition(Acquisition):
    def __init__(self, layout: DatasetLayout, options: SplitOptions):
        self.source = layout.root
        self._level = _FullResolution(layout)
        try:
            summary = self._level.summary
            placement, self._format = self._place(layout)
            self._images = [image for image in placement.images
                            if options.positions is None or image.index.position in options.positions]
            _check_positions(layout.root, self._images, options.positions)
            if not self._images:
                raise SplitterError(f"{layout.root}: no image at the chosen positions")
            self.channel_names = self._channel_names(summary, placement)
        except BaseException:
            self.close()
            raise
        self.dims = _dimensions(summary, placement, self._images, self._format,
                                len(self.channel_names), whole=options.positions is None)
        self.global_meta = {**options.name_metadata(layout.root), **summary,
                            **_imagingdb_meta(layout, placement), "file_origin": str(layout.root)}
        self.kind = _kind(layout, placement)
        self.warnings = self._level.warnings + (_unlisted_data_warnings(
            layout.level, self._level.entries.values(), _PIXEL_TYPES) if layout.version[0] == 3 else [])

    def _place(self, layout: DatasetLayout) -> tuple[Placement, tuple[int, int, str, int]]:
        """Every image's index, and the (height, width, dtype, colours) they all share."""
        entries = self._level.entries
        if not entries:
            raise SplitterError(f"{layout.level}: the NDTiff dataset holds no image")
        pixel_types = _PIXEL_TYPES_V2 if layout.version[0] == 2 else _PIXEL_TYPES
        pixel_format = _common_format(layout.level, entries.values(), pixel_types)
        return place(layout.root, [dict(key) for key in entries], self._level.summary), pixel_format

    def iter_frames(self, pixels: bool = True) -> Iterator[Frame]:
        for image in self._images:
            metadata = self._level.read_metadata(image.axes)
            data = self._level.read_image(image.axes) if pixels else None
            yield Frame(image.index, self.channel_names[image.index.channel],
                        _with_labels(self.source, image, metadata),
                        _native(data) if data is not None else None,
                        origin=f"image {image.axes}")

    def _channel_names(self, summary: dict[str, Any], placement: Placement) -> list[str]:
        """Index -> name: the channel labels, else ChNames, else each channel's Channel metadata."""
        listed = summary.get("ChNames")
        declared = placement.channel_labels or ([str(name) for name in listed]
                                                if isinstance(listed, list) else [])
        first_image = {}
        for image in self._images:
            first_image.setdefault(image.index.channel, image)
        count = max(summary_size(summary, "channel") or 0, max(first_image) + 1)
        names = []
        for channel in range(count):
            if channel < len(declared):
                names.append(declared[channel])
            elif channel in first_image:
                names.append(self._named_in_metadata(first_image[channel]) or f"channel{channel}")
            else:
                names.append(f"channel{channel}")
        return names

    def _named_in_metadata(self, image: PlacedImage) -> Optional[str]:
        # AcqEngJ before NDTiff 3.2 numbered channels and named them only in each image's metadata.
        metadata = self._level.read_metadata(image.axes)
        name = metadata.get("Channel") if isinstance(metadata, dict) else None
        return str(name) if name else None

    def close(self) -> None:
        if self._level is not None:
            self._level.close()
            self._level = None


class _FullResolution:
    """The full-resolution level of an NDTiff dataset, opened with ndtiff's reader for its version.

    NDTiff 3 (single or multi-resolution): ``ndtiff.NDTiffDataset`` on the
    level's folder, which is what ``NDTiffPyramidDataset`` opens as its level 0,
    without also opening every downsampled level. NDTiff 2: ``ndtiff.Dataset``
    on the dataset folder, which picks ndtiff's NDTiff 2 reader and opens the
    full resolution only. Older versions have no index and are refused.
    """

    def __init__(self, layout: DatasetLayout):
        import ndtiff

        self.folder = layout.level
        major = layout.version[0]
        if major not in (2, 3):
            found = f"NDTiff version {major}" if major else "no readable NDTiff stack file"
            raise SplitterError(f"{layout.level}: {found}; imagingdb reads NDTiff 2 and 3 "
                                "(re-save it with a current Micro-Manager, or upload it whole "
                                "with upload_type: file)")
        if major == 2 and layout.level == layout.root:
            raise SplitterError(f"{layout.level}: an NDTiff 2 index outside a '{FULL_RESOLUTION}' "
                                "folder, where NDTiff 2 keeps it; restore the dataset's layout")
        # ndtiff prints progress on stdout, which imagingdb keeps for machine-readable output,
        # and warns (e.g. of an index a crashed acquisition left unterminated): keep those.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if major == 2:
                    self._dataset = ndtiff.Dataset(str(layout.root))
                    entries = self._dataset.res_levels[0].index
                else:
                    self._dataset = ndtiff.NDTiffDataset(str(layout.level))
                    entries = self._dataset.index
            except Exception as exc:  # a damaged index or stack raises struct/OS/plain errors
                raise SplitterError(f"{layout.level}: the NDTiff dataset cannot be read "
                                    f"({type(exc).__name__}: {exc}); check that its "
                                    f"{INDEX_FILE} and stack files were copied whole") from None
        self.entries = entries  # ndtiff's own index: {frozenset of axes: entry}
        self.summary = dict(self._dataset.summary_metadata or {})
        self.warnings = [f"{layout.level}: ndtiff: {warning.message}" for warning in caught]

    def read_image(self, axes: dict[str, Any]) -> Any:
        return self._read("image", self._dataset.read_image, axes)

    def read_metadata(self, axes: dict[str, Any]) -> Any:
        return self._read("metadata", self._dataset.read_metadata, axes)

    def _read(self, what: str, read: Any, axes: dict[str, Any]) -> Any:
        try:
            # channel=None: ndtiff's NDTiff 2 reader otherwise adds channel 0 to every lookup
            return read(**{"channel": None, **axes})
        except Exception as exc:  # ndtiff raises plain Exceptions on damaged files
            raise SplitterError(f"{self.folder}: the {what} of image {axes} cannot be read "
                                f"({type(exc).__name__}: {exc}); check that its stack files were "
                                "copied whole") from None

    def close(self) -> None:
        self._dataset.close()


def _unlisted_data_warnings(folder: Path, entries: Any, pixel_types: dict[int, tuple[str, int]]
                            ) -> list[str]:
    """Say so when an NDTiff 3 stack file goes on after the last image the index lists.

    NDTiff's writers end each stack file with its last image's metadata, and the
    index lists every image written: bytes after the last one listed mean an
    index cut short (copied before the acquisition finished, or a copy gone
    wrong). Only the images it lists can be placed; the others are missing frames.
    """
    ends: dict[str, int] = {}
    for entry in entries:
        colours_bytes = pixel_types.get(entry["pixel_type"])
        if colours_bytes is None:
            return []
        dtype, colours = colours_bytes
        pixels = entry["image_width"] * entry["image_height"] * colours * (2 if dtype == "uint16" else 1)
        end = max(entry["pix_offset"] + pixels, entry["metadata_offset"] + entry["metadata_length"])
        ends[entry["filename"]] = max(ends.get(entry["filename"], 0), end)
    warnings = []
    for name, end in sorted(ends.items()):
        try:
            extra = (folder / name).stat().st_size - end
        except OSError:
            continue
        if extra > 0:
            warnings.append(f"{folder / name}: {extra} bytes after the last image {INDEX_FILE} lists: "
                            "the index may have been cut short (copied before the acquisition "
                            "finished?); the images it does not list are recorded as missing frames")
    return warnings


def _common_format(folder: Path, entries: Any, pixel_types: dict[int, tuple[str, int]]
                   ) -> tuple[int, int, str, int]:
    """(height, width, dtype, colours) shared by every image, from the index alone."""
    formats = set()
    for entry in entries:
        pixel_type = pixel_types.get(entry["pixel_type"])
        if pixel_type is None:
            raise SplitterError(f"{folder}: unknown NDTiff pixel type {entry['pixel_type']}")
        formats.add((entry["image_height"], entry["image_width"], *pixel_type))
    if len(formats) > 1:
        raise SplitterError(f"{folder}: images differ in size or pixel type "
                            f"({', '.join(map(str, sorted(formats)))}); all frames of a "
                            "dataset must share them")
    return formats.pop()


def _check_positions(folder: Path, images: list[PlacedImage], wanted: Optional[list[int]]) -> None:
    if wanted is None:
        return
    missing = sorted(set(wanted) - {image.index.position for image in images})
    if missing:
        raise SplitterError(f"{folder}: position(s) {', '.join(map(str, missing))} not found")


def _with_labels(folder: Path, image: PlacedImage, metadata: Any) -> dict[str, Any]:
    """The image's own metadata plus the labels its index stands for (position name, tile)."""
    metadata = dict(metadata) if isinstance(metadata, dict) else {"metadata": metadata}
    for key, value in image.labels.items():
        if key in metadata and metadata[key] != value:
            raise SplitterError(f"{folder}: image {image.axes} has metadata {key}={metadata[key]!r}, "
                                f"which imagingdb would overwrite with its NDTiff axis value {value!r}")
        metadata[key] = value
    return metadata


def _dimensions(summary: dict[str, Any], placement: Placement, images: list[PlacedImage],
                pixel_format: tuple[int, int, str, int], nbr_channels: int, whole: bool) -> Dimensions:
    def size(axis: str) -> int:  # axis: a FrameIndex field, named as summary_size names it
        found = max(getattr(image.index, axis) for image in images) + 1
        return max(summary_size(summary, axis) or 0, found)

    positions = len({image.index.position for image in images})
    if whole and not placement.tiles:  # positions never reached still count; tiles only exist if imaged
        positions = max(positions, summary_size(summary, "position") or 0,
                        len(placement.position_names or []))
    height, width, dtype, colors = pixel_format
    return Dimensions(
        nbr_channels=nbr_channels,
        nbr_slices=size("slice"),
        nbr_timepoints=size("time"),
        nbr_positions=positions,
        im_height=height, im_width=width, im_colors=colors, bit_depth=dtype,
    )


def _imagingdb_meta(layout: DatasetLayout, placement: Placement) -> dict[str, Any]:
    """What the global metadata says beyond the summary: version, labels, tiles, levels."""
    meta: dict[str, Any] = {"ndtiff_version": layout.version_text}
    if placement.position_names is not None:
        meta["position_names"] = placement.position_names
    if placement.tiles:
        meta["tiles"] = [{"position": position, "row": row, "column": column}
                         for position, (row, column) in enumerate(placement.tiles)]
    if layout.multi_resolution:
        meta["resolution_levels"] = {"stored": FULL_RESOLUTION, "not_stored": list(layout.downsampled)}
    return meta


def _kind(layout: DatasetLayout, placement: Placement) -> str:
    """What the dataset is, in words, now that its index has been read."""
    pyramid = "multi-resolution " if layout.multi_resolution else ""
    what = f"Micro-Manager NDTiff {layout.version_text} {pyramid}dataset"
    if placement.tiles:
        what += (f" (Explore/Magellan tiles): {len(placement.tiles)} row/column tile(s) stored as "
                 "positions in row-major order")
    if layout.multi_resolution:
        what += f", full resolution only (not its {', '.join(layout.downsampled)})"
    if placement.position_names is not None:
        what += f", positions by label ({_describe_position_names(placement.position_names)})"
    return what


def _describe_position_names(names: list[Optional[str]]) -> str:
    """The labels in index order, and the positions a gap in Pos<n> labels leaves without one."""
    labelled = ", ".join(name for name in names if name is not None)
    gaps: list[list[int]] = []  # [first, last] runs, so that Pos0 and Pos5000 stay one line
    for number, name in enumerate(names):
        if name is None and gaps and gaps[-1][1] == number - 1:
            gaps[-1][1] = number
        elif name is None:
            gaps.append([number, number])
    if not gaps:
        return labelled
    runs = ", ".join(f"{first}" if first == last else f"{first}-{last}" for first, last in gaps)
    plural = "s" if len(gaps) > 1 or gaps[0][0] != gaps[0][1] else ""
    return f"{labelled}; position{plural} {runs}: no image"


def _native(pixels: Any) -> Any:
    """A C-contiguous, native-endian copy-free view where possible."""
    import numpy as np

    pixels = np.asarray(pixels)
    if not pixels.dtype.isnative:
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    return np.ascontiguousarray(pixels)
