"""The single-file executable (``make zipapp``), run as a lab machine would run it.

It is built once from the working tree and cached under
``build/zipapp-cache/<hash of every input>/`` (scripts/build_zipapp.py), so a
session whose sources did not change builds nothing. Each test runs it as a subprocess: the
file executed directly (its shebang finds ``python3`` on a PATH with no
virtual environment on it), from another folder, with no ``PYTHON*`` variable.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from scripts.build_zipapp import BOTOCORE_SERVICES, cached_build
from tests.conftest import DATASET_ID, CliResult
from tests.helpers import source_frames
from tests.wheelhouse import dependency_closure, wheel_from_installed

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "zipapp.lock"
#: what `imagingdb --help` must not import (tests/test_cli.py checks the same of the package)
HEAVY_MODULES = ("numpy", "tifffile", "sqlalchemy", "boto3", "botocore", "yaml", "pg8000")


@pytest.fixture(scope="session")
def zipapp_file() -> Path:
    """The executable built from the working tree (make zipapp's cached build)."""
    return cached_build()


def path_without_virtualenvs() -> str:
    """PATH as a machine without this test environment has it."""
    venv = Path(sys.prefix).resolve()
    return os.pathsep.join(entry for entry in os.environ.get("PATH", "").split(os.pathsep)
                           if entry and not Path(entry).resolve().is_relative_to(venv))


@pytest.fixture(scope="session")
def system_python() -> str:
    """The real interpreter behind ``python3`` on that PATH; same minor as the build (numpy)."""
    python3 = shutil.which("python3", path=path_without_virtualenvs())
    assert python3, "no python3 on PATH outside the virtual environment"
    found = subprocess.run([python3, "-c", "import sys; print(sys.executable, *sys.version_info[:2])"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert (int(found[1]), int(found[2])) == sys.version_info[:2], (
        f"python3 on PATH is {found[1]}.{found[2]}; the zipapp was built for "
        f"{sys.version_info.major}.{sys.version_info.minor}")
    return found[0]


@dataclass
class Zipapp:
    """Runs the executable as a subprocess, the way a user's shell would."""

    path: Path
    shiv_root: Path
    cwd: Path

    def env(self) -> dict[str, str]:
        """This process's environment now (the test's IMAGINGDB_*), less Python's own."""
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("PYTHON") and name != "VIRTUAL_ENV"}
        return {**env, "PATH": path_without_virtualenvs(), "SHIV_ROOT": str(self.shiv_root)}

    def run(self, *args, env: dict | None = None, executable: list[str] | None = None,
            timeout: float = 300) -> CliResult:
        done = subprocess.run([*(executable or [str(self.path)]), *map(str, args)],
                              env={**self.env(), **(env or {})}, cwd=self.cwd,
                              capture_output=True, text=True, timeout=timeout)
        return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def zipapp(zipapp_file, system_python, tmp_path, isolated_home) -> Zipapp:
    """The executable, with the test's IMAGINGDB_HOME and config, run from an unrelated folder."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return Zipapp(zipapp_file, zipapp_file.parent / "shiv-root", cwd)  # unpacked once, shared


# --------------------------------------------------------------- the executable


def test_a_copy_runs_from_anywhere_with_the_machines_python(zipapp, tmp_path):
    copy = tmp_path / "bin" / "imagingdb"
    copy.parent.mkdir()
    shutil.copy2(zipapp.path, copy)
    assert copy.read_bytes().startswith(b"#!/usr/bin/env -S python3 -I -S\n")
    result = zipapp.run("--version", executable=[str(copy)])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "imagingdb 0.1.0 (plugin API 1)\n", "")


def test_the_machines_own_packages_stay_out(zipapp, system_python, tmp_path):
    """Neither PYTHONPATH nor the user's site-packages can shadow a bundled package."""
    poison = tmp_path / "poison"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    user_site = tmp_path / "home" / ".local" / "lib" / version / "site-packages"
    for folder in (poison, user_site):
        folder.mkdir(parents=True)
        (folder / "typer.py").write_text("raise ImportError('the machine typer was imported')\n")
    env = {"PYTHONPATH": str(poison), "HOME": str(tmp_path / "home")}
    assert zipapp.run("--help", env=env).exit_code == 0
    # Started by a python3 without the isolation flags, it starts itself again isolated.
    started_plainly = zipapp.run("--version", env=env, executable=["python3", str(zipapp.path)])
    assert started_plainly.exit_code == 0, started_plainly.stderr
    probe = zipapp.run("-c", "import json, sys; print(json.dumps([sys.flags.isolated, "
                             "sys.flags.no_site, sys.path]))",
                       env={**env, "SHIV_INTERPRETER": "1"})
    isolated, no_site, path = json.loads(probe.stdout)
    assert (isolated, no_site) == (1, 1)
    stdlib = subprocess.run([system_python, "-I", "-S", "-c", "import sys; print(*sys.path)"],
                            capture_output=True, text=True, check=True).stdout.split()
    strays = [p for p in path if p not in stdlib and p != str(zipapp.path)
              and not Path(p).resolve().is_relative_to(zipapp.shiv_root.resolve())]
    assert strays == [], f"the executable looks for modules outside itself: {strays}"


def test_help_imports_nothing_heavy_and_later_runs_use_byte_code(zipapp, system_python):
    """What keeps --help fast (its time is measured by make zipapp-bench, not asserted here)."""
    first = zipapp.run("--help")
    assert first.exit_code == 0 and "Usage: imagingdb" in first.stdout
    traced = zipapp.run("--help", executable=[system_python, "-I", "-S", "-X", "importtime",
                                              str(zipapp.path)])
    imported = {line.split("|")[-1].strip() for line in traced.stderr.splitlines() if "|" in line}
    assert "imagingdb.cli" in imported and "importlib.metadata" not in imported  # no plugin here
    assert not {name for name in imported if name.split(".")[0] in HEAVY_MODULES}
    unpacked = next(zipapp.shiv_root.glob("imagingdb_*/site-packages"))
    assert list((unpacked / "imagingdb" / "__pycache__").glob("cli.*.pyc"))  # compiled once


def test_processes_starting_together_unpack_it_once(zipapp, tmp_path):
    fresh_root = tmp_path / "fresh-shiv-root"
    env = {**zipapp.env(), "SHIV_ROOT": str(fresh_root)}
    starting = [subprocess.Popen([str(zipapp.path), "plugins", "--format", "json"], env=env,
                                 cwd=zipapp.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(4)]
    outputs = [process.communicate(timeout=300) for process in starting]
    assert [process.returncode for process in starting] == [0, 0, 0, 0], [err for _, err in outputs]
    listings = [json.loads(out) for out, _ in outputs]
    assert all(listing == listings[0] for listing in listings)
    assert {"kind": "splitter", "name": "ome_tiff", "plugin": "imagingdb 0.1.0 (built-in)"} in listings[0]
    unpacked = [p.name for p in fresh_root.iterdir() if not p.name.startswith(".")]
    assert len(unpacked) == 1 and unpacked[0].startswith("imagingdb_"), unpacked  # no .tmp left
    assert (fresh_root / unpacked[0] / "site-packages" / "imagingdb" / "cli.py").is_file()


# ------------------------------------------------------------------ the commands


def test_upload_query_show_download(zipapp, site, upload_files, mm_ometiff, tmp_path):
    raw = tmp_path / "notes.txt"
    raw.write_text("kept whole\n")
    frames_csv = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff),
                                    "description": "two positions"}])
    file_id = "ML-2005-05-24-10-00-00-0002"
    file_csv = upload_files.csv([{"dataset_id": file_id, "file_name": str(raw)}])
    for csv_path, config in ((frames_csv, upload_files.frames_config()),
                             (file_csv, upload_files.file_config())):
        uploaded = zipapp.run("upload", "--csv", csv_path, "--config", config)
        assert uploaded.exit_code == 0, uploaded.stderr

    found = zipapp.run("query", "--project-id", "ML", "--format", "json")
    assert found.exit_code == 0, found.stderr
    assert [(d["dataset_id"], d["frames"], d["description"]) for d in found.json()] == [
        (DATASET_ID, True, "two positions"), (file_id, False, None)]
    shown = zipapp.run("show", DATASET_ID, "--format", "json")
    assert shown.exit_code == 0 and shown.json()["global_meta"]["ChNames"] == ["DAPI", "GFP"]

    dest = tmp_path / "dest"
    got = zipapp.run("download", "--id", DATASET_ID, "--dest", dest, "-c", "GFP", "-t", "1")
    assert got.exit_code == 0, got.stderr
    assert Path(got.stdout.strip()) == dest / DATASET_ID
    pngs = sorted((dest / DATASET_ID).glob("*.png"))
    assert len(pngs) == 6  # 3 slices x 2 positions
    stored = site.storage_root / "raw_frames" / DATASET_ID
    assert all(png.read_bytes() == (stored / png.name).read_bytes() for png in pngs)
    assert zipapp.run("download", "--id", file_id, "--dest", dest).exit_code == 0
    assert (dest / file_id / "notes.txt").read_text() == "kept whole\n"
    with site.connect() as db:  # read back by the package: the executable wrote the same data
        array = db.dataset(DATASET_ID).read()
    for (c, z, t, p), pixels in source_frames(mm_ometiff).items():
        np.testing.assert_array_equal(array[p, t, c, z], pixels)
    verified = zipapp.run("verify", "--all", "--format", "json")
    assert verified.exit_code == 0, verified.stderr
    assert verified.json()["ok"] and len(verified.json()["datasets"]) == 2
    (stored / "im_c000_z000_t000_p000.png").unlink()
    broken = zipapp.run("verify", DATASET_ID)
    assert broken.exit_code == 1 and "missing" in broken.stdout


