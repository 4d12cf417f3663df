"""Exports: a selection of a frames dataset written out as an OME-Zarr store or an OME-TIFF file.

Either layout is a source. The selection's frames are streamed, a bounded
number in memory whatever the dataset's size, never gathered into one array:

- ``ome-zarr``: a Zarr v3 / OME-Zarr 0.5 store shaped as the ome-zarr layout's
  (:mod:`imagingdb.layout`: a plate of one row, a well per position). From an
  ome-zarr dataset each chunk's stored bytes are copied unchanged to its new
  key; a png dataset's frames are decoded and encoded by the Blosc codec. The
  selection renumbers times, channels and slices 0..n-1 in the order selected;
  positions keep their dataset index (the wells' names). The same writer makes
  ``download`` of an ome-zarr dataset (:func:`write_ome_zarr`).
- ``ome-tiff``: one OME Image (a TIFF series) per position, axes TCZYX, through
  tifffile, page by page; RGB frames are kept as 3 samples per pixel (TCZYXS).

Frames an incomplete acquisition never recorded have no chunk in a store (a
reader sees the array's fill value, 0) and are written as zero pages in an
OME-TIFF; a :class:`~imagingdb.errors.MissingFramesWarning` says how many.

What is written appears complete or not at all: it is made under a hidden
name beside the destination (``.<name>.partial-<random>``) and renamed at
the end; an existing destination, or a symbolic link, is refused.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

from . import layout
from .download import (
    FRAMES_META_COLUMNS,
    Selection,
    missing_from_storage,
    refuse_existing,
    warn_missing,
)
from .errors import ImagingDBError, InputError, WorkError
from .pool import TRANSFER, default_workers, run_bounded

if TYPE_CHECKING:
    import numpy as np

    from .acquisition import Dimensions, FrameIndex
    from .calibration import Calibration
    from .storage import StorageBackend

OME_ZARR = "ome-zarr"
OME_TIFF = "ome-tiff"
EXPORT_FORMATS = (OME_ZARR, OME_TIFF)
#: above this many bytes of pixels an OME-TIFF is written as BigTIFF (classic TIFF's offsets
#: stop at 4 GB; the margin leaves room for the pages' tags and the OME-XML)
BIGTIFF_ABOVE = 2 << 30
#: the pixel types OME-XML names (Pixels Type); others cannot be described in an OME-TIFF
_OME_TIFF_DTYPES = ("int8", "int16", "int32", "uint8", "uint16", "uint32", "float32", "float64")

#: a frames_meta.csv row of a download: a frame row with the key of its chunk in the store
FrameEntry = collections.namedtuple("FrameEntry", FRAMES_META_COLUMNS)


@dataclass(frozen=True)
class ExportSource:
    """The selection of a dataset an export reads: its frame rows and what they mean."""

    dataset_id: str
    storage: "StorageBackend"
    storage_dir: str
    frame_format: str  # the dataset's layout: layout.PNG or layout.OME_ZARR
    dims: "Dimensions"
    selection: Selection
    rows: Sequence[Any]  # the selection's frame rows (indexes, file_name, sha256)
    channel_names: dict[int, str]  # dataset channel index -> name
    global_meta: dict[str, Any]

    @property
    def selected_names(self) -> list[str]:
        """The selected channels' names, in the order selected."""
        return [self.channel_names.get(c) or f"channel{c}" for c in self.selection.channels]

    @property
    def missing(self) -> int:
        """Frames of the selected grid that the dataset never recorded."""
        return self.selection.size - len(self.rows)


class Renumbering:
    """Dataset indexes -> the indexes of an exported store: each selected time, channel and
    slice becomes its place in the selection; a position keeps its index (its well's name)."""

    def __init__(self, selection: Selection):
        self.positions, self.times, self.channels, self.slices = selection.places()

    def chunk_name(self, row: Any) -> str:
        """The key, in the exported store, of the chunk holding the frame of ``row``."""
        return layout.zarr_chunk_name(row.pos_idx, self.times[row.time_idx],
                                      self.channels[row.channel_idx], self.slices[row.slice_idx])

    def missing_chunk_names(self, missing: "Sequence[FrameIndex]") -> list[str]:
        """The keys, in the exported store, of the selected frames among ``missing`` (frames
        the dataset never recorded: chunks the store lacks, read as the fill value)."""
        return [layout.zarr_chunk_name(i.position, self.times[i.time], self.channels[i.channel],
                                       self.slices[i.slice])
                for i in missing if i.time in self.times and i.channel in self.channels
                and i.slice in self.slices and i.position in self.positions]


