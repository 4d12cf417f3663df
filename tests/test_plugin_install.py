"""``imagingdb plugins install`` / ``uninstall``: real plugins installed by pip into the plugins folder.

pip runs offline (``--no-index``): what a plugin needs beyond imagingdb's own
environment comes from wheels the tests build with ``--find-links``. The
single-file executable's own pip is tested in test_zipapp.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imagingdb import plugins
from imagingdb.plugin_install import canonical_name

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "example-plugin"
OFFLINE = ("--no-index", "--no-build-isolation")


@pytest.fixture
def plugins_folder(isolated_home):
    folder = Path(os.environ["IMAGINGDB_PLUGINS_DIR"])
    path_before = list(sys.path)
    plugins.reset_for_tests()
    yield folder
    plugins.reset_for_tests()
    sys.path[:] = path_before
    for module in [m for m in sys.modules if m.startswith(("imagingdb_npy", "imagingdb_parser"))]:
        del sys.modules[module]


def project(folder: Path, name: str, version: str = "1.0.0", requires: tuple = (),
            plugin_module: str | None = None) -> Path:
    """A source folder of a tiny project; with ``plugin_module``, an imagingdb plugin."""
    module = plugin_module or name.replace("-", "_")
    source = folder / f"{name}-{version}"
    (source / module).mkdir(parents=True)
    hook = "" if plugin_module is None else textwrap.dedent(f"""
        import pluggy

        @pluggy.HookimplMarker("imagingdb")
        def register_filename_parsers(register):
            register("{module}_parser", lambda name: {{"source": name}})
        """)
    (source / module / "__init__.py").write_text(f"VERSION = {version!r}\n{hook}")
    entry = f'\n[project.entry-points.imagingdb]\n{module} = "{module}"\n' if plugin_module else ""
    (source / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=70.1"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "{version}"
        dependencies = {list(requires)!r}
        """) + entry)
    return source


@pytest.fixture(scope="session")
def wheels(tmp_path_factory) -> Path:
    """Wheels of tiny projects, built once: a library in two versions, a plugin needing it,
    an imagingdb 99.0 and a plugin needing that."""
    sources = tmp_path_factory.mktemp("sources")
    folder = tmp_path_factory.mktemp("wheels")
    batches = [  # pip builds one version of a project per run
        [project(sources, "imagingdb-testlib", "1.0.0")],
        [project(sources, "imagingdb-testlib", "2.0.0"),
         project(sources, "imagingdb-parser-plugin", requires=("imagingdb", "imagingdb-testlib"),
                 plugin_module="imagingdb_parser_plugin"),
         project(sources, "imagingdb", version="99.0"),
         project(sources, "imagingdb-future", requires=("imagingdb>=99",),
                 plugin_module="imagingdb_future")],
    ]
    for batch in batches:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--no-build-isolation", "--wheel-dir", str(folder), *map(str, batch)],
                       check=True, capture_output=True)
    return folder


def example_copy(tmp_path: Path) -> Path:
    source = tmp_path / "example-plugin"
    shutil.copytree(EXAMPLE, source)  # pip builds in the source folder: keep docs/ clean
    return source


def listed(run_cli) -> list[dict]:
    plugins.reset_for_tests()
    return run_cli("plugins", "--format", "json").json()


def test_install_lists_and_uninstall_removes_every_file(run_cli, plugins_folder, tmp_path):
    result = run_cli("plugins", "install", example_copy(tmp_path), *OFFLINE)
    assert result.exit_code == 0, result.stderr
    assert "Installed imagingdb-npy 0.1.0 (plugin)" in result.stderr
    assert {"kind": "splitter", "name": "npy_stack", "plugin": "imagingdb-npy 0.1.0"} in listed(run_cli)
    assert sorted(p.name for p in plugins_folder.iterdir()) == ["imagingdb_npy",
                                                                "imagingdb_npy-0.1.0.dist-info"]

    removed = run_cli("plugins", "uninstall", "imagingdb-npy")
    assert removed.exit_code == 0, removed.stderr
    assert removed.stderr == "Uninstalled imagingdb-npy 0.1.0\n"
    assert list(plugins_folder.iterdir()) == []
    assert all(entry["plugin"] != "imagingdb-npy 0.1.0" for entry in listed(run_cli))


