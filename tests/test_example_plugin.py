"""The example plugin of docs/plugins.md, installed with pip into the plugins folder and used."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imagingdb import plugins
from tests.conftest import DATASET_ID

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "example-plugin"


@pytest.fixture
def installed_example(tmp_path, isolated_home):
    """docs/example-plugin installed by pip --target into $IMAGINGDB_PLUGINS_DIR."""
    source = tmp_path / "example-plugin"
    shutil.copytree(EXAMPLE, source)  # pip builds in the source folder: keep docs/ clean
    target = Path(os.environ["IMAGINGDB_PLUGINS_DIR"])
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)],
                   check=True, capture_output=True)
    path_before = list(sys.path)
    plugins.reset_for_tests()
    yield target
    plugins.reset_for_tests()
    sys.path[:] = path_before
    sys.modules.pop("imagingdb_npy", None)


def test_example_plugin_is_listed_with_its_package(installed_example, run_cli):
    listed = run_cli("plugins", "--format", "json").json()
    for kind, name in (("splitter", "npy_stack"), ("filename_parser", "parse_well_site"),
                       ("command", "npy-info")):
        assert {"kind": kind, "name": name, "plugin": "imagingdb-npy 0.1.0"} in listed


def test_example_plugin_uploads_and_reads_back(installed_example, run_cli, upload_files, tmp_path):
    stack = np.random.default_rng(11).integers(0, 60000, (4, 12, 10), dtype=np.uint16)
    np.save(tmp_path / "B03_s2.npy", stack)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(tmp_path / "B03_s2.npy")}])
    config = upload_files.config(upload_type="frames", frames_format="npy_stack",
                                 filename_parser="parse_well_site")
    result = run_cli("upload", "--csv", csv_path, "--config", config)
    assert result.exit_code == 0, result.stderr
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        np.testing.assert_array_equal(ds.read()[0, 0, 0], stack)
        assert ds.global_meta["well"] == "B03" and ds.global_meta["site"] == 2
    info = run_cli("npy-info", tmp_path / "B03_s2.npy")
    assert info.exit_code == 0 and info.stdout == "B03_s2.npy: shape (4, 12, 10), dtype uint16\n"


def test_docs_show_the_example_plugin_code_as_it_is():
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:python|toml)\n(.*?)```", docs, re.DOTALL)
    for path in (EXAMPLE / "imagingdb_npy" / "__init__.py", EXAMPLE / "pyproject.toml"):
        assert path.read_text(encoding="utf-8") in blocks, f"docs/plugins.md is out of date with {path}"
