"""Property-based tests (hypothesis): dataset IDs and every registered filename parser.

The frame codec's properties live with its other tests in test_frames.py.
"""

import re
import string
from datetime import datetime

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from imagingdb import plugins
from imagingdb.errors import InputError
from imagingdb.ids import parse_dataset_id
from imagingdb.storage import validate_key, validate_object_name

ASCII_ID = re.compile(r"[A-Za-z0-9]+-\d{4}(-\d{2}){5}-\d{4}", re.ASCII)

projects = st.text(string.ascii_letters + string.digits, min_size=1, max_size=16)
stamps = st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)).map(
    lambda d: d.replace(microsecond=0))
serials = st.integers(0, 9999).map(lambda n: f"{n:04d}")


def id_text(project, stamp, serial):
    return (f"{project}-{stamp.year:04d}-{stamp.month:02d}-{stamp.day:02d}-{stamp.hour:02d}-"
            f"{stamp.minute:02d}-{stamp.second:02d}-{serial}")


# ---------------------------------------------------------------- dataset IDs


@given(projects, stamps, serials, st.sampled_from(["", " ", "\t", "  \n"]))
def test_valid_ids_round_trip(project, stamp, serial, padding):
    text = id_text(project, stamp, serial)
    parsed = parse_dataset_id(padding + text + padding)
    assert (parsed.text, parsed.project, parsed.date_time, parsed.serial) == \
        (text, project, stamp, serial)
    assert parse_dataset_id(str(parsed)) == parsed
    validate_object_name(parsed.text)  # an ID is always one safe storage key segment
    validate_key(f"raw_frames/{parsed}/im_c000_z000_t000_p000.png")


@settings(max_examples=300)
@given(projects, stamps, serials, st.data())
@example("ML", datetime(2005, 5, 23, 10), "0001", None)  # the documented example stays valid
def test_one_changed_character_gives_a_valid_id_or_an_input_error(project, stamp, serial, data):
    text = id_text(project, stamp, serial)
    if data is not None:
        position = data.draw(st.integers(0, len(text) - 1))
        text = text[:position] + data.draw(st.characters()) + text[position + 1:]
    try:
        parsed = parse_dataset_id(text)
    except InputError as exc:
        assert "dataset ID" in str(exc) and "\n" not in str(exc)
        return
    assert ASCII_ID.fullmatch(parsed.text), parsed.text
    validate_object_name(parsed.text)


@given(projects, stamps, serials, st.sampled_from(string.digits[1:]))
def test_non_ascii_digits_are_refused(project, stamp, serial, digit):
    text = id_text(project, stamp, serial)
    assume(digit in text)
    arabic_indic = chr(0x0660 + int(digit))  # str.isdigit() and int() accept these
    with pytest.raises(InputError, match="invalid dataset ID"):
        parse_dataset_id(text.replace(digit, arabic_indic))


@given(projects, st.integers(1, 9999), st.integers(1, 99), st.integers(1, 99), serials)
def test_impossible_dates_are_refused(project, year, month, day, serial):
    try:
        datetime(year, month, day)
    except ValueError:
        text = f"{project}-{year:04d}-{month:02d}-{day:02d}-10-00-00-{serial}"
        with pytest.raises(InputError, match="not a real date"):
            parse_dataset_id(text)
    else:
        assume(False)


@given(projects, stamps, serials,
       st.sampled_from(["/", "\\", "..", ".", "_", " ", "%", "'", ";", "\x00", "é", "-"]))
def test_separators_and_metacharacters_in_the_project_are_refused(project, stamp, serial, bad):
    with pytest.raises(InputError, match="invalid dataset ID"):
        parse_dataset_id(id_text(project + bad + project, stamp, serial))


@given(st.text())
def test_any_text_is_a_valid_id_or_an_input_error(text):
    try:
        parsed = parse_dataset_id(text)
    except InputError:
        return
    assert ASCII_ID.fullmatch(parsed.text)


# ---------------------------------------------------------- filename parsers
# Every parser registered through register_filename_parsers, built-in or
# third-party. Parsers added later are covered with no change here.

PARSERS = sorted(plugins.registry("filename_parser"))
INDEX_KEYS = ("channel_idx", "slice_idx", "time_idx", "pos_idx")

file_names = st.one_of(
    st.text(),
    st.from_regex(r"(img|im)_[A-Za-z0-9_-]{0,10}(_[ctpz]?[0-9]{1,9}){0,5}"
                  r"\.(tif|tiff|ome\.tif|png|TIF)", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9]{1,6}_[0-9]{1,6}_[A-Za-z0-9]{1,8}_[A-Za-z0-9_]{0,10}\.tif",
                  fullmatch=True),
)


@pytest.mark.parametrize("parser_name", PARSERS)
@settings(max_examples=200, deadline=None)
@given(file_names, st.sampled_from(["", "data/", "/mnt/scope/run 1/"]))
def test_parser_returns_a_dict_or_raises_value_error(parser_name, name, folder):
    """The hook's contract: a dict with well-typed indexes, or ValueError, nothing else."""
    parse = plugins.get("filename_parser", parser_name).obj
    try:
        result = parse(folder + name)
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(result, dict) and all(isinstance(key, str) for key in result)
    for key in INDEX_KEYS:
        if key in result:
            assert isinstance(result[key], int) and not isinstance(result[key], bool)
            assert result[key] >= 0
    if "channel_name" in result:
        assert isinstance(result["channel_name"], str) and result["channel_name"]
    assert parse(folder + name) == result  # deterministic


# Names built from known values, for the built-in parsers' conventions.
channel_names = st.text(string.ascii_letters + string.digits, min_size=1, max_size=10)
small = st.integers(0, 999)
ROUND_TRIPS = {
    "parse_idx_from_name": st.builds(
        lambda c, z, t, p: (f"im_c{c:03d}_z{z:03d}_t{t:03d}_p{p:03d}.png",
                            {"channel_idx": c, "slice_idx": z, "time_idx": t, "pos_idx": p}),
        small, small, small, small),
    "parse_sms_name": st.builds(
        lambda ch, t, p, z: (f"img_{ch}_t{t:03d}_p{p:03d}_z{z:03d}.tif",
                             {"channel_name": ch, "time_idx": t, "pos_idx": p, "slice_idx": z}),
        channel_names, small, small, small),
}


@pytest.mark.parametrize("parser_name", sorted(set(ROUND_TRIPS) & set(PARSERS)))
@settings(max_examples=100, deadline=None)
@given(st.data())
def test_known_parsers_read_back_the_values_a_name_was_built_from(parser_name, data):
    name, expected = data.draw(ROUND_TRIPS[parser_name])
    result = plugins.get("filename_parser", parser_name).obj(name)
    assert {key: result.get(key) for key in expected} == expected
