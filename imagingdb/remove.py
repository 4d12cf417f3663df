"""Delete and rename datasets: the rows switch in one transaction, the objects go after it.

Both keep upload's rule, run the other way: the database commit is the switch, and
objects outlive their rows only until the removal is finished.

- ``delete``: ONE transaction removes the rows of every dataset named (and, when asked,
  of the datasets naming them as parent, or those datasets' links to them) and records,
  in ``pending_removal``, every storage folder that held their objects. After the commit
  the objects in those folders go, then the pending rows. An interrupted delete is
  finished by running it again (or any delete or rename, or ``imagingdb gc``).
- ``rename OLD NEW``: every object of OLD is copied into a generation folder of NEW whose
  name follows from the two IDs (:func:`rename_folder`), so a rerun resumes into it, and
  each copy is read back and compared with its source; then ONE transaction gives the rows
  the ID NEW, its date_time and the new folder, and records OLD's folders as pending
  removal; after the commit OLD's objects go. Before the commit OLD is registered whole,
  after it NEW is; a rerun converges from either side.

Both hold the claims (:mod:`imagingdb.claims`) on every dataset ID they touch, as an
upload does, so no upload of those IDs runs meanwhile. Finishing a pending removal takes
the claim on its ID too, and deletes only the objects of the recorded folder (never the
generation folders inside it) that no committed row references: an upload of the same ID
after a delete keeps every object it registered.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional

import sqlalchemy as sa

from . import db as dbq
from . import faults, layout
from .claims import Claim, ClaimTakenError, claim_datasets
from .db import locks
from .errors import ImagingDBError, InputError, NotFoundError, WorkError
from .gc import referenced_keys
from .ids import CASE_ONLY, case_folded, parse_dataset_id
from .pool import TRANSFER, default_workers, run_bounded
from .replicas import stores_holding
from .site import Site
from .storage import StoredObject, sha256_of_chunks

if TYPE_CHECKING:
    from .storage import StorageBackend

DELETE = "delete"
RENAME = "rename"


# ------------------------------------------------------------------ pending removals


@dataclass
class PendingRemoval:
    """One folder whose objects a committed delete or rename left to remove."""

    dataset_id: str
    folder: str
    reason: str  # delete | rename
    objects: list[StoredObject] = field(default_factory=list)  # removed, or to remove
    removed: bool = False
    skipped: Optional[str] = None  # why it was left for later

    @property
    def bytes(self) -> int:
        return sum(obj.size for obj in self.objects)

    def to_json(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "folder": self.folder, "reason": self.reason,
                "objects": len(self.objects), "bytes": self.bytes, "removed": self.removed,
                "skipped": self.skipped}

    def describe(self) -> str:
        what = f"{len(self.objects)} object(s), {self.bytes} bytes in {self.folder}/"
        cause = f"left by the {self.reason} of {self.dataset_id}"
        if self.skipped:
            what = what if self.objects else f"{self.folder}/"
            return f"left {what} ({cause}) for later: {self.skipped}"
        return f"{'removed' if self.removed else 'would remove'} {what} ({cause})"


def finish_pending_removals(site: Site, dataset_ids: Optional[Iterable[str]] = None, *,
                            dry_run: bool = False,
                            on_object: Optional[Callable[[StoredObject], None]] = None,
                            ) -> list[PendingRemoval]:
    """Remove what interrupted deletes and renames left (of ``dataset_ids``; all when None),
    whatever its age; ``dry_run``: only list it. An ID another process holds the claim on
    (an upload of it is running) is left for later and said so."""
    with site.connection() as conn:
        rows = dbq.pending_removals(conn, dataset_ids)
    by_id: dict[str, list[Any]] = {}
    for row in rows:
        by_id.setdefault(row.dataset_serial, []).append(row)
    done: list[PendingRemoval] = []
    for dataset_id, pending in by_id.items():
        if dry_run:
            done += [_remove_folder(site, row, dry_run=True, on_object=on_object)
                     for row in pending]
            continue
        try:
            with claim_datasets(site, [dataset_id]):
                done += [_remove_folder(site, row, on_object=on_object) for row in pending]
        except ClaimTakenError:
            done += [PendingRemoval(row.dataset_serial, row.storage_dir, row.reason,
                                    skipped="another process holds the claim on the dataset "
                                            "ID (an upload, delete or rename of it is running)")
                     for row in pending]
    return done


def _remove_folder(site: Site, pending: Any, *, dry_run: bool = False,
                   on_object: Optional[Callable[[StoredObject], None]] = None) -> PendingRemoval:
    """Delete the objects of one pending folder that no committed row references, in every
    store of the site, then its pending row; the caller holds the claim on its dataset ID.
    A store that cannot be reached keeps the row, for the rerun (or gc) to finish."""
    folder = pending.storage_dir
    result = PendingRemoval(pending.dataset_serial, folder, pending.reason)
    referenced: Optional[set[str]] = None
    failed = []
    for name in site.store_names:
        storage = site.store(name)
        try:
            listed = [obj for obj in storage.list_objects(f"{folder}/")
                      if layout.folder_of(obj.key) == folder]
            if listed and referenced is None:
                referenced = referenced_keys(site, folder)
            objects = [obj for obj in listed if obj.key not in (referenced or set())]
            result.objects += objects
            for obj in objects:
                if on_object is not None:
                    on_object(obj)
            if objects and not dry_run:
                storage.delete([obj.key for obj in objects])
        except ImagingDBError as exc:  # after a commit: a warning, the pending row kept
            failed.append(f"{name}: {exc}" if len(site.store_names) > 1 else str(exc))
    if failed:
        result.skipped = f"{'; '.join(failed)} (the rerun, or imagingdb gc --yes, removes them)"
        return result
    if dry_run:
        return result
    try:
        with site.connection(write=True) as conn:
            dbq.delete_pending_removal(conn, pending.id)
    except ImagingDBError as exc:
        # The commit stands whatever happens here: the pending row keeps the folder on record.
        result.skipped = f"{exc} (the rerun, or imagingdb gc --yes, removes them)"
        return result
    result.removed = True
    return result


# --------------------------------------------------------------------------- delete


@dataclass
class DatasetRemoval:
    """One dataset a delete removes (or would): its rows, its objects, its children."""

    dataset_id: str
    frames: Optional[bool] = None  # None: its rows were already gone
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows
    folders: list[str] = field(default_factory=list)
    objects: int = 0
    bytes: int = 0
    children: list[str] = field(default_factory=list)  # datasets naming it as parent
    child_of: Optional[str] = None  # deleted as a child of this dataset (--with-children)
    already_deleted: bool = False  # its rows were gone: an interrupted delete, finished now

    def to_json(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "frames": self.frames, "rows": self.rows,
                "folders": self.folders, "objects": self.objects, "bytes": self.bytes,
                "children": self.children, "child_of": self.child_of,
                "already_deleted": self.already_deleted}

    def describe(self, dry_run: bool) -> str:
        if self.already_deleted:
            return (f"{self.dataset_id}: its rows were already deleted; "
                    f"{'would finish' if dry_run else 'finished'} removing its objects")
        rows = ", ".join(f"{n} {table}" for table, n in self.rows.items() if n)
        verb = "would delete" if dry_run else "deleted"
        where = f" in {', '.join(f + '/' for f in self.folders)}" if self.folders else ""
        note = f" (a child of {self.child_of})" if self.child_of else ""
        return (f"{self.dataset_id}{note}: {verb} rows {rows}; {self.objects} object(s), "
                f"{self.bytes} bytes{where}")


@dataclass
class DeleteReport:
    """What ``delete`` did, or with ``dry_run`` would do."""

    dry_run: bool
    datasets: list[DatasetRemoval] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)  # children whose parent link is cleared
    #: the folders removed after the commit (or that a rerun had left)
    removals: list[PendingRemoval] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "datasets": [d.to_json() for d in self.datasets],
                "orphaned_children": self.orphaned,
                "removals": [r.to_json() for r in self.removals]}

    def summary(self) -> str:
        count = len(self.datasets)
        objects = sum(d.objects for d in self.datasets)
        total = sum(d.bytes for d in self.datasets)
        if self.dry_run:
            return (f"dry run: {count} dataset(s), {objects} object(s), {total} bytes would be "
                    "deleted; run with --yes to delete")
        left = [r for r in self.removals if r.skipped]
        note = (f"; {len(left)} folder(s) left for later (rerun, or imagingdb gc --yes)"
                if left else "")
        return f"deleted {count} dataset(s), {objects} object(s), {total} bytes{note}"


@dataclass
class _Selected:
    """A data_set row the delete takes, and why."""

    row: Any
    child_of: Optional[str] = None


def delete_datasets(site: Site, dataset_ids: Iterable[str], *, with_children: bool = False,
                    orphan_children: bool = False, dry_run: bool = True) -> DeleteReport:
    """Delete datasets, all or nothing: see the module's docstring. Without ``dry_run``
    (the default is one), rows go in one transaction and objects after it."""
    ids = _parse_ids(dataset_ids)
    if with_children and orphan_children:
        raise InputError("--with-children and --orphan-children exclude each other: "
                         "choose what becomes of the children")
    with site.connection() as conn:
        selected, orphans, pending_only = _select(conn, ids, with_children, orphan_children)
    report = DeleteReport(dry_run)
    report.datasets = [_measure(site, item) for item in selected.values()]
    report.orphaned = sorted(row.dataset_serial for row in orphans)
    report.datasets += [DatasetRemoval(dataset_id, already_deleted=True)
                        for dataset_id in pending_only]
    if dry_run:
        pending = finish_pending_removals(site, pending_only, dry_run=True) if pending_only else []
        _count_pending(report, pending)
        report.removals = pending
        return report
    # What earlier deletes and renames left, first: among it what this one was to finish.
    earlier = [r for r in finish_pending_removals(site) if r.dataset_id in pending_only]
    _count_pending(report, earlier)
    report.removals = earlier
    if selected:
        registered = [i for i in ids if i not in pending_only]  # the others' rows were gone
        _delete_selected(site, report, selected, orphans,
                         lambda conn: _select(conn, registered, with_children, orphan_children))
    return report


def _delete_selected(site: Site, report: DeleteReport, selected: dict[int, "_Selected"],
                     orphans: list[Any], select_again: Callable[[sa.Connection], tuple]) -> None:
    """Under the claims of the selected datasets: their rows in one transaction (checked to be
    still what was selected), then their objects."""
    taken = [item.row.dataset_serial for item in selected.values()]
    with _claimed(site, taken, "deleted") as claims:
        # Measured again now that no upload of these IDs can run: an overwrite that finished
        # since the first measure moved the dataset to another folder.
        measured = {item.row.dataset_serial: _measure(site, item) for item in selected.values()}
        report.datasets = [measured.get(r.dataset_id, r) if not r.already_deleted else r
                           for r in report.datasets]
        with site.connection(write=True) as conn:
            for claim in claims:
                claim.prove(conn)
            again, orphans_now, _ = select_again(conn)
            if set(again) != set(selected) or {r.id for r in orphans_now} != {r.id for r in orphans}:
                raise WorkError("the datasets changed while the delete was getting ready (a "
                                "child was added or removed); nothing was deleted: run it again")
            _delete_rows(conn, selected, orphans_now)
            for removal in report.datasets:
                for folder in removal.folders:
                    if not removal.already_deleted:
                        dbq.insert_pending_removal(conn, removal.dataset_id, folder, DELETE)
        faults.checkpoint("removal-committed")
        report.removals += [_remove_folder(site, row) for row in _pending(site, taken)]


def _parse_ids(dataset_ids: Iterable[str]) -> list[str]:
    if isinstance(dataset_ids, str):
        dataset_ids = [dataset_ids]
    ids = list(dict.fromkeys(parse_dataset_id(text).text for text in dataset_ids))
    if not ids:
        raise InputError("give at least one dataset ID")
    return ids


def _select(conn: sa.Connection, ids: list[str], with_children: bool, orphan_children: bool
            ) -> tuple[dict[int, _Selected], list[Any], list[str]]:
    """The data_set rows a delete of ``ids`` takes (by id), the children whose links it
    clears, and the IDs whose rows are already gone but whose objects are pending removal.
    Raises for an unknown ID, and for a parent whose children the options do not cover."""
    selected: dict[int, _Selected] = {}
    pending_only = []
    for dataset_id in ids:
        rows = dbq.datasets_named(conn, dataset_id)
        if not rows:
            if not dbq.pending_removals(conn, [dataset_id]):
                raise NotFoundError(f"dataset {dataset_id} not found")
            pending_only.append(dataset_id)
        for row in rows:
            selected[row.id] = _Selected(row)
    orphans: list[Any] = []
    frontier = list(selected)
    while frontier:
        children = [c for c in dbq.children_of(conn, frontier) if c.id not in selected]
        if not children:
            break
        if orphan_children:
            orphans = children
            break
        if not with_children:
            raise InputError(_parent_refusal(selected, children))
        for child in children:
            parent = selected[child.parent_id].row.dataset_serial
            [row] = [r for r in dbq.datasets_named(conn, child.dataset_serial) if r.id == child.id]
            selected[child.id] = _Selected(row, child_of=parent)
        frontier = [child.id for child in children]
    return selected, orphans, pending_only


def _parent_refusal(selected: dict[int, _Selected], children: list[Any]) -> str:
    by_parent: dict[str, list[str]] = {}
    for child in children:
        by_parent.setdefault(selected[child.parent_id].row.dataset_serial, []).append(
            child.dataset_serial)
    named = "; ".join(f"dataset {parent} is the parent of {', '.join(kids)}"
                      for parent, kids in by_parent.items())
    return (f"{named}: delete them too with --with-children, or keep them without a parent "
            "with --orphan-children; nothing was deleted")


def _measure(site: Site, item: _Selected) -> DatasetRemoval:
    """The rows and objects one dataset's delete removes."""
    row = item.row
    dataset_id = row.dataset_serial
    removal = DatasetRemoval(dataset_id, bool(row.frames), child_of=item.child_of)
    with site.connection() as conn:
        frames_global = dbq.frames_global_of(conn, row.id)
        file_global = dbq.file_global_of(conn, row.id)
        nbr_frames = dbq.count_frames(conn, frames_global.id) if frames_global is not None else 0
        removal.children = sorted(c.dataset_serial for c in dbq.children_of(conn, [row.id]))
    removal.rows = {"data_set": 1, "frames_global": int(frames_global is not None),
                    "file_global": int(file_global is not None), "frames": nbr_frames}
    recorded = [layout.storage_dir(owner.storage_dir, owner is frames_global, dataset_id)
                for owner in (frames_global, file_global) if owner is not None]
    for owner, frames in ((frames_global, True), (file_global, False)):
        if owner is not None and owner.storage_dir and not layout.is_dataset_folder(
                owner.storage_dir, frames):
            raise InputError(_foreign_folder(dataset_id, owner.storage_dir, frames))
    objects = [obj for name in _reachable_stores(site)
               for obj in _objects_of(site.store(name), dataset_id, recorded)]
    removal.folders = sorted(set(recorded) | {layout.folder_of(obj.key) for obj in objects})
    removal.objects = len(objects)
    removal.bytes = sum(obj.size for obj in objects)
    return removal


