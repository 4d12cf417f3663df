"""Every command through the CLI runner, and the installed command as a real subprocess."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagingdb.db import SCHEMA_VERSION
from tests.conftest import DATASET_ID
from tests.helpers import imagingdb_command


def test_version_prints_version_and_plugin_api(run_cli):
    from imagingdb import PLUGIN_API_VERSION, __version__

    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"imagingdb {__version__} (plugin API {PLUGIN_API_VERSION})"


def _command_paths(group, path=()):
    """Every command of a click group, by its words: walks the app, so none is forgotten."""
    for name, command in sorted(group.commands.items()):
        yield (*path, name)
        if hasattr(command, "commands"):
            yield from _command_paths(command, (*path, name))


def _builtin_commands() -> list[str]:
    import typer

    from imagingdb.cli import make_app

    return [" ".join(words) for words in
            _command_paths(typer.main.get_command(make_app(plugin_commands=False)))]


def test_the_command_walk_finds_every_kind_of_command():
    found = _builtin_commands()
    assert {"upload", "db status", "plugins install", "plugins uninstall"} <= set(found)


@pytest.mark.parametrize("command", _builtin_commands())
def test_every_command_has_help_with_an_example(run_cli, command):
    result = run_cli(*command.split(), "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout


def test_no_command_shows_help(run_cli):
    result = run_cli()
    assert "Commands" in result.stdout


def test_init_is_idempotent(site, run_cli):
    first = run_cli("init")
    second = run_cli("init")
    assert first.exit_code == second.exit_code == 0
    assert f"schema version {SCHEMA_VERSION}" in second.stderr


def test_query_json_has_the_documented_keys(uploaded_ometiff, run_cli):
    result = run_cli("query", "--format", "json")
    assert result.exit_code == 0
    records = result.json()
    assert len(records) == 1
    # the original's six keys first and unchanged (scripts rely on them), then the rest
    assert list(records[0].items())[:6] == [
        ("dataset_id", DATASET_ID), ("date_time", "2005-05-23T10:00:00"),
        ("microscope", "scope2"), ("description", "two positions"), ("frames", True),
        ("parent_dataset_id", None)]
    assert list(records[0])[6:] == [
        "annotations", "nbr_frames", "stored_bytes", "stored_objects", "uploaded_by",
        "uploaded_host", "uploaded_at", "imagingdb_version", "source_path", "content_sha256",
        "stores"]
    assert records[0]["nbr_frames"] == 24
    assert records[0]["stores"] == ["local"]  # the one store of a one-backend site


def test_query_defaults_to_json_in_a_pipe(uploaded_ometiff, run_cli):
    assert run_cli("query").json()[0]["dataset_id"] == DATASET_ID


def test_query_jsonl_csv_and_table(uploaded_ometiff, run_cli):
    assert json.loads(run_cli("query", "--format", "jsonl").stdout.splitlines()[0])[
        "dataset_id"] == DATASET_ID
    rows = list(csv.DictReader(io.StringIO(run_cli("query", "--format", "csv").stdout)))
    assert rows[0]["dataset_id"] == DATASET_ID and rows[0]["frames"] == "true"
    table = run_cli("query", "--format", "table")
    assert table.stdout.splitlines()[0].split()[:2] == ["dataset_id", "date_time"]
    assert DATASET_ID in table.stdout and "1 dataset(s)" in table.stderr


@pytest.fixture
def three_datasets(site, run_cli, upload_files, mm_ometiff, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    rows = [
        {"dataset_id": "ML-2005-05-23-10-00-00-0001", "file_name": str(notes),
         "description": "Plate A, 50% confluent"},
        {"dataset_id": "ML-2005-06-01-10-00-00-0002", "file_name": str(notes),
         "description": "plate_b"},
        {"dataset_id": "ISP-2018-04-05-00-00-00-0001", "file_name": str(notes),
         "description": "isp run"},
    ]
    config = upload_files.config(upload_type="file", microscope="Leica SP8")
    assert run_cli("upload", "--csv", upload_files.csv(rows), "--config", config).exit_code == 0
    return rows


@pytest.mark.parametrize("args, expected", [
    ([], ["ISP-2018-04-05-00-00-00-0001", "ML-2005-05-23-10-00-00-0001",
          "ML-2005-06-01-10-00-00-0002"]),
    (["--project-id", "ML"], ["ML-2005-05-23-10-00-00-0001", "ML-2005-06-01-10-00-00-0002"]),
    (["--project-id", "M"], []),
    (["--microscope", "sp8"], ["ISP-2018-04-05-00-00-00-0001", "ML-2005-05-23-10-00-00-0001",
                              "ML-2005-06-01-10-00-00-0002"]),
    (["--microscope", "Nikon"], []),
    (["--start-date", "2005-06-01"], ["ISP-2018-04-05-00-00-00-0001",
                                      "ML-2005-06-01-10-00-00-0002"]),
    (["--end-date", "2005-06-01"], ["ML-2005-05-23-10-00-00-0001", "ML-2005-06-01-10-00-00-0002"]),
    (["--start-date", "2005-05-23", "--end-date", "2005-05-23"], ["ML-2005-05-23-10-00-00-0001"]),
    (["--description", "plate"], ["ML-2005-05-23-10-00-00-0001", "ML-2005-06-01-10-00-00-0002"]),
    (["--description", "50%"], ["ML-2005-05-23-10-00-00-0001"]),
    (["--description", "_"], ["ML-2005-06-01-10-00-00-0002"]),
    (["--description", "%"], ["ML-2005-05-23-10-00-00-0001"]),
])
def test_query_filters(three_datasets, run_cli, args, expected):
    result = run_cli("query", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert [r["dataset_id"] for r in result.json()] == expected


@pytest.mark.parametrize("option", ["--project-id", "--microscope", "--description"])
@pytest.mark.parametrize("value", ["' OR '1'='1", "x'; DROP TABLE data_set; --", "\\", "%_%"])
def test_sql_metacharacters_in_filters_are_plain_text(three_datasets, run_cli, site, option, value):
    result = run_cli("query", option, value, "--format", "json")
    assert result.exit_code == 0
    assert result.json() == []
    assert len(run_cli("query", "--format", "json").json()) == 3


@pytest.mark.parametrize("args, message", [
    (["--start-date", "2005-13-40"], "invalid start date '2005-13-40'"),
    (["--end-date", "yesterday"], "invalid end date"),
    (["--start-date", "2006-01-01", "--end-date", "2005-01-01"], "is after end date"),
    (["--format", "xml"], "Invalid value for '--format'"),
])
def test_bad_query_input_is_one_error_line(run_cli, args, message):
    result = run_cli("query", *args)
    assert result.exit_code == 2
    assert len(result.errors) == 1 and message in result.errors[0]
    assert "Traceback" not in result.stderr


def test_download_cli_with_repeated_and_comma_lists(uploaded_ometiff, run_cli, tmp_path):
    result = run_cli("download", "--id", uploaded_ometiff, "--dest", tmp_path / "d",
                     "-c", "DAPI", "-c", "1", "-z", "0,2", "-t", "0-1", "-p", "1")
    assert result.exit_code == 0, result.stderr
    target = Path(result.stdout.strip())
    assert len(list(target.glob("*.png"))) == 2 * 2 * 2 * 1


def test_download_cli_unknown_channel_lists_the_channels(uploaded_ometiff, run_cli, tmp_path):
    result = run_cli("download", "--id", uploaded_ometiff, "--dest", tmp_path / "d", "-c", "Cy5")
    assert result.exit_code == 2
    assert result.errors == [f"Error: dataset {uploaded_ometiff} has no channel 'Cy5'; "
                             "it has: DAPI (0), GFP (1)"]
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("flag, value, message", [
    ("-z", "9", "no slice index 9; it has: 0-2"),
    ("-t", "x", "invalid time index 'x'"),
    ("-p", "3-1", "invalid position index '3-1'"),
])
def test_download_cli_out_of_range_indexes(uploaded_ometiff, run_cli, tmp_path, flag, value,
                                           message):
    result = run_cli("download", "--id", uploaded_ometiff, "--dest", tmp_path / "d", flag, value)
    assert result.exit_code == 2 and message in result.errors[0]


def test_download_cli_existing_destination(uploaded_ometiff, run_cli, tmp_path):
    (tmp_path / uploaded_ometiff).mkdir()
    result = run_cli("download", "--id", uploaded_ometiff, "--dest", tmp_path)
    assert result.exit_code == 2 and "already exists" in result.errors[0]


def test_download_cli_no_metadata_and_no_download(uploaded_ometiff, run_cli, tmp_path):
    result = run_cli("download", "--id", uploaded_ometiff, "--dest", tmp_path / "a",
                     "--no-download")
    assert sorted(p.name for p in Path(result.stdout.strip()).iterdir()) == [
        "frames_meta.csv", "frames_meta.jsonl", "global_metadata.json"]
    result = run_cli("download", "--id", uploaded_ometiff, "--dest", tmp_path / "b",
                     "--no-metadata", "-t", "0")
    assert {p.suffix for p in Path(result.stdout.strip()).iterdir()} == {".png"}


def test_download_of_a_file_dataset(three_datasets, run_cli, tmp_path):
    result = run_cli("download", "--id", "ML-2005-05-23-10-00-00-0001", "--dest", tmp_path / "d")
    assert result.exit_code == 0, result.stderr
    target = Path(result.stdout.strip())
    assert (target / "notes.txt").read_text() == "x"
    meta = json.loads((target / "global_metadata.json").read_text())
    assert meta["file_name"] == "notes.txt" and len(meta["sha256"]) == 64


def test_download_of_a_file_dataset_refuses_a_selection(three_datasets, run_cli, tmp_path):
    result = run_cli("download", "--id", "ML-2005-05-23-10-00-00-0001", "--dest", tmp_path,
                     "-c", "0")
    assert result.exit_code == 2 and "file kept whole" in result.errors[0]


def test_download_of_an_unknown_dataset(site, run_cli, tmp_path):
    result = run_cli("download", "--id", "ML-2001-01-01-00-00-00-0001", "--dest", tmp_path)
    assert result.exit_code == 2
    assert result.errors == ["Error: dataset ML-2001-01-01-00-00-00-0001 not found"]


def test_download_of_an_invalid_id(site, run_cli, tmp_path):
    result = run_cli("download", "--id", "../../etc", "--dest", tmp_path)
    assert result.exit_code == 2 and "invalid dataset ID" in result.errors[0]


def test_show_text_and_json(uploaded_ometiff, run_cli):
    text = run_cli("show", uploaded_ometiff)
    assert text.exit_code == 0 and "nbr_frames" in text.stdout and "ChNames" in text.stdout
    data = run_cli("show", uploaded_ometiff, "--format", "json").json()
    assert data["nbr_channels"] == 2 and data["global_meta"]["ChNames"] == ["DAPI", "GFP"]


def test_plugins_lists_builtins_with_their_source(run_cli):
    result = run_cli("plugins", "--format", "json")
    assert result.exit_code == 0
    entries = {(e["kind"], e["name"]): e["plugin"] for e in result.json()}
    assert "built-in" in entries[("splitter", "ome_tiff")]
    assert "built-in" in entries[("storage_backend", "local")]
    table = run_cli("plugins")
    assert "ome_tiff" in table.stdout


@pytest.mark.parametrize("args, message", [
    (["upload", "--config", "x.yaml"], "Missing option '--csv'"),
    (["download", "--id", DATASET_ID], "Missing option '--dest'"),
    (["query", "--nope"], "No such option: --nope"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["upload", "--csv", "a", "--config", "b", "--workers", "0"], "Invalid value for '--workers'"),
])
def test_usage_errors_are_one_line_with_exit_2(run_cli, args, message):
    result = run_cli(*args)
    assert result.exit_code == 2
    assert len(result.errors) == 1 and message in result.errors[0]
    assert result.stderr.strip().count("\n") == 0


def test_debug_shows_a_traceback_for_errors(run_cli, tmp_path):
    result = run_cli("--debug", "download", "--id", "ML-2001-01-01-00-00-00-0001",
                     "--dest", tmp_path)
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and result.errors


def test_site_config_option_is_used(run_cli, tmp_path, site):
    config = tmp_path / "other.yaml"
    config.write_text(f"database:\n  url: sqlite:///{tmp_path / 'other.sqlite'}\n"
                      f"storage:\n  root: {tmp_path / 'other-storage'}\n")
    assert run_cli("--site-config", config, "init").exit_code == 0
    assert (tmp_path / "other.sqlite").exists() and (tmp_path / "other-storage").is_dir()


def test_bad_site_config_is_an_error_naming_the_key(run_cli, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("database:\n  url: sqlite:///x.sqlite\nstorage:\n  backend: local\n"
                      "  rooot: /tmp\n")
    result = run_cli("--site-config", config, "query")
    assert result.exit_code == 2
    assert str(config) in result.errors[0] and "storage.'rooot'" in result.errors[0]


def test_installed_command_runs_as_a_real_subprocess(mm_ometiff, upload_files, tmp_path, site):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    env = {**os.environ}
    command = imagingdb_command()
    upload = subprocess.run([*command, "upload", "--csv", str(csv_path), "--config",
                             str(upload_files.frames_config())], env=env, capture_output=True,
                            text=True, timeout=120)
    assert upload.returncode == 0, upload.stderr
    query = subprocess.run([*command, "query", "--format", "json"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert json.loads(query.stdout)[0]["dataset_id"] == DATASET_ID
    bad = subprocess.run([*command, "download", "--id", DATASET_ID, "--dest", str(tmp_path),
                          "-c", "Cy5"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("Error: ")
    assert bad.stderr.count("\n") == 1


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from imagingdb.entry import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('numpy', 'tifffile', 'sqlalchemy', 'boto3', 'png', 'yaml')"
            " if m in sys.modules]\n"
            "print(heavy, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_show_and_csv_write_values_as_json_does_not_as_python(uploaded_ometiff, run_cli):
    shown = run_cli("show", uploaded_ometiff)
    assert shown.exit_code == 0, shown.stderr
    lines = {line.split()[0]: line.split(None, 1)[1] if len(line.split()) > 1 else ""
             for line in shown.stdout.splitlines() if line and not line.startswith(" ")}
    assert lines["frames"] == "true" and lines["parent_dataset_id"] == "-"
    assert lines["channel_names"] == "0: DAPI, 1: GFP"
    assert not any(word in shown.stdout for word in ("True", "False", "None", "{0:"))
    rows = list(csv.DictReader(io.StringIO(run_cli("query", "--format", "csv").stdout)))
    assert rows[0]["frames"] == "true" and rows[0]["parent_dataset_id"] == ""
    assert rows[0]["annotations"] == "{}"
