"""What a command loads before it runs: start-up time is what a lab user feels most."""

import json
import os
import subprocess
import sys

import pytest

from imagingdb import entry


@pytest.mark.parametrize("argv, word", [
    (["query", "--format", "json"], "query"),
    (["--site-config", "site.yaml", "show", "X"], "show"),
    (["--debug", "--site-config=site.yaml", "download"], "download"),
    (["--login", "creds.json", "--debug"], None),
    (["--help"], None),
])
def test_command_word_skips_global_options(argv, word):
    assert entry.command_word(argv) == word


@pytest.mark.parametrize("argv, loads_plugins", [
    (["query"], False),
    (["upload", "--help"], False),
    (["--site-config", "x.yaml", "show", "ML-2005-05-23-10-00-00-0001"], False),
    (["--help"], True),
    ([], True),
    (["some-plugin-command"], True),
])
def test_plugins_are_loaded_only_when_a_plugin_command_may_run(monkeypatch, capsys, argv,
                                                              loads_plugins):
    from imagingdb import plugins

    calls = []
    monkeypatch.setattr(plugins, "register_commands", lambda app: calls.append(app))
    with pytest.raises(SystemExit):
        entry.main(argv)
    assert bool(calls) == loads_plugins


def test_query_on_sqlite_loads_no_postgresql_pydantic_numpy_or_plugins(tmp_path, isolated_home):
    code = (
        "import sys\nfrom imagingdb.entry import main\n"
        "try:\n    main(['query', '--format', 'json'])\nexcept SystemExit:\n    pass\n"
        "loaded = [m for m in ('sqlalchemy.dialects.postgresql', 'pydantic', 'numpy', 'tifffile',"
        " 'boto3', 'imagingdb.splitters.ome_tiff', 'pluggy', 'jsonschema', 'dask', 'xarray',"
        " 'pandas') if m in sys.modules]\n"
        "print(loaded, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert json.loads(result.stdout) == []
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_help_with_every_plugin_loaded_imports_no_analysis_library(isolated_home):
    """dask, xarray and pandas are for Dataset.to_dask & co. only: nothing on the command
    path (the built-ins, installed plugins, the API modules they import) may load them."""
    code = (
        "import sys\nfrom imagingdb.entry import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "import imagingdb.api\n"
        "loaded = [m for m in ('dask', 'xarray', 'pandas', 'imagingdb.analysis')"
        " if m in sys.modules]\n"
        "print(loaded, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert "Usage" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_commands_skip_blas_threads_and_the_exit_time_garbage_walk(tmp_path, isolated_home):
    """A built-in command asks OpenBLAS for one thread (its idle threads spin for CPU the
    encoders need) unless the user chose, and freezes the heap at exit (the last
    garbage collections would walk every object the libraries made)."""
    code = (
        "import atexit, gc, os, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0,"
        " os.environ.get('OPENBLAS_NUM_THREADS'), file=sys.stderr))\n"
        "from imagingdb.entry import main\n"
        "try:\n    main(['query', '--format', 'json'])\nexcept SystemExit:\n    pass\n")
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    for chosen, expected in ((None, "1"), ("3", "3")):
        env = environment if chosen is None else {**environment, "OPENBLAS_NUM_THREADS": chosen}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=60, env=env)
        assert result.stderr.strip().splitlines()[-1] == f"frozen True {expected}"


def _help_of(app_args, capsys):
    import typer

    from imagingdb.cli import make_app

    with pytest.raises(SystemExit):
        typer.main.get_command(make_app(plugin_commands=False)).main(
            args=app_args, prog_name="imagingdb")
    return capsys.readouterr()


def test_a_named_command_runs_alone_with_the_same_help_and_errors(capsys, isolated_home):
    """entry.main keeps only the named built-in command on the app (building every command
    costs start-up): what that command shows, its help and its usage errors, is unchanged,
    global options before it included."""
    from imagingdb.cli import builtin_command_names, make_app

    names = sorted(builtin_command_names(make_app(plugin_commands=False)))
    assert {"query", "show", "upload", "download", "verify"} <= set(names)
    for argv in ([[name, "--help"] for name in names]
                 + [["--debug", "query", "--no-such-option"], ["show"], ["--help", "query"],
                    ["-h", "show", "X"], ["--site-config", "x.yaml", "db", "--help"],
                    ["db", "no-such-step"]]):
        expected = _help_of(argv, capsys)
        with pytest.raises(SystemExit):
            entry.main(argv)
        assert capsys.readouterr() == expected, argv
    assert "Usage: imagingdb query" in _help_of(["query", "--help"], capsys).out


def test_collection_is_paused_during_start_up_and_back_on_for_the_work(isolated_home):
    """No full garbage collection walks the libraries' objects while the command starts;
    once its database is open, what start-up made is frozen and collection is on again,
    and the user's Python under `imagingdb python` runs with it on."""
    code = (
        "import gc, sys\n"
        "from imagingdb.entry import main\n"
        "import imagingdb.api as api\n"
        "seen = []\n"
        "real_connect, real_query = api.connect, api.Database.query\n"
        "def connect(*a, **k):\n"
        "    seen.append((gc.isenabled(), gc.get_stats()[2]['collections']))\n"
        "    return real_connect(*a, **k)\n"
        "def query(*a, **k):\n"
        "    seen.append((gc.isenabled(), gc.get_freeze_count() > 1000))\n"
        "    return real_query(*a, **k)\n"
        "api.connect, api.Database.query = connect, query\n"
        "full = gc.get_stats()[2]['collections']\n"
        "try:\n    main(['query', '--format', 'json'])\nexcept SystemExit:\n    pass\n"
        "print(seen[0][0], seen[0][1] - full, *seen[1], gc.isenabled(), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    # starting: off, no full collection; the query: on, start-up frozen; after: on
    assert result.stderr.strip().splitlines()[-1] == "False 0 True True True", result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "imagingdb", "python", "-c",
         "import gc; print(gc.isenabled(), gc.get_freeze_count() > 1000)"],
        capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["True", "True"], result.stderr


def test_a_command_run_in_process_leaves_collection_on_and_nothing_frozen(capsys,
                                                                         isolated_home):
    """Whether the command ended before its work (help, usage errors) or after it (a
    query), the calling process goes on with collection on and its heap unfrozen."""
    import gc

    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    for argv in (["--help"], ["query", "--no-such-option"], ["show"],
                 ["query", "--format", "json"]):
        with pytest.raises(SystemExit):
            entry.main(argv)
        assert gc.isenabled(), argv
        assert gc.get_freeze_count() == frozen, argv
    assert capsys.readouterr().out.strip().endswith("[]")  # the query did run
