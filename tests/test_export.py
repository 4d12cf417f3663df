"""`export --to ome-zarr|ome-tiff` and `download` of an ome-zarr dataset, checked by other people's
readers: zarr-python and ome-zarr-models for stores, tifffile and ome-types for OME-TIFFs."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v05.hcs import HCS
from ome_zarr_models.v05.image import Image

import imagingdb
from imagingdb.errors import MissingFramesWarning
from tests.conftest import DATASET_ID

LAYOUTS = ["png", "ome-zarr"]


def upload(run_cli, upload_files, source, frame_format="png", frames_format="ome_tiff"):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source),
                                  "description": "export test"}])
    config = upload_files.config(upload_type="frames", frames_format=frames_format,
                                 microscope="scope2", frame_format=frame_format)
    result = run_cli("upload", "--csv", csv_path, "--config", config)
    assert result.exit_code == 0, result.stderr
    return DATASET_ID


@pytest.fixture(params=LAYOUTS)
def uploaded(request, run_cli, upload_files, mm_ometiff):
    """The mm_ometiff acquisition uploaded (embedded SQLite) in each frame layout."""
    return upload(run_cli, upload_files, mm_ometiff, request.param)


@pytest.fixture
def uploaded_zarr(run_cli, upload_files, mm_ometiff):
    return upload(run_cli, upload_files, mm_ometiff, "ome-zarr")


def read_back(dataset_id, **selection):
    with imagingdb.connect() as db:
        return db.dataset(dataset_id).read(**selection)


def validated_store(path, positions):
    """The store's root group, once ome-zarr-models accepts its plate and every image."""
    group = zarr.open_group(str(path), mode="r")
    plate = HCS.from_zarr(group)
    assert [well.path for well in plate.attributes.ome.plate.wells] == [f"0/{p}" for p in positions]
    for position in positions:
        Image.from_zarr(group[f"0/{position}/0"])
    return group


def assert_store_holds(group, expected, positions):
    """Every position's array equals ``expected`` (P, T, C, Z, Y, X), pixel for pixel."""
    for index, position in enumerate(positions):
        array = group[f"0/{position}/0/0"]
        assert array.shape == expected.shape[1:] and array.dtype == expected.dtype
        np.testing.assert_array_equal(array[...], expected[index])


# ------------------------------------------------------------------- OME-Zarr


def test_ome_zarr_export_reads_back_every_pixel(uploaded, run_cli, tmp_path):
    dest = tmp_path / "out.ome.zarr"
    result = run_cli("export", "--id", uploaded, "--to", "ome-zarr", dest)
    assert result.exit_code == 0, result.stderr
    assert "wrote OME-Zarr store" in result.stderr.splitlines()[-1]
    group = validated_store(dest, [0, 1])
    assert_store_holds(group, read_back(uploaded), [0, 1])
    channels = group["0/0/0"].attrs["ome"]["omero"]["channels"]
    assert [c["label"] for c in channels] == ["DAPI", "GFP"]
    assert not list(tmp_path.glob(".*partial*"))


def test_ome_zarr_export_of_a_selection_renumbers_all_but_positions(uploaded, run_cli, tmp_path):
    dest = tmp_path / "gfp.ome.zarr"
    result = run_cli("export", "--id", uploaded, "--to", "ome-zarr", "-c", "GFP", "-t", "1",
                     "-p", "1", dest)
    assert result.exit_code == 0, result.stderr
    group = validated_store(dest, [1])
    assert "0" not in group["0"]  # the one well keeps its position's name
    expected = read_back(uploaded, channels=["GFP"], times=[1], positions=[1])
    assert expected.shape == (1, 1, 1, 3, 32, 48)
    assert_store_holds(group, expected, [1])
    assert sorted(p.name for p in (dest / "0/1/0/0/c").iterdir()) == ["0"]  # t 1 -> 0
    assert group["0/1/0"].attrs["ome"]["omero"]["channels"][0]["label"] == "GFP"


def test_ome_zarr_export_keeps_the_order_asked(uploaded, tmp_path):
    with imagingdb.connect() as db:
        dest = db.dataset(uploaded).export(tmp_path / "out.zarr", to="ome-zarr",
                                           channels=["GFP", "DAPI"], slices=[2, 0])
    group = validated_store(dest, [0, 1])
    assert_store_holds(group, read_back(uploaded, channels=["GFP", "DAPI"], slices=[2, 0]),
                       [0, 1])


