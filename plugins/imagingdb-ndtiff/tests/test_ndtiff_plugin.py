"""The imagingdb-ndtiff plugin, installed in the environment, end to end through the CLI."""

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from imagingdb_ndtiff import claim_source
from ndtiff_checks import DATASET_ID, assert_stored_as, snapshot, upload
from ndtiff_sample import write_axes, write_ndtiff, write_tiled_pyramid

import imagingdb
from imagingdb.acquisition import CERTAIN, FrameIndex


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
        assert ds.global_meta["ndtiff_version"] == "3.3"  # what ndtiff 3.1.0's writer writes
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


@pytest.mark.parametrize("sizes_as_1_4", [False, True], ids=["IntendedDimensions", "Positions"])
def test_position_never_reached_counts_from_intended_dimensions(run_cli, upload_files, tmp_path,
                                                                sizes_as_1_4):
    dropped = {(c, 0, 0, 2) for c in range(2)}  # the summary says 3 positions; 2 were imaged
    folder, _ = write_ndtiff(tmp_path, slices=1, times=1, positions=3, drop=dropped,
                             sizes_as_1_4=sizes_as_1_4, seed=6)
    assert upload(run_cli, upload_files, folder).exit_code == 0
    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert ds.dims.nbr_positions == 3
        assert set(ds.missing_frames()) == {FrameIndex(*index) for index in dropped}


# ------------------------------------------------------------ claim_source, auto


def _dataset(tmp_path):
    return write_ndtiff(tmp_path, slices=1, times=1, seed=7)[0]


@pytest.mark.parametrize("part, kind", [
    (lambda folder: folder, "Micro-Manager NDTiff 3.3 dataset"),
    (lambda folder: folder / "NDTiff.index", "index of a Micro-Manager NDTiff 3.3 dataset"),
    (lambda folder: folder / "acq_NDTiffStack.tif", "stack file of a Micro-Manager NDTiff 3.3 dataset"),
])
def test_claims_a_dataset_its_index_and_its_stack_files(tmp_path, part, kind):
    claim = claim_source(part(_dataset(tmp_path)))
    assert (claim.format, claim.kind, claim.certainty) == ("ndtiff", kind, CERTAIN)


def test_claims_each_part_of_a_multi_resolution_dataset(tmp_path):
    root, _ = write_tiled_pyramid(tmp_path, [(0, 0), (0, 1)], factors=(2,))
    whole = ("Micro-Manager NDTiff 3.3 multi-resolution dataset (Explore/Magellan tiles): "
             "full resolution stored, its 1 downsampled level(s) not")
    assert claim_source(root).kind == whole
    assert claim_source(root / "Full resolution").kind == whole
    stack = root / "Full resolution" / "explore_NDTiffStack.tif"
    assert claim_source(stack).kind == f"stack file of a {whole}"
    assert claim_source(root / "Downsampled_x2").kind == (
        "Downsampled_x2 level of a Micro-Manager NDTiff 3.3 multi-resolution dataset")


def _plain_tiff_beside_an_index(tmp_path):
    folder = _dataset(tmp_path)
    tifffile.imwrite(folder / "notes.tif", np.zeros((4, 4), np.uint8))
    return folder / "notes.tif"


def _ome_tiff_folder(tmp_path):
    from imagingdb.testing import write_mm_ometiff

    write_mm_ometiff(tmp_path, "sample", channels=("DAPI",), slices=1, times=1, positions=1,
                     height=8, width=8, dtype="uint16", seed=1)
    return tmp_path


@pytest.mark.parametrize("make", [
    _plain_tiff_beside_an_index,
    _ome_tiff_folder,
    lambda tmp_path: tmp_path,  # an empty folder
    lambda tmp_path: tmp_path / "missing",
], ids=["plain-tiff-beside-an-index", "ome-tiff-folder", "empty-folder", "missing"])
def test_does_not_claim_other_sources(tmp_path, make):
    assert claim_source(make(tmp_path)) is None