def _foreign_folder(dataset_id: str, storage_dir: str, frames: bool) -> str:
    return (f"dataset {dataset_id} keeps its objects in {storage_dir!r}, not in a "
            f"{layout.dataset_folder('<ID>', frames)} folder; imagingdb cannot tell which "
            "objects there are its own, so it changes nothing")


def _reachable_stores(site: Site) -> list[str]:
    """The stores to look into (the primary always: its errors are the command's)."""
    return [name for name in site.store_names
            if name == site.primary or site.unreachable(name) is None]


def _objects_of(storage: "StorageBackend", dataset_id: str, recorded: list[str]) -> list[StoredObject]:
    """Every object in the dataset ID's folders (each generation) and its recorded folders."""
    prefixes = [layout.dataset_folder(dataset_id, True), layout.dataset_folder(dataset_id, False)]
    prefixes += [f for f in recorded if not any(f.startswith(f"{p}/") or f == p for p in prefixes)]
    found: dict[str, StoredObject] = {}
    for prefix in prefixes:
        for obj in storage.list_objects(f"{prefix}/"):
            if layout.folder_of(obj.key) is not None:
                found[obj.key] = obj
    return sorted(found.values(), key=lambda obj: obj.key)


def _count_pending(report: DeleteReport, pending: list[PendingRemoval]) -> None:
    """Objects of IDs whose rows were already gone count as theirs in the report."""
    for removal in report.datasets:
        if removal.already_deleted:
            mine = [p for p in pending if p.dataset_id == removal.dataset_id]
            removal.folders = sorted({p.folder for p in mine})
            removal.objects = sum(len(p.objects) for p in mine)
            removal.bytes = sum(p.bytes for p in mine)


