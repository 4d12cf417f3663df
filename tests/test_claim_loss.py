"""A claim that cannot be lost silently.

PostgreSQL forgets an advisory lock when it restarts or drops the session
holding it; an upload that carried on regardless let a second upload of the
same ID in, which then overwrote its objects (issue 14). Now the registering
transaction proves the claim, so the upload that lost it fails with one
``Error:`` line and registers nothing, and the one let in meanwhile writes keys
of its own, which nothing overwrites.

The server here is this module's own: restarting it (``pg_ctl restart -m
immediate``, a crash and reboot) disturbs no other test.
"""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest
import yaml

from imagingdb import faults
from tests.conftest import DATASET_ID, Site
from tests.helpers import source_frames, trial_random, trials
from tests.servers import PG_PASSWORD_ENV, PostgresServer
from tests.test_crash_recovery import FRAMES, run_upload

LOST = (f"lost the claim on dataset {DATASET_ID} while uploading (the database server "
        "restarted or dropped the claim's connection), so another upload of it may have begun; "
        "nothing of this upload was registered: run it again")


@pytest.fixture(scope="module")
def restartable_pg():
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def restart_site(request, restartable_pg, isolated_home, tmp_path, monkeypatch) -> Site:
    """A site on the restartable server, its storage a folder or an S3 bucket."""
    name = f"claims_{uuid.uuid4().hex[:12]}"
    url = restartable_pg.create_database(name)
    monkeypatch.setenv(PG_PASSWORD_ENV, restartable_pg.password)
    database = {"url": url, "password_env": PG_PASSWORD_ENV}
    config = tmp_path / "site.yaml"
    if request.param == "local":
        root, bucket = tmp_path / "storage", None
        storage = {"backend": "local", "root": str(root)}
    else:
        root, bucket = None, request.getfixturevalue("s3_bucket")
        storage = {"backend": "s3", "bucket": bucket.name, "prefix": "imaging",
                   "endpoint_url": bucket.endpoint_url, "region": bucket.region}
    config.write_text(yaml.safe_dump({"database": database, "storage": storage}))
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(config))
    yield Site(f"postgres+{request.param}", root, config, bucket=bucket)
    restartable_pg.drop_database(name)


def restart_after(monkeypatch, server, stored, then=None):
    """Restart the server once ``stored`` frames of the upload are in storage, then run
    ``then`` (another upload, say) before the upload goes on."""
    original, count, lock = faults.checkpoint, [0], threading.Lock()

    def checkpoint(stage):
        original(stage)
        if stage != "object-stored":
            return
        with lock:  # the other frames in flight wait here meanwhile
            count[0] += 1
            if count[0] == stored:
                server.restart()
                if then is not None:
                    then()

    monkeypatch.setattr(faults, "checkpoint", checkpoint)
    return count


def upload(run_cli, upload_files, source):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    return run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(),
                   "--workers", "2")


def assert_lost_its_claim(result):
    assert result.exit_code == 1, result.stderr
    assert len(result.errors) == 1, result.stderr
    assert result.errors[0].startswith("Error: upload")
    assert result.errors[0].endswith(f" row 2 ({DATASET_ID}): {LOST}"), result.errors
    assert "Traceback" not in result.stderr


def assert_registered_once_and_intact(site, source):
    """One data_set row, every frame read back with its checksum checked, the pixels the
    source's, and no other object of the ID in storage."""
    state = site.snapshot()
    assert [row[1] for row in state["data_set"]] == [DATASET_ID]
    with site.connect() as db:
        array = db.dataset(DATASET_ID).read(verify=True)
    frames = source_frames(source)
    for (c, z, t, p), pixels in frames.items():
        np.testing.assert_array_equal(array[p, t, c, z], pixels)
    assert len([key for key in state["objects"] if f"/{DATASET_ID}/" in key]) == len(frames)


