"""gc after interrupted uploads: orphans of uploads not running any more are found whatever
their age (the upload claims tell running from dead), those of running ones are skipped, and
the report is one summary in human units, with what was skipped and why said once. verify
and gc draw a progress bar with percentage and bytes on a terminal."""

import contextlib
import os
import re
import signal

import pytest

from imagingdb.claims import claim_datasets
from tests.conftest import DATASET_ID
from tests.test_crash_recovery import run_upload
from tests.test_interrupt import run_on_a_terminal

RUNNING_IDS = [f"ML-2005-05-23-10-00-00-00{n:02d}" for n in (11, 12, 13)]
DEAD_ID = "ML-2005-05-23-10-00-00-0020"

only_sqlite = pytest.mark.parametrize("site", ["sqlite"], indirect=True)


def orphan(site, dataset_id, name="im_c000_z000_t000_p000.png", size=1500):
    """An object written just now by an upload of ``dataset_id`` that never registered."""
    path = site.storage_root / "raw_frames" / dataset_id / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return f"raw_frames/{dataset_id}/{name}"


@contextlib.contextmanager
def uploads_running(site, dataset_ids):
    """Uploads of ``dataset_ids`` in progress, as gc sees them: their claims are held."""
    with site.connect() as db, claim_datasets(db.site, dataset_ids):
        yield


def listed_keys(result):
    return sorted(line.split("\t")[0] for line in result.stdout.splitlines())


@only_sqlite
def test_a_killed_upload_leaves_orphans_gc_finds_at_once_in_one_summary(
        site, run_cli, upload_files, mm_ometiff):
    """kill -9 of a two-row upload in its second row: the first dataset is in, the second's
    frames sit in storage, minutes old. gc's default grace (24 h) does not hide them: no
    process holds the claim on that ID any more."""
    second = "ML-2005-05-23-10-00-00-0002"
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)},
                                 {"dataset_id": second, "file_name": str(mm_ometiff)}])
    killed = run_upload(csv_path, upload_files.frames_config(), kill_at="object-stored:30")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    orphans = sorted(key for key in site.objects() if f"raw_frames/{second}/" in key)
    assert orphans  # the marker and the frames of the second row stored so far

    result = run_cli("gc")
    assert result.exit_code == 0, result.stderr
    assert listed_keys(result) == orphans
    size = sum(len(site.objects()[key]) for key in orphans)
    (summary,) = result.stderr.splitlines()  # one line: no "skipped" line per dataset
    assert re.fullmatch(
        rf"{len(orphans)} unreferenced object\(s\), [\d.]+ kB, in 1 folder\(s\), left by 1 "
        r"interrupted upload\(s\) not running any more; nothing deleted \(dry run\): run "
        r"imagingdb gc --yes to delete them", summary), summary
    assert f"{size / 1000:.1f} kB" in summary

    report = run_cli("gc", "--format", "json").json()
    assert [o["key"] for o in report["objects"]] == orphans
    assert all(o["interrupted_upload"] and o["folder"] == f"raw_frames/{second}"
               for o in report["objects"])
    assert report["interrupted_upload_folders"] == [f"raw_frames/{second}"]
    assert report["skipped_recent_folders"] == []

    deleted = run_cli("gc", "--yes")
    assert deleted.exit_code == 0 and listed_keys(deleted) == orphans
    assert deleted.stderr.startswith(f"deleted {len(orphans)} unreferenced object(s), ")
    assert run_cli("verify", "--all").exit_code == 0
    assert run_cli("gc", "--older-than", "0").stdout == ""