def test_dependencies_come_along_and_stay_when_the_plugin_goes(run_cli, plugins_folder, wheels):
    result = run_cli("plugins", "install", "imagingdb-parser-plugin", "--find-links", wheels,
                     "--no-index")
    assert result.exit_code == 0, result.stderr
    assert "Installed imagingdb-testlib 2.0.0 (needed by a plugin)" in result.stderr
    assert {"kind": "filename_parser", "name": "imagingdb_parser_plugin_parser",
            "plugin": "imagingdb-parser-plugin 1.0.0"} in listed(run_cli)

    assert run_cli("plugins", "uninstall", "imagingdb_parser_plugin").exit_code == 0
    assert sorted(p.name for p in plugins_folder.iterdir()) == ["imagingdb_testlib",
                                                                "imagingdb_testlib-2.0.0.dist-info"]


def install_testlib(run_cli, wheels, version: str = "1.0.0"):
    return run_cli("plugins", "install", f"imagingdb-testlib=={version}", "--find-links", wheels,
                   "--no-index")


def test_a_new_version_replaces_the_old_one(run_cli, plugins_folder, wheels):
    assert install_testlib(run_cli, wheels, "1.0.0").exit_code == 0
    result = install_testlib(run_cli, wheels, "2.0.0")
    assert result.exit_code == 0 and "Installed imagingdb-testlib 2.0.0" in result.stderr
    assert sorted(p.name for p in plugins_folder.iterdir()) == ["imagingdb_testlib",
                                                                "imagingdb_testlib-2.0.0.dist-info"]
    assert "2.0.0" in (plugins_folder / "imagingdb_testlib" / "__init__.py").read_text()


def test_nothing_to_install_when_it_is_there_already(run_cli, plugins_folder, wheels):
    assert install_testlib(run_cli, wheels).exit_code == 0
    again = install_testlib(run_cli, wheels)
    assert again.exit_code == 0 and "Nothing to install: already installed." in again.stderr


def test_refuses_a_plugin_needing_another_version_of_what_imagingdb_runs_on(
        run_cli, plugins_folder, wheels):
    result = run_cli("plugins", "install", "imagingdb-future", "--find-links", wheels, "--no-index")
    assert result.exit_code == 2
    assert result.errors == [
        "Error: imagingdb 99.0 would replace imagingdb 0.1.0, which imagingdb itself runs on; "
        "a plugin that needs another imagingdb cannot go into the plugins folder"]
    assert not plugins_folder.exists()


