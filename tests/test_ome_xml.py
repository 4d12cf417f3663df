"""OME-TIFFs that Micro-Manager did not write, through ome_tiff (Bio-Formats, tifffile writers).

Every pixel is compared with tifffile reading the files itself (``TiffFile.series``,
its own OME-TIFF reader), so the placement is checked by an independent reader.
"""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pytest
import tifffile

from imagingdb.acquisition import FrameIndex
from imagingdb.errors import MissingFramesWarning
from imagingdb.testing import write_bioformats_ometiff, write_tifffile_ometiff
from tests.conftest import DATASET_ID
from tests.helpers import assert_refused

AXES = "TCZYX"  # how tifffile's series give Bio-Formats' XYZCT files


def upload(run_cli, upload_files, source, dataset_id=DATASET_ID, **config):
    """Upload ``source``; frames_format left out (auto) unless given."""
    csv_path = upload_files.csv([{"dataset_id": dataset_id, "file_name": str(source)}])
    config_path = upload_files.config(upload_type="frames", microscope="scope", **config)
    return run_cli("upload", "--csv", csv_path, "--config", config_path)


def stored(dataset_id=DATASET_ID):
    """(dataset, (P, T, C, Z, Y, X) array, frames by index) of an uploaded dataset."""
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(dataset_id)
        ds.dims, ds.global_meta, ds.channel_names()  # loaded while connected
        frames = {FrameIndex(f["channel_idx"], f["slice_idx"], f["time_idx"], f["pos_idx"]): f
                  for f in ds.frames()}
        with warnings.catch_warnings():  # missing frames are checked through missing_frames()
            warnings.simplefilter("ignore", MissingFramesWarning)
            array = ds.read()
        return ds, array, frames, ds.missing_frames()


def series_as_ptczyx(path):
    """Every OME Image of the file (set) as tifffile reads it, stacked as positions."""
    with tifffile.TiffFile(path) as tif:
        arrays = []
        for series in tif.series:
            data = series.asarray()
            axes = series.axes
            for axis in AXES:
                if axis not in axes:
                    data, axes = data[np.newaxis], axis + axes
            arrays.append(np.transpose(data, [axes.index(axis) for axis in "TCZYX"]))
        return np.stack(arrays)


def test_bioformats_ome_tiff_is_read_by_its_ome_xml(run_cli, upload_files, tmp_path):
    [path] = write_bioformats_ometiff(tmp_path / "bf.ome.tif", channels=("DAPI", "GFP"),
                                      slices=5, times=4, seed=3)
    result = upload(run_cli, upload_files, path)
    assert result.exit_code == 0, result.stderr
    assert ("OME-TIFF written by OME Bio-Formats 6.14.0 (1 image, T4 C2 Z5); frames_format "
            "auto chose ome_tiff") in result.stderr
    ds, array, frames, missing = stored()
    dims = ds.dims
    assert (dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints, dims.nbr_positions) == (2, 5, 4, 1)
    assert ds.channel_names() == {0: "DAPI", 1: "GFP"} and missing == []
    np.testing.assert_array_equal(array, series_as_ptczyx(path))
    meta = ds.global_meta
    assert meta["ome_xml"] == tifffile.TiffFile(path).pages[0].description  # whole, never cut
    assert len(meta["ome_xml"]) > 10000
    assert meta["physical_size"] == {"x": 0.1625, "x_unit": "µm", "y": 0.1625, "y_unit": "µm",
                                     "z": 0.5, "z_unit": "µm", "time_increment": 2.0,
                                     "time_unit": "s"}
    assert meta["ome_creator"] == "OME Bio-Formats 6.14.0"
    frame = frames[FrameIndex(1, 3, 2, 0)]["metadata_json"]
    assert (frame["TheC"], frame["TheZ"], frame["TheT"]) == (1, 3, 2)
    assert (frame["DeltaT"], frame["ExposureTime"], frame["PositionZ"]) == (4.0, 15.0, 1.5)
    assert frame["Software"] == "OME Bio-Formats 6.14.0"
    assert "ImageDescription" not in frames[FrameIndex(0, 0, 0, 0)]["metadata_json"]  # the XML
    assert frame["Channel"] == "GFP" and "ChannelIndex" not in frame  # not Micro-Manager's keys


