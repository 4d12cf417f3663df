"""The small inconsistencies a new user meets (issue 18, point 10): one way to name a dataset,
global options where they go, column and path hints, the format a file declares, a clean
build, plugin dependencies accounted for, and plugin docs that match the code."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from imagingdb import plugins
from imagingdb.storage import StorageBackend
from tests.conftest import DATASET_ID
from tests.test_plugin_install import project

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------- download's dataset ID


@pytest.fixture
def notes_dataset(run_cli, upload_files, tmp_path) -> str:
    """A dataset of one small file kept whole."""
    notes = tmp_path / "notes.txt"
    notes.write_text("kept whole\n")
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(notes)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config())
    assert result.exit_code == 0, result.stderr
    return DATASET_ID


def test_download_takes_the_id_as_an_argument_like_show_and_verify(run_cli, notes_dataset,
                                                                   tmp_path):
    result = run_cli("download", notes_dataset, "--dest", tmp_path / "dest")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "dest" / notes_dataset / "notes.txt").read_text() == "kept whole\n"


def test_download_still_takes_id_option(run_cli, notes_dataset, tmp_path):
    result = run_cli("download", "--id", notes_dataset, "--dest", tmp_path / "dest")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("args, error", [
    ([DATASET_ID, "--id", DATASET_ID], "Error: give the dataset ID once: as an argument "
                                       "(imagingdb download ID) or with --id, not both"),
    ([], "Error: give the dataset ID: imagingdb download ID ... (see: imagingdb download --help)"),
])
def test_download_wants_the_id_once(run_cli, tmp_path, args, error):
    result = run_cli("download", *args, "--dest", tmp_path / "dest")
    assert (result.exit_code, result.errors) == (2, [error])
    assert not (tmp_path / "dest").exists()


# ------------------------------------------------- global options after a command


@pytest.mark.parametrize("args, error", [
    (["query", "--site-config", "lab.yaml", "--format", "json"],
     "Error: --site-config is an option of imagingdb itself, not of query: give it before the "
     "command, e.g. imagingdb --site-config lab.yaml query --format json"),
    (["db", "status", "--login=creds.json"],
     "Error: --login is an option of imagingdb itself, not of db status: give it before the "
     "command, e.g. imagingdb --login=creds.json db status"),
    (["show", DATASET_ID, "--debug"],
     f"Error: --debug is an option of imagingdb itself, not of show: give it before the "
     f"command, e.g. imagingdb --debug show {DATASET_ID}"),
])
def test_a_global_option_after_the_command_says_where_it_goes(run_cli, args, error):
    result = run_cli(*args)
    assert (result.exit_code, result.errors) == (2, [error])


def test_an_unknown_option_is_still_reported_as_click_does(run_cli):
    result = run_cli("query", "--sortt", "date_time")
    assert result.errors == ["Error: No such option: --sortt (Possible options: --format, "
                             "--sort, --start-date) (see: imagingdb query --help)"]


# --------------------------------------------------------- CSV columns and paths


@pytest.mark.parametrize("header, hint", [
    ("dataset_id,path", "(did you mean 'path' for 'file_name'?)"),
    ("ID,File", "(did you mean 'ID' for 'dataset_id' and 'File' for 'file_name'?)"),
    ("dataset_id,filename", "(did you mean 'filename' for 'file_name'?)"),
])
def test_a_file_name_column_called_otherwise_gets_a_did_you_mean(run_cli, upload_files, tmp_path,
                                                                 header, hint):
    csv_path = tmp_path / "named.csv"
    csv_path.write_text(f"{header}\n{DATASET_ID},a.tif\n")
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config())
    assert result.exit_code == 2
    assert result.errors[0].endswith(hint), result.errors


def test_a_relative_file_name_not_found_says_it_is_relative_to_the_csv(run_cli, upload_files,
                                                                      tmp_path, monkeypatch):
    (tmp_path / "lists").mkdir()
    csv_path = tmp_path / "lists" / "rows.csv"
    csv_path.write_text(f"dataset_id,file_name\n{DATASET_ID},data/notes.txt\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("here, but beside the current folder")
    monkeypatch.chdir(tmp_path)
    result = run_cli("upload", "--csv", "lists/rows.csv", "--config", upload_files.file_config())
    assert result.exit_code == 2
    assert result.errors == [
        f"Error: rows.csv row 2 ({DATASET_ID}): lists/data/notes.txt not found: file_name "
        f"'data/notes.txt' is relative to the CSV's folder {tmp_path / 'lists'}, not to the "
        "current folder"]


# ------------------------------------------------------------- tif_id's hint


def test_tif_id_given_an_ome_tiff_folder_names_ome_tiff(run_cli, upload_files, tmp_path):
    from imagingdb.testing import write_bioformats_ometiff

    folder = tmp_path / "bioformats"
    write_bioformats_ometiff(folder / "scan.ome.tif", slices=2, times=1)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(folder)}])
    result = run_cli("upload", "--csv", csv_path,
                     "--config", upload_files.config(upload_type="frames", frames_format="tif_id"))
    assert result.exit_code == 2
    assert result.errors[0].endswith(
        f"{folder} is a folder of OME-TIFF files; tif_id takes one TIFF file: use "
        "frames_format: ome_tiff (or leave frames_format out to let imagingdb choose)")


def test_tif_id_given_a_micro_manager_ome_tiff_without_ome_xml_in_it_names_ome_tiff(tmp_path):
    """A file of a Micro-Manager OME-TIFF set whose page 0 carries no OME-XML (the set's
    OME-XML is in another file): its name says OME-TIFF, not an image-files folder."""
    import json

    import numpy as np
    import tifffile

    from imagingdb.errors import SplitterError
    from imagingdb.splitters.tif_id import TifIdSplitter

    path = tmp_path / "acq_MMStack_Pos1.ome.tif"
    mm_metadata = json.dumps({"ChannelIndex": 0, "SliceIndex": 0, "FrameIndex": 0})
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16), ome=False, metadata=None,
                     extratags=[(51123, "s", 0, mm_metadata, True)])
    with pytest.raises(SplitterError, match="use frames_format: ome_tiff$"):
        TifIdSplitter().open(path, None)


# -------------------------------------------------------- the license, as SPDX


@pytest.mark.parametrize("folder", [".", "plugins/imagingdb-ndtiff", "docs/example-plugin"])
def test_pyproject_builds_without_setuptools_deprecation_warnings(folder, monkeypatch):
    from setuptools.config.pyprojecttoml import apply_configuration, read_configuration
    from setuptools.dist import Distribution

    path = ROOT / folder / "pyproject.toml"
    data = read_configuration(path, expand=False)
    assert not isinstance(data["project"].get("license"), dict)  # a table is deprecated
    if "license" in data["project"]:  # an SPDX expression needs setuptools 77
        assert data["build-system"]["requires"] == ["setuptools>=77"]
    monkeypatch.chdir(path.parent)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_configuration(Distribution(), str(path))
    assert [str(w.message) for w in caught if "setuptools" in type(w.message).__module__] == []


# ----------------------------------------------- plugins uninstall and dependencies


@pytest.fixture(scope="module")
def dependency_wheels(tmp_path_factory) -> Path:
    """A plugin needing leaf-a (which needs leaf-b) and shared; another plugin needing shared;
    a third needing the first."""
    sources = tmp_path_factory.mktemp("dep-sources")
    folder = tmp_path_factory.mktemp("dep-wheels")
    batch = [
        project(sources, "imagingdb-deps-plugin", requires=("imagingdb-leaf-a", "imagingdb-shared"),
                plugin_module="imagingdb_deps_plugin"),
        project(sources, "imagingdb-other-plugin", requires=("imagingdb-shared>=1",),
                plugin_module="imagingdb_other_plugin"),
        project(sources, "imagingdb-leaf-a", requires=("imagingdb-leaf-b; python_version>='3'",)),
        project(sources, "imagingdb-leaf-b"),
        project(sources, "imagingdb-suite-plugin", requires=("imagingdb-deps-plugin",),
                plugin_module="imagingdb_suite_plugin"),
        # what only an extra of shared needs is no need of it (tifffile has a dozen such)
        project(sources, "imagingdb-shared", requires=("imagingdb-leaf-b; extra == 'more'",)),
    ]
    leaf_b = sources / "imagingdb-leaf-b-1.0.0"  # a console script: pip --target puts it in bin/
    with open(leaf_b / "pyproject.toml", "a") as pyproject:
        pyproject.write('\n[project.scripts]\nleaf-b = "imagingdb_leaf_b:VERSION"\n')
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(folder), *map(str, batch)],
                   check=True, capture_output=True)
    return folder


@pytest.fixture
def two_plugins(run_cli, isolated_home, dependency_wheels) -> Path:
    """Both plugins installed, with their dependencies, into the test's plugins folder."""
    folder = Path(os.environ["IMAGINGDB_PLUGINS_DIR"])
    path_before = list(sys.path)
    plugins.reset_for_tests()
    result = run_cli("plugins", "install", "imagingdb-deps-plugin", "imagingdb-other-plugin",
                     "--no-index", "--find-links", dependency_wheels)
    assert result.exit_code == 0, result.stderr
    yield folder
    plugins.reset_for_tests()
    sys.path[:] = path_before
    mine = ("imagingdb_deps", "imagingdb_other", "imagingdb_suite")
    for module in [m for m in sys.modules if m.startswith(mine)]:
        del sys.modules[module]


