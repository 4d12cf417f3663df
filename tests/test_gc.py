"""imagingdb gc: unreferenced objects found, listed, deleted only with --yes, never a live one."""

import contextlib
import os
import time

import pytest
import sqlalchemy as sa

from imagingdb import db as dbq
from imagingdb.claims import claim_dataset
from imagingdb.gc import parse_duration
from tests.conftest import DATASET_ID

ORPHAN_ID = "ML-2005-05-23-10-00-00-0007"
TWO_DAYS = 2 * 86400


def age(root, seconds=TWO_DAYS):
    """Make every object under ``root`` look written ``seconds`` ago."""
    then = time.time() - seconds
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


def put(root, key, data=b"left by an interrupted upload"):
    path = root.joinpath(*key.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def leftovers(uploaded_ometiff, site):
    """A registered dataset plus what interrupted uploads leave, all two days old."""
    root = site.storage_root
    keys = [
        f"raw_frames/{ORPHAN_ID}/im_c000_z000_t000_p000.png",     # never registered
        f"raw_frames/{ORPHAN_ID}/.im_c000_z001_t000_p000.png.5f1e.tmp",  # cut mid-write
        f"raw_frames/{DATASET_ID}/im_c009_z000_t000_p000.png",    # stale, in a live dataset
        f"raw_files/{DATASET_ID}/old.ome.tif",                    # the dataset's earlier kind
    ]
    for key in keys:
        put(root, key)
    age(root)
    return sorted(keys)


@contextlib.contextmanager
def upload_running(site, dataset_id):
    """An upload of ``dataset_id`` in progress, as gc sees one: the claim on its ID is held."""
    with site.connect() as db, claim_dataset(db.site, dataset_id):
        yield


def gc_keys(result):
    return sorted(line.split("\t")[0] for line in result.stdout.splitlines())


def test_dry_run_lists_the_garbage_and_deletes_nothing(leftovers, site, run_cli):
    before = site.snapshot()
    result = run_cli("gc")
    assert result.exit_code == 0, result.stderr
    assert gc_keys(result) == leftovers
    assert "nothing deleted (dry run): run imagingdb gc --yes" in result.stderr
    assert site.snapshot() == before


def test_yes_deletes_exactly_the_garbage_and_the_dataset_still_verifies(leftovers, site, run_cli):
    before = site.snapshot()
    result = run_cli("gc", "--yes")
    assert result.exit_code == 0, result.stderr
    assert gc_keys(result) == leftovers
    assert "deleted 4 unreferenced object(s)" in result.stderr
    after = site.snapshot()
    assert set(before["objects"]) - set(after["objects"]) == {
        key for key in leftovers}
    assert {k: before[k] for k in before if k != "objects"} == \
        {k: after[k] for k in after if k != "objects"}
    assert not (site.storage_root / "raw_frames" / ORPHAN_ID).exists()
    assert run_cli("verify", "--all").exit_code == 0
    assert gc_keys(run_cli("gc")) == []


def test_json_report(leftovers, run_cli):
    report = run_cli("gc", "--format", "json").json()
    assert report["deleted"] is False
    assert sorted(o["key"] for o in report["objects"]) == leftovers
    assert report["bytes"] == 4 * len(b"left by an interrupted upload")
    assert report["skipped_recent_folders"] == []


def test_recently_written_folders_are_left_alone(uploaded_ometiff, site, run_cli):
    """An upload in progress writes its folder as it goes and registers at the end; it holds
    the claim on its ID meanwhile."""
    root = site.storage_root
    put(root, f"raw_frames/{ORPHAN_ID}/im_c000_z000_t000_p000.png")
    age(root)
    running = put(root, f"raw_frames/{ORPHAN_ID}/.im_c000_z001_t000_p000.png.77aa.tmp")
    os.utime(running, (time.time() - 600, time.time() - 600))  # ten minutes ago
    before = site.snapshot()

    with upload_running(site, ORPHAN_ID):
        result = run_cli("gc", "--yes", "--older-than", "1h")
        assert result.exit_code == 0
        assert gc_keys(result) == []
        assert ("skipped 1 folder(s), 58 B, written to less than 1h ago by an upload (or a "
                "delete or rename) still running") in result.stderr
        assert site.snapshot() == before

        assert len(gc_keys(run_cli("gc", "--older-than", "5m"))) == 2


def test_default_grace_is_a_day(uploaded_ometiff, site, run_cli):
    put(site.storage_root, f"raw_frames/{ORPHAN_ID}/im_c000_z000_t000_p000.png")
    age(site.storage_root, 23 * 3600)
    with upload_running(site, ORPHAN_ID):
        assert gc_keys(run_cli("gc")) == []
        age(site.storage_root, 25 * 3600)
        assert len(gc_keys(run_cli("gc"))) == 1


def test_objects_of_registered_datasets_are_never_garbage(uploaded_ometiff, site, run_cli,
                                                          upload_files, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("kept whole")
    csv_path = upload_files.csv([{"dataset_id": "ML-2000-01-01-00-00-00-0001",
                                  "file_name": str(notes)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.file_config()).exit_code == 0
    age(site.storage_root)
    before = site.snapshot()
    result = run_cli("gc", "--yes", "--older-than", "0")
    assert result.exit_code == 0 and gc_keys(result) == []
    assert site.snapshot() == before


def test_switching_a_dataset_from_file_to_frames_removes_the_file_after_the_commit(
        site, run_cli, upload_files, mm_ometiff):
    source = mm_ometiff / "sample_MMStack_Pos0.ome.tif"
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.file_config()).exit_code == 0
    frames_csv = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    assert run_cli("upload", "--csv", frames_csv, "--config", upload_files.frames_config(),
                   "--overwrite").exit_code == 0
    assert not (site.storage_root / "raw_files" / DATASET_ID).exists()
    assert gc_keys(run_cli("gc", "--yes", "--older-than", "0")) == []
    assert run_cli("verify", DATASET_ID).exit_code == 0


def test_gc_refuses_a_storage_dir_it_cannot_map(leftovers, site, run_cli):
    with site.connect() as db, db.site.connection(write=True) as conn:
        conn.execute(sa.update(dbq.frames_global).values(storage_dir="/mnt/old/imaging"))
    before = site.snapshot()
    result = run_cli("gc", "--yes")
    assert result.exit_code == 1
    assert result.errors == [
        f"Error: dataset {DATASET_ID} keeps its objects in '/mnt/old/imaging', not in a "
        "raw_frames/<ID> folder; gc cannot tell what it references, so it deletes nothing"]
    assert site.snapshot() == before


def test_storage_dir_with_a_trailing_slash_still_references_its_objects(uploaded_ometiff, site,
                                                                       run_cli):
    with site.connect() as db, db.site.connection(write=True) as conn:
        conn.execute(sa.update(dbq.frames_global).values(storage_dir=f"raw_frames/{DATASET_ID}/"))
    age(site.storage_root)
    assert gc_keys(run_cli("gc", "--older-than", "0")) == []


def test_objects_outside_dataset_folders_are_not_gcs_to_judge(uploaded_ometiff, site, run_cli):
    put(site.storage_root, "raw_frames/README.txt")
    put(site.storage_root, "notes/lab-inventory.csv")
    age(site.storage_root)
    assert gc_keys(run_cli("gc", "--older-than", "0")) == []


def test_empty_storage(site, run_cli):
    result = run_cli("gc")
    assert result.exit_code == 0
    assert result.stderr.strip() == "no unreferenced objects"


@pytest.mark.parametrize("text, seconds", [
    ("0", 0), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1.5d", 129600), (" 24h ", 86400),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value, message", [
    ("5", "give a unit (s, m, h or d)"),
    ("yesterday", "invalid duration 'yesterday'"),
    ("-1h", "invalid duration '-1h'"),
])
def test_bad_older_than(site, run_cli, value, message):
    result = run_cli("gc", "--older-than", value)
    assert result.exit_code == 2
    assert len(result.errors) == 1 and message in result.errors[0]


# ------------------------------------------------------------- generation folders


def overwritten(site, run_cli, upload_files, mm_ometiff_uint8):
    """DATASET_ID overwritten: its rows name a generation folder g<token> inside raw_frames/<ID>."""
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff_uint8)}])
    assert run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(),
                   "--overwrite").exit_code == 0
    with site.connect() as db:
        return db.dataset(DATASET_ID).storage_dir