def test_ome_zarr_export_of_an_ome_zarr_dataset_copies_chunks_unchanged(uploaded_zarr, tmp_path):
    with imagingdb.connect() as db:
        ds = db.dataset(uploaded_zarr)
        dest = ds.export(tmp_path / "out.zarr", to="ome-zarr", times=[1], channels=["GFP"])
        stored = db.site.storage.get_bytes(f"{ds.storage_dir}/0/1/0/0/c/1/1/2/0/0")
    assert (dest / "0/1/0/0/c/0/0/2/0/0").read_bytes() == stored


def test_display_windows_cover_the_pixels(uploaded, tmp_path):
    with imagingdb.connect() as db:
        dest = db.dataset(uploaded).export(tmp_path / "out.zarr", to="ome-zarr")
    pixels = read_back(uploaded)
    for channel in zarr.open_group(str(dest))["0/0/0"].attrs["ome"]["omero"]["channels"]:
        window = channel["window"]
        assert pixels.min() <= window["start"] <= window["end"] <= pixels.max()
        assert window["end"] > window["start"]


def test_ome_zarr_export_from_s3(pg_s3_site, run_cli, upload_files, mm_ometiff, tmp_path):
    dataset_id = upload(run_cli, upload_files, mm_ometiff, "ome-zarr")
    dest = tmp_path / "from-s3.zarr"
    result = run_cli("export", "--id", dataset_id, "--to", "ome-zarr", "-p", "0", dest)
    assert result.exit_code == 0, result.stderr
    group = validated_store(dest, [0])
    assert_store_holds(group, read_back(dataset_id, positions=[0]), [0])
    tiff = tmp_path / "from-s3.ome.tif"
    assert run_cli("export", "--id", dataset_id, "--to", "ome-tiff", tiff).exit_code == 0
    with tifffile.TiffFile(tiff) as tif:
        np.testing.assert_array_equal(tif.series[1].asarray(), read_back(dataset_id)[1])


# ------------------------------------------------------------------- OME-TIFF


def series_array(series):
    """A series' pixels with its unsqueezed (T, C, Z, Y, X) shape."""
    assert series.get_axes(squeeze=False)[:5] == "TCZYX"
    return series.asarray().reshape(series.get_shape(squeeze=False)[:5])


def test_ome_tiff_export_has_a_series_per_position(uploaded, run_cli, tmp_path):
    import ome_types

    dest = tmp_path / "out.ome.tif"
    result = run_cli("export", "--id", uploaded, "--to", "ome-tiff", dest)
    assert result.exit_code == 0, result.stderr
    expected = read_back(uploaded)
    with tifffile.TiffFile(dest) as tif:
        assert len(tif.series) == 2
        for position, series in enumerate(tif.series):
            np.testing.assert_array_equal(series_array(series), expected[position])
        ome = ome_types.from_xml(tif.ome_metadata)
    assert len(ome.images) == 2
    for image in ome.images:
        assert [c.name for c in image.pixels.channels] == ["DAPI", "GFP"]
        assert (image.pixels.size_t, image.pixels.size_c, image.pixels.size_z) == (2, 2, 3)


@pytest.fixture(params=LAYOUTS)
def calibrated(request, run_cli, upload_files, tmp_path):
    """A Fiji hyperstack (pixel size 0.0941 µm, slice step 0.4 µm, frame interval 2.5 s,
    channels "a" and "b") uploaded in each frame layout."""
    from imagingdb.testing import write_fiji_hyperstack

    path = write_fiji_hyperstack(tmp_path / "fiji.tif", channels=2, slices=4, times=3,
                                 pixel_size=0.0941, spacing=0.4, finterval=2.5, seed=11)
    return upload(run_cli, upload_files, path, request.param, frames_format="tif_id")


