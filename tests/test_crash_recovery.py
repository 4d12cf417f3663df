"""SIGKILL a real `imagingdb upload` at each stage: never half-registered, a rerun completes it.

The kill comes from the test seam in imagingdb/faults.py
(IMAGINGDB_TEST_KILL_AT=<stage>[:<n>]): the process sends itself SIGKILL at
that point, as a power cut or the OOM killer would, with no chance to clean up.
"""

import os
import signal
import subprocess
import sys

import pytest

from imagingdb.faults import KILL_AT_ENV
from tests.conftest import DATASET_ID
from tests.helpers import trial_random, trials

FRAMES = 24  # the mm_ometiff fixture: 2 channels x 3 slices x 2 times x 2 positions


def run_upload(csv_path, config, *extra, kill_at=None):
    """`python -m imagingdb upload ...` as a real process, in this test's environment."""
    env = {**os.environ}
    env.pop(KILL_AT_ENV, None)
    if kill_at:
        env[KILL_AT_ENV] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "imagingdb", "upload", "--csv", str(csv_path), "--config",
         str(config), "--workers", "2", *extra],
        env=env, capture_output=True, text=True, timeout=120)


def rerun_upload(run_cli, csv_path, config, *extra):
    """The same command again, undisturbed (in-process: it is the same code, and faster)."""
    return run_cli("upload", "--csv", csv_path, "--config", config, "--workers", "2", *extra)


def dataset_objects(site, dataset_id=DATASET_ID):
    return {key for key in site.snapshot()["objects"] if dataset_id in key}


def registered_frames(site, dataset_id=DATASET_ID):
    """None if the dataset is absent, else how many frame rows it has."""
    with site.connect() as db:
        if not db.query(project_id="ML"):
            return None
        return len(db.dataset(dataset_id).frames(with_metadata=False))


def assert_complete_and_verified(site, run_cli, frames=FRAMES):
    assert registered_frames(site) == frames
    verified = run_cli("verify", DATASET_ID)
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    assert f"{frames} object(s) checked" in verified.stdout


@pytest.fixture
def frames_upload(upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    return csv_path, upload_files.frames_config()


@pytest.fixture
def file_upload(upload_files, mm_ometiff):
    source = mm_ometiff / "sample_MMStack_Pos0.ome.tif"
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    return csv_path, upload_files.file_config()


@pytest.mark.parametrize("kill_at", [
    "folder-chosen",      # the dataset folder is taken (its marker stored), no frame yet
    "object-written:4",   # the third frame (after the marker) is in a temporary file
    "object-stored:5",    # five frames in place, nineteen to go
    "before-register",    # every frame stored and flushed, no row written
    "before-commit",      # every row inserted, the transaction still open
])
def test_upload_killed_before_its_commit_leaves_the_dataset_absent(
        site, run_cli, frames_upload, kill_at):
    before = site.snapshot()
    killed = run_upload(*frames_upload, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    after = site.snapshot()
    assert {t: after[t] for t in after if t != "objects"} == \
        {t: before[t] for t in before if t != "objects"}  # not one row
    leftovers = set(after["objects"]) - set(before["objects"])
    assert all(key.startswith(f"raw_frames/{DATASET_ID}/") for key in leftovers)
    gc = run_cli("gc", "--older-than", "0")
    assert {line.split("\t")[0] for line in gc.stdout.splitlines()} == leftovers

    rerun = rerun_upload(run_cli, *frames_upload)
    assert rerun.exit_code == 0, rerun.stderr
    assert_complete_and_verified(site, run_cli)
    assert run_cli("gc", "--older-than", "0").stdout == ""  # the rerun left nothing behind


def test_upload_killed_after_its_commit_is_complete(site, run_cli, frames_upload):
    killed = run_upload(*frames_upload, kill_at="after-commit")
    assert killed.returncode == -signal.SIGKILL
    assert_complete_and_verified(site, run_cli)

    rerun = rerun_upload(run_cli, *frames_upload)
    assert rerun.exit_code == 0, rerun.stderr  # it is in: the rerun says so and is done
    assert f"{DATASET_ID}: already uploaded with the same content (24 frames); skipped" in \
        rerun.stderr.splitlines()
    assert_complete_and_verified(site, run_cli)


def storage_dir(site, dataset_id=DATASET_ID):
    with site.connect() as db:
        return db.dataset(dataset_id).storage_dir


@pytest.mark.parametrize("kill_at", [
    "object-written:2",   # the file (after the marker) is in a temporary file
    "before-commit",
])
def test_file_upload_killed_leaves_it_absent_and_a_rerun_completes_it(
        site, run_cli, file_upload, kill_at):
    killed = run_upload(*file_upload, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL
    assert registered_frames(site) is None
    assert dataset_objects(site)  # a temporary file, or the whole file: gc's job

    rerun = rerun_upload(run_cli, *file_upload)
    assert rerun.exit_code == 0, rerun.stderr
    verified = run_cli("verify", DATASET_ID)
    assert verified.exit_code == 0, verified.stdout
    # The killed attempt had the dataset folder; the rerun wrote a generation of its own.
    assert storage_dir(site).startswith(f"raw_files/{DATASET_ID}/g")
    assert dataset_objects(site) == {f"{storage_dir(site)}/sample_MMStack_Pos0.ome.tif"}


@pytest.fixture
def overwrite_upload(site, run_cli, upload_files, frames_upload, mm_ometiff_uint8):
    """DATASET_ID registered with 24 uint16 frames; the CSV to replace it with 12 uint8 ones."""
    assert rerun_upload(run_cli, *frames_upload).exit_code == 0
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff_uint8),
                                  "positions": "0"}])
    return csv_path, upload_files.frames_config()