@pytest.mark.parametrize("order", ["XYCTZ", "XYTZC", "XYZTC"])
def test_every_dimension_order_places_pages_where_tifffile_does(run_cli, upload_files, tmp_path,
                                                                order):
    [path] = write_bioformats_ometiff(tmp_path / "o.ome.tif", slices=3, times=2,
                                      dimension_order=order, seed=4)
    assert upload(run_cli, upload_files, path, frames_format="ome_tiff").exit_code == 0
    _ds, array, _frames, _missing = stored()
    np.testing.assert_array_equal(array, series_as_ptczyx(path))


def test_several_images_become_positions(run_cli, upload_files, tmp_path):
    [path] = write_bioformats_ometiff(tmp_path / "multi.ome.tif", images=3, slices=2, times=2,
                                      seed=5)
    result = upload(run_cli, upload_files, path)
    assert "(3 images, T2 C2 Z2 each)" in result.stderr, result.stderr
    ds, array, frames, missing = stored()
    assert ds.dims.nbr_positions == 3 and missing == []
    np.testing.assert_array_equal(array, series_as_ptczyx(path))
    assert frames[FrameIndex(0, 1, 1, 2)]["metadata_json"]["PositionX"] == 1500.0
    assert [image["name"] for image in ds.global_meta["ome_images"]] == [
        "Position 0", "Position 1", "Position 2"]


def test_a_multi_file_set_is_read_from_its_folder_or_any_of_its_files(run_cli, upload_files,
                                                                      tmp_path):
    files = write_bioformats_ometiff(tmp_path / "set" / "cells.ome.tif", images=2, multifile=True,
                                     slices=2, times=3, seed=6)
    expected = series_as_ptczyx(files[0])  # tifffile follows the set's UUIDs too
    assert expected.shape[0] == 2
    for serial, source in enumerate((tmp_path / "set", files[1]), start=1):
        dataset_id = f"{DATASET_ID[:-4]}{serial:04d}"
        result = upload(run_cli, upload_files, source, dataset_id, frames_format="ome_tiff")
        assert result.exit_code == 0, result.stderr
        ds, array, _frames, _missing = stored(dataset_id)
        np.testing.assert_array_equal(array, expected)
        assert sorted(ds.global_meta["source_files"]) == [path.name for path in files]


@pytest.mark.parametrize("frames_format", [None, "ome_tiff"])
def test_macos_appledouble_files_beside_a_set_are_not_its_files(run_cli, upload_files, tmp_path,
                                                                frames_format):
    """A copy from a Mac to a share leaves ._<name> beside each file: not TIFFs, not the set's."""
    files = write_bioformats_ometiff(tmp_path / "set" / "c.ome.tif", images=2, multifile=True,
                                     slices=1, times=1, seed=8)
    for path in files:
        path.with_name(f"._{path.name}").write_bytes(b"\x00\x05\x16\x07" + bytes(4092))
    extra = {"frames_format": frames_format} if frames_format else {}
    result = upload(run_cli, upload_files, tmp_path / "set", **extra)
    assert result.exit_code == 0 and "Warning" not in result.stderr, result.stderr
    ds, array, _frames, _missing = stored()
    assert sorted(ds.global_meta["source_files"]) == [path.name for path in files]
    np.testing.assert_array_equal(array, series_as_ptczyx(files[0]))


def test_tifffile_ome_writer_tiffdata_with_plane_counts(run_cli, upload_files, tmp_path):
    path = write_tifffile_ometiff(tmp_path / "tf.ome.tif", images=2, slices=3, times=2,
                                  channels=("488", "561"), seed=7)
    result = upload(run_cli, upload_files, path)
    assert "OME-TIFF written by tifffile.py" in result.stderr, result.stderr
    ds, array, _frames, _missing = stored()
    assert ds.channel_names() == {0: "488", 1: "561"}  # names, not numbers
    np.testing.assert_array_equal(array, series_as_ptczyx(path))
    assert ds.global_meta["physical_size"]["time_increment"] == 30.0


def test_a_positions_subset_needs_only_its_own_files(run_cli, upload_files, tmp_path):
    files = write_bioformats_ometiff(tmp_path / "set" / "c.ome.tif", images=2, multifile=True,
                                     slices=1, times=2, seed=8)
    expected = series_as_ptczyx(files[0])
    files[1].unlink()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(files[0]),
                                  "positions": "[0]"}])
    config = upload_files.config(upload_type="frames", frames_format="ome_tiff")
    result = run_cli("upload", "--csv", csv_path, "--config", config)
    assert result.exit_code == 0, result.stderr
    _ds, array, _frames, _missing = stored()
    np.testing.assert_array_equal(array, expected[:1])


