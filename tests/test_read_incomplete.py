"""read() of an acquisition stopped early: missing frames take fill_value, the rest is exact."""

import numpy as np
import pytest

from tests.helpers import source_frames

DATASET_ID = "ML-2005-05-23-10-00-00-0003"
DROPPED = {(1, 2, 1, 0), (0, 0, 1, 0)}  # (channel, slice, time, position)


@pytest.fixture
def incomplete(tmp_path, run_cli, upload_files):
    from imagingdb.testing import write_mm_ometiff

    folder = tmp_path / "stopped"
    write_mm_ometiff(folder, "stopped", channels=("DAPI", "GFP"), slices=3, times=2,
                     positions=1, height=16, width=24, drop=DROPPED, seed=3)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(folder)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert result.exit_code == 0, result.stderr
    return folder


def test_missing_frames_take_the_fill_value(site, incomplete):
    from imagingdb.errors import MissingFramesWarning

    with site.connect() as database:
        with pytest.warns(MissingFramesWarning, match="2 of the 12 frames"):
            array = database.dataset(DATASET_ID).read(fill_value=7)
    expected = source_frames(incomplete)
    for c, z, t, p in np.ndindex(2, 3, 2, 1):
        if (c, z, t, p) in DROPPED:
            assert (array[p, t, c, z] == 7).all()
        else:
            np.testing.assert_array_equal(array[p, t, c, z], expected[(c, z, t, p)])


def test_a_complete_selection_of_an_incomplete_dataset_is_exact(site, incomplete):
    with site.connect() as database:
        array = database.dataset(DATASET_ID).read(times=[0], fill_value=7)
    expected = source_frames(incomplete)
    for c, z in np.ndindex(2, 3):
        np.testing.assert_array_equal(array[0, 0, c, z], expected[(c, z, 0, 0)])


def test_a_fill_value_the_pixels_cannot_hold_is_refused_before_any_read(site, incomplete):
    from imagingdb.errors import InputError

    with site.connect() as database:
        with pytest.raises(InputError, match="fill_value 70000 does not fit the dataset's uint16"):
            database.dataset(DATASET_ID).read(fill_value=70000)


# ------------------------------------------- the intended grid, a time point never reached

STOPPED_ID = "ML-2005-05-23-10-00-00-0004"
NEVER_REACHED = {(c, z, 3, 0) for c in range(2) for z in range(2)}  # t=3: stopped before it


@pytest.fixture
def stopped_early(tmp_path, run_cli, upload_files):
    """4 time points intended, the last never reached and one frame of t=1 lost: 11 of 16."""
    from imagingdb.testing import write_mm_ometiff

    folder = tmp_path / "stopped-early"
    write_mm_ometiff(folder, "stopped", channels=("DAPI", "GFP"), slices=2, times=4,
                     positions=1, height=16, width=24, drop=NEVER_REACHED | {(1, 0, 1, 0)}, seed=4)
    csv_path = upload_files.csv([{"dataset_id": STOPPED_ID, "file_name": str(folder)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert result.exit_code == 0, result.stderr
    return folder, result


def test_the_upload_says_how_many_frames_are_missing(site, stopped_early):
    _, result = stopped_early
    assert (f"Warning: {STOPPED_ID}: 11 of the 16 frames of its dimensions (C2 Z2 T4 P1) are "
            "in the source; 5 missing, read as the fill value (imagingdb show lists them)"
            in result.stderr.splitlines()), result.stderr


def test_read_has_the_intended_grid_and_fills_what_was_never_reached(site, stopped_early):
    from imagingdb.errors import MissingFramesWarning

    folder, _ = stopped_early
    expected = source_frames(folder)
    with site.connect() as database:
        dataset = database.dataset(STOPPED_ID)
        assert [(i.channel, i.slice, i.time, i.position) for i in dataset.missing_frames()] == [
            (1, 0, 1, 0), (0, 0, 3, 0), (0, 1, 3, 0), (1, 0, 3, 0), (1, 1, 3, 0)]
        with pytest.warns(MissingFramesWarning, match="5 of the 16 frames"):
            array = dataset.read(fill_value=65535)
        assert array.shape == (1, 4, 2, 2, 16, 24)
        assert (array[0, 3] == 65535).all()
        for (c, z, t, p), pixels in expected.items():
            np.testing.assert_array_equal(array[p, t, c, z], pixels)
        with pytest.warns(MissingFramesWarning):
            last = dataset.read(times=[3], fill_value=9)
        assert last.shape == (1, 1, 2, 2, 16, 24) and (last == 9).all()
        with pytest.warns(MissingFramesWarning):
            lazy = dataset.to_dask(fill_value=65535)
            assert lazy.shape == array.shape
            np.testing.assert_array_equal(lazy.compute(), array)


def test_an_index_beyond_the_intended_grid_is_still_refused(site, stopped_early):
    from imagingdb.errors import NotFoundError

    with site.connect() as database:
        with pytest.raises(NotFoundError, match="has no time index 4; it has: 0-3"):
            database.dataset(STOPPED_ID).read(times=[4])


def test_download_of_a_time_point_never_reached_lists_it(site, stopped_early, run_cli, tmp_path):
    import json

    result = run_cli("download", "--id", STOPPED_ID, "--dest", tmp_path / "out", "-t", "3")
    assert result.exit_code == 0, result.stderr
    assert any(line.startswith("Warning:") and "4 of the 4 frames" in line
               for line in result.stderr.splitlines()), result.stderr
    folder = tmp_path / "out" / STOPPED_ID
    meta = json.loads((folder / "global_metadata.json").read_text())
    assert len(meta["missing_frames"]) == 5