def test_ome_tiff_export_records_the_calibration(calibrated, tmp_path):
    import ome_types

    with imagingdb.connect() as db:
        ds = db.dataset(calibrated)
        names = ds.channel_names()
        whole = ds.export(tmp_path / "all.ome.tif", to="ome-tiff")
        strided = ds.export(tmp_path / "strided.ome.tif", to="ome-tiff", slices=[0, 2],
                            times=[2, 0])
    for path, z_step in ((whole, 0.4), (strided, 0.8)):
        with tifffile.TiffFile(path) as tif:
            pixels = ome_types.from_xml(tif.ome_metadata).images[0].pixels
        assert [c.name for c in pixels.channels] == [names[0], names[1]]
        assert pixels.physical_size_x == pytest.approx(0.0941)
        assert pixels.physical_size_y == pytest.approx(0.0941)
        assert pixels.physical_size_x_unit.value == "µm"
        assert pixels.physical_size_z == pytest.approx(z_step)
    assert pixels.time_increment is None  # times 2, 0: no one step forward between them
    with tifffile.TiffFile(whole) as tif:
        pixels = ome_types.from_xml(tif.ome_metadata).images[0].pixels
    assert pixels.time_increment == pytest.approx(2.5) and pixels.time_increment_unit.value == "s"


def test_ome_zarr_export_records_the_calibration(calibrated, tmp_path):
    with imagingdb.connect() as db:
        dest = db.dataset(calibrated).export(tmp_path / "out.zarr", to="ome-zarr", slices=[1, 3])
    multiscale = validated_store(dest, [0])["0/0/0"].attrs["ome"]["multiscales"][0]
    (transform,) = multiscale["datasets"][0]["coordinateTransformations"]
    assert transform["scale"] == pytest.approx([2.5, 1.0, 0.8, 0.0941, 0.0941])
    assert [a.get("unit") for a in multiscale["axes"]] == [
        "second", None, "micrometer", "micrometer", "micrometer"]


def test_ome_tiff_export_of_a_selection(uploaded, run_cli, tmp_path):
    import ome_types

    dest = tmp_path / "gfp.ome.tif"
    result = run_cli("export", "--id", uploaded, "--to", "ome-tiff", "-c", "GFP,DAPI", "-z", "2,0",
                     "-t", "1", "-p", "1", dest)
    assert result.exit_code == 0, result.stderr
    expected = read_back(uploaded, channels=["GFP", "DAPI"], slices=[2, 0], times=[1],
                         positions=[1])
    with tifffile.TiffFile(dest) as tif:
        assert len(tif.series) == 1
        np.testing.assert_array_equal(series_array(tif.series[0]), expected[0])
        ome = ome_types.from_xml(tif.ome_metadata)
    assert [c.name for c in ome.images[0].pixels.channels] == ["GFP", "DAPI"]


def test_ome_tiff_export_of_rgb_frames_keeps_their_samples(run_cli, upload_files, tmp_path):
    from imagingdb.testing import write_mm_tif_folder

    folder = tmp_path / "rgb"
    write_mm_tif_folder(folder, channels=("BF",), slices=2, times=2, height=16, width=12,
                        rgb=True, seed=4)
    dataset_id = upload(run_cli, upload_files, folder, frames_format="tif_folder")
    dest = tmp_path / "rgb.ome.tif"
    result = run_cli("export", "--id", dataset_id, "--to", "ome-tiff", dest)
    assert result.exit_code == 0, result.stderr
    with tifffile.TiffFile(dest) as tif:
        (series,) = tif.series
        assert series.get_axes(squeeze=False) == "TCZYXS"
        np.testing.assert_array_equal(series.asarray().reshape(2, 1, 2, 16, 12, 3),
                                      read_back(dataset_id)[0])
    refused = run_cli("export", "--id", dataset_id, "--to", "ome-zarr", tmp_path / "rgb.zarr")
    assert refused.exit_code == 2 and "RGB" in refused.errors[0]
    assert not (tmp_path / "rgb.zarr").exists()


def test_missing_frames_are_zeros_and_said(run_cli, upload_files, tmp_path):
    from imagingdb.testing import write_mm_ometiff

    folder = tmp_path / "incomplete"
    write_mm_ometiff(folder, channels=("DAPI", "GFP"), slices=2, times=2, positions=1,
                     height=16, width=16, drop=[(1, 1, 1, 0)])
    dataset_id = upload(run_cli, upload_files, folder)
    dest = tmp_path / "out.ome.tif"
    result = run_cli("export", "--id", dataset_id, "--to", "ome-tiff", dest)
    assert result.exit_code == 0, result.stderr
    assert any("1 of the 8 frames" in line and "zeros" in line for line in result.stderr.splitlines()
               if line.startswith("Warning:"))
    with tifffile.TiffFile(dest) as tif:
        pages = series_array(tif.series[0])
    assert not pages[1, 1, 1].any() and pages[0, 0, 0].any()
    with imagingdb.connect() as db, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = db.dataset(dataset_id).export(tmp_path / "out.zarr", to="ome-zarr")
    assert any(issubclass(w.category, MissingFramesWarning) for w in caught)
    array = validated_store(store, [0])["0/0/0/0"]
    assert not array[1, 1, 1].any() and not (store / "0/0/0/0/c/1/1/1/0/0").exists()


