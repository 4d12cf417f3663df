"""Sync: copy each dataset's objects into the stores that lack a complete copy, checked.

The seed ran two tiers, a fast local store and an off-site S3 bucket, kept in
step by an external daily sync that nobody checked. ``imagingdb sync`` is
that sync, checked: for every dataset (or those asked) and every target
store without a recorded copy of it (:mod:`imagingdb.replicas`),

1. the objects the dataset's rows reference are enumerated (frames in pages,
   so memory holds one page of rows and the objects in flight);
2. each one the target already has is read there and checked against the
   rows (a frame decodes to the pixels of its recorded sha256; a file kept
   whole hashes to its sha256; an ome-zarr zarr.json says where the frames
   are): a copy left by an interrupted sync counts only once checked;
3. each one it lacks (or holds damaged) is read from a store holding a copy,
   checked the same way (a damaged source is never propagated), and written
   to the target by :meth:`~imagingdb.storage.StorageBackend.put_verified`
   (read back and compared, or on AWS S3 checked by S3 against the SHA-256
   sent with it, which it confirms);
4. once every object is there and checked and the target flushed, ONE
   transaction records the replica, after proving that the dataset is the
   one enumerated (not replaced or deleted meanwhile).

It holds the claim on each dataset ID while it works on it (as upload, delete
and rename do), so no upload of that ID overwrites it meanwhile. Killed at
any point, it has recorded no replica that is not complete: objects already
copied are checked and kept by the rerun, which then copies the rest.
Objects of a target's partial copy belong to a registered dataset, so
``imagingdb gc`` leaves them alone. ``no_copy`` records the copies that are
already complete (an adopted database whose bucket an external sync filled)
and copies nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from . import db as dbq
from . import faults, layout
from .claims import ClaimTakenError, claim_datasets
from .errors import ImagingDBError, NotFoundError, WorkError
from .ids import parse_dataset_id
from .pool import TRANSFER, default_workers, run_bounded
from .progress import Progress
from .replicas import stores_holding
from .site import Site
from .storage import ChunkStream, HashingReader, sha256_of_chunks
from .verify import ROWS_PER_PAGE, expected_documents, frame_problem, frame_shape

if TYPE_CHECKING:
    from .storage import StorageBackend

#: what became of one dataset in one target store
COPIED = "copied"        # objects were copied; the replica is recorded
RECORDED = "recorded"    # every object was there already; the replica is now recorded
PRESENT = "present"      # the replica was recorded already: nothing to do
PLANNED = "planned"      # dry run: what a sync would copy
INCOMPLETE = "incomplete"  # no_copy: objects are missing or damaged in the target
FAILED = "failed"        # an error; nothing recorded for it


@dataclass
class DatasetSync:
    """One dataset's sync into one store."""

    dataset_id: str
    store: str
    status: str = PRESENT
    source: Optional[str] = None  # the store it was copied from
    objects: int = 0              # objects the dataset has
    copied: int = 0               # objects written to the target (dry run: to write)
    bytes_copied: int = 0
    checked: int = 0              # objects found in the target and checked
    damaged: int = 0              # objects the target held damaged (rewritten unless no_copy)
    missing: int = 0              # objects the target lacked (no_copy)
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "store": self.store, "status": self.status,
                "source": self.source, "objects": self.objects, "copied": self.copied,
                "bytes_copied": self.bytes_copied, "checked": self.checked,
                "damaged": self.damaged, "missing": self.missing, "error": self.error}

    def describe(self) -> str:
        where = f"{self.dataset_id} -> {self.store}"
        if self.status == FAILED:
            return f"{where}: failed: {self.error}"
        if self.status == PRESENT:
            return f"{where}: already there"
        if self.status == PLANNED:
            return (f"{where}: would copy {self.copied} of {self.objects} object(s), "
                    f"{self.bytes_copied} bytes, from {self.source}")
        if self.status == INCOMPLETE:
            return (f"{where}: not recorded: {self.missing} object(s) missing and "
                    f"{self.damaged} damaged of {self.objects}")
        if self.status == RECORDED:
            return f"{where}: all {self.objects} object(s) were there and checked; recorded"
        damaged = f" ({self.damaged} damaged there rewritten)" if self.damaged else ""
        return (f"{where}: copied {self.copied} of {self.objects} object(s), "
                f"{self.bytes_copied} bytes, from {self.source}{damaged}; recorded")


