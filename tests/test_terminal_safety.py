"""Text from data never reaches the terminal raw: control characters are shown escaped.

A description, file name or metadata value may hold escape sequences (which
recolour, clear or retitle a terminal, or move the cursor to fake output), a
carriage return (which overwrites the line), bidirectional overrides. Every
printer escapes them; JSON output stays the exact value.
"""

import json
import re

import pytest

from imagingdb.terminal import printable, printable_json
from tests.conftest import DATASET_ID

#: retitles the window, clears the screen, overwrites the line, a C1 CSI, a right-to-left
#: override, a line separator, a bell, DEL and a tab (no NUL: PostgreSQL text cannot hold it)
HOSTILE = "a\x1b]0;pwned\x07\x1b[2J\rfake\x9b31m\u202eevil\u2028\x7f\tend"
#: characters that must not reach a terminal from data (a line break only ends a line)
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                 "\u2066-\u2069\ud800-\udfff]")


def assert_terminal_safe(text):
    found = RAW.findall(text)
    assert found == [], f"raw control characters {found!r} in:\n{text!r}"


@pytest.mark.parametrize(("value", "shown"), [
    ("\x1b[31mred", "\\x1b[31mred"),
    ("over\rwrite", "over\\rwrite"),
    ("two\nlines\tand tab", "two\\nlines\\tand tab"),
    ("csi\x9b2J del\x7f", "csi\\x9b2J del\\x7f"),
    ("rtl\u202eevil\u2066x\u2069", "rtl\\u202eevil\\u2066x\\u2069"),
    ("sep\u2028arated", "sep\\u2028arated"),
    ("bad byte \udcff", "bad byte \\udcff"),  # an undecodable byte of a file name
    ("37°C, 日本, 👩\u200d🔬, C:\\data\\x", "37°C, 日本, 👩\u200d🔬, C:\\data\\x"),  # left alone
])
def test_printable_escapes_control_characters_only(value, shown):
    assert printable(value) == shown


def test_printable_json_is_the_same_value_and_safe():
    value = {"description": HOSTILE + "\udcff", "plain": "37°C 日本"}
    text = printable_json(json.dumps(value, ensure_ascii=False))
    assert_terminal_safe(text)
    assert json.loads(text) == value
    assert "37°C 日本" in text  # non-ASCII stays readable


@pytest.fixture
def hostile_dataset(site, run_cli, upload_files, mm_ometiff):
    """DATASET_ID uploaded with the HOSTILE description."""
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff),
                                  "description": HOSTILE}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert result.exit_code == 0, result.stderr
    assert_terminal_safe(result.stderr)
    return DATASET_ID


def test_query_table_shows_a_hostile_description_escaped_on_one_line(hostile_dataset, run_cli):
    result = run_cli("query", "--format", "table")
    assert result.exit_code == 0
    assert_terminal_safe(result.stdout)
    assert len(result.stdout.splitlines()) == 3  # header, rule, the one row
    assert printable(HOSTILE)[:58] in result.stdout  # cells are cut at 60 columns


@pytest.mark.parametrize("output", ["json", "jsonl"])
def test_query_json_keeps_a_hostile_description_exact(hostile_dataset, run_cli, output):
    result = run_cli("query", "--format", output)
    assert_terminal_safe(result.stdout)
    records = result.json() if output == "json" else [json.loads(result.stdout)]
    assert records[0]["description"] == HOSTILE


def test_show_escapes_a_hostile_description_and_json_keeps_it(hostile_dataset, run_cli):
    text = run_cli("show", hostile_dataset)
    assert text.exit_code == 0
    assert_terminal_safe(text.stdout)
    assert re.search(f"^description +{re.escape(printable(HOSTILE))}$", text.stdout, re.M)
    data = run_cli("show", hostile_dataset, "--format", "json")
    assert_terminal_safe(data.stdout)
    assert data.json()["description"] == HOSTILE