def test_running_uploads_are_skipped_and_said_once_the_dead_ones_judged(site, run_cli):
    for dataset_id in RUNNING_IDS:
        orphan(site, dataset_id)
        orphan(site, dataset_id, "im_c001_z000_t000_p000.png")
    dead = orphan(site, DEAD_ID, size=2500)
    before = site.snapshot()

    with uploads_running(site, RUNNING_IDS):
        result = run_cli("gc", "--yes")
        report = run_cli("gc", "--format", "json").json()
    assert result.exit_code == 0, result.stderr
    assert listed_keys(result) == [dead]
    assert result.stderr.splitlines() == [
        "deleted 1 unreferenced object(s), 2.5 kB, in 1 folder(s), left by 1 interrupted "
        "upload(s) not running any more",
        "skipped 3 folder(s), 9.0 kB, written to less than 24h ago by an upload (or a delete "
        "or rename) still running: run gc again once it is over (--format json lists them)"]
    assert set(before["objects"]) - set(site.objects()) == {dead}

    skipped = report["skipped_recent_folders"]
    assert [(s["folder"], s["objects"], s["bytes"], s["reason"]) for s in skipped] == [
        (f"raw_frames/{dataset_id}", 2, 3000, "running") for dataset_id in RUNNING_IDS]
    assert report["objects"] == []

    # the uploads are over (killed: their claims went with them): their orphans are garbage
    after = run_cli("gc")
    assert len(listed_keys(after)) == 6
    assert "skipped" not in after.stderr


def test_the_claim_gc_takes_keeps_an_upload_of_that_id_out_meanwhile(site, run_cli):
    """gc judges a recent folder under its ID's claim: an upload starting then is refused
    (having written nothing) rather than racing the delete."""
    orphan(site, DEAD_ID)
    seen = []

    def upload_tries_to_start(obj):
        with site.connect() as db:
            try:
                with claim_datasets(db.site, [DEAD_ID]):
                    seen.append("claimed")
            except Exception as exc:  # noqa: BLE001 - what the upload would get
                seen.append(type(exc).__name__)

    with site.connect() as db:
        db.gc(delete=True, on_garbage=upload_tries_to_start)
    assert seen == ["ClaimTakenError"]


@only_sqlite
def test_verify_and_gc_draw_progress_with_percentage_and_bytes_on_a_terminal(
        site, uploaded_ometiff):
    env = {**os.environ, "COLUMNS": "150", "LINES": "24"}
    code, shown = run_on_a_terminal(["verify", "--all"], env)
    assert code == 0, shown
    bars = re.findall(r"Verifying " + re.escape(DATASET_ID) +
                      r" \[[#-]{20}\] \d+/24 \d+% [\d.]+ [kKM]?B of [\d.]+ [kKM]?B", shown)
    assert bars, shown
    assert shown.rstrip().endswith("all match their checksums"), shown

    orphan(site, DEAD_ID)
    code, shown = run_on_a_terminal(["gc"], env)
    assert code == 0, shown
    assert re.search(r"Checking storage \[[#-]{20}\] \d+/25 \d+% [\d.]+ [kKM]?B of "
                     r"[\d.]+ [kKM]?B", shown), shown
    assert f"raw_frames/{DEAD_ID}/im_c000_z000_t000_p000.png\t1500" in shown


class RecordedProgress:
    """What a progress bar is told: the totals at the start, the advances, the end."""

    def __init__(self):
        self.started, self.objects, self.bytes, self.finished = [], 0, 0, []

    def start(self, label, total, total_bytes, unit="frame"):
        self.started.append((label, total, total_bytes, unit))

    def advance(self, objects, nbytes):
        self.objects += objects
        self.bytes += nbytes

    def finish(self, ok=True):
        self.finished.append(ok)

    def note(self, message):
        pass


@only_sqlite
def test_the_bars_are_told_the_totals_they_reach_so_percentage_and_eta_are_right(
        site, uploaded_ometiff):
    with site.connect() as db:
        stored = db.dataset(uploaded_ometiff).info.stored_bytes
        verifying = RecordedProgress()
        assert all(check.ok for check in db.verify(progress=verifying))
        orphan(site, DEAD_ID, size=1000)
        checking = RecordedProgress()
        db.gc(progress=checking)
    assert verifying.started == [(DATASET_ID, 24, stored, "object")]
    assert (verifying.objects, verifying.bytes, verifying.finished) == (24, stored, [True])
    (label, objects, nbytes, unit), = checking.started
    assert (label, unit, checking.finished) == ("storage", "object", [True])
    assert (checking.objects, checking.bytes) == (objects, nbytes)
    assert objects >= 25 and nbytes >= stored + 1000
