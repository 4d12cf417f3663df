"""Getting data back: frames into a numpy array (`Dataset.read`), objects into a folder (`download`).

The Python API picks the frame rows in one SQL query and hands them here
with the storage backend: the backend fetches the keys concurrently
(:func:`imagingdb.pool.run_bounded`); frames are decoded straight into a
preallocated array, or their bytes copied to the destination unchanged.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence

from . import layout
from .errors import ImagingDBError, InputError, WorkError
from .pool import TRANSFER, default_workers, run_bounded
from .storage import file_sha256, validate_object_name

if TYPE_CHECKING:
    import numpy as np

    from .acquisition import Dimensions
    from .storage import StorageBackend

FRAMES_META_COLUMNS = ("channel_idx", "slice_idx", "time_idx", "pos_idx", "channel_name",
                       "file_name", "sha256")


@dataclass(frozen=True)
class Selection:
    """Index lists of a read or download, in the order asked (or ascending when not asked)."""

    channels: list[int]
    slices: list[int]
    times: list[int]
    positions: list[int]

    def as_filters(self) -> dict[str, list[int]]:
        return {"channels": self.channels, "slices": self.slices,
                "times": self.times, "positions": self.positions}

    def places(self) -> tuple[dict[int, int], dict[int, int], dict[int, int], dict[int, int]]:
        """Each axis's dataset index -> its place in the selection, in the order of read()'s
        axes: positions, times, channels, slices."""
        return tuple({value: place for place, value in enumerate(values)} for values in
                     (self.positions, self.times, self.channels, self.slices))

    @property
    def size(self) -> int:
        """How many frames the selected grid holds."""
        return len(self.channels) * len(self.slices) * len(self.times) * len(self.positions)


def missing_from_storage(key: str, dataset_id: str, what: str = "frame") -> WorkError:
    """The error of an object a row names and storage lacks."""
    return WorkError(f"{what} {key} of dataset {dataset_id} is missing from storage; "
                     f"run: imagingdb verify {dataset_id}")


# ------------------------------------------------------------------- read


def read_frames(storage: "StorageBackend", storage_dir: str, rows: Sequence[Any],
                selection: Selection, dims: "Dimensions", *, dataset_id: str,
                fill_value: int, workers: Optional[int], verify: bool,
                frame_format: Optional[str] = None) -> "np.ndarray":
    """Decode the frame ``rows`` into one (P, T, C, Z, Y, X[, colours]) array of ``selection``
    (``frame_format``: the dataset's layout, None for png)."""
    import numpy as np

    from .codecs import frame_codec

    codec = frame_codec(frame_format)
    shape = (len(selection.positions), len(selection.times), len(selection.channels),
             len(selection.slices), dims.im_height, dims.im_width)
    if dims.im_colors > 1:
        shape += (dims.im_colors,)
    dtype = np.dtype(dims.bit_depth)
    check_fill_value(fill_value, dtype)
    if len(rows) == math.prod(shape[:4]):
        # Every frame is decoded over its slot: writing the fill value first
        # would cost a pass over the whole array (~70 ms for 256 MB).
        out = np.empty(shape, dtype)
    else:
        out = np.full(shape, fill_value, dtype)
    axis = selection.places()
    buffers = threading.local()  # each thread reads its objects into one buffer

    def fetch(row: Any) -> None:
        key = layout.object_key(storage_dir, row.file_name)
        buffer = getattr(buffers, "buffer", b"")
        try:
            data = storage.get_bytes_into(key, buffer)
        except KeyError:
            raise missing_from_storage(key, dataset_id) from None
        target = out[axis[0][row.pos_idx], axis[1][row.time_idx],
                     axis[2][row.channel_idx], axis[3][row.slice_idx]]
        _decode_checked(codec, data, target, row, key, dataset_id, verify)
        if len(data) >= len(buffer):  # did not fit: room for this size and a bit more
            buffers.buffer = bytearray(len(data) * 5 // 4 + 4096)

    if rows:
        run_bounded(fetch, rows, min(len(rows), workers or default_workers(
            TRANSFER, storage.transfer_workers)), name="imagingdb-read")
    if len(rows) < selection.size:
        warn_missing(dataset_id, selection.size - len(rows), selection.size,
                     f"are filled with fill_value={fill_value}", stacklevel=3)
    return out


def read_frame(storage: "StorageBackend", storage_dir: str, row: Any, dims: "Dimensions", *,
               dataset_id: str, frame_format: Optional[str] = None, verify: bool = False,
               codec: Any = None) -> "np.ndarray":
    """One frame row's pixels, (Y, X[, colours]) of the dataset's recorded type: the unit of
    :func:`iter_frames` and of lazy (dask) reads. ``codec``: the layout's, if already made."""
    import numpy as np

    from .codecs import frame_codec

    codec = codec or frame_codec(frame_format)
    key = layout.object_key(storage_dir, row.file_name)
    try:
        data = storage.get_bytes(key)
    except KeyError:
        raise missing_from_storage(key, dataset_id) from None
    shape = (dims.im_height, dims.im_width) + ((dims.im_colors,) if dims.im_colors > 1 else ())
    pixels = np.empty(shape, np.dtype(dims.bit_depth))
    _decode_checked(codec, data, pixels, row, key, dataset_id, verify)
    return pixels


def _decode_checked(codec: Any, data: "bytes | memoryview", out: "np.ndarray", row: Any, key: str,
                    dataset_id: str, verify: bool) -> None:
    """Decode a frame's object into ``out``; WorkError naming it if it cannot be decoded or
    (``verify``) fails its recorded sha256."""
    try:
        codec.decode_into(data, out)
    except ValueError as exc:
        raise WorkError(f"frame {key} of dataset {dataset_id} cannot be decoded: {exc}") from None
    if verify and row.sha256 and codec.pixel_hash(out) != row.sha256:
        raise WorkError(f"frame {key} of dataset {dataset_id} fails its sha256 check")


def iter_frames(storage: "StorageBackend", storage_dir: str, rows: Iterable[Any],
                dims: "Dimensions", *, dataset_id: str, frame_format: Optional[str] = None,
                workers: Optional[int] = None, verify: bool = False
                ) -> Iterator[tuple[Any, "np.ndarray"]]:
    """(row, pixels) of every frame row, IN THE ROWS' ORDER, fetched and decoded ahead by a
    bounded pool: memory holds at most ``2 x workers`` frames, whatever the dataset's size
    (for writers that stream frames in order: OME-TIFF pages, exports)."""
    import collections
    import concurrent.futures as cf

    from .codecs import frame_codec

    codec = frame_codec(frame_format)
    workers = workers or default_workers(TRANSFER, storage.transfer_workers)
    ahead: collections.deque = collections.deque()
    with cf.ThreadPoolExecutor(workers, thread_name_prefix="imagingdb-frames") as pool:
        try:
            for row in rows:
                ahead.append((row, pool.submit(read_frame, storage, storage_dir, row, dims,
                                               dataset_id=dataset_id, verify=verify, codec=codec)))
                if len(ahead) >= 2 * workers:
                    done_row, future = ahead.popleft()
                    yield done_row, future.result()
            while ahead:
                done_row, future = ahead.popleft()
                yield done_row, future.result()
        finally:
            for _row, future in ahead:
                future.cancel()


def warn_missing(dataset_id: str, missing: int, asked: int, what: str, *,
                 stacklevel: int) -> None:
    """The MissingFramesWarning of a read or export of an incomplete acquisition: ``missing``
    of the ``asked`` frames were never recorded, and ``what`` became of them."""
    import warnings

    from .errors import MissingFramesWarning

    warnings.warn(MissingFramesWarning(
        f"dataset {dataset_id}: {missing} of the {asked} frames asked for were never recorded "
        f"(incomplete acquisition) and {what}; Dataset.missing_frames() lists them"),
        stacklevel=stacklevel + 1)


def check_fill_value(fill_value: Any, dtype: "np.dtype") -> None:
    """Refuse, before any work, a fill value the pixels cannot hold (70000 for uint16)."""
    import numpy as np

    try:
        np.full((), fill_value, dtype)
    except (OverflowError, ValueError, TypeError):
        raise InputError(f"fill_value {fill_value!r} does not fit the dataset's {dtype} pixels; "
                         "choose a value of that type") from None


# --------------------------------------------------------------- download


@dataclass
class DownloadPlan:
    """What to write into ``DEST/<ID>/``: objects to copy and the metadata beside them."""

    dataset_id: str
    storage: "StorageBackend"
    #: (key, file name) of each object to copy; file names come from the database
    objects: list[tuple[str, str]] = field(default_factory=list)
    #: global_metadata.json; None writes none (--no-metadata)
    summary: Optional[dict[str, Any]] = None
    #: frames_meta.csv rows (frames datasets); None writes none
    frame_rows: Optional[Sequence[Any]] = None
    #: streams (channel, slice, time, position, metadata) of ``frame_rows``, in their order:
    #: frames_meta.csv's metadata columns and frames_meta.jsonl (None: neither)
    frame_metadata: Optional[Callable[[], Iterable[tuple[int, int, int, int, Any]]]] = None
    #: file name -> the sha256 a file already in the folder must have to be kept by --resume,
    #: and of what: "pixels" (a PNG frame's) or "bytes" (a file kept whole)
    checksums: dict[str, tuple[Optional[str], str]] = field(default_factory=dict)
    #: the sha256 of the pixels of a frame object's bytes (--resume's check of a PNG)
    pixel_hash: Optional[Callable[[bytes], str]] = None
    #: files --resume found already there with their checksum, and kept
    kept: int = 0
    #: frames are counted on the progress bar; a file kept whole is one copy
    is_frames: bool = True
    #: writes the frames into the folder instead of copying ``objects`` (an ome-zarr
    #: dataset's store, :func:`imagingdb.export.write_ome_zarr`); called with the folder and
    #: the workers and progress of the download
    write_frames: Optional[Callable[..., None]] = None


def check_destination(dest: Path, dataset_id: str) -> Path:
    """``dest/<ID>``, refused when it already exists (a download never merges into a folder)
    or is a symbolic link (see :func:`refuse_existing`)."""
    return refuse_existing(dest / dataset_id, "--dest")


def refuse_existing(target: Path, option: str) -> Path:
    """``target``, refused if it exists (nothing is ever merged into or replaced) or is a
    symbolic link, dangling or not (it would be written where the link points); ``option``
    names what to choose instead."""
    if target.is_symlink():
        raise InputError(f"destination {target} is a symbolic link (to {os.readlink(target)}); "
                         f"remove it or choose another {option}")
    if target.exists():
        raise InputError(f"destination {target} already exists; remove it or choose another "
                         f"{option}")
    return target


def download(plan: DownloadPlan, dest: Path, *, workers: Optional[int] = None,
             progress: Any = None, resume: bool = False) -> Path:
    """Write ``dest/<ID>/`` from ``plan``; returns that folder.

    The folder appears complete or not at all: everything is written to a
    hidden temporary folder beside it, renamed at the end. With ``resume``, a
    folder already there (an interrupted download, or one of another selection)
    keeps the files that have the sha256 the database records, and gets the rest
    (each written under a temporary name, then renamed) and fresh metadata.
    """
    if resume:
        folder = _resumable(dest, plan.dataset_id)
        if folder is not None:
            return _resume(plan, folder, dest / plan.dataset_id, workers=workers,
                           progress=progress)
    target = check_destination(dest, plan.dataset_id)
    names = [_safe_name(name, plan.dataset_id) for _key, name in plan.objects]
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create destination {dest}: {exc.strerror}") from None
    staging = dest / f".{plan.dataset_id}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        _write_metadata(plan, staging)
        if plan.write_frames is not None:
            plan.write_frames(staging, workers=workers, progress=progress)
        _copy_objects(plan, list(zip((key for key, _ in plan.objects), names)), staging,
                      workers=workers, progress=progress)
        os.rename(staging, target)
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt):  # Ctrl-C keeps it for --resume
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, ImagingDBError):
            raise WorkError(f"cannot write to {dest}: {exc.strerror or exc}") from None
        raise
    return target