@dataclass
class SyncReport:
    """Every dataset and store a sync looked at."""

    dry_run: bool
    no_copy: bool = False
    items: list[DatasetSync] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(item.status not in (FAILED, INCOMPLETE) for item in self.items)

    @property
    def exit_code(self) -> int:
        """0: every copy asked for is complete (or would be made); 1: some failed."""
        return 0 if self.ok else 1

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "no_copy": self.no_copy, "ok": self.ok,
                "copied_objects": sum(i.copied for i in self.items if i.status != PLANNED),
                "copied_bytes": sum(i.bytes_copied for i in self.items if i.status != PLANNED),
                "datasets": [item.to_json() for item in self.items]}

    def summary(self) -> str:
        items = self.items
        if not items:
            return "nothing to sync: no dataset matched"
        if self.dry_run:
            planned = [i for i in items if i.status == PLANNED]
            return (f"would copy {sum(i.copied for i in planned)} object(s), "
                    f"{sum(i.bytes_copied for i in planned)} bytes, for {len(planned)} of "
                    f"{_copies(len(items))}; {self.count(PRESENT)} already there")
        copied = sum(i.copied for i in items)
        parts = [f"{self.count(COPIED)} copied ({copied} object(s), "
                 f"{sum(i.bytes_copied for i in items)} bytes)" if copied else "nothing copied",
                 f"{self.count(RECORDED)} found complete and recorded" if self.count(RECORDED) else "",
                 f"{self.count(PRESENT)} already there" if self.count(PRESENT) else "",
                 f"{self.count(INCOMPLETE)} incomplete" if self.count(INCOMPLETE) else "",
                 f"{self.count(FAILED)} failed" if self.count(FAILED) else ""]
        return f"synced {_copies(len(items))}: " + ", ".join(p for p in parts if p)


def _copies(count: int) -> str:
    return f"{count} dataset cop{'y' if count == 1 else 'ies'}"


def sync(site: Site, dataset_ids: Optional[list[str]] = None, *,
         to: Optional[list[str]] = None, dry_run: bool = False, no_copy: bool = False,
         recheck: bool = False, workers: Optional[int] = None,
         progress: Optional[Progress] = None) -> SyncReport:
    """Make complete, checked copies of the datasets (all when None) in the stores ``to``
    (None: every store of the site); see the module's docstring. ``recheck``: also check
    (and repair) copies already recorded."""
    targets = list(dict.fromkeys(to or site.store_names))
    for name in targets:
        site.store_settings(name)  # an unknown store, before any work
    if dataset_ids is None:
        with site.connection() as conn:
            dataset_ids = dbq.all_dataset_serials(conn)
    else:
        dataset_ids = list(dict.fromkeys(parse_dataset_id(text).text for text in dataset_ids))
        with site.connection() as conn:
            for dataset_id in dataset_ids:
                if dbq.find_dataset(conn, dataset_id) is None:
                    raise NotFoundError(f"dataset {dataset_id} not found; nothing was synced")
    report = SyncReport(dry_run, no_copy)
    progress = progress or Progress()
    for dataset_id in dataset_ids:
        for target in targets:
            item = DatasetSync(dataset_id, target)
            try:
                _sync_one(site, item, dry_run=dry_run, no_copy=no_copy, recheck=recheck,
                          workers=workers, progress=progress)
            except ClaimTakenError:
                item.status, item.error = FAILED, ("another process holds the claim on the "
                                                   "dataset ID (an upload, delete or rename of "
                                                   "it is running); run the sync again later")
            except ImagingDBError as exc:
                item.status, item.error = FAILED, str(exc)
            report.items.append(item)
            if item.status not in (PRESENT,):
                progress.note(item.describe())
    return report


@dataclass
class _Dataset:
    """What the sync of one dataset reads of its rows."""

    dataset_id: str
    pk: int
    frames: bool
    owner: Any  # frames_global or file_global row
    storage_dir: str


def _dataset(site: Site, dataset_id: str) -> Optional[_Dataset]:
    with site.connection() as conn:
        row = dbq.find_dataset(conn, dataset_id)
        if row is None:
            return None
        owner = (dbq.frames_global_of if row.frames else dbq.file_global_of)(conn, row.id)
    if owner is None:
        table = "frames_global" if row.frames else "file_global"
        raise WorkError(f"dataset {dataset_id} has no {table} row (see: imagingdb verify "
                        f"{dataset_id})")
    return _Dataset(dataset_id, row.id, bool(row.frames), owner,
                    layout.storage_dir(owner.storage_dir, bool(row.frames), dataset_id))