def _delete_rows(conn: sa.Connection, selected: dict[int, _Selected], orphans: list[Any]) -> None:
    """The selected rows, children before parents (parent_id is ON DELETE RESTRICT); the
    ``orphans`` (children not selected) keep no parent."""
    if orphans:
        dbq.clear_parent_links(conn, list(selected))
    remaining = {pk: item.row.parent_id for pk, item in selected.items()}
    while remaining:
        parents = {parent for parent in remaining.values() if parent in remaining}
        leaves = [pk for pk in remaining if pk not in parents]
        if not leaves:  # a circle of parents (only a hand-edited database has one): cut it
            dbq.clear_parent_links(conn, list(remaining))
            leaves = list(remaining)
        dbq.delete_datasets(conn, leaves)
        for pk in leaves:
            del remaining[pk]


@contextlib.contextmanager
def _claimed(site: Site, dataset_ids: list[str], done: str) -> Iterator[list[Claim]]:
    try:
        with claim_datasets(site, dataset_ids) as claims:
            yield claims
    except ClaimTakenError as exc:
        raise WorkError(f"dataset {exc.dataset_id} is being uploaded, deleted or renamed by "
                        f"another process right now; nothing was {done}: try again once it "
                        "is done") from None


# --------------------------------------------------------------------------- rename