def installed_names(folder: Path) -> list[str]:
    return sorted(p.name.split("-")[0] for p in folder.glob("*.dist-info"))


def test_uninstall_names_the_dependencies_it_leaves(run_cli, two_plugins):
    result = run_cli("plugins", "uninstall", "imagingdb-deps-plugin")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "Uninstalled imagingdb-deps-plugin 1.0.0",
        "Left imagingdb-leaf-a 1.0.0, imagingdb-leaf-b 1.0.0 in the plugins folder: dependencies "
        "nothing else installed needs; remove them with: imagingdb plugins uninstall "
        "imagingdb-leaf-a imagingdb-leaf-b (or use --with-unused-dependencies)",
        "Kept imagingdb-shared 1.0.0: needed by imagingdb-other-plugin",
    ]
    assert installed_names(two_plugins) == ["imagingdb_leaf_a", "imagingdb_leaf_b",
                                            "imagingdb_other_plugin", "imagingdb_shared"]


def test_uninstall_with_unused_dependencies_removes_only_those(run_cli, two_plugins):
    result = run_cli("plugins", "uninstall", "--with-unused-dependencies", "imagingdb-deps-plugin")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "Uninstalled imagingdb-deps-plugin 1.0.0",
        "Uninstalled imagingdb-leaf-a 1.0.0 (a dependency nothing else needs)",
        "Uninstalled imagingdb-leaf-b 1.0.0 (a dependency nothing else needs)",
        "Kept imagingdb-shared 1.0.0: needed by imagingdb-other-plugin",
    ]
    assert installed_names(two_plugins) == ["imagingdb_other_plugin", "imagingdb_shared"]
    assert not (two_plugins / "bin" / "leaf-b").exists()  # RECORD says ../../bin/leaf-b
    assert sorted(p.name for p in two_plugins.iterdir() if not p.name.endswith(".dist-info")) == [
        "imagingdb_other_plugin", "imagingdb_shared"]

    last = run_cli("plugins", "uninstall", "--with-unused-dependencies", "imagingdb-other-plugin")
    assert last.exit_code == 0, last.stderr
    assert list(two_plugins.iterdir()) == []


