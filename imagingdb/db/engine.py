"""Engines for the configured database, and driver errors as one line naming it (masked)."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

from ..config import DatabaseSettings, mask_url, split_url_password, url_passwords
from ..errors import ImagingDBError, InputError, WorkError

# ------------------------------------------------------------------------ engine


def create_engine(settings: DatabaseSettings, read_only: bool = False) -> sa.Engine:
    """An engine for the configured database; the password never enters the URL string.

    ``read_only``: an engine that cannot write (``upload --plan``): SQLite refuses every
    write (``query_only``), makes no folder and leaves the journal mode alone, and keeps no
    connection open (the last one closed removes SQLite's -wal and -shm files again);
    PostgreSQL sessions are read-only transactions."""
    # SQLAlchemy would end the password at its first "@" and take the rest for the host
    # (which drivers then name in their errors); taken out first, it is one opaque value.
    text, url_password = split_url_password(settings.url)
    try:
        url = sa.make_url(text)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is no number
        raise InputError(f"invalid database URL {mask_url(settings.url)!r}") from None
    if url.get_backend_name() == "sqlite":
        return _sqlite_read_only_engine(url) if read_only else _sqlite_engine(url)
    if url.get_backend_name() != "postgresql":
        raise InputError(
            f"unsupported database {mask_url(settings.url)!r}: use postgresql+pg8000://... "
            "or sqlite:///path"
        )
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+pg8000")
    from . import postgres

    if url_password is not None:
        url = url.set(password=url_password)
    engine = postgres.create_engine(url, settings)
    if read_only:
        @sa.event.listens_for(engine, "connect")
        def _read_only(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            cursor.close()
            dbapi_connection.commit()  # a SET rolled back with its transaction is undone
    return engine


def _sqlite_read_only_engine(url: sa.URL) -> sa.Engine:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only = ON")
        cursor.execute("PRAGMA busy_timeout = 60000")
        cursor.execute("PRAGMA case_sensitive_like = ON")
        cursor.close()

    return engine


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
    """Every password this connection may have used, longest first (a password that
    holds another is replaced whole)."""
    candidates = [settings.password, os.environ.get("PGPASSWORD"), *url_passwords(settings.url)]
    if settings.password_env:
        candidates.append(os.environ.get(settings.password_env))
    return sorted({c for c in candidates if c}, key=len, reverse=True)
