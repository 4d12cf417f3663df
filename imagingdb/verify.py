"""Verify: re-read a dataset's objects from storage and check them against its rows.

Every frame is fetched, decoded and hashed the way the upload hashed it (the
sha256 of its pixels, :func:`imagingdb.frames.pixel_sha256`); a file kept
whole is hashed byte for byte as it streams. A check reports

- ``missing``: a row names an object that storage does not have;
- ``corrupted``: the object does not decode, has the wrong shape or pixel
  type, or its sha256 differs from the recorded one;
- ``extra``: an object in the dataset's folders (``raw_frames/<ID>/``,
  ``raw_files/<ID>/``) that no row references (``imagingdb gc`` removes them);
- ``incomplete``: the rows disagree with themselves (frames_global counts
  more or fewer frames than the frames table holds, or a dataset has no
  frames_global/file_global row at all).

Frame rows are read from the database in pages and objects fetched by a
bounded thread pool, so memory holds one page of rows, the objects in
flight, and the set of referenced names of one dataset.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Optional

import sqlalchemy as sa

from . import db as dbq
from .acquisition import FrameIndex
from .errors import NotFoundError
from .ids import parse_dataset_id

if TYPE_CHECKING:
    from .api import Database
    from .storage import StorageBackend

ROWS_PER_PAGE = 2000
DATASET_FOLDERS = ("raw_frames", "raw_files")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset."""

    kind: str  # missing | corrupted | extra | incomplete
    key: str
    detail: str
    frame: Optional[FrameIndex] = None

    def to_json(self) -> dict[str, Any]:
        frame = None if self.frame is None else {
            "channel": self.frame.channel, "slice": self.frame.slice,
            "time": self.frame.time, "position": self.frame.position}
        return {"problem": self.kind, "key": self.key, "frame": frame, "detail": self.detail}

    def describe(self) -> str:
        where = "" if self.frame is None else (
            f" frame (c={self.frame.channel}, z={self.frame.slice}, t={self.frame.time}, "
            f"p={self.frame.position})")
        return f"{self.kind:<10} {self.key}{where}: {self.detail}"


@dataclass
class DatasetCheck:
    """The outcome of verifying one dataset."""

    dataset_id: str
    objects_checked: int = 0
    bytes_read: int = 0
    without_checksum: int = 0  # rows with no recorded sha256 (adopted data): decoded only
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, kind: str) -> int:
        return sum(1 for p in self.problems if p.kind == kind)

    def to_json(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "ok": self.ok,
                "objects_checked": self.objects_checked, "bytes_read": self.bytes_read,
                "without_checksum": self.without_checksum,
                "problems": [p.to_json() for p in self.problems]}


def verify_datasets(database: "Database", dataset_ids: Optional[list[str]] = None, *,
                    workers: Optional[int] = None) -> Iterator[DatasetCheck]:
    """Check the given datasets (all registered ones when None), one result each, as they finish."""
    if dataset_ids is None:
        with database.connection() as conn:
            dataset_ids = list(conn.execute(
                sa.select(dbq.data_set.c.dataset_serial).order_by(dbq.data_set.c.dataset_serial)
            ).scalars())
    else:
        dataset_ids = [parse_dataset_id(text).text for text in dataset_ids]
    for dataset_id in dataset_ids:
        yield verify_dataset(database, dataset_id, workers=workers)


def verify_dataset(database: "Database", dataset_id: str, *,
                   workers: Optional[int] = None) -> DatasetCheck:
    """Re-read every object of one dataset and report what is missing, corrupted or extra."""
    serial = parse_dataset_id(dataset_id).text
    with database.connection() as conn:
        row = dbq.find_dataset(conn, serial)
        if row is None:
            raise NotFoundError(f"dataset {serial} not found")
        owner = dbq.frames_global_of(conn, row.id) if row.frames else dbq.file_global_of(conn, row.id)
    check = DatasetCheck(serial)
    verifier = _Verifier(database, check, workers or max(4, 2 * (os.cpu_count() or 1)))
    if owner is None:
        table = "frames_global" if row.frames else "file_global"
        check.problems.append(Problem("incomplete", f"{_folder(row.frames)}/{serial}",
                                      f"the dataset has no {table} row"))
        referenced: set[str] = set()
    elif row.frames:
        referenced = verifier.check_frames(owner)
    else:
        referenced = verifier.check_file(owner)
    verifier.find_extra(serial, _storage_dir(owner, row.frames, serial), referenced)
    check.problems.sort(key=lambda p: (p.key, p.kind))
    return check


def _folder(frames: bool) -> str:
    return "raw_frames" if frames else "raw_files"


def _storage_dir(owner: Any, frames: bool, serial: str) -> str:
    # Early rows of the original imagingDB have no storage_dir; its layout is fixed.
    stored = (owner.storage_dir or "") if owner is not None else ""
    return stored.rstrip("/") or f"{_folder(frames)}/{serial}"