def test_a_plugin_another_one_needed_stays_with_what_it_needs(run_cli, two_plugins,
                                                             dependency_wheels):
    """It was installed for itself too (or could have been): no dependency to clean up."""
    assert run_cli("plugins", "install", "imagingdb-suite-plugin", "--no-index",
                   "--find-links", dependency_wheels).exit_code == 0
    result = run_cli("plugins", "uninstall", "--with-unused-dependencies", "imagingdb-suite-plugin")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "Uninstalled imagingdb-suite-plugin 1.0.0\n"
    assert "imagingdb_deps_plugin" in installed_names(two_plugins)


def test_uninstall_of_one_missing_name_removes_nothing(run_cli, two_plugins):
    before = installed_names(two_plugins)
    result = run_cli("plugins", "uninstall", "imagingdb-deps-plugin", "imagingdb-nope")
    assert result.exit_code == 2
    assert result.errors[0].startswith("Error: no distribution 'imagingdb-nope' in the plugins")
    assert installed_names(two_plugins) == before


# ------------------------------------------------------------ docs/plugins.md


def backend_methods() -> list[str]:
    """Every method a backend author implements or may override: StorageBackend's public
    callables (abstract or with a default)."""
    return sorted(name for name, member in vars(StorageBackend).items()
                  if not name.startswith("_") and inspect.isfunction(member))


def test_plugins_doc_names_every_storage_backend_method():
    text = (ROOT / "docs" / "plugins.md").read_text()
    section = text[text.index("## Writing a storage backend"):text.index("## Adding commands")]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {name for line in table for name in re.findall(r"`(\w+)\(", line.split("|")[1])}
    assert "list_objects" in backend_methods()  # gc needs it
    assert sorted(set(backend_methods()) - documented) == []


def test_plugins_doc_points_plugin_tests_at_imagingdb_testing_not_imagingdbs_own_tree():
    text = (ROOT / "docs" / "plugins.md").read_text()
    testing = text[text.index("## Developing and testing a plugin"):]
    assert 'pytest_plugins = ["imagingdb.testing.fixtures"]' in testing
    assert "from tests" not in text
    assert "pip install -e" in testing  # an editable install for the plugin's author