def _write_metadata(plan: DownloadPlan, folder: Path) -> None:
    """global_metadata.json, frames_meta.jsonl (each frame's row and whole metadata, a JSON
    object a line) and frames_meta.csv (the row, then the metadata flattened into columns:
    ``Camera``, ``ROI.x``...), each written under a temporary name and renamed."""
    if plan.summary is not None:
        _write_file(folder / "global_metadata.json", lambda handle: handle.write(
            json.dumps(plan.summary, indent=2, sort_keys=True, default=str) + "\n"))
    if plan.frame_rows is None:
        return
    columns: dict[str, None] = {}  # the flattened metadata keys, in order of first sight
    jsonl = folder / "frames_meta.jsonl"
    if plan.frame_metadata is not None:
        def write_jsonl(handle) -> None:
            for row, meta in zip(plan.frame_rows, _aligned(plan.frame_rows, plan.frame_metadata())):
                record = {c: getattr(row, c) for c in FRAMES_META_COLUMNS}
                record["metadata"] = meta
                columns.update(dict.fromkeys(flatten(meta)))
                handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

        _write_file(jsonl, write_jsonl)
    extra = [c for c in columns if c not in FRAMES_META_COLUMNS]

    def write_csv(handle) -> None:
        writer = csv.writer(handle)
        writer.writerow([*FRAMES_META_COLUMNS, *extra])
        if plan.frame_metadata is None:
            for row in plan.frame_rows:
                writer.writerow([getattr(row, c) for c in FRAMES_META_COLUMNS])
            return
        with open(jsonl, encoding="utf-8") as records:  # the metadata read back, a line at a time
            for line in records:
                record = json.loads(line)
                flat = flatten(record.pop("metadata"))
                writer.writerow([_csv_cell(record[c]) for c in FRAMES_META_COLUMNS]
                                + [_csv_cell(flat.get(c)) for c in extra])

    _write_file(folder / "frames_meta.csv", write_csv, newline="")


