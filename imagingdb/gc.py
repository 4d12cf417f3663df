"""gc: find, and on request delete, stored objects that no registered dataset references.

Uploads write objects first and register the dataset last, so an upload that
was killed or failed in a way it could not clean up (the database out of
reach, the process gone) leaves objects no row names: frames of a dataset
that never got registered, hidden ``*.tmp`` files of the local backend, the
frames an overwrite no longer needs. They are harmless but take space.

A delete or rename that was interrupted after its commit leaves the objects
of the rows it took, recorded in ``pending_removal``: those are garbage
whatever their age, and ``Database.gc`` finishes them first, under each
dataset ID's claim (:func:`imagingdb.remove.finish_pending_removals`).

What gc looks at: the dataset folders ``raw_frames/<ID>/`` and
``raw_files/<ID>/`` only; nothing else in a bucket or mount is touched.
An object there is garbage when no committed row references it. It judges
each generation folder on its own (:mod:`imagingdb.layout`: the dataset
folder itself, and ``g<token>`` inside it, one per upload attempt): the
committed generation's objects are the dataset's, those of a generation no
row names are what an overwrite replaced or a killed attempt left.

What keeps it safe:

- rows are read after the folder is listed, and only committed rows count,
  so an object of a registered dataset is never garbage;
- a generation folder written to within the grace period (``--older-than``,
  default 24 hours) is judged only under the claim on its dataset ID
  (:mod:`imagingdb.claims`), taken by gc for that folder: an upload in
  progress writes its folder every frame and registers only at the end, so
  its objects look unreferenced until then, but it holds that claim from
  before its first write to its commit. A claim gc can take means no upload,
  delete or rename of the ID is running (one killed, by kill -9 or a power
  cut, lost its claim with its process), so what the folder holds is an
  interrupted upload's and is judged at once; a claim held by another
  process means one is running, and the folder is skipped whole. Every
  attempt writes a folder of its own, so the folders of attempts killed long
  ago are judged even while the dataset is being uploaded again;
- each folder is listed again right before its garbage is deleted;
- gc refuses to run if any row has a storage_dir it cannot map to a folder
  (from an adopted database, say): it could not tell what that row references.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import layout
from .errors import InputError, WorkError
from .progress import Progress
from .storage import StoredObject

if TYPE_CHECKING:  # the CLI reads DEFAULT_GRACE at start-up: no SQLAlchemy import here
    from .site import Site

DEFAULT_GRACE = layout.GC_GRACE
_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>s|m|min|h|d)?", re.ASCII)
_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'24h', '30m', '2d', '90s' or '0' -> seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InputError(f"invalid duration {text!r}: expected a number with a unit, e.g. "
                         "30m, 24h, 7d (or 0)")
    amount = float(match["amount"])
    if amount and not match["unit"]:
        raise InputError(f"invalid duration {text!r}: give a unit (s, m, h or d), e.g. {text}h")
    return amount * _SECONDS[match["unit"] or "s"]


#: why a folder was left alone (SkippedFolder.reason)
RUNNING = "running"  # written to within the grace period, its ID's claim held by another process


@dataclass
class FolderListing:
    """What the first listing found in one generation folder."""

    newest: float = 0.0
    objects: int = 0
    bytes: int = 0

    def add(self, obj: StoredObject) -> None:
        self.newest = max(self.newest, obj.modified)
        self.objects += 1
        self.bytes += obj.size


@dataclass(frozen=True)
class SkippedFolder:
    """A folder with recent writes, left alone: an upload (or a delete or rename) of its
    dataset ID is running, as the claim another process holds on the ID says."""

    folder: str
    modified: float
    store: str = ""
    objects: int = 0
    bytes: int = 0
    reason: str = RUNNING


@dataclass(frozen=True)
class Garbage(StoredObject):
    """An unreferenced object, and the store (by name) it is in."""

    store: str = ""


@dataclass
class GcReport:
    garbage: list[StoredObject] = field(default_factory=list)
    skipped: list[SkippedFolder] = field(default_factory=list)
    deleted: bool = False
    #: store name -> why gc could not look into it (a store other than the primary, out of reach)
    unreachable: dict[str, str] = field(default_factory=dict)
    #: what deletes and renames left to remove (imagingdb.remove.PendingRemoval), finished
    #: by gc --yes whatever their age
    pending_removals: list[Any] = field(default_factory=list)
    #: folders written to within the grace period and judged all the same, because no
    #: process held their ID's claim: an interrupted upload's, not running any more
    interrupted: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(obj.size for obj in self.garbage)

    @property
    def skipped_bytes(self) -> int:
        return sum(s.bytes for s in self.skipped)

    def garbage_folders(self) -> dict[str, list[StoredObject]]:
        """The garbage by generation folder, in the order found."""
        folders: dict[str, list[StoredObject]] = {}
        for obj in self.garbage:
            folders.setdefault(layout.folder_of(obj.key) or "", []).append(obj)
        return folders

    def interrupted_garbage(self) -> list[StoredObject]:
        """The garbage in the folders of interrupted uploads (younger than the grace period)."""
        recent = set(self.interrupted)
        return [obj for obj in self.garbage if layout.folder_of(obj.key) in recent]

    def to_json(self) -> dict[str, Any]:
        recent = set(self.interrupted)
        return {
            "deleted": self.deleted,
            "objects": [{"key": o.key, "size": o.size, "modified": _iso(o.modified),
                         "store": getattr(o, "store", ""),
                         "folder": layout.folder_of(o.key),
                         "interrupted_upload": layout.folder_of(o.key) in recent}
                        for o in self.garbage],
            "bytes": self.bytes,
            "interrupted_upload_folders": list(self.interrupted),
            "skipped_recent_folders": [{"folder": s.folder, "modified": _iso(s.modified),
                                        "store": s.store, "objects": s.objects,
                                        "bytes": s.bytes, "reason": s.reason}
                                       for s in self.skipped],
            "unreachable_stores": dict(self.unreachable),
            "pending_removals": [p.to_json() for p in self.pending_removals],
        }


def _iso(stamp: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds")


def collect_garbage(
    site: "Site",
    *,
    delete: bool = False,
    older_than: Optional[float] = None,
    on_garbage: Optional[Callable[[StoredObject], None]] = None,
    now: Optional[float] = None,
    progress: Optional[Progress] = None,
) -> GcReport:
    """Find (and with ``delete``, remove) unreferenced objects in folders quiet for
    ``older_than`` seconds (default :data:`DEFAULT_GRACE`), and in younger ones whose
    dataset ID no process holds the claim on (an interrupted upload's). ``progress`` counts
    the objects listed as each folder is judged."""
    if older_than is None:
        older_than = parse_duration(DEFAULT_GRACE)
    _check_storage_dirs(site)
    progress = progress or Progress()
    report = GcReport(deleted=delete)
    cutoff = (time.time() if now is None else now) - older_than
    for name in site.store_names:
        if name != site.primary and site.unreachable(name) is not None:
            report.unreachable[name] = site.unreachable(name) or ""
            continue
        label = "storage" if len(site.store_names) == 1 else f"store {name}"
        _collect_in(site, name, report, cutoff, delete, on_garbage, progress, label)
    return report


def _collect_in(site: "Site", name: str, report: GcReport, cutoff: float, delete: bool,
                on_garbage: Optional[Callable[[StoredObject], None]], progress: Progress,
                label: str) -> None:
    """gc in the store ``name``."""
    folders = _folders(site.store(name))
    progress.start(label, sum(f.objects for f in folders.values()),
                   sum(f.bytes for f in folders.values()), unit="object")
    try:
        for folder, listing in folders.items():
            judge = _Judge(site, name, folder, delete, report, on_garbage)
            if listing.newest > cutoff or not judge.unless_newer_than(cutoff):
                judge.unless_claimed(listing)  # recent: an upload may be running into it
            progress.advance(listing.objects, listing.bytes)
    except BaseException:
        progress.finish(ok=False)
        raise
    progress.finish()


class _Judge:
    """Judges one generation folder: its objects no committed row references are garbage."""

    def __init__(self, site: "Site", store: str, folder: str, delete: bool, report: GcReport,
                 on_garbage: Optional[Callable[[StoredObject], None]]):
        self.site, self.store, self.folder, self.delete = site, store, folder, delete
        self.storage = site.store(store)
        self.report, self.on_garbage = report, on_garbage

    def _objects(self) -> list[StoredObject]:
        """Listed again: right before deciding (not the generations inside it)."""
        return [obj for obj in self.storage.list_objects(f"{self.folder}/")
                if layout.folder_of(obj.key) == self.folder]

    def unless_newer_than(self, cutoff: float) -> bool:
        """Judge the folder unless it was written to after ``cutoff`` meanwhile (False)."""
        objects = self._objects()
        if max((obj.modified for obj in objects), default=0.0) > cutoff:
            return False
        self._judge(objects)
        return True

    def unless_claimed(self, listing: FolderListing) -> None:
        """Judge the folder under the claim on its dataset ID, or skip it if another
        process holds that claim (an upload, delete or rename of the ID is running)."""
        from .claims import ClaimTakenError, claim_dataset

        try:
            with claim_dataset(self.site, layout.dataset_id_of(self.folder)):
                found = self._judge(self._objects())
        except ClaimTakenError:
            self.report.skipped.append(SkippedFolder(self.folder, listing.newest, self.store,
                                                     listing.objects, listing.bytes))
            return
        # garbage: not a dataset just registered (those objects are referenced); a folder of
        # the same name in another store is the same interrupted upload's
        if found and self.folder not in self.report.interrupted:
            self.report.interrupted.append(self.folder)

    def _judge(self, objects: list[StoredObject]) -> int:
        """Report (and with delete, remove) the garbage among ``objects``; how many."""
        referenced = referenced_keys(self.site, self.folder)
        garbage = [Garbage(obj.key, obj.size, obj.modified, self.store)
                   for obj in objects if obj.key not in referenced]
        if self.delete and garbage:
            self.storage.delete([obj.key for obj in garbage])
        for obj in garbage:
            self.report.garbage.append(obj)
            if self.on_garbage is not None:
                self.on_garbage(obj)
        return len(garbage)


def _folders(storage: Any) -> dict[str, FolderListing]:
    """Every generation folder in storage: the time of its newest object, and how many
    objects and bytes it holds."""
    folders: dict[str, FolderListing] = {}
    for top in layout.DATASET_FOLDERS:
        for obj in storage.list_objects(f"{top}/"):
            folder = layout.folder_of(obj.key)
            if folder is None:
                continue  # not inside a dataset folder: not imagingdb's to judge
            folders.setdefault(folder, FolderListing()).add(obj)
    return folders


def referenced_keys(site: "Site", folder: str) -> set[str]:
    """The keys in the generation folder ``folder`` that committed rows reference (the
    objects of a registered dataset: never garbage)."""
    from . import db as dbq

    first = layout.is_first_generation(folder)  # where rows without a storage_dir keep theirs
    dataset_id = layout.dataset_id_of(folder) if first else None
    frames_folder = layout.is_frames_folder(folder)
    with site.connection() as conn:
        names = dbq.names_stored_in(conn, folder, frames_folder=frames_folder,
                                    dataset_id=dataset_id)
        if frames_folder:  # an ome-zarr store's metadata: no rows, it follows from its positions
            positions = dbq.zarr_positions_stored_in(conn, folder, dataset_id=dataset_id)
            names |= set(layout.zarr_document_names(positions)) if positions else set()
    return {layout.object_key(folder, name) for name in names}


def _check_storage_dirs(site: "Site") -> None:
    """Refuse to run when a row's storage_dir is not a dataset folder gc knows."""
    from . import db as dbq

    with site.connection() as conn:
        for frames, dataset_id, storage_dir in dbq.storage_dirs(conn):
            if storage_dir and not layout.is_dataset_folder(storage_dir, frames):
                raise WorkError(
                    f"dataset {dataset_id} keeps its objects in {storage_dir!r}, not in a "
                    f"{layout.dataset_folder('<ID>', frames)} folder; gc cannot tell what it "
                    "references, so it deletes nothing")
