"""Micro-Manager's metadata as both splitters read it (imagingdb.splitters.micromanager)."""

from __future__ import annotations

import json

import pytest

from imagingdb.acquisition import FrameIndex
from imagingdb.errors import SplitterError
from imagingdb.splitters import micromanager as mm
from imagingdb.testing import cut_metadata_txt, write_mm_tif_folder

# ------------------------------------------------------------------ summary


@pytest.mark.parametrize("summary, sizes", [
    # 1.4
    ({"Channels": 2, "Slices": 3, "Frames": 4, "Positions": 5}, (2, 3, 4, 5)),
    # 2.0 writes IntendedDimensions and 1.4-style copies of it
    ({"IntendedDimensions": {"channel": 2, "z": 3, "time": 4, "position": 5}, "Channels": 2},
     (2, 3, 4, 5)),
    # -1: not declared (the 2.0 alpha file); made-up axes declare none of the four
    ({"Channels": -1, "Slices": -1, "Frames": -1, "Positions": -1,
      "IntendedDimensions": {"axis 3": 9, "axis 97": 8}}, (None, None, None, None)),
    ({"Channels": "2", "Slices": True, "Frames": 0}, (None, None, None, None)),
])
def test_summary_sizes(summary, sizes):
    assert tuple(mm.summary_size(summary, axis) for axis in mm.AXES) == sizes


def test_undeclared_axes_are_intended_dimensions_beyond_the_four():
    summary = {"IntendedDimensions": {"time": 2, "axis 3": 9, "z": 1, "axis 5": 2}}
    assert mm.undeclared_axes(summary) == ["axis 3", "axis 5"]


@pytest.mark.parametrize("summary, labels", [
    ({"InitialPositionList": [{"Label": "A1"}, {"Label": "B2"}]}, ["A1", "B2"]),  # 1.4
    ({"StagePositions": [{"Label": "Pos0"}, {"Label": "Pos1"}]}, ["Pos0", "Pos1"]),  # 2.0
    ({"StagePositions": [{"label": "Undefined"}, {"LABEL": "x"}, {}]},  # 2.0 alpha / beta
     ["Undefined", "x", None]),
    ({"StagePositions": "nonsense"}, []),
])
def test_position_labels_in_every_spelling(summary, labels):
    assert mm.position_labels(summary) == labels


@pytest.mark.parametrize("name, position", [("Pos0", 0), ("Pos12", 12), ("Pos", None),
                                            ("Pos1_1", None), ("pos1", None), ("A1-Pos2", None)])
def test_pos_n_names_position_n(name, position):
    assert mm.numbered_position(name) == position


def test_a_label_places_a_position_only_when_unique():
    labels = ["Undefined", "Undefined", "A1"]
    assert [mm.label_position(labels, label) for label in ("A1", "Undefined", "B7", None)] == [
        2, None, None, None]


@pytest.mark.parametrize("text, version", [("1.4.23-20160209", "1.4"), ("2.0.0", "2.0"),
                                           ("2.0.3-20230914", "2.0"), ("made-up version", None)])
def test_version(text, version):
    assert mm.version({"MicroManagerVersion": text}) == version


# ------------------------------------------------------------ image indexes


@pytest.mark.parametrize("metadata, indexes", [
    ({"ChannelIndex": 1, "SliceIndex": 2, "FrameIndex": 3, "PositionIndex": 4},
     {"channel": 1, "slice": 2, "time": 3, "position": 4}),
    # 2.0 writes Slice and Frame beside them; 2.0 beta completeCoords
    ({"Frame": 3, "FrameIndex": 3, "Slice": 2, "SliceIndex": 2, "ChannelIndex": 1},
     {"channel": 1, "slice": 2, "time": 3}),
    ({"completeCoords": {"channel": 1, "z": 2, "time": 3, "position": 0}},
     {"channel": 1, "slice": 2, "time": 3, "position": 0}),
    ({"SliceIndex": "2", "FrameIndex": 3.0}, {"slice": 2, "time": 3}),
    ({"Channel": "DAPI"}, {}),
])
def test_image_indexes(metadata, indexes):
    assert mm.image_indexes(metadata, "x") == indexes


@pytest.mark.parametrize("metadata, message", [
    ({"SliceIndex": 1, "Slice": 2}, "x Slice is 2 but the same image's other slice index is 1"),
    ({"ChannelIndex": -1}, "x ChannelIndex is -1, not a non-negative integer index"),
    ({"FrameIndex": True}, "x FrameIndex is True"),
    ({"completeCoords": {"z": 1}, "SliceIndex": 0}, "x SliceIndex is 0 but"),
])
def test_image_indexes_that_contradict_themselves_are_refused(metadata, message):
    with pytest.raises(SplitterError, match=message.replace("(", r"\(")):
        mm.image_indexes(metadata, "x")


