"""Lazy access: to_dask, to_xarray and frames_table give what read() and frames() give,
reading no pixel until computed, on both frame layouts and on S3."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

import imagingdb
from imagingdb.errors import InputError, MissingDependencyError, MissingFramesWarning, WorkError
from imagingdb.testing import write_fiji_hyperstack, write_mm_ometiff, write_tiff_stack

DATASET_ID = "ML-2005-05-23-10-00-00-0001"
LAYOUTS = ["png", "ome-zarr"]
#: read()/to_dask() selection arguments: everything, and one of each kind of filter
SELECTIONS = [
    {},
    {"channels": ["GFP"]},
    {"slices": [2, 0]},
    {"times": range(1, 2)},
    {"positions": [1]},
    {"channels": ["GFP", "DAPI"], "slices": [1], "times": [1, 0], "positions": [1, 0]},
]


def upload(run_cli, upload_files, source, dataset_id=DATASET_ID, **config):
    csv_path = upload_files.csv([{"dataset_id": dataset_id, "file_name": str(source)}])
    config = {"upload_type": "frames", "frames_format": "ome_tiff", "microscope": "scope2", **config}
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.config(**config))
    assert result.exit_code == 0, result.stderr
    return dataset_id


@pytest.fixture(params=LAYOUTS)
def uploaded(request, run_cli, upload_files, mm_ometiff):
    """mm_ometiff (2 positions x 2 channels x 3 slices x 2 times, 32x48) in each layout."""
    extra = {} if request.param == "png" else {"frame_format": request.param}
    return upload(run_cli, upload_files, mm_ometiff, **extra)


@pytest.fixture
def dataset(uploaded):
    with imagingdb.connect() as database:
        yield database.dataset(uploaded)


def count_reads(monkeypatch, storage) -> list[str]:
    """Keys the storage backend is asked for, from now on."""
    keys: list[str] = []
    get_bytes = storage.get_bytes

    def counting(key):
        keys.append(key)
        return get_bytes(key)

    monkeypatch.setattr(storage, "get_bytes", counting)
    return keys


# ------------------------------------------------------------------ to_dask


@pytest.mark.parametrize("selection", SELECTIONS, ids=lambda s: ",".join(s) or "all")
def test_to_dask_computes_what_read_returns(dataset, selection):
    array = dataset.to_dask(**selection)
    expected = dataset.read(**selection)
    assert (array.shape, array.dtype) == (expected.shape, expected.dtype)
    np.testing.assert_array_equal(array.compute(), expected)


def test_one_chunk_per_frame(dataset):
    array = dataset.to_dask()
    assert array.chunksize == (1, 1, 1, 1, 32, 48)
    assert array.npartitions == dataset.nbr_frames == 24


def test_nothing_is_read_until_computed(dataset, monkeypatch):
    keys = count_reads(monkeypatch, dataset.database.site.storage)
    array = dataset.to_dask()
    labelled = dataset.to_xarray()
    assert keys == []
    one = array[1, 0, 1, 2].compute()
    assert len(keys) == 1
    np.testing.assert_array_equal(one, labelled.isel(P=1, T=0, C=1, Z=2).values)
    assert len(keys) == 2
    array.compute()
    assert len(keys) == 2 + 24


def test_the_array_computes_after_the_database_is_closed(uploaded):
    with imagingdb.connect() as database:
        array = database.dataset(uploaded).to_dask(channels=["DAPI"])
        expected = database.dataset(uploaded).read(channels=["DAPI"])
    np.testing.assert_array_equal(array.compute(), expected)


def test_a_pickled_array_opens_its_own_storage(dataset):
    """As dask.distributed or a process pool would send it: the backend is not pickled."""
    array = pickle.loads(pickle.dumps(dataset.to_dask(times=[1])))
    np.testing.assert_array_equal(array.compute(), dataset.read(times=[1]))


def test_the_same_selection_gets_the_same_dask_name(dataset):
    assert dataset.to_dask().name == dataset.to_dask().name
    assert dataset.to_dask().name != dataset.to_dask(fill_value=1).name
    assert dataset.to_dask().name != dataset.to_dask(slices=[0, 1, 2][::-1]).name


def test_an_empty_selection_is_an_empty_array(dataset):
    array = dataset.to_dask(channels=[])
    assert array.shape == dataset.read(channels=[]).shape == (2, 2, 0, 3, 32, 48)
    assert array.compute().size == 0


def test_verify_checks_each_frame_when_computed(run_cli, upload_files, mm_ometiff, isolated_home):
    upload(run_cli, upload_files, mm_ometiff)
    frames = sorted((isolated_home / "storage" / "raw_frames" / DATASET_ID).glob("im_*.png"))
    frames[1].write_bytes(frames[0].read_bytes())  # a valid PNG, of another frame
    with imagingdb.connect() as database:
        array = database.dataset(DATASET_ID).to_dask(verify=True)
        with pytest.raises(WorkError, match="fails its sha256 check"):
            array.compute()
        database.dataset(DATASET_ID).to_dask().compute()  # unverified: no complaint


@pytest.mark.parametrize("method", ["to_dask", "to_xarray", "frames_table"])
def test_a_file_kept_whole_has_no_frames_to_view(run_cli, upload_files, tmp_path, method):
    notes = tmp_path / "notes.txt"
    notes.write_text("not frames")
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(notes)}])
    assert run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config()).exit_code == 0
    with imagingdb.connect() as database:
        with pytest.raises(InputError, match="is a file kept whole, not frames"):
            getattr(database.dataset(DATASET_ID), method)()


# ------------------------------------------------------- incomplete acquisitions

DROPPED = {(1, 2, 1, 0), (0, 0, 1, 0)}  # (channel, slice, time, position)


@pytest.fixture(params=LAYOUTS)
def incomplete(request, run_cli, upload_files, tmp_path):
    """An acquisition of 2 channels x 3 slices x 2 times that lacks the DROPPED frames."""
    folder = tmp_path / "stopped"
    write_mm_ometiff(folder, "stopped", channels=("DAPI", "GFP"), slices=3, times=2,
                     positions=1, height=16, width=24, drop=DROPPED, seed=3)
    extra = {} if request.param == "png" else {"frame_format": request.param}
    return upload(run_cli, upload_files, folder, **extra)


def test_missing_frames_are_fill_value_chunks(incomplete):
    with imagingdb.connect() as database:
        ds = database.dataset(incomplete)
        with pytest.warns(MissingFramesWarning, match="2 of the 12 frames asked for") as record:
            array = ds.to_dask(fill_value=7)
        assert record[0].filename == __file__  # the warning points at the caller
        with pytest.warns(MissingFramesWarning) as record:
            ds.to_xarray()
        assert record[0].filename == __file__
        with pytest.warns(MissingFramesWarning):
            expected = ds.read(fill_value=7)
        computed = array.compute()
    np.testing.assert_array_equal(computed, expected)
    for c, z, t, p in DROPPED:
        assert (computed[p, t, c, z] == 7).all()
    assert array.npartitions == 12


def test_a_fill_value_the_pixels_cannot_hold_is_refused_at_once(incomplete):
    with imagingdb.connect() as database:
        with pytest.raises(InputError, match="fill_value 70000 does not fit the dataset's uint16"):
            database.dataset(incomplete).to_dask(fill_value=70000)
        database.dataset(incomplete).to_dask(times=[0], fill_value=70000)  # nothing to fill


# ------------------------------------------------------------------ to_xarray


def test_to_xarray_labels_the_axes(dataset):
    labelled = dataset.to_xarray(channels=["GFP", "DAPI"], slices=[2, 0], positions=[1])
    assert labelled.dims == ("P", "T", "C", "Z", "Y", "X")
    assert labelled.name == dataset.id
    assert list(labelled["C"].values) == ["GFP", "DAPI"]
    assert list(labelled["channel_idx"].values) == [1, 0]
    assert list(labelled["P"].values) == list(labelled["pos_idx"].values) == [1]
    assert list(labelled["slice_idx"].values) == [2, 0]
    assert list(labelled["time_idx"].values) == [0, 1]
    assert labelled.attrs["dataset_id"] == dataset.id
    assert labelled.attrs["frame_format"] == dataset.frame_format
    np.testing.assert_array_equal(labelled.sel(C="DAPI").values,
                                  dataset.read(channels=["DAPI"], slices=[2, 0], positions=[1])[:, :, 0])


def test_xarray_coordinates_follow_the_recorded_calibration(dataset):
    """Micro-Manager's PixelSize_um, z-step_um, Interval_ms if calibration_of reads them;
    the pixel and slice indexes where it does not."""
    from imagingdb.calibration import calibration_of

    scales = calibration_of(dataset.global_meta).scales
    labelled = dataset.to_xarray()
    for axis, indexes in (("X", np.arange(48)), ("Y", np.arange(32)), ("Z", np.arange(3)),
                          ("T", np.arange(2))):
        size, unit = scales.get(axis.lower(), (1, None))
        np.testing.assert_allclose(labelled[axis].values, indexes * size)
        assert labelled[axis].attrs.get("units") == unit
    assert labelled.attrs["units"] == {a.upper(): unit for a, (_s, unit) in scales.items()}


def test_physical_size_gives_physical_coordinates(run_cli, upload_files, tmp_path):
    path = write_fiji_hyperstack(tmp_path / "fiji.tif", channels=2, slices=3, times=2,
                                 pixel_size=0.5, spacing=0.4, finterval=2.5, seed=5)
    upload(run_cli, upload_files, path, frames_format="tif_id")
    with imagingdb.connect() as database:
        ds = database.dataset(DATASET_ID)
        assert ds.global_meta["physical_size"]["x"] == 0.5
        labelled = ds.to_xarray(slices=[1, 2])
        expected = ds.read(slices=[1, 2])
    np.testing.assert_allclose(labelled["X"].values[:4], [0, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(labelled["Y"].values[-1], 31 * 0.5)
    np.testing.assert_allclose(labelled["Z"].values, [0.4, 0.8])
    np.testing.assert_allclose(labelled["T"].values, [0, 2.5])
    assert list(labelled["slice_idx"].values) == [1, 2]
    assert labelled["X"].attrs["units"] == labelled["Z"].attrs["units"] == "micrometer"
    assert labelled["T"].attrs["units"] == "second"
    assert labelled.attrs["units"] == {"X": "micrometer", "Y": "micrometer", "Z": "micrometer",
                                       "T": "second"}
    np.testing.assert_array_equal(labelled.values, expected)


def test_rgb_frames_get_a_colour_axis(run_cli, upload_files, tmp_path):
    path = write_tiff_stack(tmp_path / "rgb.tif", slices=3, height=9, width=7, rgb=True)
    upload(run_cli, upload_files, path, frames_format="tif_id")
    with imagingdb.connect() as database:
        ds = database.dataset(DATASET_ID)
        labelled = ds.to_xarray()
        expected = ds.read()
    assert labelled.dims == ("P", "T", "C", "Z", "Y", "X", "S")
    assert labelled.data.chunksize == (1, 1, 1, 1, 9, 7, 3)
    np.testing.assert_array_equal(labelled.values, expected)


# ------------------------------------------------------------------ frames_table


def test_frames_table_has_a_row_per_frame_and_a_column_per_metadata_key(dataset):
    table = dataset.frames_table()
    assert list(table.columns[:7]) == ["channel_idx", "slice_idx", "time_idx", "pos_idx",
                                       "channel_name", "file_name", "sha256"]
    assert len(table) == 24
    frames = dataset.frames()
    assert list(table["file_name"]) == [f["file_name"] for f in frames]
    assert list(table["Exposure-ms"]) == [f["metadata_json"]["Exposure-ms"] for f in frames]
    assert list(table["PositionName"].unique()) == ["Pos0", "Pos1"]


def test_frames_table_of_a_selection(dataset):
    table = dataset.frames_table(channels=["GFP"], times=[1])
    assert len(table) == 6
    assert set(table["channel_name"]) == {"GFP"} and set(table["time_idx"]) == {1}


def test_frames_table_refuses_what_the_dataset_lacks(dataset):
    with pytest.raises(InputError, match="has no channel 'RFP'"):
        dataset.frames_table(channels=["RFP"])


def test_frames_table_flattens_nested_keys_and_keeps_clashing_ones():
    from collections import namedtuple

    from imagingdb.analysis import frames_table

    Row = namedtuple("Row", "channel_idx slice_idx time_idx pos_idx channel_name file_name "
                            "sha256 metadata_json")
    rows = [Row(0, 0, 0, 0, "DAPI", "a.png", "1", {"Stage": {"X": 1.5}, "channel_name": "dapi"}),
            Row(0, 1, 0, 0, "DAPI", "b.png", "2", None)]
    table = frames_table(rows)
    assert list(table.columns[:7]) == ["channel_idx", "slice_idx", "time_idx", "pos_idx",
                                       "channel_name", "file_name", "sha256"]
    assert set(table.columns[7:]) == {"Stage.X", "metadata.channel_name"}
    assert list(table["metadata.channel_name"][:1]) == ["dapi"]
    assert list(table["channel_name"]) == ["DAPI", "DAPI"]
    assert table["Stage.X"][0] == 1.5 and np.isnan(table["Stage.X"][1])


# ----------------------------------------------------- the analysis extra missing


@pytest.mark.parametrize("method, blocked, package", [
    ("to_dask", ("dask", "dask.array"), "dask"),
    ("to_xarray", ("xarray",), "xarray"),
    ("to_xarray", ("dask", "dask.array"), "dask"),
    ("frames_table", ("pandas",), "pandas"),
])
def test_a_missing_dependency_says_what_to_install(dataset, monkeypatch, method, blocked, package):
    for module in blocked:
        monkeypatch.setitem(sys.modules, module, None)  # `import` now raises ImportError
    with pytest.raises(MissingDependencyError) as caught:
        getattr(dataset, method)()
    assert str(caught.value) == f"{method} needs {package}: pip install 'imagingdb[analysis]'"
    assert isinstance(caught.value, InputError) and caught.value.exit_code == 2


# ------------------------------------------------------------------ scale


def test_an_array_of_20000_frames_is_one_layer_built_without_reading(monkeypatch):
    """The graph is one blockwise layer over a dict of the rows: no task per frame is made
    until dask computes (a dask.delayed per frame took seconds at this size)."""
    import time
    from collections import namedtuple
    from functools import partial

    from imagingdb.acquisition import Dimensions
    from imagingdb.analysis import FrameSource, frame_array
    from imagingdb.download import Selection

    class Unreadable:
        def describe(self):
            return "nowhere"

        def get_bytes(self, key):
            raise AssertionError(f"read {key} while building the graph")

    Row = namedtuple("Row", "channel_idx slice_idx time_idx pos_idx file_name sha256")
    rows = [Row(c, z, t, p, f"im_c{c:03d}_z{z:03d}_t{t:03d}_p{p:03d}.png", "0" * 64)
            for p in range(2) for t in range(100) for c in range(2) for z in range(50)]
    source = FrameSource("ML-2005-05-23-10-00-00-0001", "raw_frames/X",
                         Dimensions(2, 50, 100, 2, 2048, 2048, 1, "uint16"), "png", Unreadable(),
                         partial(Unreadable))
    selection = Selection(channels=[0, 1], slices=list(range(50)), times=list(range(100)),
                          positions=[0, 1])
    started = time.perf_counter()
    array = frame_array(source, rows, selection)
    elapsed = time.perf_counter() - started
    assert array.npartitions == 20000 and array.shape == (2, 100, 2, 50, 2048, 2048)
    assert len(array.dask.layers) == 1
    assert elapsed < 5, f"{elapsed:.2f} s to build the graph of 20,000 frames"


# ------------------------------------------------------------------ S3


def test_to_dask_on_postgresql_and_s3(pg_s3_site, run_cli, upload_files, mm_ometiff):
    upload(run_cli, upload_files, mm_ometiff)
    with pg_s3_site.connect() as database:
        ds = database.dataset(DATASET_ID)
        array = ds.to_dask(channels=["GFP"], positions=[1, 0])
        np.testing.assert_array_equal(array.compute(), ds.read(channels=["GFP"], positions=[1, 0]))
        np.testing.assert_array_equal(ds.to_xarray().values, ds.read())