def _aligned(rows: Sequence[Any], metadata: Iterable[tuple[int, int, int, int, Any]]
             ) -> Iterator[Any]:
    """The metadata of each row, checked to be that row's (both come in index order)."""
    metadata = iter(metadata)
    for row in rows:
        c, z, t, p, meta = next(metadata, (None,) * 5)
        if (c, z, t, p) != (row.channel_idx, row.slice_idx, row.time_idx, row.pos_idx):
            raise WorkError("the frames changed during the download (an overwrite?); "
                            "download again")
        yield meta


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A frame's metadata as one level of ``key.subkey`` names; lists stay whole."""
    if not isinstance(value, dict):
        return {} if not prefix and value is None else {prefix or "metadata": value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, dict) and item:
            flat.update(flatten(item, name))
        else:
            flat[name] = item
    return flat


def _csv_cell(value: Any) -> str:
    """A CSV cell as JSON writes values: true/false, no Python reprs; lists and objects as
    JSON text; nothing for null."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _write_file(path: Path, write: Callable[[Any], Any], newline: Optional[str] = None) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", encoding="utf-8", newline=newline) as handle:
        write(handle)
    os.replace(partial, path)


def partial_folders(dest: Path, dataset_id: str) -> list[Path]:
    """The hidden folders interrupted downloads of ``dataset_id`` left in ``dest``, newest
    first (Ctrl-C keeps one; a killed download leaves one)."""
    found = [path for path in dest.glob(f".{dataset_id}.partial-*")
             if path.is_dir() and not path.is_symlink()]
    return sorted(found, key=lambda path: path.stat().st_mtime, reverse=True)


def _resumable(dest: Path, dataset_id: str) -> Optional[Path]:
    """The folder --resume continues: ``dest/<ID>`` if there, else the newest partial one."""
    target = dest / dataset_id
    if target.is_symlink():
        refuse_existing(target, "--dest")
    if target.is_dir():
        return target
    partials = partial_folders(dest, dataset_id) if dest.is_dir() else []
    return partials[0] if partials else None


def _resume(plan: DownloadPlan, folder: Path, target: Path, *, workers: Optional[int],
            progress: Any) -> Path:
    """Complete ``folder`` (``target`` itself, or a partial folder renamed to it at the end)."""
    if plan.write_frames is not None:
        raise InputError(f"--resume adds files to a download of PNG frames or of a file; the "
                         f"download of an ome-zarr dataset is one store: remove {folder} and "
                         "download again")
    names = [_safe_name(name, plan.dataset_id) for _key, name in plan.objects]
    try:
        _write_metadata(plan, folder)
        _copy_objects(plan, list(zip((key for key, _ in plan.objects), names)), folder,
                      workers=workers, progress=progress, keep_matching=True)
        if folder != target:
            os.rename(folder, target)
    except OSError as exc:
        raise WorkError(f"cannot write to {target}: {exc.strerror or exc}") from None
    return target


def _has_checksum(plan: DownloadPlan, path: Path, name: str) -> bool:
    """True if the file ``path`` is there with the sha256 the database records for ``name``."""
    expected, of = plan.checksums.get(name, (None, ""))
    if not expected or not path.is_file() or path.is_symlink():
        return False
    if of == "bytes":
        return file_sha256(path) == expected
    if plan.pixel_hash is None:
        return False
    data = path.read_bytes()  # one frame
    try:
        return plan.pixel_hash(data) == expected
    except (ValueError, ImagingDBError):  # not a frame of this dataset (cut short?): refetched
        return False


def _copy_objects(plan: DownloadPlan, objects: list[tuple[str, str]], folder: Path, *,
                  workers: Optional[int], progress: Any, keep_matching: bool = False) -> None:
    if not objects:
        return
    storage = plan.storage
    counting = progress is not None and plan.is_frames
    if counting:
        # MB/s here are of the PNG objects moved, whose sizes are known only once fetched.
        progress.start(plan.dataset_id, len(objects), 0)

    def fetch(item: tuple[str, str]) -> int:
        key, name = item
        path = folder / name
        if keep_matching:
            if _has_checksum(plan, path, name):
                with kept_lock:
                    plan.kept += 1
                return 0
            partial = folder / f".{name}.partial-{uuid.uuid4().hex[:8]}"
            try:
                storage.get_file(key, str(partial))
                os.replace(partial, path)
            except KeyError:
                raise missing_from_storage(key, plan.dataset_id,
                                           "frame" if plan.is_frames else "file") from None
            finally:
                partial.unlink(missing_ok=True)
            return path.stat().st_size
        try:
            storage.get_file(key, str(path))
        except KeyError:
            raise missing_from_storage(key, plan.dataset_id, "frame" if plan.is_frames else "file") from None
        return path.stat().st_size

    kept_lock = threading.Lock()

    def advance(nbytes: int) -> None:
        if counting:
            progress.advance(1, nbytes)

    try:
        run_bounded(fetch, objects, min(len(objects), workers or default_workers(
            TRANSFER, storage.transfer_workers)), on_result=advance, name="imagingdb-fetch")
    except BaseException:
        if counting:
            progress.finish(ok=False)
        raise
    if counting:
        progress.finish()


def _safe_name(name: str, dataset_id: str) -> str:
    """A file name from the database, refused if it is not a plain name (``../``, ``/``)."""
    try:
        return validate_object_name(name, "file name")
    except InputError:
        raise WorkError(f"dataset {dataset_id} names a file {name!r} in the database that "
                        "is not a plain file name; nothing was downloaded") from None