def test_a_file_name_with_escapes_is_escaped_in_the_error_line(site, run_cli, upload_files,
                                                             tmp_path, snapshot_with_one_dataset):
    from tests.helpers import assert_refused

    missing = tmp_path / "scan\x1b[2J\x1b[1;1Hfake\r.tif"
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(missing)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    # an error is one line: the carriage return, like any line break in it, became a space
    assert_refused(result, site, snapshot_with_one_dataset, contains=(
        "scan\\x1b[2J\\x1b[1;1Hfake .tif not found",))
    assert_terminal_safe(result.stderr)


def test_a_file_kept_whole_with_a_hostile_name_is_escaped_by_show_verify_and_gc(
        site, run_cli, upload_files, tmp_path):
    source = tmp_path / f"notes{HOSTILE.replace('/', '')}.txt"
    source.write_text("kept whole")
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.file_config()).exit_code == 0
    shown = run_cli("show", DATASET_ID)
    assert_terminal_safe(shown.stdout)
    assert printable(source.name) in shown.stdout
    with site.connect() as db:
        key = db.dataset(DATASET_ID).file["key"]
    stored = site.storage_root / key
    stray = stored.with_name(f"stray{HOSTILE}")
    stored.rename(stray)
    verify = run_cli("verify", DATASET_ID)
    assert verify.exit_code == 1
    assert_terminal_safe(verify.stdout + verify.stderr)
    assert printable(key) in verify.stdout and printable(stray.name) in verify.stdout
    garbage = run_cli("gc", "--older-than", "0")
    assert_terminal_safe(garbage.stdout.replace("\t10\n", "\n") + garbage.stderr)  # key TAB size
    assert printable(stray.name) in garbage.stdout


def test_progress_lines_and_notes_escape_what_they_quote():
    import io

    from imagingdb.progress import TerminalProgress

    stream = io.StringIO()
    progress = TerminalProgress("Uploading", "Uploaded", stream=stream, bar=True)
    progress.start(f"ID{HOSTILE}", 2, 10)
    progress.note(f"Warning: {HOSTILE}")
    progress.advance(1, 5)
    progress.last_draw = 0  # draw now, whatever the clock says
    progress.advance(1, 5)
    progress.finish()
    # the bar's own cursor control (return, erase line) is all that is left raw
    drawn = stream.getvalue()
    for own, plain in (("\r\x1b[K", ""), ("\rUploading", "Uploading"), ("\x1b[KUp", "\nUp")):
        drawn = drawn.replace(own, plain)
    assert_terminal_safe(drawn)
    assert f"Warning: {printable(HOSTILE)}\n" in drawn
    assert f"Uploaded ID{printable(HOSTILE)}: 2 frames" in drawn


def test_query_csv_is_exact_in_a_pipe_and_escaped_on_a_terminal(hostile_dataset, run_cli,
                                                                  monkeypatch, capsys):
    import csv
    import io

    from imagingdb import cli

    piped = run_cli("query", "--format", "csv")
    assert list(csv.DictReader(io.StringIO(piped.stdout)))[0]["description"] == HOSTILE
    record = json.loads(run_cli("query", "--format", "jsonl").stdout)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    cli._print_records([record], cli.OutputFormat.csv)
    shown = capsys.readouterr().out
    assert_terminal_safe(shown)
    assert list(csv.DictReader(io.StringIO(shown)))[0]["description"] == printable(HOSTILE)


def test_debug_traceback_escapes_what_the_error_quotes(site, run_cli, upload_files, tmp_path,
                                                       snapshot_with_one_dataset):
    missing = tmp_path / "scan\x1b[2J\x1b]0;pwned\x07.tif"
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(missing)}])
    result = run_cli("--debug", "upload", "--csv", csv_path, "--config",
                     upload_files.frames_config())
    assert result.exit_code == 2
    assert_terminal_safe(result.stderr)
    assert "scan\\x1b[2J\\x1b]0;pwned\\x07.tif" in result.errors[0]
    assert site.snapshot() == snapshot_with_one_dataset
