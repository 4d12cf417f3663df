"""Bad input costs little: selections are checked against the recorded dimensions before
anything is sized from them, and the YAML/JSON files a user names are read only when they
are regular files of bounded size, nesting and alias expansion (issue 14, rows 8-10).

Each refusal is one ``Error:`` line naming the file (or the range and the dataset's extent),
a non-zero exit and nothing changed, within seconds and a bounded amount of memory.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest

import imagingdb
from imagingdb.errors import NotFoundError

#: what a refusal may allocate: far less than listing a billion indexes would
MEMORY_BOUND = 20 * 2**20


# ------------------------------------------------------------------ selections


@pytest.mark.parametrize("args, message", [
    (["-z", "0-999999999"], "has no slice index 3 (of the range 0-999999999 asked for); "
                            "it has: 0-2"),
    (["-t", "1-999999999999"], "has no time index 2 (of the range 1-999999999999 asked for)"),
    (["-z", "0,1", "-z", "5-999999999"], "has no slice index 5 (of the range 5-999999999"),
    (["-p", "1", "-p", "0-999999999,1"], "has no position index 2 (of the range 0-999999999"),
])
def test_download_of_a_huge_range_is_refused_at_once(uploaded_ometiff, site, run_cli, tmp_path,
                                                     args, message):
    before = site.snapshot()
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = run_cli("download", "--id", uploaded_ometiff, "--dest", tmp_path / "dest", *args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 2, result.stderr
    assert len(result.errors) == 1 and message in result.errors[0], result.stderr
    assert time.monotonic() - started < 10 and peak < MEMORY_BOUND
    assert not (tmp_path / "dest").exists()
    assert site.snapshot() == before


@pytest.mark.parametrize("selection", [
    {"slices": range(10**9)}, {"times": [0, range(10**12)]}, {"positions": range(0, 10**9, 7)},
])
def test_read_of_a_huge_range_is_refused_at_once(uploaded_ometiff, selection):
    tracemalloc.start()
    try:
        with imagingdb.connect() as db, pytest.raises(NotFoundError, match="of the range .* asked for"):
            db.dataset(uploaded_ometiff).read(**selection)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND


def test_ranges_inside_the_dataset_still_select(uploaded_ometiff):
    with imagingdb.connect() as db:
        array = db.dataset(uploaded_ometiff).read(slices=range(1, 3), times=[1, range(0, 2)])
    assert array.shape[:4] == (2, 2, 2, 2)  # P, T (1 then 0), C, Z (1, 2)


def test_download_with_a_range_inside_the_dataset(uploaded_ometiff, run_cli, tmp_path):
    result = run_cli("download", "--id", uploaded_ometiff, "--dest", tmp_path / "dest",
                     "-z", "1-2", "-t", "1", "-p", "0-1", "-c", "DAPI", "--no-metadata")
    assert result.exit_code == 0, result.stderr
    assert len(list((tmp_path / "dest" / uploaded_ometiff).glob("*.png"))) == 4
