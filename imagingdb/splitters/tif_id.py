"""The ``tif_id`` splitter: one TIFF file, its pages placed by the dimensions the file declares.

What a source means: one file. Where each page goes is what the file itself
declares, looked for in this order:

1. **OME-XML** in page 0's ImageDescription: read exactly as ``ome_tiff``
   reads an OME-TIFF that Micro-Manager did not write (:mod:`.ome_xml`).
   A file with several OME Images, or one file of a multi-file set, is
   refused, naming ``ome_tiff``.
2. an **ImageJ header** (:mod:`.imagej`) in the first ImageDescription, or in
   the second (where Micro-Manager writes it): ``channels=``, ``slices=``,
   ``frames=`` and the original imagingDB's ``positions=``; pages run channel
   fastest, then slice, position, time, or z fastest with ``order=zct``. A
   stack declaring only ``images=N`` runs along ``sequence_axis``, as a plain
   multi-page TIFF does (4. below). ImageJ's ``Info``, ``Labels`` (each
   page's own label also in its frame's metadata, as ``Label``), display
   ``Ranges``, LUTs and the whole header (``spacing``, ``unit``,
   ``finterval``...) are kept; the pixel size, z step and frame interval also
   as ``physical_size``.
3. **tifffile's shaped description** (``{"shape": [...], "axes": "TZCYX"}``):
   pages in C order over the axes before YX: ``T`` time, ``Z`` slices, ``C``
   channels; each size must be a positive integer. Without axes, or with
   tifffile's unknown ``Q``/sequence ``I``, one dimension over 1 is a sequence
   (below); more cannot be placed and are refused.
4. anything else: a **plain multi-page TIFF**, page ``i`` = slice ``i``
   (time ``i`` with the upload config's ``sequence_axis: t``).

Refused, naming the format that reads them: Micro-Manager files (their
MicroManagerMetadata places each page: ``ome_tiff``, or ``tif_folder`` for a
folder of single images) and NDTiff stacks (``ndtiff``).

A file with fewer pages than it declares, whose page chain ends as a writer
ends it (an acquisition stopped early), is stored as it is, with a warning:
the declared sizes are the dataset's dimensions and the pages never written
are its missing frames. A file whose chain breaks, or whose tags or pixels
run past its end, was cut (a copy gone wrong) and is refused, whatever it
declares: a plain stack cannot say how many pages it had, and storing the
rest of a declared one would record as never acquired frames that exist.
More pages than declared is an error, and so is a declaration no acquisition
could have
(``tiff_pages.check_declared_frames``: over 10 million frames, or over 1000
per page once past 100,000), checked before anything is sized from it.
Channels are named ``channel<c>`` (ImageJ and tifffile do not name them).
Global metadata: the parsed description, the file's origin, and what
the ``filename_parser`` reads from the file name (e.g. ``parse_ml_name``'s
plate, stack number and protein); frame metadata: each page's TIFF tags.
Pages are read one at a time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import pluggy

from ..acquisition import (
    LIKELY,
    POSSIBLE,
    Acquisition,
    Dimensions,
    Frame,
    FrameIndex,
    SourceClaim,
    SplitOptions,
    Splitter,
)
from ..errors import SplitterError
from . import imagej, ome_xml, tiff_pages

if TYPE_CHECKING:
    import tifffile

hookimpl = pluggy.HookimplMarker("imagingdb")

#: the grid's axes, from their one owner: micromanager.AXES spells the same, but belongs to
#: Micro-Manager's metadata, which a plain TIFF stack has nothing to do with
_AXES = tuple(axis.name for axis in fields(FrameIndex))
_SHAPED_AXES = {"C": "channel", "Z": "slice", "T": "time"}
_SEQUENCE_LETTERS = "IQ"  # tifffile's "image sequence" and "unknown" axes


class TifIdSplitter(Splitter):
    """Splits one TIFF stack by the dimensions it declares (``frames_format: tif_id``)."""

    name = "tif_id"

    def open(self, source: "os.PathLike[str] | str", options: SplitOptions) -> Acquisition:
        source = Path(source)
        if _first_look(source):
            return ome_xml.OmeXmlAcquisition(source, options, reader="tif_id")
        return TifIdAcquisition(source, options)


@hookimpl
def register_splitters(register: Callable[[str, Callable[[], Splitter]], None]) -> None:
    register("tif_id", TifIdSplitter)


def _first_look(source: Path) -> bool:
    """Refuse what tif_id must not split; True if the file's dimensions are in OME-XML."""
    if not source.is_file():
        raise (SplitterError(f"{source}: no such file") if not source.exists()
               else _refuse_folder(source))
    with tiff_pages.opened(source) as tif:
        page = tiff_pages.first_page(tif, source)
        if tiff_pages.is_ndtiff(tif):
            raise SplitterError(f"{source} is an NDTiff stack, placed by its NDTiff.index: "
                                "upload its folder with frames_format: ndtiff")
        if tiff_pages.has_micromanager_metadata(page):
            # an OME-TIFF declares itself by its OME-XML, or by its name where Micro-Manager
            # wrote the OME-XML into another file of the set
            is_ome = (ome_xml.looks_like_ome(page.description)
                      or tiff_pages.has_ome_suffix(source.name))
            right = "ome_tiff" if is_ome else "tif_folder for its folder"
            raise SplitterError(f"{source} is a Micro-Manager file, whose pages are placed by "
                                f"their MicroManagerMetadata: use frames_format: {right}")
        return ome_xml.looks_like_ome(page.description)


