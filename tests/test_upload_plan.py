"""`imagingdb upload --plan`: what an upload would do, row by row, with nothing written anywhere;
its counts exact and its estimates close to the upload that follows."""

from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

from tests.conftest import DATASET_ID

OTHER_ID = "ML-2005-05-23-10-00-00-0002"


def tree(folder: Path) -> Optional[dict[str, bytes]]:
    """Every file under ``folder`` with its bytes (None: no folder)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}


def plan(run_cli, csv_path, config, *flags: str):
    return run_cli("upload", "--csv", csv_path, "--config", config, "--plan", *flags)


def frames_row(source: Path, dataset_id: str = DATASET_ID, **extra: Any) -> dict[str, Any]:
    return {"dataset_id": dataset_id, "file_name": str(source), "description": "plan", **extra}


@pytest.fixture
def s3_calls(monkeypatch):
    """The name of every S3 operation any boto3 client makes from now on."""
    import boto3.session

    calls: list[str] = []
    original = boto3.session.Session.client

    def client(self, *args, **kwargs):
        made = original(self, *args, **kwargs)
        made.meta.events.register("before-call.s3", lambda **event: calls.append(event["model"].name))
        return made

    monkeypatch.setattr(boto3.session.Session, "client", client)
    return calls


PRICE_CLASS = {"PutObject": "put", "CreateMultipartUpload": "put", "UploadPart": "put",
               "CompleteMultipartUpload": "put", "HeadBucket": "get", "HeadObject": "get",
               "GetObject": "get", "ListObjectsV2": "list", "DeleteObjects": "delete"}


def by_class(calls: list[str]) -> dict[str, int]:
    counts = {"put": 0, "get": 0, "list": 0, "delete": 0}
    for name in calls:
        counts[PRICE_CLASS[name]] += 1
    return counts


# ----------------------------------------------------------------- nothing written


def test_plan_on_a_new_embedded_site_writes_nothing(run_cli, upload_files, mm_ometiff,
                                                    isolated_home, tmp_path):
    before = tree(tmp_path)
    csv_path = upload_files.csv([frames_row(mm_ometiff)])
    config = upload_files.frames_config()
    before = tree(tmp_path)
    result = plan(run_cli, csv_path, config)
    assert result.exit_code == 0, result.stderr
    assert tree(tmp_path) == before
    assert not isolated_home.exists()
    assert "does not exist yet: the upload creates it" in result.stdout
    assert "new dataset" in result.stdout


def test_plan_after_an_upload_leaves_database_and_storage_byte_identical(
        run_cli, upload_files, mm_ometiff, uploaded_ometiff, site, tmp_path):
    csv_path = upload_files.csv([frames_row(mm_ometiff, description="two positions"),
                                 frames_row(mm_ometiff, OTHER_ID)])
    config = upload_files.frames_config()
    snapshot = site.snapshot()
    before = tree(tmp_path)
    for flags in ((), ("--overwrite",), ("--format", "json")):
        result = plan(run_cli, csv_path, config, *flags)
        assert result.exit_code == 0, result.stderr
        assert tree(tmp_path) == before, flags
    assert site.snapshot() == snapshot


def test_plan_on_postgres_and_s3_writes_nothing(pg_s3_site, run_cli, upload_files, mm_ometiff,
                                                pg_url):
    import sqlalchemy as sa

    csv_path = upload_files.csv([frames_row(mm_ometiff)])
    result = plan(run_cli, csv_path, upload_files.frames_config())
    assert result.exit_code == 0, result.stderr
    assert pg_s3_site.objects() == {}  # not even the write check's probe
    from imagingdb import db as dbq
    from imagingdb.config import DatabaseSettings

    engine = dbq.create_engine(DatabaseSettings(pg_url, "IMAGINGDB_TEST_PG_PASSWORD"))
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
    finally:
        engine.dispose()
    assert "the database is empty: the upload creates its schema" in result.stdout


def test_plan_after_an_upload_on_postgres_and_s3_changes_nothing(
        pg_s3_site, run_cli, upload_files, mm_ometiff):
    config = upload_files.frames_config()
    first = run_cli("upload", "--csv", upload_files.csv([frames_row(mm_ometiff)]), "--config", config)
    assert first.exit_code == 0, first.stderr
    snapshot = pg_s3_site.snapshot()
    csv_path = upload_files.csv([frames_row(mm_ometiff), frames_row(mm_ometiff, OTHER_ID)])
    for flags in ((), ("--overwrite",)):
        result = plan(run_cli, csv_path, config, *flags)
        assert result.exit_code == 0, result.stderr
    assert pg_s3_site.snapshot() == snapshot


# ------------------------------------------------------------------ what it says


def test_plan_reports_frames_dimensions_and_sizes_as_json(run_cli, upload_files, mm_ometiff):
    result = plan(run_cli, upload_files.csv([frames_row(mm_ometiff)]),
                  upload_files.frames_config(), "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    row = report["rows"][0]
    assert (row["action"], row["ok"], row["format"], row["frame_format"]) == (
        "upload", True, "ome_tiff", "png")
    assert row["frames"] == row["grid"] == 24 and row["missing_frames"] == 0
    assert {k: row["dims"][k] for k in ("channels", "slices", "times", "positions", "height",
                                        "width", "dtype")} == {
        "channels": 2, "slices": 3, "times": 2, "positions": 2, "height": 32, "width": 48,
        "dtype": "uint16"}
    assert row["dims"]["channel_names"] == ["DAPI", "GFP"]
    assert row["read_bytes"] == 24 * 32 * 48 * 2
    assert row["source_bytes"] == sum(p.stat().st_size for p in mm_ometiff.iterdir())
    assert row["stored_objects"] == 24 and row["sample_frames"] == 16
    assert row["folder"] == f"raw_frames/{DATASET_ID}"
    assert row["requests"] == {} and row["cost"] is None  # a local store: no requests priced
    assert report["totals"]["stored_objects"] == 24 and report["totals"]["ok"] == 1
    parts = row["seconds_parts"]
    assert {"open and check", "frames"} <= set(parts) <= {"open and check", "frames", "disk writes"}
    rate = report["stores"][0]["disk_bytes_per_second"]
    if rate is not None:  # a local disk whose speed the kernel's counters tell
        assert parts["disk writes"] == pytest.approx(row["stored_bytes"] / rate, abs=1e-3)
    assert row["seconds"] == pytest.approx(
        parts["open and check"] + max(parts["frames"], parts.get("disk writes", 0)), abs=2e-3)
    assert set(row["sample"]) == {"frames", "read_seconds", "hash_seconds", "encode_seconds",
                                  "cpu_seconds"}


def test_frames_and_disk_writes_overlap_while_other_parts_add():
    from imagingdb.upload_plan import total_seconds

    # The local store syncs what the workers stored while later frames are encoded.
    assert total_seconds({"open and check": 0.5, "frames": 2.0, "disk writes": 3.0}) == 3.5
    assert total_seconds({"open and check": 0.5, "frames": 2.0, "disk writes": 1.0}) == 2.5
    # S3's requests wait on round trips the frames do not hide.
    assert total_seconds({"open and check": 0.5, "frames": 2.0, "disk writes": 1.0,
                          "S3 requests": 4.0}) == 6.5
    assert total_seconds({"open and check": 0.5, "read and hash": 1.5}) == 2.0


def test_plan_text_says_disk_writes_overlap_only_beside_frames():
    from imagingdb.upload_plan import RowPlan, _row_lines, total_seconds

    def time_lines(parts: dict[str, float]) -> list[str]:
        row = RowPlan(line=2, dataset_id=DATASET_ID, action="skip", seconds_parts=parts,
                      seconds=total_seconds(parts))
        return [line.strip() for line in _row_lines(row, "USD")[2:]]

    assert time_lines({"open and check": 0.5, "frames": 2.0, "disk writes": 3.0}) == [
        "time      ~3.5 s (open and check 0.5 s, frames 2.0 s)",
        "disk writes 3.0 s, while the frames are encoded"]
    # A file kept whole has no frames: its disk writes add, and say so.
    assert time_lines({"open and check": 0.5, "read and hash": 1.5, "disk writes": 1.0}) == [
        "time      ~3.0 s (open and check 0.5 s, read and hash 1.5 s, disk writes 1.0 s)"]


def test_a_file_kept_whole_counts_its_hash_once(run_cli, upload_files, monkeypatch, tmp_path):
    import time

    from imagingdb import upload_plan

    def slow_sample_hash(source: Path) -> float:
        time.sleep(0.5)  # a sample that takes long: its time is the hash's, not the opening's
        return 1e-5

    monkeypatch.setattr(upload_plan, "_time_file_hash", slow_sample_hash)
    notes = tmp_path / "notes.txt"
    notes.write_text("plate map\n" * 1000)
    result = plan(run_cli, upload_files.csv([frames_row(notes, OTHER_ID)]),
                  upload_files.file_config(), "--format", "json")
    assert result.exit_code == 0, result.stderr
    parts = result.json()["rows"][0]["seconds_parts"]
    assert parts["read and hash"] == pytest.approx(notes.stat().st_size * 1e-5, abs=1e-3)
    assert parts["open and check"] < 0.5


def test_plan_text_fits_a_terminal(run_cli, upload_files, mm_ometiff):
    result = plan(run_cli, upload_files.csv([frames_row(mm_ometiff)]), upload_files.frames_config())
    assert result.exit_code == 0, result.stderr
    long = [line for line in result.stdout.splitlines()
            if len(line) > 80 and str(mm_ometiff.parent) not in line]
    assert long == []


def test_plan_lists_missing_frames_as_show_will(run_cli, upload_files, tmp_path):
    from imagingdb.testing import write_mm_ometiff

    folder = tmp_path / "gappy"
    folder.mkdir()
    write_mm_ometiff(folder, "gappy", channels=("DAPI", "GFP"), slices=2, times=2, positions=1,
                     height=16, width=16, dtype="uint16", seed=3,
                     drop={(1, 0, 1, 0), (1, 1, 1, 0)})
    csv_path = upload_files.csv([frames_row(folder)])
    config = upload_files.frames_config()
    row = plan(run_cli, csv_path, config, "--format", "json").json()["rows"][0]
    assert (row["frames"], row["grid"], row["missing_frames"]) == (6, 8, 2)
    assert row["missing"] == ["t=1 c=1"]
    assert any("2 missing" in warning for warning in row["warnings"])
    assert run_cli("upload", "--csv", csv_path, "--config", config).exit_code == 0
    shown = run_cli("show", DATASET_ID)
    assert "t=1 c=1" in shown.stdout


def test_plan_of_a_registered_dataset_says_skip_or_replace(run_cli, upload_files, mm_ometiff,
                                                           uploaded_ometiff):
    csv_path = upload_files.csv([frames_row(mm_ometiff, description="two positions")])
    config = upload_files.frames_config()
    again = plan(run_cli, csv_path, config, "--format", "json")
    assert again.exit_code == 0, again.stderr
    row = again.json()["rows"][0]
    assert (row["action"], row["stored_objects"]) == ("skip", 0)
    assert "skips it if its content is the same" in row["notes"][0]
    replace = plan(run_cli, csv_path, config, "--overwrite", "--format", "json").json()["rows"][0]
    assert replace["action"] == "replace" and replace["stored_objects"] == 24
    assert replace["folder"].startswith(f"raw_frames/{DATASET_ID}/g")


def test_plan_names_the_prices_it_used(pg_s3_site, run_cli, upload_files, mm_ometiff):
    result = plan(run_cli, upload_files.csv([frames_row(mm_ometiff)]), upload_files.frames_config())
    assert result.exit_code == 0, result.stderr
    assert "AWS us-east-1 S3 Standard list prices (defaults" in result.stdout
    site = yaml.safe_load(pg_s3_site.config_path.read_text())
    site["storage"]["prices"] = {"put_per_1000": 1.0, "list_per_1000": 2.0, "get_per_1000": 3.0,
                                 "storage_gb_month": 0.0, "currency": "CHF"}
    pg_s3_site.config_path.write_text(yaml.safe_dump(site))
    report = plan(run_cli, upload_files.csv([frames_row(mm_ometiff)]),
                  upload_files.frames_config(), "--format", "json").json()
    requests = report["totals"]["requests"]["s3"]
    assert report["totals"]["currency"] == "CHF" and report["stores"][0]["prices_configured"]
    assert report["totals"]["cost"] == pytest.approx(
        (requests["put"] * 1.0 + requests["list"] * 2.0 + requests["get"] * 3.0) / 1000)


# ------------------------------------------------------------ exact, and close


def test_plan_counts_objects_exactly_and_bytes_closely_on_a_real_upload(
        run_cli, upload_files, mm_ometiff, isolated_home):
    csv_path = upload_files.csv([frames_row(mm_ometiff)])
    config = upload_files.frames_config()
    row = plan(run_cli, csv_path, config, "--format", "json").json()["rows"][0]
    assert run_cli("upload", "--csv", csv_path, "--config", config).exit_code == 0
    stored = [p for p in (isolated_home / "storage").rglob("*") if p.is_file()]
    assert row["stored_objects"] == len(stored)
    real = sum(p.stat().st_size for p in stored)
    assert abs(row["stored_bytes"] / real - 1) <= 0.25


def test_plan_of_the_ome_zarr_layout_counts_its_documents(run_cli, upload_files, mm_ometiff,
                                                          isolated_home):
    csv_path = upload_files.csv([frames_row(mm_ometiff)])
    config = upload_files.frames_config(frame_format="ome-zarr")
    row = plan(run_cli, csv_path, config, "--format", "json").json()["rows"][0]
    assert row["stored_objects"] == 24 + 2 + 3 * 2
    assert run_cli("upload", "--csv", csv_path, "--config", config).exit_code == 0
    stored = [p for p in (isolated_home / "storage").rglob("*") if p.is_file()]
    assert row["stored_objects"] == len(stored)
    documents = sum(p.stat().st_size for p in stored if p.name == "zarr.json")
    real = sum(p.stat().st_size for p in stored)
    assert abs(row["stored_bytes"] / real - 1) <= 0.25
    assert documents > 0


@pytest.mark.parametrize("overwrite", [False, True])
def test_plan_counts_s3_requests_exactly(pg_s3_site, run_cli, upload_files, mm_ometiff,
                                         s3_calls, overwrite, tmp_path):
    config = upload_files.frames_config()
    notes = tmp_path / "notes.txt"
    notes.write_text("plate map\n")
    rows = [frames_row(mm_ometiff), frames_row(notes, OTHER_ID)]
    if overwrite:
        first = run_cli("upload", "--csv", upload_files.csv(rows[:1]), "--config", config)
        assert first.exit_code == 0, first.stderr
    frames_csv = upload_files.csv(rows[:1])
    flags = ("--overwrite",) if overwrite else ()
    planned = plan(run_cli, frames_csv, config, "--format", "json", *flags).json()
    s3_calls.clear()
    result = run_cli("upload", "--csv", frames_csv, "--config", config, *flags)
    assert result.exit_code == 0, result.stderr
    assert planned["totals"]["requests"]["s3"] == by_class(s3_calls)
    keys = [k for k in pg_s3_site.objects() if f"/{DATASET_ID}/" in k]
    assert planned["rows"][0]["stored_objects"] == len(keys)


def test_plan_counts_s3_requests_of_a_file_kept_whole(pg_s3_site, run_cli, upload_files,
                                                      s3_calls, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("plate map\n" * 1000)
    csv_path = upload_files.csv([frames_row(notes, OTHER_ID)])
    config = upload_files.file_config()
    planned = plan(run_cli, csv_path, config, "--format", "json").json()
    assert planned["rows"][0]["stored_bytes"] == notes.stat().st_size
    s3_calls.clear()
    assert run_cli("upload", "--csv", csv_path, "--config", config).exit_code == 0
    assert planned["totals"]["requests"]["s3"] == by_class(s3_calls)


# --------------------------------------------------------------- refusals


def test_a_row_the_upload_refuses_is_refused_with_the_same_reason(run_cli, upload_files,
                                                                  mm_ometiff, tmp_path):
    not_tiff = tmp_path / "notes.txt"
    not_tiff.write_text("not an image\n")
    rows = [frames_row(tmp_path / "absent"), frames_row(mm_ometiff, OTHER_ID,
                                                        parent_dataset_id="ML-2001-01-01-00-00-00-0009"),
            frames_row(not_tiff, "ML-2005-05-23-10-00-00-0003")]
    csv_path = upload_files.csv(rows)
    config = upload_files.frames_config(frames_format="auto")
    planned = plan(run_cli, csv_path, config)
    assert planned.exit_code == 1
    uploaded = run_cli("upload", "--csv", csv_path, "--config", config)
    assert len(planned.errors) == 3
    assert planned.errors == uploaded.errors


def test_a_dataset_registered_with_other_content_is_refused(run_cli, upload_files, mm_ometiff,
                                                            uploaded_ometiff):
    result = plan(run_cli, upload_files.csv([frames_row(mm_ometiff, positions="[1]")]),
                  upload_files.frames_config())
    assert result.exit_code == 1
    assert result.errors and "already exists with other content" in result.errors[0]


def test_bad_input_is_exit_2_with_nothing_written(run_cli, upload_files, mm_ometiff, tmp_path):
    csv_path = upload_files.csv([frames_row(mm_ometiff)])
    bad_config = upload_files.config(upload_type="frames", frames_fromat="ome_tiff")
    before = tree(tmp_path)
    result = plan(run_cli, csv_path, bad_config)
    assert result.exit_code == 2 and len(result.errors) == 1
    assert "frames_fromat" in result.errors[0]
    assert tree(tmp_path) == before


def test_bad_prices_in_the_site_config_are_refused(run_cli, upload_files, mm_ometiff, tmp_path,
                                                   monkeypatch):
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path / 'db.sqlite'}"},
                                    "storage": {"backend": "local", "root": str(tmp_path / "s"),
                                                "prices": {"put_per_1000": "cheap"}}}))
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(site))
    result = plan(run_cli, upload_files.csv([frames_row(mm_ometiff)]), upload_files.frames_config())
    assert result.exit_code == 2
    assert "storage.prices.put_per_1000 must be a number" in result.errors[0]


def test_plan_with_replicate_counts_each_store(run_cli, upload_files, mm_ometiff, s3_bucket,
                                               s3_calls, tmp_path, monkeypatch):
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path / 'db.sqlite'}"},
        "storage": {"primary": "disk", "stores": {
            "disk": {"backend": "local", "root": str(tmp_path / "disk")},
            "cloud": {"backend": "s3", "bucket": s3_bucket.name,
                      "endpoint_url": s3_bucket.endpoint_url, "region": s3_bucket.region}}}}))
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(site))
    csv_path = upload_files.csv([frames_row(mm_ometiff)])
    config = upload_files.frames_config()
    planned = plan(run_cli, csv_path, config, "--replicate", "--format", "json").json()
    assert [s["name"] for s in planned["stores"]] == ["disk", "cloud"]
    assert not (tmp_path / "disk").exists() and not (tmp_path / "db.sqlite").exists()
    s3_calls.clear()
    result = run_cli("upload", "--csv", csv_path, "--config", config, "--replicate")
    assert result.exit_code == 0, result.stderr
    assert planned["totals"]["requests"] == {"cloud": by_class(s3_calls)}
    assert planned["rows"][0]["stored_objects"] == len(list((tmp_path / "disk").rglob("*.png")))


@pytest.fixture
def schema_version_1(site, monkeypatch):
    """The site's database made by imagingdb's first schema, empty."""
    from imagingdb import db as dbq
    from imagingdb.config import find_site_config
    from imagingdb.db import tables

    engine = dbq.create_engine(find_site_config().database)
    with monkeypatch.context() as patch:
        patch.setattr(tables, "schema_sql", (Path(__file__).parent / "data" / "schema_v1.sql").read_text)
        statements = dbq.schema_statements(engine.dialect.name)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()
    return site


def test_plan_on_an_older_schema_says_what_the_upload_would(schema_version_1, run_cli,
                                                            upload_files, mm_ometiff,
                                                            isolated_home, tmp_path):
    from imagingdb import db as dbq

    csv_path = upload_files.csv([frames_row(mm_ometiff)])
    config = upload_files.frames_config()
    before = tree(tmp_path)
    result = plan(run_cli, csv_path, config)
    assert tree(tmp_path) == before
    if schema_version_1.kind == "sqlite":  # the embedded default upgrades itself
        assert result.exit_code == 0, result.stderr
        assert (f"the database has schema version 1: the upload upgrades it to "
                f"{dbq.SCHEMA_VERSION} first") in result.stdout
    else:
        assert result.exit_code == 1
        uploaded = run_cli("upload", "--csv", csv_path, "--config", config)
        assert result.errors == uploaded.errors
        assert "run imagingdb db upgrade" in result.errors[0]