def test_upload_that_lost_its_claim_in_a_restart_registers_nothing(
        restart_site, restartable_pg, run_cli, upload_files, mm_ometiff, monkeypatch):
    before = restart_site.snapshot()
    stored = restart_after(monkeypatch, restartable_pg, stored=5)
    result = upload(run_cli, upload_files, mm_ometiff)
    assert stored[0] == FRAMES  # it carried on storing: only the proof can tell
    assert_lost_its_claim(result)
    assert restart_site.snapshot() == before  # no row, and its objects removed


def upload_while_the_first_has_lost_its_claim(upload_files, source, outcome):
    """A second upload of the ID, as a process of its own, run to its end."""
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}],
                                name="second.csv")

    def run():
        outcome["second"] = run_upload(csv_path, upload_files.frames_config())

    return run


def test_upload_let_in_by_a_lost_claim_keeps_its_objects_and_the_first_registers_nothing(
        restart_site, restartable_pg, run_cli, upload_files, mm_ometiff, mm_ometiff_uint8,
        monkeypatch):
    outcome = {}
    second = upload_while_the_first_has_lost_its_claim(upload_files, mm_ometiff_uint8, outcome)
    restart_after(monkeypatch, restartable_pg, stored=5, then=second)
    first = upload(run_cli, upload_files, mm_ometiff)
    assert outcome["second"].returncode == 0, outcome["second"].stderr
    assert_lost_its_claim(first)
    # The second upload's objects are all there, as it stored them; the first's are gone.
    assert_registered_once_and_intact(restart_site, mm_ometiff_uint8)
    assert run_cli("verify", DATASET_ID).exit_code == 0
    assert run_cli("gc", "--older-than", "0").stdout == ""


@pytest.mark.parametrize("trial", trials(default=1))
def test_restart_at_a_random_moment_of_an_upload(
        restart_site, restartable_pg, run_cli, upload_files, mm_ometiff, mm_ometiff_uint8,
        monkeypatch, trial):
    """Bounded random trials (IMAGINGDB_TRIALS for more): the restart comes after a random
    number of frames, with or without a second upload let in meanwhile."""
    rng = trial_random("postgres restart", trial)
    after, second = rng.randint(1, FRAMES), rng.random() < 0.5
    print(f"restart after {after} frame(s), {'with' if second else 'without'} a second upload")
    outcome = {}
    then = upload_while_the_first_has_lost_its_claim(upload_files, mm_ometiff_uint8, outcome) \
        if second else None
    before = restart_site.snapshot()
    restart_after(monkeypatch, restartable_pg, stored=after, then=then)
    first = upload(run_cli, upload_files, mm_ometiff)
    assert_lost_its_claim(first)
    if second:
        assert outcome["second"].returncode == 0, outcome["second"].stderr
        assert_registered_once_and_intact(restart_site, mm_ometiff_uint8)
        assert run_cli("verify", DATASET_ID).exit_code == 0
        assert run_cli("gc", "--older-than", "0").stdout == ""
    else:
        assert restart_site.snapshot() == before


def test_upload_whose_lock_file_was_removed_registers_nothing(
        isolated_home, run_cli, upload_files, mm_ometiff, monkeypatch):
    """SQLite: a claim is a locked file beside the database; removed meanwhile (a clean-up
    script, say), it no longer keeps anyone out, so the upload stops at its proof."""
    import shutil

    site = Site("sqlite", isolated_home / "storage", None)
    before = site.snapshot()
    original, removed, lock = faults.checkpoint, [], threading.Lock()

    def remove_the_claims_folder(stage):
        original(stage)
        with lock:
            if stage == "object-stored" and not removed:
                [folder] = isolated_home.rglob("*.upload-claims")
                shutil.rmtree(folder)
                removed.append(folder)

    monkeypatch.setattr(faults, "checkpoint", remove_the_claims_folder)
    result = upload(run_cli, upload_files, mm_ometiff)
    assert result.exit_code == 1, result.stderr
    assert len(result.errors) == 1
    assert result.errors[0].endswith(
        f"lost the claim on dataset {DATASET_ID} while uploading (its lock file "
        f"{removed[0] / (DATASET_ID + '.lock')} was removed or replaced), so another upload of "
        "it may have begun; nothing of this upload was registered: run it again"), result.errors
    assert site.snapshot() == before
