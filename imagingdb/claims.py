"""Claims on dataset IDs: one upload of a given ID at a time, across processes and machines.

Two uploads of the same ID would write the same storage keys; whichever commit
loses, its objects may already have replaced the winner's. So an upload claims
the ID before it writes anything and holds the claim until it has registered
the dataset (or cleaned up); a second upload of that ID meanwhile fails at once
with a clear error, having written nothing. The unique index on the dataset ID
stays the last word when two uploads race without claims.

- PostgreSQL: a session-level advisory lock, on a connection of its own held for
  the upload; the server drops it if the process dies.
- SQLite (one machine): an flock()ed file per ID beside the database file; the
  kernel drops it if the process dies.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

from .db import locks
from .errors import WorkError
from .site import Site


def _busy(dataset_id: str) -> WorkError:
    return WorkError(f"dataset {dataset_id} is being uploaded by another process right now; "
                     "nothing of this upload was written")


@contextlib.contextmanager
def claim_dataset(site: Site, dataset_id: str) -> Iterator[None]:
    """Hold the claim on ``dataset_id`` for the block, or raise WorkError if it is taken."""
    engine = site.engine
    if engine.dialect.name == "postgresql":
        with _advisory_lock(site, dataset_id):
            yield
    elif engine.url.database and engine.url.database != ":memory:":
        with _lock_file(Path(engine.url.database), dataset_id):
            yield
    else:  # an in-memory database lives and dies with this one process
        yield


@contextlib.contextmanager
def _advisory_lock(site: Site, dataset_id: str) -> Iterator[None]:
    key = locks.lock_key(dataset_id)
    with contextlib.ExitStack() as stack:
        with site.database_errors():
            # Autocommit: the lock belongs to the session; no transaction sits idle meanwhile.
            conn = stack.enter_context(
                site.engine.connect().execution_options(isolation_level="AUTOCOMMIT"))
            taken = locks.try_advisory_lock(conn, key)
        if not taken:
            raise _busy(dataset_id)
        try:
            yield
        finally:
            try:
                locks.advisory_unlock(conn, key)
            except sa.exc.DBAPIError:
                conn.invalidate()  # a lost session has lost its lock too


@contextlib.contextmanager
def _lock_file(database: Path, dataset_id: str) -> Iterator[None]:
    import fcntl

    folder = database.expanduser().parent / f"{database.name}.upload-claims"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset_id}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(dataset_id) from None
        # The holder before us removes the file when done; a lock on a removed file is no claim.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