def test_lab_instance_postgresql_and_s3(zipapp, pg_s3_site, upload_files, mm_ometiff, tmp_path):
    """The executable against a real PostgreSQL and an S3 bucket over HTTP (moto)."""
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    uploaded = zipapp.run("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert uploaded.exit_code == 0, uploaded.stderr
    keys = [k for k in pg_s3_site.objects() if k.startswith(f"imaging/raw_frames/{DATASET_ID}/")]
    assert len(keys) == 24
    found = zipapp.run("query", "--format", "json")
    assert [d["dataset_id"] for d in found.json()] == [DATASET_ID]
    dest = tmp_path / "dest"
    got = zipapp.run("download", "--id", DATASET_ID, "--dest", dest, "-p", "1", "-z", "0")
    assert got.exit_code == 0, got.stderr
    assert len(list((dest / DATASET_ID).glob("*.png"))) == 4  # 2 channels x 2 times
    assert zipapp.run("verify", DATASET_ID).exit_code == 0
    assert zipapp.run("gc", "--older-than", "0").stdout == ""


def test_the_ome_zarr_layout_and_exports_run_from_the_executable(zipapp, upload_files, mm_ometiff,
                                                                 tmp_path, isolated_home):
    """numcodecs, stripped of its debug information, stores and reads Blosc chunks that
    zarr-python reads back."""
    import zarr

    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    config = upload_files.frames_config(frame_format="ome-zarr")
    uploaded = zipapp.run("upload", "--csv", csv_path, "--config", config)
    assert uploaded.exit_code == 0, uploaded.stderr
    verified = zipapp.run("verify", DATASET_ID)
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    exported = zipapp.run("export", "--id", DATASET_ID, "--to", "ome-tiff", tmp_path / "x.ome.tif")
    assert exported.exit_code == 0, exported.stderr
    stored = zarr.open_group(str(isolated_home / "storage" / "raw_frames" / DATASET_ID), mode="r")
    import tifffile

    with tifffile.TiffFile(tmp_path / "x.ome.tif") as tif:
        for p in (0, 1):
            np.testing.assert_array_equal(tif.series[p].asarray().reshape(2, 2, 3, 32, 48),
                                          stored[f"0/{p}/0/0"][:])
    for (c, z, t, p), pixels in source_frames(mm_ometiff).items():
        np.testing.assert_array_equal(stored[f"0/{p}/0/0"][t, c, z], pixels)


def test_bad_input_is_one_error_line_and_changes_nothing(zipapp, site, upload_files, mm_ometiff):
    before = site.snapshot()
    bad_csv = upload_files.csv([{"dataset_id": "ML-2005-13-23-10-00-00-0001",
                                 "file_name": str(mm_ometiff)}])
    result = zipapp.run("upload", "--csv", bad_csv, "--config", upload_files.frames_config())
    assert result.exit_code == 2
    assert result.errors == ["Error: upload1.csv row 2: invalid dataset ID 'ML-2005-13-23-10-00-00-0001': "
                             "its timestamp is not a real date/time (month must be in 1..12)"]
    assert "Traceback" not in result.stderr
    assert site.snapshot() == before


def test_bundled_boto3_talks_to_s3(zipapp, s3_bucket):
    """botocore's service models are pruned to S3 and the credential chain's: S3 still works."""
    script = ("import sys, boto3; s3 = boto3.client('s3', endpoint_url=sys.argv[1]); "
              "s3.put_object(Bucket=sys.argv[2], Key='raw_files/a.txt', Body=b'frame'); "
              "print(s3.get_object(Bucket=sys.argv[2], Key='raw_files/a.txt')['Body'].read().decode()); "
              "import json, botocore.session; "
              "print(json.dumps(botocore.session.get_session().get_available_services()))")
    result = zipapp.run("-c", script, s3_bucket.endpoint_url, s3_bucket.name,
                        env={"SHIV_INTERPRETER": "1"})
    assert result.exit_code == 0, result.stderr
    body, services = result.stdout.splitlines()
    assert body == "frame" and set(json.loads(services)) == BOTOCORE_SERVICES


# ------------------------------------------------------------------ the plugins


@pytest.fixture(scope="session")
def ndtiff_wheels(tmp_path_factory) -> Path:
    """Wheels of everything imagingdb-ndtiff needs that the executable does not bundle."""
    bundled = [line.split("==")[0] for line in LOCK.read_text().splitlines()
               if line and not line.startswith("#")]
    folder = tmp_path_factory.mktemp("ndtiff-wheels")
    for name in dependency_closure("imagingdb-ndtiff", [*bundled, "imagingdb"]):
        wheel_from_installed(name, folder)
    return folder


def write_ndtiff(folder: Path):
    """ndtiff's own writer, as the plugin's tests use it (plugins/imagingdb-ndtiff/tests)."""
    path = ROOT / "plugins" / "imagingdb-ndtiff" / "tests" / "ndtiff_sample.py"
    spec = importlib.util.spec_from_file_location("ndtiff_sample", path)
    sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sample)
    return sample.write_ndtiff(folder, channels=("DAPI", "GFP"), slices=2, times=1, positions=2, seed=3)


