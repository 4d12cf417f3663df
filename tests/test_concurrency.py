"""Several uploads at once, as real processes: different datasets all go in; the same
dataset ID is registered exactly once, and the winner's objects stay intact."""

import contextlib
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from imagingdb import db as dbq
from imagingdb import upload
from imagingdb.claims import Claim
from tests.conftest import DATASET_ID, Site
from tests.helpers import imagingdb_command, source_frames

# Runs the real CLI in a subprocess that stops after storing its objects, just before it
# registers the dataset, until the test lets it go: a deterministic "upload in progress".
PAUSED_UPLOAD = """
import sys, time, pathlib
from imagingdb import upload
ready, go, args = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
register = upload.RowUpload._register
def register_when_told(self, *a, **k):
    ready.touch()
    while not go.exists():
        time.sleep(0.05)
    return register(self, *a, **k)
upload.RowUpload._register = register_when_told
from imagingdb.entry import main
main(args)
"""


def start_upload(upload_files, source, dataset_id, cwd):
    csv_path = upload_files.csv([{"dataset_id": dataset_id, "file_name": str(source)}])
    return subprocess.Popen(
        [*imagingdb_command(), "upload", "--csv", str(csv_path), "--config",
         str(upload_files.frames_config())],
        cwd=cwd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=120):
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def assert_registered_once_and_intact(site, dataset_id, source_folder):
    """One data_set row; every frame in storage, checksums right, pixels those of the source."""
    state = site.snapshot()
    assert len([row for row in state["data_set"] if row[1] == dataset_id]) == 1
    with site.connect() as db:
        array = db.dataset(dataset_id).read(verify=True)
    for (c, z, t, p), pixels in source_frames(source_folder).items():
        np.testing.assert_array_equal(array[p, t, c, z], pixels)
    stored = [k for k in state["objects"] if k.startswith(f"raw_frames/{dataset_id}/")]
    assert len(stored) == len(source_frames(source_folder))


def test_different_datasets_uploaded_at_once_all_succeed(site, upload_files, mm_ometiff,
                                                         tmp_path):
    ids = [f"ML-2005-05-23-10-00-00-000{n}" for n in range(1, 4)]
    processes = [start_upload(upload_files, mm_ometiff, dataset_id, tmp_path) for dataset_id in ids]
    outcomes = [finish(process) for process in processes]
    assert [code for code, _ in outcomes] == [0, 0, 0], [err for _, err in outcomes]
    with site.connect() as db:
        assert [info.dataset_id for info in db.query()] == ids
    for dataset_id in ids:
        assert_registered_once_and_intact(site, dataset_id, mm_ometiff)


def test_same_id_at_the_same_moment_is_registered_once(site, upload_files, mm_ometiff,
                                                       mm_ometiff_uint8, tmp_path):
    processes = [start_upload(upload_files, source, DATASET_ID, tmp_path)
                 for source in (mm_ometiff, mm_ometiff_uint8)]
    outcomes = [finish(process) for process in processes]
    codes = [code for code, _ in outcomes]
    assert sorted(codes)[0] == 0 and sorted(codes)[1] in (1, 2), outcomes
    winner = (mm_ometiff, mm_ometiff_uint8)[codes.index(0)]
    loser_errors = error_lines(outcomes[1 - codes.index(0)][1])
    assert len(loser_errors) == 1
    assert ("is being uploaded by another process right now" in loser_errors[0]
            or "already exists with other content" in loser_errors[0]), loser_errors
    assert_registered_once_and_intact(site, DATASET_ID, winner)


def test_second_upload_of_an_id_in_progress_fails_at_once_and_writes_nothing(
        site, upload_files, mm_ometiff, mm_ometiff_uint8, tmp_path):
    ready, go = tmp_path / "ready", tmp_path / "go"
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    first = subprocess.Popen(
        [sys.executable, "-c", PAUSED_UPLOAD, str(ready), str(go), "upload", "--csv",
         str(csv_path), "--config", str(upload_files.frames_config())],
        cwd=tmp_path, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first upload never got ready"
            time.sleep(0.05)
        in_progress = site.objects()
        code, stderr = finish(start_upload(upload_files, mm_ometiff_uint8, DATASET_ID, tmp_path))
        assert code == 1
        assert len(error_lines(stderr)) == 1
        assert error_lines(stderr)[0].endswith(
            f"dataset {DATASET_ID} is being uploaded by another process right now; nothing of "
            "this upload was written")
        assert site.objects() == in_progress  # the second upload wrote nothing
    finally:
        go.touch()
    code, stderr = finish(first)
    assert code == 0, stderr
    assert_registered_once_and_intact(site, DATASET_ID, mm_ometiff)


@pytest.fixture
def pg_site(pg_url, tmp_path, monkeypatch):
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": pg_url, "password_env": "IMAGINGDB_TEST_PG_PASSWORD"},
        "storage": {"backend": "local", "root": str(tmp_path / "pg-storage")},
    }))
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(config))
    return Site("postgres", tmp_path / "pg-storage", config)


def test_unique_dataset_id_is_the_last_word_when_uploads_race_without_claims(
        pg_site, upload_files, mm_ometiff, mm_ometiff_uint8, monkeypatch):
    """Between the loser's last check and its insert, the winner commits: the loser's insert
    hits the unique index, it reports that, and it removes none of the winner's objects."""
    monkeypatch.setattr(upload, "claim_dataset",
                        lambda site, dataset_id: contextlib.nullcontext(Claim(dataset_id)))
    # Nor the case-folded ID the registering transaction holds: the winner, run inside the
    # loser's transaction, would wait for it forever. What is left is the unique index.
    monkeypatch.setattr(upload.locks, "lock_id_case_insensitively", lambda *args: None)
    race = {"armed": False, "run": False, "winner": None}
    find_dataset, register = dbq.find_dataset, upload.RowUpload._register

    def arm_once(self, *args, **kwargs):
        if not race["run"]:
            race["armed"] = True
        return register(self, *args, **kwargs)

    def find_then_lose_the_race(conn, serial):
        row = find_dataset(conn, serial)
        if race["armed"]:
            race["armed"], race["run"] = False, True
            with pg_site.connect() as other:
                race["winner"] = other.upload(
                    upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}]),
                    upload_files.frames_config())
        return row

    monkeypatch.setattr(upload.RowUpload, "_register", arm_once)
    monkeypatch.setattr(dbq, "find_dataset", find_then_lose_the_race)
    with pg_site.connect() as db:
        loser = db.upload(upload_files.csv([{"dataset_id": DATASET_ID,
                                             "file_name": str(mm_ometiff_uint8)}]),
                          upload_files.frames_config())
    assert race["winner"].exit_code == 0
    assert loser.exit_code == 1
    assert loser.failed[0].error.endswith(
        f"dataset {DATASET_ID} was registered by another upload at the same time; nothing of "
        "this upload was registered")
    assert_registered_once_and_intact(pg_site, DATASET_ID, mm_ometiff)