def _sync_one(site: Site, item: DatasetSync, *, dry_run: bool, no_copy: bool, recheck: bool,
              workers: Optional[int], progress: Progress) -> None:
    dataset_id, target = item.dataset_id, item.store
    with site.connection() as conn:
        found = dbq.find_dataset(conn, dataset_id)
        if found is None:
            raise NotFoundError(f"dataset {dataset_id} was deleted meanwhile")
        holding = stores_holding(conn, site, found.id)
    if target in holding and not recheck:
        item.status = PRESENT
        return
    sources = [name for name in holding if name != target and name in site.config.stores]
    source = next((name for name in sources if site.unreachable(name) is None), None)
    if source is None and not no_copy and target not in holding:
        why = "; ".join(f"{name}: {site.unreachable(name)}" for name in sources)
        raise WorkError(f"no store holding a copy can be read ({why or 'none is configured'})")
    item.source = source
    if dry_run:
        _plan(site, item, source)
        return
    with claim_datasets(site, [dataset_id]) as claims:
        dataset = _dataset(site, dataset_id)
        if dataset is None:
            raise NotFoundError(f"dataset {dataset_id} was deleted meanwhile")
        copier = _Copier(site, dataset, item, source, no_copy, workers, progress)
        copier.run()
        if no_copy and (item.missing or item.damaged):
            item.status = INCOMPLETE
            return
        site.store(target).flush()
        with site.connection(write=True) as conn:
            for claim in claims:
                claim.prove(conn)
            again = _dataset_in(conn, dataset_id)
            if again is None or again != (dataset.pk, dataset.owner.storage_dir):
                raise WorkError(f"dataset {dataset_id} changed while it was being synced; "
                                "nothing was recorded: run the sync again")
            if not dbq.replica_stores(conn, [dataset.pk]) and source is not None:
                # a dataset of before replicas were recorded: its source copy (the primary,
                # complete since its registration) is recorded with it
                dbq.record_replicas(conn, dataset.pk, [source])
            dbq.record_replicas(conn, dataset.pk, [target], verified=True)
            faults.checkpoint("before-replica-commit")
        item.status = COPIED if item.copied else RECORDED


def _dataset_in(conn: Any, dataset_id: str) -> Optional[tuple[int, Optional[str]]]:
    row = dbq.find_dataset(conn, dataset_id)
    if row is None:
        return None
    owner = (dbq.frames_global_of if row.frames else dbq.file_global_of)(conn, row.id)
    return (row.id, None if owner is None else owner.storage_dir)


def _plan(site: Site, item: DatasetSync, source: Optional[str]) -> None:
    """A dry run: the objects the target lacks, by listing both stores (nothing is read)."""
    dataset = _dataset(site, item.dataset_id)
    if dataset is None:
        raise NotFoundError(f"dataset {item.dataset_id} was deleted meanwhile")
    names = [name for name, _check in _objects(site, dataset)]
    prefix = f"{dataset.storage_dir}/"
    there = set(site.store(item.store).list_keys(prefix))
    sizes = ({obj.key: obj.size for obj in site.store(source).list_objects(prefix)}
             if source is not None else {})
    lacking = [layout.object_key(dataset.storage_dir, name) for name in names]
    lacking = [key for key in lacking if key not in there]
    item.objects = len(names)
    item.copied = len(lacking)
    item.bytes_copied = sum(sizes.get(key, 0) for key in lacking)
    item.status = PLANNED


#: checks one object's bytes against the rows: what is wrong with them, None if nothing
Check = Callable[[bytes], Optional[str]]


def _objects(site: Site, dataset: _Dataset) -> Iterator[tuple[str, Optional[Check]]]:
    """(name in the dataset's folder, its check) of every object the rows reference; None
    for a file kept whole, hashed as it streams."""
    if not dataset.frames:
        yield dataset.owner.file_name, None
        return
    from .codecs import frame_codec

    g = dataset.owner
    frame_format = g.frame_format or layout.PNG
    codec = frame_codec(frame_format)
    shape = frame_shape(g)
    positions: set[int] = set()
    highest = [-1, -1, -1]  # t, c, z
    after = None
    while True:
        with site.connection() as conn:
            page = dbq.frame_rows_after(conn, g.id, after, ROWS_PER_PAGE)
        for frame in page:
            positions.add(frame.pos_idx)
            for axis, index in enumerate((frame.time_idx, frame.channel_idx, frame.slice_idx)):
                highest[axis] = max(highest[axis], index)
            yield frame.file_name, _frame_check(frame.sha256, shape, g.bit_depth, codec)
        if len(page) < ROWS_PER_PAGE:
            break
        after = page[-1].id
    if frame_format == layout.OME_ZARR:
        from .omezarr import document_problem

        documents = expected_documents(g, dataset.dataset_id, sorted(positions), tuple(highest))
        for name, wanted in documents.items():
            yield name, (lambda data, wanted=wanted: document_problem(data, wanted))


def _frame_check(sha256: Optional[str], shape: tuple[int, ...], bit_depth: str,
                 codec: Any) -> Check:
    return lambda data: frame_problem(data, sha256, shape, bit_depth, codec)


