"""Claims on dataset IDs: one upload of a given ID at a time, across processes and machines.

An upload claims the ID before it writes anything and holds the claim until
it has registered the dataset (or cleaned up); a second upload of that ID
meanwhile fails at once with a clear error, having written nothing. A delete
or a rename (:mod:`imagingdb.remove`) claims every ID it touches in the same way. The
unique index on the dataset ID stays the last word when two uploads race
without claims, and every upload attempt writes keys of its own
(:mod:`imagingdb.layout`), so even then neither touches the other's objects.

A claim can be lost while it is held: a PostgreSQL server that restarts or
drops the claim's connection forgets the lock, and a lock file removed from
its folder no longer keeps anyone out. So a claim is not trusted for the
whole upload: :meth:`Claim.prove` checks it inside the transaction that
registers the dataset, and an upload whose claim is gone registers nothing.

- PostgreSQL: a session-level advisory lock, on a connection of its own held for
  the upload; the server drops it if the process dies. The proof asks the
  server whether that very session (its pid and start time) still holds it.
- SQLite (one machine): an flock()ed file per ID beside the database file; the
  kernel drops it if the process dies. The proof checks that the file at its
  path is still the one locked.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator

import sqlalchemy as sa

from .db import locks
from .errors import WorkError
from .ids import case_folded
from .site import Site

#: how often to try again when the lock file is replaced (or its folder removed) meanwhile
_LOCK_FILE_ATTEMPTS = 50


class ClaimTakenError(WorkError):
    """Another process holds the claim on the dataset ID (an upload, delete or rename of it)."""

    def __init__(self, message: str, dataset_id: str):
        super().__init__(message)
        self.dataset_id = dataset_id


def _busy(dataset_id: str) -> WorkError:
    return ClaimTakenError(f"dataset {dataset_id} is being uploaded by another process right "
                           "now; nothing of this upload was written", dataset_id)


class Claim:
    """A claim on one dataset ID, held by this process. This base class is an in-memory
    database's, which lives and dies with this one process: nothing else can claim."""

    def __init__(self, dataset_id: str):
        self.dataset_id = dataset_id

    def prove(self, conn: sa.Connection) -> None:
        """Raise WorkError unless this process still holds the claim. ``conn``: a connection
        of the site, in the transaction that registers the dataset (its last statement)."""

    def _lost(self, how: str) -> WorkError:
        return WorkError(
            f"lost the claim on dataset {self.dataset_id} while uploading ({how}), so another "
            f"upload of it may have begun; nothing of this upload was registered: run it again")


class _AdvisoryClaim(Claim):
    def __init__(self, dataset_id: str, key: int, pid: int, started: datetime):
        super().__init__(dataset_id)
        self.key, self.pid, self.started = key, pid, started

    def prove(self, conn: sa.Connection) -> None:
        if not locks.session_holds_advisory_lock(conn, self.key, self.pid, self.started):
            raise self._lost("the database server restarted or dropped the claim's connection")


class _FileClaim(Claim):
    def __init__(self, dataset_id: str, path: Path, fd: int):
        super().__init__(dataset_id)
        self.path, self.fd = path, fd

    def is_held(self) -> bool:
        """True while the path still names the file this process locked."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(self.fd)
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    def prove(self, conn: sa.Connection) -> None:
        if not self.is_held():
            raise self._lost(f"its lock file {self.path} was removed or replaced")


@contextlib.contextmanager
def claim_dataset(site: Site, dataset_id: str) -> Iterator[Claim]:
    """Hold the claim on ``dataset_id`` for the block, or raise WorkError if it is taken."""
    with claim_datasets(site, [dataset_id]) as claims:
        yield claims[0]


@contextlib.contextmanager
def claim_datasets(site: Site, dataset_ids: Iterable[str]) -> Iterator[list[Claim]]:
    """Hold the claims on all of ``dataset_ids`` for the block (one claim per ID, IDs that
    differ only by case count as one; in case-folded order), or raise
    :class:`ClaimTakenError` for the first one taken, holding none. On PostgreSQL they share
    one connection, so a delete of many datasets needs no more connections than one."""
    ordered = sorted({case_folded(i): i for i in dataset_ids}.values(), key=case_folded)
    engine = site.engine
    if engine.dialect.name == "postgresql":
        with _advisory_locks(site, ordered) as claims:
            yield claims
    elif engine.url.database and engine.url.database != ":memory:":
        with contextlib.ExitStack() as stack:
            yield [stack.enter_context(_lock_file(Path(engine.url.database), dataset_id))
                   for dataset_id in ordered]
    else:
        yield [Claim(dataset_id) for dataset_id in ordered]


@contextlib.contextmanager
def _advisory_locks(site: Site, dataset_ids: list[str]) -> Iterator[list[Claim]]:
    # case folded, so that uploads of IDs that differ only by case never write at once
    keys = [locks.lock_key(case_folded(dataset_id)) for dataset_id in dataset_ids]
    taken: list[int] = []
    with contextlib.ExitStack() as stack:
        with site.database_errors():
            # Autocommit: the lock belongs to the session; no transaction sits idle meanwhile.
            conn = stack.enter_context(
                site.engine.connect().execution_options(isolation_level="AUTOCOMMIT"))
            try:
                for dataset_id, key in zip(dataset_ids, keys):
                    if not locks.try_advisory_lock(conn, key):
                        raise _busy(dataset_id)
                    taken.append(key)
                pid, started = locks.session_identity(conn)
            except BaseException:
                _unlock_all(conn, taken)
                raise
        try:
            yield [_AdvisoryClaim(dataset_id, key, pid, started)
                   for dataset_id, key in zip(dataset_ids, keys)]
        finally:
            _unlock_all(conn, taken)


def _unlock_all(conn: sa.Connection, keys: list[int]) -> None:
    for key in keys:
        if conn.invalidated:
            return  # a lost session has lost its locks too
        _unlock(conn, key)


def _unlock(conn: sa.Connection, key: int) -> None:
    try:
        locks.advisory_unlock(conn, key)
    except sa.exc.DBAPIError:
        conn.invalidate()  # a lost session has lost its lock too


@contextlib.contextmanager
def _lock_file(database: Path, dataset_id: str) -> Iterator[Claim]:
    folder = database.expanduser().parent / f"{database.name}.upload-claims"
    claim = _take_lock_file(folder / f"{case_folded(dataset_id)}.lock", dataset_id)
    try:
        yield claim
    finally:
        # Only our own file: after a removal, the path may be another upload's lock now.
        if claim.is_held():
            claim.path.unlink(missing_ok=True)
        os.close(claim.fd)


def _take_lock_file(path: Path, dataset_id: str) -> _FileClaim:
    import fcntl

    for _ in range(_LOCK_FILE_ATTEMPTS):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            continue  # the folder was removed between the two calls
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(dataset_id) from None
        claim = _FileClaim(dataset_id, path, fd)
        # The holder before us removes the file when done; a lock on a removed file is no claim.
        if claim.is_held():
            return claim
        os.close(fd)
    raise WorkError(f"cannot claim dataset {dataset_id}: its lock file {path} keeps "
                    "disappearing; is something removing that folder?")
