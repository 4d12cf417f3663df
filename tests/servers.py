"""Real servers for tests: a throwaway PostgreSQL cluster and moto's S3 over HTTP.

Why real servers: mocks in-process (``mock_aws``, SQLite standing in for
PostgreSQL) hide whole classes of bugs -- password authentication, network
round-trips, transaction isolation under concurrency, HTTP error mapping.
These fixtures start the real thing on loopback, once per session, and hand
every test its own fresh database or bucket so tests stay independent.

Loaded as a pytest plugin (``pytest_plugins = ["tests.servers"]`` in the
conftest, or ``-p tests.servers`` on the command line).

The superuser password never appears in a URL, a repr, or a log line: tests
get it from the ``IMAGINGDB_TEST_PG_PASSWORD`` environment variable, the way
production code reads a ``password_env`` setting.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_PASSWORD_ENV = "IMAGINGDB_TEST_PG_PASSWORD"
"""Environment variable that carries the test cluster's superuser password."""

INSTALL_HINT = "run .ci/install-postgres.sh (as root) to install the PostgreSQL server"
CLUSTER_OWNER = "postgres"
"""OS account that owns the cluster when tests run as root (initdb refuses root)."""

_TEMP_PREFIX = "imagingdb-pg-"
_STALE_AFTER_SECONDS = 3600
_RAM_DISK = "/dev/shm"
_RAM_DISK_MIN_FREE_BYTES = 1 << 30
_START_TIMEOUT_SECONDS = 30
_PORT_ATTEMPTS = 3


