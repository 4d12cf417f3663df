"""The Micro-Manager OME-TIFF generator (imagingdb.testing) and the ome_tiff splitter."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import tifffile

from imagingdb.acquisition import FrameIndex, SplitOptions
from imagingdb.errors import SplitterError
from imagingdb.splitters.ome_tiff import OME_TIFF_META_SCHEMA, OmeTiffSplitter, register_splitters
from imagingdb.testing import (
    FluorescenceScene,
    fluorescence_frame,
    write_demo_acquisition,
    write_mm_ometiff,
)
from tests.conftest import DATASET_ID
from tests.helpers import assert_refused

CHANNELS = ("DAPI", "GFP")
SLICES, TIMES, POSITIONS, HEIGHT, WIDTH = 3, 2, 2, 64, 64
PAGES_PER_POSITION = len(CHANNELS) * SLICES * TIMES
ALL_INDEXES = {
    FrameIndex(c, z, t, p)
    for c in range(len(CHANNELS)) for z in range(SLICES)
    for t in range(TIMES) for p in range(POSITIONS)
}
OME14 = "{http://www.openmicroscopy.org/Schemas/OME/2015-01}"


@pytest.fixture
def mm_ometiff_files(tmp_path: Path) -> list[Path]:
    """2 positions x 2 channels x 3 slices x 2 time points, uint16, one file per position."""
    return write_mm_ometiff(tmp_path / "acq")


@pytest.fixture
def mm_ometiff_split_files(tmp_path: Path) -> list[Path]:
    """The same acquisition with at most 5 pages per file (continuation files)."""
    return write_mm_ometiff(tmp_path / "acq", max_pages_per_file=5)


def read_frames(source, positions=None, pixels=True):
    with OmeTiffSplitter().open(source, SplitOptions(positions=positions)) as acquisition:
        return acquisition, list(acquisition.iter_frames(pixels=pixels))


def mm_tags(page) -> dict:
    return page.tags["MicroManagerMetadata"].value


def write_mm_pages(path: Path, pages, summary=None) -> Path:
    """A hand-made Micro-Manager-like file: (pixels, metadata) per page, summary as ImageJ Info."""
    with tifffile.TiffWriter(path, ome=False, shaped=False) as writer:
        for number, (pixels, metadata) in enumerate(pages):
            extratags = [(51123, "s", 0, json.dumps(metadata), True)]
            if number == 0 and summary is not None:
                extratags += tifffile.imagej_metadata_tag({"Info": json.dumps(summary)}, "<")
            writer.write(pixels, extratags=extratags, contiguous=False, metadata=None)
    return path


def page_meta(c=0, z=0, t=0, p=0, channel="DAPI") -> dict:
    return {"ChannelIndex": c, "SliceIndex": z, "FrameIndex": t, "PositionIndex": p,
            "Channel": channel}


SMALL_SUMMARY = {"Channels": 1, "Slices": 1, "Frames": 2, "Positions": 1, "ChNames": ["DAPI"]}


# --------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------


def test_generator_writes_one_file_per_position_named_like_micro_manager(mm_ometiff_files):
    assert [path.name for path in mm_ometiff_files] == [
        "sample_MMStack_Pos0.ome.tif", "sample_MMStack_Pos1.ome.tif"]


def test_generator_pages_carry_metadata_in_micro_manager_order(mm_ometiff_files):
    with tifffile.TiffFile(mm_ometiff_files[1]) as tif:
        tags = [mm_tags(page) for page in tif.pages]
    order = [(m["FrameIndex"], m["SliceIndex"], m["ChannelIndex"]) for m in tags]
    assert order == [(t, z, c) for t in range(TIMES) for z in range(SLICES)
                     for c in range(len(CHANNELS))]
    assert {m["PositionIndex"] for m in tags} == {1}
    assert [m["Channel"] for m in tags[:2]] == list(CHANNELS)
    assert tags[0]["PixelType"] == "GRAY16" and tags[0]["Core-Camera"] == tags[0]["Camera"]
    assert tags[0]["FileName"] == "sample_MMStack_Pos1.ome.tif"


def test_generator_writes_summary_in_file_header_and_imagej_info(mm_ometiff_files):
    with tifffile.TiffFile(mm_ometiff_files[0]) as tif:
        header_summary = tif.micromanager_metadata["Summary"]
        info = json.loads(tif.pages[0].tags["IJMetadata"].value["Info"])
    # 1.4's writeMMHeaderAndSummaryMD drops the Comment from the header's copy only
    assert header_summary == {key: value for key, value in info.items() if key != "Comment"}
    assert info["ChNames"] == list(CHANNELS)
    assert (info["Channels"], info["Slices"], info["Frames"], info["Positions"]) == (2, 3, 2, 2)
    assert [p["Label"] for p in info["InitialPositionList"]] == ["Pos0", "Pos1"]
    assert info["Prefix"] == "sample" and "MicroManagerVersion" in info


def test_generator_index_map_points_at_each_page(mm_ometiff_files):
    with tifffile.TiffFile(mm_ometiff_files[0]) as tif:
        index_map = tif.micromanager_metadata["IndexMap"]
        pages = [(mm_tags(page), page.offset) for page in tif.pages]
    assert index_map.tolist() == [
        [m["ChannelIndex"], m["SliceIndex"], m["FrameIndex"], m["PositionIndex"], offset]
        for m, offset in pages]


def test_generator_ome_xml_describes_every_position(mm_ometiff_files):
    with tifffile.TiffFile(mm_ometiff_files[0]) as tif:
        ome = ET.fromstring(tif.pages[0].description)
    pixels = ome.findall(f"{OME14}Image/{OME14}Pixels")
    assert len(pixels) == POSITIONS
    assert pixels[1].attrib["DimensionOrder"] == "XYCZT"
    sizes = [pixels[1].attrib[key] for key in ("SizeC", "SizeZ", "SizeT", "SizeX", "Type")]
    assert sizes == ["2", "3", "2", "64", "uint16"]
    tiff_data = pixels[1].findall(f"{OME14}TiffData")
    assert len(tiff_data) == PAGES_PER_POSITION
    assert tiff_data[0].find(f"{OME14}UUID").attrib["FileName"] == mm_ometiff_files[1].name


def test_generator_other_positions_point_at_the_full_ome_xml(mm_ometiff_files):
    with tifffile.TiffFile(mm_ometiff_files[1]) as tif:
        ome = ET.fromstring(tif.pages[0].description)
    (pointer,) = ome
    assert pointer.tag == f"{OME14}BinaryOnly"
    assert pointer.attrib["MetadataFile"] == mm_ometiff_files[0].name


def test_tifffile_reads_the_generated_dataset_as_one_series(mm_ometiff_files):
    with tifffile.TiffFile(mm_ometiff_files[0]) as tif:
        series = tif.series[0]
        assert (series.kind, series.axes) == ("mmstack", "RTCZYX")
        assert series.shape == (POSITIONS, TIMES, len(CHANNELS), SLICES, HEIGHT, WIDTH)


def test_generator_pixels_look_like_fluorescence(mm_ometiff_files):
    with tifffile.TiffFile(mm_ometiff_files[0]) as tif:
        frame = tif.pages[0].asarray()
    assert frame.dtype == np.uint16 and frame.shape == (HEIGHT, WIDTH)
    assert 100 < np.median(frame) < 1000  # camera offset + background
    assert frame.max() > 4 * np.median(frame)  # bright cells
    assert len(np.unique(frame)) > 100  # noise, not flat areas


def test_fluorescence_frame_has_cells_over_a_noisy_background():
    frame = fluorescence_frame(np.random.default_rng(0), 48, 40, "uint8")
    assert frame.dtype == np.uint8 and frame.shape == (48, 40)
    assert frame.max() > 3 * np.median(frame) > 0
    assert len(np.unique(frame)) > 20


def test_scene_frames_are_deterministic_per_index_and_seed():
    scene = FluorescenceScene(32, 48, "uint8", nbr_slices=3, seed=7)
    frame = scene.frame(1, 2, 0, 1)
    scene.frame(0, 0, 0, 0)  # rendering other frames does not change it
    assert np.array_equal(scene.frame(1, 2, 0, 1), frame)
    other_seed = FluorescenceScene(32, 48, "uint8", nbr_slices=3, seed=8)
    assert not np.array_equal(other_seed.frame(1, 2, 0, 1), frame)


def test_generator_splits_a_position_into_continuation_files(mm_ometiff_split_files):
    names = [path.name for path in mm_ometiff_split_files]
    assert names == [f"sample_MMStack_Pos{p}{suffix}.ome.tif"
                     for p in range(POSITIONS) for suffix in ("", "_1", "_2")]
    page_counts = [len(tifffile.TiffFile(path).pages) for path in mm_ometiff_split_files[:3]]
    assert page_counts == [5, 5, 2]


def test_generator_page_metadata_matches_default_meta_schema(mm_ometiff_files):
    with tifffile.TiffFile(mm_ometiff_files[0]) as tif:
        for page in tif.pages:
            jsonschema.validate(mm_tags(page), OME_TIFF_META_SCHEMA)


def test_demo_acquisition_has_two_positions_of_128_pixels(tmp_path):
    folder = write_demo_acquisition(tmp_path / "demo")
    acquisition, frames = read_frames(folder, pixels=False)
    assert (acquisition.dims.nbr_positions, acquisition.dims.im_height) == (2, 128)
    assert len(frames) == 2 * 2 * 3 * 2


# --------------------------------------------------------------------------
# Splitter: reading
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, version", [("uint16", "1.4"), ("uint8", "1.4"),
                                            ("uint16", "2.0")])
def test_every_frame_comes_back_with_its_index_and_pixels(tmp_path, dtype, version):
    write_mm_ometiff(tmp_path, dtype=dtype, seed=3, version=version)
    _, frames = read_frames(tmp_path)
    scene = FluorescenceScene(HEIGHT, WIDTH, dtype, nbr_slices=SLICES, seed=3)
    assert {frame.index for frame in frames} == ALL_INDEXES
    for frame in frames:
        expected = scene.frame(*(frame.index.channel, frame.index.slice,
                                 frame.index.time, frame.index.position))
        assert frame.pixels.dtype == np.dtype(dtype)
        assert np.array_equal(frame.pixels, expected)
        assert frame.channel_name == CHANNELS[frame.index.channel]
        assert frame.metadata["ChannelIndex"] == frame.index.channel


def test_dims_and_channel_names_come_from_the_summary(mm_ometiff_files):
    acquisition, _ = read_frames(mm_ometiff_files[0].parent, pixels=False)
    dims = acquisition.dims
    sizes = (dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints, dims.nbr_positions)
    assert sizes == (2, 3, 2, 2)
    assert (dims.im_height, dims.im_width, dims.im_colors, dims.bit_depth) == (64, 64, 1, "uint16")
    assert acquisition.channel_names == list(CHANNELS)


def test_global_meta_is_the_summary_plus_source_files(mm_ometiff_files):
    folder = mm_ometiff_files[0].parent
    acquisition, _ = read_frames(folder, pixels=False)
    meta = acquisition.global_meta
    assert meta["ChNames"] == list(CHANNELS) and len(meta["InitialPositionList"]) == 2
    assert meta["file_origin"] == str(folder)
    assert meta["source_files"] == [path.name for path in mm_ometiff_files]
    json.dumps(meta)  # stored as JSON


def test_positions_subset_keeps_original_position_indexes(mm_ometiff_files):
    acquisition, frames = read_frames(mm_ometiff_files[0].parent, positions=[1])
    assert acquisition.dims.nbr_positions == 1
    assert {frame.index for frame in frames} == {i for i in ALL_INDEXES if i.position == 1}


def test_single_file_gives_only_its_own_position(mm_ometiff_files):
    acquisition, frames = read_frames(mm_ometiff_files[1], pixels=False)
    assert acquisition.dims.nbr_positions == 1
    assert {frame.index.position for frame in frames} == {1}
    assert len(frames) == PAGES_PER_POSITION


def test_single_file_pulls_in_its_continuation_files(mm_ometiff_split_files):
    acquisition, frames = read_frames(mm_ometiff_split_files[0], pixels=False)
    assert acquisition.global_meta["source_files"] == [p.name for p in mm_ometiff_split_files[:3]]
    assert {frame.index for frame in frames} == {i for i in ALL_INDEXES if i.position == 0}


def test_folder_with_continuation_files_gives_every_frame(mm_ometiff_split_files):
    _, frames = read_frames(mm_ometiff_split_files[0].parent, pixels=False)
    assert {frame.index for frame in frames} == ALL_INDEXES


def test_incomplete_acquisition_yields_present_frames_with_summary_dims(tmp_path):
    dropped = {(1, 2, 1, 1), (0, 2, 1, 1), (1, 0, 0, 0)}
    write_mm_ometiff(tmp_path, drop=dropped)
    acquisition, frames = read_frames(tmp_path)
    assert {frame.index for frame in frames} == ALL_INDEXES - {FrameIndex(*d) for d in dropped}
    assert (acquisition.dims.nbr_slices, acquisition.dims.nbr_timepoints) == (SLICES, TIMES)


def test_metadata_only_pass_gives_the_same_indexes_without_pixels(mm_ometiff_files):
    _, with_pixels = read_frames(mm_ometiff_files[0].parent)
    _, without = read_frames(mm_ometiff_files[0].parent, pixels=False)
    assert [f.index for f in without] == [f.index for f in with_pixels]
    assert all(frame.pixels is None for frame in without)


def test_file_without_micro_manager_header_is_read_from_its_pages(tmp_path):
    write_mm_ometiff(tmp_path, file_header=False)
    acquisition, frames = read_frames(tmp_path, positions=[0], pixels=False)
    assert acquisition.channel_names == list(CHANNELS)  # summary from the ImageJ Info
    assert {frame.index for frame in frames} == {i for i in ALL_INDEXES if i.position == 0}


def test_without_summary_dims_and_names_come_from_the_pages(tmp_path):
    frame = np.ones((8, 8), "uint16")
    path = write_mm_pages(tmp_path / "x.ome.tif", [
        (frame, page_meta(c=c, z=z, channel=name))
        for z in range(2) for c, name in enumerate(["BF", "Cy5"])])
    acquisition, frames = read_frames(path)
    assert (acquisition.dims.nbr_channels, acquisition.dims.nbr_slices) == (2, 2)
    assert acquisition.channel_names == ["BF", "Cy5"]
    assert len(frames) == 4


def test_position_without_index_comes_from_the_position_name(tmp_path):
    summary = dict(SMALL_SUMMARY, Positions=2,
                   InitialPositionList=[{"Label": "A1"}, {"Label": "B2"}])
    metadata = {"ChannelIndex": 0, "SliceIndex": 0, "FrameIndex": 0, "Channel": "DAPI",
                "PositionName": "B2"}
    path = write_mm_pages(tmp_path / "x.ome.tif", [(np.ones((8, 8), "uint16"), metadata)], summary)
    _, frames = read_frames(path)
    assert frames[0].index == FrameIndex(0, 0, 0, 1)


@pytest.mark.parametrize("name, position", [("x_MMStack_B2.ome.tif", 1),
                                            ("x_MMStack_B2_1.ome.tif", 1),
                                            ("x_MMStack_Pos3.ome.tif", 3),
                                            # positions not split into files: no label
                                            ("x_MMStack_1.ome.tif", 0)])
def test_position_without_index_nor_name_comes_from_the_file_name(tmp_path, name, position):
    summary = dict(SMALL_SUMMARY, Positions=4,
                   InitialPositionList=[{"Label": "A1"}, {"Label": "B2"}])
    metadata = {"ChannelIndex": 0, "SliceIndex": 0, "FrameIndex": 0, "Channel": "DAPI"}
    path = write_mm_pages(tmp_path / name, [(np.ones((8, 8), "uint16"), metadata)], summary)
    _, frames = read_frames(path)
    assert frames[0].index == FrameIndex(0, 0, 0, position)


def test_summary_is_read_from_imagej_info_after_the_acquisition_comments(tmp_path):
    write_mm_ometiff(tmp_path, file_header=False, comment="cells {fed} at\n\n\n9am",
                     channels=("Cy5", "DAPI"))
    acquisition, _ = read_frames(tmp_path, positions=[0], pixels=False)
    assert acquisition.channel_names == ["Cy5", "DAPI"]
    assert acquisition.global_meta["Comment"] == "cells {fed} at\n\n\n9am"


def test_aborted_acquisition_skips_the_blank_pages_micromanager_added(tmp_path):
    """Stopped after 10 images: Micro-Manager completed time point 1 of both positions with
    blank pages; they are not frames, and the summary's 3 time points stay declared."""
    write_mm_ometiff(tmp_path, slices=2, times=3, aborted_after=10, seed=6)
    acquisition, frames = read_frames(tmp_path)
    assert acquisition.dims.nbr_timepoints == 3
    order = [(c, z, t, p) for t in range(3) for p in range(2) for z in range(2) for c in range(2)]
    assert {frame.index for frame in frames} == {FrameIndex(*index) for index in order[:10]}
    scene = FluorescenceScene(HEIGHT, WIDTH, "uint16", nbr_slices=2, seed=6)
    for frame in frames:
        assert np.array_equal(frame.pixels, scene.frame(*(frame.index.channel, frame.index.slice,
                                                          frame.index.time, frame.index.position)))


