"""`imagingdb demo` and `imagingdb config example`: what the package carries, without the
repository beside it (test_zipapp.py runs both from the single-file executable)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from imagingdb.config import load_site_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"


# ------------------------------------------------------------ config example


def test_the_packaged_example_is_the_repositorys_config_example():
    """One file, two places: the package's copy may not drift from the documented one."""
    packaged = resources.files("imagingdb").joinpath("config.example.yaml")
    assert packaged.read_bytes() == EXAMPLE.read_bytes()
    from setuptools.config.pyprojecttoml import read_configuration

    package_data = read_configuration(ROOT / "pyproject.toml", expand=False)["tool"][
        "setuptools"]["package-data"]["imagingdb"]
    assert "config.example.yaml" in package_data  # so a wheel, and the zipapp, carry it


def test_config_example_prints_the_whole_file(run_cli):
    result = run_cli("config", "example")
    assert (result.exit_code, result.stdout, result.stderr) == (0, EXAMPLE.read_text(), "")


def test_config_example_site_is_a_site_config_to_edit(run_cli, tmp_path):
    result = run_cli("config", "example", "site")
    assert result.exit_code == 0
    assert result.stdout.startswith("# ====") and "1. SITE CONFIG" in result.stdout.splitlines()[0]
    assert "UPLOAD CONFIG" not in result.stdout
    lab = tmp_path / "lab.yaml"
    lab.write_text(result.stdout)
    config = load_site_config(lab)  # loads as it is: every key documented and valid
    assert config.database.url.startswith("postgresql+pg8000://imaging@db.lab.example.org")


def test_config_example_upload_is_the_upload_part(run_cli):
    result = run_cli("config", "example", "upload")
    assert result.exit_code == 0
    assert "2. UPLOAD CONFIG" in result.stdout.splitlines()[0]
    assert "# upload_type: frames" in result.stdout and "database:" not in result.stdout
    assert result.stdout == EXAMPLE.read_text()[EXAMPLE.read_text().index(result.stdout.splitlines()[0]):]


def test_config_example_of_an_unknown_section_names_the_sections(run_cli):
    result = run_cli("config", "example", "lab")
    assert result.exit_code == 2
    assert result.errors == ["Error: Invalid value for '[site|upload]': 'lab' is not one of 'site', "
                             "'upload'. (see: imagingdb config example --help)"]


# ----------------------------------------------------------------------- demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One demo run (a few seconds), shared by the tests that look at what it did."""
    from typer.testing import CliRunner

    from imagingdb.cli import make_app

    base = tmp_path_factory.mktemp("demo-run")
    home = base / "imagingdb-home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMAGINGDB_HOME", str(home))
        patch.setenv("XDG_CONFIG_HOME", str(base / "xdg-config"))
        patch.setenv("IMAGINGDB_PLUGINS_DIR", str(base / "plugins"))
        # a site config the demo must leave alone, whatever the environment says
        patch.setenv("IMAGINGDB_CONFIG", str(base / "lab.yaml"))
        patch.chdir(base)
        result = CliRunner().invoke(make_app(), ["demo"], catch_exceptions=False)
    return base, home, result


def test_demo_runs_every_step_in_a_new_folder_of_the_current_one(demo_run):
    base, home, result = demo_run
    assert result.exit_code == 0, result.stdout + result.stderr
    folder = base / "imagingdb-demo"
    for step in ("== 1. Generate", "== 3. Upload", "== 5. Download", "== 6. Read it into numpy"):
        assert step in result.stdout
    assert ("$ imagingdb --site-config imagingdb-demo/site.yaml download "
            "DEMO-2024-03-01-09-30-00-0001 --dest imagingdb-demo/download -c DAPI") in result.stdout
    assert "-> (2, 1, 1, 3, 128, 128) uint16" in result.stdout
    assert len(list((folder / "download" / "DEMO-2024-03-01-09-30-00-0001").glob("*.png"))) == 12
    assert len(list((folder / "storage" / "raw_frames").rglob("*.png"))) == 24


def test_demo_writes_nothing_outside_its_folder(demo_run):
    base, home, result = demo_run
    assert sorted(p.name for p in base.iterdir()) == ["imagingdb-demo"]
    assert not home.exists()  # the user's imagingdb home: untouched


def test_demo_empties_an_earlier_demos_folder_and_refuses_any_other(run_cli, tmp_path):
    mine = tmp_path / "mine"
    (mine / "notes.txt").parent.mkdir()
    (mine / "notes.txt").write_text("keep me")
    refused = run_cli("demo", "--dir", mine)
    assert refused.exit_code == 2
    assert refused.errors == [f"Error: {mine} is not empty and is no earlier demo's; give the "
                              "demo a new folder with --dir"]
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    from imagingdb.demo import MARKER, prepare_folder

    earlier = prepare_folder(tmp_path / "earlier")
    (earlier / "left-over.txt").write_text("from an earlier demo")
    assert sorted(p.name for p in prepare_folder(earlier).iterdir()) == [MARKER]
