"""What a command loads before it runs: start-up time is what a lab user feels most."""

import json
import subprocess
import sys

import pytest

from imagingdb import cli


@pytest.mark.parametrize("argv, word", [
    (["query", "--format", "json"], "query"),
    (["--site-config", "site.yaml", "show", "X"], "show"),
    (["--debug", "--site-config=site.yaml", "download"], "download"),
    (["--login", "creds.json", "--debug"], None),
    (["--help"], None),
])
def test_command_word_skips_global_options(argv, word):
    assert cli._command_word(argv) == word


@pytest.mark.parametrize("argv, loads_plugins", [
    (["query"], False),
    (["upload", "--help"], False),
    (["--site-config", "x.yaml", "show", "ML-2005-05-23-10-00-00-0001"], False),
    (["--help"], True),
    ([], True),
    (["some-plugin-command"], True),
])
def test_plugins_are_loaded_only_when_a_plugin_command_may_run(monkeypatch, argv, loads_plugins):
    from imagingdb import plugins

    calls = []
    monkeypatch.setattr(plugins, "register_commands", lambda app: calls.append(app))
    cli.make_app(argv)
    assert bool(calls) == loads_plugins


def test_query_on_sqlite_loads_no_postgresql_pydantic_numpy_or_plugins(tmp_path, isolated_home):
    code = (
        "import sys\nfrom imagingdb.cli import main\n"
        "try:\n    main(['query', '--format', 'json'])\nexcept SystemExit:\n    pass\n"
        "loaded = [m for m in ('sqlalchemy.dialects.postgresql', 'pydantic', 'numpy', 'tifffile',"
        " 'boto3', 'imagingdb.splitters.ome_tiff') if m in sys.modules]\n"
        "print(loaded, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert json.loads(result.stdout) == []
    assert result.stderr.strip().splitlines()[-1] == "[]"
