"""Incomplete acquisitions: stored as they are, gaps recorded, filled on read, listed on download."""

import json
import warnings

import numpy as np
import pytest

from imagingdb.acquisition import FrameIndex
from imagingdb.errors import MissingFramesWarning
from imagingdb.layout import frame_name
from imagingdb.testing import write_imagej_hyperstack, write_mm_ometiff, write_mm_tif_folder
from tests.conftest import DATASET_ID
from tests.helpers import source_frames

# Stopped early: the last time point lost its last slice in both channels at position 1,
# and one channel of the first frame never came.
DROPPED = {(1, 2, 1, 1), (0, 2, 1, 1), (1, 0, 0, 0)}


@pytest.fixture
def stopped_early(tmp_path):
    folder = tmp_path / "stopped"
    write_mm_ometiff(folder, "stopped", channels=("DAPI", "GFP"), slices=3, times=2, positions=2,
                     height=16, width=16, drop=DROPPED, seed=9)
    return folder


def upload(run_cli, upload_files, source, frames_format="ome_tiff"):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    config = upload_files.config(upload_type="frames", frames_format=frames_format)
    result = run_cli("upload", "--csv", csv_path, "--config", config)
    assert result.exit_code == 0, result.stderr
    return result


def test_dimensions_and_missing_frames_are_recorded(site, run_cli, upload_files, stopped_early):
    upload(run_cli, upload_files, stopped_early)
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        dims = ds.dims
        assert (dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints, dims.nbr_positions) == (
            2, 3, 2, 2)
        assert ds.nbr_frames == 24 - len(DROPPED)
        assert set(ds.missing_frames()) == {FrameIndex(*index) for index in DROPPED}
        assert ds.summary()["missing_frames"] == len(DROPPED)


def test_frames_never_land_at_the_wrong_index_and_gaps_are_filled(site, run_cli, upload_files,
                                                                 stopped_early):
    upload(run_cli, upload_files, stopped_early)
    expected = source_frames(stopped_early)
    with site.connect() as db:
        with pytest.warns(MissingFramesWarning, match=r"3 of the 24 frames .* fill_value=65535"):
            array = db.dataset(DATASET_ID).read(fill_value=65535)
    for c in range(2):
        for z in range(3):
            for t in range(2):
                for p in range(2):
                    if (c, z, t, p) in DROPPED:
                        assert (array[p, t, c, z] == 65535).all()
                    else:
                        np.testing.assert_array_equal(array[p, t, c, z], expected[c, z, t, p])


def test_reading_only_recorded_frames_gives_no_warning(run_cli, upload_files, stopped_early):
    upload(run_cli, upload_files, stopped_early)
    import imagingdb

    with imagingdb.connect() as db, warnings.catch_warnings():
        warnings.simplefilter("error")
        array = db.dataset(DATASET_ID).read(times=[0], positions=[1])
    assert array.shape == (1, 1, 2, 3, 16, 16)


def test_download_lists_the_missing_frames(run_cli, upload_files, stopped_early, tmp_path):
    upload(run_cli, upload_files, stopped_early)
    result = run_cli("download", "--id", DATASET_ID, "--dest", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    folder = tmp_path / "out" / DATASET_ID
    summary = json.loads((folder / "global_metadata.json").read_text())
    assert sorted(summary["missing_frames"]) == sorted(
        frame_name(FrameIndex(*index)) for index in DROPPED)
    stored = {p.name for p in folder.glob("im_*.png")}
    assert len(stored) == 24 - len(DROPPED)
    assert not stored & set(summary["missing_frames"])


def test_a_position_never_reached_is_missing_whole(run_cli, upload_files, tmp_path):
    folder = tmp_path / "one-position"
    lost = {(c, z, t, 1) for c in range(2) for z in range(2) for t in range(1)}
    write_mm_ometiff(folder, "lost", channels=("DAPI", "GFP"), slices=2, times=1, positions=2,
                     height=8, width=8, drop=lost)
    assert len(list(folder.glob("*.ome.tif"))) == 1  # Micro-Manager never opened Pos1's file
    upload(run_cli, upload_files, folder)
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert ds.dims.nbr_positions == 2
        assert set(ds.missing_frames()) == {FrameIndex(*index) for index in lost}


def test_tif_id_stack_stopped_early(run_cli, upload_files, tmp_path):
    path = write_imagej_hyperstack(tmp_path / "early.tif", channels=2, slices=2, times=3,
                                   height=8, width=8, pages=9)
    result = upload(run_cli, upload_files, path, frames_format="tif_id")
    assert (f"{path} declares 12 pages but holds 9, its page chain ending cleanly (an "
            "acquisition stopped early)") in result.stderr
    assert "from (channel 1, slice 0, time 2, position 0) on" in result.stderr
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert ds.dims.nbr_timepoints == 3
        # pages 9, 10, 11 of channel-fastest order: (c1, z0, t2), (c0, z1, t2), (c1, z1, t2)
        assert sorted(ds.missing_frames()) == sorted(
            [FrameIndex(1, 0, 2, 0), FrameIndex(0, 1, 2, 0), FrameIndex(1, 1, 2, 0)])
        with pytest.warns(MissingFramesWarning):
            array = ds.read(times=[2])
    assert (array[0, 0, 1, 0] == 0).all() and (array[0, 0, 0, 1] == 0).all()
    assert array[0, 0, 0, 0].any()


def test_tif_folder_stopped_early_keeps_the_summary_dimensions(run_cli, upload_files, tmp_path):
    folder = tmp_path / "Pos0"
    write_mm_tif_folder(folder, channels=("DAPI", "GFP"), slices=2, times=3, height=8, width=8,
                        drop={(1, 1, 2), (0, 1, 2)})
    upload(run_cli, upload_files, folder, frames_format="tif_folder")
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert ds.dims.nbr_timepoints == 3 and ds.nbr_frames == 10
        assert sorted(ds.missing_frames()) == [FrameIndex(0, 1, 2, 0), FrameIndex(1, 1, 2, 0)]