@dataclass
class RenameReport:
    """What ``rename`` did."""

    old: str
    new: str
    already_renamed: bool = False  # a rerun after the switch: only the removal was left
    copied: int = 0  # objects copied (a rerun skips those already copied)
    objects: int = 0  # objects of the dataset
    bytes: int = 0
    folder: str = ""  # NEW's folder
    removals: list[PendingRemoval] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "already_renamed": self.already_renamed,
                "objects": self.objects, "copied": self.copied, "bytes": self.bytes,
                "folder": self.folder, "removals": [r.to_json() for r in self.removals]}

    def summary(self) -> str:
        left = [r for r in self.removals if r.skipped]
        note = (f"; {len(left)} folder(s) of {self.old} left for later (rerun, or imagingdb gc "
                "--yes)") if left else ""
        if self.already_renamed:
            return f"{self.old} was already renamed to {self.new}{note}"
        return (f"renamed {self.old} to {self.new}: {self.objects} object(s), {self.bytes} "
                f"bytes now in {self.folder}/{note}")


def rename_folder(old: str, new: str, frames: bool) -> str:
    """The generation folder of NEW that the rename OLD -> NEW copies into: named after the
    two IDs, so that a rerun after an interruption resumes where the copy stopped."""
    token = hashlib.sha256(f"imagingdb rename {old} {new}".encode()).hexdigest()[:12]
    return layout.generation_folder(new, frames, token)


