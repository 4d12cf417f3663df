"""Filename parsers: each pattern round-trips generated names; a bad name says the pattern."""

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagingdb import plugins
from imagingdb.parsers import FilenameError, parse_idx_from_name, parse_ml_name, parse_sms_name

indexes = st.integers(min_value=0, max_value=999)
# Channel names as labs write them: letters, digits, '-', '_' and '.', never empty.
channel_names = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=20)
words = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=12)
extensions = st.sampled_from([".tif", ".tiff", ".TIF", ".png", ".ome.tif"])


@given(time=indexes, channel=channel_names, slice_=indexes, extension=extensions)
def test_parse_idx_from_name_reads_micromanager_image_names(time, channel, slice_, extension):
    name = f"img_{time:09d}_{channel}_{slice_:03d}{extension}"
    assert parse_idx_from_name(f"/data/Pos0/{name}") == {
        "time_idx": time, "channel_name": channel, "slice_idx": slice_}


@given(c=indexes, z=indexes, t=indexes, p=indexes, extension=extensions)
def test_parse_idx_from_name_reads_four_integers_as_channel_slice_time_position(c, z, t, p,
                                                                                extension):
    name = f"im_c{c:03d}_z{z:03d}_t{t:03d}_p{p:03d}{extension}"
    assert parse_idx_from_name(name) == {"channel_idx": c, "slice_idx": z, "time_idx": t,
                                         "pos_idx": p}


@given(channel=channel_names, t=indexes, p=indexes, z=indexes,
       order=st.permutations(["t", "p", "z"]), extension=extensions)
def test_parse_sms_name_round_trips(channel, t, p, z, order, extension):
    values = {"t": t, "p": p, "z": z}
    name = f"img_{channel}_" + "_".join(f"{axis}{values[axis]:03d}" for axis in order) + extension
    assert parse_sms_name(name) == {"channel_name": channel, "time_idx": t, "pos_idx": p,
                                    "slice_idx": z}


@given(c=indexes, p=indexes, t=indexes, z=indexes, extension=extensions)
def test_parse_idx_from_name_reads_micromanager_2_names_by_their_axis_words(c, p, t, z, extension):
    name = f"img_channel{c:03d}_position{p:03d}_time{t:09d}_z{z:03d}{extension}"
    assert parse_idx_from_name(f"/data/Pos0/{name}") == {
        "channel_idx": c, "pos_idx": p, "time_idx": t, "slice_idx": z}


@pytest.mark.parametrize("name, expected", [
    # 2.0 names only the axes its acquisition used; a z-stack is never read as positions
    ("img_channel000_position000_time000000000_z002.tif",
     {"channel_idx": 0, "pos_idx": 0, "time_idx": 0, "slice_idx": 2}),
    ("img_time000000003_z001.tif", {"time_idx": 3, "slice_idx": 1}),
    ("img_z004.tif", {"slice_idx": 4}),
    # the original's letters are words too, read by their letter, not their order
    ("im_t002_c001_z000_p003.tif", {"time_idx": 2, "channel_idx": 1, "slice_idx": 0,
                                    "pos_idx": 3}),
    # four numbers without words keep the original rule: channel, slice, time, position
    ("0001_0002_0000_0003.tif", {"channel_idx": 1, "slice_idx": 2, "time_idx": 0,
                                 "pos_idx": 3}),
])
def test_parse_idx_from_name_reads_words_before_order(name, expected):
    assert parse_idx_from_name(name) == expected


@given(plate=words, stack=st.integers(0, 99999), protein=words,
       rest=st.lists(words, min_size=1, max_size=3), extension=extensions)
def test_parse_ml_name_round_trips(plate, stack, protein, rest, extension):
    name = f"{plate}_{stack:04d}_{protein}_{'_'.join(rest)}{extension}"
    assert parse_ml_name(f"/plates/{name}") == {
        "plate_id": plate, "stack_nbr": stack, "protein_name": protein,
        "name_rest": "_".join(rest)}


@pytest.mark.parametrize("parser, name, pattern", [
    (parse_idx_from_name, "cells.tif", "four integers"),
    (parse_idx_from_name, "im_1_2_3.tif", "img_<time>_<channel name>_<slice>.tif"),
    (parse_idx_from_name, "exp1_time002_z003.tif", "mixes axis words"),
    (parse_idx_from_name, "img_z001_z002.tif", "names the slice axis twice"),
    (parse_sms_name, "img_DAPI_t001_p002.tif", "img_<channel name>_t<time>_p<position>_z<slice>"),
    (parse_sms_name, "img_DAPI_t001_t002_z003.tif", "img_<channel name>_t<time>"),
    (parse_sms_name, "DAPI_t001_p002_z003.tif", "img_<channel name>"),
    (parse_ml_name, "PL17_0042_LMNB1.tif", "<plate id>_<stack number>_<protein name>_<rest>"),
    (parse_ml_name, "PL17_stack_LMNB1_x.tif", "<stack number>"),
])
def test_a_name_off_the_pattern_is_refused_naming_file_and_pattern(parser, name, pattern):
    with pytest.raises(FilenameError) as raised:
        parser(f"/data/{name}")
    assert repr(name) in str(raised.value) and pattern in str(raised.value)


def test_parsers_are_registered_through_the_plugin_hook():
    registered = plugins.registry("filename_parser")
    assert {"parse_idx_from_name", "parse_sms_name", "parse_ml_name"} <= set(registered)
    assert registered["parse_ml_name"].obj is parse_ml_name
    assert "built-in" in registered["parse_ml_name"].plugin


def test_ome_tiff_dataset_metadata_from_the_folder_name(run_cli, upload_files, mm_ometiff):
    folder = mm_ometiff.rename(mm_ometiff.parent / "PL17_0042_LMNB1_PyProcessed")
    csv_path = upload_files.csv([{"dataset_id": "ML-2005-05-23-10-00-00-0001",
                                  "file_name": str(folder)}])
    config = upload_files.frames_config(filename_parser="parse_ml_name")
    assert run_cli("upload", "--csv", csv_path, "--config", config).exit_code == 0
    import imagingdb

    with imagingdb.connect() as db:
        meta = db.dataset("ML-2005-05-23-10-00-00-0001").global_meta
    assert (meta["plate_id"], meta["stack_nbr"], meta["protein_name"]) == ("PL17", 42, "LMNB1")
    assert meta["ChNames"] == ["DAPI", "GFP"]  # the Micro-Manager summary is kept alongside