class _Verifier:
    """Checks the objects of one dataset with a bounded pool of threads."""

    def __init__(self, database: "Database", check: DatasetCheck, workers: int):
        self.database = database
        self.storage: "StorageBackend" = database.storage
        self.check = check
        self.workers = workers
        self._lock = threading.Lock()

    def _record(self, problem: Optional[Problem], nbytes: int) -> None:
        with self._lock:
            self.check.objects_checked += 1
            self.check.bytes_read += nbytes
            if problem is not None:
                self.check.problems.append(problem)

    # ------------------------------------------------------------------- frames

    def check_frames(self, frames_global: Any) -> set[str]:
        """Check every frame row; return the keys they reference."""
        storage_dir = _storage_dir(frames_global, True, self.check.dataset_id)
        shape: tuple[int, ...] = (frames_global.im_height, frames_global.im_width)
        if frames_global.im_colors > 1:
            shape += (frames_global.im_colors,)
        referenced: set[str] = set()
        with_rows = 0
        with cf.ThreadPoolExecutor(self.workers, thread_name_prefix="imagingdb-verify") as pool:
            in_flight = threading.BoundedSemaphore(self.workers * 2)
            futures: list[cf.Future] = []
            for frame in self._frame_rows(frames_global.id):
                with_rows += 1
                key = f"{storage_dir}/{frame.file_name}"
                referenced.add(key)
                in_flight.acquire()
                future = pool.submit(self._check_frame, key, frame, shape, frames_global.bit_depth)
                future.add_done_callback(lambda _f: in_flight.release())
                futures.append(future)
                futures = _drop_finished(futures)
            for future in futures:
                future.result()
        if with_rows != frames_global.nbr_frames:
            self.check.problems.append(Problem(
                "incomplete", storage_dir,
                f"frames_global records {frames_global.nbr_frames} frame(s) but the frames "
                f"table holds {with_rows}"))
        return referenced

    def _frame_rows(self, frames_global_pk: int) -> Iterator[Any]:
        """Frame rows in pages ordered by id, so a huge dataset never sits in memory."""
        columns = (dbq.frames.c.id, dbq.frames.c.channel_idx, dbq.frames.c.slice_idx,
                   dbq.frames.c.time_idx, dbq.frames.c.pos_idx, dbq.frames.c.file_name,
                   dbq.frames.c.sha256)
        after = None
        while True:
            stmt = (sa.select(*columns).where(dbq.frames.c.frames_global_id == frames_global_pk)
                    .order_by(dbq.frames.c.id).limit(ROWS_PER_PAGE))
            if after is not None:
                stmt = stmt.where(dbq.frames.c.id > after)
            with self.database.connection() as conn:
                page = conn.execute(stmt).all()
            yield from page
            if len(page) < ROWS_PER_PAGE:
                return
            after = page[-1].id

    def _check_frame(self, key: str, frame: Any, shape: tuple[int, ...], bit_depth: str) -> None:
        import numpy as np

        from .frames import decode_png_into, pixel_sha256

        index = FrameIndex(frame.channel_idx, frame.slice_idx, frame.time_idx, frame.pos_idx)
        try:
            data = self.storage.get_bytes(key)
        except KeyError:
            self._record(Problem("missing", key, "not in storage", index), 0)
            return
        pixels = np.empty(shape, np.dtype(bit_depth))
        try:
            decode_png_into(data, pixels, check_crc=True)  # any changed byte is corruption
        except Exception as exc:  # noqa: BLE001 - any failure to decode is corruption
            self._record(Problem("corrupted", key, f"cannot be decoded ({exc})", index), len(data))
            return
        problem = None
        if frame.sha256 is None:
            with self._lock:
                self.check.without_checksum += 1
        elif pixel_sha256(pixels) != frame.sha256:
            problem = Problem("corrupted", key, "the sha256 of its pixels differs from the "
                              f"recorded {frame.sha256[:12]}...", index)
        self._record(problem, len(data))

    # --------------------------------------------------------------------- file

    def check_file(self, file_global: Any) -> set[str]:
        key = f"{_storage_dir(file_global, False, self.check.dataset_id)}/{file_global.file_name}"
        digest, size = hashlib.sha256(), 0
        try:
            for chunk in self.storage.read_chunks(key):
                digest.update(chunk)
                size += len(chunk)
        except KeyError:
            self._record(Problem("missing", key, "not in storage"), 0)
            return {key}
        problem = None
        if file_global.sha256 is None:
            self.check.without_checksum += 1
        elif digest.hexdigest() != file_global.sha256:
            problem = Problem("corrupted", key, f"its sha256 differs from the recorded "
                              f"{file_global.sha256[:12]}...")
        self._record(problem, size)
        return {key}

    # -------------------------------------------------------------------- extra

    def find_extra(self, serial: str, storage_dir: str, referenced: set[str]) -> None:
        """Objects in the dataset's folders that no row references."""
        folders = dict.fromkeys([storage_dir, *(f"{name}/{serial}" for name in DATASET_FOLDERS)])
        for folder in folders:
            for key in self.storage.list_keys(f"{folder}/"):
                if key not in referenced:
                    self.check.problems.append(Problem("extra", key, "no row references it"))


def _drop_finished(futures: list[cf.Future]) -> list[cf.Future]:
    """The futures still running; a finished one re-raises what its worker could not report."""
    running = []
    for future in futures:
        if future.done():
            future.result()
        else:
            running.append(future)
    return running


def summarise(checks: list[DatasetCheck]) -> str:
    """One line about a whole run: the counts of each kind of problem."""
    failed = [c for c in checks if not c.ok]
    objects = sum(c.objects_checked for c in checks)
    if not failed:
        return f"verified {len(checks)} dataset(s), {objects} object(s): all match their checksums"
    counts = {kind: sum(c.count(kind) for c in checks)
              for kind in ("missing", "corrupted", "extra", "incomplete")}
    parts = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    return f"{len(failed)} of {len(checks)} dataset(s) failed verification ({parts})"

