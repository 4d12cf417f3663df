"""Positions named by label, and row/column tiles (Explore, Magellan), as imagingdb positions."""

import pytest
from ndtiff_checks import DATASET_ID, assert_stored_as, upload
from ndtiff_sample import stage_position_2_0, write_axes, write_labelled_positions, write_tiled_pyramid

import imagingdb
from imagingdb.acquisition import FrameIndex

CHANNELS = ("DAPI", "GFP")
#: the order NDStorage's labeled_positions_1 was acquired in: not the order of the labels
WRITTEN_LABELS = ("Pos2", "Pos0", "Pos1")


def _stored():
    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        return ds.dims, ds.global_meta, ds.missing_frames()


def test_position_labels_get_their_indexes_and_are_kept(run_cli, upload_files, tmp_path):
    folder, _ = write_labelled_positions(tmp_path, WRITTEN_LABELS, channels=CHANNELS, seed=1)
    result = upload(run_cli, upload_files, folder, frames_format=None)
    assert result.exit_code == 0, result.stderr
    assert "positions by label (Pos0, Pos1, Pos2); frames_format auto chose ndtiff" in result.stderr
    dims, meta, _ = _stored()
    assert dims.nbr_positions == 3 and meta["position_names"] == ["Pos0", "Pos1", "Pos2"]
    order = ["Pos0", "Pos1", "Pos2"]
    rows = assert_stored_as(folder, lambda axes: (CHANNELS.index(axes["channel"]), 0, 0,
                                                  order.index(axes["position"])))
    assert {index[3]: row["metadata_json"]["position_name"] for index, row in rows.items()} == \
        dict(enumerate(order))


def test_pos_labels_are_their_position_numbers(run_cli, upload_files, tmp_path):
    """Micro-Manager's Pos<n> is position n of its list: Pos2 before Pos10, not text order."""
    labels = [f"Pos{n}" for n in (10, 2, 0, 11, 1, 3, 9, 4, 5, 8, 6, 7)]  # as if visited so
    folder, _ = write_labelled_positions(tmp_path, labels, seed=6)
    result = upload(run_cli, upload_files, folder, frames_format=None)
    assert result.exit_code == 0, result.stderr
    numbered = [f"Pos{n}" for n in range(12)]
    assert f"positions by label ({', '.join(numbered)}); frames_format" in result.stderr
    dims, meta, missing = _stored()
    assert meta["position_names"] == numbered and dims.nbr_positions == 12 and missing == []
    rows = assert_stored_as(folder, lambda axes: (0, 0, 0, int(axes["position"][3:])))
    assert {index[3]: row["metadata_json"]["position_name"] for index, row in rows.items()} == \
        dict(enumerate(numbered))


def test_a_gap_in_pos_labels_is_a_missing_position(run_cli, upload_files, tmp_path):
    """Of Pos0, Pos2, Pos3 (an acquisition of 4 positions that never imaged Pos1), Pos2 stays at
    position 2, where Micro-Manager numbered it, and position 1 is missing."""
    folder, _ = write_labelled_positions(tmp_path, ("Pos3", "Pos0", "Pos2"), intended=4, seed=7)
    result = upload(run_cli, upload_files, folder, frames_format=None)
    assert result.exit_code == 0, result.stderr
    assert "positions by label (Pos0, Pos2, Pos3; position 1: no image)" in result.stderr
    dims, meta, missing = _stored()
    assert meta["position_names"] == ["Pos0", None, "Pos2", "Pos3"] and dims.nbr_positions == 4
    assert missing == [FrameIndex(0, 0, 0, 1)]
    assert_stored_as(folder, lambda axes: (0, 0, 0, int(axes["position"][3:])))


def test_a_gap_in_pos_labels_without_a_declared_count_is_kept(run_cli, upload_files, tmp_path):
    folder, _ = write_labelled_positions(tmp_path, ("Pos3", "Pos0"), intended=0, seed=8)
    result = upload(run_cli, upload_files, folder, frames_format=None)
    assert result.exit_code == 0, result.stderr
    assert "positions by label (Pos0, Pos3; positions 1-2: no image)" in result.stderr
    dims, meta, missing = _stored()
    assert meta["position_names"] == ["Pos0", None, None, "Pos3"] and dims.nbr_positions == 4
    assert missing == [FrameIndex(0, 0, 0, 1), FrameIndex(0, 0, 0, 2)]


@pytest.mark.parametrize("labels, order", [
    # Pos7 cannot be position 7 of the 3 the summary declares: the list was edited
    (("Pos7", "Pos0", "Pos5"), ["Pos0", "Pos5", "Pos7"]),
    (("Site10", "site2", "Site1"), ["Site1", "site2", "Site10"]),
    (("Pos1", "Pos01", "Pos2"), ["Pos01", "Pos1", "Pos2"]),  # two labels say position 1
    (("Pos0", "Pos1", "Center"), ["Center", "Pos0", "Pos1"]),
], ids=["beyond the declared count", "not Pos<n>", "one number twice", "not all Pos<n>"])
def test_other_position_labels_go_in_natural_order(run_cli, upload_files, tmp_path, labels, order):
    folder, _ = write_labelled_positions(tmp_path, labels, seed=9)
    assert upload(run_cli, upload_files, folder).exit_code == 0
    dims, meta, missing = _stored()
    assert meta["position_names"] == order and dims.nbr_positions == 3 and missing == []
    assert_stored_as(folder, lambda axes: (0, 0, 0, order.index(axes["position"])))


