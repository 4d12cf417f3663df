"""Getting data back: into a numpy array (`Dataset.read`) or into a folder (`download`).

One SQL query picks the frame rows; the storage backend fetches the keys
concurrently; frames are decoded straight into a preallocated array, or
their bytes copied to the destination unchanged.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import json
import math
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from .errors import ImagingDBError, InputError, WorkError
from .storage import validate_object_name

if TYPE_CHECKING:
    import numpy as np

    from .api import ChannelSelector, Dataset, Selection

FRAMES_META_COLUMNS = ("channel_idx", "slice_idx", "time_idx", "pos_idx", "channel_name",
                       "file_name", "sha256")


def _workers(workers: Optional[int], storage: Any) -> int:
    """Threads fetching objects: the caller's choice, the store's, else 2 per core (at least 4).

    Measured on 2 cores, 128 frames: decoding them (CPU work) took 1.03-1.16 s
    with 3-4 threads, 1.21-1.31 s with 8 (switching, per-thread buffers);
    copying them (kernel copies) as fast with 2-4 threads as with 8. A store
    with latency (S3) sets its own number.
    """
    return workers or storage.transfer_workers or max(4, 2 * (os.cpu_count() or 1))


def read_frames(dataset: "Dataset", selection: "Selection", rows: Sequence[Any], *,
                fill_value: int, workers: Optional[int], verify: bool) -> "np.ndarray":
    """Decode the selected frames into one (P, T, C, Z, Y, X[, colours]) array."""
    import numpy as np

    from .frames import decode_png_into, pixel_sha256

    dims = dataset.dims
    shape = (len(selection.positions), len(selection.times), len(selection.channels),
             len(selection.slices), dims.im_height, dims.im_width)
    if dims.im_colors > 1:
        shape += (dims.im_colors,)
    dtype = np.dtype(dims.bit_depth)
    if len(rows) == math.prod(shape[:4]):
        # Every frame is decoded over its slot: writing the fill value first
        # would cost a pass over the whole array (~70 ms for 256 MB).
        out = np.empty(shape, dtype)
    else:
        out = np.full(shape, fill_value, dtype)
    axis = [{v: i for i, v in enumerate(values)} for values in
            (selection.positions, selection.times, selection.channels, selection.slices)]
    storage = dataset.database.storage
    storage_dir = dataset.storage_dir

    buffers = threading.local()  # each thread reads its objects into one buffer

    def fetch(row: Any) -> None:
        key = f"{storage_dir}/{row.file_name}"
        buffer = getattr(buffers, "buffer", b"")
        try:
            data = storage.get_bytes_into(key, buffer)
        except KeyError:
            raise WorkError(f"frame {key} of dataset {dataset.id} is missing from storage; "
                            f"run: imagingdb verify {dataset.id}") from None
        target = out[axis[0][row.pos_idx], axis[1][row.time_idx],
                     axis[2][row.channel_idx], axis[3][row.slice_idx]]
        try:
            decode_png_into(data, target)
        except ValueError as exc:
            raise WorkError(f"frame {key} of dataset {dataset.id} cannot be decoded: {exc}") from None
        if verify and row.sha256 and pixel_sha256(target) != row.sha256:
            raise WorkError(f"frame {key} of dataset {dataset.id} fails its sha256 check")
        if len(data) >= len(buffer):  # did not fit: room for this size and a bit more
            buffers.buffer = bytearray(len(data) * 5 // 4 + 4096)

    _run_all(fetch, rows, _workers(workers, storage))
    asked = len(selection.positions) * len(selection.times) * len(selection.channels) * len(
        selection.slices)
    if len(rows) < asked:
        _warn_missing(dataset.id, asked - len(rows), asked, fill_value)
    return out


def _warn_missing(dataset_id: str, missing: int, asked: int, fill_value: int) -> None:
    import warnings

    from .errors import MissingFramesWarning

    warnings.warn(MissingFramesWarning(
        f"dataset {dataset_id}: {missing} of the {asked} frames read were never recorded "
        f"(incomplete acquisition) and are filled with fill_value={fill_value}; "
        "Dataset.missing_frames() lists them"), stacklevel=4)


def _run_all(task: Callable[[Any], Any], items: Sequence[Any], workers: int,
             progress: Optional[Callable[[Any], None]] = None) -> None:
    """Run ``task`` over ``items`` in a thread pool; the first error stops the rest."""
    if not items:
        return
    with cf.ThreadPoolExecutor(min(workers, len(items)),
                               thread_name_prefix="imagingdb-fetch") as pool:
        futures = [pool.submit(task, item) for item in items]
        try:
            for future in cf.as_completed(futures):
                result = future.result()
                if progress is not None:
                    progress(result)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def download_dataset(
    dataset: "Dataset",
    dest: Path,
    *,
    channels: Optional[Sequence["ChannelSelector"]] = None,
    slices: Optional[Sequence[int]] = None,
    times: Optional[Sequence[int]] = None,
    positions: Optional[Sequence[int]] = None,
    metadata: bool = True,
    download: bool = True,
    workers: Optional[int] = None,
    progress: Any = None,
) -> Path:
    """Write ``dest/<ID>/`` with the frames or the file, plus metadata; returns that folder.

    The folder appears complete or not at all: everything is written to a
    hidden temporary folder beside it, renamed at the end.
    """
    target = dest / dataset.id
    if target.exists():
        raise InputError(f"destination {target} already exists; remove it or choose another --dest")
    if not dataset.is_frames and any(x is not None for x in (channels, slices, times, positions)):
        raise InputError(f"dataset {dataset.id} is a file kept whole: it has no channels, "
                         "slices, times or positions to select")
    selection = dataset.select(channels, slices, times, positions) if dataset.is_frames else None
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create destination {dest}: {exc.strerror}") from None
    staging = dest / f".{dataset.id}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        if dataset.is_frames:
            _download_frames(dataset, selection, staging, metadata=metadata,
                             download=download, workers=workers, progress=progress)
        else:
            _download_file(dataset, staging, metadata=metadata, download=download)
        os.rename(staging, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, ImagingDBError):
            raise WorkError(f"cannot write to {dest}: {exc.strerror or exc}") from None
        raise
    return target


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n",
                    encoding="utf-8")


def _download_frames(dataset: "Dataset", selection: "Selection", folder: Path, *,
                     metadata: bool, download: bool, workers: Optional[int],
                     progress: Any) -> None:
    rows = dataset._frame_rows(selection, with_metadata=False)
    if metadata:
        summary = dataset.summary()
        summary["missing_frames"] = [i.file_name for i in dataset.missing_frames()]
        _write_json(folder / "global_metadata.json", summary)
        with open(folder / "frames_meta.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(FRAMES_META_COLUMNS)
            for row in rows:
                writer.writerow([getattr(row, c) for c in FRAMES_META_COLUMNS])
    if not download:
        return
    storage = dataset.database.storage
    storage_dir = dataset.storage_dir
    if progress is not None:
        # MB/s here are of the PNG objects moved, whose sizes are known only once fetched.
        progress.start(dataset.id, len(rows), 0)

    for row in rows:  # names come from the database: none may lead out of the folder
        _safe_name(row.file_name, dataset.id)

    def fetch(row: Any) -> int:
        key = f"{storage_dir}/{row.file_name}"
        path = folder / row.file_name
        try:
            storage.get_file(key, str(path))
        except KeyError:
            raise WorkError(f"frame {key} of dataset {dataset.id} is missing from storage; "
                            f"run: imagingdb verify {dataset.id}") from None
        return path.stat().st_size

    def advance(nbytes: int) -> None:
        if progress is not None:
            progress.advance(1, nbytes)

    try:
        _run_all(fetch, rows, _workers(workers, storage), advance)
    except BaseException:
        if progress is not None:
            progress.finish(ok=False)
        raise
    if progress is not None:
        progress.finish()


def _download_file(dataset: "Dataset", folder: Path, *, metadata: bool, download: bool) -> None:
    info = dataset.file
    if metadata:
        summary = dataset.summary()
        _write_json(folder / "global_metadata.json", summary)
    if download:
        name = _safe_name(info["file_name"], dataset.id)
        try:
            dataset.database.storage.get_file(info["key"], str(folder / name))
        except KeyError:
            raise WorkError(f"file {info['key']} of dataset {dataset.id} is missing from "
                            f"storage; run: imagingdb verify {dataset.id}") from None


def _safe_name(name: str, dataset_id: str) -> str:
    """A file name from the database, refused if it is not a plain name (``../``, ``/``)."""
    try:
        return validate_object_name(name, "file name")
    except InputError:
        raise WorkError(f"dataset {dataset_id} names a file {name!r} in the database that "
                        "is not a plain file name; nothing was downloaded") from None