def _refuse_folder(folder: Path) -> SplitterError:
    """tif_id given a folder: the error naming what reads it, as its files declare it
    (ome_tiff for OME-TIFFs: named so, or OME-XML in the first file)."""
    choose = "leave frames_format out to let imagingdb choose"
    kind, right = "", None
    tiffs = tiff_pages.listed(folder)
    if any(tiff_pages.has_ome_suffix(path.name) for path in tiffs):
        kind, right = " of OME-TIFF files", "ome_tiff"
    elif tiffs:
        try:
            with tiff_pages.opened(tiffs[0]) as tif:
                page = tiff_pages.first_page(tif, tiffs[0])
                if ome_xml.looks_like_ome(page.description):
                    kind, right = " of OME-TIFF files", "ome_tiff"
                elif tiff_pages.has_micromanager_metadata(page):
                    kind, right = " of Micro-Manager image files", "tif_folder"
        except SplitterError:
            pass  # an unreadable first file: imagingdb's choice will say what is wrong with it
    advice = f"use frames_format: {right} (or {choose})" if right else f"{choose} for a folder"
    return SplitterError(f"{folder} is a folder{kind}; tif_id takes one TIFF file: {advice}")


@dataclass(frozen=True)
class _Layout:
    """How a file's pages fill the grid: each axis' size and the page order."""

    sizes: dict[str, int]
    order: tuple[str, ...]  # axes in page order, fastest first
    kind: str  # what the file is, in words
    description: Any  # what the file declares, for global metadata

    @property
    def declared(self) -> int:
        count = 1
        for axis in _AXES:
            count *= self.sizes[axis]
        return count

    def index_of_page(self, number: int) -> FrameIndex:
        values = dict.fromkeys(_AXES, 0)
        for axis in self.order:
            number, values[axis] = divmod(number, self.sizes[axis])
        return FrameIndex(**values)

    @property
    def page_order(self) -> str:
        shown = [axis for axis in self.order if self.sizes[axis] > 1] or list(self.order[:1])
        return f"{', '.join(shown)} ({shown[0]} fastest)" if len(shown) > 1 else shown[0]


