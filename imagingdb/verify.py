"""Verify: re-read a dataset's objects from storage and check them against its rows.

Every frame is fetched, decoded and hashed the way the upload hashed it (the
sha256 of its pixels, :func:`imagingdb.codecs.pixel_sha256`); a file kept
whole is hashed byte for byte as it streams. A check reports

- ``missing``: a row names an object that storage does not have;
- ``corrupted``: the object does not decode, has the wrong shape or pixel
  type, or its sha256 differs from the recorded one;
- ``extra``: an object in the dataset's own folder (the generation its row
  records, :mod:`imagingdb.layout`) that no row references (``imagingdb gc``
  removes them);
- ``incomplete``: the rows disagree with themselves (frames_global counts
  more or fewer frames than the frames table holds, or a dataset has no
  frames_global/file_global row at all).

Objects in the other generation folders of the dataset ID (``raw_frames/<ID>/``,
``raw_files/<ID>/`` and the ``g<token>`` folders inside them) belong to other
upload attempts: an overwrite killed before its commit, or the generation an
overwrite replaced, not yet deleted. They are no damage to the dataset, so
they are only noted, as leftovers (``imagingdb gc`` removes them).

Frame rows are read from the database in pages and objects fetched by a
bounded thread pool, so memory holds one page of rows, the objects in
flight, and the set of referenced names of one dataset.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Optional

from . import db as dbq
from . import layout
from .acquisition import FrameIndex
from .codecs import frame_codec
from .errors import NotFoundError
from .ids import parse_dataset_id
from .pool import TRANSFER, default_workers, run_bounded
from .progress import Progress
from .replicas import reading_store, stores_holding
from .site import Site
from .storage import sha256_of_chunks

if TYPE_CHECKING:
    from .codecs import FrameCodec
    from .storage import StorageBackend

ROWS_PER_PAGE = 2000


@dataclass(frozen=True)
class ObjectProblem:
    """One thing wrong with a dataset's objects or rows."""

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
    store: str = ""  # the store whose copy was checked
    objects_checked: int = 0
    bytes_read: int = 0
    without_checksum: int = 0  # rows with no recorded sha256 (adopted data): decoded only
    problems: list[ObjectProblem] = field(default_factory=list)
    #: generation folder -> how many objects other upload attempts left there (not problems)
    leftovers: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, kind: str) -> int:
        return sum(1 for p in self.problems if p.kind == kind)

    def to_json(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "store": self.store, "ok": self.ok,
                "objects_checked": self.objects_checked, "bytes_read": self.bytes_read,
                "without_checksum": self.without_checksum,
                "problems": [p.to_json() for p in self.problems],
                "leftovers": [{"folder": folder, "objects": count}
                              for folder, count in sorted(self.leftovers.items())]}

    def describe_leftovers(self) -> list[str]:
        """One line per generation folder of other upload attempts."""
        return [f"{'leftover':<10} {folder}: {count} object(s) of another upload attempt, not "
                "part of the dataset (imagingdb gc removes them)"
                for folder, count in sorted(self.leftovers.items())]


