"""The tif_id splitter: ImageJ hyperstacks and plain multi-page TIFFs, read back exactly."""

import numpy as np
import pytest
import tifffile

from imagingdb.sample import write_imagej_hyperstack, write_tiff_stack
from tests.conftest import DATASET_ID
from tests.helpers import assert_refused


def upload(run_cli, upload_files, source, **config):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    config_path = upload_files.config(upload_type="frames", frames_format="tif_id",
                                      microscope="confocal", **config)
    return run_cli("upload", "--csv", csv_path, "--config", config_path)


def pages(path):
    with tifffile.TiffFile(path) as tif:
        return [page.asarray() for page in tif.pages]


def test_imagej_hyperstack_round_trips_in_imagej_order(site, run_cli, upload_files, tmp_path):
    path = write_imagej_hyperstack(tmp_path / "hyper.tif", channels=2, slices=3, times=2,
                                   height=16, width=12, seed=7)
    assert upload(run_cli, upload_files, path).exit_code == 0
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        array = ds.read()
        dims = ds.dims
        assert ds.missing_frames() == []
        meta = ds.global_meta
    assert (dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints, dims.nbr_positions) == (2, 3, 2, 1)
    assert meta["image_description"]["channels"] == 2 and meta["file_origin"] == str(path)
    # ImageJ's order, independently: page i = channel i % C, slice i // C % Z, frame i // (C Z)
    for number, pixels in enumerate(pages(path)):
        c, z, t = number % 2, number // 2 % 3, number // 6
        np.testing.assert_array_equal(array[0, t, c, z], pixels)


def test_positions_key_places_positions_between_slices_and_frames(run_cli, upload_files, tmp_path):
    path = write_imagej_hyperstack(tmp_path / "multi.tif", channels=1, slices=2, times=2,
                                   positions=3, height=8, width=8, seed=8)
    assert upload(run_cli, upload_files, path).exit_code == 0
    import imagingdb

    with imagingdb.connect() as db:
        array = db.dataset(DATASET_ID).read()
    assert array.shape == (3, 2, 1, 2, 8, 8)
    for number, pixels in enumerate(pages(path)):
        z, p, t = number % 2, number // 2 % 3, number // 6
        np.testing.assert_array_equal(array[p, t, 0, z], pixels)


def test_plain_multipage_tiff_is_a_z_stack(run_cli, upload_files, tmp_path):
    path = write_tiff_stack(tmp_path / "stack.tif", slices=5, height=10, width=14, dtype="uint8")
    assert upload(run_cli, upload_files, path).exit_code == 0
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        array = ds.read()
        assert ds.channel_names() == {0: "channel0"}
    assert array.shape == (1, 1, 1, 5, 10, 14) and array.dtype == np.uint8
    np.testing.assert_array_equal(array[0, 0, 0], tifffile.imread(path))


def test_rgb_stack_round_trips(site, run_cli, upload_files, tmp_path):
    path = write_tiff_stack(tmp_path / "rgb.tif", slices=3, height=9, width=7, rgb=True)
    assert upload(run_cli, upload_files, path).exit_code == 0
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        array = ds.read()
        assert ds.dims.im_colors == 3
    assert array.shape == (1, 1, 1, 3, 9, 7, 3)
    np.testing.assert_array_equal(array[0, 0, 0], tifffile.imread(path))


def test_ml_names_give_global_metadata(run_cli, upload_files, tmp_path):
    path = write_tiff_stack(tmp_path / "PL17_0042_LMNB1_PyProcessed.tif", slices=2, height=8, width=8)
    assert upload(run_cli, upload_files, path, filename_parser="parse_ml_name").exit_code == 0
    import imagingdb

    with imagingdb.connect() as db:
        meta = db.dataset(DATASET_ID).global_meta
    assert (meta["plate_id"], meta["stack_nbr"], meta["protein_name"], meta["name_rest"]) == (
        "PL17", 42, "LMNB1", "PyProcessed")


def test_ml_parser_refuses_another_name(site, run_cli, upload_files, tmp_path):
    path = write_tiff_stack(tmp_path / "stack.tif", slices=2, height=8, width=8)
    before = site.snapshot()
    result = upload(run_cli, upload_files, path, filename_parser="parse_ml_name")
    assert_refused(result, site, before, contains=(
        str(path), "'stack.tif' does not match", "<plate id>_<stack number>_<protein name>_<rest>"))


def _float_stack(path):
    tifffile.imwrite(path, np.linspace(0, 1000, 3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8),
                     photometric="minisblack")


def _too_many_pages(path):
    with tifffile.TiffWriter(path) as writer:
        for number in range(5):
            writer.write(np.zeros((8, 8), np.uint16), contiguous=False, metadata=None,
                         description="ImageJ=1.54f\nimages=4\nchannels=2\nslices=2"
                         if number == 0 else None)


def _int32_stack(path):
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.int32))


def _not_a_tiff(path):
    path.write_text("plain text\n")


def _taller_than_its_data(path):
    """Page 1's ImageLength says 4,000 rows; its strip holds 8 (corrupt dimensions)."""
    tifffile.imwrite(path, np.ones((2, 8, 8), np.uint16), photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[1].tags["ImageLength"].valueoffset
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write((4000).to_bytes(2, "little"))


@pytest.mark.parametrize("make, message", [
    (_float_stack, "float32 pixels; PNG frames hold integers only and imagingdb never rounds "
                   "silently: convert the images to 16-bit first"),
    (_too_many_pages, "has 5 pages but its ImageDescription declares 4"),
    (_int32_stack, "int32 pixels"),
    (_not_a_tiff, "not a readable TIFF file"),
    (_taller_than_its_data, "page 1 declares (4000, 8) uint16 pixels (64000 bytes) but stores "
                            "128 bytes (corrupt file)"),
])
def test_bad_stack_is_refused_and_changes_nothing(site, run_cli, upload_files, tmp_path, make,
                                                  message):
    path = tmp_path / "bad.tif"
    make(path)
    before = site.snapshot()
    result = upload(run_cli, upload_files, path)
    assert_refused(result, site, before, contains=(str(path), message))


def test_a_folder_is_not_a_file(run_cli, upload_files, tmp_path):
    result = upload(run_cli, upload_files, tmp_path)
    assert result.exit_code == 2 and "tif_id takes one TIFF file" in result.errors[0]
