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
