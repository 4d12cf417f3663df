"""verify, gc and killed uploads on a lab's instance: PostgreSQL + S3 (moto over HTTP)."""

import signal

import boto3
import pytest

from tests.conftest import DATASET_ID
from tests.helpers import trial_random, trials
from tests.test_crash_recovery import FRAMES, random_kill, run_upload

PREFIX = f"imaging/raw_frames/{DATASET_ID}/"


@pytest.fixture
def bucket_client(pg_s3_site):
    return boto3.client("s3", endpoint_url=pg_s3_site.bucket.endpoint_url)


@pytest.fixture
def frames_upload(upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    return csv_path, upload_files.frames_config()


@pytest.fixture
def uploaded(pg_s3_site, run_cli, frames_upload):
    csv_path, config = frames_upload
    result = run_cli("upload", "--csv", csv_path, "--config", config)
    assert result.exit_code == 0, result.stderr
    return pg_s3_site


def test_verify_passes_on_an_intact_dataset(uploaded, run_cli):
    result = run_cli("verify", DATASET_ID)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"{FRAMES} object(s) checked" in result.stdout


def test_verify_reports_a_changed_missing_and_stray_object(uploaded, run_cli, bucket_client):
    name = uploaded.bucket.name
    changed = PREFIX + "im_c000_z000_t000_p000.png"
    png = bytearray(bucket_client.get_object(Bucket=name, Key=changed)["Body"].read())
    png[-20] ^= 0x01  # inside the IDAT's zlib stream or its CRC: no longer the same frame
    bucket_client.put_object(Bucket=name, Key=changed, Body=bytes(png))
    bucket_client.delete_object(Bucket=name, Key=PREFIX + "im_c001_z002_t001_p001.png")
    bucket_client.put_object(Bucket=name, Key=PREFIX + "stray.png", Body=b"x")

    result = run_cli("verify", DATASET_ID, "--format", "json")
    assert result.exit_code == 1
    problems = {(p["problem"], p["key"].rsplit("/", 1)[-1])
                for d in result.json()["datasets"] for p in d["problems"]}
    assert problems == {("corrupted", "im_c000_z000_t000_p000.png"),
                        ("missing", "im_c001_z002_t001_p001.png"),
                        ("extra", "stray.png")}


def test_gc_lists_then_removes_only_unreferenced_objects(uploaded, run_cli, bucket_client):
    name = uploaded.bucket.name
    bucket_client.put_object(Bucket=name, Key=PREFIX + "leftover.png", Body=b"x")
    bucket_client.put_object(Bucket=name, Key="imaging/raw_frames/ML-2001-01-01-00-00-00-0001/"
                                              "im_c000_z000_t000_p000.png", Body=b"y")
    dry = run_cli("gc", "--older-than", "0")
    assert dry.exit_code == 0, dry.stderr
    listed = {line.split("\t")[0] for line in dry.stdout.splitlines()}
    assert listed == {f"raw_frames/{DATASET_ID}/leftover.png",
                      "raw_frames/ML-2001-01-01-00-00-00-0001/im_c000_z000_t000_p000.png"}
    assert len(uploaded.objects()) == FRAMES + 2  # a dry run deletes nothing

    assert run_cli("gc", "--older-than", "0", "--yes").exit_code == 0
    assert sorted(uploaded.objects()) == sorted(
        k for k in uploaded.objects() if k.startswith(PREFIX) and "leftover" not in k)
    assert len(uploaded.objects()) == FRAMES
    assert run_cli("verify", "--all").exit_code == 0


@pytest.mark.parametrize("kill_at", ["object-stored:5", "before-commit"])
def test_killed_upload_leaves_no_rows_and_a_rerun_completes_it(
        pg_s3_site, run_cli, frames_upload, kill_at):
    killed = run_upload(*frames_upload, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with pg_s3_site.connect() as db:
        assert db.query() == []
    rerun = run_cli("upload", "--csv", frames_upload[0], "--config", frames_upload[1])
    assert rerun.exit_code == 0, rerun.stderr
    result = run_cli("verify", DATASET_ID)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert run_cli("gc", "--older-than", "0").stdout == ""


def test_bucket_lost_in_the_middle_of_an_upload_is_one_error_and_no_rows(
        pg_s3_site, run_cli, frames_upload, bucket_client, monkeypatch):
    """The bucket disappears after five frames are stored: the upload stops, registers nothing."""
    from imagingdb import faults

    name = pg_s3_site.bucket.name
    stored = []
    original = faults.checkpoint

    def lose_bucket_after_five(stage):
        original(stage)
        if stage == "object-stored":
            stored.append(stage)
            if len(stored) == 5:
                for item in bucket_client.list_objects_v2(Bucket=name).get("Contents", []):
                    bucket_client.delete_object(Bucket=name, Key=item["Key"])
                bucket_client.delete_bucket(Bucket=name)

    monkeypatch.setattr(faults, "checkpoint", lose_bucket_after_five)
    result = run_cli("upload", "--csv", frames_upload[0], "--config", frames_upload[1],
                     "--workers", "1")
    assert result.exit_code == 1, result.stderr
    assert len(result.errors) == 1 and name in result.errors[0]
    assert "Traceback" not in result.stderr
    bucket_client.create_bucket(Bucket=name)  # so the fixture's snapshot and teardown work
    with pg_s3_site.connect() as db:
        assert db.query() == []


@pytest.mark.parametrize("kill_at", ["object-stored:5", "before-commit", "after-commit"])
def test_overwrite_killed_on_s3_leaves_the_old_or_the_new_dataset_whole(
        uploaded, run_cli, upload_files, mm_ometiff_uint8, kill_at):
    """The overwrite writes a generation of its own in the bucket; the old objects are
    untouched before its commit, and deleted (by it or by gc) only after."""
    before = uploaded.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff_uint8),
                                  "positions": "0"}])
    config = upload_files.frames_config()
    killed = run_upload(csv_path, config, "--overwrite", kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    committed = kill_at == "after-commit"
    if not committed:
        after = uploaded.snapshot()
        assert {k: v for k, v in after["objects"].items() if k in before["objects"]} == \
            before["objects"]
        assert {t: after[t] for t in after if t != "objects"} == \
            {t: before[t] for t in before if t != "objects"}
    result = run_cli("verify", DATASET_ID)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"{12 if committed else FRAMES} object(s) checked" in result.stdout

    rerun = run_cli("upload", "--csv", csv_path, "--config", config, "--overwrite")
    assert rerun.exit_code == 0, rerun.stderr
    assert run_cli("gc", "--yes", "--older-than", "0").exit_code == 0
    with uploaded.connect() as db:
        folder = db.dataset(DATASET_ID).storage_dir
    assert folder.startswith(f"raw_frames/{DATASET_ID}/g")
    assert sorted(uploaded.objects()) == sorted(
        k for k in uploaded.objects() if k.startswith(f"imaging/{folder}/"))
    assert len(uploaded.objects()) == 12
    assert run_cli("verify", DATASET_ID).exit_code == 0


#: the kill points of an overwrite on S3 (no temporary files, so no object-written)
S3_OVERWRITE_STAGES = {"folder-chosen": (1, 1), "object-stored": (1, 12),
                       "before-register": (1, 1), "before-commit": (1, 1),
                       "after-commit": (1, 1)}


@pytest.mark.parametrize("trial", trials(default=1))
def test_overwrite_killed_at_random_on_s3(uploaded, run_cli, upload_files, mm_ometiff_uint8,
                                          trial):
    """Bounded random trials (IMAGINGDB_TRIALS for more, the seed printed)."""
    kill_at = random_kill(trial_random("s3 overwrite kill", trial), S3_OVERWRITE_STAGES)
    print(f"kill at {kill_at}")
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff_uint8),
                                  "positions": "0"}])
    config = upload_files.frames_config()
    killed = run_upload(csv_path, config, "--overwrite", kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr)
    result = run_cli("verify", DATASET_ID)
    assert result.exit_code == 0, (kill_at, result.stdout + result.stderr)
    frames = 12 if kill_at.startswith("after-commit") else FRAMES
    assert f"{frames} object(s) checked" in result.stdout
    assert run_cli("upload", "--csv", csv_path, "--config", config,
                   "--overwrite").exit_code == 0
    assert run_cli("gc", "--yes", "--older-than", "0").exit_code == 0
    assert len(uploaded.objects()) == 12
    assert run_cli("verify", DATASET_ID).exit_code == 0