def store_entries(source: ExportSource) -> list[FrameEntry]:
    """The frames_meta.csv rows of a download written as a store: each frame row's indexes
    (the dataset's), with its chunk's key in the downloaded store as file_name."""
    renumbering = Renumbering(source.selection)
    entries = []
    for row in source.rows:
        values = {column: getattr(row, column) for column in FRAMES_META_COLUMNS}
        values["file_name"] = renumbering.chunk_name(row)
        entries.append(FrameEntry(**values))
    return entries


# ----------------------------------------------------------------- the entry point


def export(source: ExportSource, dest: Path, to: str, *, workers: Optional[int] = None,
           progress: Any = None) -> Path:
    """Write ``source`` as ``to`` (an :data:`EXPORT_FORMATS` name) at ``dest``; returns it."""
    check_format(to)
    _refuse_unwritable(source, to)
    with staged(dest, folder=to == OME_ZARR) as staging:
        if to == OME_ZARR:
            write_ome_zarr(source, staging, workers=workers, progress=progress)
        else:
            write_ome_tiff(source, staging, workers=workers, progress=progress)
    _warn_missing(source, to)
    return dest


def check_format(to: str) -> str:
    """``to`` if it names an export format, else an InputError listing them."""
    if to not in EXPORT_FORMATS:
        raise InputError(f"unknown export format {to!r}; choose one of: {', '.join(EXPORT_FORMATS)}")
    return to


def _refuse_unwritable(source: ExportSource, to: str) -> None:
    """What the format cannot hold is refused before anything is written."""
    dims = source.dims
    if to == OME_ZARR and dims.im_colors > 1:
        raise InputError(f"dataset {source.dataset_id} has RGB frames, which an OME-Zarr image "
                         "(grayscale channels) cannot hold; export --to ome-tiff instead")
    if to == OME_TIFF and dims.bit_depth not in _OME_TIFF_DTYPES:
        raise InputError(f"dataset {source.dataset_id} has {dims.bit_depth} pixels, which OME-TIFF "
                         "cannot describe; export --to ome-zarr instead")


def _warn_missing(source: ExportSource, to: str) -> None:
    if source.missing:
        how = "are written as zeros" if to == OME_TIFF else "are left out (read as 0, the fill value)"
        warn_missing(source.dataset_id, source.missing, source.selection.size, how, stacklevel=4)


# ------------------------------------------------------------ the destination


def check_destination(dest: Path) -> Path:
    """``dest``, refused if it exists (an export never merges into or replaces anything) or
    is a symbolic link."""
    return refuse_existing(dest, "DEST")


@contextlib.contextmanager
def staged(dest: Path, *, folder: bool) -> Iterator[Path]:
    """A hidden staging path beside ``dest`` (a folder made for ``folder``, else a file
    name), renamed to ``dest`` when the block succeeds and removed when it fails."""
    check_destination(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder of {dest}: {exc.strerror}") from None
    staging = dest.parent / f".{dest.name}.partial-{secrets.token_hex(4)}"
    try:
        if folder:
            staging.mkdir()
        yield staging
        _publish(staging, dest)
    except BaseException as exc:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                staging.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, ImagingDBError):
            raise WorkError(f"cannot write {dest}: {exc.strerror or exc}") from None
        raise


def _publish(staging: Path, dest: Path) -> None:
    """Rename ``staging`` to ``dest``, never over something that appeared there meanwhile."""
    if os.path.lexists(dest):
        raise WorkError(f"destination {dest} appeared while it was written; nothing was "
                        "replaced, remove it or choose another DEST")
    if staging.is_dir():
        os.rename(staging, dest)  # refused over a non-empty folder
        return
    try:
        os.link(staging, dest)  # refused over anything, unlike rename
    except FileExistsError:
        raise WorkError(f"destination {dest} appeared while it was written; nothing was "
                        "replaced, remove it or choose another DEST") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
            raise
        os.rename(staging, dest)  # a file system without hard links
        return
    staging.unlink()


# --------------------------------------------------------------------- OME-Zarr


def write_ome_zarr(source: ExportSource, folder: Path, *, workers: Optional[int] = None,
                   progress: Any = None) -> None:
    """Write the OME-Zarr store of ``source`` into ``folder`` (which exists): chunks, then
    every zarr.json."""
    from .omezarr import StoreSpec, documents

    if source.frame_format == layout.OME_ZARR:
        windows = _copy_chunks(source, folder, workers=workers, progress=progress)
    else:
        windows = _encode_chunks(source, folder, workers=workers, progress=progress)
    selection, dims = source.selection, source.dims
    spec = StoreSpec(
        name=source.dataset_id, positions=list(selection.positions),
        shape=(len(selection.times), len(selection.channels), len(selection.slices),
               dims.im_height, dims.im_width),
        dtype=dims.bit_depth, channel_names=source.selected_names,
        calibration=selected_calibration(source), windows=windows)
    for key, data in documents(spec).items():
        _write(folder, key, data)


