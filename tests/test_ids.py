from datetime import datetime

import pytest

from imagingdb.errors import InputError
from imagingdb.ids import is_dataset_id, parse_dataset_id


def test_valid_id_is_parsed_into_its_parts():
    parsed = parse_dataset_id("ML-2005-05-23-10-00-00-0001")
    assert parsed.project == "ML"
    assert parsed.date_time == datetime(2005, 5, 23, 10, 0, 0)
    assert parsed.serial == "0001"
    assert str(parsed) == "ML-2005-05-23-10-00-00-0001"


def test_surrounding_spaces_are_ignored():
    assert parse_dataset_id("  ISP-2018-04-05-00-00-00-0001 ").text == "ISP-2018-04-05-00-00-00-0001"


@pytest.mark.parametrize("bad", [
    "", "   ", "ML", "ML-2005-05-23-10-00-00", "ML-2005-05-23-10-00-00-001",
    "ML-2005-13-40-10-00-00-0001", "ML-2005-02-30-10-00-00-0001", "ML-2005-05-23-25-00-00-0001",
    "M_L-2005-05-23-10-00-00-0001", "../x-2005-05-23-10-00-00-0001",
    "ML-2005-05-23-10-00-00-0001/..", "/abs-2005-05-23-10-00-00-0001",
    "ML-2005-05-23-10-00-00-00011",
    "ML-2005-05-23-10-00-00-0001\nML", "ML-2005-05-23 10-00-00-0001",
    "ML-2005-05-23-10-00-00-0001; DROP TABLE data_set",
])
def test_invalid_ids_are_refused_with_the_expected_format(bad):
    with pytest.raises(InputError, match="dataset ID|expected"):
        parse_dataset_id(bad)
    assert not is_dataset_id(bad)


def test_impossible_date_says_the_timestamp_is_wrong():
    with pytest.raises(InputError, match="not a real date"):
        parse_dataset_id("ML-2005-13-40-10-00-00-0001")


def test_non_string_is_refused():
    with pytest.raises(InputError):
        parse_dataset_id(None)
