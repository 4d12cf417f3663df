"""The tif_id splitter: ImageJ hyperstacks and plain multi-page TIFFs, read back exactly."""

import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from imagingdb.testing import (
    write_bioformats_ometiff,
    write_fiji_hyperstack,
    write_imagej_hyperstack,
    write_mm_ometiff,
    write_tiff_stack,
    write_tifffile_stack,
)
from tests.conftest import DATASET_ID
from tests.helpers import assert_refused
from tests.test_ome_xml import series_as_ptczyx


def upload(run_cli, upload_files, source, **config):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    config_path = upload_files.config(upload_type="frames", frames_format="tif_id",
                                      microscope="confocal", **config)
    return run_cli("upload", "--csv", csv_path, "--config", config_path)


def upload_auto(run_cli, upload_files, source, **config):
    """Upload with frames_format left out: imagingdb chooses."""
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    config_path = upload_files.config(upload_type="frames", microscope="confocal", **config)
    return run_cli("upload", "--csv", csv_path, "--config", config_path)


def stored():
    """(dataset, (P, T, C, Z, Y, X) array, frame metadata by (c, z, t)) of DATASET_ID."""
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        ds.dims, ds.global_meta, ds.channel_names()  # loaded while connected
        frames = {(f["channel_idx"], f["slice_idx"], f["time_idx"]): f["metadata_json"]
                  for f in ds.frames()}
        return ds, ds.read(), frames


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


