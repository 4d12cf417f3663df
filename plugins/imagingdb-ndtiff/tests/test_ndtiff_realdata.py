"""The real NDTiff datasets in ../shared/realdata/NDStorage (NDStorage's test_data), each
uploaded with frames_format left out and compared, image by image, with ndtiff's reader.

Skipped when the copies are not there; the other test files reproduce each structure.
"""

from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from ndtiff_checks import DATASET_ID, assert_stored_as, close, real_dataset, reference, upload

import imagingdb


@dataclass
class Real:
    path: str
    kind: str  # what the upload says it is
    dims: tuple[int, int, int, int, int, int]  # channels, slices, times, positions, height, width
    channel_names: dict[int, str]
    index_of: Callable[[dict[str, Any]], tuple[int, int, int, int]]  # NDTiff axes -> (c, z, t, p)
    meta: dict[str, Any] = field(default_factory=dict)  # global metadata imagingdb adds


TILES = [(0, 0), (1, 1)]  # the stitched test's two tiles of a 2x2 grid, row-major
REAL = [
    Real("NDStorage/v2/ndtiffv2.0_test", "Micro-Manager NDTiff 2 dataset", (2, 1, 5, 1, 32, 32),
         {0: "DAPI", 1: "FITC"}, lambda axes: (axes["channel"], 0, axes["time"], 0),
         {"ndtiff_version": "2"}),
    Real("NDStorage/v3/labeled_positions_1",
         "Micro-Manager NDTiff 3.3 dataset, positions by label (Pos0, Pos1, Pos2)",
         (1, 1, 1, 3, 512, 512), {0: "DAPI"},
         lambda axes: (0, 0, 0, ["Pos0", "Pos1", "Pos2"].index(axes["position"])),
         {"position_names": ["Pos0", "Pos1", "Pos2"]}),
    Real("NDStorage/v3/ndtiffv3.0_stitched_test",
         "Micro-Manager NDTiff 3.0 multi-resolution dataset (Explore/Magellan tiles): 2 row/column "
         "tile(s) stored as positions in row-major order, full resolution only (not its "
         "Downsampled_x2, Downsampled_x4, Downsampled_x8, Downsampled_x16)",
         (1, 1, 1, 2, 32, 32), {0: "channel0"},  # its images' Channel metadata is ""
         lambda axes: (0, 0, 0, TILES.index((axes["row"], axes["column"]))),
         {"tiles": [{"position": 0, "row": 0, "column": 0}, {"position": 1, "row": 1, "column": 1}],
          "resolution_levels": {"stored": "Full resolution", "not_stored": [
              "Downsampled_x2", "Downsampled_x4", "Downsampled_x8", "Downsampled_x16"]}}),
    Real("NDStorage/v3/ndtiff3.2_multichannel", "Micro-Manager NDTiff 3.2 dataset",
         (2, 16, 8, 1, 64, 64), {0: "DAPI", 1: "FITC"},
         lambda axes: (["DAPI", "FITC"].index(axes["channel"]), axes["z"], axes["time"], 0)),
]


@pytest.mark.parametrize("real", REAL, ids=[real.path.split("/")[-1] for real in REAL])
def test_real_dataset_is_stored_as_ndtiff_reads_it(run_cli, upload_files, real):
    root = real_dataset(real.path)
    result = upload(run_cli, upload_files, root, frames_format=None)
    assert result.exit_code == 0, result.stderr
    assert f"{DATASET_ID}: {real.kind}; frames_format auto chose ndtiff" in result.stderr
    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        dims, meta, names = ds.dims, ds.global_meta, ds.channel_names()
    assert (dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints, dims.nbr_positions,
            dims.im_height, dims.im_width) == real.dims
    assert names == real.channel_names
    assert real.meta.items() <= meta.items()
    ref = reference(root)
    assert ref.summary_metadata.items() <= meta.items()
    close(ref)
    rows = assert_stored_as(root, real.index_of)
    for (_, _, _, p), row in rows.items():
        if "position_names" in real.meta:
            assert row["metadata_json"]["position_name"] == real.meta["position_names"][p]
        if "tiles" in real.meta:
            tile = real.meta["tiles"][p]
            assert {key: row["metadata_json"][key] for key in ("row", "column")} == \
                {key: tile[key] for key in ("row", "column")}


def test_labelled_positions_are_in_the_order_ndstorage_documents(run_cli, upload_files):
    """NDStorage's data_loading_test: the images of Pos2, Pos0, Pos1 (acquired in that order)
    have pixel (0, 0) = 0, 1, 2, and ndtiff's as_array gives them in the order Pos0, Pos1, Pos2."""
    root = real_dataset("NDStorage/v3/labeled_positions_1")
    assert upload(run_cli, upload_files, root).exit_code == 0
    with imagingdb.connect() as db:
        array = db.dataset(DATASET_ID).read()
    assert [int(array[p, 0, 0, 0, 0, 0]) for p in range(3)] == [1, 2, 0]