def test_claim_reads_a_header_not_ndtiff(tmp_path):
    """imagingdb asks every plugin about every source: the claim must not import ndtiff."""
    folder = _dataset(tmp_path)
    code = ("import sys; from pathlib import Path; from imagingdb_ndtiff import claim_source; "
            f"assert claim_source(Path({str(folder)!r})) is not None; print('ndtiff' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_frames_format_left_out_chooses_ndtiff_and_says_so(run_cli, upload_files, tmp_path):
    folder, written = write_ndtiff(tmp_path, slices=2, times=1, seed=8)
    result = upload(run_cli, upload_files, folder / "acq_NDTiffStack.tif", frames_format=None)
    assert result.exit_code == 0, result.stderr
    assert (f"{DATASET_ID}: Micro-Manager NDTiff 3.3 dataset; frames_format auto chose ndtiff"
            in result.stderr)
    assert_stored_as(folder, lambda axes: (("DAPI", "GFP").index(axes["channel"]), axes["z"],
                                           axes["time"], 0))


def test_stack_file_given_to_tif_id_is_refused_naming_ndtiff(run_cli, upload_files, tmp_path):
    stack = _dataset(tmp_path) / "acq_NDTiffStack.tif"
    run_cli("init")
    before = snapshot()
    result = upload(run_cli, upload_files, stack, frames_format="tif_id")
    assert result.exit_code == 2, result.stderr
    assert result.errors == [
        f"Error: upload1.csv row 2 ({DATASET_ID}): {stack} is a stack file "
        "of a Micro-Manager NDTiff 3.3 dataset, which frames_format tif_id would not read as it was "
        "recorded; use frames_format: ndtiff (or leave frames_format out to choose automatically)"]
    assert snapshot() == before


# ------------------------------------------------------------------ bad input


def _no_index(tmp_path):
    folder = _dataset(tmp_path)
    (folder / "NDTiff.index").unlink()
    return folder, "not an NDTiff dataset (no NDTiff.index in it or in its 'Full resolution' folder)"


def _cut_index(tmp_path):
    folder = _dataset(tmp_path)
    index = folder / "NDTiff.index"
    index.write_bytes(index.read_bytes()[:37])
    return folder, "the NDTiff dataset cannot be read ("


def _cut_stack(tmp_path):
    folder = _dataset(tmp_path)
    stack = folder / "acq_NDTiffStack.tif"
    data = stack.read_bytes()
    stack.write_bytes(data[:len(data) - 100])  # what an interrupted copy leaves
    return folder, "cannot be read (JSONDecodeError"


def _unknown_axis(tmp_path):
    folder = write_axes(tmp_path, [{"z": 0, "angle": 0}, {"z": 0, "angle": 1}])
    return folder, "NDTiff axes angle are not supported"


def _positions_and_tiles(tmp_path):
    folder = write_axes(tmp_path, [{"position": p, "row": 0, "column": c} for p in (0, 1) for c in (0, 1)])
    return folder, "an NDTiff dataset with both position and row/column axes"


def _row_without_column(tmp_path):
    return write_axes(tmp_path, [{"row": 0}, {"row": 1}]), "lacks a row or column in a tiled"


def _labels_on_z(tmp_path):
    return write_axes(tmp_path, [{"z": "top"}, {"z": "bottom"}]), "NDTiff axis z holds labels, not numbers"


def _channel_labels_and_numbers(tmp_path):
    # ndtiff's writer refuses to mix them on one axis, and its reader fails on them; a damaged
    # or hand-made index can hold them
    folder = write_axes(tmp_path, [{"channel": "DAPI"}, {"channel": "GFP"}])
    _rewrite_axes(folder / "NDTiff.index", 1, {"channel": 0})
    return folder, "the NDTiff dataset cannot be read (TypeError: '<' not supported"


def _negative_z(tmp_path):
    return write_axes(tmp_path, [{"z": -1}, {"z": 0}]), "has z -1, not an index of 0 or more"


def _same_frame_twice(tmp_path):
    folder = write_axes(tmp_path, [{"time": 0}, {"time": 0, "z": 0}])
    return folder, "would both be frame FrameIndex(channel=0, slice=0, time=0, position=0)"


def _downsampled_level(tmp_path):
    root, _ = write_tiled_pyramid(tmp_path, [(0, 0)], factors=(2,))
    message = f"is the Downsampled_x2 level of the multi-resolution NDTiff dataset {root}"
    return root / "Downsampled_x2", message


def _rewrite_axes(index, number, axes):
    data, position = bytearray(index.read_bytes()), 0
    for _ in range(number):
        (length,) = struct.unpack_from("<I", data, position)
        (name_length,) = struct.unpack_from("<I", data, position + 4 + length)
        position += 4 + length + 4 + name_length + 32
    (length,) = struct.unpack_from("<I", data, position)
    key = json.dumps(axes).encode()
    data[position:position + 4 + length] = struct.pack("<I", len(key)) + key
    index.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [
    _no_index, _cut_index, _cut_stack, _unknown_axis, _positions_and_tiles, _row_without_column, _labels_on_z,
    _channel_labels_and_numbers, _negative_z, _same_frame_twice, _downsampled_level])
def test_bad_dataset_is_refused_and_changes_nothing(run_cli, upload_files, tmp_path, damage):
    source, message = damage(tmp_path / "data")
    run_cli("init")
    before = snapshot()
    result = upload(run_cli, upload_files, source)
    assert result.exit_code == 2, result.stderr
    assert len(result.errors) == 1 and message in result.errors[0] and str(source) in result.errors[0]
    assert "Traceback" not in result.stderr
    assert snapshot() == before


def test_index_left_unterminated_uploads_with_ndtiffs_warning(run_cli, upload_files, tmp_path):
    """Micro-Manager's Java writer preallocates the index; an acquisition that never finished
    leaves zeros after the last entry, which ndtiff reads up to, with a warning."""
    folder, written = write_ndtiff(tmp_path, slices=1, times=2, seed=9)
    with open(folder / "NDTiff.index", "ab") as index:
        index.write(bytes(4096))
    result = upload(run_cli, upload_files, folder)
    assert result.exit_code == 0, result.stderr
    assert (f"Warning: {DATASET_ID}: {folder}: ndtiff: Index appears to not have been properly "
            "terminated (the dataset may still work)") in result.stderr.splitlines()
    assert_stored_as(folder, lambda axes: (("DAPI", "GFP").index(axes["channel"]), 0, axes["time"], 0))
