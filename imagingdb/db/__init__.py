"""The database: every SQL statement imagingdb runs lives in this package.

- :mod:`.tables`: the tables as Core mirrors of ``schema.sql``, and its text;
- :mod:`.engine`: engines (SQLite, PostgreSQL through :mod:`.postgres`) and
  driver errors as one line naming the masked URL;
- :mod:`.queries`: every query and write on the tables;
- :mod:`.locks`: the advisory locks that claim a dataset ID on PostgreSQL;
- :mod:`.schema_check`: the schema check every command makes first;
- :mod:`.migrate`: creating the schema and bringing older databases forward.

The names callers need are re-exported here: ``from imagingdb import db``,
then ``db.find_dataset(conn, ...)``, ``db.frames.c.file_name``...
"""

from .engine import connection_error, create_engine, writing
from .queries import *  # noqa: F401,F403 - the queries are this package's interface
from .tables import (
    SCHEMA_VERSION,
    JSONType,
    current_version,
    data_set,
    detect_version,
    file_global,
    frames,
    frames_global,
    metadata,
    pending_removal,
    qc_summary,
    replica,
    schema_sql,
    schema_statements,
    schema_version,
    thumbnail,
)

__all__ = [
    "SCHEMA_VERSION", "JSONType", "connection_error", "create_engine", "current_version",
    "detect_version",
    "data_set", "file_global", "frames", "frames_global", "metadata", "pending_removal", "qc_summary",
    "replica", "schema_sql",
    "schema_statements", "schema_version", "thumbnail", "writing",
]