def test_refuses_a_plugin_installed_in_the_environment_already(run_cli, plugins_folder, tmp_path):
    source = tmp_path / "imagingdb-ndtiff"
    shutil.copytree(ROOT / "plugins" / "imagingdb-ndtiff", source,
                    ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    result = run_cli("plugins", "install", source, *OFFLINE)
    assert result.exit_code == 2
    assert result.errors[0].startswith("Error: imagingdb-ndtiff 0.1.0 would replace imagingdb-ndtiff "
                                       "0.1.0, which imagingdb itself runs on; it is installed")
    assert not plugins_folder.exists()


def test_unresolvable_request_changes_nothing(run_cli, plugins_folder, tmp_path):
    result = run_cli("plugins", "install", "imagingdb-no-such-plugin", "--no-index",
                     "--find-links", tmp_path)
    assert result.exit_code == 2
    assert result.errors == ["Error: pip could not resolve imagingdb-no-such-plugin "
                             "(its messages are above)"]
    assert "No matching distribution found for imagingdb-no-such-plugin" in result.stderr
    assert not plugins_folder.exists()


def test_uninstall_of_a_distribution_not_there_names_what_is(run_cli, plugins_folder, wheels):
    assert install_testlib(run_cli, wheels).exit_code == 0
    result = run_cli("plugins", "uninstall", "imagingdb-npy")
    assert result.exit_code == 2
    assert result.errors == [f"Error: no distribution 'imagingdb-npy' in the plugins folder "
                             f"{plugins_folder} (installed there: imagingdb-testlib)"]


def test_uninstall_never_deletes_outside_the_plugins_folder(run_cli, plugins_folder, wheels):
    assert install_testlib(run_cli, wheels).exit_code == 0
    outside = plugins_folder.parent / "precious.txt"
    outside.write_text("keep me")
    record = plugins_folder / "imagingdb_testlib-1.0.0.dist-info" / "RECORD"
    record.write_text(record.read_text() + "../precious.txt,,\n" + f"{outside},,\n")
    assert run_cli("plugins", "uninstall", "imagingdb-testlib").exit_code == 0
    assert outside.read_text() == "keep me"
    assert list(plugins_folder.iterdir()) == []


def test_canonical_names_compare_as_pip_does():
    assert canonical_name("Imagingdb_NPY") == canonical_name("imagingdb.npy") == "imagingdb-npy"


def test_entry_points_are_read_without_importlib_metadata(tmp_path):
    from imagingdb.plugins import _declared_entry_points

    other = tmp_path / "other-1.0.dist-info"
    other.mkdir()
    (other / "entry_points.txt").write_text("[console_scripts]\nother = other:main\n")
    (tmp_path / "bare-1.0.dist-info").mkdir()  # no entry points at all
    assert _declared_entry_points([str(tmp_path), str(tmp_path / "missing")]) == []
    plugin = tmp_path / "imagingdb_npy-0.1.0.dist-info"
    plugin.mkdir()
    (plugin / "METADATA").write_text("Metadata-Version: 2.1\nName: imagingdb-npy\nVersion: 0.1.0\n\n"
                                     "Name: not-a-header\n")
    (plugin / "entry_points.txt").write_text(
        "[console_scripts]\nnpy-tool = x:y\n\n[imagingdb]\n# a comment\n"
        "npy = imagingdb_npy\nnpy2 = imagingdb_npy.sub : hooks [extra]\n")
    found = _declared_entry_points([str(tmp_path)])
    assert [(ep.name, ep.value, ep.dist_name, ep.dist_version) for ep in found] == [
        ("npy", "imagingdb_npy", "imagingdb-npy", "0.1.0"),
        ("npy2", "imagingdb_npy.sub : hooks [extra]", "imagingdb-npy", "0.1.0")]
    # The same distribution later on the path is shadowed, as importlib.metadata has it.
    later = tmp_path / "later"
    (later / "Imagingdb.NPY-0.2.0.dist-info").mkdir(parents=True)
    (later / "Imagingdb.NPY-0.2.0.dist-info" / "entry_points.txt").write_text("[imagingdb]\nz = z\n")
    assert [ep.name for ep in _declared_entry_points([str(tmp_path), str(later)])] == ["npy", "npy2"]
    archive = tmp_path / "eggs.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))  # a zip on sys.path: only importlib.metadata knows
    assert _declared_entry_points([str(archive)]) is None


def test_entry_points_load_the_named_object():
    import json.decoder

    from imagingdb.plugins import _EntryPoint

    assert _EntryPoint("j", "json", "d", "1").load() is json
    assert _EntryPoint("j", "json.decoder:JSONDecoder.decode [x]", "d", "1").load() is (
        json.decoder.JSONDecoder.decode)
    with pytest.raises(ModuleNotFoundError):
        _EntryPoint("n", "no_such_module_here", "d", "1").load()


def test_entry_points_agree_with_importlib_metadata():
    """On this environment (imagingdb-ndtiff is installed for the tests) both readers agree."""
    import sys

    from imagingdb.plugins import _declared_entry_points, _importlib_entry_points

    assert _declared_entry_points(sys.path) == _importlib_entry_points()