def test_plugin_installs_offline_lists_uploads_and_uninstalls(
        zipapp, ndtiff_wheels, upload_files, tmp_path):
    source = tmp_path / "imagingdb-ndtiff"
    shutil.copytree(ROOT / "plugins" / "imagingdb-ndtiff", source,
                    ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__", "tests"))
    installed = zipapp.run("plugins", "install", source, "--no-index", "--find-links", ndtiff_wheels)
    assert installed.exit_code == 0, installed.stderr
    assert "Installed imagingdb-ndtiff 0.1.0 (plugin)" in installed.stderr
    folder = Path(os.environ["IMAGINGDB_PLUGINS_DIR"])
    assert (folder / "ndtiff").is_dir()  # its own dependency went into the plugins folder...
    assert not (folder / "numpy").exists() and not (folder / "yaml").exists()  # ...not the bundled
    listed = zipapp.run("plugins", "--format", "json").json()
    assert {"kind": "splitter", "name": "ndtiff", "plugin": "imagingdb-ndtiff 0.1.0"} in listed

    acquisition, written = write_ndtiff(tmp_path / "ndtiff-data")
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(acquisition)}])
    config = upload_files.config(upload_type="frames", frames_format="ndtiff", microscope="scope2")
    uploaded = zipapp.run("upload", "--csv", csv_path, "--config", config)
    assert uploaded.exit_code == 0, uploaded.stderr
    import imagingdb

    with imagingdb.connect() as db:
        array = db.dataset(DATASET_ID).read()
    for (c, z, t, p), pixels in written.items():
        np.testing.assert_array_equal(array[p, t, c, z], pixels)

    removed = zipapp.run("plugins", "uninstall", "imagingdb-ndtiff")
    assert removed.exit_code == 0, removed.stderr
    assert not (folder / "imagingdb_ndtiff").exists()
    names = {entry["name"] for entry in zipapp.run("plugins", "--format", "json").json()}
    assert "ndtiff" not in names and "ome_tiff" in names


