"""PostgreSQL advisory locks: the SQL behind claiming a dataset ID (:mod:`imagingdb.claims`)."""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa

from ..ids import case_folded


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` (one namespace for imagingdb's locks)."""
    digest = hashlib.sha256(f"imagingdb upload {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def try_advisory_lock(conn: sa.Connection, key: int) -> bool:
    """Take the session-level lock ``key`` if free; False if another session holds it."""
    return bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())


def advisory_unlock(conn: sa.Connection, key: int) -> None:
    conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})


def session_identity(conn: sa.Connection) -> tuple[int, datetime]:
    """This session's backend pid and start time: together they name it for good, where a
    pid alone may be a new session's after a restart or a dropped connection."""
    row = conn.execute(sa.text(
        "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")).one()
    return row.pid, row.backend_start


def session_holds_advisory_lock(conn: sa.Connection, key: int, pid: int,
                                started: datetime) -> bool:
    """True if the session (``pid``, ``started``) holds the session-level lock ``key`` in this
    database, asked from any session (``conn``: the one registering a dataset).

    pg_locks shows a bigint key as its high and low 32 bits (classid, objid), objsubid 1.
    """
    return bool(conn.execute(sa.text(
        "SELECT EXISTS (SELECT 1 FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid::bigint = :high AND l.objid::bigint = :low"
        " AND l.pid = :pid AND a.backend_start = :started)"),
        {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF, "pid": pid,
         "started": started}).scalar())


def lock_id_case_insensitively(conn: sa.Connection, dataset_id: str) -> None:
    """Until this transaction ends, hold the lock on ``dataset_id`` with its case folded, so
    that two transactions registering IDs that differ only by case (``ML-...``, ``ml-...``)
    run one after the other and the second sees the first. On PostgreSQL a transaction-level
    advisory lock; SQLite's write transactions already run one at a time."""
    if conn.dialect.name == "postgresql":
        key = lock_key(f"case-folded {case_folded(dataset_id)}")
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