def _patched_width_entry(path, at, value):
    """Page 0's ImageWidth entry with ``value`` written ``at`` bytes into it."""
    tifffile.imwrite(path, np.ones((2, 8, 8), np.uint16), photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[0].tags["ImageWidth"].offset
    with open(path, "r+b") as handle:
        handle.seek(offset + at)
        handle.write(value)


def _no_pixels(path):
    _patched_width_entry(path, 8, (0).to_bytes(4, "little"))  # ImageWidth 0


def _width_with_two_values(path):
    _patched_width_entry(path, 4, (2).to_bytes(4, "little"))  # ImageWidth's count: 2


@pytest.mark.parametrize("make, message", [
    (_no_pixels, "page 0 has no pixels (shape (8, 0))"),
    (_width_with_two_values, "page 0 cannot be read, the file is truncated or corrupt"),
    (_float_stack, "float32 pixels cannot be stored as PNG frames: PNG frames hold integers only "
                   "and imagingdb never rounds silently: convert the images to 16-bit first"),
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


# ------------------------------------------- the dimensions a file declares


def test_fiji_hyperstack_keeps_info_labels_and_calibration(run_cli, upload_files, tmp_path):
    labels = [f"c:{c + 1}/2 z:{z + 1}/4 - cell 7" for z in range(4) for c in range(2)]
    path = write_fiji_hyperstack(tmp_path / "fiji.tif", channels=2, slices=4, times=1,
                                 info=" SizeC = 2\n SizeZ = 4\nObjective = 63x/1.4 Oil",
                                 labels=labels, seed=11)
    result = upload_auto(run_cli, upload_files, path)
    assert ("ImageJ hyperstack (ImageJ 1.53f; C2 Z4); frames_format auto chose tif_id"
            in result.stderr), result.stderr
    ds, array, frames = stored()
    assert (ds.dims.nbr_channels, ds.dims.nbr_slices, ds.dims.nbr_timepoints) == (2, 4, 1)
    np.testing.assert_array_equal(np.moveaxis(array[0, 0], 0, 1), tifffile.imread(path))  # ZCYX
    meta = ds.global_meta
    assert meta["imagej_metadata"]["Info"] == " SizeC = 2\n SizeZ = 4\nObjective = 63x/1.4 Oil"
    assert meta["imagej_metadata"]["Labels"] == labels
    assert meta["imagej_metadata"]["Ranges"] == [100.0, 6100.0] * 2
    assert meta["image_description"]["unit"] == "µm" and meta["image_description"]["spacing"] == 0.4
    assert meta["physical_size"] == pytest.approx(
        {"x": 0.0941, "x_unit": "µm", "y": 0.0941, "y_unit": "µm", "z": 0.4, "z_unit": "µm"})
    for number, label in enumerate(labels):
        assert frames[number % 2, number // 2, 0]["Label"] == label
        assert "ImageDescription" not in frames[number % 2, number // 2, 0]  # kept once, globally


def test_fiji_time_series_with_its_frame_interval(run_cli, upload_files, tmp_path):
    path = write_fiji_hyperstack(tmp_path / "t.tif", channels=1, slices=1, times=3,
                                 dtype="uint8", finterval=2.5, unit=None, spacing=None,
                                 seed=12)
    assert upload_auto(run_cli, upload_files, path).exit_code == 0
    ds, array, _frames = stored()
    assert (ds.dims.nbr_slices, ds.dims.nbr_timepoints) == (1, 3)
    np.testing.assert_array_equal(array[0, :, 0, 0], tifffile.imread(path))
    assert ds.global_meta["physical_size"] == {"time_increment": 2.5, "time_unit": "sec"}


PRIVATE_TAG = 65000


def write_two_descriptions(path, frames, first, second):
    """Pages whose page 0 has two ImageDescription tags, as Micro-Manager writes them (its
    OME-XML, then its ImageJ header). tifffile writes one only; the second is written under a
    private tag whose number is then changed to ImageDescription's."""
    with tifffile.TiffWriter(path) as writer:
        for number, pixels in enumerate(frames):
            writer.write(pixels, contiguous=False, metadata=None,
                         description=first if number == 0 else None,
                         extratags=[(PRIVATE_TAG, "s", 0, second, True)] if number == 0 else [])
    with open(path, "r+b") as handle:
        handle.seek(4)
        handle.seek(int.from_bytes(handle.read(4), "little"))
        start = handle.tell() + 2
        for entry in range(int.from_bytes(handle.read(2), "little")):
            handle.seek(start + 12 * entry)
            if int.from_bytes(handle.read(2), "little") == PRIVATE_TAG:
                handle.seek(start + 12 * entry)
                handle.write((270).to_bytes(2, "little"))


def test_imagej_header_in_the_second_description_with_z_fastest(run_cli, upload_files, tmp_path):
    """Micro-Manager's place for the header (after its OME-XML), and its order=zct."""
    path = tmp_path / "second.tif"
    planes = {(c, z): np.full((6, 5), 10 * c + z, np.uint16) for c in range(2) for z in range(3)}
    write_two_descriptions(path, (planes[c, z] for c in range(2) for z in range(3)),
                           "Acquired with LabScope 3.1",
                           "ImageJ=1.48v\nchannels=2\nslices=3\nhyperstack=true\norder=zct\n")
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].description == "Acquired with LabScope 3.1"
        assert "order=zct" in tif.pages[0].description1
    assert upload(run_cli, upload_files, path).exit_code == 0
    ds, array, _frames = stored()
    assert (ds.dims.nbr_channels, ds.dims.nbr_slices) == (2, 3)
    for (c, z), pixels in planes.items():
        np.testing.assert_array_equal(array[0, 0, c, z], pixels)
    assert ds.global_meta["image_description_found_in"] == "second ImageDescription"
    assert ds.global_meta["first_image_description"] == "Acquired with LabScope 3.1"


@pytest.mark.parametrize("axes, shape", [("TZCYX", (2, 3, 2)), ("CTZYX", (2, 2, 3)),
                                         ("ZCYX", (4, 3))])
def test_tifffile_axes_place_every_page(run_cli, upload_files, tmp_path, axes, shape):
    path = write_tifffile_stack(tmp_path / "shaped.tif", axes=axes, shape=shape, seed=13)
    result = upload_auto(run_cli, upload_files, path)
    assert f"tifffile stack ({axes}:" in result.stderr, result.stderr
    ds, array, _frames = stored()
    sizes = dict(zip(axes, shape))
    assert (ds.dims.nbr_channels, ds.dims.nbr_slices, ds.dims.nbr_timepoints) == (
        sizes.get("C", 1), sizes.get("Z", 1), sizes.get("T", 1))
    data = tifffile.imread(path)
    letters = axes[:-2]
    for index in np.ndindex(*shape):
        at = dict(zip(letters, index))
        np.testing.assert_array_equal(array[0, at.get("T", 0), at.get("C", 0), at.get("Z", 0)],
                                      data[index])


@pytest.mark.parametrize("sequence_axis", [None, "t"])
def test_a_stack_without_dimension_metadata_runs_along_sequence_axis(run_cli, upload_files,
                                                                    tmp_path, sequence_axis):
    path = write_tifffile_stack(tmp_path / "seq.tif", axes=None, shape=(4,), seed=14)
    extra = {"sequence_axis": sequence_axis} if sequence_axis else {}
    result = upload(run_cli, upload_files, path, **extra)
    assert result.exit_code == 0, result.stderr
    ds, array, _frames = stored()
    along = (1, 4) if sequence_axis else (4, 1)
    assert (ds.dims.nbr_slices, ds.dims.nbr_timepoints) == along
    data = tifffile.imread(path)
    stored_pages = array[0, :, 0, :] if sequence_axis else array[0, 0, 0]
    np.testing.assert_array_equal(stored_pages.reshape(data.shape), data)


def test_one_image_ome_tiff_is_read_as_ome_tiff_reads_it(run_cli, upload_files, tmp_path):
    [path] = write_bioformats_ometiff(tmp_path / "one.ome.tif", slices=3, times=2, seed=15)
    assert upload(run_cli, upload_files, path).exit_code == 0
    ds, array, frames = stored()
    assert ds.channel_names() == {0: "DAPI", 1: "GFP"}
    np.testing.assert_array_equal(array, series_as_ptczyx(path))
    assert ds.global_meta["ome_xml"] == tifffile.TiffFile(path).pages[0].description
    assert frames[1, 2, 1]["ExposureTime"] == 15.0


def _several_ome_images(tmp_path):
    [path] = write_bioformats_ometiff(tmp_path / "two.ome.tif", images=2, slices=1, times=1)
    return path, ("holds 2 OME Images (positions); tif_id reads one image: use frames_format: "
                  "ome_tiff")


def _micromanager_ome_tiff(tmp_path):
    [path] = write_mm_ometiff(tmp_path / "mm", "mm", positions=1, slices=2, times=1,
                              height=8, width=8)
    # ome_tiff claims it as its own, so the explicit tif_id is refused up front
    return path, ("is a Micro-Manager 1.4 OME-TIFF (1 file), which frames_format tif_id would not "
                  "read as it was recorded; use frames_format: ome_tiff",)


def _images_disagree_with_sizes(tmp_path):
    path = tmp_path / "six.tif"
    tifffile.imwrite(path, np.zeros((6, 8, 8), np.uint16), metadata=None,
                     description="ImageJ=1.54f\nimages=6\nchannels=2\nslices=2\n")
    return path, ("declares images=6 but channels=2 x slices=2 x frames=1 = 4",)


def _unknown_page_order(tmp_path):
    path = tmp_path / "order.tif"
    tifffile.imwrite(path, np.zeros((4, 8, 8), np.uint16), metadata=None, photometric="minisblack",
                     description="ImageJ=1.54f\nimages=4\nchannels=2\nslices=2\norder=tcz\n")
    return path, ("order='tcz' is not a page order ImageJ knows",)


def _shape_without_axes(tmp_path):
    path = write_tifffile_stack(tmp_path / "noaxes.tif", axes=None, shape=(2, 3))
    return path, ("declares shape (2, 3, 16, 12) without axes", "re-write it with axes")


def _axis_with_no_place(tmp_path):
    path = write_tifffile_stack(tmp_path / "angle.tif", axes="ZAYX", shape=(2, 3))
    return path, ("have A=3, which is not one of channels (C), slices (Z) or time (T)",)


def _imagej_over_4gb_layout(tmp_path):
    """ImageJ's format for files over 4 GB: one page directory, the images one after another."""
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16), metadata=None,
                     description="ImageJ=1.54f\nimages=3\nslices=3\n")
    with open(path, "ab") as handle:
        handle.write(np.ones((2, 8, 8), np.uint16).tobytes())
    return path, ("declares 3 images in one contiguous block with a single page directory",
                  "re-save it with Fiji or tifffile")


@pytest.mark.parametrize("make", [_several_ome_images, _micromanager_ome_tiff,
                                  _images_disagree_with_sizes, _unknown_page_order,
                                  _shape_without_axes, _axis_with_no_place,
                                  _imagej_over_4gb_layout])
def test_dimensions_tif_id_cannot_use_are_refused(site, run_cli, upload_files, tmp_path, make):
    path, messages = make(tmp_path)
    before = site.snapshot()
    result = upload(run_cli, upload_files, path)
    assert_refused(result, site, before, contains=(str(path), *messages))


@pytest.mark.parametrize("plugins_loaded, message", [
    # the NDTiff plugin claims its stack files, so frames_format tif_id is refused up front
    (True, "is a stack file of a Micro-Manager NDTiff 3.3 dataset, which frames_format tif_id "
           "would not read as it was recorded; use frames_format: ndtiff"),
    # without the plugin, tif_id itself recognises an NDTiff stack
    (False, "is an NDTiff stack"),
])
def test_an_ndtiff_stack_is_refused_naming_ndtiff(site, run_cli, upload_files, tmp_path,
                                                 monkeypatch, plugins_loaded, message):
    from imagingdb import plugins

    if not plugins_loaded:
        monkeypatch.setenv("IMAGINGDB_LOAD_PLUGINS", "")  # built-in splitters only
    plugins.reset_for_tests()
    ndtiff = pytest.importorskip("ndtiff")
    # ndtiff's writer needs images of at least 8 KB (64x64 uint16) to read its own header back
    dataset = ndtiff.NDTiffDataset(str(tmp_path / "nd"), name="acq", writable=True,
                                   summary_metadata={"PixelType": "GRAY16"})
    for z in range(2):
        dataset.put_image({"z": z}, np.full((64, 64), z, np.uint16), {"z": z})
    dataset.finish()
    [stack] = Path(dataset.path).glob("*NDTiffStack.tif")
    before = site.snapshot()
    try:
        result = upload(run_cli, upload_files, stack)
    finally:
        plugins.reset_for_tests()  # the next test loads every plugin again
    assert_refused(result, site, before, contains=(str(stack), message, "ndtiff"))


# ------------------------------------------------------------------ damaged declarations


def _one_page(path, description):
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16), metadata=None, description=description)
    return path