class _Copier:
    """Brings one dataset's objects into the target store, each checked."""

    def __init__(self, site: Site, dataset: _Dataset, item: DatasetSync, source: Optional[str],
                 no_copy: bool, workers: Optional[int], progress: Progress):
        self.site = site
        self.dataset = dataset
        self.item = item
        self.target: "StorageBackend" = site.store(item.store)
        self.source: Optional["StorageBackend"] = None if source is None else site.store(source)
        self.no_copy = no_copy
        self.workers = workers or default_workers(TRANSFER, self.target.transfer_workers)
        self.progress = progress
        self._lock = threading.Lock()
        #: the keys the target holds in the dataset's folder: one listing, not a request a key
        self._there: set[str] = set()

    def run(self) -> None:
        dataset = self.dataset
        self._there = set(self.target.list_keys(f"{dataset.storage_dir}/"))
        total = (dataset.owner.nbr_frames if dataset.frames else 1)
        self.progress.start(f"{self.item.dataset_id} -> {self.item.store}", total, 0, "object")
        try:
            run_bounded(self._one, _objects(self.site, dataset), self.workers,
                        name="imagingdb-sync")
        except BaseException:
            self.progress.finish(ok=False)
            raise
        self.progress.finish()

    def _one(self, entry: tuple[str, Optional[Check]]) -> None:
        name, check = entry
        key = layout.object_key(self.dataset.storage_dir, name)
        if check is None:
            copied, size, state = self._file(key)
        else:
            copied, size, state = self._object(key, check)
        with self._lock:
            self.item.objects += 1
            if state == "checked":
                self.item.checked += 1
            elif state == "missing":
                self.item.missing += 1
            elif state == "damaged":
                self.item.damaged += 1
            if copied:
                self.item.copied += 1
                self.item.bytes_copied += size
        self.progress.advance(1, size if copied else 0)

    def _object(self, key: str, check: Check) -> tuple[bool, int, str]:
        """(copied?, bytes, what the target held: checked | missing | damaged)."""
        try:
            if key not in self._there:
                raise KeyError(key)
            there = self.target.get_bytes(key)
        except KeyError:
            state = "missing"
        else:
            if check(there) is None:
                return False, len(there), "checked"
            state = "damaged"
        if self.no_copy:
            return False, 0, state
        data = self._source_bytes(key)
        detail = check(data)
        if detail is not None:
            raise WorkError(f"the copy of {key} in store {self.item.source!r} is damaged "
                            f"({detail}); nothing was recorded (see: imagingdb verify "
                            f"--storage {self.item.source} {self.item.dataset_id})")
        self.target.put_verified(key, data)
        faults.checkpoint("object-synced")
        return True, len(data), state

    def _source_bytes(self, key: str) -> bytes:
        if self.source is None:
            raise WorkError(f"{key} is missing or damaged in store {self.item.store!r} and no "
                            "other store holding a copy can be read; nothing was recorded")
        try:
            return self.source.get_bytes(key)
        except KeyError:
            raise WorkError(f"{key} is missing from store {self.item.source!r}, which records a "
                            f"complete copy (see: imagingdb verify --storage {self.item.source} "
                            f"{self.item.dataset_id}); nothing was recorded") from None

    def _file(self, key: str) -> tuple[bool, int, str]:
        """A file kept whole, streamed and hashed (it may be larger than memory)."""
        recorded = self.dataset.owner.sha256
        try:
            if key not in self._there:
                raise KeyError(key)
            digest, size = sha256_of_chunks(self.target.read_chunks(key))
        except KeyError:
            state = "missing"
        else:
            wanted = recorded or (self._source_digest(key) if self.source is not None else None)
            if digest == wanted:
                return False, size, "checked"
            state = "damaged"
        if self.no_copy:
            return False, 0, state
        if self.source is None:
            self._source_bytes(key)  # raises: nowhere to copy from
        assert self.source is not None
        try:
            chunks = iter(self.source.read_chunks(key))
            first = next(chunks, b"")
        except KeyError:
            self._source_bytes(key)  # raises the missing-object error
            raise
        reader = HashingReader(ChunkStream(first, chunks))
        self.target.put_fileobj(key, reader)
        source_digest = reader.hexdigest()
        if recorded is not None and source_digest != recorded:
            self.target.delete([key])
            raise WorkError(f"the copy of {key} in store {self.item.source!r} is damaged (its "
                            f"sha256 differs from the recorded {recorded[:12]}...); nothing was "
                            f"recorded (see: imagingdb verify --storage {self.item.source} "
                            f"{self.item.dataset_id})")
        if sha256_of_chunks(self.target.read_chunks(key))[0] != source_digest:
            raise WorkError(f"the copy of {key} in store {self.item.store!r} differs from its "
                            "source once read back; nothing was recorded (run the sync again)")
        faults.checkpoint("object-synced")
        return True, reader.bytes_read, state

    def _source_digest(self, key: str) -> Optional[str]:
        assert self.source is not None
        try:
            return sha256_of_chunks(self.source.read_chunks(key))[0]
        except KeyError:
            return None