def test_position_labels_follow_the_summary_position_list(run_cli, upload_files, tmp_path):
    """Micro-Manager's position list (summary StagePositions) gives the order, and its size: a
    listed position never imaged is a missing position."""
    declared = ("B2", "A1", "C3", "D4")
    folder, _ = write_labelled_positions(tmp_path, ("A1", "C3", "B2"), declared=declared, seed=2)
    assert upload(run_cli, upload_files, folder).exit_code == 0
    dims, meta, missing = _stored()
    assert meta["position_names"] == list(declared) and dims.nbr_positions == 4
    assert missing == [FrameIndex(0, 0, 0, 3)]
    assert_stored_as(folder, lambda axes: (0, 0, 0, declared.index(axes["position"])))


def test_position_labels_follow_a_position_list_in_micro_manager_2_spelling(
        run_cli, upload_files, tmp_path):
    """Micro-Manager 2.0 writes each StagePositions entry's label as ``label``."""
    declared = ("Well-C3", "Well-A1", "Well-B2")  # neither sorted nor the order written
    folder, _ = write_labelled_positions(
        tmp_path, ("Well-A1", "Well-B2", "Well-C3"),
        declared=[stage_position_2_0(label, x=100.0 * n) for n, label in enumerate(declared)], seed=5)
    result = upload(run_cli, upload_files, folder, frames_format=None)
    assert result.exit_code == 0, result.stderr
    assert "positions by label (Well-C3, Well-A1, Well-B2)" in result.stderr
    _, meta, missing = _stored()
    assert meta["position_names"] == list(declared) and missing == []
    assert_stored_as(folder, lambda axes: (0, 0, 0, declared.index(axes["position"])))


def test_a_subset_of_labelled_positions_keeps_their_indexes(run_cli, upload_files, tmp_path):
    folder, _ = write_labelled_positions(tmp_path, WRITTEN_LABELS, seed=3)
    assert upload(run_cli, upload_files, folder, positions="[1]").exit_code == 0
    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        (row,) = ds.frames()
        assert ds.global_meta["position_names"] == ["Pos0", "Pos1", "Pos2"]
    assert (row["pos_idx"], row["metadata_json"]["position_name"]) == (1, "Pos1")


#: written out of order, with negative rows and columns, and grid cells never imaged
WRITTEN_TILES = [(1, 1), (0, 0), (-1, 2), (0, -1)]
ROW_MAJOR = [(-1, 2), (0, -1), (0, 0), (1, 1)]


@pytest.mark.parametrize("part", ["", "Full resolution", "Full resolution/explore_NDTiffStack.tif"])
def test_tiles_of_a_multi_resolution_dataset_are_positions_in_row_major_order(
        run_cli, upload_files, tmp_path, part):
    root, _ = write_tiled_pyramid(tmp_path, WRITTEN_TILES, channels=CHANNELS, slices=2,
                                  factors=(2, 4), seed=4)
    result = upload(run_cli, upload_files, root / part, frames_format=None)
    assert result.exit_code == 0, result.stderr
    assert ("Micro-Manager NDTiff 3.3 multi-resolution dataset (Explore/Magellan tiles): 4 row/column "
            "tile(s) stored as positions in row-major order, full resolution only (not its "
            "Downsampled_x2, Downsampled_x4); frames_format auto chose ndtiff") in result.stderr
    dims, meta, missing = _stored()
    assert (dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints, dims.nbr_positions) == (2, 2, 1, 4)
    assert (dims.im_height, dims.im_width) == (256, 256) and missing == []
    assert meta["tiles"] == [{"position": p, "row": row, "column": column}
                             for p, (row, column) in enumerate(ROW_MAJOR)]
    assert meta["resolution_levels"] == {"stored": "Full resolution",
                                         "not_stored": ["Downsampled_x2", "Downsampled_x4"]}
    assert meta["GridPixelOverlapX"] == 8  # the summary is kept as it is
    rows = assert_stored_as(root, lambda axes: (CHANNELS.index(axes["channel"]), axes["z"], 0,
                                                ROW_MAJOR.index((axes["row"], axes["column"]))))
    for (_, _, _, p), row in rows.items():
        assert (row["metadata_json"]["row"], row["metadata_json"]["column"]) == ROW_MAJOR[p]


def test_tiles_of_a_single_resolution_dataset(run_cli, upload_files, tmp_path):
    folder = write_axes(tmp_path, [{"row": 0, "column": 1}, {"row": 0, "column": 0}, {"row": 2, "column": 0}])
    result = upload(run_cli, upload_files, folder)
    assert result.exit_code == 0, result.stderr
    _, meta, _ = _stored()
    assert [(tile["row"], tile["column"]) for tile in meta["tiles"]] == [(0, 0), (0, 1), (2, 0)]
    assert "resolution_levels" not in meta
    assert_stored_as(folder, lambda axes: (0, 0, 0, [(0, 0), (0, 1), (2, 0)].index(
        (axes["row"], axes["column"]))))