def test_pages_missing_from_a_file_are_missing_frames_with_a_warning(run_cli, upload_files,
                                                                     tmp_path):
    """The OME-XML lists 12 planes but the writer stopped after 9 pages."""
    [path] = write_bioformats_ometiff(tmp_path / "full.ome.tif", slices=3, times=2, seed=9)
    short = tmp_path / "short.ome.tif"
    with tifffile.TiffFile(path) as tif, tifffile.TiffWriter(short) as writer:
        for number, page in enumerate(tif.pages[:9]):
            writer.write(page.asarray(), metadata=None, contiguous=False,
                         description=page.description.encode() if number == 0 else None)
    result = upload(run_cli, upload_files, short, frames_format="ome_tiff")
    assert result.exit_code == 0, result.stderr
    assert ("places 3 plane(s) of image 0 on pages past its last page (it has 9): recorded as "
            "missing frames") in result.stderr
    ds, array, _frames, missing = stored()
    # XYZCT: pages 9, 10, 11 are (z0, c1, t1), (z1, c1, t1), (z2, c1, t1)
    assert sorted(missing) == [FrameIndex(1, z, 1, 0) for z in range(3)]
    with tifffile.TiffFile(path) as tif:
        for number in range(9):
            z, c, t = number % 3, number // 3 % 2, number // 6
            np.testing.assert_array_equal(array[0, t, c, z], tif.pages[number].asarray())


# ------------------------------------------------------------------ refused


def _missing_file(tmp_path):
    files = write_bioformats_ometiff(tmp_path / "set" / "c.ome.tif", images=2, multifile=True,
                                     slices=1, times=1)
    files[1].unlink()
    return files[0], ("c_s1.ome.tif, which is not in", "copy every file of the OME-TIFF set")


def _different_images(tmp_path):
    path = tmp_path / "mixed.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as writer:
        writer.write(np.zeros((2, 8, 8), np.uint16), metadata={"axes": "ZYX"})
        writer.write(np.zeros((3, 8, 8), np.uint16), metadata={"axes": "ZYX"})
    return path, ("OME Image 1 is 8x8 uint16, C1 Z3 T1 but Image 0 is 8x8 uint16, C1 Z2 T1",
                  "with the CSV positions column")