def test_overwrite_killed_midway_leaves_the_old_dataset_intact_and_a_rerun_completes_it(
        site, run_cli, overwrite_upload):
    before = site.snapshot()
    killed = run_upload(*overwrite_upload, "--overwrite", kill_at="object-stored:5")
    assert killed.returncode == -signal.SIGKILL
    after = site.snapshot()
    assert {t: after[t] for t in after if t != "objects"} == \
        {t: before[t] for t in before if t != "objects"}
    # The killed run wrote only into a generation of its own: every old object is as it was.
    assert {k: v for k, v in after["objects"].items() if k in before["objects"]} == \
        before["objects"]
    old = run_cli("verify", DATASET_ID, "--format", "json")
    assert old.exit_code == 0, old.stdout
    [leftover] = old.json()["datasets"][0]["leftovers"]
    assert leftover["folder"].startswith(f"raw_frames/{DATASET_ID}/g")

    rerun = rerun_upload(run_cli, *overwrite_upload, "--overwrite")
    assert rerun.exit_code == 0, rerun.stderr
    assert_complete_and_verified(site, run_cli, frames=12)
    assert run_cli("gc", "--older-than", "0").stdout == ""  # the killed run's objects are gone


def test_overwrite_killed_after_its_commit_leaves_only_the_old_generation(
        site, run_cli, overwrite_upload):
    killed = run_upload(*overwrite_upload, "--overwrite", kill_at="after-commit")
    assert killed.returncode == -signal.SIGKILL
    assert registered_frames(site) == 12
    assert_complete_and_verified(site, run_cli, frames=12)  # the old objects are no damage
    report = run_cli("verify", DATASET_ID, "--format", "json").json()["datasets"][0]
    assert report["leftovers"] == [{"folder": f"raw_frames/{DATASET_ID}", "objects": 24}]

    gc = run_cli("gc", "--yes", "--older-than", "0")
    assert len(gc.stdout.splitlines()) == 24
    assert_complete_and_verified(site, run_cli, frames=12)
    assert dataset_objects(site) == {
        key for key in site.snapshot()["objects"] if key.startswith(f"{storage_dir(site)}/")}


def test_rerun_of_a_csv_killed_in_its_second_row_finishes_the_second_dataset(
        site, run_cli, upload_files, mm_ometiff):
    """Rows are independent: the first was registered, the rerun finds it there with the same
    content, skips it, and does the rest: it exits 0 with every row in."""
    second = "ML-2005-05-23-10-00-00-0002"
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)},
                                 {"dataset_id": second, "file_name": str(mm_ometiff)}])
    config = upload_files.frames_config()
    killed = run_upload(csv_path, config, kill_at=f"object-stored:{FRAMES + 10}")
    assert killed.returncode == -signal.SIGKILL
    with site.connect() as db:
        assert [d.dataset_id for d in db.query()] == [DATASET_ID]

    rerun = rerun_upload(run_cli, csv_path, config, "--format", "json")
    assert rerun.exit_code == 0, rerun.stderr
    assert rerun.errors == []
    assert (f"{DATASET_ID}: already uploaded with the same content (24 frames); skipped"
            in rerun.stderr.splitlines())
    assert "1 of 2 dataset(s) uploaded, 1 already there (skipped)" in rerun.stderr.splitlines()
    assert [row["status"] for row in rerun.json()] == ["skipped", "uploaded"]
    verified = run_cli("verify", "--all")
    assert verified.exit_code == 0, verified.stdout
    assert verified.stdout.splitlines() == [f"{DATASET_ID}  ok  (24 object(s) checked)",
                                            f"{second}  ok  (24 object(s) checked)"]