# ------------------------------------------------------------------- download


def test_download_of_an_ome_zarr_dataset_is_a_store(uploaded_zarr, run_cli, tmp_path):
    result = run_cli("download", "--id", uploaded_zarr, "--dest", tmp_path / "data",
                     "-c", "GFP", "-t", "1")
    assert result.exit_code == 0, result.stderr
    target = tmp_path / "data" / uploaded_zarr
    group = validated_store(target, [0, 1])
    expected = read_back(uploaded_zarr, channels=["GFP"], times=[1])
    assert_store_holds(group, expected, [0, 1])
    assert json.loads((target / "global_metadata.json").read_text())["frame_format"] == "ome-zarr"
    with open(target / "frames_meta.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {r["channel_name"] for r in rows} == {"GFP"}
    for row in rows:  # file_name: the frame's chunk in the downloaded store
        assert (target / row["file_name"]).is_file()
        assert row["file_name"] == f"0/{row['pos_idx']}/0/0/c/0/0/{row['slice_idx']}/0/0"
        chunk = group[f"0/{row['pos_idx']}/0/0"][0, 0, int(row["slice_idx"])]
        np.testing.assert_array_equal(chunk, expected[int(row["pos_idx"]), 0, 0,
                                                      int(row["slice_idx"])])


def test_download_of_an_ome_zarr_dataset_keeps_the_metadata_flags(uploaded_zarr, tmp_path):
    with imagingdb.connect() as db:
        ds = db.dataset(uploaded_zarr)
        only_store = ds.download(tmp_path / "a", metadata=False)
        only_metadata = ds.download(tmp_path / "b", download=False)
    assert not (only_store / "frames_meta.csv").exists()
    assert not (only_store / "global_metadata.json").exists()
    validated_store(only_store, [0, 1])
    assert not (only_store / "frames_meta.jsonl").exists()
    assert sorted(p.name for p in only_metadata.iterdir()) == [
        "frames_meta.csv", "frames_meta.jsonl", "global_metadata.json"]


def test_download_of_a_png_dataset_is_unchanged(run_cli, upload_files, mm_ometiff, tmp_path):
    dataset_id = upload(run_cli, upload_files, mm_ometiff, "png")
    with imagingdb.connect() as db:
        target = db.dataset(dataset_id).download(tmp_path, channels=["GFP"], times=[0])
    names = sorted(p.name for p in target.iterdir())
    assert names == sorted(["frames_meta.csv", "frames_meta.jsonl", "global_metadata.json"]
                           + [f"im_c001_z00{z}_t000_p00{p}.png" for z in range(3) for p in range(2)])


# ------------------------------------------------------------------- refusals


@pytest.mark.parametrize("to", ["ome-zarr", "ome-tiff"])
def test_existing_destination_is_refused_and_left_alone(uploaded_zarr, run_cli, tmp_path, to):
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    result = run_cli("export", "--id", uploaded_zarr, "--to", to, dest)
    assert result.exit_code == 2
    assert len(result.errors) == 1 and str(dest) in result.errors[0]
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_symlinked_destination_is_refused(uploaded_zarr, run_cli, tmp_path):
    dest = tmp_path / "link.zarr"
    dest.symlink_to(tmp_path / "elsewhere")
    result = run_cli("export", "--id", uploaded_zarr, "--to", "ome-zarr", dest)
    assert result.exit_code == 2 and "symbolic link" in result.errors[0]
    assert not (tmp_path / "elsewhere").exists()


def test_a_file_dataset_is_refused(run_cli, upload_files, mm_ometiff, tmp_path):
    path = sorted(mm_ometiff.glob("*.ome.tif"))[0]
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(path)}])
    assert run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config()).exit_code == 0
    result = run_cli("export", "--id", DATASET_ID, "--to", "ome-tiff", tmp_path / "out.ome.tif")
    assert result.exit_code == 2 and "use download" in result.errors[0]
    assert list(tmp_path.glob("out*")) == []


