"""The ``tif_id`` splitter: one TIFF file holding a stack described by its ImageDescription.

What a source means: one file. Its first page's ImageDescription says how its
pages fill the grid:

- an **ImageJ hyperstack** (``ImageJ=...``, ``channels=``, ``slices=``,
  ``frames=``, and the original imagingDB's ``positions=``): pages in
  ImageJ's order, channel fastest, then slice, then position, then time
  (frame) slowest, i.e. page ``i`` is channel ``i % C``, slice
  ``i // C % Z``...;
- anything else (a tifffile JSON shape, no description, another program's
  text): a **plain multi-page TIFF**, read as a z-stack, page ``i`` = slice ``i``.

A file with fewer pages than its description declares (an acquisition stopped
early) is stored as it is: the declared sizes are the dataset's dimensions
and the frames never written are its missing frames. More pages than
declared is an error. Channels are named ``channel<c>`` (an ImageJ file does
not name them). Global metadata: the parsed description, the file's origin,
and what the ``filename_parser`` reads from the file name (e.g.
``parse_ml_name``'s plate, stack number and protein); frame metadata: each
page's TIFF tags. Pages are read one at a time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pluggy

from ..acquisition import Acquisition, Dimensions, Frame, FrameIndex, SplitOptions, Splitter
from ..errors import SplitterError
from . import tiff_pages

hookimpl = pluggy.HookimplMarker("imagingdb")

#: ImageDescription keys giving the sizes, in page order (fastest first)
_IMAGEJ_SIZES = (("channel", "channels"), ("slice", "slices"), ("position", "positions"),
                 ("time", "frames"))


class TifIdSplitter(Splitter):
    """Splits one TIFF stack described by its ImageDescription (``frames_format: tif_id``)."""

    name = "tif_id"

    def open(self, source: "os.PathLike[str] | str", options: SplitOptions) -> "TifIdAcquisition":
        return TifIdAcquisition(Path(source), options)


@hookimpl
def register_splitters(register: Callable[[str, Callable[[], Splitter]], None]) -> None:
    register("tif_id", TifIdSplitter)


class TifIdAcquisition(Acquisition):
    """One TIFF stack: description and page count read at open, pages streamed."""

    def __init__(self, source: Path, options: SplitOptions):
        if not source.is_file():
            raise SplitterError(f"{source}: no such file" if not source.exists() else
                                f"{source} is a folder; tif_id takes one TIFF file "
                                "(use frames_format: tif_folder for a folder of TIFF files)")
        self.source = source
        with tiff_pages.opened(source) as tif:
            page = tiff_pages.first_page(tif, source)
            self._format = tiff_pages.PixelFormat.of(page, f"{source}: page 0")
            description = page.description or ""
            with tiff_pages.reading(f"{source}: page list"):
                self._nbr_pages = len(tif.pages)
            imagej = parse_imagej_description(description)
            self._sizes = _sizes(source, imagej, self._nbr_pages)
            _refuse_contiguous_block(tif, page, self._sizes, self._nbr_pages)
        self._positions = _selected_positions(source, self._sizes["position"], options.positions)
        name_meta = options.name_metadata(source)
        self.channel_names = [f"channel{c}" for c in range(self._sizes["channel"])]
        self.dims = Dimensions(
            nbr_channels=self._sizes["channel"], nbr_slices=self._sizes["slice"],
            nbr_timepoints=self._sizes["time"], nbr_positions=len(self._positions),
            im_height=self._format.shape[0], im_width=self._format.shape[1],
            im_colors=self._format.colors, bit_depth=self._format.dtype)
        self.global_meta = {
            **name_meta,
            "file_origin": str(source),
            "nbr_pages": self._nbr_pages,
            "image_description": imagej if imagej else description[:10000],
            "page_order": "channel, slice, position, time (channel fastest)" if imagej
            else "slice (plain multi-page TIFF)",
        }

    def index_of_page(self, number: int) -> FrameIndex:
        """Where page ``number`` sits: ImageJ's order, channel fastest, time slowest."""
        values = {}
        for axis, _key in _IMAGEJ_SIZES:
            number, values[axis] = divmod(number, self._sizes[axis])
        return FrameIndex(**values)

    def iter_frames(self, pixels: bool = True) -> Iterator[Frame]:
        source = self.source
        with tiff_pages.opened(source) as tif:
            pages = iter(tif.pages)
            for number in range(self._nbr_pages):
                where = f"{source}: page {number}"
                with tiff_pages.reading(where):
                    page = next(pages)
                    tiff_pages.check_data_in_file(tif, page, where)
                index = self.index_of_page(number)
                if index.position not in self._positions:
                    continue
                self._format.check_same(tiff_pages.PixelFormat.of(page, where), where, "page 0")
                yield Frame(
                    index=index,
                    channel_name=self.channel_names[index.channel],
                    metadata=tiff_pages.page_metadata(page),
                    pixels=tiff_pages.read_pixels(page, where) if pixels else None,
                    origin=f"page {number}",
                )