def verify_datasets(site: Site, dataset_ids: Optional[list[str]] = None, *,
                    workers: Optional[int] = None, store: Optional[str] = None,
                    all_stores: bool = False,
                    progress: Optional[Progress] = None) -> Iterator[DatasetCheck]:
    """Check the given datasets (all registered ones when None), one result each, as they
    finish: their copy in ``store`` (None: the one reads use, :mod:`imagingdb.replicas`), or
    with ``all_stores`` every copy, one result per dataset and store. Without IDs, ``store``
    checks the datasets it holds a copy of. ``progress`` counts the objects and bytes read,
    of those recorded at upload."""
    if store is not None:
        site.store_settings(store)  # an unknown name, before any work
    named = dataset_ids is not None
    progress = progress or Progress()
    with site.connection() as conn:
        if dataset_ids is None:
            dataset_ids = dbq.all_dataset_serials(conn)
        else:
            dataset_ids = [parse_dataset_id(text).text for text in dataset_ids]
        # (dataset ID, store, the stores holding it when `store` holds no copy of it)
        plan: list[tuple[str, Optional[str], Optional[list[str]]]] = []
        for dataset_id in dataset_ids:
            row = dbq.find_dataset(conn, dataset_id)
            if row is None:
                raise NotFoundError(f"dataset {dataset_id} not found")
            holding = stores_holding(conn, site, row.id)
            if all_stores:
                plan += [(dataset_id, name, None) for name in holding]
            elif store is None or store in holding:
                plan.append((dataset_id, store, None))
            elif named:
                plan.append((dataset_id, store, holding))
        sizes = dbq.stored_sizes(conn, dataset_ids)
    checked = [sizes.get(dataset_id, (0, None)) for dataset_id, _, lacking in plan
               if lacking is None]
    total_bytes = 0 if any(size is None for _, size in checked) else sum(s for _, s in checked)
    label = dataset_ids[0] if len(dataset_ids) == 1 else f"{len(dataset_ids)} datasets"
    progress.start(label, sum(objects for objects, _ in checked), total_bytes, unit="object")
    try:
        for dataset_id, name, holding in plan:
            if holding is None:
                yield verify_dataset(site, dataset_id, workers=workers, store=name,
                                     progress=progress)
                continue
            check = DatasetCheck(dataset_id, name)
            check.problems.append(ObjectProblem(
                "missing", dataset_id, f"no complete copy in store {name!r} (copies: "
                f"{', '.join(holding)}); imagingdb sync --to {name} --id {dataset_id} makes one"))
            yield check
    except BaseException:
        progress.finish(ok=False)
        raise
    progress.finish()


def verify_dataset(site: Site, dataset_id: str, *, workers: Optional[int] = None,
                   store: Optional[str] = None,
                   progress: Optional[Progress] = None) -> DatasetCheck:
    """Re-read every object of one dataset's copy in ``store`` (None: the one reads use) and
    report what is missing, corrupted or extra; an intact copy is recorded as verified."""
    dataset_id = parse_dataset_id(dataset_id).text
    with site.connection() as conn:
        row = dbq.find_dataset(conn, dataset_id)
        if row is None:
            raise NotFoundError(f"dataset {dataset_id} not found")
        owner = dbq.frames_global_of(conn, row.id) if row.frames else dbq.file_global_of(conn, row.id)
    if store is None:
        store, storage = reading_store(site, row.id, dataset_id)
    else:
        storage = site.store(store)
    check = DatasetCheck(dataset_id, store)
    verifier = _Verifier(site, storage, check,
                         workers or default_workers(TRANSFER, storage.transfer_workers),
                         progress or Progress())
    storage_dir = layout.storage_dir(owner.storage_dir if owner is not None else None,
                                     row.frames, dataset_id)
    if owner is None:
        table = "frames_global" if row.frames else "file_global"
        check.problems.append(ObjectProblem("incomplete", storage_dir, f"the dataset has no {table} row"))
        referenced: set[str] = set()
    elif row.frames:
        referenced = verifier.check_frames(owner, storage_dir)
    else:
        referenced = verifier.check_file(owner, storage_dir)
    verifier.find_extra(dataset_id, storage_dir, referenced)
    check.problems.sort(key=lambda p: (p.key, p.kind))
    if owner is not None and not any(p.kind in ("missing", "corrupted", "incomplete")
                                     for p in check.problems):
        with site.connection(write=True) as conn:
            again = (dbq.frames_global_of if row.frames else dbq.file_global_of)(conn, row.id)
            if again is not None and again.storage_dir == owner.storage_dir:  # not replaced meanwhile
                dbq.record_replicas(conn, row.id, [store], verified=True)
    return check


def frame_problem(data: bytes, sha256: Optional[str], shape: tuple[int, ...], bit_depth: str,
                  codec: "FrameCodec") -> Optional[str]:
    """What is wrong with a stored frame's bytes (None: they decode to the frame's shape and
    pixel type, and to pixels with the recorded ``sha256`` when there is one)."""
    import numpy as np

    pixels = np.empty(shape, np.dtype(bit_depth))
    try:
        codec.decode_into(data, pixels, check=True)  # any changed byte is corruption
    except Exception as exc:  # noqa: BLE001 - any failure to decode is corruption
        return f"cannot be decoded ({exc})"
    if sha256 is not None and codec.pixel_hash(pixels) != sha256:
        return f"the sha256 of its pixels differs from the recorded {sha256[:12]}..."
    return None


