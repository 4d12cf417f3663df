"""imagingdb rename OLD NEW: objects copied and checked, rows switched in one transaction,
old objects removed last; bad input changes nothing; a killed rename converges on rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest

from imagingdb.faults import KILL_AT_ENV
from imagingdb.remove import rename_folder
from tests.conftest import DATASET_ID, EXISTING_ID
from tests.helpers import trial_random, trials
from tests.test_delete import (
    CHILD,
    FRAMES,
    PARENT,
    assert_nothing_left_behind,
    objects_of,
    parent_of,
    pending_rows,
    registered,
    upload_family,
)

OLD = DATASET_ID
NEW = "ML-2006-06-24-11-30-00-0002"


def pixels(site, dataset_id):
    with site.connect() as db:
        return db.dataset(dataset_id).read()


def assert_renamed(site, run_cli, frames=FRAMES, old=OLD, new=NEW):
    assert registered(site) == [new]
    with site.connect() as db:
        dataset = db.dataset(new)
        assert dataset.summary()["date_time"] in (datetime(2006, 6, 24, 11, 30),
                                                  "2006-06-24T11:30:00")
        assert dataset.storage_dir == rename_folder(old, new, dataset.is_frames)
    assert objects_of(site, old) == {}
    assert len(objects_of(site, new)) == frames
    assert pending_rows(site) == []
    verified = run_cli("verify", new)
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    assert_nothing_left_behind(run_cli)


def test_rename_moves_the_rows_and_the_objects(site, uploaded_ometiff, run_cli):
    before = pixels(site, OLD)
    result = run_cli("rename", OLD, NEW)
    assert result.exit_code == 0, result.stderr
    assert f"renamed {OLD} to {NEW}: {FRAMES} object(s)" in result.stderr
    assert_renamed(site, run_cli)
    assert np.array_equal(pixels(site, NEW), before)
    again = run_cli("rename", OLD, NEW)  # a rerun of a finished rename: nothing to do
    assert again.exit_code == 0, again.stderr
    assert f"{OLD} was already renamed to {NEW}" in again.stderr


def test_rename_of_an_ome_zarr_dataset_rewrites_the_id_its_documents_name(
        site, run_cli, upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": OLD, "file_name": str(mm_ometiff)}])
    config = upload_files.frames_config(frame_format="ome-zarr")
    assert run_cli("upload", "--csv", csv_path, "--config", config).exit_code == 0
    documents = len(objects_of(site, OLD)) - FRAMES
    assert run_cli("rename", OLD, NEW).exit_code == 0
    assert_renamed(site, run_cli, frames=FRAMES + documents)
    folder = rename_folder(OLD, NEW, True)
    plate = json.loads(site.objects()[f"{folder}/zarr.json"])
    assert plate["attributes"]["ome"]["plate"]["name"] == NEW
    assert not any(OLD.encode() in data for data in objects_of(site, NEW).values())


def test_rename_of_a_file_dataset(site, snapshot_with_one_dataset, run_cli):
    assert run_cli("rename", EXISTING_ID, NEW).exit_code == 0
    assert_renamed(site, run_cli, frames=1, old=EXISTING_ID)


def test_children_keep_their_renamed_parent(site, run_cli, upload_files, tmp_path):
    upload_family(run_cli, upload_files, tmp_path)
    assert run_cli("rename", PARENT, NEW).exit_code == 0
    assert parent_of(site, CHILD) == NEW


def test_rename_on_postgres_and_s3(pg_s3_site, run_cli, upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": OLD, "file_name": str(mm_ometiff)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.frames_config()).exit_code == 0
    result = run_cli("rename", OLD, NEW, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["copied"] == FRAMES
    assert_renamed(pg_s3_site, run_cli)


def test_the_api_rename_reports_what_it_did(site, uploaded_ometiff):
    with site.connect() as db:
        report = db.rename(OLD, NEW)
        assert report.to_json()["objects"] == FRAMES and not report.already_renamed
        assert db.dataset(NEW).nbr_frames == FRAMES


# --------------------------------------------------------------------- bad input


OTHER = "ML-2005-05-23-10-00-00-0003"


@pytest.mark.parametrize("old, new, message", [
    ("ML-2005-05-23-10-00-00-0099", NEW, "Error: dataset ML-2005-05-23-10-00-00-0099 not found"),
    (EXISTING_ID, "ML-2006-02-30-00-00-00-0001",
     "Error: invalid dataset ID 'ML-2006-02-30-00-00-00-0001'"),
    (EXISTING_ID, "../../etc", "Error: invalid dataset ID '../../etc'"),
    (EXISTING_ID, OTHER, f"Error: dataset {OTHER} already exists"),
    (EXISTING_ID, OTHER.lower(), f"Error: dataset {OTHER} already exists and differs from "
                                 f"{OTHER.lower()} only by case"),
    (EXISTING_ID, EXISTING_ID, f"Error: {EXISTING_ID} and {EXISTING_ID} are the same ID"),
    (EXISTING_ID, EXISTING_ID.lower(), f"Error: {EXISTING_ID} and {EXISTING_ID.lower()} differ "
                                       "only by case"),
])
def test_bad_rename_input_is_one_error_line_and_changes_nothing(
        site, snapshot_with_one_dataset, run_cli, upload_files, tmp_path, old, new, message):
    notes = tmp_path / "other.txt"
    notes.write_text("other")
    assert run_cli("upload", "--csv", upload_files.csv([{"dataset_id": OTHER, "file_name": str(notes)}]),
                   "--config", upload_files.file_config()).exit_code == 0
    before = site.snapshot()  # the fixture's dataset, and OTHER
    result = run_cli("rename", old, new)
    assert result.exit_code == 2, result.stderr
    assert len(result.errors) == 1 and result.errors[0].startswith(message), result.stderr
    assert site.snapshot() == before


# ------------------------------------------------------------------- kill -9


def run_rename(kill_at):
    env = {**os.environ, KILL_AT_ENV: kill_at}
    return subprocess.run([sys.executable, "-m", "imagingdb", "rename", OLD, NEW, "--workers", "2"],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kill_at", ["object-copied:5", "object-written:3"])
def test_rename_killed_before_its_switch_leaves_old_whole_and_a_rerun_completes_it(
        site, uploaded_ometiff, run_cli, kill_at):
    before = {key: data for key, data in site.objects().items()}
    killed = run_rename(kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert registered(site) == [OLD]
    assert {k: v for k, v in site.objects().items() if k in before} == before
    verified = run_cli("verify", OLD)
    assert verified.exit_code == 0, verified.stdout

    rerun = run_cli("rename", OLD, NEW)
    assert rerun.exit_code == 0, rerun.stderr
    assert_renamed(site, run_cli)


def test_rename_killed_after_its_switch_is_finished_by_its_rerun(site, uploaded_ometiff, run_cli):
    killed = run_rename("removal-committed")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert registered(site) == [NEW]
    assert len(objects_of(site, OLD)) == FRAMES  # not removed yet: pending
    assert run_cli("verify", NEW).exit_code == 0

    rerun = run_cli("rename", OLD, NEW)
    assert rerun.exit_code == 0, rerun.stderr
    assert f"{OLD} was already renamed to {NEW}" in rerun.stderr
    assert_renamed(site, run_cli)


def test_rename_killed_on_postgres_and_s3_converges(pg_s3_site, run_cli, upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": OLD, "file_name": str(mm_ometiff)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.frames_config()).exit_code == 0
    assert run_rename("object-copied:7").returncode == -signal.SIGKILL
    assert registered(pg_s3_site) == [OLD]
    assert run_rename("removal-committed").returncode == -signal.SIGKILL
    assert registered(pg_s3_site) == [NEW]
    gc = run_cli("gc", "--yes")  # finishes the removal whatever the grace
    assert gc.exit_code == 0, gc.stderr
    assert_renamed(pg_s3_site, run_cli)


def test_rename_of_an_original_imagingdb_dataset(site, run_cli):
    """Its rows record no storage_dir (NULL): the objects are in raw_frames/<ID>."""
    from tests.test_delete import ORIGINAL, add_original_dataset

    add_original_dataset(site, None)
    assert run_cli("db", "upgrade").exit_code == 0
    frames = len(objects_of(site, ORIGINAL))
    result = run_cli("rename", ORIGINAL, NEW)
    assert result.exit_code == 0, result.stderr
    assert_renamed(site, run_cli, frames=frames, old=ORIGINAL)


#: the stages a rename of 24 frames passes, with the counts each can be killed at
RENAME_STAGES = {"object-written": (1, FRAMES), "object-copied": (1, FRAMES),
                 "removal-committed": (1, 1), "object-deleted": (1, FRAMES)}


@pytest.mark.parametrize("trial", trials(default=1))
def test_rename_killed_at_random_is_old_or_new_whole_and_a_rerun_converges(
        site, uploaded_ometiff, run_cli, trial):
    rng = trial_random("rename kill", trial)
    stage = rng.choice(sorted(RENAME_STAGES))
    kill_at = f"{stage}:{rng.randint(*RENAME_STAGES[stage])}"
    print(f"kill at {kill_at}")
    killed = run_rename(kill_at)
    assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr)
    [now] = registered(site)  # one of the two IDs, whole
    assert now == (NEW if stage in ("removal-committed", "object-deleted") else OLD)
    assert run_cli("verify", now).exit_code == 0

    rerun = run_cli("rename", OLD, NEW)
    assert rerun.exit_code == 0, (kill_at, rerun.stderr)
    assert_renamed(site, run_cli)
