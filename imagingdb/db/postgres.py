"""Connecting to PostgreSQL through pg8000 the way libpq users expect.

pg8000 is pure Python and reads no libpq settings, so this module does what
``psql`` users take for granted:

- what the URL leaves out comes from ``PGHOST``, ``PGPORT``, ``PGUSER`` and
  ``PGDATABASE`` (then libpq's defaults: localhost, 5432, the login name);
  a host starting with ``/`` is a unix-socket folder, as in libpq;
- the password, first found wins: one given in code or by ``--login``, the
  variable named by ``database.password_env``, the URL itself, ``PGPASSWORD``,
  then ``~/.pgpass`` (or ``$PGPASSFILE``), ignored with a warning when other
  users can read it, as libpq does;
- TLS follows libpq's ``sslmode`` (the URL's ``?sslmode=`` or ``PGSSLMODE``): ``prefer``,
  the default, asks the server for TLS and goes on in plain on the same connection when it
  has none, as libpq does (:func:`negotiated_socket`: given a context, pg8000 drops the
  connection, and a second one would cost the server a second process); ``disable``;
  ``require`` (TLS, no certificate check, as libpq); ``verify-ca`` and
  ``verify-full`` check the server's certificate against ``?sslrootcert=`` /
  ``PGSSLROOTCERT`` or the system's certificates (``verify-full`` also its host name). A
  unix socket never uses TLS, as in libpq. Left to itself pg8000 would build a verifying
  context, parsing the whole system certificate bundle (~0.1 s), on every connection, only
  to switch verification off;
- ``database.connect_timeout`` bounds reaching the server and logging in only.
  pg8000 keeps its ``timeout`` on the socket for the connection's whole life,
  which would cut a long bulk insert or index build; it is lifted once the
  connection is up. A server that vanishes mid-statement is noticed by TCP
  keepalive probes instead (after about a minute of silence; a busy server's
  kernel still answers them, so a long statement is not cut).

The password is handed to the driver as a connect argument and never enters
the URL, so no URL string shown or logged can contain it.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import socket
import stat
import struct
import sys
from pathlib import Path
from typing import Any, Optional

import sqlalchemy as sa

from ..config import DatabaseSettings, mask_url
from ..errors import InputError

log = logging.getLogger(__name__)

DEFAULT_PORT = 5432
#: first probe after 30 s of silence, then every 10 s; 3 unanswered probes end the connection
KEEPALIVE = {"TCP_KEEPIDLE": 30, "TCP_KEEPALIVE": 30, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
SERVER_HAS_NO_TLS = "Server refuses SSL"  # pg8000's words
#: the first message of a connection asking for TLS: its length, then the SSLRequest code
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
NO_PASSWORD = ("the server asks for a password and none was found: set database.password_env, "
               "PGPASSWORD or ~/.pgpass")


def libpq_url(url: sa.URL) -> sa.URL:
    """``url`` with the host, port, user and database it omits taken from the PG* variables."""
    env = os.environ
    host = url.host or env.get("PGHOST") or None
    port = url.port
    if port is None and env.get("PGPORT"):
        try:
            port = int(env["PGPORT"])
        except ValueError:
            raise InputError(f"PGPORT must be a port number, got {env['PGPORT']!r}") from None
    username = url.username or env.get("PGUSER") or _login_name()
    database = url.database or env.get("PGDATABASE") or None
    return url.set(host=host, port=port, username=username, database=database)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise InputError("no database user: put it in database.url (postgresql+pg8000://USER@HOST/DB) "
                         "or set PGUSER") from None


def connect_args(url: sa.URL, settings: DatabaseSettings) -> tuple[sa.URL, dict[str, Any]]:
    """The URL to give SQLAlchemy (never with a password) and pg8000's extra arguments."""
    url = libpq_url(url)
    args: dict[str, Any] = {"timeout": settings.connect_timeout}
    if url.host and url.host.startswith("/"):
        args["unix_sock"] = f"{url.host}/.s.PGSQL.{url.port or DEFAULT_PORT}"
    password = find_password(url, settings)
    if password is not None:
        args["password"] = password
    args["ssl_context"] = _ssl_context(url)
    if url.host and url.host.startswith("/"):
        url = url.set(host=None)
    return url.set(password=None).difference_update_query(["sslmode", "sslrootcert"]), args


def ssl_mode(url: sa.URL) -> str:
    """libpq's sslmode for ``url``: its ``?sslmode=``, else ``PGSSLMODE``, else prefer."""
    mode = url.query.get("sslmode") or os.environ.get("PGSSLMODE") or "prefer"
    if mode not in SSL_MODES:
        raise InputError(f"sslmode must be one of {', '.join(SSL_MODES)}, got {mode!r} "
                         "(in database.url's ?sslmode= or PGSSLMODE)")
    return mode


