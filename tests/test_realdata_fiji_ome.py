"""The real Fiji, ImageJ and Bio-Formats files in ../shared/realdata, uploaded with frames_format
left out: dimensions, channel names, every pixel against tifffile, metadata kept.

The folder sits beside the repository (``<repo root>/../shared/realdata``; a
worktree elsewhere can point ``IMAGINGDB_REALDATA`` at it); without it these
tests are skipped.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from imagingdb.acquisition import FrameIndex
from imagingdb.splitters import imagej
from tests.realdata import REALDATA
from tests.test_ome_xml import series_as_ptczyx, stored, upload

NEUBIAS = REALDATA / "NEUBIAS"
BIOFORMATS = REALDATA / "bioformats-samples" / "2010-04_18x24y5z5t2c8b-text.ome-v2010-06.ome.tiff"

pytestmark = pytest.mark.skipif(not REALDATA.is_dir(), reason=f"{REALDATA} is absent")


def imagej_metadata(path):
    with tifffile.TiffFile(path) as tif:
        return tif.imagej_metadata


def uploaded(run_cli, upload_files, source, fmt):
    result = upload(run_cli, upload_files, source)
    assert result.exit_code == 0, result.stderr
    assert f"frames_format auto chose {fmt}" in result.stderr, result.stderr
    return result, stored()


def test_fiji_hyperstack_spots(run_cli, upload_files):
    path = NEUBIAS / "xyzc_16bit__spots.tif"
    result, (ds, array, frames, missing) = uploaded(run_cli, upload_files, path, "tif_id")
    assert "ImageJ hyperstack (ImageJ 1.53f; C2 Z17)" in result.stderr
    dims = ds.dims
    assert (dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints, dims.nbr_positions,
            dims.im_height, dims.im_width, dims.bit_depth) == (2, 17, 1, 1, 88, 89, "uint16")
    assert ds.channel_names() == {0: "channel0", 1: "channel1"} and missing == []
    np.testing.assert_array_equal(np.moveaxis(array[0, 0], 0, 1), tifffile.imread(path))
    meta = ds.global_meta
    header = meta["image_description"]
    assert (header["unit"], header["spacing"], header["mode"], header["min"], header["max"]) == (
        "µm", pytest.approx(0.4), "composite", 200.0, 47602.0)
    assert meta["imagej_metadata"]["Ranges"] == [200.0, 47602.0, 200.0, 47602.0]
    expected_luts = [lut.tolist() for lut in imagej_metadata(path)["LUTs"]]
    assert meta["imagej_metadata"]["LUTs"] == expected_luts
    assert meta["physical_size"] == pytest.approx({
        "x": 1e6 / 10623103, "x_unit": "µm", "y": 1e6 / 10623103, "y_unit": "µm",
        "z": 0.4, "z_unit": "µm"})


@pytest.mark.parametrize("name, axis, size", [("xyz_8bit__nucleus.tif", "slice", 7),
                                              ("xyt_8bit_polyp.tif", "time", 3)])
def test_imagej_stacks_keep_info_and_every_label(run_cli, upload_files, name, axis, size):
    path = NEUBIAS / name
    _result, (ds, array, frames, missing) = uploaded(run_cli, upload_files, path, "tif_id")
    dims = ds.dims
    assert (dims.nbr_slices, dims.nbr_timepoints, dims.nbr_channels) == (
        (size, 1, 1) if axis == "slice" else (1, size, 1))
    stack = array[0, 0, 0] if axis == "slice" else array[0, :, 0, 0]
    np.testing.assert_array_equal(stack, tifffile.imread(path))
    expected = imagej_metadata(path)
    kept = ds.global_meta["imagej_metadata"]
    assert kept["Labels"] == list(expected["Labels"]) and len(kept["Labels"]) == size
    assert kept.get("Info") == expected.get("Info")
    for number, label in enumerate(expected["Labels"]):
        index = FrameIndex(0, number, 0, 0) if axis == "slice" else FrameIndex(0, 0, number, 0)
        assert frames[index]["metadata_json"].get("Label") == (label or None)


def test_nucleus_info_is_kept_whole(run_cli, upload_files):
    path = NEUBIAS / "xyz_8bit__nucleus.tif"
    _result, (ds, _array, _frames, _missing) = uploaded(run_cli, upload_files, path, "tif_id")
    info = ds.global_meta["imagej_metadata"]["Info"]
    assert len(info) == 54294 // 2 and info.startswith(" BitsPerPixel = 8\n")  # UTF-16 bytes


def test_fiji_image_sequence_em_volume(run_cli, upload_files):
    folder = NEUBIAS / "xyz_8bit__em_volume_tiff_series"
    result, (ds, array, frames, missing) = uploaded(run_cli, upload_files, folder,
                                                    "image_sequence")
    assert "image sequence (21 files, along z)" in result.stderr
    assert (ds.dims.nbr_slices, ds.dims.nbr_timepoints, ds.dims.im_height) == (21, 1, 256)
    assert missing == [] and ds.global_meta["sequence_first_number"] == 0
    for z in range(21):
        path = folder / f"c_elegans_em_z{z:04d}.tif"
        np.testing.assert_array_equal(array[0, 0, 0, z], tifffile.imread(path))
    assert ds.global_meta["file_name_pattern"] == "c_elegans_em_z<number>.tif"
    assert ds.global_meta["physical_size"] == {"x": 1.0, "x_unit": "pixel", "y": 1.0,
                                               "y_unit": "pixel"}


def test_bioformats_ome_tiff(run_cli, upload_files):
    result, (ds, array, frames, missing) = uploaded(run_cli, upload_files, BIOFORMATS, "ome_tiff")
    assert "OME-TIFF written by LOCI Bio-Formats (1 image, T5 C2 Z5)" in result.stderr
    dims = ds.dims
    assert (dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints, dims.nbr_positions,
            dims.im_height, dims.im_width) == (2, 5, 5, 1, 24, 18)
    assert ds.channel_names() == {0: "channel0", 1: "channel1"} and missing == []
    np.testing.assert_array_equal(array, series_as_ptczyx(BIOFORMATS))
    with tifffile.TiffFile(BIOFORMATS) as tif:
        assert ds.global_meta["ome_xml"] == tif.pages[0].description  # 11,046 characters
    assert ds.global_meta["ome_images"][0]["acquisition_date"] == "2010-03-02T10:01:15"


def test_bioformats_ome_tiff_through_tif_id_is_read_alike(run_cli, upload_files):
    result = upload(run_cli, upload_files, BIOFORMATS, frames_format="tif_id")
    assert result.exit_code == 0, result.stderr
    _ds, array, _frames, _missing = stored()
    np.testing.assert_array_equal(array, series_as_ptczyx(BIOFORMATS))


def test_micromanager_ome_tiff_is_refused_by_tif_id_naming_ome_tiff(run_cli, upload_files):
    path = REALDATA / "micro-manager" / "VersionCompatTest" / (
        "1.4compatTest_3_MMStack_1-Pos_000_000.ome.tif")
    result = upload(run_cli, upload_files, path, frames_format="tif_id")
    assert result.exit_code == 2 and len(result.errors) == 1, result.stderr
    assert str(path) in result.errors[0] and "frames_format: ome_tiff" in result.errors[0]


def test_micromanager_imagej_header_is_read_from_the_second_description():
    path = REALDATA / "micro-manager" / "VersionCompatTest" / (
        "1.4compatTest_3_MMStack_1-Pos_000_000.ome.tif")
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        header = imagej.find_header(page)
        metadata = [tif.pages[n].tags["MicroManagerMetadata"].value for n in range(len(tif.pages))]
    assert header.second and header.sizes(path) == {"channel": 2, "slice": 2, "position": 1,
                                                    "time": 2}
    order = header.page_order(path)
    assert order == ("slice", "channel", "position", "time")
    # the order ImageJ reads it in is the order Micro-Manager's own metadata gives each page
    for number, page_meta in enumerate(metadata):
        z, c, t = number % 2, number // 2 % 2, number // 4
        assert (page_meta["SliceIndex"], page_meta["ChannelIndex"], page_meta["FrameIndex"]) == (
            z, c, t)


def test_ndtiff_stack_is_refused_by_tif_id_naming_ndtiff(run_cli, upload_files):
    path = REALDATA / "NDStorage" / "v3" / "labeled_positions_1" / "labeled_positions_NDTiffStack.tif"
    result = upload(run_cli, upload_files, path, frames_format="tif_id")
    assert result.exit_code == 2 and len(result.errors) == 1, result.stderr
    assert str(path) in result.errors[0] and "frames_format: ndtiff" in result.errors[0]
