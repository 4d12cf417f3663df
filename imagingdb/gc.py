"""gc: find, and on request delete, stored objects that no registered dataset references.

Uploads write objects first and register the dataset last, so an upload that
was killed or failed in a way it could not clean up (the database out of
reach, the process gone) leaves objects no row names: frames of a dataset
that never got registered, hidden ``*.tmp`` files of the local backend, the
frames an overwrite no longer needs. They are harmless but take space.

What gc looks at: the dataset folders ``raw_frames/<ID>/`` and
``raw_files/<ID>/`` only; nothing else in a bucket or mount is touched.
An object there is garbage when no committed row references it.

What keeps it safe:

- rows are read after the folder is listed, and only committed rows count,
  so an object of a registered dataset is never garbage;
- a folder written to within the grace period (``--older-than``, default
  24 hours) is skipped whole: an upload in progress writes its folder every
  frame, and registers only at the end, so its objects look unreferenced
  until then. The grace period also absorbs clock skew between a file server
  and this machine. Run with a shorter one only when no upload is running;
- each folder is listed again right before its garbage is deleted (what
  remains is the moment between that listing and the delete: do not gc a
  dataset's leftovers while uploading it again);
- gc refuses to run if any row has a storage_dir it cannot map to a folder
  (from an adopted database, say): it could not tell what that row references.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

import sqlalchemy as sa

from . import db as dbq
from .errors import InputError, WorkError
from .storage import StoredObject

if TYPE_CHECKING:
    from .api import Database

DATASET_FOLDERS = ("raw_frames", "raw_files")
DEFAULT_GRACE = "24h"
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


@dataclass(frozen=True)
class SkippedFolder:
    """A folder with recent writes, left alone: an upload may be running into it."""

    folder: str
    modified: float


@dataclass
class GcReport:
    garbage: list[StoredObject] = field(default_factory=list)
    skipped: list[SkippedFolder] = field(default_factory=list)
    deleted: bool = False

    @property
    def bytes(self) -> int:
        return sum(obj.size for obj in self.garbage)

    def to_json(self) -> dict[str, Any]:
        return {
            "deleted": self.deleted,
            "objects": [{"key": o.key, "size": o.size, "modified": _iso(o.modified)}
                        for o in self.garbage],
            "bytes": self.bytes,
            "skipped_recent_folders": [{"folder": s.folder, "modified": _iso(s.modified)}
                                       for s in self.skipped],
        }


def _iso(stamp: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds")


def collect_garbage(
    database: "Database",
    *,
    delete: bool = False,
    older_than: float = 24 * 3600,
    on_garbage: Optional[Callable[[StoredObject], None]] = None,
    now: Optional[float] = None,
) -> GcReport:
    """Find (and with ``delete``, remove) unreferenced objects in folders quiet for ``older_than`` s."""
    _check_storage_dirs(database)
    storage = database.storage
    report = GcReport(deleted=delete)
    cutoff = (time.time() if now is None else now) - older_than
    for folder, newest in _folders(storage).items():
        if newest > cutoff:
            report.skipped.append(SkippedFolder(folder, newest))
            continue
        objects = list(storage.list_objects(f"{folder}/"))  # again: right before deciding
        newest = max((obj.modified for obj in objects), default=0.0)
        if newest > cutoff:
            report.skipped.append(SkippedFolder(folder, newest))
            continue
        referenced = _referenced_keys(database, folder)
        garbage = [obj for obj in objects if obj.key not in referenced]
        if delete and garbage:
            storage.delete([obj.key for obj in garbage])
        for obj in garbage:
            report.garbage.append(obj)
            if on_garbage is not None:
                on_garbage(obj)
    return report


def _folders(storage: Any) -> dict[str, float]:
    """Every dataset folder in storage with the time of its newest object."""
    newest: dict[str, float] = {}
    for top in DATASET_FOLDERS:
        for obj in storage.list_objects(f"{top}/"):
            parts = obj.key.split("/")
            if len(parts) < 3:
                continue  # not inside a dataset folder: not imagingdb's to judge
            folder = f"{parts[0]}/{parts[1]}"
            newest[folder] = max(newest.get(folder, 0.0), obj.modified)
    return newest


def _referenced_keys(database: "Database", folder: str) -> set[str]:
    """The keys in ``folder`` that committed rows reference."""
    kind, serial = folder.split("/", 1)
    owner, child = ((dbq.frames_global, dbq.frames) if kind == "raw_frames"
                    else (dbq.file_global, None))
    names = child.c.file_name if child is not None else owner.c.file_name
    source = owner.join(dbq.data_set, owner.c.dataset_id == dbq.data_set.c.id)
    if child is not None:
        source = source.join(child, child.c.frames_global_id == owner.c.id)
    in_folder = sa.or_(
        owner.c.storage_dir.in_([folder, f"{folder}/"]),
        sa.and_(sa.func.coalesce(owner.c.storage_dir, "") == "",
                dbq.data_set.c.dataset_serial == serial),
    )
    with database.connection() as conn:
        found = conn.execute(sa.select(names).select_from(source).where(in_folder)).scalars()
        return {f"{folder}/{name}" for name in found}


def _check_storage_dirs(database: "Database") -> None:
    """Refuse to run when a row's storage_dir is not a dataset folder gc knows."""
    with database.connection() as conn:
        for owner, kind in ((dbq.frames_global, "raw_frames"), (dbq.file_global, "raw_files")):
            stmt = (sa.select(dbq.data_set.c.dataset_serial, owner.c.storage_dir)
                    .select_from(owner.join(dbq.data_set, owner.c.dataset_id == dbq.data_set.c.id)))
            for serial, storage_dir in conn.execute(stmt):
                if storage_dir and not re.fullmatch(rf"{kind}/[^/]+/?", storage_dir):
                    raise WorkError(
                        f"dataset {serial} keeps its objects in {storage_dir!r}, not in a "
                        f"{kind}/<ID> folder; gc cannot tell what it references, so it "
                        "deletes nothing")
