"""Lazy access for analysis: a dataset's frames as a dask array or an xarray DataArray, and
its frame metadata as a pandas DataFrame (``Dataset.to_dask``, ``to_xarray``, ``frames_table``).

dask, xarray and pandas are the optional extra ``analysis``. They are imported inside these
functions only: the CLI never needs them, and importing them would cost every command's
start-up a good part of a second.

A lazy array has ONE chunk per frame, (1, 1, 1, 1, Y, X[, colours]), because a frame is
what storage holds as one object: a chunk is one ``get_bytes`` and one decode
(:func:`imagingdb.download.read_frame`), and a computation that needs a few frames reads
those few. The array is built from the frame rows alone (one SQL query, no pixels): its
graph is one blockwise layer whose function looks up the chunk's frame by block index, so
making it costs a dict of the rows, not a task per frame. A frame an incomplete
acquisition never recorded is a chunk of ``fill_value``, as :meth:`Dataset.read` fills it.
"""

from __future__ import annotations

import hashlib
import importlib
import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Sequence

from .download import FRAMES_META_COLUMNS, check_fill_value, warn_missing
from .errors import MissingDependencyError

if TYPE_CHECKING:
    import dask.array
    import numpy as np
    import pandas
    import xarray

    from .acquisition import Dimensions
    from .download import Selection
    from .storage import StorageBackend

#: the array axes of Dataset.read, named as xarray dimensions
AXES = ("P", "T", "C", "Z", "Y", "X")
#: the axis of an RGB frame's colour samples
COLOUR_AXIS = "S"
#: the frame row columns that come first in frames_table: frames_meta.csv's
TABLE_COLUMNS = FRAMES_META_COLUMNS


def require(module: str, feature: str) -> Any:
    """``module`` imported, or a MissingDependencyError saying how to install the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingDependencyError(
            f"{feature} needs {package}: pip install 'imagingdb[analysis]'") from None


class FrameRef(NamedTuple):
    """What a chunk needs of its frame row (read_frame reads these two attributes)."""

    file_name: str
    sha256: Optional[str]


@dataclass
class FrameSource:
    """Where a dataset's frames are and how to decode them: what a lazy array's chunks read."""

    dataset_id: str
    storage_dir: str
    dims: "Dimensions"
    frame_format: Optional[str]
    storage: Optional["StorageBackend"]
    #: makes the storage backend again where ``storage`` was not sent along (a pickled array
    #: computed in another process: dask.distributed, multiprocessing)
    open_storage: Callable[[], "StorageBackend"]
    _codec: Any = field(default=None, repr=False, compare=False)

    def backend(self) -> "StorageBackend":
        if self.storage is None:
            self.storage = self.open_storage()
        return self.storage

    def codec(self) -> Any:
        """The layout's frame codec, made once for every chunk (it is safe across threads)."""
        if self._codec is None:
            from .codecs import frame_codec

            self._codec = frame_codec(self.frame_format)
        return self._codec

    def __getstate__(self) -> dict[str, Any]:
        # A backend holds clients and connection pools that do not pickle; the other
        # process opens its own from the settings, and makes its own codec.
        return {**self.__dict__, "storage": None, "_codec": None}


class FrameChunks:
    """The function of a lazy frame array's blocks: block (p, t, c, z, 0, 0[, 0]) -> that
    frame's pixels as a (1, 1, 1, 1, Y, X[, colours]) array, read only when dask asks."""

    def __init__(self, source: FrameSource, frames: dict[tuple[int, int, int, int], FrameRef],
                 *, fill_value: Any, verify: bool):
        import numpy as np

        dims = source.dims
        self.source = source
        self.frames = frames
        self.fill_value = fill_value
        self.verify = verify
        self.dtype = np.dtype(dims.bit_depth)
        self.shape = (1, 1, 1, 1, dims.im_height, dims.im_width) + (
            (dims.im_colors,) if dims.im_colors > 1 else ())

    def __call__(self, block_id: Optional[tuple[int, ...]] = None) -> "np.ndarray":
        import numpy as np

        from .download import read_frame

        frame = self.frames.get(block_id[:4])
        if frame is None:
            return np.full(self.shape, self.fill_value, self.dtype)
        source = self.source
        pixels = read_frame(source.backend(), source.storage_dir, frame, source.dims,
                            dataset_id=source.dataset_id, frame_format=source.frame_format,
                            verify=self.verify, codec=source.codec())
        return pixels.reshape(self.shape)


def frame_array(source: FrameSource, rows: Sequence[Any], selection: "Selection", *,
                fill_value: Any = 0, verify: bool = False, stacklevel: int = 3) -> "dask.array.Array":
    """The frames of ``selection`` as a lazy (P, T, C, Z, Y, X[, colours]) dask array, one chunk
    per frame; ``rows``: the selection's frame rows (no pixels are read here). ``stacklevel``:
    where a MissingFramesWarning points, counted from here (3: whoever called Dataset.to_dask)."""
    da = require("dask.array", "to_dask")
    import numpy as np

    frames = _frames_by_block(rows, selection)
    chunks_of = FrameChunks(source, frames, fill_value=fill_value, verify=verify)
    counts = [len(selection.positions), len(selection.times), len(selection.channels),
              len(selection.slices)]
    if len(frames) < selection.size:
        check_fill_value(fill_value, chunks_of.dtype)
        warn_missing(source.dataset_id, selection.size - len(frames), selection.size,
                     f"read as fill_value={fill_value}", stacklevel=stacklevel)
    if selection.size == 0:  # an axis of no block: nothing for a block function to make
        empty = np.empty(tuple(counts) + chunks_of.shape[4:], chunks_of.dtype)
        return da.from_array(empty, chunks=empty.shape)
    chunks = tuple((1,) * n for n in counts) + tuple((n,) for n in chunks_of.shape[4:])
    return da.map_blocks(chunks_of, chunks=chunks, dtype=chunks_of.dtype,
                         meta=np.empty((0,) * len(chunks), chunks_of.dtype),
                         name=_array_name(source, frames, counts, fill_value, verify))