# --------------------------------------------------------------- the interpreter


def other_pythons() -> list[str]:
    """Interpreters of other minor versions found on this machine (pyenv's, the system's)."""
    import glob

    found = {}
    for path in sorted(glob.glob("/root/.pyenv/versions/3.*/bin/python3")
                       + glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3"))
                       + glob.glob("/usr/bin/python3.[0-9]*")):
        if path.endswith("-config") or not os.access(path, os.X_OK):
            continue
        done = subprocess.run([path, "-c", "import sys; print(*sys.version_info[:2])"],
                              capture_output=True, text=True)
        if done.returncode == 0:
            minor = tuple(map(int, done.stdout.split()))
            if minor != sys.version_info[:2]:
                found.setdefault(minor, path)
    return [found[minor] for minor in sorted(found)]


def test_another_python_is_refused_in_one_line_before_any_command(zipapp):
    pythons = other_pythons()
    if not pythons:
        pytest.skip("no Python of another minor version on this machine")
    built = f"{sys.version_info.major}.{sys.version_info.minor}"
    for python in pythons:
        result = zipapp.run("query", executable=[python, str(zipapp.path)], timeout=120)
        assert result.exit_code == 2, (python, result.stderr)
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"Error: this imagingdb executable was built for Python {built} "
                               "on linux "), line
        assert f"({python}): run it with that Python (e.g. python{built} imagingdb ...)" in line


def test_imagingdb_python_reaches_the_api_and_the_bundled_packages(zipapp, tmp_path):
    script = tmp_path / "count.py"
    script.write_text("import sys, numpy, imagingdb\n"
                      "print(len(imagingdb.connect().query()), numpy.zeros(2).sum(), sys.argv[1])\n")
    result = zipapp.run("python", script, "arg")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "0 0.0 arg\n", "")
    result = zipapp.run("python", "-c", "import tifffile, sqlalchemy; print('ok')")
    assert (result.exit_code, result.stdout) == (0, "ok\n"), result.stderr