def _damaged_xml(tmp_path):
    [path] = write_bioformats_ometiff(tmp_path / "bf.ome.tif", slices=1, times=1)
    with tifffile.TiffFile(path) as tif:
        xml = tif.pages[0].description
        pages = [page.asarray() for page in tif.pages]
    cut = tmp_path / "cut.ome.tif"
    with tifffile.TiffWriter(cut) as writer:
        for number, pixels in enumerate(pages):
            writer.write(pixels, metadata=None, contiguous=False,
                         description=xml[:len(xml) // 2].encode() if number == 0 else None)
    return cut, ("looks like OME-XML but cannot be parsed",)


def _wrong_uuid(tmp_path):
    files = write_bioformats_ometiff(tmp_path / "set" / "c.ome.tif", images=2, multifile=True,
                                     slices=1, times=1)
    other = write_bioformats_ometiff(tmp_path / "other" / "c.ome.tif", images=2, multifile=True,
                                     slices=1, times=1, seed=99)
    other[1].replace(files[1])
    return files[0], ("is not the file c_s0.ome.tif's OME-XML places planes in",)


def _stranger_in_the_folder(tmp_path):
    write_bioformats_ometiff(tmp_path / "set" / "a.ome.tif", slices=1, times=1)
    write_bioformats_ometiff(tmp_path / "set" / "b.ome.tif", slices=1, times=1)
    return tmp_path / "set", ("b.ome.tif hold(s) no plane of the OME-TIFF set that a.ome.tif "
                              "describes", "as its own CSV row")


def _float_pixels(tmp_path):
    path = tmp_path / "float.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.float32), ome=True, metadata={"axes": "ZYX"})
    return path, ("float32 pixels", "convert the images to 16-bit first")


def _rewritten(tmp_path, change, name="bad.ome.tif"):
    """A one-image Bio-Formats file whose OME-XML went through ``change(xml) -> xml``."""
    [path] = write_bioformats_ometiff(tmp_path / "source" / name, slices=2, times=1)
    with tifffile.TiffFile(path) as tif:
        xml = tif.pages[0].description
        pages = [page.asarray() for page in tif.pages]
    bad = tmp_path / name
    with tifffile.TiffWriter(bad) as writer:
        for number, pixels in enumerate(pages):
            writer.write(pixels, metadata=None, contiguous=False,
                         description=change(xml).encode() if number == 0 else None)
    return bad


def _binary_only(tmp_path):
    path = _rewritten(tmp_path, lambda xml: xml[:xml.index("<Image ")]
                      + '<BinaryOnly MetadataFile="master.ome.tif" UUID="urn:uuid:1"/></OME>')
    return path, ("holds pixels only: its OME-XML is in 'master.ome.tif'",
                  "give the OME-TIFF file that holds the OME-XML")


def _first_z_outside(tmp_path):
    path = _rewritten(tmp_path, lambda xml: xml.replace('FirstZ="1" IFD="1"', 'FirstZ="7" IFD="1"'))
    return path, ("starts at FirstZ=7 but SizeZ is 2 (damaged OME-XML)",)


def _plane_placed_twice(tmp_path):
    path = _rewritten(tmp_path, lambda xml: xml.replace('FirstZ="1" IFD="1"', 'FirstZ="0" IFD="1"'))
    return path, ("plane (channel 0, slice 0, time 0, image 0) is placed twice",)


def _plane_count_too_large(tmp_path):
    path = _rewritten(tmp_path, lambda xml: xml.replace('IFD="3" PlaneCount="1"',
                                                        'IFD="3" PlaneCount="5"'))
    return path, ("places 5 planes from plane 3, past the Image's 4",)


def _file_name_with_a_folder(tmp_path):
    def elsewhere(xml):
        head, tail = xml.split("<TiffData ", 1)
        return head + "<TiffData " + tail.replace(
            'FileName="bad.ome.tif">urn:uuid:', 'FileName="../x.ome.tif">urn:uuid:0', 1)

    return _rewritten(tmp_path, elsewhere), ("TiffData FileName '../x.ome.tif' is not a file name",)


def _unknown_dimension_order(tmp_path):
    path = _rewritten(tmp_path, lambda xml: xml.replace('DimensionOrder="XYZCT"',
                                                        'DimensionOrder="XYZQT"'))
    return path, ("DimensionOrder 'XYZQT' is not one of",)


@pytest.mark.parametrize("make", [_missing_file, _different_images, _damaged_xml, _wrong_uuid,
                                  _stranger_in_the_folder, _float_pixels, _binary_only,
                                  _first_z_outside, _plane_placed_twice, _plane_count_too_large,
                                  _file_name_with_a_folder, _unknown_dimension_order])
def test_bad_ome_tiff_is_refused_and_changes_nothing(site, run_cli, upload_files, tmp_path, make):
    source, messages = make(tmp_path)
    before = site.snapshot()
    result = upload(run_cli, upload_files, source, frames_format="ome_tiff")
    assert_refused(result, site, before, contains=(source.name, *messages))


def test_a_position_the_file_does_not_hold_is_refused(site, run_cli, upload_files, tmp_path):
    [path] = write_bioformats_ometiff(tmp_path / "two.ome.tif", images=2, slices=1, times=1)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(path),
                                  "positions": "[2]"}])
    before = site.snapshot()
    result = run_cli("upload", "--csv", csv_path, "--config",
                     upload_files.config(upload_type="frames", frames_format="ome_tiff"))
    assert_refused(result, site, before, contains=(
        str(path), "position(s) 2 not found; the OME-XML has images 0-1"))


@pytest.mark.parametrize("size, declared", [('SizeC="900000000"', "1,800,000,000"),
                                            ('SizeT="900000000"', "3,600,000,000")])
@pytest.mark.parametrize("frames_format", ["ome_tiff", "tif_id"])
def test_an_ome_size_larger_than_any_acquisition_is_refused_at_once(
        site, run_cli, upload_files, tmp_path, size, declared, frames_format):
    """Refused before a channel name per channel or a plan over every plane is made: not an
    out-of-memory crash, nor a dataset of 4 frames in a grid that `show` cannot walk."""
    key = size.split("=")[0]
    path = _rewritten(tmp_path, lambda xml: re.sub(f'{key}="\\d+"', size, xml, count=1))
    before = site.snapshot()
    started = time.monotonic()
    result = upload(run_cli, upload_files, path, frames_format=frames_format)
    assert time.monotonic() - started < 5
    assert_refused(result, site, before, contains=(
        str(path), f"declares {declared} frames", "store the file whole with upload_type: file"))
