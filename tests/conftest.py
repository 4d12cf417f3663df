"""Fixtures shared by the suite, named after what they give.

Every test runs with its own IMAGINGDB_HOME (embedded SQLite + local storage
under tmp_path) and no site config from the machine, so tests never touch a
user's data and never depend on each other.
"""

from __future__ import annotations

import csv
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml
from typer.testing import CliRunner

from imagingdb.testing.fixtures import CliRun

pytest_plugins = ["tests.servers", "imagingdb.testing.fixtures"]


def _no_ca_bundle_parsed_per_connection() -> None:
    """pg8000 left to its defaults asks every server for TLS first, and for that builds
    ssl.create_default_context(), which parses the whole CA bundle (SSL_CERT_FILE, ~0.1 s
    here) on each connection. imagingdb's own connections do not (db/postgres.py; tested in
    test_postgres.py with this variable in place, by refusing that call), but the tests'
    direct engines and admin sessions are pg8000 left to its defaults, several times per
    test on PostgreSQL, and the test servers speak no TLS.
    With the bundle pointed at an empty file the certificates stay reachable through
    the hashed folder (SSL_CERT_DIR), which OpenSSL reads lazily, only to verify a peer; so
    this is done only when that folder holds hashed certificates. Set at import, before any
    test or subprocess starts (xdist workers and `imagingdb` runs inherit it)."""
    import ssl

    folder = os.environ.get("SSL_CERT_DIR") or ssl.get_default_verify_paths().openssl_capath
    try:
        hashed = any(name.endswith(".0") for name in os.listdir(folder))
    except OSError:
        hashed = False
    if hashed:
        os.environ["SSL_CERT_FILE"] = os.devnull


_no_ca_bundle_parsed_per_connection()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> Path:
    """A fresh IMAGINGDB_HOME per test; the machine's configs and plugins stay out."""
    home = tmp_path / "imagingdb-home"
    monkeypatch.setenv("IMAGINGDB_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("IMAGINGDB_PLUGINS_DIR", str(tmp_path / "plugins"))
    for var in ("IMAGINGDB_CONFIG", "IMAGINGDB_LOAD_PLUGINS", "PGPASSWORD", "PGPASSFILE",
                "PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        monkeypatch.delenv(var, raising=False)
    return home


#: what run_cli returns: exit code, stdout, stderr, the Error: lines, json()
CliResult = CliRun


@pytest.fixture
def run_cli():
    """Run `imagingdb ARGS...` in-process through click's runner; returns a CliResult."""
    from imagingdb.cli import make_app

    def run(*args: Any, input: Optional[str] = None) -> CliResult:
        runner = CliRunner()
        result = runner.invoke(make_app(), [str(a) for a in args], input=input,
                               catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def mm_ometiff(tmp_path) -> Path:
    """A Micro-Manager OME-TIFF acquisition folder: 2 positions x 2 channels x 3 slices x 2 times."""
    from imagingdb.testing import write_mm_ometiff

    folder = tmp_path / "acquisition"
    folder.mkdir()
    write_mm_ometiff(folder, "sample", channels=("DAPI", "GFP"), slices=3, times=2,
                     positions=2, height=32, width=48, dtype="uint16", seed=1)
    return folder


@pytest.fixture
def mm_ometiff_uint8(tmp_path) -> Path:
    from imagingdb.testing import write_mm_ometiff

    folder = tmp_path / "acquisition8"
    folder.mkdir()
    write_mm_ometiff(folder, "sample8", channels=("BF", "RFP"), slices=3, times=2,
                     positions=2, height=20, width=24, dtype="uint8", seed=2)
    return folder


class UploadFiles:
    """Writes upload CSVs and configs into a folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._n = 0

    def csv(self, rows: list[dict[str, Any]], name: Optional[str] = None,
            columns: Optional[list[str]] = None) -> Path:
        self._n += 1
        path = self.folder / (name or f"upload{self._n}.csv")
        columns = columns or list(dict.fromkeys(k for row in rows for k in row))
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        return path

    def config(self, name: Optional[str] = None, **keys: Any) -> Path:
        self._n += 1
        path = self.folder / (name or f"config{self._n}.yaml")
        path.write_text(yaml.safe_dump(keys), encoding="utf-8")
        return path

    def frames_config(self, **extra: Any) -> Path:
        return self.config(**{"upload_type": "frames", "frames_format": "ome_tiff",
                              "microscope": "scope2", **extra})

    def file_config(self, **extra: Any) -> Path:
        return self.config(upload_type="file", microscope="scope1", **extra)


@pytest.fixture
def upload_files(tmp_path) -> UploadFiles:
    return UploadFiles(tmp_path / "upload")


DATASET_ID = "ML-2005-05-23-10-00-00-0001"


@pytest.fixture
def uploaded_ometiff(site, run_cli, upload_files, mm_ometiff) -> str:
    """The mm_ometiff acquisition uploaded as DATASET_ID through the CLI."""
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff),
                                  "description": "two positions"}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert result.exit_code == 0, result.stderr
    return DATASET_ID


class Site:
    """Where a test's imagingdb lives: its site config, database and storage (folder or bucket)."""

    def __init__(self, kind: str, storage_root: Optional[Path], config_path: Optional[Path],
                 bucket: Any = None):
        self.kind = kind
        self.storage_root = storage_root
        self.config_path = config_path
        self.bucket = bucket  # tests.servers.S3Bucket when storage is S3

    def connect(self):
        import imagingdb

        return imagingdb.connect()

    def objects(self) -> dict[str, bytes]:
        """Every stored object by key, read straight from the folder or the bucket."""
        if self.bucket is not None:
            import boto3

            client = boto3.client("s3", endpoint_url=self.bucket.endpoint_url)
            keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket.name) for item in page.get("Contents", [])]
            return {key: client.get_object(Bucket=self.bucket.name, Key=key)["Body"].read()
                    for key in sorted(keys)}
        if not self.storage_root.exists():
            return {}
        return {str(path.relative_to(self.storage_root)): path.read_bytes()
                for path in sorted(self.storage_root.rglob("*")) if path.is_file()}

    def snapshot(self) -> dict[str, Any]:
        """Every row of every table and every stored object, to prove nothing changed."""
        import sqlalchemy as sa

        from imagingdb import db as dbq

        state: dict[str, Any] = {"objects": self.objects()}
        with self.connect() as database:
            with database.site.connection() as conn:
                for table in (dbq.data_set, dbq.file_global, dbq.frames_global, dbq.frames,
                              dbq.pending_removal, dbq.replica, dbq.qc_summary,
                              dbq.thumbnail):
                    rows = conn.execute(sa.select(table).order_by(table.c.id)).all()
                    state[table.name] = [tuple(r) for r in rows]
        return state


@pytest.fixture(params=["sqlite", "postgres"])
def site(request, tmp_path, monkeypatch, isolated_home) -> Site:
    """imagingdb on the embedded default (SQLite) or on a real PostgreSQL server."""
    if request.param == "sqlite":
        return Site("sqlite", isolated_home / "storage", None)
    pg_url = request.getfixturevalue("pg_url")
    root = tmp_path / "pg-storage"
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": pg_url, "password_env": "IMAGINGDB_TEST_PG_PASSWORD"},
        "storage": {"backend": "local", "root": str(root)},
    }), encoding="utf-8")
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(config))
    return Site("postgres", root, config)