def _write(folder: Path, key: str, data: "bytes | memoryview") -> int:
    path = folder / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def _copy_chunks(source: ExportSource, folder: Path, *, workers: Optional[int],
                 progress: Any) -> dict[int, tuple[float, float]]:
    """Copy an ome-zarr dataset's chunks to their renumbered keys, bytes unchanged; returns
    the display windows its stored image documents record, for the selected channels."""
    renumbering = Renumbering(source.selection)
    storage = source.storage

    import numpy as np

    from .codecs.blosc import check_chunk

    dims = source.dims
    frame_bytes = dims.im_height * dims.im_width * np.dtype(dims.bit_depth).itemsize

    def copy(row: Any) -> int:
        key = layout.object_key(source.storage_dir, row.file_name)
        try:
            data = storage.get_bytes(key)
        except KeyError:
            raise missing_from_storage(key, source.dataset_id) from None
        try:  # a chunk cut short or not this array's is never copied into a store
            check_chunk(data, frame_bytes, f"a {dims.im_height}x{dims.im_width} {dims.bit_depth} frame")
        except ValueError as exc:
            raise WorkError(f"frame {key} of dataset {source.dataset_id} cannot be decoded: "
                            f"{exc}; run: imagingdb verify {source.dataset_id}") from None
        return _write(folder, renumbering.chunk_name(row), data)

    _run(copy, source, workers, progress)
    return _stored_windows(source)


def _stored_windows(source: ExportSource) -> dict[int, tuple[float, float]]:
    """The selected channels' windows over the selected positions' stored image documents."""
    from .omezarr import WindowTracker, stored_windows

    found = WindowTracker()
    for position in source.selection.positions:
        _well, image, _array = layout.zarr_position_document_names(position)
        try:
            windows = stored_windows(source.storage.get_bytes(
                layout.object_key(source.storage_dir, image)))
        except KeyError:
            continue  # verify reports a missing document; the windows are only a display hint
        for index, channel in enumerate(source.selection.channels):
            if channel in windows:
                found.widen(index, *windows[channel])
    return found.windows()


def _encode_chunks(source: ExportSource, folder: Path, *, workers: Optional[int],
                   progress: Any) -> dict[int, tuple[float, float]]:
    """Decode a png dataset's frames and store each as a Blosc chunk; returns the display
    windows of the pixels seen."""
    from .codecs import frame_codec
    from .codecs.blosc import BloscCodec
    from .download import read_frame
    from .omezarr import WindowTracker

    renumbering = Renumbering(source.selection)
    decoder, encoder, tracker = frame_codec(source.frame_format), BloscCodec(), WindowTracker()

    def encode(row: Any) -> int:
        pixels = read_frame(source.storage, source.storage_dir, row, source.dims,
                            dataset_id=source.dataset_id, codec=decoder)
        tracker.add(renumbering.channels[row.channel_idx], pixels)
        return _write(folder, renumbering.chunk_name(row), encoder.encode(pixels))

    _run(encode, source, workers, progress)
    return tracker.windows()


def _run(task: Any, source: ExportSource, workers: Optional[int], progress: Any) -> None:
    """``task`` over every frame row on a bounded pool, counted on ``progress``."""
    rows = source.rows
    if progress is not None:
        progress.start(source.dataset_id, len(rows), 0)
    try:
        if rows:
            run_bounded(task, rows, min(len(rows), workers or default_workers(
                TRANSFER, source.storage.transfer_workers)),
                on_result=(lambda nbytes: progress.advance(1, nbytes)) if progress else None,
                name="imagingdb-export")
    except BaseException:
        if progress is not None:
            progress.finish(ok=False)
        raise
    if progress is not None:
        progress.finish()


def selected_calibration(source: ExportSource) -> "Calibration":
    """The dataset's calibration as the selection sees it: colours and windows by selected
    channel; the z and t steps times the selection's stride (``-z 0,2,4`` doubles the slice
    step), left out when the selected indexes are unevenly spaced (no one step is true)."""
    from .calibration import calibration_of

    calibration = calibration_of(source.global_meta)
    selection = source.selection
    scales = dict(calibration.scales)
    for axis, indexes in (("z", selection.slices), ("t", selection.times)):
        if axis in scales:
            stride = _stride(indexes)
            if stride is None:
                del scales[axis]
            else:
                scales[axis] = (scales[axis][0] * stride, scales[axis][1])
    by_place = dict(enumerate(selection.channels))
    return dataclasses.replace(
        calibration, scales=scales,
        colors={p: calibration.colors[c] for p, c in by_place.items() if c in calibration.colors},
        windows={p: calibration.windows[c] for p, c in by_place.items()
                 if c in calibration.windows})