class TifIdAcquisition(Acquisition):
    """One TIFF stack: its declared layout and page count read at open, pages streamed."""

    def __init__(self, source: Path, options: SplitOptions):
        self.source = source
        with tiff_pages.opened(source) as tif:
            page = tiff_pages.first_page(tif, source)
            self._format = tiff_pages.PixelFormat.of(page, f"{source}: page 0")
            self._nbr_pages = tiff_pages.page_count(tif, source)
            with tiff_pages.reading(f"{source}: page 0"):
                header = imagej.find_header(page)
                layout = _layout(source, page, header, self._format, self._nbr_pages,
                                 options.sequence_axis)
                extra = _imagej_metadata(page, header) if header else {}
            _refuse_contiguous_block(tif, page, layout.declared, self._nbr_pages)
        self._layout = layout
        self._labels = extra.get("imagej_metadata", {}).get("Labels", [])
        self._header_text = (page.description1 if header.second else page.description) if header else None
        self._positions = selected_positions(source, layout.sizes["position"], options.positions)
        self.kind = layout.kind
        self.warnings = _stopped_early_warnings(source, layout, self._nbr_pages)
        self.channel_names = [f"channel{c}" for c in range(layout.sizes["channel"])]
        self.dims = Dimensions(
            nbr_channels=layout.sizes["channel"], nbr_slices=layout.sizes["slice"],
            nbr_timepoints=layout.sizes["time"], nbr_positions=len(self._positions),
            im_height=self._format.shape[0], im_width=self._format.shape[1],
            im_colors=self._format.colors, bit_depth=self._format.dtype)
        self.global_meta = {
            **options.name_metadata(source),
            "file_origin": str(source),
            "nbr_pages": self._nbr_pages,
            "image_description": layout.description,
            "page_order": layout.page_order,
            **extra,
        }

    def index_of_page(self, number: int) -> FrameIndex:
        return self._layout.index_of_page(number)

    def iter_frames(self, pixels: bool = True) -> Iterator[Frame]:
        source = self.source
        with tiff_pages.opened(source) as tif:
            for number, page in tiff_pages.numbered_pages(tif, source, stop=self._nbr_pages):
                where = f"{source}: page {number}"
                index = self.index_of_page(number)
                if index.position not in self._positions:
                    continue
                self._format.check_same(tiff_pages.PixelFormat.of(page, where), where, "page 0")
                yield Frame(
                    index=index,
                    channel_name=self.channel_names[index.channel],
                    metadata=self._frame_metadata(page, number),
                    pixels=tiff_pages.read_pixels(page, where) if pixels else None,
                    origin=f"page {number}",
                )

    def _frame_metadata(self, page: "tifffile.TiffPage", number: int) -> dict[str, Any]:
        metadata = tiff_pages.page_metadata(page)
        if self._header_text is not None and metadata.get("ImageDescription") == self._header_text:
            del metadata["ImageDescription"]  # ImageJ repeats its header on every page
        if number < len(self._labels) and self._labels[number]:
            metadata["Label"] = self._labels[number]
        return metadata


def _layout(source: Path, page: "tifffile.TiffPage", header: Optional[imagej.ImageJHeader],
            page_format: tiff_pages.PixelFormat, nbr_pages: int, sequence_axis: str) -> _Layout:
    if header is not None:
        sizes = header.sizes(source, sequence_axis)
        layout = _Layout({**dict.fromkeys(_AXES, 1), **sizes}, header.page_order(source),
                         header.kind(sizes), header.entries)
    elif page.is_shaped:
        layout = _shaped_layout(source, page.description, page_format, nbr_pages, sequence_axis)
    else:
        return _plain_layout(nbr_pages, sequence_axis, page.description or "")
    # Before anything is sized from the declaration: a name per channel, a slot per frame.
    tiff_pages.check_declared_frames(str(source), layout.declared, nbr_pages)
    if nbr_pages > layout.declared:
        raise SplitterError(
            f"{source} has {nbr_pages} pages but its ImageDescription declares {layout.declared} "
            f"({', '.join(f'{axis}s={layout.sizes[axis]}' for axis in _AXES)})")
    return layout


def _stopped_early_warnings(source: Path, layout: _Layout, nbr_pages: int) -> list[str]:
    """Say so when the file holds fewer pages than it declares.

    Its page chain ended where a writer ends it (:func:`tiff_pages.page_count`
    refuses a chain that breaks, which is a cut file): the acquisition
    stopped early, and its declared sizes stay the dataset's dimensions.
    """
    if nbr_pages >= layout.declared:
        return []
    first = layout.index_of_page(nbr_pages)
    return [f"{source} declares {layout.declared} pages but holds {nbr_pages}, its page chain "
            "ending cleanly (an acquisition stopped early): the pages never written are "
            f"recorded as missing frames, from (channel {first.channel}, slice {first.slice}, "
            f"time {first.time}, position {first.position}) on"]