def test_positions_of_an_unfinished_file_ignore_its_reserved_index_entries(tmp_path):
    """A file Micro-Manager never finished keeps the index map's count at its room, the
    entries past the images written all zero: not images of position 0."""
    files = write_mm_ometiff(tmp_path, positions=2, slices=1, times=1, height=256, width=256,
                             reserve_index_map=True)
    files[0].unlink()
    data = bytearray(files[1].read_bytes())
    summary_length = struct.unpack("<I", data[36:40])[0]
    room = (struct.unpack("<I", data[4:8])[0] - 40 - summary_length - 8) // 20
    data[44 + summary_length:48 + summary_length] = struct.pack("<I", room)
    files[1].write_bytes(bytes(data))
    with tifffile.TiffFile(files[1]) as tif:
        assert len(tif.micromanager_metadata["IndexMap"]) == room
    # The file alone: the folder would be refused first, its OME-XML naming Pos0's file
    with pytest.raises(SplitterError, match="position.s. 0 not found; available positions: 1 "):
        read_frames(files[1], positions=[0])


def test_rgb_pages_have_three_colors(tmp_path):
    rgb = np.arange(8 * 8 * 3, dtype="uint8").reshape(8, 8, 3)
    path = write_mm_pages(tmp_path / "rgb.ome.tif",
                          [(rgb, page_meta(t=0)), (rgb, page_meta(t=1))], SMALL_SUMMARY)
    acquisition, frames = read_frames(path)
    assert (acquisition.dims.im_colors, acquisition.dims.bit_depth) == (3, "uint8")
    assert np.array_equal(frames[1].pixels, rgb)


