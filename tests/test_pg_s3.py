"""A lab's shared instance end to end: a real PostgreSQL and an S3 bucket over HTTP
(moto's server), through the CLI and the Python API."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATASET_ID
from tests.helpers import source_frames
from tests.servers import s3_read_only_user

FILE_ID = "ML-2005-05-24-09-30-00-0002"


@pytest.fixture
def uploaded(pg_s3_site, run_cli, upload_files, mm_ometiff, tmp_path):
    """One frames dataset and one file dataset, uploaded through the CLI."""
    notes = tmp_path / "notes.txt"
    notes.write_text("plate map\n")
    frames = run_cli("upload", "--csv", upload_files.csv(
        [{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff), "description": "s3 frames"}]),
        "--config", upload_files.frames_config())
    assert frames.exit_code == 0, frames.stderr
    whole = run_cli("upload", "--csv", upload_files.csv(
        [{"dataset_id": FILE_ID, "file_name": str(notes), "parent_dataset_id": DATASET_ID}]),
        "--config", upload_files.file_config())
    assert whole.exit_code == 0, whole.stderr
    return pg_s3_site


def test_init_reports_the_database_and_bucket(pg_s3_site, run_cli):
    result = run_cli("init")
    assert result.exit_code == 0, result.stderr
    assert f"s3://{pg_s3_site.bucket.name}/imaging/" in result.stderr
    assert "postgresql+pg8000://" in result.stderr


def test_frames_and_file_land_in_the_bucket_in_the_original_layout(uploaded, mm_ometiff):
    from imagingdb.codecs.png import decode_png

    objects = uploaded.objects()
    frame_keys = sorted(k for k in objects if k.startswith(f"imaging/raw_frames/{DATASET_ID}/"))
    assert len(frame_keys) == 24
    assert frame_keys[0] == f"imaging/raw_frames/{DATASET_ID}/im_c000_z000_t000_p000.png"
    for (c, z, t, p), pixels in source_frames(mm_ometiff).items():
        key = f"imaging/raw_frames/{DATASET_ID}/im_c{c:03d}_z{z:03d}_t{t:03d}_p{p:03d}.png"
        np.testing.assert_array_equal(decode_png(objects[key]), pixels)
    assert objects[f"imaging/raw_files/{FILE_ID}/notes.txt"] == b"plate map\n"
    assert not [k for k in objects if ".imagingdb-write-check" in k]


def test_query_sees_both_datasets(uploaded, run_cli):
    records = run_cli("query", "--format", "json").json()
    assert [(r["dataset_id"], r["frames"], r["parent_dataset_id"]) for r in records] == [
        (DATASET_ID, True, None), (FILE_ID, False, DATASET_ID)]


def test_partial_download_is_byte_identical_to_the_bucket(uploaded, run_cli, tmp_path):
    result = run_cli("download", "--id", DATASET_ID, "--dest", tmp_path / "d",
                     "-c", "GFP", "-z", "0,2", "-t", "1", "-p", "1")
    assert result.exit_code == 0, result.stderr
    target = Path(result.stdout.strip())
    objects = uploaded.objects()
    pngs = sorted(p.name for p in target.glob("*.png"))
    assert pngs == ["im_c001_z000_t001_p001.png", "im_c001_z002_t001_p001.png"]
    for name in pngs:
        assert (target / name).read_bytes() == objects[f"imaging/raw_frames/{DATASET_ID}/{name}"]
    assert json.loads((target / "global_metadata.json").read_text())["nbr_frames"] == 24


def test_download_of_the_whole_file(uploaded, run_cli, tmp_path):
    result = run_cli("download", "--id", FILE_ID, "--dest", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / FILE_ID / "notes.txt").read_text() == "plate map\n"
    meta = json.loads((tmp_path / FILE_ID / "global_metadata.json").read_text())
    assert meta["sha256"] == hashlib.sha256(b"plate map\n").hexdigest()


def test_read_a_selection_is_pixel_identical(uploaded, mm_ometiff):
    expected = source_frames(mm_ometiff)
    with uploaded.connect() as db:
        ds = db.dataset(DATASET_ID)
        array = ds.read(channels=["GFP", "DAPI"], slices=[2, 0], times=[1], positions=[0, 1],
                        verify=True)
        whole = ds.read()
    assert array.shape == (2, 1, 2, 2, 32, 48) and array.dtype == np.uint16
    np.testing.assert_array_equal(array[1, 0, 0, 0], expected[(1, 2, 1, 1)])
    np.testing.assert_array_equal(array[0, 0, 1, 1], expected[(0, 0, 1, 0)])
    for (c, z, t, p), pixels in expected.items():
        np.testing.assert_array_equal(whole[p, t, c, z], pixels)


def test_overwrite_removes_objects_the_new_upload_does_not_have(uploaded, run_cli,
                                                                upload_files, mm_ometiff):
    result = run_cli("upload", "--overwrite", "--csv", upload_files.csv(
        [{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff), "positions": "[1]"}]),
        "--config", upload_files.frames_config())
    assert result.exit_code == 0, result.stderr
    keys = [k for k in uploaded.objects() if k.startswith(f"imaging/raw_frames/{DATASET_ID}/")]
    assert len(keys) == 12 and all(k.endswith("_p001.png") for k in keys)
    with uploaded.connect() as db:
        assert db.dataset(DATASET_ID).nbr_frames == 12


def _refused_upload(run_cli, upload_files, mm_ometiff):
    return run_cli("upload", "--csv", upload_files.csv(
        [{"dataset_id": "ML-2006-01-01-00-00-00-0003", "file_name": str(mm_ometiff)}]),
        "--config", upload_files.frames_config())


def test_missing_bucket_is_an_error_before_any_row(uploaded, run_cli, upload_files, mm_ometiff,
                                                   tmp_path, monkeypatch):
    before = uploaded.snapshot()
    config = Path(uploaded.config_path).read_text().replace(uploaded.bucket.name,
                                                            "no-such-bucket-here")
    (tmp_path / "missing-bucket.yaml").write_text(config)
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(tmp_path / "missing-bucket.yaml"))
    result = _refused_upload(run_cli, upload_files, mm_ometiff)
    assert result.exit_code == 1
    assert len(result.errors) == 1
    assert result.errors[0].endswith("S3 bucket no-such-bucket-here does not exist at "
                                     f"{uploaded.bucket.endpoint_url}")
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(uploaded.config_path))
    assert uploaded.snapshot() == before


def test_denied_access_is_an_error_before_any_row(uploaded, s3_server, aws_env, run_cli,
                                                  upload_files, mm_ometiff, monkeypatch):
    before = uploaded.snapshot()
    with s3_read_only_user(s3_server.endpoint_url, uploaded.bucket.name) as (key_id, secret):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        result = _refused_upload(run_cli, upload_files, mm_ometiff)
        with uploaded.connect() as db:  # reading still works with read-only keys
            assert db.dataset(DATASET_ID).read(times=[0], positions=[0]).shape[1] == 1
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, aws_env[name])
    assert result.exit_code == 1
    assert len(result.errors) == 1 and "access denied to s3://" in result.errors[0]
    assert secret not in result.stderr
    assert uploaded.snapshot() == before


def test_an_original_imagingdb_bucket_and_database_are_adopted_and_read(pg_s3_site, run_cli,
                                                                        tmp_path):
    import boto3

    from imagingdb import db as dbq
    from imagingdb.config import find_site_config
    from tests.original_imagingdb import OriginalImagingDB

    bucket = pg_s3_site.bucket
    client = boto3.client("s3", endpoint_url=bucket.endpoint_url)
    engine = dbq.create_engine(find_site_config().database)
    original = OriginalImagingDB(engine, store=lambda key, data: client.put_object(
        Bucket=bucket.name, Key=f"imaging/{key}", Body=data))
    serial = "ML-2018-04-05-00-00-00-0001"
    original.add_frames(serial, seed=3, storage_dir=None)
    engine.dispose()
    assert run_cli("db", "upgrade").exit_code == 0
    with pg_s3_site.connect() as db:
        array = db.dataset(serial).read(channels=["GFP"], verify=True)
    for z in range(2):
        np.testing.assert_array_equal(array[0, 0, 0, z], original.pixels[serial][(1, z, 0, 0)])
    result = run_cli("download", "--id", serial, "--dest", tmp_path, "-z", "0")
    assert sorted(p.name for p in (tmp_path / serial).glob("*.png")) == [
        "im_c000_z000_t000_p000.png", "im_c001_z000_t000_p000.png"], result.stderr


def test_debug_output_never_contains_the_secrets(pg_s3_site, pg_server, upload_files,
                                                 mm_ometiff, tmp_path, monkeypatch):
    import os
    import subprocess

    from tests.helpers import imagingdb_command

    secret = "Recognisable-AWS-Secret-4711"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)  # moto takes any key unless told
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    for args in (["upload", "--csv", csv_path, "--config", upload_files.frames_config()],
                 ["download", "--id", DATASET_ID, "--dest", tmp_path / "d", "-t", "0"]):
        run = subprocess.run([*imagingdb_command(), "--debug", *map(str, args)],
                             env=dict(os.environ), capture_output=True, text=True, timeout=120)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output
        assert "DEBUG" in output
        assert secret not in output and pg_server.password not in output
