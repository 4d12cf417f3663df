"""PostgreSQL advisory locks: the SQL behind claiming a dataset ID (:mod:`imagingdb.claims`)."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` (one namespace for imagingdb's locks)."""
    digest = hashlib.sha256(f"imagingdb upload {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def try_advisory_lock(conn: sa.Connection, key: int) -> bool:
    """Take the session-level lock ``key`` if free; False if another session holds it."""
    return bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())


def advisory_unlock(conn: sa.Connection, key: int) -> None:
    conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})


def lock_id_case_insensitively(conn: sa.Connection, dataset_id: str) -> None:
    """Until this transaction ends, hold the lock on ``dataset_id`` with its case folded, so
    that two transactions registering IDs that differ only by case (``ML-...``, ``ml-...``)
    run one after the other and the second sees the first. On PostgreSQL a transaction-level
    advisory lock; SQLite's write transactions already run one at a time."""
    if conn.dialect.name == "postgresql":
        key = lock_key(f"case-folded {dataset_id.upper()}")
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