def test_generation_folders_no_row_names_are_garbage_and_the_committed_one_never(
        uploaded_ometiff, site, run_cli, upload_files, mm_ometiff_uint8):
    """After an overwrite, the dataset folder itself is a generation no row names; what a
    killed attempt left in a g<token> folder of its own is garbage too, a marker as well."""
    live = overwritten(site, run_cli, upload_files, mm_ometiff_uint8)
    assert live.startswith(f"raw_frames/{DATASET_ID}/g")
    keys = [f"raw_frames/{DATASET_ID}/im_c000_z000_t000_p000.png",          # the old generation's
            f"raw_frames/{DATASET_ID}/g0123456789ab/im_c000_z000_t000_p000.png",  # a killed attempt
            f"raw_frames/{ORPHAN_ID}/.attempt-0123456789ab"]                 # a killed first upload
    for key in keys:
        put(site.storage_root, key)
    age(site.storage_root)
    result = run_cli("gc", "--yes", "--older-than", "1h")
    assert result.exit_code == 0, result.stderr
    assert gc_keys(result) == sorted(keys)
    verified = run_cli("verify", DATASET_ID)
    assert verified.exit_code == 0 and "24 object(s) checked" in verified.stdout


def test_a_fresh_generation_folder_is_skipped_while_an_old_one_beside_it_is_judged(
        uploaded_ometiff, site, run_cli):
    """Every attempt writes its own folder: one in progress is skipped, one killed long ago
    beside it is garbage, whatever the dataset folder's own age."""
    old = put(site.storage_root, f"raw_frames/{DATASET_ID}/g00000000000a/im_c000_z000_t000_p000.png")
    age(site.storage_root)
    running = put(site.storage_root,
                  f"raw_frames/{DATASET_ID}/g00000000000b/im_c000_z000_t000_p000.png")
    with upload_running(site, DATASET_ID):
        result = run_cli("gc", "--yes", "--older-than", "1h")
    assert gc_keys(result) == [str(old.relative_to(site.storage_root))]
    assert "skipped 1 folder(s), 29 B, written to less than 1h ago" in result.stderr
    assert running.exists()
    assert run_cli("verify", DATASET_ID).exit_code == 0
