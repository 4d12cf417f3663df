"""imagingdb delete: a dry run by default, all or nothing with --yes, children refused unless
told, an interrupted delete finished by its rerun or by gc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import sqlalchemy as sa

from imagingdb.faults import KILL_AT_ENV
from tests.conftest import DATASET_ID, EXISTING_ID

PARENT = "ML-2005-05-23-10-00-00-0010"
CHILD = "ML-2005-05-23-10-00-00-0011"
GRANDCHILD = "ML-2005-05-23-10-00-00-0012"
UNKNOWN = "ML-2005-05-23-10-00-00-0099"
FRAMES = 24


def upload_family(run_cli, upload_files, tmp_path):
    """PARENT <- CHILD <- GRANDCHILD, each a small file kept whole."""
    rows = []
    for dataset_id, parent in ((PARENT, ""), (CHILD, PARENT), (GRANDCHILD, CHILD)):
        source = tmp_path / f"{dataset_id}.txt"
        source.write_text(f"notes of {dataset_id}")
        rows.append({"dataset_id": dataset_id, "file_name": str(source),
                     "parent_dataset_id": parent})
    result = run_cli("upload", "--csv", upload_files.csv(rows), "--config",
                     upload_files.file_config())
    assert result.exit_code == 0, result.stderr


def registered(site):
    with site.connect() as db:
        return [info.dataset_id for info in db.query()]


def parent_of(site, dataset_id):
    with site.connect() as db:
        return db.dataset(dataset_id).summary().get("parent_dataset_id")


def objects_of(site, dataset_id):
    return {key: data for key, data in site.objects().items() if f"/{dataset_id}/" in f"/{key}"}


def pending_rows(site):
    from imagingdb import db as dbq

    with site.connect() as db, db.site.connection() as conn:
        return conn.execute(sa.select(dbq.pending_removal)).all()


def assert_nothing_left_behind(run_cli):
    gc = run_cli("gc", "--older-than", "0")
    assert gc.exit_code == 0, gc.stderr
    assert gc.stdout == ""


# ------------------------------------------------------------------------ dry run


def test_delete_is_a_dry_run_by_default_and_changes_nothing(site, uploaded_ometiff, run_cli):
    before = site.snapshot()
    result = run_cli("delete", DATASET_ID)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{DATASET_ID}: would delete rows 1 data_set, 1 frames_global, {FRAMES} frames; "
        f"{FRAMES} object(s), {sum(len(v) for v in before['objects'].values())} bytes in "
        f"raw_frames/{DATASET_ID}/"]
    assert "dry run" in result.stderr and "run with --yes to delete" in result.stderr
    assert site.snapshot() == before


def test_delete_dry_run_json_lists_rows_objects_and_bytes(site, uploaded_ometiff, run_cli):
    report = run_cli("delete", DATASET_ID, "--format", "json").json()
    [dataset] = report["datasets"]
    assert report["dry_run"] is True
    assert dataset["rows"] == {"data_set": 1, "frames_global": 1, "file_global": 0,
                               "frames": FRAMES}
    assert dataset["objects"] == FRAMES
    assert dataset["bytes"] == sum(len(data) for data in objects_of(site, DATASET_ID).values())
    assert dataset["folders"] == [f"raw_frames/{DATASET_ID}"]
    assert dataset["children"] == []


# ------------------------------------------------------------------------ --yes


def test_delete_yes_removes_the_rows_and_every_object(site, uploaded_ometiff, run_cli):
    result = run_cli("delete", DATASET_ID, "--yes")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{DATASET_ID}: deleted rows 1 data_set, 1 frames_global")
    assert f"deleted 1 dataset(s), {FRAMES} object(s)" in result.stderr
    assert registered(site) == []
    assert objects_of(site, DATASET_ID) == {}
    assert pending_rows(site) == []
    assert_nothing_left_behind(run_cli)
    again = run_cli("delete", DATASET_ID, "--yes")
    assert again.exit_code == 2
    assert again.errors == [f"Error: dataset {DATASET_ID} not found"]


def test_delete_of_several_ids_takes_all_of_them(site, run_cli, upload_files, tmp_path):
    upload_family(run_cli, upload_files, tmp_path)
    result = run_cli("delete", GRANDCHILD, CHILD, "--yes")
    assert result.exit_code == 0, result.stderr
    assert registered(site) == [PARENT]
    assert set(site.objects()) == {f"raw_files/{PARENT}/{PARENT}.txt"}


def test_delete_of_a_dataset_with_leftovers_of_killed_uploads_removes_them_too(
        site, uploaded_ometiff, run_cli):
    from imagingdb.storage.local import LocalStorage

    leftover = f"raw_frames/{DATASET_ID}/g0123456789ab/im_c000_z000_t000_p000.png"
    LocalStorage(site.storage_root).put_bytes(leftover, b"a killed upload's frame")
    report = run_cli("delete", DATASET_ID, "--format", "json").json()
    assert report["datasets"][0]["folders"] == [f"raw_frames/{DATASET_ID}",
                                                f"raw_frames/{DATASET_ID}/g0123456789ab"]
    assert report["datasets"][0]["objects"] == FRAMES + 1
    assert run_cli("delete", DATASET_ID, "--yes").exit_code == 0
    assert objects_of(site, DATASET_ID) == {}
    assert_nothing_left_behind(run_cli)


def test_delete_on_postgres_and_s3(pg_s3_site, uploaded_ometiff_s3, run_cli):
    assert len(objects_of(pg_s3_site, DATASET_ID)) == FRAMES
    dry = run_cli("delete", DATASET_ID, "--format", "json").json()
    assert dry["datasets"][0]["objects"] == FRAMES
    result = run_cli("delete", DATASET_ID, "--yes")
    assert result.exit_code == 0, result.stderr
    assert registered(pg_s3_site) == []
    assert objects_of(pg_s3_site, DATASET_ID) == {}
    assert pending_rows(pg_s3_site) == []
    assert_nothing_left_behind(run_cli)


@pytest.fixture
def uploaded_ometiff_s3(pg_s3_site, run_cli, upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert result.exit_code == 0, result.stderr
    return DATASET_ID


def test_the_api_delete_is_a_dry_run_unless_told(site, uploaded_ometiff):
    with site.connect() as db:
        report = db.delete([DATASET_ID])
        assert report.dry_run and report.to_json()["datasets"][0]["objects"] == FRAMES
        assert [info.dataset_id for info in db.query()] == [DATASET_ID]
        done = db.delete(DATASET_ID, dry_run=False)
        assert not done.dry_run and db.query() == []
        assert [r.removed for r in done.removals] == [True]


# --------------------------------------------------------------------- bad input


@pytest.mark.parametrize("args, message", [
    ([UNKNOWN], f"Error: dataset {UNKNOWN} not found"),
    ([EXISTING_ID, UNKNOWN], f"Error: dataset {UNKNOWN} not found"),  # all or nothing
    (["ML-2005-13-01-00-00-00-0001"], "Error: invalid dataset ID 'ML-2005-13-01-00-00-00-0001'"),
    (["../raw_frames"], "Error: invalid dataset ID '../raw_frames'"),
    ([EXISTING_ID, "--with-children", "--orphan-children"],
     "Error: --with-children and --orphan-children exclude each other"),
])
def test_bad_delete_input_is_one_error_line_and_changes_nothing(
        site, snapshot_with_one_dataset, run_cli, args, message):
    before = snapshot_with_one_dataset
    result = run_cli("delete", *args, "--yes")
    assert result.exit_code == 2
    assert len(result.errors) == 1 and result.errors[0].startswith(message), result.stderr
    assert site.snapshot() == before


def test_deleting_a_parent_is_refused_naming_its_children_and_the_options(
        site, run_cli, upload_files, tmp_path):
    upload_family(run_cli, upload_files, tmp_path)
    before = site.snapshot()
    result = run_cli("delete", PARENT, "--yes")
    assert result.exit_code == 2
    assert result.errors == [
        f"Error: dataset {PARENT} is the parent of {CHILD}: delete them too with "
        "--with-children, or keep them without a parent with --orphan-children; nothing was "
        "deleted"]
    assert site.snapshot() == before


def test_with_children_deletes_the_whole_family_in_one_go(site, run_cli, upload_files, tmp_path):
    upload_family(run_cli, upload_files, tmp_path)
    dry = run_cli("delete", PARENT, "--with-children", "--format", "json").json()
    assert [(d["dataset_id"], d["child_of"]) for d in dry["datasets"]] == [
        (PARENT, None), (CHILD, PARENT), (GRANDCHILD, CHILD)]
    result = run_cli("delete", PARENT, "--with-children", "--yes")
    assert result.exit_code == 0, result.stderr
    assert registered(site) == []
    assert site.objects() == {}


def test_orphan_children_keeps_them_without_a_parent(site, run_cli, upload_files, tmp_path):
    upload_family(run_cli, upload_files, tmp_path)
    result = run_cli("delete", PARENT, "--orphan-children", "--yes")
    assert result.exit_code == 0, result.stderr
    assert f"{CHILD}: kept, without a parent" in result.stdout
    assert registered(site) == [CHILD, GRANDCHILD]
    assert parent_of(site, CHILD) is None
    assert parent_of(site, GRANDCHILD) == CHILD
    assert run_cli("verify", "--all").exit_code == 0


# ------------------------------------------------------------ pending removals


def test_a_pending_removal_never_takes_objects_a_registered_dataset_uses(
        site, uploaded_ometiff, run_cli):
    """A pending folder that an upload of the same ID registered again keeps its objects."""
    from imagingdb import db as dbq

    with site.connect() as db, db.site.connection() as conn:
        dbq.insert_pending_removal(conn, DATASET_ID, f"raw_frames/{DATASET_ID}", "delete")
    objects = objects_of(site, DATASET_ID)
    gc = run_cli("gc", "--yes")
    assert gc.exit_code == 0, gc.stderr
    assert f"removed 0 object(s), 0 bytes in raw_frames/{DATASET_ID}/" in gc.stderr
    assert pending_rows(site) == []
    assert objects_of(site, DATASET_ID) == objects
    assert run_cli("verify", DATASET_ID).exit_code == 0


def test_objects_that_cannot_be_removed_after_the_commit_are_a_warning_and_stay_pending(
        site, uploaded_ometiff, run_cli, monkeypatch):
    from imagingdb.errors import WorkError
    from imagingdb.storage.local import LocalStorage

    def refuse(self, keys):
        raise WorkError("cannot delete raw_frames/...: Permission denied")

    with monkeypatch.context() as patched:
        patched.setattr(LocalStorage, "delete", refuse)
        result = run_cli("delete", DATASET_ID, "--yes")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith(f"Warning: left {FRAMES} object(s)")
    assert "1 folder(s) left for later" in result.stderr
    assert registered(site) == [] and pending_rows(site)

    rerun = run_cli("delete", DATASET_ID, "--yes")
    assert rerun.exit_code == 0, rerun.stderr
    assert objects_of(site, DATASET_ID) == {} and pending_rows(site) == []


# ------------------------------------------------------------------- kill -9


def run_delete(*args, kill_at):
    env = {**os.environ, KILL_AT_ENV: kill_at}
    return subprocess.run([sys.executable, "-m", "imagingdb", "delete", *args, "--yes"],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kill_at", ["removal-committed", "object-deleted:5"])
def test_delete_killed_after_its_commit_is_finished_by_its_rerun(
        site, uploaded_ometiff, run_cli, kill_at):
    killed = run_delete(DATASET_ID, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert registered(site) == []  # the rows went in the commit: no half-dataset
    assert [row.dataset_serial for row in pending_rows(site)] == [DATASET_ID]
    assert objects_of(site, DATASET_ID)

    dry = run_cli("delete", DATASET_ID)
    assert dry.exit_code == 0
    assert dry.stdout.splitlines() == [f"{DATASET_ID}: its rows were already deleted; would "
                                       "finish removing its objects"]
    rerun = run_cli("delete", DATASET_ID, "--yes")
    assert rerun.exit_code == 0, rerun.stderr
    assert "its rows were already deleted; finished removing its objects" in rerun.stdout
    assert objects_of(site, DATASET_ID) == {}
    assert pending_rows(site) == []
    assert_nothing_left_behind(run_cli)


def test_a_rerun_naming_more_ids_finishes_the_interrupted_one_and_deletes_the_others(
        site, snapshot_with_one_dataset, uploaded_ometiff, run_cli):
    assert run_delete(DATASET_ID, kill_at="removal-committed").returncode == -signal.SIGKILL
    rerun = run_cli("delete", DATASET_ID, EXISTING_ID, "--yes")
    assert rerun.exit_code == 0, rerun.stderr
    assert f"deleted 2 dataset(s), {FRAMES + 1} object(s)" in rerun.stderr
    assert registered(site) == []
    assert site.objects() == {}
    assert pending_rows(site) == []
    assert_nothing_left_behind(run_cli)


def test_delete_killed_after_its_commit_is_finished_by_gc_whatever_its_age(
        site, uploaded_ometiff, run_cli):
    from imagingdb.claims import claim_datasets

    assert run_delete(DATASET_ID, kill_at="removal-committed").returncode == -signal.SIGKILL
    with site.connect() as db, claim_datasets(db.site, [DATASET_ID]):  # an upload of it runs
        held = run_cli("gc", "--yes")
    assert held.exit_code == 0, held.stderr
    assert (f"left raw_frames/{DATASET_ID}/ (left by the delete of {DATASET_ID}) for later: "
            "another process holds the claim") in held.stderr
    assert len(objects_of(site, DATASET_ID)) == FRAMES

    listed = run_cli("gc")  # the default 24 h grace: the pending removal is listed all the same
    assert len(listed.stdout.splitlines()) == FRAMES
    assert f"would remove {FRAMES} object(s)" in listed.stderr
    [pending] = run_cli("gc", "--format", "json").json()["pending_removals"]
    assert pending == {"dataset_id": DATASET_ID, "folder": f"raw_frames/{DATASET_ID}",
                       "reason": "delete", "objects": FRAMES, "bytes": pending["bytes"],
                       "removed": False, "skipped": None}
    assert pending_rows(site)

    gc = run_cli("gc", "--yes")
    assert gc.exit_code == 0, gc.stderr
    assert f"removed {FRAMES} object(s)" in gc.stderr
    assert objects_of(site, DATASET_ID) == {}
    assert pending_rows(site) == []


def test_delete_killed_on_postgres_and_s3_is_finished_by_its_rerun(
        pg_s3_site, uploaded_ometiff_s3, run_cli):
    killed = run_delete(DATASET_ID, kill_at="removal-committed")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert registered(pg_s3_site) == []
    assert len(objects_of(pg_s3_site, DATASET_ID)) == FRAMES
    rerun = run_cli("delete", DATASET_ID, "--yes")
    assert rerun.exit_code == 0, rerun.stderr
    assert objects_of(pg_s3_site, DATASET_ID) == {}
    assert_nothing_left_behind(run_cli)


# ------------------------------------------------- original rows, claims held


ORIGINAL = "ML-2018-04-05-00-00-00-0001"


def add_original_dataset(site, storage_dir):
    """A frames dataset as the original imagingDB registered it (storage_dir recorded, NULL or
    empty), the database then upgraded."""
    from imagingdb import db as dbq
    from imagingdb.config import find_site_config
    from tests.original_imagingdb import OriginalImagingDB

    engine = dbq.create_engine(find_site_config().database)
    OriginalImagingDB(engine, site.storage_root).add_frames(ORIGINAL, seed=3,
                                                            storage_dir=storage_dir)
    engine.dispose()


@pytest.mark.parametrize("storage_dir", ["default", None])
def test_delete_of_an_original_imagingdb_dataset(site, run_cli, storage_dir):
    add_original_dataset(site, storage_dir)
    assert run_cli("db", "upgrade").exit_code == 0
    assert objects_of(site, ORIGINAL)
    result = run_cli("delete", ORIGINAL, "--yes")
    assert result.exit_code == 0, result.stderr
    assert registered(site) == []
    assert objects_of(site, ORIGINAL) == {}
    assert_nothing_left_behind(run_cli)


def test_delete_of_a_dataset_being_uploaded_is_refused_and_changes_nothing(
        site, uploaded_ometiff, run_cli):
    from imagingdb.claims import claim_datasets

    before = site.snapshot()
    with site.connect() as db, claim_datasets(db.site, [DATASET_ID]):  # as an upload holds it
        result = run_cli("delete", DATASET_ID, "--yes")
    assert result.exit_code == 1
    assert result.errors == [
        f"Error: dataset {DATASET_ID} is being uploaded, deleted or renamed by another process "
        "right now; nothing was deleted: try again once it is done"]
    assert site.snapshot() == before


def test_an_overwrite_finished_while_the_delete_got_ready_is_deleted_whole(
        site, uploaded_ometiff, run_cli, upload_files, mm_ometiff_uint8, monkeypatch):
    """The folders are measured under the claims: an overwrite that moved the dataset to a
    new generation folder between the delete's first look and its claims leaves nothing."""
    from imagingdb import remove

    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff_uint8)}])
    claimed = remove._claimed
    overwritten = []

    def overwrite_first(*args, **kwargs):
        if not overwritten:
            done = run_cli("upload", "--csv", csv_path, "--config",
                           upload_files.frames_config(), "--overwrite")
            assert done.exit_code == 0, done.stderr
            overwritten.append(True)
        return claimed(*args, **kwargs)

    monkeypatch.setattr(remove, "_claimed", overwrite_first)
    result = run_cli("delete", DATASET_ID, "--yes")
    assert result.exit_code == 0, result.stderr
    assert overwritten and registered(site) == []
    assert objects_of(site, DATASET_ID) == {}
    assert pending_rows(site) == []
    assert_nothing_left_behind(run_cli)