#: the frame row columns a chunk is placed and read by
_ROW_COLUMNS = ("pos_idx", "time_idx", "channel_idx", "slice_idx", "file_name", "sha256")


def _frames_by_block(rows: Sequence[Any], selection: "Selection"
                     ) -> dict[tuple[int, int, int, int], FrameRef]:
    """Block index (p, t, c, z) in the selection's order -> the frame there. Row columns are
    taken by position: ten times faster than by name, which matters at 10^5 rows."""
    if not rows:
        return {}
    fields = getattr(rows[0], "_fields", None)
    pick = (operator.itemgetter(*(fields.index(c) for c in _ROW_COLUMNS)) if fields
            else operator.attrgetter(*_ROW_COLUMNS))
    positions, times, channels, slices = selection.places()
    return {(positions[p], times[t], channels[c], slices[z]): FrameRef(file_name, sha256)
            for p, t, c, z, file_name, sha256 in map(pick, rows)}


def _array_name(source: FrameSource, frames: dict[tuple[int, int, int, int], FrameRef],
                counts: list[int], fill_value: Any, verify: bool) -> str:
    """The array's dask name: the same for the same frames of the same store, so dask can
    share their chunks; any other selection, fill value or upload (a new storage_dir, a new
    sha256) gives another. Given, because dask would otherwise hash the chunk function with
    its dict of every frame."""
    digest = hashlib.sha1(repr((source.backend().describe(), source.storage_dir,
                                source.frame_format, counts, fill_value, verify)).encode())
    digest.update(repr([(block, *frame) for block, frame in frames.items()]).encode())
    return f"imagingdb-{source.dataset_id}-{digest.hexdigest()[:16]}"


def frame_data_array(source: FrameSource, rows: Sequence[Any], selection: "Selection",
                     channel_names: dict[int, str], global_meta: dict[str, Any], *,
                     fill_value: Any = 0, verify: bool = False) -> "xarray.DataArray":
    """:func:`frame_array` as a labelled xarray DataArray: channel names on C, the indexes on
    P, T, Z (as ``pos_idx``, ``time_idx``, ``slice_idx`` too), and physical coordinates where
    the dataset's calibration gives them (X, Y: pixel size; Z: slice step; T: interval)."""
    xr = require("xarray", "to_xarray")
    from .calibration import calibration_of

    array = frame_array(source, rows, selection, fill_value=fill_value, verify=verify,
                        stacklevel=4)
    scales = calibration_of(global_meta).scales
    dims = AXES + ((COLOUR_AXIS,) if array.ndim > len(AXES) else ())
    coords = _coordinates(selection, channel_names, source.dims, scales)
    units = {axis.upper(): unit for axis, (_size, unit) in scales.items()}
    attrs = {"dataset_id": source.dataset_id, "frame_format": source.frame_format or "png",
             "units": units, "fill_value": fill_value}
    return xr.DataArray(array, dims=dims, coords=coords, attrs=attrs, name=source.dataset_id)


def _coordinates(selection: "Selection", channel_names: dict[int, str], dims: "Dimensions",
                 scales: dict[str, tuple[float, str]]) -> dict[str, Any]:
    """Dimension coordinates (physical where calibrated, else the indexes) and the indexes
    as non-dimension coordinates, named as the frame rows' columns."""
    coords: dict[str, Any] = {
        "P": selection.positions,
        "C": [channel_names.get(c) or str(c) for c in selection.channels],
        "pos_idx": ("P", selection.positions),
        "time_idx": ("T", selection.times),
        "channel_idx": ("C", selection.channels),
        "slice_idx": ("Z", selection.slices),
    }
    for axis, indexes in (("T", selection.times), ("Z", selection.slices),
                          ("Y", range(dims.im_height)), ("X", range(dims.im_width))):
        coords[axis] = _physical(axis, indexes, scales.get(axis.lower()))
    return coords


def _physical(axis: str, indexes: Sequence[int], scale: Optional[tuple[float, str]]) -> Any:
    """An axis's coordinate: index x size with its unit (a tuple xarray reads as dims, values,
    attrs), or the indexes themselves when the metadata gives no calibration."""
    import numpy as np

    if scale is None:
        return list(indexes)
    size, unit = scale
    return (axis, np.asarray(indexes, dtype=float) * size, {"units": unit})


def frames_table(rows: Sequence[Any]) -> "pandas.DataFrame":
    """One row per frame: indexes, channel name, file name, sha256, then every key of the
    frame's metadata as a column (nested keys joined by '.'; a key that repeats a column's
    name is kept as ``metadata.<key>``)."""
    pd = require("pandas", "frames_table")

    base = pd.DataFrame([[getattr(row, c) for c in TABLE_COLUMNS] for row in rows],
                        columns=list(TABLE_COLUMNS))
    meta = pd.json_normalize([getattr(row, "metadata_json", None) or {} for row in rows])
    meta.columns = [f"metadata.{c}" if c in TABLE_COLUMNS else c for c in meta.columns]
    return pd.concat([base, meta.set_axis(base.index)], axis=1)
