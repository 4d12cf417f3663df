"""Ctrl-C: a real process on a pseudo-terminal gets SIGINT midway; it says in one line what
was kept and that a rerun finishes the job, exits 130, and the rerun does finish it."""

import os
import pty
import select
import subprocess
import sys

from imagingdb.faults import KILL_AT_ENV
from tests.conftest import DATASET_ID

SECOND_ID = "ML-2005-05-23-10-00-00-0002"
FRAMES = 24  # the mm_ometiff fixture


def run_on_a_terminal(args, env) -> tuple[int, str]:
    """``python -m imagingdb ARGS`` with stdout and stderr on a pseudo-terminal (so the
    progress bar draws); returns the exit code and what the terminal showed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "imagingdb", *args], env=env,
                               stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            process.kill()
            raise AssertionError(f"no output for 60 s: {shown!r}")
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return process.wait(timeout=60), shown.decode("utf-8", "replace")


def last_line(shown: str) -> str:
    """The last line a terminal shows: after the last newline and carriage return, the
    progress bar's erase-line sequence applied."""
    line = shown.replace("\r\n", "\n").rstrip("\n").split("\n")[-1].split("\r")[-1]
    return line.split("\x1b[K")[-1]


def test_ctrl_c_in_an_upload_says_what_was_kept_and_a_rerun_finishes(site, run_cli,
                                                                     upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)},
                                 {"dataset_id": SECOND_ID, "file_name": str(mm_ometiff)}])
    config = upload_files.frames_config(duplicates="ignore")
    env = {**os.environ, KILL_AT_ENV: f"object-stored:{FRAMES + 6}:INT"}  # in the second row
    code, shown = run_on_a_terminal(
        ["upload", "--csv", str(csv_path), "--config", str(config), "--workers", "2"], env)
    assert code == 130, shown
    assert last_line(shown) == (
        "Error: interrupted: 1 dataset(s) of the CSV are in; nothing of the row being uploaded "
        "was registered; run the same command again to finish (rows already in are skipped)")
    assert "Traceback" not in shown
    with site.connect() as db:
        assert [info.dataset_id for info in db.query()] == [DATASET_ID]

    rerun = run_cli("upload", "--csv", csv_path, "--config", config)
    assert rerun.exit_code == 0, rerun.stderr
    assert rerun.stderr.splitlines()[-1] == "1 of 2 dataset(s) uploaded, 1 already there (skipped)"
    verified = run_cli("verify", "--all")
    assert verified.exit_code == 0, verified.stdout


def test_ctrl_c_before_any_dataset_is_in_gives_the_general_line(site, upload_files,
                                                                mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    env = {**os.environ, KILL_AT_ENV: "object-stored:3:INT"}
    code, shown = run_on_a_terminal(["upload", "--csv", str(csv_path), "--config",
                                     str(upload_files.frames_config())], env)
    assert code == 130, shown
    assert last_line(shown) == ("Error: interrupted: nothing half-done was kept (what finished "
                                "before stays); run the same command again to finish")
    with site.connect() as db:
        assert db.query() == []