def test_alpha_coords_entries_name_axes():
    assert mm.coords_indexes({"position": 0, "time": 1, "z": 2, "channel": 3}, "e") == {
        "channel": 3, "slice": 2, "time": 1, "position": 0}


def test_a_frame_is_named_by_its_four_indexes():
    assert mm.describe_index(FrameIndex(1, 0, 2, 3)) == "(channel 1, slice 0, time 2, position 3)"


def test_positions_asked_for_must_be_found(tmp_path):
    mm.check_positions_found(tmp_path, None, {0})
    mm.check_positions_found(tmp_path, [2, 0], {0, 1, 2})
    with pytest.raises(SplitterError, match=r"position\(s\) 3, 5 not found; available "
                                            r"positions: 0, 1 \(hint\)$"):
        mm.check_positions_found(tmp_path, [5, 0, 3], {1, 0}, " (hint)")


# ---------------------------------------------------------------- metadata.txt


@pytest.fixture
def metadata_txt(tmp_path):
    write_mm_tif_folder(tmp_path, version="1.4", channels=("DAPI", "GFP"), slices=1, times=2,
                        height=4, width=4)
    return tmp_path / "metadata.txt"


def test_metadata_txt_is_read_with_its_image_entries(metadata_txt):
    read = mm.read_metadata_txt(metadata_txt)
    assert read.warning is None and read.summary["ChNames"] == ["DAPI", "GFP"]
    entries = read.image_entries()
    assert sorted(entries) == ["img_000000000_DAPI_000.tif", "img_000000000_GFP_000.tif",
                               "img_000000001_DAPI_000.tif", "img_000000001_GFP_000.tif"]
    entry = entries["img_000000001_GFP_000.tif"]
    assert entry.keys == ["FrameKey-1-1-0"]
    assert entry.indexes == {"channel": 1, "slice": 0, "time": 1, "position": 0}


def test_a_missing_metadata_txt_is_none(tmp_path):
    assert mm.read_metadata_txt(tmp_path / "metadata.txt") is None


def test_a_cut_anywhere_keeps_every_entry_before_it(metadata_txt):
    """Cut at every byte: the entries complete before the cut, and only those, are kept."""
    text = metadata_txt.read_text()
    full = json.loads(text)
    keys = list(full)
    ends = {}  # byte offset where each entry's value ends
    decoder, position = json.JSONDecoder(), 0
    for key in keys:
        position = text.index(f'"{key}":', position) + len(key) + 3
        _, position = decoder.raw_decode(text, text.index("{", position))
        ends[key] = position
    for cut in range(1, len(text) - 2):
        metadata_txt.write_text(text[:cut])
        read = mm.read_metadata_txt(metadata_txt)
        complete = [key for key in keys if ends[key] <= cut]
        assert ["Summary"] * bool(read.summary) + list(read.entries) == complete, cut
        assert read.warning.startswith(f"metadata.txt: cut after entry {len(complete)}")


def test_the_warning_says_what_was_lost(metadata_txt):
    cut_metadata_txt(metadata_txt, keep_entries=2, half_of_next=True)
    assert mm.read_metadata_txt(metadata_txt).warning == (
        "metadata.txt: cut after entry 2, inside entry 3 'FrameKey-0-1-0' (the acquisition "
        "stopped or is still running); 1 image entries kept, the rest read from the files' "
        "names/tags")


@pytest.mark.parametrize("text, message", [
    ('{"Summary": {}} {', "text follows its closing brace"),
    ('{"Summary": {"Channels": 2,, "x": 1}', "not valid JSON: Expecting property name"),
    ('{"Summary": {}\n"FrameKey-0-0-0": {}', "expected ',' at line 2"),
    ('["Summary"', "expected '{' at line 1"),
    ('[]', "must hold a JSON object"),
])
def test_damage_other_than_a_cut_is_refused(tmp_path, text, message):
    path = tmp_path / "metadata.txt"
    path.write_text(text)
    with pytest.raises(SplitterError, match=message):
        mm.read_metadata_txt(path)


def test_an_empty_metadata_txt_is_a_cut_before_its_summary(tmp_path):
    path = tmp_path / "metadata.txt"
    path.write_text("")
    read = mm.read_metadata_txt(path)
    assert read.summary == {} and read.entries == {}
    assert "cut after entry 0" in read.warning and "its Summary is lost" in read.warning


def test_entries_that_disagree_about_one_image_are_refused(tmp_path):
    path = tmp_path / "metadata.txt"
    path.write_text(json.dumps({"Summary": {},
                                "Coords-Pos0/img_z001.tif": {"SliceIndex": 1},
                                "Metadata-Pos0/img_z001.tif": {"SliceIndex": 2}}))
    with pytest.raises(SplitterError, match="give img_z001.tif slice 1 and 2"):
        mm.read_metadata_txt(path).image_entries()
