"""calibration_of: what each splitter records of pixel size, z step, frame interval, channel
colours and display windows, read where that splitter leaves it in global metadata.

Every source kind is written by its writer (imagingdb.testing, tifffile's and ndtiff's own)
and opened by its real splitter; table-driven tests pin units, colours and refusals; the
real files beside the project (skipped when absent) are compared with tifffile's reading.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile

from imagingdb import plugins, testing
from imagingdb.acquisition import SplitOptions
from imagingdb.calibration import Calibration, calibration_of, ome_xml_unit, zarr_unit
from tests.realdata import real

UM, MS, S = "micrometer", "millisecond", "second"


def opened(splitter: str, path: Path) -> dict:
    """The global metadata ``splitter`` records for ``path``, as an upload stores it (JSON)."""
    acquisition = plugins.get("splitter", splitter).obj().open(Path(path), SplitOptions())
    try:
        return json.loads(json.dumps(acquisition.global_meta))
    finally:
        close = getattr(acquisition, "close", None)
        if close is not None:
            close()


def calibrated(splitter: str, path: Path) -> Calibration:
    return calibration_of(opened(splitter, path))


# --------------------------------------------------------------------------
# Micro-Manager
# --------------------------------------------------------------------------


def test_mm14_ometiff_scales_from_its_ome_xml_colours_and_windows_from_its_summary(tmp_path):
    testing.write_mm_ometiff(tmp_path, positions=2, channels=("DAPI", "GFP", "Cy5"))
    meta = opened("ome_tiff", tmp_path)
    assert "physical_size" not in meta and "<Pixels" in meta["ome_xml"]
    found = calibration_of(meta)
    assert found.scales == {"x": (0.65, UM), "y": (0.65, UM), "z": (0.5, UM), "t": (1000.0, MS)}
    # ChColors -16776961, -16711936, -65536: Java ARGB blue, green, red. The OME-XML holds the
    # same ints as Color, which read as OME's RGBA would be red, blue, yellow: not read.
    assert found.colors == {0: "0000FF", 1: "00FF00", 2: "FF0000"}
    assert found.windows == {0: (0.0, 65535.0), 1: (0.0, 65535.0), 2: (0.0, 65535.0)}


def test_mm_ometiff_ome_xml_wins_over_the_summary_which_stands_in_without_it(tmp_path):
    testing.write_mm_ometiff(tmp_path, positions=1)
    meta = opened("ome_tiff", tmp_path)
    meta.update({"PixelSize_um": 2.0, "z-step_um": 3.0, "Interval_ms": 4.0})
    assert calibration_of(meta).scales == {"x": (0.65, UM), "y": (0.65, UM), "z": (0.5, UM),
                                           "t": (1000.0, MS)}
    del meta["ome_xml"]
    assert calibration_of(meta).scales == {"x": (2.0, UM), "y": (2.0, UM), "z": (3.0, UM),
                                           "t": (4.0, MS)}


def test_mm20_ometiff_pixel_size_only_in_its_ome_xml(tmp_path):
    testing.write_mm_ometiff(tmp_path, positions=1, version="2.0")
    meta = opened("ome_tiff", tmp_path)
    assert "PixelSize_um" not in meta and "ChColors" not in meta
    found = calibration_of(meta)
    assert found.scales == {"x": (0.65, UM), "y": (0.65, UM), "z": (0.5, UM), "t": (1000.0, MS)}
    assert found.colors == {} and found.windows == {}  # 2.0 records neither in the summary


def test_mm_ometiff_without_its_file_header_reads_the_imagej_info_summary(tmp_path):
    testing.write_mm_ometiff(tmp_path, positions=1, file_header=False)
    found = calibrated("ome_tiff", tmp_path)
    assert found.scales["x"] == (0.65, UM) and found.colors == {0: "0000FF", 1: "00FF00"}


def test_mm14_image_file_folder_from_its_metadata_txt_summary(tmp_path):
    testing.write_mm_tif_folder(tmp_path)
    found = calibrated("tif_folder", tmp_path)
    assert found.scales == {"x": (0.65, UM), "y": (0.65, UM), "z": (0.5, UM), "t": (1000.0, MS)}
    assert found.colors == {0: "0000FF", 1: "00FF00"}
    assert found.windows == {0: (0.0, 65535.0), 1: (0.0, 65535.0)}


def test_mm20_image_file_folder_has_no_pixel_size_in_its_summary(tmp_path):
    """2.0's summary has z-step_um and Interval_ms; the pixel size is each image's own
    (PixelSizeUm), which global metadata does not hold: x and y stay absent, not guessed."""
    testing.write_mm_tif_folder(tmp_path, version="2.0")
    assert calibrated("tif_folder", tmp_path) == Calibration(
        scales={"z": (0.5, UM), "t": (1000.0, MS)})


def test_mm_position_folders_read_the_summary_each_copies(tmp_path):
    testing.write_mm_position_folders(tmp_path, positions=(0, 1))
    assert calibrated("tif_folder", tmp_path).scales["x"] == (0.65, UM)


def test_ndtiff_summary(tmp_path):
    pytest.importorskip("imagingdb_ndtiff")
    ndtiff = pytest.importorskip("ndtiff")
    summary = {"MicroManagerVersion": "2.0.3 20240614", "ChNames": ["DAPI"], "PixelType": "GRAY16",
               "Width": 64, "Height": 64, "PixelSize_um": 0.325, "z-step_um": 0.5,
               "Interval_ms": 0, "IntendedDimensions": {"channel": 1, "z": 2, "time": 1}}
    dataset = ndtiff.NDTiffDataset(str(tmp_path), name="acq", writable=True,
                                   summary_metadata=summary)
    for z in range(2):  # 64x64 uint16: ndtiff's writer needs its first image to reach the file
        dataset.put_image({"channel": "DAPI", "z": z}, np.full((64, 64), z, "uint16"),
                          {"PixelSizeUm": 0.325})
    if dataset.current_writer is not None:
        dataset.current_writer.reader.close()
    dataset.finish()
    dataset.close()
    root = next(path.parent for path in tmp_path.rglob("NDTiff.index"))
    # Interval_ms 0: "as fast as possible", no interval
    assert calibrated("ndtiff", root) == Calibration(
        scales={"x": (0.325, UM), "y": (0.325, UM), "z": (0.5, UM)})


# --------------------------------------------------------------------------
# ImageJ, Fiji
# --------------------------------------------------------------------------


def test_uncalibrated_imagej_hyperstack_records_nothing(tmp_path):
    assert calibrated("tif_id", testing.write_imagej_hyperstack(tmp_path / "a.tif")) == Calibration()


def test_fiji_composite_hyperstack(tmp_path):
    path = testing.write_fiji_hyperstack(tmp_path / "a.tif", channels=3, slices=2, times=2,
                                         finterval=2.5, display_range=(100.0, 900.0))
    found = calibrated("tif_id", path)
    assert found.scales == {"x": (0.0941, UM), "y": (0.0941, UM), "z": (0.4, UM), "t": (2.5, S)}
    assert found.colors == {0: "FF0000", 1: "00FF00", 2: "0000FF"}  # Fiji's composite LUTs
    assert found.windows == {c: (100.0, 900.0) for c in range(3)}  # IJMetadata Ranges


def test_fiji_one_channel_stack_window_from_min_max(tmp_path):
    path = testing.write_fiji_hyperstack(tmp_path / "a.tif", channels=1, slices=3,
                                         display_range=(10.0, 200.0))
    found = calibrated("tif_id", path)
    assert found.scales == {"x": (0.0941, UM), "y": (0.0941, UM), "z": (0.4, UM)}
    assert found.colors == {} and found.windows == {0: (10.0, 200.0)}


@pytest.mark.parametrize("unit, expected", [("micron", UM), ("nm", "nanometer"), ("um", UM),
                                            ("\u00b5m", UM), ("mm", "millimeter")])
def test_fiji_units(tmp_path, unit, expected):
    path = testing.write_fiji_hyperstack(tmp_path / "a.tif", channels=1, unit=unit,
                                         pixel_size=0.5, spacing=2.0)
    assert calibrated("tif_id", path).scales == {"x": (0.5, expected), "y": (0.5, expected),
                                                 "z": (2.0, expected)}


def test_fiji_pixel_unit_is_no_calibration(tmp_path):
    path = testing.write_fiji_hyperstack(tmp_path / "a.tif", channels=1, unit="pixel",
                                         pixel_size=2.0, spacing=3.0, finterval=0.5)
    assert calibrated("tif_id", path).scales == {"t": (0.5, S)}  # ImageJ's default tunit: sec


def test_fiji_uncalibrated_and_8_bit(tmp_path):
    path = testing.write_fiji_hyperstack(tmp_path / "a.tif", channels=1, dtype="uint8",
                                         unit=None, pixel_size=None, spacing=None)
    assert calibrated("tif_id", path) == Calibration()


def test_fiji_image_sequence_unit_empty(tmp_path):
    testing.write_fiji_image_sequence(tmp_path, count=3)
    meta = opened("image_sequence", tmp_path)
    assert meta["physical_size"]["x_unit"] == "pixel"  # "unit=" and a 1x1 resolution
    assert calibration_of(meta) == Calibration()


def test_fiji_16_bit_image_sequence_window(tmp_path):
    testing.write_fiji_image_sequence(tmp_path, count=3, dtype="uint16")
    found = calibrated("image_sequence", tmp_path)
    assert found.scales == {} and list(found.windows) == [0]
    start, end = found.windows[0]
    assert 0 <= start < end


# --------------------------------------------------------------------------
# OME-TIFF not written by Micro-Manager
# --------------------------------------------------------------------------


def test_bioformats_ometiff(tmp_path):
    files = testing.write_bioformats_ometiff(tmp_path / "a.ome.tif", images=2)
    assert calibrated("ome_tiff", files[0]) == Calibration(
        scales={"x": (0.1625, UM), "y": (0.1625, UM), "z": (0.5, UM), "t": (2.0, S)})


def test_bioformats_ometiff_without_physical_sizes(tmp_path):
    files = testing.write_bioformats_ometiff(tmp_path / "a.ome.tif", physical_size=None,
                                             time_increment=None)
    assert calibrated("ome_tiff", files[0]) == Calibration()


def test_tifffile_ometiff_read_alike_by_ome_tiff_and_tif_id(tmp_path):
    path = testing.write_tifffile_ometiff(tmp_path / "a.ome.tif", physical_size=(0.2, 0.3, 1.5))
    expected = Calibration(scales={"x": (0.2, UM), "y": (0.3, UM), "z": (1.5, UM),
                                   "t": (30.0, S)})
    assert calibrated("ome_tiff", path) == expected
    assert calibrated("tif_id", path) == expected


def test_ome_channel_color_is_rgba(tmp_path):
    path = tmp_path / "a.ome.tif"
    # -16776961 = 0xFF0000FF: red, opaque; 16711935 = 0x00FF00FF: green; -1: OME's white
    tifffile.imwrite(path, np.zeros((3, 8, 8), "uint16"), ome=True, metadata={
        "axes": "CYX", "PhysicalSizeX": 0.1, "PhysicalSizeXUnit": "nm",
        "Channel": {"Name": ["a", "b", "c"], "Color": [-16776961, 16711935, -1]}})
    found = calibrated("ome_tiff", path)
    assert found.colors == {0: "FF0000", 1: "00FF00", 2: "FFFFFF"}
    assert found.scales == {"x": (0.1, "nanometer")}


def test_ome_xml_first_image_counts():
    xml = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/'
           'Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" PhysicalSizeX="0.5" '
           'PhysicalSizeXUnit="nm" TimeIncrement="2" TimeIncrementUnit="min"/></Image>'
           '<Image ID="Image:1"><Pixels ID="Pixels:1" PhysicalSizeX="9"/></Image></OME>')
    assert calibration_of({"ome_xml": xml, "PixelSize_um": 4.0}).scales == {
        "x": (0.5, "nanometer"), "y": (4.0, UM), "t": (2.0, "minute")}


# --------------------------------------------------------------------------
# Units, colours and refusals, table-driven
# --------------------------------------------------------------------------


@pytest.mark.parametrize("text, axis, expected", [
    ("\u00b5m", "x", UM), ("\u03bcm", "x", UM), ("um", "x", UM), ("micron", "x", UM),
    ("microns", "y", UM), ("Micron", "x", UM), (" \u00b5m ", "z", UM), ("micrometre", "x", UM),
    ("nm", "x", "nanometer"), ("mm", "x", "millimeter"), ("cm", "x", "centimeter"),
    ("m", "x", "meter"), ("\u00c5", "x", "angstrom"), ("inch", "x", "inch"),
    ("s", "t", S), ("sec", "t", S), ("Sec", "t", S), ("seconds", "t", S), ("ms", "t", MS),
    ("msec", "t", MS), ("\u00b5s", "t", "microsecond"), ("us", "t", "microsecond"),
    ("ns", "t", "nanosecond"), ("min", "t", "minute"), ("h", "t", "hour"), ("hr", "t", "hour"),
    # no units, or not of that axis
    ("pixel", "x", None), ("pixels", "x", None), ("reference frame", "x", None),
    ("", "x", None), (None, "x", None), (1.0, "x", None), ("s", "x", None), ("\u00b5m", "t", None),
    # symbols are matched exactly: Mm is a megametre, MS a megasiemens
    ("Mm", "x", None), ("MS", "t", None), ("UM", "x", None),
])
def test_zarr_unit(text, axis, expected):
    assert zarr_unit(text, axis) == expected


@pytest.mark.parametrize("name, axis", [
    ("micrometer", "x"), ("nanometer", "x"), ("millimeter", "x"), ("centimeter", "x"),
    ("meter", "x"), ("picometer", "x"), ("angstrom", "x"), ("inch", "x"), ("second", "t"),
    ("millisecond", "t"), ("microsecond", "t"), ("nanosecond", "t"), ("minute", "t"),
    ("hour", "t")])
def test_ome_xml_unit_reads_back(name, axis):
    assert zarr_unit(ome_xml_unit(name), axis) == name


def test_ome_xml_unit_symbols():
    assert (ome_xml_unit("micrometer"), ome_xml_unit("second"), ome_xml_unit("millisecond")) == (
        "\u00b5m", "s", "ms")


@pytest.mark.parametrize("value, expected", [
    (-16776961, "0000FF"), (-16711936, "00FF00"), (-65536, "FF0000"), (-65281, "FF00FF"),
    (-16711681, "00FFFF"), (-256, "FFFF00"), (-1, "FFFFFF"), (-16777216, "000000"),
    (0xFF00FF, "FF00FF"), (65280, "00FF00"), (0, "000000"), (-13369549, "33FF33"),
    (-65536.0, "FF0000"),
    (True, None), ("red", None), ("-65536", None), (1.5, None), (None, None),
    (1 << 32, None), (-(1 << 31) - 1, None), (math.nan, None),
])
def test_mm_chcolors_java_ints(value, expected):
    found = calibration_of({"ChColors": [value]}).colors
    assert found == ({0: expected} if expected else {})


@pytest.mark.parametrize("value, expected", [
    (-16776961, "FF0000"), (16711935, "00FF00"), (65535, "0000FF"), (-1, "FFFFFF"),
    (255, "000000"),
    (-2147483648, "800000"), (2 ** 32 - 1, "FFFFFF"), (0x0000FF00, "0000FF"),
    ("NaN", None), (True, None), (1 << 32, None), (None, None),
])
def test_ome_channel_color_rgba_ints(value, expected):
    meta = {"ome_images": [{"channels": [{"ID": "Channel:0:0", "Color": value}]},
                           {"channels": [{"Color": -1}]}]}
    assert calibration_of(meta).colors == ({0: expected} if expected else {})


@pytest.mark.parametrize("value", [0, 0.0, -1, -0.65, math.nan, math.inf, "0.65", "NaN", True,
                                   None, [0.65], {"um": 0.65}])
def test_refused_sizes(value):
    for meta in ({"PixelSize_um": value, "z-step_um": value, "Interval_ms": value},
                 {"physical_size": {"x": value, "x_unit": "\u00b5m", "y": value, "y_unit": "\u00b5m",
                                    "z": value, "z_unit": "\u00b5m", "time_increment": value,
                                    "time_unit": "s"}}):
        assert calibration_of(meta).scales == {}


@pytest.mark.parametrize("text", ["0", "-1", "NaN", "INF", "abc", "", "0.5,0"])
def test_refused_ome_xml_sizes(text):
    xml = (f'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0">'
           f'<Pixels ID="Pixels:0" PhysicalSizeX="{text}" PhysicalSizeZ="{text}" '
           f'TimeIncrement="{text}"/></Image></OME>')
    assert calibration_of({"ome_xml": xml}).scales == {}


@pytest.mark.parametrize("xml", ["", "not xml", "<OME><Image><Pix", "<OME><BinaryOnly "
                                 'MetadataFile="a.ome.tif" UUID="urn:uuid:1"/></OME>', 7])
def test_ome_xml_without_pixels_gives_nothing(xml):
    assert calibration_of({"ome_xml": xml}) == Calibration()


@pytest.mark.parametrize("unit", ["pixel", "pixels", "", None, 1, "inch?"])
def test_refused_units(unit):
    meta = {"physical_size": {"x": 0.5, "x_unit": unit, "z": 2.0, "z_unit": unit,
                              "time_increment": 1.0, "time_unit": unit}}
    assert calibration_of(meta).scales == {}


def test_ome_default_units_when_unit_absent():
    meta = {"physical_size": {"x": 0.5, "y": 0.25, "time_increment": 3}}
    assert calibration_of(meta).scales == {"x": (0.5, UM), "y": (0.25, UM), "t": (3.0, S)}


@pytest.mark.parametrize("lows, highs, expected", [
    ([0, 100], [4095, 900.5], {0: (0.0, 4095.0), 1: (100.0, 900.5)}),
    ([0, 100], [4095], {0: (0.0, 4095.0)}),
    ([10, math.nan, "0", True], [5, 10, 10, 10], {}),  # start over end, NaN, text, bool
    ([0], None, {}), ("0", "10", {}),
])
def test_mm_contrast_windows(lows, highs, expected):
    assert calibration_of({"ChContrastMin": lows, "ChContrastMax": highs}).windows == expected


@pytest.mark.parametrize("meta, expected", [
    ({"imagej_metadata": {"Ranges": [1.0, 2.0, 3.0, 4.0]}}, {0: (1.0, 2.0), 1: (3.0, 4.0)}),
    ({"imagej_metadata": {"Ranges": [1.0, 2.0, 3.0]}}, {}),
    ({"imagej_metadata": {"Ranges": [1.0, "x"]}}, {}),
    ({"image_description": {"ImageJ": "1.53f", "min": 2.0, "max": 104.0}}, {0: (2.0, 104.0)}),
    ({"image_description": {"ImageJ": "1.53f", "channels": 2, "min": 2.0, "max": 104.0}}, {}),
    ({"image_description": {"shape": [3, 4], "min": 2.0, "max": 104.0}}, {}),  # tifffile's JSON
    ({"image_description": {"ImageJ": "1.53f", "min": 2.0}}, {}),
    ({"image_description": {"ImageJ": "1.53f", "channels": 2, "min": 0.0, "max": 9.0},
      "imagej_metadata": {"Ranges": [1.0, 2.0, 3.0, 4.0]}}, {0: (1.0, 2.0), 1: (3.0, 4.0)}),
])
def test_imagej_windows(meta, expected):
    assert calibration_of(meta).windows == expected


def _ramp(red: int, green: int, blue: int) -> list[list[int]]:
    return [[i * top // 255 for i in range(256)] for top in (red, green, blue)]


@pytest.mark.parametrize("lut, expected", [
    (_ramp(255, 0, 0), "FF0000"), (_ramp(0, 255, 255), "00FFFF"), (_ramp(255, 255, 255), "FFFFFF"),
    (_ramp(128, 64, 0), "804000"),
    ([list(range(255, -1, -1))] * 3, None),  # inverted grey: no one colour
    ([[min(255, 3 * i) for i in range(256)], list(range(256)), [0] * 256], None),  # "fire"-like
    ([[0] * 255] * 3, None), ("lut", None),
])
def test_imagej_lut_colours(lut, expected):
    found = calibration_of({"imagej_metadata": {"LUTs": [lut]}}).colors
    assert found == ({0: expected} if expected else {})


def test_not_a_dict_and_empty():
    assert calibration_of({}) == Calibration()
    assert calibration_of(None) == Calibration()  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# The OME-Zarr documents an upload writes
# --------------------------------------------------------------------------


def test_ome_zarr_upload_writes_the_calibration(run_cli, upload_files, isolated_home, tmp_path):
    testing.write_mm_ometiff(tmp_path / "acq", positions=1, height=16, width=16)
    csv_path = upload_files.csv([{"dataset_id": "ML-2005-05-23-10-00-00-0001",
                                  "file_name": str(tmp_path / "acq")}])
    result = run_cli("upload", "--csv", csv_path, "--config",
                     upload_files.frames_config(frame_format="ome-zarr"))
    assert result.exit_code == 0, result.stderr
    image = next(path for path in isolated_home.rglob("zarr.json")
                 if "multiscales" in json.loads(path.read_text())["attributes"].get("ome", {}))
    ome = json.loads(image.read_text())["attributes"]["ome"]
    multiscale = ome["multiscales"][0]
    assert [axis.get("unit") for axis in multiscale["axes"]] == [MS, None, UM, UM, UM]
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == [
        1000.0, 1.0, 0.5, 0.65, 0.65]
    assert [channel["color"] for channel in ome["omero"]["channels"]] == ["0000FF", "00FF00"]


# --------------------------------------------------------------------------
# Real files (../shared/realdata), compared with tifffile's own reading
# --------------------------------------------------------------------------


def test_real_mm14_ometiff():
    folder = real("micro-manager/VersionCompatTest")
    first = folder / "1.4compatTest_3_MMStack_1-Pos_000_000.ome.tif"
    with tifffile.TiffFile(first) as tif:
        summary = tif.micromanager_metadata["Summary"]
        luts = tif.imagej_metadata["LUTs"]
        ome = tif.ome_metadata
    found = calibrated("ome_tiff", folder)
    pixels = tifffile.xml2dict(ome)["OME"]["Image"][0]["Pixels"]
    assert pixels["PhysicalSizeX"] == summary["PixelSize_um"] == 1
    assert pixels["TimeIncrementUnit"] == "ms"
    assert found.scales == {
        "x": (float(pixels["PhysicalSizeX"]), UM), "y": (float(pixels["PhysicalSizeY"]), UM),
        "z": (float(summary["z-step_um"]), UM), "t": (float(pixels["TimeIncrement"]), MS)}
    # ChColors (Cy5 -65536 red, DAPI -16711936 green) agree with the LUTs ImageJ saved; the
    # OME-XML Color holds the same Java ints, which read as RGBA would make Cy5 yellow
    assert found.colors == {c: "".join(f"{v:02X}" for v in lut[:, 255]) for c, lut in enumerate(luts)}
    assert found.colors == {0: "FF0000", 1: "00FF00"}
    assert found.windows == {c: (float(low), float(high)) for c, (low, high) in
                             enumerate(zip(summary["ChContrastMin"], summary["ChContrastMax"]))}


def test_real_mm20_alpha_image_files():
    folder = real("micro-manager/alpha_2.0_singleplane_manual")
    summary = json.loads((folder / "Pos0" / "metadata.txt").read_text() + "}")["Summary"]
    assert calibrated("tif_folder", folder) == Calibration(
        scales={"z": (summary["z-step_um"], UM)})  # its made-up 1.23456789012345E8


@pytest.mark.parametrize("relative", ["NDStorage/v2/ndtiffv2.0_test",
                                      "NDStorage/v3/ndtiff3.2_multichannel",
                                      "NDStorage/v3/labeled_positions_1"])
def test_real_ndtiff(relative):
    pytest.importorskip("imagingdb_ndtiff")
    ndtiff = pytest.importorskip("ndtiff")
    folder = real(relative)
    dataset = ndtiff.Dataset(str(folder))
    try:
        size = dataset.summary_metadata["PixelSize_um"]
    finally:
        dataset.close()
    assert calibrated("ndtiff", folder) == Calibration(scales={"x": (float(size), UM),
                                                               "y": (float(size), UM)})


def test_real_fiji_composite():
    path = real("NEUBIAS/xyzc_16bit__spots.tif")
    with tifffile.TiffFile(path) as tif:
        ij = tif.imagej_metadata
        numerator, denominator = tif.pages[0].tags["XResolution"].value
    found = calibrated("tif_id", path)
    assert ij["unit"] == "\\u00B5m"
    assert found.scales == {"x": (denominator / numerator, UM), "y": (denominator / numerator, UM),
                            "z": (ij["spacing"], UM)}
    ranges = ij["Ranges"]
    assert found.windows == {c: (ranges[2 * c], ranges[2 * c + 1]) for c in range(ij["channels"])}
    assert found.colors == {c: "".join(f"{v:02X}" for v in lut[:, 255])
                            for c, lut in enumerate(ij["LUTs"])}


def test_real_imagej_8_bit_stacks():
    nucleus = real("NEUBIAS/xyz_8bit__nucleus.tif")
    with tifffile.TiffFile(nucleus) as tif:
        ij = tif.imagej_metadata
    assert "unit" not in ij and "spacing" not in ij
    assert calibrated("tif_id", nucleus) == Calibration(windows={0: (ij["min"], ij["max"])})
    assert calibrated("tif_id", real("NEUBIAS/xyt_8bit_polyp.tif")) == Calibration()
    # Fiji's image sequence of an uncalibrated stack: unit= empty, a 1x1 resolution
    assert calibrated("image_sequence", real("NEUBIAS/xyz_8bit__em_volume_tiff_series")) == Calibration()


def test_real_bioformats_ometiff():
    path = real("bioformats-samples/2010-04_18x24y5z5t2c8b-text.ome-v2010-06.ome.tiff")
    with tifffile.TiffFile(path) as tif:
        image = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
    pixels = image["Pixels"]
    assert not any(key.startswith(("PhysicalSize", "TimeIncrement")) for key in pixels)
    colors = [channel["Color"] for channel in pixels["Channel"]]
    assert colors == [-2147483648, -2147483648]  # 0x80000000: RGBA 128, 0, 0, alpha 0
    expected = Calibration(colors={0: "800000", 1: "800000"})
    assert calibrated("ome_tiff", path) == expected
    assert calibrated("tif_id", path) == expected