@pytest.fixture
def pg_s3_site(tmp_path, monkeypatch, pg_url, s3_bucket) -> Site:
    """imagingdb as a lab runs it: a real PostgreSQL and an S3 bucket over HTTP."""
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": pg_url, "password_env": "IMAGINGDB_TEST_PG_PASSWORD"},
        "storage": {"backend": "s3", "bucket": s3_bucket.name, "prefix": "imaging",
                    "endpoint_url": s3_bucket.endpoint_url, "region": s3_bucket.region},
    }), encoding="utf-8")
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(config))
    return Site("postgres+s3", None, config, bucket=s3_bucket)


class PluginFolder:
    """Installs plugin distributions into the plugins folder, as pip --target would."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.modules: list[str] = []

    def install(self, dist: str, code: str, *, version: str = "1.0.0",
                entry_point: str | None = None) -> str:
        module = f"{dist.replace('-', '_')}_{len(self.modules)}_{id(self) % 10000}"
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{module}.py").write_text(textwrap.dedent(code), encoding="utf-8")
        info = self.folder / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(
            f"[imagingdb]\n{entry_point or dist} = {module}\n")
        self.modules.append(module)
        from imagingdb import plugins

        plugins.reset_for_tests()  # the next CLI run loads plugins afresh
        return module


@pytest.fixture
def plugin_folder(isolated_home):
    """Installs small plugin distributions into $IMAGINGDB_PLUGINS_DIR, as pip --target would."""
    folder = Path(os.environ["IMAGINGDB_PLUGINS_DIR"])
    installer = PluginFolder(folder)
    from imagingdb import plugins

    path_before = list(sys.path)
    plugins.reset_for_tests()
    yield installer
    plugins.reset_for_tests()
    sys.path[:] = path_before
    for module in installer.modules:
        sys.modules.pop(module, None)


#: the dataset ID of snapshot_with_one_dataset's dataset
EXISTING_ID = "ML-2000-01-01-00-00-00-0001"


@pytest.fixture
def snapshot_with_one_dataset(site, run_cli, upload_files, tmp_path):
    """The site's state (Site.snapshot) with one dataset (EXISTING_ID, a file kept whole)
    registered, so that "nothing changed" is checked against real rows."""
    notes = tmp_path / "existing.txt"
    notes.write_text("existing")
    csv_path = upload_files.csv([{"dataset_id": EXISTING_ID, "file_name": str(notes)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.file_config()).exit_code == 0
    return site.snapshot()


#: test files holding the suite's longest tests (kill -9 on PostgreSQL + S3, the zipapp and
#: its build, pip, random trials), longest first. xdist hands tests out in collection order;
#: started first, these run while the short ones fill the other worker, instead of one of
#: them being the last thing a worker does while the other waits.
LONGEST_FIRST = ("test_zipapp.py", "test_s3_integrity.py", "test_truncation.py",
                 "test_plugin_install.py", "test_rename.py", "test_pg_s3.py", "test_secrets.py",
                 "test_delete.py", "test_crash_recovery.py", "test_claim_loss.py")


def pytest_collection_modifyitems(items):
    """Long files first (LONGEST_FIRST), each file's tests kept together and in order."""
    rank = {name: number for number, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable
