"""The imagingdb-ndtiff plugin, installed in the environment, end to end through the CLI."""

import json
import struct

import numpy as np
import pytest
from ndtiff_sample import write_ndtiff

import imagingdb
from imagingdb.acquisition import FrameIndex

DATASET_ID = "MM-2024-06-14-09-30-00-0001"


def upload(run_cli, upload_files, source):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    config = upload_files.config(upload_type="frames", frames_format="ndtiff", microscope="scope2")
    return run_cli("upload", "--csv", csv_path, "--config", config)


def test_installed_plugin_is_listed_with_its_package(run_cli):
    from importlib.metadata import version

    listed = run_cli("plugins", "--format", "json").json()
    assert {"kind": "splitter", "name": "ndtiff",
            "plugin": f"imagingdb-ndtiff {version('imagingdb-ndtiff')}"} in listed


def test_ndtiff_dataset_uploads_and_reads_back_pixel_identical(run_cli, upload_files, tmp_path):
    folder, written = write_ndtiff(tmp_path, channels=("DAPI", "GFP"), slices=3, times=2,
                                   positions=2, seed=1)
    result = upload(run_cli, upload_files, folder)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # ndtiff's progress printing is kept off stdout
    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        array = ds.read()
        assert ds.channel_names() == {0: "DAPI", 1: "GFP"}
        assert ds.global_meta["MicroManagerVersion"].startswith("2.0")
        row = ds.frames(channels=["GFP"], slices=[2], times=[1], positions=[1])[0]
    assert array.shape == (2, 2, 2, 3, 64, 64) and array.dtype == np.uint16
    for (c, z, t, p), pixels in written.items():
        np.testing.assert_array_equal(array[p, t, c, z], pixels)
    assert row["metadata_json"]["Exposure-ms"] == 40.0 and row["metadata_json"]["Channel"] == "GFP"


def test_index_file_path_and_numbered_channels(run_cli, upload_files, tmp_path):
    folder, written = write_ndtiff(tmp_path, channels=("BF", "RFP"), slices=1, times=2,
                                   string_channels=False, seed=2)
    assert upload(run_cli, upload_files, folder / "NDTiff.index").exit_code == 0
    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert ds.channel_names() == {0: "BF", 1: "RFP"}
        array = ds.read()
    for (c, z, t, p), pixels in written.items():
        np.testing.assert_array_equal(array[p, t, c, z], pixels)


def test_acquisition_stopped_early_keeps_intended_dimensions(run_cli, upload_files, tmp_path):
    dropped = {(1, 1, 1, 0), (0, 1, 1, 0)}
    folder, written = write_ndtiff(tmp_path, slices=2, times=2, drop=dropped, seed=3)
    assert upload(run_cli, upload_files, folder).exit_code == 0
    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert ds.dims.nbr_timepoints == 2 and ds.nbr_frames == 6
        assert set(ds.missing_frames()) == {FrameIndex(*index) for index in dropped}
        with pytest.warns(UserWarning, match="never recorded"):
            array = ds.read(fill_value=1)
    assert (array[0, 1, :, 1] == 1).all()
    np.testing.assert_array_equal(array[0, 1, 0, 0], written[0, 0, 1, 0])


def snapshot():
    """Every row and stored object, to prove a refused upload changed nothing."""
    from tests.conftest import Site

    return Site("sqlite", imagingdb.config.imagingdb_home() / "storage", None).snapshot()


def _no_index(folder):
    (folder / "NDTiff.index").unlink()
    return "not an NDTiff dataset (no NDTiff.index"


def _cut_index(folder):
    index = folder / "NDTiff.index"
    index.write_bytes(index.read_bytes()[:37])
    return "the NDTiff dataset cannot be read"


def _tiles(folder):
    # An Explore/tiled dataset's images carry row and column axes: rewrite one entry's axes.
    index = folder / "NDTiff.index"
    data = index.read_bytes()
    (length,) = struct.unpack("<I", data[:4])
    axes = json.loads(data[4:4 + length])
    tiled = json.dumps({**axes, "row": 0, "column": 1}).encode()
    index.write_bytes(struct.pack("<I", len(tiled)) + tiled + data[4 + length:])
    return "NDTiff axes column, row are not supported"


@pytest.mark.parametrize("damage", [_no_index, _cut_index, _tiles])
def test_bad_dataset_is_refused_and_changes_nothing(run_cli, upload_files, tmp_path, damage):
    folder, _ = write_ndtiff(tmp_path, slices=1, times=1, seed=4)
    message = damage(folder)
    run_cli("init")
    before = snapshot()
    result = upload(run_cli, upload_files, folder)
    assert result.exit_code == 2, result.stderr
    assert len(result.errors) == 1 and message in result.errors[0] and str(folder) in result.errors[0]
    assert snapshot() == before
