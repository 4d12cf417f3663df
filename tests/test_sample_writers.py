"""imagingdb.testing's Fiji, Bio-Formats and tifffile writers write what those programs write.

Checked two ways: by tifffile, an independent reader of each format, on a
fresh clone; and tag by tag against the real files in ../shared/realdata
(skipped without them), listing every difference the writers knowingly keep.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import tifffile

from imagingdb.testing import (
    write_bioformats_ometiff,
    write_fiji_hyperstack,
    write_fiji_image_sequence,
    write_tifffile_stack,
)
from tests.test_realdata_fiji_ome import BIOFORMATS, NEUBIAS, REALDATA

needs_realdata = pytest.mark.skipif(not REALDATA.is_dir(), reason=f"{REALDATA} is absent")
OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"


def page0(path):
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return {tag.code: tag for tag in page.tags}, page.description, tif.byteorder


def description_keys(text):
    return {line.split("=", 1)[0] for line in text.splitlines() if "=" in line}


# ----------------------------------------------------------- as tifffile reads them


def test_fiji_hyperstack_is_an_imagej_file_to_tifffile(tmp_path):
    labels = [f"label {n}" for n in range(6)]
    path = write_fiji_hyperstack(tmp_path / "h.tif", channels=2, slices=3, info="some info",
                                 labels=labels, finterval=1.5)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.byteorder == ">"
        assert (tif.series[0].axes, tif.series[0].shape) == ("ZCYX", (3, 2, 32, 32))
        meta = tif.imagej_metadata
    assert (meta["Info"], meta["Labels"], meta["Ranges"]) == ("some info", labels,
                                                              (100.0, 6100.0) * 2)
    assert (meta["unit"], meta["spacing"], meta["finterval"], meta["mode"]) == (
        "\\u00B5m", 0.4, 1.5, "composite")
    assert [lut.shape for lut in meta["LUTs"]] == [(3, 256)] * 2


def test_fiji_image_sequence_files_are_single_imagej_images(tmp_path):
    files = write_fiji_image_sequence(tmp_path / "s", count=3, labels=["a", "", "c"])
    assert [path.name for path in files] == [f"c_elegans_em_z000{n}.tif" for n in range(3)]
    for path, label in zip(files, ["a", "", "c"]):
        with tifffile.TiffFile(path) as tif:
            assert tif.is_imagej and len(tif.pages) == 1 and tif.byteorder == ">"
            assert tif.pages[0].description == "ImageJ=1.54f\nunit="
            assert tif.imagej_metadata.get("Labels") == (label or None)


def test_bioformats_writer_is_an_ome_tiff_to_tifffile(tmp_path):
    files = write_bioformats_ometiff(tmp_path / "b.ome.tif", images=2, multifile=True,
                                     slices=2, times=3)
    for path in files:
        with tifffile.TiffFile(path) as tif:
            assert tif.is_ome
            assert [(s.axes, s.shape) for s in tif.series] == [("TCZYX", (3, 2, 2, 24, 18))] * 2
            root = ET.fromstring(tif.pages[0].description)
        own = root.get("UUID")
        names = {uuid.get("FileName"): uuid.text for uuid in root.iter(f"{OME}UUID")}
        assert names == {file.name: names[file.name] for file in files}  # every file named
        assert names[path.name] == own  # the root UUID is the file's own


@pytest.mark.parametrize("axes, shape", [("TZCYX", (2, 3, 2)), ("ZYX", (4,))])
def test_tifffile_stack_declares_its_axes(tmp_path, axes, shape):
    path = write_tifffile_stack(tmp_path / "s.tif", axes=axes, shape=shape)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_shaped and tif.series[0].axes == axes
        assert tif.series[0].shape == (*shape, 16, 12)


# ----------------------------------------------------------- against the real files

#: tags tifffile writes that ImageJ does not: Compression (1, "none"), and for uncalibrated
#: images X/YResolution 1/1 with ResolutionUnit "none"
TIFFFILE_EXTRA_TAGS = {259, 282, 283, 296}


@needs_realdata
def test_fiji_hyperstack_matches_fijis_spots_file(tmp_path):
    real = NEUBIAS / "xyzc_16bit__spots.tif"
    ours = write_fiji_hyperstack(tmp_path / "spots.tif", channels=2, slices=17, height=88,
                                 width=89, pixel_size=1e6 / 10623103, spacing=0.4,
                                 display_range=(200.0, 47602.0))
    real_tags, real_text, real_order = page0(real)
    our_tags, our_text, our_order = page0(ours)
    assert our_order == real_order == ">"
    assert set(our_tags) - set(real_tags) == {259} and set(real_tags) <= set(our_tags)
    assert description_keys(our_text) == description_keys(real_text)
    for key in ("ImageJ", "images", "channels", "slices", "hyperstack", "mode", "unit", "min",
                "max"):
        assert f"{key}=" in our_text
    assert tifffile.TiffFile(ours).imagej_metadata["unit"] == "\\u00B5m"  # escaped as ImageJ does
    assert our_tags[50838].value == real_tags[50838].value == (20, 32, 768, 768)
    assert our_tags[282].value[1] / our_tags[282].value[0] == pytest.approx(
        real_tags[282].value[1] / real_tags[282].value[0])
    assert our_tags[296].value == real_tags[296].value == 1  # no unit: ImageJ's unit= says µm


@needs_realdata
@pytest.mark.parametrize("name, axis", [("xyz_8bit__nucleus.tif", "slices"),
                                        ("xyt_8bit_polyp.tif", "times")])
def test_fiji_stack_with_info_and_labels_matches_imagej(tmp_path, name, axis):
    real = NEUBIAS / name
    with tifffile.TiffFile(real) as tif:
        meta = tif.imagej_metadata
        shape = tif.series[0].shape
    sizes = {"channels": 1, "slices": 1, "times": 1, axis: shape[0]}
    ours = write_fiji_hyperstack(tmp_path / name, **sizes, height=shape[1], width=shape[2],
                                 dtype="uint8", version=meta["ImageJ"], unit=None,
                                 pixel_size=None, spacing=None, info=meta.get("Info"),
                                 labels=meta["Labels"],
                                 display_range=(meta["min"], meta["max"]) if "min" in meta
                                 else None)
    real_tags, real_text, _ = page0(real)
    our_tags, our_text, _ = page0(ours)
    assert set(our_tags) - set(real_tags) == TIFFFILE_EXTRA_TAGS
    assert set(real_tags) <= set(our_tags)
    assert description_keys(our_text) - description_keys(real_text) == {"hyperstack"}
    # the same IJMetadata, byte count by byte count: header, Info, one entry per label
    assert our_tags[50838].value == real_tags[50838].value
    assert our_tags[50839].value == real_tags[50839].value


@needs_realdata
def test_fiji_image_sequence_matches_fijis_em_series(tmp_path):
    real_folder = NEUBIAS / "xyz_8bit__em_volume_tiff_series"
    ours = write_fiji_image_sequence(tmp_path / "em", count=21, height=256, width=256)
    assert sorted(path.name for path in ours) == sorted(p.name for p in real_folder.glob("*.tif"))
    real_tags, real_text, real_order = page0(real_folder / ours[3].name)
    our_tags, our_text, our_order = page0(ours[3])
    assert set(our_tags) == set(real_tags) and our_text == real_text and our_order == real_order
    for code in (282, 283):
        assert our_tags[code].value[0] / our_tags[code].value[1] == (
            real_tags[code].value[0] / real_tags[code].value[1])


@needs_realdata
def test_bioformats_writer_matches_bioformats_file(tmp_path):
    [ours] = write_bioformats_ometiff(tmp_path / BIOFORMATS.name, slices=5, times=5, height=24,
                                      width=18, dtype="uint8", physical_size=None,
                                      time_increment=None, creator=None,
                                      software="LOCI Bio-Formats")
    with tifffile.TiffFile(BIOFORMATS) as real_tif, tifffile.TiffFile(ours) as our_tif:
        assert len(real_tif.pages) == len(our_tif.pages) == 50
        real_pages = [{tag.code: tag.value for tag in real_tif.pages[n].tags} for n in (0, 1)]
        real_tif.pages.useframes = our_tif.pages.useframes = False
        our_pages = [{tag.code: tag.value for tag in our_tif.pages[n].tags} for n in (0, 1)]
        real_xml, our_xml = real_pages[0][270], our_pages[0][270]
    for real, our in zip(real_pages, our_pages):
        # tifffile cannot write PlanarConfiguration 2 for 1 sample (meaningless) nor leave
        # ResolutionUnit out (its absence means inch, what is written)
        assert set(real) - set(our) == {284} and set(our) - set(real) == {296}
        for code in (256, 257, 258, 259, 262, 277, 278, 282, 283, 305):
            assert our[code] == real[code], code
    assert real_pages[1][270] == our_pages[1][270] == ""
    for xml in (real_xml, our_xml):
        assert xml.startswith('<?xml version="1.0" encoding="UTF-8"')
        assert "?><!-- Warning: this comment is an OME-XML metadata block" in xml
    assert _tiff_data(real_xml) == _tiff_data(our_xml)


def _tiff_data(xml):
    """Each TiffData's placement, with its UUID being the file's own and naming a file."""
    root = ET.fromstring(xml)
    found = []
    for data in root.iter():
        if data.tag.endswith("}TiffData"):
            uuid = next(iter(data))
            assert uuid.text == root.get("UUID") and uuid.get("FileName")
            found.append({key: data.get(key) for key in ("FirstC", "FirstT", "FirstZ", "IFD",
                                                         "PlaneCount")})
    pixels = next(element for element in root.iter() if element.tag.endswith("}Pixels"))
    found.append({key: pixels.get(key) for key in ("DimensionOrder", "SizeC", "SizeT", "SizeX",
                                                   "SizeY", "SizeZ", "Type")})
    return found