def _plain_layout(nbr_pages: int, axis: str, description: str) -> _Layout:
    sizes = {**dict.fromkeys(_AXES, 1), axis: nbr_pages}
    along = "z" if axis == "slice" else "t"
    kind = (f"multi-page TIFF ({nbr_pages} pages, along {along})" if nbr_pages > 1
            else "single-page TIFF")
    return _Layout(sizes, (axis,), kind, description)


def _shaped_layout(source: Path, description: str, page_format: tiff_pages.PixelFormat,
                   nbr_pages: int, sequence_axis: str) -> _Layout:
    """tifffile's {"shape": [...], "axes": "..."}: pages in C order over the axes before YX."""
    declared = _shaped_metadata(source, description)
    shape = _shape_of(source, declared)
    axes = declared.get("axes")
    frame_dims = len(page_format.shape)
    if len(shape) < frame_dims or tuple(shape[-frame_dims:]) != page_format.shape:
        raise SplitterError(f"{source}: its tifffile description declares shape {tuple(shape)}, "
                            f"which does not end with its pages' shape {page_format.shape}")
    if axes is not None and len(axes) != len(shape):
        raise SplitterError(f"{source}: its tifffile description has axes {axes!r} for shape "
                            f"{tuple(shape)}")
    leading = list(zip(axes[:-frame_dims] if axes else "?" * (len(shape) - frame_dims),
                       shape[:-frame_dims]))
    placed = [(letter, size) for letter, size in leading if size > 1]
    if all(letter in _SEQUENCE_LETTERS + "?" for letter, _size in placed) and len(placed) <= 1:
        layout = _plain_layout(placed[0][1] if placed else 1, sequence_axis, declared)
        along = "z" if sequence_axis == "slice" else "t"
        return _Layout(layout.sizes, layout.order,
                       f"tifffile stack (shape {tuple(shape)}, along {along})", declared)
    if axes is None:
        raise SplitterError(
            f"{source}: its tifffile description declares shape {tuple(shape)} without axes, "
            "so which dimension is channels, slices or time is unknown; re-write it with axes "
            "(tifffile.imwrite(..., metadata={'axes': 'TZCYX'})) or as an ImageJ hyperstack")
    sizes = dict.fromkeys(_AXES, 1)
    for letter, size in placed:
        axis = _SHAPED_AXES.get(letter)
        if axis is None or sizes[axis] > 1:
            raise SplitterError(
                f"{source}: its tifffile axes {axes!r} have {letter}={size}, which is not one "
                "of channels (C), slices (Z) or time (T) once each; re-write it with axes "
                "among T, Z, C (e.g. 'TZCYX'), or store it whole with upload_type: file")
        sizes[axis] = size
    order = tuple(_SHAPED_AXES[letter] for letter, _size in reversed(placed))
    shown = " ".join(f"{letter}{size}" for letter, size in placed)
    return _Layout(sizes, order, f"tifffile stack ({axes}: {shown})", declared)


def _shape_of(source: Path, declared: dict[str, Any]) -> list[int]:
    """The declared shape, every size a positive integer (what tifffile writes), or refused."""
    shape = declared.get("shape", [])
    if not all(isinstance(size, int) and not isinstance(size, bool) and size > 0
               for size in shape):
        raise SplitterError(f"{source}: its tifffile description declares shape {shape}, but "
                            "every size must be a positive integer (a damaged file); store the "
                            "file whole with upload_type: file")
    return shape


def _shaped_metadata(source: Path, description: str) -> dict[str, Any]:
    """tifffile's JSON description (or its old ``shape=(...)`` form) as a dict."""
    try:
        if description.startswith("shape="):
            return {"shape": [int(size) for size in description[7:-1].split(",") if size.strip()]}
        declared = json.loads(description)
        if isinstance(declared, dict) and isinstance(declared.get("shape"), list):
            axes = declared.get("axes")
            if axes is None or isinstance(axes, str):
                return declared
    except (ValueError, RecursionError):  # JSON nested too deeply: not metadata
        pass
    raise SplitterError(f"{source}: its tifffile shape description {description[:80]!r} is "
                        "damaged")