def parse_imagej_description(description: str) -> dict[str, Any]:
    """ImageJ's ``key=value`` lines as a dict (ints and booleans converted); {} if not ImageJ.

    The original imagingDB's ``positions=`` counts as ImageJ too.
    """
    entries: dict[str, Any] = {}
    for line in description.splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            continue
        value = value.strip()
        if value.lstrip("-").isdigit():
            entries[key.strip()] = int(value)
        elif value in ("true", "false"):
            entries[key.strip()] = value == "true"
        else:
            entries[key.strip()] = value
    if "ImageJ" in entries or any(key in entries for _axis, key in _IMAGEJ_SIZES):
        return entries
    return {}


def _sizes(source: Path, imagej: dict[str, Any], nbr_pages: int) -> dict[str, int]:
    """Axis sizes from the description; a plain stack is a z-stack of every page."""
    if not imagej:
        return {"channel": 1, "slice": nbr_pages, "position": 1, "time": 1}
    sizes = {}
    for axis, key in _IMAGEJ_SIZES:
        value = imagej.get(key, 1)
        if not isinstance(value, int) or value < 1:
            raise SplitterError(f"{source}: ImageDescription {key}={value!r} is not a "
                                "positive integer")
        sizes[axis] = value
    declared = sizes["channel"] * sizes["slice"] * sizes["position"] * sizes["time"]
    if declared == 1 and isinstance(imagej.get("images"), int) and imagej["images"] > 1:
        sizes["slice"] = declared = imagej["images"]  # ImageJ's plain stack: images=N only
    if nbr_pages > declared:
        raise SplitterError(
            f"{source} has {nbr_pages} pages but its ImageDescription declares {declared} "
            f"(channels={sizes['channel']}, slices={sizes['slice']}, "
            f"positions={sizes['position']}, frames={sizes['time']})")
    return sizes


def _refuse_contiguous_block(tif: Any, page: Any, sizes: dict[str, int], nbr_pages: int) -> None:
    """ImageJ writes files over 4 GB with one page directory for all images.

    Such a file is not an acquisition stopped after one image: its size shows
    the images that follow the first.
    """
    declared = sizes["channel"] * sizes["slice"] * sizes["position"] * sizes["time"]
    if nbr_pages == 1 and declared > 1 and tif.filehandle.size >= page.dataoffsets[0] + 2 * page.nbytes:
        raise SplitterError(
            f"{tif.filehandle.path} declares {declared} images in one contiguous block with a "
            "single page directory (ImageJ's format for files over 4 GB), which tif_id cannot "
            "split; re-save it with Fiji or tifffile, or store it whole with upload_type: file")


def _selected_positions(source: Path, nbr_positions: int,
                        wanted: Optional[list[int]]) -> set[int]:
    if wanted is None:
        return set(range(nbr_positions))
    outside = sorted(p for p in wanted if p >= nbr_positions)
    if outside:
        raise SplitterError(f"{source}: position(s) {', '.join(map(str, outside))} not found; "
                            f"the file holds positions 0-{nbr_positions - 1}")
    return set(wanted)