def _ssl_context(url: sa.URL) -> Any:
    """pg8000's ``ssl_context``: False for no TLS, or the context to ask the server for TLS
    with. Given a context pg8000 refuses a server without TLS; for ``allow`` and ``prefer``
    :func:`create_engine` asks for TLS itself (:func:`negotiated_socket`) and goes on
    without it."""
    mode = ssl_mode(url)
    if mode == "disable" or (url.host and url.host.startswith("/")):
        return False
    import ssl

    if mode in ("verify-ca", "verify-full"):
        root = url.query.get("sslrootcert") or os.environ.get("PGSSLROOTCERT")
        try:
            context = ssl.create_default_context(cafile=root)
        except OSError as exc:
            raise InputError(f"sslrootcert {root}: {exc.strerror or exc}: "
                             "give the file of the certificate authority that signed "
                             "the server's certificate") from None
        context.check_hostname = mode == "verify-full"
        return context
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def find_password(url: sa.URL, settings: DatabaseSettings) -> Optional[str]:
    """The first password found, in the order documented above; None for none at all."""
    if settings.password is not None:
        return settings.password
    if settings.password_env:
        value = os.environ.get(settings.password_env)
        if value is None:
            raise InputError(
                f"environment variable {settings.password_env} (database.password_env) "
                "is not set; export it with the database password"
            )
        return value
    if url.password is not None:
        return url.password
    if os.environ.get("PGPASSWORD") is not None:
        return os.environ["PGPASSWORD"]
    return pgpass_lookup(url)


def pgpass_path() -> Path:
    return Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")


def pgpass_lookup(url: sa.URL) -> Optional[str]:
    """The password for ``url`` from the password file, matched as libpq matches it."""
    path = pgpass_path()
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            print(f"Warning: password file {path} is ignored because other users can read "
                  f"it; run: chmod 600 {path}", file=sys.stderr)
            return None
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    wanted = [url.host or "localhost", str(url.port or DEFAULT_PORT), url.database or "",
              url.username or ""]
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [field.replace("\\:", ":").replace("\\\\", "\\")
                  for field in re.split(r"(?<!\\):", line, maxsplit=4)]
        if len(fields) == 5 and all(f in ("*", w) for f, w in zip(fields[:4], wanted)):
            return fields[4]
    return None


def negotiated_socket(host: str, port: int, timeout: Optional[float],
                      context: Any) -> socket.socket:
    """A TCP connection to the server, in TLS when it offers TLS, else plain: libpq's
    ``sslmode=prefer`` on one connection, handed to pg8000 as its ``sock``."""
    sock = socket.create_connection((host, port), timeout)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.sendall(SSL_REQUEST)
        answer = sock.recv(1)
        if answer == b"S":
            return context.wrap_socket(sock, server_hostname=host)
        if answer != b"N":
            raise OSError(f"the server at {host}:{port} answered {answer!r} to a TLS request: "
                          "is it a PostgreSQL server?")
        return sock
    except BaseException:
        sock.close()
        raise


def create_engine(url: sa.URL, settings: DatabaseSettings) -> sa.Engine:
    mode = ssl_mode(url)
    plain_fallback = mode in ("allow", "prefer")
    url, args = connect_args(url, settings)
    log.debug("database: %s (password %s)", mask_url(url.render_as_string()),
              "given" if "password" in args else "none")
    engine = sa.create_engine(url, connect_args=args, pool_pre_ping=True)

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect, _record, cargs, cparams):
        # A server that accepts but never answers makes pg8000 raise a bare TimeoutError;
        # as a driver error SQLAlchemy reports it like any other failure to connect.
        dbapi = dialect.loaded_dbapi
        try:
            if plain_fallback and cparams.get("ssl_context") and "unix_sock" not in cparams:
                sock = negotiated_socket(cparams.get("host", "localhost"),
                                         cparams.get("port", DEFAULT_PORT),
                                         cparams.get("timeout"), cparams["ssl_context"])
                cparams = {**cparams, "sock": sock, "ssl_context": False}
            try:
                # the class, not connect(): only the class takes a ready socket (sock)
                return dbapi.Connection(*cargs, **cparams)
            except BaseException as exc:
                if "sock" in cparams:  # pg8000 closes it on most failures, not on all
                    cparams["sock"].close()
                if not isinstance(exc, dbapi.InterfaceError) or SERVER_HAS_NO_TLS not in str(exc):
                    raise
                raise dbapi.InterfaceError(  # require, verify-ca, verify-full
                    f"the server offers no TLS and sslmode is {mode}: enable ssl on the "
                    "server, or use sslmode=prefer") from None
        except OSError as exc:
            raise dbapi.InterfaceError(str(exc) or type(exc).__name__) from exc
        except AttributeError as exc:
            # pg8000 trips over a SCRAM login without a password instead of saying so.
            if cparams.get("password") is not None:
                raise
            raise dbapi.InterfaceError(NO_PASSWORD) from exc

    @sa.event.listens_for(engine, "connect")
    def _lift_timeout(dbapi_connection, _record):
        # pg8000 has no public way to change its socket timeout after connecting.
        sock = getattr(dbapi_connection, "_usock", None)
        if sock is not None:
            sock.settimeout(None)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                for option, value in KEEPALIVE.items():
                    if hasattr(socket, option):  # names differ between Linux and macOS
                        sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)

    return engine