def _stride(indexes: Sequence[int]) -> Optional[int]:
    """The one positive step between consecutive indexes (1 for fewer than two); None if
    there is none."""
    steps = {b - a for a, b in zip(indexes, indexes[1:])}
    if not steps:
        return 1
    if len(steps) == 1 and (step := steps.pop()) > 0:
        return step
    return None


# --------------------------------------------------------------------- OME-TIFF


def write_ome_tiff(source: ExportSource, path: Path, *, workers: Optional[int] = None,
                   progress: Any = None) -> None:
    """Write the OME-TIFF of ``source`` at ``path``: one series per position, page by page."""
    import math

    import numpy as np
    import tifffile

    dims, selection = source.dims, source.selection
    rgb = dims.im_colors > 1
    shape = (len(selection.times), len(selection.channels), len(selection.slices),
             dims.im_height, dims.im_width) + ((dims.im_colors,) if rgb else ())
    nbytes = len(selection.positions) * math.prod(shape) * np.dtype(dims.bit_depth).itemsize
    pages, metadata = _Pages(source, workers, progress), _ome_metadata(source, rgb)
    with tifffile.TiffWriter(path, bigtiff=nbytes > BIGTIFF_ABOVE, ome=True) as tif:
        with pages:
            for position in selection.positions:
                tif.write(pages.of(position), shape=shape, dtype=dims.bit_depth,
                          photometric="rgb" if rgb else "minisblack",
                          metadata={**metadata, "Name": f"{source.dataset_id} position {position}"})


def _ome_metadata(source: ExportSource, rgb: bool) -> dict[str, Any]:
    """tifffile's OME-XML attributes of every position's Image: axes, channel names, the
    physical pixel sizes and time step with their units."""
    from .calibration import ome_xml_unit

    metadata: dict[str, Any] = {"axes": "TCZYXS" if rgb else "TCZYX",
                                "Channel": {"Name": source.selected_names}}
    for axis, (size, unit) in selected_calibration(source).scales.items():
        attribute = "TimeIncrement" if axis == "t" else f"PhysicalSize{axis.upper()}"
        try:
            symbol = ome_xml_unit(unit)
        except KeyError:
            continue  # a unit OME-XML has no symbol for: better no size than a wrong one
        metadata[attribute], metadata[f"{attribute}Unit"] = size, symbol
    return metadata


class _Pages:
    """The selection's pages, position by position, in TCZ order of the selection: frames
    read ahead on a bounded pool (:func:`imagingdb.download.iter_frames`), a frame never
    recorded given as zeros."""

    def __init__(self, source: ExportSource, workers: Optional[int], progress: Any):
        self.source = source
        self.progress = progress
        selection = source.selection
        by_index = {(r.pos_idx, r.time_idx, r.channel_idx, r.slice_idx): r for r in source.rows}
        self.grid = {p: [by_index.get((p, t, c, z)) for t in selection.times
                         for c in selection.channels for z in selection.slices]
                     for p in selection.positions}
        self.workers = workers
        self.stream: Any = None
        self.zeros: Any = None

    def __enter__(self) -> "_Pages":
        import numpy as np

        from .download import iter_frames

        source, dims = self.source, self.source.dims
        ordered = [row for p in source.selection.positions for row in self.grid[p] if row is not None]
        self.stream = iter_frames(source.storage, source.storage_dir, ordered, dims,
                                  dataset_id=source.dataset_id, frame_format=source.frame_format,
                                  workers=self.workers)
        shape = (dims.im_height, dims.im_width) + ((dims.im_colors,) if dims.im_colors > 1 else ())
        self.zeros = np.zeros(shape, dims.bit_depth)
        if self.progress is not None:
            self.progress.start(source.dataset_id, len(ordered), 0)
        return self

    def __exit__(self, exc_type: Any, *_exc: Any) -> None:
        self.stream.close()  # cancels the frames read ahead
        if self.progress is not None:
            self.progress.finish(ok=exc_type is None)

    def of(self, position: int) -> Iterator["np.ndarray"]:
        """Every page of ``position``'s series, in order."""
        for row in self.grid[position]:
            if row is None:
                yield self.zeros
                continue
            _row, pixels = next(self.stream)
            if self.progress is not None:
                self.progress.advance(1, pixels.nbytes)
            yield pixels