def find_free_port() -> int:
    """Return a loopback TCP port that was free a moment ago.

    The port is released before returning, so another process could grab it;
    callers that bind later must be ready to retry.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_postgres_bindir() -> Path:
    """Locate the directory holding ``initdb`` and ``pg_ctl``.

    PATH wins (a developer's own build or a CI image); otherwise the newest
    Debian-style ``/usr/lib/postgresql/<version>/bin``, which is not on PATH.
    """
    on_path = [shutil.which(tool) for tool in ("initdb", "pg_ctl")]
    if all(on_path):
        return Path(on_path[0]).parent
    candidates = [
        Path(bindir)
        for bindir in glob.glob("/usr/lib/postgresql/*/bin")
        if os.access(Path(bindir, "initdb"), os.X_OK)
        and os.access(Path(bindir, "pg_ctl"), os.X_OK)
    ]
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
            f"/usr/lib/postgresql/*/bin: {INSTALL_HINT}"
        )
    return max(candidates, key=_major_version_of)


def _major_version_of(bindir: Path) -> tuple[int, ...]:
    """Sort key for ``/usr/lib/postgresql/<version>/bin`` (numeric, so 9.6 < 15)."""
    version = bindir.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cluster_parent_dir() -> str:
    """Where cluster dirs go: a RAM disk if there is a roomy one, else the temp dir.

    On a disk, CREATE DATABASE (copying template1) and initdb were 2-4x slower
    even with fsync off, because the files still get written back. Small RAM
    disks (Docker's default /dev/shm is 64 MB) are skipped.
    """
    try:
        stats = os.statvfs(_RAM_DISK)
    except OSError:
        return tempfile.gettempdir()
    roomy = stats.f_bavail * stats.f_frsize >= _RAM_DISK_MIN_FREE_BYTES
    return _RAM_DISK if roomy and os.access(_RAM_DISK, os.W_OK) else tempfile.gettempdir()


def remove_stale_clusters() -> None:
    """Delete cluster dirs left behind by crashed runs (never a live one).

    Each run uses fresh directories, so leftovers never break a run; this only
    stops ``/dev/shm`` or ``/tmp`` from filling up. A directory is stale when
    it is over an hour old and no postmaster recorded in it is still alive.
    """
    for parent in {_RAM_DISK, tempfile.gettempdir()}:
        for base in glob.glob(os.path.join(parent, _TEMP_PREFIX + "*")):
            _remove_if_stale(base)


def _remove_if_stale(base: str) -> None:
    try:
        if time.time() - os.path.getmtime(base) < _STALE_AFTER_SECONDS:
            return
        pid_file = Path(base, "data", "postmaster.pid")
        if pid_file.exists():
            pid = int(pid_file.read_text().split("\n", 1)[0])
            if _process_alive(pid):
                return
    except (OSError, ValueError):
        return
    shutil.rmtree(base, ignore_errors=True)


class PostgresServer:
    """A private PostgreSQL cluster on 127.0.0.1, torn down without a trace.

    Host (TCP) logins need a real SCRAM-SHA-256 password, like production;
    the unix socket (in a private temp dir) trusts local users. Durability is
    switched off (fsync, full_page_writes, synchronous_commit) because a test
    cluster that loses data on a power cut costs nothing and runs much faster.
    """

    def __init__(self, user: str = "imagingdb_test", bindir: Path | None = None,
                 tls: bool = False):
        self.user = user
        self.tls = tls  # serve TLS with a certificate for 127.0.0.1 signed by ``ca_file``
        self.password = secrets.token_urlsafe(24)
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.bindir = bindir
        self.base_dir: Path | None = None
        self._admin = None  # one superuser session kept for create/drop_database
        self._create_suffix = ""

    def __repr__(self) -> str:
        # Hand-written so the password never lands in a traceback or log.
        return f"PostgresServer(user={self.user!r}, host={self.host!r}, port={self.port!r})"

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "run"

    @property
    def ca_file(self) -> Path:
        """The certificate authority that signed a ``tls`` server's certificate."""
        return self.base_dir / "ca.crt"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def start(self) -> PostgresServer:
        """Create a fresh cluster in new temp dirs and start it; returns self."""
        if self.base_dir is not None:
            raise RuntimeError(f"{self!r} is already started")
        self.bindir = self.bindir or find_postgres_bindir()
        remove_stale_clusters()
        try:
            self._make_dirs()
            self._initdb()
            self._write_config()
            self._start_on_free_port()
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop the cluster at once (no checkpoint) and delete its files.

        Safe to call twice, and after a failed start.
        """
        if self.base_dir is None:
            return
        atexit.unregister(self.stop)
        self._close_admin()
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._pg_tool("pg_ctl", "stop", "-D", self.data_dir, "-m", "immediate", "-w")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass  # best effort: the files go regardless
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None
        self.port = None

    def restart(self) -> None:
        """Crash and restart the server on the same port, as a power cut and reboot would:
        every session (and every advisory lock) is gone, the data stays."""
        self._close_admin()
        self._pg_tool("pg_ctl", "restart", "-D", self.data_dir, "-m", "immediate", "-w",
                      "-t", str(_START_TIMEOUT_SECONDS), "-l", self.log_file,
                      "-o", f"-p {self.port}")

    # -- cluster setup -------------------------------------------------------

    def _make_dirs(self) -> None:
        """Fresh dirs per run, so a crashed run's leftovers never get in the way.

        mkdtemp (not pytest's tmp_path) because the cluster owner must be able
        to reach the path; when running as root everything is handed to it.
        A RAM disk is used when available, for speed (see cluster_parent_dir).
        """
        self.base_dir = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=cluster_parent_dir()))
        self.socket_dir.mkdir()
        if _running_as_root():
            for path in (self.base_dir, self.socket_dir):
                _give_to_cluster_owner(path)

    def _initdb(self) -> None:
        """Run initdb with a superuser password read from a short-lived file.

        A pwfile rather than a command-line flag keeps the password out of
        ``ps`` output; the file is removed as soon as initdb is done.
        """
        pwfile = self.base_dir / "pwfile"
        pwfile.touch(mode=0o600)
        pwfile.write_text(self.password + "\n")
        if _running_as_root():
            _give_to_cluster_owner(pwfile)
        try:
            self._pg_tool(
                "initdb", "-D", self.data_dir, "-U", self.user, f"--pwfile={pwfile}",
                "--auth-local=trust", "--auth-host=scram-sha-256",
                "--encoding=UTF8", "--no-locale", "--no-sync",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _write_config(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "password_encryption": "'scram-sha-256'",
            "max_connections": "100",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        if self.tls:
            self._write_certificates()
            settings.update(ssl="on", ssl_cert_file="'server.crt'", ssl_key_file="'server.key'")
        lines = [f"{name} = {value}" for name, value in settings.items()]
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# imagingdb test settings\n" + "\n".join(lines) + "\n")

    def _write_certificates(self) -> None:
        """A throwaway certificate authority and, signed by it, the server's certificate
        for 127.0.0.1 (the key readable by the cluster owner only, as PostgreSQL demands)."""
        ca_key, ca_cert = _certificate("imagingdb test CA")
        key, cert = _certificate("127.0.0.1", issuer=(ca_key, ca_cert))
        self.ca_file.write_bytes(_pem(ca_cert))
        (self.data_dir / "server.crt").write_bytes(_pem(cert))
        key_file = self.data_dir / "server.key"
        key_file.touch(mode=0o600)
        key_file.write_bytes(_pem(key))
        if _running_as_root():
            for path in (self.data_dir / "server.crt", key_file):
                _give_to_cluster_owner(path)

    def _start_on_free_port(self) -> None:
        """Start the postmaster, retrying if someone takes our port first.

        The port is passed on the command line (not in postgresql.conf) so a
        retry just picks another one.
        """
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = find_free_port()
            try:
                self._pg_tool(
                    "pg_ctl", "start", "-D", self.data_dir, "-l", self.log_file,
                    "-w", "-t", str(_START_TIMEOUT_SECONDS), "-o", f"-p {port}",
                )
            except RuntimeError as error:
                if attempt < _PORT_ATTEMPTS and "could not bind" in self._log_tail():
                    continue
                raise RuntimeError(f"{error}\nserver log:\n{self._log_tail()}") from None
            self.port = port
            return

    def _log_tail(self, max_chars: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-max_chars:]
        except OSError:
            return "(no server log)"

    def _pg_tool(self, tool: str, *args) -> None:
        """Run a PostgreSQL binary as the cluster owner; raise with its output on failure."""
        command = [str(self.bindir / tool), *map(str, args)]
        if _running_as_root():
            command = ["runuser", "-u", CLUSTER_OWNER, "--", *command]
        result = subprocess.run(
            command, cwd=self.base_dir, capture_output=True, text=True,
            timeout=_START_TIMEOUT_SECONDS + 30, stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )

    # -- databases and roles -------------------------------------------------

    def connect(self, database: str = "postgres"):
        """A pg8000 native (autocommit) connection as the superuser over TCP."""
        import pg8000.native

        if self.port is None:
            raise RuntimeError(f"{self!r} is not started")
        return pg8000.native.Connection(
            self.user, password=self.password, host=self.host, port=self.port,
            database=database, timeout=30,
        )

    def url(self, database: str) -> str:
        """SQLAlchemy URL for ``database``, deliberately without the password."""
        from sqlalchemy.engine import URL

        url = URL.create(
            "postgresql+pg8000", username=self.user, host=self.host,
            port=self.port, database=database,
        )
        return url.render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        """Create an empty database and return its password-less SQLAlchemy URL."""
        from pg8000.native import identifier

        self._admin_run(f"CREATE DATABASE {identifier(name)}{self._create_suffix}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database even if a leaked connection or pool still uses it."""
        from pg8000.native import identifier

        self._admin_run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = :name AND pid <> pg_backend_pid()",
            name=name,
        )
        self._admin_run(f"DROP DATABASE IF EXISTS {identifier(name)} WITH (FORCE)")

    def _admin_run(self, sql: str, **params):
        """Run ``sql`` on the kept superuser session, opened (again) when needed.

        A login costs more than a CREATE DATABASE on a loaded machine (SCRAM, a new
        backend), and every test on PostgreSQL creates and drops one database, so the
        session is kept. A session lost meanwhile (a restart) is replaced once.
        """
        import pg8000.exceptions

        for attempt in (1, 2):
            if self._admin is None:
                self._admin = self.connect()
                version = int(self._admin.run("SHOW server_version_num")[0][0])
                # FILE_COPY (15+) copies template1's files instead of WAL-logging every
                # block: the faster way for a tiny template on a cluster with fsync off.
                self._create_suffix = " STRATEGY FILE_COPY" if version >= 150000 else ""
            try:
                return self._admin.run(sql, **params)
            except (pg8000.exceptions.InterfaceError, OSError):
                self._close_admin()
                if attempt == 2:
                    raise

    def _close_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()

    def create_role(self, name: str, password: str, *, login: bool = True) -> None:
        """Create an extra role, e.g. to test refused logins or missing privileges."""
        from pg8000.native import identifier, literal

        login_clause = "LOGIN" if login else "NOLOGIN"
        with closing(self.connect()) as admin:
            admin.run(
                f"CREATE ROLE {identifier(name)} {login_clause} PASSWORD {literal(password)}"
            )

    def drop_role(self, name: str) -> None:
        """Drop a role made by create_role (roles are cluster-wide, not per database)."""
        from pg8000.native import identifier

        with closing(self.connect()) as admin:
            admin.run(f"DROP ROLE IF EXISTS {identifier(name)}")


def _certificate(name: str, issuer=None):
    """(key, certificate) for ``name``: a CA when ``issuer`` is None, else a server
    certificate for the IP address ``name`` signed by ``issuer`` (key, certificate)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_key, issuer_cert = issuer or (key, None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]), critical=False)
    return key, builder.sign(issuer_key, hashes.SHA256())


def _pem(item) -> bytes:
    from cryptography.hazmat.primitives import serialization

    if hasattr(item, "public_bytes"):
        return item.public_bytes(serialization.Encoding.PEM)
    return item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())


def _give_to_cluster_owner(path: Path) -> None:
    try:
        owner = pwd.getpwnam(CLUSTER_OWNER)
    except KeyError:
        raise RuntimeError(
            f"running as root but there is no {CLUSTER_OWNER!r} user to own the "
            f"cluster: {INSTALL_HINT}"
        ) from None
    os.chown(path, owner.pw_uid, owner.pw_gid)



class MotoS3Server:
    """moto's AWS emulator as a real HTTP server on loopback, in a thread.

    Unlike ``mock_aws`` it patches nothing: requests go through botocore's
    real HTTP stack, so endpoint handling and error mapping get exercised.
    It sets no environment variables; credentials are the ``aws_env``
    fixture's job. Backend state is process-wide, so tests use unique buckets.
    """

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port: int | None = None
        self._server = None

    def __repr__(self) -> str:
        return f"MotoS3Server(endpoint_url={self.endpoint_url!r})"

    def __enter__(self) -> MotoS3Server:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str | None:
        return None if self.port is None else f"http://{self.host}:{self.port}"

    def start(self) -> MotoS3Server:
        """Start serving; returns self.

        Port 0 lets the OS pick a free port at bind time, so there is no race
        between finding a port and using it. (ThreadedMotoServer waits forever
        if its bind fails, so a race here would hang the session.)
        """
        from moto.server import ThreadedMotoServer

        if self._server is not None:
            raise RuntimeError(f"{self!r} is already started")
        self._server = ThreadedMotoServer(ip_address=self.host, port=0, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        """Stop serving; safe to call twice."""
        if self._server is not None:
            self._server.stop()
        self._server = None
        self.port = None


@dataclass(frozen=True)
class S3Bucket:
    """What the ``s3_bucket`` fixture gives: an existing, empty bucket."""

    name: str
    endpoint_url: str
    region: str = "us-east-1"


@contextlib.contextmanager
def s3_read_only_user(endpoint_url: str, bucket: str):
    """Keys of a new IAM user that may only list and read ``bucket``; while the block
    runs, moto checks credentials and IAM policies (it does not by default), so the
    ``aws_env`` keys are refused too. Yields ``(access_key_id, secret_access_key)``."""
    import boto3

    iam = boto3.client("iam", endpoint_url=endpoint_url)
    user = _unique_name("reader-")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="read-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        # AWS checks HeadBucket against s3:ListBucket; moto names it s3:HeadBucket
        "Statement": [{"Effect": "Allow",
                       "Action": ["s3:ListBucket", "s3:HeadBucket", "s3:GetObject"],
                       "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}],
    }))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    _moto_auth(endpoint_url, "0")
    try:
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        _moto_auth(endpoint_url, "inf")


def _moto_auth(endpoint_url: str, free_requests: str) -> None:
    """Make moto check auth after this many more requests ("inf": never)."""
    request = urllib.request.Request(
        f"{endpoint_url}/moto-api/reset-auth", data=free_requests.encode(), method="POST",
        headers={"Content-Type": "text/plain"})  # a form body would hide it from moto
    urllib.request.urlopen(request, timeout=10).close()


def _unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


# -- pytest fixtures ---------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server():
    """A running PostgresServer shared by the whole session (initdb is slow)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(pg_server, monkeypatch):
    """URL of a fresh, empty database for this test only; dropped afterwards.

    The URL has no password; it is in the IMAGINGDB_TEST_PG_PASSWORD env var,
    the way code under test reads passwords through a ``password_env`` setting.
    """
    name = _unique_name("test_")
    url = pg_server.create_database(name)
    monkeypatch.setenv(PG_PASSWORD_ENV, pg_server.password)
    yield url
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def s3_server():
    """A running MotoS3Server shared by the whole session."""
    with MotoS3Server() as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch):
    """Fake AWS credentials, and nothing from the host's AWS setup.

    Every ``AWS_*`` variable is removed first (profiles, session tokens,
    endpoint overrides), config and credentials files point nowhere, and
    instance-metadata lookups are disabled so botocore never waits on them.
    Returns the variables that were set.
    """
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    missing = os.path.join(tempfile.gettempdir(), _unique_name("no-such-aws-config-"))
    fake = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": missing,
        "AWS_SHARED_CREDENTIALS_FILE": missing,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in fake.items():
        monkeypatch.setenv(name, value)
    return fake


@pytest.fixture
def s3_bucket(s3_server, aws_env):
    """A new, empty bucket on the moto server; emptied and deleted afterwards."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server.endpoint_url)
    bucket = S3Bucket(name=_unique_name("test-"), endpoint_url=s3_server.endpoint_url)
    client.create_bucket(Bucket=bucket.name)
    yield bucket
    _delete_bucket_quietly(client, bucket.name)


def _delete_bucket_quietly(client, name: str) -> None:
    """Delete every object version, then the bucket; teardown must not fail a test."""
    try:
        paginator = client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=name):
            doomed = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if doomed:
                client.delete_objects(Bucket=name, Delete={"Objects": doomed, "Quiet": True})
        client.delete_bucket(Bucket=name)
    except Exception:
        pass
