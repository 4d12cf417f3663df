"""Output that fits: query's table cut to the terminal's width (the ID never), show a
readable summary (dimensions, channels, missing frames by index, size; global metadata as
the names of its keys), --format json the whole record."""

import json
import os
import re

import pytest

from imagingdb.testing import write_mm_ometiff
from tests.conftest import DATASET_ID
from tests.test_interrupt import run_on_a_terminal

LONG = ("plate B, second run after the incubator fault: wells A1-H12 imaged twice, "
        "the first pass out of focus, the second with autofocus on every well")
PARENT_ID = "ML-2005-05-23-09-00-00-0001"

only_sqlite = pytest.mark.parametrize("site", ["sqlite"], indirect=True)


@pytest.fixture
def long_rows(site, run_cli, upload_files, mm_ometiff):
    """Two datasets: a parent, and a child with a description longer than any terminal."""
    csv_path = upload_files.csv([
        {"dataset_id": PARENT_ID, "file_name": str(mm_ometiff), "description": "parent"},
        {"dataset_id": DATASET_ID, "file_name": str(mm_ometiff), "description": LONG,
         "parent_dataset_id": PARENT_ID}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert result.exit_code == 0, result.stderr


def screen_lines(shown):
    return [line for line in shown.replace("\r\n", "\n").split("\n") if line]


@only_sqlite
@pytest.mark.parametrize("columns", [80, 120])
def test_query_table_fits_the_terminal_and_never_cuts_the_id(long_rows, columns):
    code, shown = run_on_a_terminal(["query"], {**os.environ, "COLUMNS": str(columns)})
    assert code == 0, shown
    lines = screen_lines(shown)
    assert lines[0].startswith("dataset_id ") and lines[-1] == "2 dataset(s)"
    assert all(len(line) <= columns for line in lines), "\n".join(lines)
    row = next(line for line in lines if line.startswith(DATASET_ID + " "))
    assert "…" in row  # the description, cut
    assert row.split("  ")[0] == DATASET_ID


@only_sqlite
def test_query_table_in_a_pipe_keeps_values_whole_to_a_sensible_width(long_rows, run_cli):
    result = run_cli("query", "--format", "table")
    row = next(line for line in result.stdout.splitlines() if line.startswith(DATASET_ID))
    assert LONG[:59] + "…" in row and LONG not in row
    assert PARENT_ID in row  # 27 characters: whole


@pytest.fixture
def stopped(site, run_cli, upload_files, tmp_path):
    """A stopped acquisition: time point 1 never came, nor channel 1 of the first frame."""
    folder = tmp_path / "stopped"
    dropped = {(c, z, 1, p) for c in range(2) for z in range(3) for p in range(2)}
    write_mm_ometiff(folder, "stopped", slices=3, times=2, positions=2, height=16, width=16,
                     drop=dropped | {(1, 0, 0, 0)}, seed=3)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(folder)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert result.exit_code == 0, result.stderr
    return DATASET_ID


def fields(text):
    return {parts[0]: parts[1] if len(parts) > 1 else ""
            for parts in (line.split(None, 1) for line in text.splitlines()
                          if line and not line.startswith(" "))}


def test_show_is_a_readable_summary_and_json_the_whole_record(stopped, run_cli):
    result = run_cli("show", stopped)
    assert result.exit_code == 0, result.stderr
    shown = fields(result.stdout)
    assert shown["dimensions"] == ("2 channels x 3 slices x 2 time points x 2 positions; "
                                   "16 x 16 pixels, uint16 (png)")
    assert shown["channel_names"] == "0: DAPI, 1: GFP"
    assert shown["missing_frames"] == "13 of 24: p=0 t=0 c=1 z=0; t=1"
    assert re.fullmatch(r"[\d.]+ kB \([\d,]+ bytes\) in 11 object\(s\)", shown["stored"])
    data = run_cli("show", stopped, "--format", "json").json()
    keys = sorted(data["global_meta"])
    assert shown["global_meta"] == (f"{len(keys)} key(s) (--format json for the whole record): "
                                    + ", ".join(keys))
    assert len(json.dumps(data["global_meta"])) > 1500  # what show used to print on one line
    assert max(len(line) for line in result.stdout.splitlines()) < 600
    assert not re.search(r"\b(True|False|None)\b|\{0: ", result.stdout)

    assert data["missing_frames"] == 13 and len(data["missing_frame_indexes"]) == 13
    assert {"channel": 1, "slice": 0, "time": 0, "position": 0} in data["missing_frame_indexes"]
    assert data["frames"] is True and data["parent_dataset_id"] is None
    assert data["date_time"] == "2005-05-23T10:00:00"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?", data["uploaded_at"])


@only_sqlite
def test_show_of_a_complete_dataset_says_none_missing(uploaded_ometiff, run_cli):
    shown = fields(run_cli("show", uploaded_ometiff).stdout)
    assert shown["missing_frames"] == "none"
    assert shown["dimensions"].startswith("2 channels x 3 slices x 2 time points x 2 positions")


@only_sqlite
def test_show_cuts_the_metadata_keys_to_the_terminal(stopped):
    code, shown = run_on_a_terminal(["show", stopped], {**os.environ, "COLUMNS": "72"})
    assert code == 0, shown
    (line,) = [line for line in screen_lines(shown) if line.startswith("global_meta")]
    assert len(line) <= 72 and line.endswith("…")
    assert "(--format json for the whole record)" in line


def test_widths_cut_free_text_first_then_dates_and_ids_never_the_first_column():
    from imagingdb.terminal import fitted_widths

    natural = [27, 19, 10, 120, 6, 27]  # dataset_id, date_time, ..., parent_dataset_id
    assert fitted_widths(natural, 240) == natural
    assert fitted_widths(natural, 120, cut_last=(1, 5)) == [27, 19, 10, 21, 6, 27]
    assert fitted_widths(natural, 80, cut_last=(1, 5)) == [27, 12, 6, 6, 6, 13]
    assert fitted_widths(natural, 20)[0] == 27  # too narrow for anything: the ID stays whole


@pytest.mark.parametrize("missing, shown", [
    ([(0, 0, 3, 0), (1, 0, 3, 0), (0, 0, 3, 1), (1, 0, 3, 1)], ["t=3"]),
    ([(1, 0, 0, 0)], ["p=0 t=0 c=1"]),  # one slice: z=0 is all of them
    ([(0, 0, 2, 1), (1, 0, 2, 1), (0, 0, 3, 1), (1, 0, 3, 1)], ["p=1 t=2-3"]),
    ([(c, 0, t, p) for c in range(2) for t in range(4) for p in range(2)], ["all"]),
])
def test_missing_frames_are_grouped_by_index(missing, shown):
    from imagingdb.acquisition import FrameIndex, describe_missing

    axes = {"c": range(2), "z": range(1), "t": range(4), "p": range(2)}
    assert describe_missing([FrameIndex(*index) for index in missing], axes) == shown
