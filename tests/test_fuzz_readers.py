"""Mutated TIFFs fed to every splitter end in an Error: naming the file, never a traceback or hang.

A bounded, deterministic run here (a few seconds); `make fuzz` runs the same
fuzzer longer (FUZZ_COUNT, FUZZ_SEED). See tests/fuzz_readers.py.
"""

import random
import subprocess
import sys

import pytest

from tests.conftest import DATASET_ID
from tests.fuzz_readers import damage, make_seeds, run_case, splitters

CASES = 150


def test_every_splitter_survives_mutated_files():
    """In its own process, whose address space is limited: a reader that believes a
    corrupt size fails here as a MemoryError, not by exhausting the machine."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzz_readers", "--count", str(CASES), "--seed", "0",
         "--timeout", "10", "--memory-mb", "2048"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{CASES} case(s) x {len(splitters())} splitter(s), seed 0: 0 failure(s)" in done.stdout


def test_the_fuzzer_catches_a_reader_that_crashes(tmp_path):
    """The oracle itself: an exception other than ImagingDBError is a failure."""

    class CrashingSplitter:
        def open(self, source, options):
            raise KeyError("MicroManagerMetadata")

    source = tmp_path / "case-00001.ome.tif"
    source.write_bytes(b"II*\x00")
    problem = run_case(CrashingSplitter, source, "case-00001", timeout=5)
    assert problem.startswith("KeyError: 'MicroManagerMetadata'")


def test_the_fuzzer_catches_a_reader_that_hangs(tmp_path):
    class HangingSplitter:
        def open(self, source, options):
            while True:
                pass

    problem = run_case(HangingSplitter, tmp_path, "x", timeout=0.2)
    assert problem == "hang: no answer within 0.2 s"


@pytest.mark.parametrize("case", range(6))
def test_mutated_files_through_the_cli_are_one_error_line(site, run_cli, upload_files, tmp_path,
                                                          case):
    """The whole path a user takes: nothing registered, nothing stored, one Error: line."""
    seeds = make_seeds(tmp_path / "seeds")
    rng = random.Random(f"cli:{case}")
    data, mutation = damage(rng.choice(seeds), rng)
    source = tmp_path / f"damaged-{case}.ome.tif"
    source.write_bytes(data)
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    if result.exit_code == 0:  # the damage missed everything the reader relies on
        assert run_cli("verify", DATASET_ID).exit_code == 0
        return
    assert result.exit_code == 2, (mutation, result.stderr)
    assert len(result.errors) == 1 and source.name in result.errors[0], (mutation, result.stderr)
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
    assert site.snapshot() == before