@pytest.mark.parametrize("args, message", [
    (["--to", "tiff"], "'tiff' is not one of"),
    (["--to", "ome-zarr", "-c", "RFP"], "has no channel 'RFP'"),
    (["--to", "ome-zarr", "-t", "7"], "has no time index 7"),
])
def test_bad_input_is_one_error_line(uploaded_zarr, run_cli, tmp_path, args, message):
    exports = tmp_path / "exports"
    result = run_cli("export", "--id", uploaded_zarr, *args, exports / "out")
    assert result.exit_code == 2
    assert len(result.errors) == 1 and message in result.errors[0]
    assert not exports.exists()


def test_unknown_format_is_refused_by_the_api(uploaded_zarr, tmp_path):
    from imagingdb.errors import InputError

    with imagingdb.connect() as db, pytest.raises(InputError, match="ome-zarr, ome-tiff"):
        db.dataset(uploaded_zarr).export(tmp_path / "out", to="zarr")


@pytest.mark.parametrize("to", ["ome-zarr", "ome-tiff"])
def test_failure_midway_leaves_nothing(uploaded, tmp_path, monkeypatch, to):
    from imagingdb.errors import WorkError

    with imagingdb.connect() as db:
        storage = db.site.storage
        calls = {"n": 0}
        real_get_bytes, real_get_file = storage.get_bytes, storage.get_file

        def failing(real):
            def fetch(key, *args):
                calls["n"] += 1
                if calls["n"] > 5:
                    raise WorkError("storage went away")
                return real(key, *args)
            return fetch

        monkeypatch.setattr(storage, "get_bytes", failing(real_get_bytes))
        monkeypatch.setattr(storage, "get_file", failing(real_get_file))
        with pytest.raises(WorkError, match="went away"):
            db.dataset(uploaded).export(tmp_path / "exports" / "out", to=to)
    assert list((tmp_path / "exports").iterdir()) == []


def test_a_destination_appearing_while_writing_is_not_replaced(uploaded_zarr, tmp_path,
                                                               monkeypatch):
    from imagingdb import export
    from imagingdb.errors import WorkError

    dest = tmp_path / "exports" / "out.ome.tif"
    real = export.write_ome_tiff

    def racing(source, path, **kwargs):
        real(source, path, **kwargs)
        dest.write_text("someone else's")

    monkeypatch.setattr(export, "write_ome_tiff", racing)
    with imagingdb.connect() as db, pytest.raises(WorkError, match="appeared while"):
        db.dataset(uploaded_zarr).export(dest, to="ome-tiff")
    assert dest.read_text() == "someone else's"
    assert [p.name for p in dest.parent.iterdir()] == ["out.ome.tif"]


@pytest.mark.parametrize("to", ["ome-zarr", "ome-tiff"])
def test_export_streams_frames_never_reading_the_selection_whole(uploaded, tmp_path, monkeypatch,
                                                                 to):
    import imagingdb.download

    def whole(*args, **kwargs):
        raise AssertionError("the selection was read into one array")

    monkeypatch.setattr(imagingdb.download, "read_frames", whole)
    with imagingdb.connect() as db:
        db.dataset(uploaded).export(tmp_path / "out", to=to)
    assert (tmp_path / "out").exists()


def test_a_large_ome_tiff_is_bigtiff(uploaded_zarr, tmp_path, monkeypatch):
    from imagingdb import export

    with imagingdb.connect() as db:
        ds = db.dataset(uploaded_zarr)
        small = ds.export(tmp_path / "small.ome.tif", to="ome-tiff")
        monkeypatch.setattr(export, "BIGTIFF_ABOVE", 1000)  # "large": above 1000 bytes
        large = ds.export(tmp_path / "large.ome.tif", to="ome-tiff")
    with tifffile.TiffFile(small) as tif:
        assert not tif.is_bigtiff
    with tifffile.TiffFile(large) as tif:
        assert tif.is_bigtiff and len(tif.series) == 2
        np.testing.assert_array_equal(series_array(tif.series[0]), read_back(uploaded_zarr)[0])
