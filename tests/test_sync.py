"""Two storage tiers as the seed runs them: a local store and an S3 store (moto over real HTTP),
kept in step by `imagingdb sync`, checked, and read from either."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import yaml

from imagingdb import db as dbq
from imagingdb.errors import StoreFallbackWarning
from imagingdb.faults import KILL_AT_ENV
from tests.conftest import DATASET_ID
from tests.helpers import trial_random

FRAMES = 24  # mm_ometiff: 2 positions x 2 channels x 3 slices x 2 times
PREFIX = "imaging"


class TwoTier:
    """A site with a local store (primary) and an S3 store."""

    def __init__(self, root: Path, bucket, config: Path):
        self.root = root
        self.bucket = bucket
        self.config = config

    @property
    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.bucket.endpoint_url)

    def s3_objects(self) -> dict[str, bytes]:
        client = self.client
        keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket.name, Prefix=f"{PREFIX}/raw_") for item in page.get("Contents", [])]
        return {key.removeprefix(f"{PREFIX}/"): client.get_object(
            Bucket=self.bucket.name, Key=key)["Body"].read() for key in keys}

    def local_objects(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.root)): p.read_bytes()
                for p in sorted(self.root.rglob("*")) if p.is_file()
                and not p.relative_to(self.root).parts[0].startswith(".")}

    def put_s3(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket.name, Key=f"{PREFIX}/{key}", Body=data)

    def replicas(self) -> list[tuple[str, str, bool]]:
        """(dataset ID, store, verified?) of every replica row."""
        import imagingdb

        with imagingdb.connect() as database:
            with database.site.connection() as conn:
                rows = conn.execute(
                    sa.select(dbq.data_set.c.dataset_serial, dbq.replica.c.store,
                              dbq.replica.c.verified_at)
                    .join(dbq.data_set, dbq.data_set.c.id == dbq.replica.c.dataset_id)
                    .order_by(dbq.data_set.c.dataset_serial, dbq.replica.c.store)).all()
        return [(serial, store, verified is not None) for serial, store, verified in rows]


def site_config(tmp_path: Path, database_url: str, bucket, root: Path, **extra) -> Path:
    config = tmp_path / "two-tier.yaml"
    database = {"url": database_url, **extra}
    config.write_text(yaml.safe_dump({
        "database": database,
        "storage": {"primary": "local", "stores": {
            "local": {"backend": "local", "root": str(root)},
            "s3": {"backend": "s3", "bucket": bucket.name, "prefix": PREFIX,
                   "endpoint_url": bucket.endpoint_url, "region": bucket.region},
        }},
    }), encoding="utf-8")
    return config


@pytest.fixture
def two_tier(tmp_path, monkeypatch, isolated_home, s3_bucket, run_cli) -> TwoTier:
    """SQLite, a local store and an S3 store (test_two_tiers_on_postgres: PostgreSQL)."""
    config = site_config(tmp_path, f"sqlite:///{tmp_path / 'imagingdb.sqlite'}", s3_bucket,
                         tmp_path / "local-store")
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(config))
    assert run_cli("init").exit_code == 0
    return TwoTier(tmp_path / "local-store", s3_bucket, config)


@pytest.fixture
def uploaded(two_tier, run_cli, upload_files, mm_ometiff) -> str:
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert result.exit_code == 0, result.stderr
    return DATASET_ID


def frame_keys(objects: dict[str, bytes]) -> list[str]:
    return sorted(key for key in objects if key.endswith(".png"))


# ---------------------------------------------------------------------- config


def write_config(tmp_path, storage) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": "sqlite:///db.sqlite"},
                                    "storage": storage}), encoding="utf-8")
    return path


def test_named_stores_in_the_site_config(tmp_path):
    from imagingdb.config import load_site_config

    config = load_site_config(write_config(tmp_path, {
        "primary": "fast", "frame_format": "ome-zarr", "stores": {
            "fast": {"backend": "local", "root": "data"},
            "offsite": {"backend": "s3", "bucket": "lab", "endpoint_url": "http://x"}}}))
    assert config.primary == "fast" and list(config.stores) == ["fast", "offsite"]
    assert config.storage.options == {"root": str(tmp_path / "data")}
    assert config.stores["offsite"].options == {"bucket": "lab", "endpoint_url": "http://x"}
    assert {s.frame_format for s in config.stores.values()} == {"ome-zarr"}
    # today's one-backend section: one store named after its backend
    single = load_site_config(write_config(tmp_path, {"backend": "local", "root": "d"}))
    assert single.primary == "local" and list(single.stores) == ["local"]


@pytest.mark.parametrize("storage, message", [
    ({"stores": {"a": {"root": "x"}, "b": {"root": "y"}}},
     "storage.primary is required with more than one store (one of: a, b)"),
    ({"primary": "c", "stores": {"a": {"root": "x"}}},
     "storage.primary 'c' is not one of storage.stores (a)"),
    ({"stores": {"a b": {"root": "x"}}}, "store name 'a b' in storage.stores must be a name"),
    ({"stores": {"a": {"root": "x", "frame_format": "png"}}},
     "key 'storage.stores.a.frame_format' is not a store's"),
    ({"stores": {"a": {"rot": "x"}}}, "unknown key storage.stores.a.'rot' (did you mean 'root'?)"),
    ({"stores": {}}, "storage.stores is empty"),
])
def test_bad_store_sections_are_refused_naming_the_key(tmp_path, run_cli, storage, message,
                                                       isolated_home):
    path = write_config(tmp_path, storage)
    result = run_cli("--site-config", path, "query")
    assert result.exit_code == 2
    assert message in result.errors[0], result.errors


# --------------------------------------------------------------- the two tiers


def test_sync_copies_checks_records_and_every_tier_reads_the_same(two_tier, uploaded, run_cli,
                                                                  tmp_path):
    shown = run_cli("show", DATASET_ID, "--format", "json").json()
    assert shown["stores"] == ["local"]
    assert two_tier.s3_objects() == {}

    dry = run_cli("sync", "--to", "s3", "--all", "--dry-run", "--format", "json")
    assert dry.exit_code == 0, dry.stderr
    [planned] = dry.json()["datasets"]
    local = two_tier.local_objects()
    assert planned["copied"] == FRAMES and planned["objects"] == FRAMES
    assert planned["bytes_copied"] == sum(len(v) for k, v in local.items() if k.endswith(".png"))
    assert two_tier.s3_objects() == {} and two_tier.replicas() == [(DATASET_ID, "local", False)]

    synced = run_cli("sync", "--to", "s3", "--all", "--format", "json")
    assert synced.exit_code == 0, synced.stderr
    report = synced.json()
    assert report["ok"] and report["copied_objects"] == FRAMES
    assert report["datasets"][0]["status"] == "copied"
    assert two_tier.s3_objects() == {k: v for k, v in local.items() if k.endswith(".png")}
    assert two_tier.replicas() == [(DATASET_ID, "local", False), (DATASET_ID, "s3", True)]
    listed = run_cli("query", "--format", "json").json()
    assert listed[0]["stores"] == ["local", "s3"]

    again = run_cli("sync", "--to", "s3", "--all", "--format", "json")
    assert again.exit_code == 0, again.stderr
    assert again.json()["copied_objects"] == 0
    assert "nothing copied, 1 already there" in again.stderr

    # the same bytes and pixels from either tier
    from_local = Path(run_cli("download", "--id", DATASET_ID, "--dest", tmp_path / "a").stdout.strip())
    from_s3 = Path(run_cli("download", "--id", DATASET_ID, "--dest", tmp_path / "b",
                           "--storage", "s3").stdout.strip())
    names = sorted(p.name for p in from_local.glob("*.png"))
    assert len(names) == FRAMES and names == sorted(p.name for p in from_s3.glob("*.png"))
    assert all((from_local / n).read_bytes() == (from_s3 / n).read_bytes() for n in names)
    import imagingdb

    with imagingdb.connect() as database:
        dataset = database.dataset(DATASET_ID)
        assert np.array_equal(dataset.read(), dataset.read(storage="s3"))
        assert dataset.read(storage="s3").shape == (2, 2, 2, 3, 32, 48)

    # a flipped byte in the S3 copy: verify --storage s3 says which object
    key = frame_keys(two_tier.s3_objects())[3]
    data = bytearray(two_tier.s3_objects()[key])
    data[len(data) // 2] ^= 0x01
    two_tier.put_s3(key, bytes(data))
    checked = run_cli("verify", DATASET_ID, "--storage", "s3", "--format", "json")
    assert checked.exit_code == 1
    [check] = checked.json()["datasets"]
    assert check["store"] == "s3" and [p["key"] for p in check["problems"]] == [key]
    assert run_cli("verify", DATASET_ID).exit_code == 0  # the local copy is intact
    # a recheck rewrites the damaged object from the local copy
    repaired = run_cli("sync", "--to", "s3", "--id", DATASET_ID, "--recheck", "--format", "json")
    assert repaired.exit_code == 0, repaired.stderr
    assert repaired.json()["datasets"][0]["damaged"] == 1
    assert run_cli("verify", DATASET_ID, "--all-stores").exit_code == 0

    # the local tier gone: reads fall back to S3, saying so
    shutil.rmtree(two_tier.root)
    fallback = run_cli("download", "--id", DATASET_ID, "--dest", tmp_path / "c")
    assert fallback.exit_code == 0, fallback.stderr
    assert any("store 'local' cannot be reached" in line and "reading dataset "
               f"{DATASET_ID} from store 's3'" in line for line in fallback.stderr.splitlines()
               if line.startswith("Warning:")), fallback.stderr
    fetched = Path(fallback.stdout.strip())
    assert all((fetched / n).read_bytes() == (from_local / n).read_bytes() for n in names)
    with imagingdb.connect() as database, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels = database.dataset(DATASET_ID).read()
    assert any(issubclass(w.category, StoreFallbackWarning) for w in caught)
    assert pixels.shape == (2, 2, 2, 3, 32, 48)


def test_a_read_from_a_store_without_a_copy_is_refused(two_tier, uploaded, run_cli, tmp_path):
    result = run_cli("download", "--id", DATASET_ID, "--dest", tmp_path / "d", "--storage", "s3")
    assert result.exit_code == 2
    assert result.errors == [f"Error: dataset {DATASET_ID} has no complete copy in store "
                                  f"'s3' (copies: local); imagingdb sync --to s3 --id "
                                  f"{DATASET_ID} makes one"]
    assert not (tmp_path / "d").exists()
    unknown = run_cli("sync", "--to", "tape", "--all")
    assert unknown.exit_code == 2
    assert unknown.errors == ["Error: no store named 'tape' in the site config (its "
                                   "stores: local, s3)"]
    assert run_cli("verify", DATASET_ID, "--storage", "s3").exit_code == 1


def test_a_damaged_source_is_never_copied(two_tier, uploaded, run_cli):
    png = sorted(two_tier.root.rglob("*.png"))[5]
    data = bytearray(png.read_bytes())
    data[len(data) // 2] ^= 0x01
    png.write_bytes(bytes(data))
    result = run_cli("sync", "--to", "s3", "--all", "--format", "json")
    assert result.exit_code == 1
    [item] = result.json()["datasets"]
    assert item["status"] == "failed"
    assert f"the copy of {png.relative_to(two_tier.root)} in store 'local' is damaged" in item["error"]
    assert png.relative_to(two_tier.root).as_posix() not in two_tier.s3_objects()
    assert two_tier.replicas() == [(DATASET_ID, "local", False)]


def test_upload_replicate_writes_every_store_and_records_them(two_tier, run_cli, upload_files,
                                                              mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(),
                     "--replicate")
    assert result.exit_code == 0, result.stderr
    local = {k: v for k, v in two_tier.local_objects().items()}
    assert len(frame_keys(local)) == FRAMES and two_tier.s3_objects() == local
    assert [(d, s) for d, s, _ in two_tier.replicas()] == [(DATASET_ID, "local"), (DATASET_ID, "s3")]
    assert run_cli("verify", DATASET_ID, "--all-stores").exit_code == 0
    nothing = run_cli("sync", "--all", "--format", "json")
    assert nothing.exit_code == 0 and nothing.json()["copied_objects"] == 0

    # delete takes the objects out of both stores
    deleted = run_cli("delete", DATASET_ID, "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert two_tier.s3_objects() == {} and frame_keys(two_tier.local_objects()) == []
    assert two_tier.replicas() == []


def test_no_copy_records_what_an_external_sync_copied_and_only_that(two_tier, uploaded, run_cli):
    local = two_tier.local_objects()
    keys = frame_keys(local)
    for key in keys[:-1]:  # the external sync did not finish
        two_tier.put_s3(key, local[key])
    partial = run_cli("sync", "--to", "s3", "--all", "--no-copy", "--format", "json")
    assert partial.exit_code == 1
    [item] = partial.json()["datasets"]
    assert item["status"] == "incomplete" and item["missing"] == 1 and item["copied"] == 0
    assert two_tier.replicas() == [(DATASET_ID, "local", False)]
    assert keys[-1] not in two_tier.s3_objects()

    two_tier.put_s3(keys[-1], local[keys[-1]])
    complete = run_cli("sync", "--to", "s3", "--all", "--no-copy", "--format", "json")
    assert complete.exit_code == 0, complete.stderr
    assert complete.json()["datasets"][0]["status"] == "recorded"
    assert two_tier.replicas() == [(DATASET_ID, "local", False), (DATASET_ID, "s3", True)]


def test_gc_looks_into_every_store(two_tier, uploaded, run_cli):
    assert run_cli("sync", "--to", "s3", "--all").exit_code == 0
    orphan = "raw_frames/ML-2005-05-23-10-00-00-0009/im_c000_z000_t000_p000.png"
    two_tier.put_s3(orphan, b"left by an interrupted sync or upload")
    found = run_cli("gc", "--older-than", "0", "--format", "json")
    assert found.exit_code == 0, found.stderr
    assert [(o["store"], o["key"]) for o in found.json()["objects"]] == [("s3", orphan)]
    assert run_cli("gc", "--older-than", "0", "--yes").exit_code == 0
    assert orphan not in two_tier.s3_objects()
    assert len(frame_keys(two_tier.s3_objects())) == FRAMES


# -------------------------------------------------------------------- kill -9


def run_sync(kill_at: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, KILL_AT_ENV: kill_at}
    return subprocess.run([sys.executable, "-m", "imagingdb", "sync", "--to", "s3", "--all",
                           "--workers", "2", *args], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("trial", range(2))
def test_sync_killed_at_random_points_records_only_complete_copies(two_tier, uploaded, run_cli,
                                                                   trial):
    rng = trial_random("sync kill", trial)
    # midway through the copies, then (the rest copied) right before the commit
    for kill_at in (f"object-synced:{rng.randint(1, FRAMES - 1)}", "before-replica-commit"):
        print(f"kill at {kill_at}")
        killed = run_sync(kill_at)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        # killed before its commit: nothing recorded that is not there
        assert two_tier.replicas() == [(DATASET_ID, "local", False)]
    rerun = run_cli("sync", "--to", "s3", "--all", "--format", "json")
    assert rerun.exit_code == 0, rerun.stderr
    item = rerun.json()["datasets"][0]
    assert item["checked"] + item["copied"] == FRAMES and item["checked"] > 0
    assert two_tier.replicas() == [(DATASET_ID, "local", False), (DATASET_ID, "s3", True)]
    assert run_cli("verify", DATASET_ID, "--storage", "s3").exit_code == 0
    assert run_cli("gc", "--older-than", "0", "--format", "json").json()["objects"] == []


def test_two_tiers_on_postgres(tmp_path, monkeypatch, isolated_home, s3_bucket, pg_url, run_cli,
                               upload_files, mm_ometiff):
    root = tmp_path / "local-store"
    config = site_config(tmp_path, pg_url, s3_bucket, root,
                         password_env="IMAGINGDB_TEST_PG_PASSWORD")
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(config))
    assert run_cli("init").exit_code == 0
    two_tier = TwoTier(root, s3_bucket, config)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.frames_config()).exit_code == 0
    killed = run_sync(f"object-synced:{FRAMES // 2}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert two_tier.replicas() == [(DATASET_ID, "local", False)]
    rerun = run_cli("sync", "--to", "s3", "--all")
    assert rerun.exit_code == 0, rerun.stderr
    assert two_tier.replicas() == [(DATASET_ID, "local", False), (DATASET_ID, "s3", True)]
    assert run_cli("verify", DATASET_ID, "--all-stores").exit_code == 0
    shown = json.loads(run_cli("show", DATASET_ID, "--format", "json").stdout)
    assert shown["stores"] == ["local", "s3"]


def test_sync_of_a_file_kept_whole_and_of_an_ome_zarr_dataset(two_tier, run_cli, upload_files,
                                                              mm_ometiff, tmp_path):
    whole, zarr = "ML-2005-05-23-10-00-00-0002", "ML-2005-05-23-10-00-00-0003"
    tiff = next(mm_ometiff.glob("*.ome.tif"))
    assert run_cli("upload", "--csv", upload_files.csv([{"dataset_id": whole, "file_name": str(tiff)}]),
                   "--config", upload_files.file_config()).exit_code == 0
    assert run_cli("upload", "--csv", upload_files.csv([{"dataset_id": zarr,
                                                         "file_name": str(mm_ometiff)}]),
                   "--config", upload_files.frames_config(frame_format="ome-zarr")).exit_code == 0
    synced = run_cli("sync", "--to", "s3", "--all", "--format", "json")
    assert synced.exit_code == 0, synced.stderr
    copied = {item["dataset_id"]: item["copied"] for item in synced.json()["datasets"]}
    assert copied[whole] == 1 and copied[zarr] > FRAMES  # the chunks and the zarr.json documents
    assert two_tier.s3_objects() == {k: v for k, v in two_tier.local_objects().items()
                                     if k.startswith("raw_")}
    assert run_cli("verify", "--all", "--storage", "s3").exit_code == 0
    fetched = Path(run_cli("download", "--id", whole, "--dest", tmp_path / "w",
                           "--storage", "s3").stdout.strip())
    assert (fetched / tiff.name).read_bytes() == tiff.read_bytes()
    import imagingdb

    with imagingdb.connect() as database:
        dataset = database.dataset(zarr)
        assert np.array_equal(dataset.read(storage="s3"), dataset.read())


def test_an_adopted_database_whose_bucket_an_external_sync_filled_is_told_so_after_a_check(
        tmp_path, monkeypatch, isolated_home, s3_bucket, run_cli):
    from imagingdb.config import find_site_config
    from tests.original_imagingdb import OriginalImagingDB

    original = "ORIG-2016-04-01-09-00-00-0001"
    root = tmp_path / "local-store"
    config = site_config(tmp_path, f"sqlite:///{tmp_path / 'original.sqlite'}", s3_bucket, root)
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(config))
    engine = dbq.create_engine(find_site_config().database)
    OriginalImagingDB(engine, root).add_frames(original, seed=4)
    engine.dispose()
    assert run_cli("db", "upgrade").exit_code == 0
    two_tier = TwoTier(root, s3_bucket, config)
    local = two_tier.local_objects()
    assert run_cli("show", original, "--format", "json").json()["replicas"] == [
        {"store": "local", "recorded": False, "complete_at": None, "verified_at": None}]
    for key, data in local.items():  # what DataSync copied
        two_tier.put_s3(key, data)
    recorded = run_cli("sync", "--to", "s3", "--all", "--no-copy", "--format", "json")
    assert recorded.exit_code == 0, recorded.stderr
    [item] = recorded.json()["datasets"]
    assert item["status"] == "recorded" and item["checked"] == len(local) and item["copied"] == 0
    assert two_tier.replicas() == [(original, "local", False), (original, "s3", True)]
    assert run_cli("verify", original, "--all-stores").exit_code == 0