def rename_dataset(site: Site, old: str, new: str, *,
                   workers: Optional[int] = None) -> RenameReport:
    """Give the dataset ``old`` the ID ``new``: see the module's docstring."""
    old, parsed_new = parse_dataset_id(old).text, parse_dataset_id(new)
    new = parsed_new.text
    if old == new:
        raise InputError(f"{old} and {new} are the same ID: a rename gives a dataset another ID")
    if case_folded(old) == case_folded(new):
        raise InputError(f"{old} and {new} differ only by case, and a rename cannot change only "
                         f"the case of an ID: {CASE_ONLY}; delete {old}, then upload it again "
                         f"as {new}")
    report = RenameReport(old, new)
    with site.connection() as conn:
        source = _rename_source(conn, old, new, report)
    if source is None:  # renamed already, by an earlier run
        report.removals = finish_pending_removals(site, [old])
        return report
    finish_pending_removals(site)  # what earlier deletes and renames left
    with _claimed(site, [old, new], "renamed") as claims:
        with site.connection() as conn:
            source = _rename_source(conn, old, new, report)  # again, under the claims
        if source is None:
            report.removals = [_remove_folder(site, row)
                               for row in _pending(site, [old])]
            return report
        with site.connection() as conn:
            holding = [name for name in stores_holding(conn, site, source.row.id)
                       if name in site.config.stores]
        copier = None
        for name in holding:  # every copy renamed, or none: a store out of reach fails here
            copier = _Copier(site, site.store(name), source, new, workers)
            copier.copy_all(report)
        assert copier is not None
        storage_dirs = sorted({folder for name in _reachable_stores(site)
                               for folder in _objects_folders(site.store(name), old, source.folder)})
        try:
            with site.connection(write=True) as conn:
                for claim in claims:
                    claim.prove(conn)
                locks.lock_id_case_insensitively(conn, new)
                again = _rename_source(conn, old, new, RenameReport(old, new))
                if again is None or again.row.id != source.row.id or again.folder != source.folder:
                    raise WorkError(f"dataset {old} changed while it was being copied; nothing "
                                    "was renamed: run the rename again")
                dbq.move_dataset(conn, source.row.id, new, parsed_new.date_time, copier.folder)
                for folder in storage_dirs:
                    dbq.insert_pending_removal(conn, old, folder, RENAME)
        except sa.exc.IntegrityError:
            raise WorkError(f"dataset {new} was registered by another process meanwhile; "
                            f"nothing was renamed, {old} is as it was") from None
        faults.checkpoint("removal-committed")
        report.removals = [_remove_folder(site, row) for row in _pending(site, [old])]
    return report


def _pending(site: Site, dataset_ids: list[str]) -> list[Any]:
    with site.connection() as conn:
        return dbq.pending_removals(conn, dataset_ids)


@dataclass
class _RenameSource:
    row: Any  # OLD's data_set row
    owner: Any  # its frames_global or file_global row
    folder: str  # where its objects are


def _rename_source(conn: sa.Connection, old: str, new: str,
                   report: RenameReport) -> Optional[_RenameSource]:
    """OLD's rows, checked for a rename to NEW; None if OLD was renamed to NEW already (a
    rerun after the switch). Raises for an unknown OLD, an existing NEW or its case twin."""
    rows = dbq.datasets_named(conn, old)
    existing_new = dbq.find_dataset(conn, new)
    if not rows:
        if existing_new is not None and _was_renamed_from(conn, existing_new, old, new):
            report.already_renamed = True
            return None
        raise NotFoundError(f"dataset {old} not found")
    if len(rows) > 1:
        raise WorkError(f"dataset {old} is registered {len(rows)} times (data_set id "
                        f"{', '.join(str(r.id) for r in rows)}); keep one, see: imagingdb db status")
    if existing_new is not None:
        raise InputError(f"dataset {new} already exists; nothing was renamed")
    twin = dbq.find_case_twin(conn, new)
    if twin is not None and twin != old:
        raise InputError(f"dataset {twin} already exists and differs from {new} only by case; "
                         f"{CASE_ONLY}: choose another ID")
    row = rows[0]
    owner = (dbq.frames_global_of if row.frames else dbq.file_global_of)(conn, row.id)
    if owner is None:
        table = "frames_global" if row.frames else "file_global"
        raise WorkError(f"dataset {old} has no {table} row (see: imagingdb verify {old}); "
                        "nothing was renamed")
    if owner.storage_dir and not layout.is_dataset_folder(owner.storage_dir, bool(row.frames)):
        raise InputError(_foreign_folder(old, owner.storage_dir, bool(row.frames)))
    return _RenameSource(row, owner, layout.storage_dir(owner.storage_dir, bool(row.frames), old))


def _was_renamed_from(conn: sa.Connection, row: Any, old: str, new: str) -> bool:
    """True if NEW's objects are in the folder a rename from OLD writes: that rename's work."""
    owner = (dbq.frames_global_of if row.frames else dbq.file_global_of)(conn, row.id)
    return owner is not None and layout.storage_dir(
        owner.storage_dir, bool(row.frames), new) == rename_folder(old, new, bool(row.frames))


def _objects_folders(storage: "StorageBackend", dataset_id: str, recorded: str) -> list[str]:
    """OLD's folders to remove once renamed: the one its rows record, and every generation
    folder of its ID (what killed uploads of it left)."""
    return [recorded] + [layout.folder_of(obj.key) for obj in _objects_of(storage, dataset_id, [recorded])]


