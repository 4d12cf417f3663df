"""`imagingdb demo` and `imagingdb config example` from the single-file executable: what the
package carries is enough, with no repository and no Python packages beside it. And
`plugins uninstall --with-unused-dependencies` against the packages it really bundles."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests import test_zipapp

ROOT = Path(__file__).resolve().parent.parent
# the executable's fixtures, as test_zipapp.py defines them (one cached build for both files)
zipapp_file, system_python, zipapp = test_zipapp.zipapp_file, test_zipapp.system_python, test_zipapp.zipapp
ndtiff_wheels = test_zipapp.ndtiff_wheels


def test_config_example_comes_from_the_executable(zipapp):
    whole = zipapp.run("config", "example")
    assert (whole.exit_code, whole.stderr) == (0, "")
    assert whole.stdout == (ROOT / "config.example.yaml").read_text()
    site = zipapp.run("config", "example", "site")
    assert site.exit_code == 0 and "database:" in site.stdout and "UPLOAD" not in site.stdout


def test_demo_runs_from_the_executable_into_its_folder(zipapp, isolated_home):
    result = zipapp.run("demo", "--dir", "try-it")
    assert result.exit_code == 0, result.stderr
    assert "-> (2, 1, 1, 3, 128, 128) uint16" in result.stdout
    folder = zipapp.cwd / "try-it"
    assert sorted(p.name for p in zipapp.cwd.iterdir()) == ["try-it"]
    assert len(list((folder / "download" / "DEMO-2024-03-01-09-30-00-0001").glob("*.png"))) == 12
    assert not isolated_home.exists()


def test_uninstall_with_unused_dependencies_leaves_an_empty_plugins_folder(zipapp, ndtiff_wheels,
                                                                            tmp_path):
    """The bundled packages' optional extras (tifffile's) are no need of ndtiff's dependencies."""
    source = tmp_path / "imagingdb-ndtiff"
    shutil.copytree(ROOT / "plugins" / "imagingdb-ndtiff", source,
                    ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__", "tests"))
    installed = zipapp.run("plugins", "install", source, "--no-index", "--find-links", ndtiff_wheels)
    assert installed.exit_code == 0, installed.stderr
    removed = zipapp.run("plugins", "uninstall", "--with-unused-dependencies", "imagingdb-ndtiff")
    assert removed.exit_code == 0, removed.stderr
    lines = removed.stderr.splitlines()
    assert lines[0] == "Uninstalled imagingdb-ndtiff 0.1.0"
    assert "Uninstalled ndtiff 3.1.0 (a dependency nothing else needs)" in lines
    assert list(Path(os.environ["IMAGINGDB_PLUGINS_DIR"]).iterdir()) == []