@pytest.mark.parametrize("description, declared", [
    ("ImageJ=1.54f\nimages=1000000000000\nchannels=1000000000000\n", "1,000,000,000,000"),
    ("ImageJ=1.54f\nimages=1000000000\nframes=1000000000\n", "1,000,000,000"),
    ('{"shape": [1000000000, 8, 8]}', "1,000,000,000"),  # tifffile's, without axes
], ids=["imagej channels", "imagej frames", "tifffile shape"])
def test_a_header_declaring_more_than_any_acquisition_is_refused_at_once(
        site, run_cli, upload_files, tmp_path, description, declared):
    """Refused before anything is sized from it (a channel name per channel, a missing frame
    per frame never written): not an out-of-memory crash, nor a dataset of a billion slots."""
    path = _one_page(tmp_path / "huge.tif", description)
    before = site.snapshot()
    started = time.monotonic()
    result = upload_auto(run_cli, upload_files, path)
    assert time.monotonic() - started < 5
    assert_refused(result, site, before, contains=(
        str(path), f"declares {declared} frames", "store the file whole with upload_type: file"))


@pytest.mark.parametrize("shape", ["[-2, 8, 8]", "[2.5, 8, 8]", "[0, 8, 8]", "[true, 8, 8]",
                                   '["2", 8, 8]'])