# ------------------------------------------------------------- random kill trials
#
# Each trial kills a real upload at a stage and a count drawn at random (the seed is
# printed): the site is then always one whole dataset or none, verify is clean, a rerun
# completes it, and gc leaves only the committed generation. IMAGINGDB_TRIALS=20 runs
# more by hand.

def random_kill(rng, stages):
    """``<stage>:<n>`` for one of ``stages`` ({stage: (lowest n, highest n)})."""
    stage = rng.choice(sorted(stages))
    low, high = stages[stage]
    return f"{stage}:{rng.randint(low, high)}"


#: the stages an overwrite of 24 frames by 12 passes, with the counts each can be killed at
OVERWRITE_STAGES = {"folder-chosen": (1, 1), "object-written": (1, 12),
                    "object-stored": (1, 12), "before-register": (1, 1),
                    "before-commit": (1, 1), "after-commit": (1, 1),
                    "object-deleted": (1, 24)}
#: the same for a first upload of 24 frames (its marker is the first object written)
FIRST_UPLOAD_STAGES = {"folder-chosen": (1, 1), "object-written": (1, 25),
                       "object-stored": (1, 24), "before-register": (1, 1),
                       "before-commit": (1, 1), "after-commit": (1, 1)}
COMMITTED = ("after-commit", "object-deleted")


def assert_only_the_committed_generation_is_left(site, run_cli, frames):
    assert run_cli("gc", "--yes", "--older-than", "0").exit_code == 0
    assert_complete_and_verified(site, run_cli, frames=frames)
    folder = storage_dir(site)
    assert dataset_objects(site) == {k for k in dataset_objects(site) if k.startswith(f"{folder}/")}
    assert len(dataset_objects(site)) == frames


@pytest.mark.parametrize("trial", trials(default=2))
def test_overwrite_killed_at_random_leaves_the_old_or_the_new_dataset_whole(
        site, run_cli, overwrite_upload, trial):
    kill_at = random_kill(trial_random("overwrite kill", trial), OVERWRITE_STAGES)
    print(f"kill at {kill_at}")
    killed = run_upload(*overwrite_upload, "--overwrite", kill_at=kill_at)
    assert killed.returncode in (-signal.SIGKILL, 0), (kill_at, killed.stderr)
    committed = killed.returncode == 0 or kill_at.startswith(COMMITTED)
    # Never a mix: the old 24 frames or the new 12, every object of it intact.
    assert_complete_and_verified(site, run_cli, frames=12 if committed else 24)

    rerun = rerun_upload(run_cli, *overwrite_upload, "--overwrite")
    assert rerun.exit_code == 0, (kill_at, rerun.stderr)
    assert_only_the_committed_generation_is_left(site, run_cli, frames=12)


@pytest.mark.parametrize("trial", trials(default=2))
def test_upload_killed_at_random_releases_its_claim_and_the_next_upload_completes(
        site, run_cli, frames_upload, trial):
    """The claim dies with its process: the next upload of the ID gets in at once, writes
    keys of its own (none of the killed attempt's), and completes the dataset."""
    kill_at = random_kill(trial_random("first upload kill", trial), FIRST_UPLOAD_STAGES)
    print(f"kill at {kill_at}")
    killed = run_upload(*frames_upload, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr)
    left_by_the_killed = {key: data for key, data in site.objects().items()
                          if DATASET_ID in key}
    assert registered_frames(site) == (FRAMES if kill_at.startswith(COMMITTED) else None)

    rerun = rerun_upload(run_cli, *frames_upload)
    assert rerun.exit_code == 0, (kill_at, rerun.stderr)
    if kill_at.startswith(COMMITTED):
        assert "already uploaded with the same content" in rerun.stderr, rerun.stderr
    else:
        written = {key for key in dataset_objects(site) if key.startswith(f"{storage_dir(site)}/")}
        if left_by_the_killed:  # the rerun chose a generation of its own
            assert not written & set(left_by_the_killed)
    assert_only_the_committed_generation_is_left(site, run_cli, frames=FRAMES)