def frame_shape(frames_global: Any) -> tuple[int, ...]:
    """The array shape of one frame of a frames_global row."""
    shape: tuple[int, ...] = (frames_global.im_height, frames_global.im_width)
    return shape + ((frames_global.im_colors,) if frames_global.im_colors > 1 else ())


def expected_documents(frames_global: Any, dataset_id: str, positions: list[int],
                       highest: tuple[int, int, int]) -> dict[str, dict[str, Any]]:
    """The zarr.json documents an ome-zarr store of these rows has, by name in the store,
    each as :func:`imagingdb.omezarr.document_problem` compares it."""
    from .omezarr import StoreSpec, document_tree, grid_shape

    g = frames_global
    times, channels, slices = grid_shape(
        (g.nbr_timepoints, g.nbr_channels, g.nbr_slices), highest)
    return document_tree(StoreSpec(
        name=dataset_id, positions=positions, dtype=g.bit_depth,
        shape=(times, channels, slices, g.im_height, g.im_width),
        channel_names=[f"channel{c}" for c in range(channels)]))


class _Verifier:
    """Checks the objects of one dataset with a bounded pool of threads."""

    def __init__(self, site: Site, storage: "StorageBackend", check: DatasetCheck, workers: int,
                 progress: Progress):
        self.site = site
        self.storage = storage
        self.check = check
        self.workers = workers
        self.progress = progress
        self._lock = threading.Lock()

    def _record(self, problem: Optional[ObjectProblem], nbytes: int, shown: bool = False) -> None:
        """One object checked (``shown``: its bytes are on the progress bar already)."""
        with self._lock:
            self.check.objects_checked += 1
            self.check.bytes_read += nbytes
            if problem is not None:
                self.check.problems.append(problem)
            self.progress.advance(1, 0 if shown else nbytes)

    def _shown(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """The chunks of a file kept whole, counted on the progress bar as they stream."""
        for chunk in chunks:
            with self._lock:
                self.progress.advance(0, len(chunk))
            yield chunk

    # ------------------------------------------------------------------- frames

    def check_frames(self, frames_global: Any, storage_dir: str) -> set[str]:
        """Check every frame row (and an ome-zarr store's zarr.json); return the keys they
        reference."""
        shape = frame_shape(frames_global)
        frame_format = getattr(frames_global, "frame_format", None) or layout.PNG
        codec = frame_codec(frame_format)
        referenced: set[str] = set()
        counted = [0]
        positions: set[int] = set()
        highest = [-1, -1, -1]  # t, c, z

        def keyed_rows() -> Iterator[tuple[str, Any]]:
            for frame in self._frame_rows(frames_global.id):
                counted[0] += 1
                positions.add(frame.pos_idx)
                for axis, index in enumerate((frame.time_idx, frame.channel_idx, frame.slice_idx)):
                    highest[axis] = max(highest[axis], index)
                key = layout.object_key(storage_dir, frame.file_name)
                referenced.add(key)
                yield key, frame

        run_bounded(lambda item: self._check_frame(*item, shape, frames_global.bit_depth, codec),
                    keyed_rows(), self.workers, name="imagingdb-verify")
        with_rows = counted[0]
        if with_rows != frames_global.nbr_frames:
            self.check.problems.append(ObjectProblem(
                "incomplete", storage_dir,
                f"frames_global records {frames_global.nbr_frames} frame(s) but the frames "
                f"table holds {with_rows}"))
        if frame_format == layout.OME_ZARR:
            referenced |= self._check_documents(frames_global, storage_dir, sorted(positions),
                                                tuple(highest))
        return referenced

    def _check_documents(self, frames_global: Any, storage_dir: str, positions: list[int],
                         highest: tuple[int, int, int]) -> set[str]:
        """The zarr.json documents of an ome-zarr store: there, and still saying where the
        frames are (compared with what the upload wrote for these rows)."""
        from .omezarr import document_problem

        expected = expected_documents(frames_global, self.check.dataset_id, positions, highest)
        keys = set()
        for name, wanted in expected.items():
            key = layout.object_key(storage_dir, name)
            keys.add(key)
            try:
                data = self.storage.get_bytes(key)
            except KeyError:
                self._record(ObjectProblem("missing", key, "not in storage (the store's metadata: "
                                           "readers cannot find the frames without it)"), 0)
                continue
            detail = document_problem(data, wanted)
            self._record(None if detail is None else ObjectProblem("corrupted", key, detail),
                         len(data))
        return keys

    def _frame_rows(self, frames_global_pk: int) -> Iterator[Any]:
        """Frame rows in pages ordered by id, so a huge dataset never sits in memory."""
        after = None
        while True:
            with self.site.connection() as conn:
                page = dbq.frame_rows_after(conn, frames_global_pk, after, ROWS_PER_PAGE)
            yield from page
            if len(page) < ROWS_PER_PAGE:
                return
            after = page[-1].id

    def _check_frame(self, key: str, frame: Any, shape: tuple[int, ...], bit_depth: str,
                     codec: "FrameCodec") -> None:
        index = FrameIndex(frame.channel_idx, frame.slice_idx, frame.time_idx, frame.pos_idx)
        try:
            data = self.storage.get_bytes(key)
        except KeyError:
            self._record(ObjectProblem("missing", key, "not in storage", index), 0)
            return
        if frame.sha256 is None:
            with self._lock:
                self.check.without_checksum += 1
        detail = frame_problem(data, frame.sha256, shape, bit_depth, codec)
        self._record(None if detail is None else ObjectProblem("corrupted", key, detail, index),
                     len(data))

    # --------------------------------------------------------------------- file

    def check_file(self, file_global: Any, storage_dir: str) -> set[str]:
        key = layout.object_key(storage_dir, file_global.file_name)
        try:
            checksum, size = sha256_of_chunks(self._shown(self.storage.read_chunks(key)))
        except KeyError:
            self._record(ObjectProblem("missing", key, "not in storage"), 0)
            return {key}
        problem = None
        if file_global.sha256 is None:
            self.check.without_checksum += 1
        elif checksum != file_global.sha256:
            problem = ObjectProblem("corrupted", key, f"its sha256 differs from the recorded "
                              f"{file_global.sha256[:12]}...")
        self._record(problem, size, shown=True)
        return {key}

    # -------------------------------------------------------------------- extra

    def find_extra(self, dataset_id: str, storage_dir: str, referenced: set[str]) -> None:
        """Unreferenced objects: ``extra`` in the dataset's own folder, leftovers in the other
        generation folders of its ID."""
        for key in self._keys_of(dataset_id, storage_dir):
            if key in referenced:
                continue
            generation = layout.folder_of(key)
            if generation is None or generation == storage_dir:
                self.check.problems.append(ObjectProblem("extra", key, "no row references it"))
            else:
                self.check.leftovers[generation] = self.check.leftovers.get(generation, 0) + 1

    def _keys_of(self, dataset_id: str, storage_dir: str) -> Iterator[str]:
        """Every key in the dataset's folder and its ID's dataset folders, each once."""
        folders = list(dict.fromkeys([storage_dir, layout.dataset_folder(dataset_id, frames=True),
                                      layout.dataset_folder(dataset_id, frames=False)]))
        for folder in folders:
            if not any(folder.startswith(f"{other}/") for other in folders):  # listed with it
                yield from self.storage.list_keys(f"{folder}/")


class VerifyRun:
    """The checks of a verify run, as they finish; :meth:`summary` sums them up."""

    def __init__(self, checks: Iterator[DatasetCheck]):
        self._pending = checks
        self.checks: list[DatasetCheck] = []

    def __iter__(self) -> Iterator[DatasetCheck]:
        for check in self._pending:
            self.checks.append(check)
            yield check

    @property
    def ok(self) -> bool:
        """True if every dataset checked so far matches its checksums."""
        return all(check.ok for check in self.checks)

    def summary(self) -> str:
        """One line about the run: the counts of each kind of problem."""
        checks = self.checks
        failed = [c for c in checks if not c.ok]
        objects = sum(c.objects_checked for c in checks)
        leftovers = sum(sum(c.leftovers.values()) for c in checks)
        if not failed:
            note = (f"; {leftovers} object(s) of other upload attempts left (imagingdb gc removes "
                    "them)") if leftovers else ""
            return (f"verified {len(checks)} dataset(s), {objects} object(s): all match their "
                    f"checksums{note}")
        counts = {kind: sum(c.count(kind) for c in checks)
                  for kind in ("missing", "corrupted", "extra", "incomplete")}
        parts = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        return f"{len(failed)} of {len(checks)} dataset(s) failed verification ({parts})"