def test_a_tifffile_shape_of_anything_but_positive_integers_is_refused(
        site, run_cli, upload_files, tmp_path, shape):
    path = _one_page(tmp_path / "shaped.tif", f'{{"shape": {shape}}}')
    before = site.snapshot()
    result = upload(run_cli, upload_files, path)
    assert_refused(result, site, before, contains=(
        str(path), "every size must be a positive integer"))


@pytest.mark.parametrize("sequence_axis", [None, "t"])
def test_an_imagej_stack_of_images_only_runs_along_sequence_axis(run_cli, upload_files,
                                                                tmp_path, sequence_axis):
    """images=N alone is the plain stack's ambiguity: z by default, t when the config says so."""
    path = tmp_path / "stack.tif"
    data = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    tifffile.imwrite(path, data, metadata=None, photometric="minisblack",
                     description="ImageJ=1.54f\nimages=3\n")
    extra = {"sequence_axis": sequence_axis} if sequence_axis else {}
    result = upload(run_cli, upload_files, path, **extra)
    assert result.exit_code == 0, result.stderr
    ds, array, _frames = stored()
    assert (ds.dims.nbr_slices, ds.dims.nbr_timepoints) == ((1, 3) if sequence_axis else (3, 1))
    np.testing.assert_array_equal(array[0, :, 0, :].reshape(data.shape), data)