def _imagej_metadata(page: "tifffile.TiffPage", header: imagej.ImageJHeader) -> dict[str, Any]:
    """ImageJ's IJMetadata (Info, Labels...) and calibration, for global metadata."""
    found: dict[str, Any] = {"physical_size": header.physical_size(page)}
    ijmeta = imagej.read_ijmetadata(page)
    if ijmeta:
        found["imagej_metadata"] = ijmeta
    if header.second:  # the first one is another program's: kept as it is
        found["image_description_found_in"] = header.where
        found["first_image_description"] = page.description
    return found


def _refuse_contiguous_block(tif: Any, page: Any, declared: int, nbr_pages: int) -> None:
    """ImageJ writes files over 4 GB with one page directory for all images.

    Such a file is not an acquisition stopped after one image: its size shows
    the images that follow the first.
    """
    if nbr_pages == 1 and declared > 1 and tif.filehandle.size >= page.dataoffsets[0] + 2 * page.nbytes:
        raise SplitterError(
            f"{tif.filehandle.path} declares {declared} images in one contiguous block with a "
            "single page directory (ImageJ's format for files over 4 GB), which tif_id cannot "
            "split; re-save it with Fiji or tifffile, or store it whole with upload_type: file")


def selected_positions(source: Path, nbr_positions: int,
                       wanted: Optional[list[int]]) -> set[int]:
    """The positions the CSV ``positions`` column asks for (all when it is empty)."""
    if wanted is None:
        return set(range(nbr_positions))
    outside = sorted(p for p in wanted if p >= nbr_positions)
    if outside:
        raise SplitterError(f"{source}: position(s) {', '.join(map(str, outside))} not found; "
                            f"it holds positions 0-{nbr_positions - 1}")
    return set(wanted)


# --------------------------------------------------------------------------
# The claim
# --------------------------------------------------------------------------


@hookimpl
def claim_source(source: Path) -> Optional[SourceClaim]:
    """LIKELY a file declaring its dimensions (ImageJ, tifffile axes), POSSIBLE any other TIFF.

    One-image OME-TIFFs are POSSIBLE only, so that ``ome_tiff`` (LIKELY) reads
    them; Micro-Manager and NDTiff files are left to their formats.
    """
    if not source.is_file() or not source.name.lower().endswith(tiff_pages.TIFF_SUFFIXES):
        return None
    try:
        with tiff_pages.opened(source) as tif:
            page = tif.pages.first
            if tiff_pages.has_micromanager_metadata(page) or tiff_pages.is_ndtiff(tif):
                return None
            return _claim_page(source, page)
    except Exception:  # noqa: BLE001 - an unreadable file is not claimed; the splitter explains
        return None


def _claim_page(source: Path, page: "tifffile.TiffPage") -> Optional[SourceClaim]:
    description = page.description or ""
    if ome_xml.looks_like_ome(description):
        document = ome_xml.parse_ome(description, str(source))
        one_file = all(data.uuid in (None, document.uuid)
                       for image in document.images for data in image.tiff_data)
        if len(document.images) != 1 or not one_file:
            return None
        return SourceClaim("tif_id", ome_xml.describe(document), POSSIBLE)
    header = imagej.find_header(page)
    if header is not None:
        try:
            kind = header.kind(header.sizes(source))
        except SplitterError:  # tif_id's reader says what is wrong with it
            kind = f"ImageJ file (ImageJ {header.version}; its header is inconsistent)"
        return SourceClaim("tif_id", kind, LIKELY)
    if page.is_shaped:
        declared = _shaped_metadata(source, description)
        if declared.get("axes"):
            return SourceClaim("tif_id", f"tifffile stack (axes {declared['axes']})", LIKELY)
    return SourceClaim("tif_id", "TIFF file", POSSIBLE)
