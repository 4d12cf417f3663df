"""The tables, as SQLAlchemy Core mirrors of ``schema.sql``, and reading ``schema.sql`` itself.

``schema.sql`` (repo top, shipped inside the package) is the single source of
truth for the tables; :mod:`imagingdb.db.migrate` applies it (and brings older
databases forward). The :class:`~sqlalchemy.Table` objects below only mirror
it so that queries can be built in Core (a test checks they match the real schema).
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Optional

import sqlalchemy as sa

from ..errors import WorkError

SCHEMA_VERSION = 7  # the version schema.sql creates; imagingdb/migrate.py gets older ones there



class _JSONType(sa.types.TypeDecorator):
    """JSON as JSONB on PostgreSQL, JSON text on SQLite.

    A decorator rather than ``JSON().with_variant(JSONB(), ...)`` so that the
    PostgreSQL dialect (~40 ms of imports) loads only when PostgreSQL is used:
    ``imagingdb query`` on SQLite must start fast.
    """

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(sa.JSON(none_as_null=True))


JSONType = _JSONType(none_as_null=True)

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.DateTime, nullable=False),
)

data_set = sa.Table(
    "data_set", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("dataset_serial", sa.String, nullable=False),
    sa.Column("description", sa.String),
    sa.Column("microscope", sa.String),
    sa.Column("frames", sa.Boolean, nullable=False),
    sa.Column("date_time", sa.DateTime, nullable=False),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("data_set.id")),
    sa.Column("annotations", JSONType),
    sa.Column("uploaded_by", sa.String),
    sa.Column("uploaded_host", sa.String),
    sa.Column("uploaded_at", sa.DateTime),
    sa.Column("imagingdb_version", sa.String),
    sa.Column("source_path", sa.String),
    sa.Column("content_sha256", sa.String),
    sa.Column("stored_bytes", sa.BigInteger),
    sa.Column("stored_objects", sa.Integer),
)

#: the data_set columns of version 4, added to older databases by migration step 4
DATA_SET_V4_COLUMNS = ("annotations", "uploaded_by", "uploaded_host", "uploaded_at",
                       "imagingdb_version", "source_path", "content_sha256", "stored_bytes",
                       "stored_objects")

file_global = sa.Table(
    "file_global", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("storage_dir", sa.String),
    sa.Column("file_name", sa.String, nullable=False),
    sa.Column("metadata_json", JSONType),
    sa.Column("dataset_id", sa.Integer, sa.ForeignKey("data_set.id"), nullable=False),
    sa.Column("sha256", sa.String),
)

frames_global = sa.Table(
    "frames_global", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("storage_dir", sa.String),
    sa.Column("nbr_frames", sa.Integer, nullable=False),
    sa.Column("im_width", sa.Integer, nullable=False),
    sa.Column("im_height", sa.Integer, nullable=False),
    sa.Column("nbr_slices", sa.Integer, nullable=False),
    sa.Column("nbr_channels", sa.Integer, nullable=False),
    sa.Column("nbr_timepoints", sa.Integer, nullable=False),
    sa.Column("nbr_positions", sa.Integer, nullable=False),
    sa.Column("im_colors", sa.Integer, nullable=False),
    sa.Column("bit_depth", sa.String, nullable=False),
    sa.Column("metadata_json", JSONType),
    sa.Column("dataset_id", sa.Integer, sa.ForeignKey("data_set.id"), nullable=False),
    sa.Column("frame_format", sa.String),
)

frames = sa.Table(
    "frames", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("channel_idx", sa.Integer, nullable=False),
    sa.Column("slice_idx", sa.Integer, nullable=False),
    sa.Column("time_idx", sa.Integer, nullable=False),
    sa.Column("pos_idx", sa.Integer, nullable=False),
    sa.Column("channel_name", sa.String),
    sa.Column("file_name", sa.String, nullable=False),
    sa.Column("sha256", sa.String),
    sa.Column("metadata_json", JSONType),
    sa.Column("frames_global_id", sa.Integer, sa.ForeignKey("frames_global.id"), nullable=False),
    sa.Column("qc_min", sa.Float),
    sa.Column("qc_max", sa.Float),
    sa.Column("qc_mean", sa.Float),
    sa.Column("qc_saturated", sa.Float),
    sa.Column("qc_focus", sa.Float),
)

#: the frames columns of version 6, added to older databases by migration step 6
FRAMES_QC_COLUMNS = ("qc_min", "qc_max", "qc_mean", "qc_saturated", "qc_focus")

qc_summary = sa.Table(
    "qc_summary", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("dataset_id", sa.Integer, sa.ForeignKey("data_set.id"), nullable=False),
    sa.Column("frames", sa.Integer, nullable=False),
    sa.Column("saturation_level", sa.Float),
    sa.Column("saturated_frames", sa.Integer, nullable=False),
    sa.Column("blank_frames", sa.Integer, nullable=False),
    sa.Column("blank_positions", sa.Integer, nullable=False),
    sa.Column("focus_min", sa.Float),
    sa.Column("focus_max", sa.Float),
    sa.Column("detail", JSONType),
)

thumbnail = sa.Table(
    "thumbnail", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("dataset_id", sa.Integer, sa.ForeignKey("data_set.id"), nullable=False),
    sa.Column("pos_idx", sa.Integer, nullable=False),
    sa.Column("channel_idx", sa.Integer, nullable=False),
    sa.Column("display_min", sa.Float),
    sa.Column("display_max", sa.Float),
    sa.Column("png", sa.LargeBinary, nullable=False),
)

pending_removal = sa.Table(
    "pending_removal", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("dataset_serial", sa.String, nullable=False),
    sa.Column("storage_dir", sa.String, nullable=False),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

replica = sa.Table(
    "replica", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("dataset_id", sa.Integer, sa.ForeignKey("data_set.id"), nullable=False),
    sa.Column("store", sa.String, nullable=False),
    sa.Column("complete_at", sa.DateTime, nullable=False),
    sa.Column("verified_at", sa.DateTime),
)


# ------------------------------------------------------------------------ schema


def schema_sql() -> str:
    return resources.files("imagingdb").joinpath("schema.sql").read_text(encoding="utf-8")


def schema_statements(dialect: str) -> list[str]:
    """schema.sql split into statements, rewritten for SQLite when needed."""
    text = "\n".join(
        line for line in schema_sql().splitlines() if not line.lstrip().startswith("--")
    )
    if dialect == "sqlite":
        text = text.replace("INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                            "INTEGER PRIMARY KEY")
        text = re.sub(r"\bJSONB\b", "TEXT", text)
        text = re.sub(r"\bBYTEA\b", "BLOB", text)
    return [s.strip() for s in re.split(r";\s*$", text, flags=re.M) if s.strip()]


def current_version(conn: sa.Connection) -> Optional[int]:
    """The schema version recorded in the database, None when it has no schema yet."""
    if not sa.inspect(conn).has_table("schema_version"):
        return None
    return recorded_version(conn)


def recorded_version(conn: sa.Connection) -> Optional[int]:
    """The highest version in schema_version (the table must exist)."""
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()


#: which of imagingdb's marker tables PostgreSQL has, as the inspector's has_table asks
_PG_MARKER_TABLES = sa.text(
    "SELECT c.relname FROM pg_catalog.pg_class c "
    "WHERE c.relname IN ('schema_version', 'data_set') AND c.relkind IN ('r', 'p', 'f', 'v', 'm') "
    "AND pg_catalog.pg_table_is_visible(c.oid) "
    "AND c.relnamespace <> 'pg_catalog'::regnamespace")


def detect_version(conn: sa.Connection) -> Optional[int]:
    """The schema version; 0 for a database made by the original imagingDB; None if empty.

    Every command asks this first. On PostgreSQL one catalogue query, as text: the
    inspector's two has_table calls, compiled on first use, took ~20 ms of each command's
    start-up against ~5 ms."""
    if conn.dialect.name == "postgresql":
        present = set(conn.execute(_PG_MARKER_TABLES).scalars())
    else:
        inspector = sa.inspect(conn)
        present = {name for name in ("schema_version", "data_set") if inspector.has_table(name)}
    if "schema_version" in present:
        return recorded_version(conn) or 0
    return 0 if "data_set" in present else None


def refuse_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise WorkError(f"the database has schema version {version}, newer than this imagingdb "
                        f"understands ({SCHEMA_VERSION}); upgrade imagingdb")