class _Copier:
    """Copies OLD's objects into NEW's rename folder, each read back and compared."""

    def __init__(self, site: Site, storage: "StorageBackend", source: _RenameSource, new: str,
                 workers: Optional[int]):
        self.site = site
        self.storage = storage
        self.source = source
        self.new = new
        self.frames = bool(source.row.frames)
        self.folder = rename_folder(source.row.dataset_serial, new, self.frames)
        self.workers = workers or default_workers(TRANSFER, self.storage.transfer_workers)

    def names(self) -> tuple[list[str], list[str]]:
        """The object names OLD's rows reference: (copied as they are, zarr.json documents)."""
        owner = self.source.owner
        if not self.frames:
            return [owner.file_name], []
        with self.site.connection() as conn:
            names = list(conn.execute(sa.select(dbq.frames.c.file_name)
                                      .where(dbq.frames.c.frames_global_id == owner.id)
                                      .order_by(dbq.frames.c.id)).scalars())
            positions = []
            if (owner.frame_format or layout.PNG) == layout.OME_ZARR:
                positions = sorted(conn.execute(
                    sa.select(dbq.frames.c.pos_idx).distinct()
                    .where(dbq.frames.c.frames_global_id == owner.id)).scalars())
        return names, layout.zarr_document_names(positions) if positions else []

    def copy_all(self, report: RenameReport) -> None:
        names, documents = self.names()
        wanted = {layout.object_key(self.folder, name) for name in names + documents}
        # Anything else in the folder (a temporary file of a copy killed midway) is no
        # object of the dataset: NEW is not registered, the folder is this rename's alone.
        stray = [key for key in self.storage.list_keys(f"{self.folder}/")
                 if layout.folder_of(key) == self.folder and key not in wanted]
        if stray:
            self.storage.delete(stray)
        results = []
        run_bounded(self._copy_one, names, self.workers, on_result=results.append,
                    name="imagingdb-rename")
        results += [self._rewrite_document(name) for name in documents]
        self.storage.flush()
        report.folder = self.folder
        report.objects = len(results)
        report.copied = sum(1 for copied, _ in results if copied)
        report.bytes = sum(size for _, size in results)

    def _copy_one(self, name: str) -> tuple[bool, int]:
        """Copy one object unless a copy as good is there; returns (copied?, bytes)."""
        src = layout.object_key(self.source.folder, name)
        dst = layout.object_key(self.folder, name)
        digest, size = self._digest(src, missing_is_error=True)
        if self._digest(dst) == (digest, size):
            return False, size
        self.storage.copy(src, dst)
        if self._digest(dst) != (digest, size):
            raise WorkError(f"the copy of {src} at {dst} differs from it once read back; "
                            f"nothing was renamed (run the rename again)")
        faults.checkpoint("object-copied")
        return True, size

    def _digest(self, key: str, missing_is_error: bool = False) -> Optional[tuple[str, int]]:
        try:
            return sha256_of_chunks(self.storage.read_chunks(key))
        except KeyError:
            if missing_is_error:
                raise WorkError(f"{key}, an object of dataset {self.source.row.dataset_serial}, "
                                "is missing from storage (see: imagingdb verify "
                                f"{self.source.row.dataset_serial}); nothing was renamed") from None
            return None

    def _rewrite_document(self, name: str) -> tuple[bool, int]:
        """A zarr.json of an ome-zarr store, with the dataset ID it names changed to NEW."""
        from .omezarr import renamed_document

        src = layout.object_key(self.source.folder, name)
        dst = layout.object_key(self.folder, name)
        try:
            data = self.storage.get_bytes(src)
        except KeyError:
            self._digest(src, missing_is_error=True)  # raises the missing-object error
            raise
        renamed = renamed_document(data, self.source.row.dataset_serial, self.new)
        try:
            if self.storage.get_bytes(dst) == renamed:
                return False, len(renamed)
        except KeyError:
            pass
        self.storage.put_bytes(dst, renamed)
        if self.storage.get_bytes(dst) != renamed:
            raise WorkError(f"{dst} differs from what was written once read back; nothing was "
                            "renamed (run the rename again)")
        faults.checkpoint("object-copied")
        return True, len(renamed)