def test_close_stops_a_half_read_acquisition(mm_ometiff_files):
    acquisition = OmeTiffSplitter().open(mm_ometiff_files[0], SplitOptions())
    frames = acquisition.iter_frames()
    next(frames)
    acquisition.close()
    assert next(frames, None) is None


def test_hook_registers_the_splitter():
    registered = {}
    register_splitters(register=lambda name, factory: registered.update({name: factory}))
    assert registered["ome_tiff"]().name == "ome_tiff"


def test_module_import_loads_neither_numpy_nor_tifffile():
    code = ("import sys, imagingdb.splitters.ome_tiff; "
            "print(sorted({'numpy', 'tifffile'} & set(sys.modules)))")
    output = subprocess.run([sys.executable, "-c", code],
                            capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"


# --------------------------------------------------------------------------
# Splitter: bad input
# --------------------------------------------------------------------------


def missing_path(tmp_path):
    return tmp_path / "nowhere.ome.tif", None


def empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty", None


def zero_byte_file(tmp_path):
    (tmp_path / "zero.ome.tif").write_bytes(b"")
    return tmp_path / "zero.ome.tif", None


def truncated_file(tmp_path):
    source = write_mm_ometiff(tmp_path / "src", positions=1)[0]
    data = source.read_bytes()
    (tmp_path / "cut.ome.tif").write_bytes(data[:len(data) // 2])
    return tmp_path / "cut.ome.tif", None


def file_cut_inside_a_page_directory(tmp_path):
    source = write_mm_ometiff(tmp_path / "src", positions=1)[0]
    with tifffile.TiffFile(source) as tif:
        cut = tif.pages[4].offset + 20
    (tmp_path / "cut.ome.tif").write_bytes(source.read_bytes()[:cut])
    return tmp_path / "cut.ome.tif", None


def text_file(tmp_path):
    (tmp_path / "notes.ome.tif").write_text("not an image\n")
    return tmp_path / "notes.ome.tif", None


def plain_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "plain.ome.tif", np.zeros((3, 8, 8), "uint16"), ome=False)
    return tmp_path / "plain.ome.tif", None


def float32_page(tmp_path):
    pages = [(np.zeros((8, 8), "float32"), page_meta())]
    return write_mm_pages(tmp_path / "float.ome.tif", pages, SMALL_SUMMARY), None


def absent_position(tmp_path):
    return write_mm_ometiff(tmp_path / "acq")[0].parent, [0, 5]


def duplicate_frame_index(tmp_path):
    pages = [(np.zeros((8, 8), "uint16"), page_meta())] * 2
    return write_mm_pages(tmp_path / "dup.ome.tif", pages, SMALL_SUMMARY), None


def position_index_against_its_name(tmp_path):
    summary = dict(SMALL_SUMMARY, Positions=2, InitialPositionList=[{"Label": "A1"},
                                                                    {"Label": "B2"}])
    pages = [(np.zeros((8, 8), "uint16"), dict(page_meta(p=0), PositionName="B2"))]
    return write_mm_pages(tmp_path / "x.ome.tif", pages, summary), None


def index_outside_summary(tmp_path):
    pages = [(np.zeros((8, 8), "uint16"), page_meta(t=0)),
             (np.zeros((8, 8), "uint16"), page_meta(t=2))]
    return write_mm_pages(tmp_path / "big_t.ome.tif", pages, SMALL_SUMMARY), None


def inconsistent_page_shapes(tmp_path):
    pages = [(np.zeros((8, 8), "uint16"), page_meta(t=0)),
             (np.zeros((8, 9), "uint16"), page_meta(t=1))]
    return write_mm_pages(tmp_path / "shapes.ome.tif", pages, SMALL_SUMMARY), None


@pytest.mark.parametrize("make_source, expected", [
    (missing_path, "no such file or folder"),
    (empty_folder, "no .ome.tif file"),
    (zero_byte_file, "empty file"),
    (truncated_file, "truncated"),
    (file_cut_inside_a_page_directory, "truncated"),
    (text_file, "not a readable TIFF"),
    (plain_tiff, "has no MicroManagerMetadata on page 0"),
    (absent_position, "position(s) 5 not found; available positions: 0, 1"),
    (duplicate_frame_index, "repeats frame"),
    (index_outside_summary, "time index 2"),
    (position_index_against_its_name, "page 0's MicroManagerMetadata says PositionIndex 0 but "
                                      "its PositionName 'B2' is position 1"),
    (inconsistent_page_shapes, "share shape and pixel type"),
])
def test_bad_input_raises_splitter_error_naming_the_file(tmp_path, make_source, expected):
    source, positions = make_source(tmp_path)
    with pytest.raises(SplitterError) as raised:
        read_frames(source, positions=positions)
    message = str(raised.value)
    assert source.name in message and expected in message
    assert "\n" not in message


def test_float_pages_are_refused_by_the_upload_with_how_to_convert(site, run_cli, upload_files,
                                                                   tmp_path):
    """The splitter reads what the file holds; the frame codec says what it cannot store."""
    source, _ = float32_page(tmp_path)
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert_refused(result, site, before, contains=(
        str(source), "float32 pixels cannot be stored as PNG frames", "convert the images to 16-bit"))
