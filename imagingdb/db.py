"""The database: engine creation, reading schema.sql, and every query, in SQLAlchemy Core.

``schema.sql`` (repo top, shipped inside the package) is the single source of
truth for the tables; :mod:`imagingdb.migrate` applies it (and brings older
databases forward). The :class:`~sqlalchemy.Table` objects below only mirror
it so queries can be built in Core (a test checks they match the real schema).
All SQL is parametrised.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Iterable, Optional, Sequence

import sqlalchemy as sa

from .config import DatabaseSettings, mask_url
from .errors import ImagingDBError, InputError, WorkError

SCHEMA_VERSION = 2  # the version schema.sql creates; imagingdb/migrate.py gets older ones there



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
)

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
)


# ------------------------------------------------------------------------ engine


def create_engine(settings: DatabaseSettings) -> sa.Engine:
    """An engine for the configured database; the password never enters the URL string."""
    try:
        url = sa.make_url(settings.url)
    except sa.exc.ArgumentError:
        raise InputError(f"invalid database URL {mask_url(settings.url)!r}") from None
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if url.get_backend_name() != "postgresql":
        raise InputError(
            f"unsupported database {mask_url(settings.url)!r}: use postgresql+pg8000://... "
            "or sqlite:///path"
        )
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+pg8000")
    from . import postgres

    return postgres.create_engine(url, settings)


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event below own transactions (pysqlite's own
        # implicit BEGIN is deferred and breaks BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 60000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA case_sensitive_like = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writers take the lock up front so two uploads queue instead of failing.
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def writing(engine: sa.Engine):
    """A transaction meant to write: on SQLite it takes the write lock at BEGIN."""
    return engine.execution_options(sqlite_begin="IMMEDIATE").begin()


def connection_error(exc: BaseException, settings: DatabaseSettings) -> ImagingDBError:
    """A driver or network error as one line naming the database by its masked URL.

    An error before any statement ran is a failure to connect (server down,
    login refused, no answer in time); one after is an error of that statement.
    """
    reason = _error_reason(exc, settings)
    for secret in _known_passwords(settings):
        reason = reason.replace(secret, "***")
    where = mask_url(settings.url)
    if getattr(exc, "statement", None) is None:
        return WorkError(f"cannot connect to database {where}: {reason}")
    return WorkError(f"database {where} refused the operation: {reason}")


def _error_reason(exc: BaseException, settings: DatabaseSettings) -> str:
    error = getattr(exc, "orig", None) or exc
    first = error.args[0] if error.args else None
    if isinstance(first, dict):  # pg8000 hands over the server's error fields
        return f"{first.get('M', 'error')} ({first.get('C', '?')})"
    for candidate in (error, error.__cause__, error.__context__):
        if isinstance(candidate, TimeoutError):
            return (f"no answer within {settings.connect_timeout} s "
                    "(database.connect_timeout in the site config)")
        if isinstance(candidate, OSError) and candidate.strerror:
            return candidate.strerror
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _known_passwords(settings: DatabaseSettings) -> list[str]:
    candidates = [settings.password, os.environ.get("PGPASSWORD")]
    if settings.password_env:
        candidates.append(os.environ.get(settings.password_env))
    return [c for c in candidates if c]


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
    return [s.strip() for s in re.split(r";\s*$", text, flags=re.M) if s.strip()]


def current_version(conn: sa.Connection) -> Optional[int]:
    """The schema version recorded in the database, None when it has no schema yet."""
    if not sa.inspect(conn).has_table("schema_version"):
        return None
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()


# ----------------------------------------------------------------------- queries


def find_dataset(conn: sa.Connection, serial: str) -> Optional[sa.Row]:
    return conn.execute(
        sa.select(data_set).where(data_set.c.dataset_serial == serial).order_by(data_set.c.id)
    ).first()


def end_of_day(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time()) + timedelta(days=1)


def query_datasets(
    conn: sa.Connection,
    *,
    project_id: Optional[str] = None,
    microscope: Optional[str] = None,
    start_date: Optional[date] = None,
    end_date: Optional[date] = None,
    description: Optional[str] = None,
) -> list[sa.Row]:
    """Datasets matching every given filter, ordered by dataset ID; selection in SQL."""
    parent = data_set.alias("parent")
    stmt = (
        sa.select(data_set, parent.c.dataset_serial.label("parent_dataset_id"))
        .select_from(data_set.outerjoin(parent, data_set.c.parent_id == parent.c.id))
        .order_by(data_set.c.dataset_serial)
    )
    if project_id:
        stmt = stmt.where(data_set.c.dataset_serial.startswith(f"{project_id}-", autoescape=True))
    if microscope:
        stmt = stmt.where(data_set.c.microscope.icontains(microscope, autoescape=True))
    if description:
        stmt = stmt.where(data_set.c.description.icontains(description, autoescape=True))
    if start_date:
        stmt = stmt.where(data_set.c.date_time >= datetime.combine(start_date, datetime.min.time()))
    if end_date:
        stmt = stmt.where(data_set.c.date_time < end_of_day(end_date))
    return list(conn.execute(stmt))


def frames_global_of(conn: sa.Connection, dataset_pk: int) -> Optional[sa.Row]:
    return conn.execute(
        sa.select(frames_global).where(frames_global.c.dataset_id == dataset_pk)
        .order_by(frames_global.c.id)
    ).first()


def file_global_of(conn: sa.Connection, dataset_pk: int) -> Optional[sa.Row]:
    return conn.execute(
        sa.select(file_global).where(file_global.c.dataset_id == dataset_pk)
        .order_by(file_global.c.id)
    ).first()


def select_frames(
    conn: sa.Connection,
    frames_global_pk: int,
    *,
    channels: Optional[Sequence[int]] = None,
    slices: Optional[Iterable[int]] = None,
    times: Optional[Iterable[int]] = None,
    positions: Optional[Iterable[int]] = None,
    with_metadata: bool = True,
) -> list[sa.Row]:
    """The frames of one dataset matching the index filters (None: all), in index order."""
    columns = [c for c in frames.c if with_metadata or c.name != "metadata_json"]
    stmt = sa.select(*columns).where(frames.c.frames_global_id == frames_global_pk)
    for column, wanted in (
        (frames.c.channel_idx, channels),
        (frames.c.slice_idx, slices),
        (frames.c.time_idx, times),
        (frames.c.pos_idx, positions),
    ):
        if wanted is not None:
            stmt = stmt.where(column.in_(sorted(set(wanted))))
    stmt = stmt.order_by(
        frames.c.pos_idx, frames.c.time_idx, frames.c.channel_idx, frames.c.slice_idx
    )
    return list(conn.execute(stmt))


def channel_names(conn: sa.Connection, frames_global_pk: int) -> dict[int, str]:
    """channel index -> name, as recorded in the frames of a dataset."""
    rows = conn.execute(
        sa.select(frames.c.channel_idx, sa.func.max(frames.c.channel_name))
        .where(frames.c.frames_global_id == frames_global_pk)
        .group_by(frames.c.channel_idx)
        .order_by(frames.c.channel_idx)
    )
    return {idx: name for idx, name in rows}


def distinct_indexes(conn: sa.Connection, frames_global_pk: int) -> dict[str, list[int]]:
    """The channel/slice/time/position indexes a dataset actually has."""
    result = {}
    for key, column in (("channels", frames.c.channel_idx), ("slices", frames.c.slice_idx),
                        ("times", frames.c.time_idx), ("positions", frames.c.pos_idx)):
        result[key] = list(conn.execute(
            sa.select(column).where(frames.c.frames_global_id == frames_global_pk)
            .distinct().order_by(column)
        ).scalars())
    return result
