"""The plugin system: third-party plugins installed for real into the plugins folder.

Each test installs small distributions (a module plus its ``.dist-info`` with
an ``imagingdb`` entry point, the layout ``pip install --target`` leaves) into
``$IMAGINGDB_PLUGINS_DIR`` and runs the CLI. Every hook of
:mod:`imagingdb.hookspecs` has a ``test_hook_<name>`` here; a test checks it.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import numpy as np

from imagingdb import hookspecs, plugins
from tests.conftest import DATASET_ID

ROOT = Path(__file__).resolve().parent.parent


HOOKIMPL = "import pluggy\nhookimpl = pluggy.HookimplMarker('imagingdb')\n"

NPY_SPLITTER = HOOKIMPL + '''
from pathlib import Path
from imagingdb.acquisition import Acquisition, Dimensions, Frame, FrameIndex, Splitter

class Stack(Acquisition):
    def __init__(self, path, options):
        import numpy as np
        self.array = np.load(path)
        t, height, width = self.array.shape
        self.channel_names = ["BF"]
        self.dims = Dimensions(1, 1, t, 1, height, width, 1, self.array.dtype.name)
        self.global_meta = {"source": Path(path).name}

    def iter_frames(self, pixels=True):
        for t in range(self.dims.nbr_timepoints):
            yield Frame(FrameIndex(0, 0, t, 0), "BF", {"t": t},
                        self.array[t] if pixels else None)

class TimeSeries(Splitter):
    name = "npy_time_series"
    def open(self, source, options):
        return Stack(source, options)

@hookimpl
def register_splitters(register):
    register("npy_time_series", TimeSeries)
'''


def upload(run_cli, upload_files, source, dataset_id=DATASET_ID, **config):
    csv_path = upload_files.csv([{"dataset_id": dataset_id, "file_name": str(source)}])
    config_path = upload_files.config(upload_type="frames", **config)
    return run_cli("upload", "--csv", csv_path, "--config", config_path)


# ---------------------------------------------------------------- one test per hook


def test_hook_register_splitters(plugin_folder, run_cli, upload_files, tmp_path):
    plugin_folder.install("imagingdb-timeseries", NPY_SPLITTER, version="2.1.0")
    frames = np.arange(3 * 6 * 5, dtype=np.uint16).reshape(3, 6, 5) * 97
    np.save(tmp_path / "series.npy", frames)
    result = upload(run_cli, upload_files, tmp_path / "series.npy", frames_format="npy_time_series")
    assert result.exit_code == 0, result.stderr
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        np.testing.assert_array_equal(ds.read()[0, :, 0, 0], frames)
        assert ds.global_meta == {"source": "series.npy"}
    listed = run_cli("plugins", "--format", "json").json()
    assert {"kind": "splitter", "name": "npy_time_series",
            "plugin": "imagingdb-timeseries 2.1.0"} in listed


def test_hook_claim_source(plugin_folder, run_cli, upload_files, tmp_path):
    """A plugin's claim makes frames_format auto choose its splitter, and says what it found."""
    plugin_folder.install("imagingdb-timeseries", NPY_SPLITTER + '''
from imagingdb.acquisition import CERTAIN, SourceClaim

@hookimpl
def claim_source(source):
    if source.suffix == ".npy":
        return SourceClaim("npy_time_series", "numpy time series", CERTAIN)
''', version="2.1.0")
    frames = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    np.save(tmp_path / "series.npy", frames)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(tmp_path / "series.npy")}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.config(upload_type="frames"),
                     "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert f"{DATASET_ID}: numpy time series; frames_format auto chose npy_time_series" in result.stderr
    assert result.json()[0]["format"] == "npy_time_series"
    import imagingdb

    with imagingdb.connect() as db:
        np.testing.assert_array_equal(db.dataset(DATASET_ID).read()[0, :, 0, 0], frames)


def test_claim_source_that_raises_is_ignored_for_that_source_only(
        plugin_folder, run_cli, upload_files, tmp_path):
    plugin_folder.install("imagingdb-buggy", NPY_SPLITTER + '''
@hookimpl
def claim_source(source):
    raise RuntimeError("bug in the claim")
''')
    np.save(tmp_path / "series.npy", np.zeros((2, 3, 4), np.uint16))
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(tmp_path / "series.npy")}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.config(upload_type="frames"))
    assert result.exit_code == 2
    assert "claim_source failed on" in result.stderr
    assert "and is ignored: RuntimeError: bug in the claim" in result.stderr
    assert "series.npy is not a TIFF file, which no splitter reads" in result.errors[0]
    # the plugin stays usable for everything else: its splitter, named
    named = run_cli("upload", "--csv", csv_path, "--config",
                    upload_files.config(upload_type="frames", frames_format="npy_time_series"))
    assert named.exit_code == 0, named.stderr


def test_hook_register_filename_parsers(plugin_folder, run_cli, upload_files, tmp_path):
    plugin_folder.install("imagingdb-wellparser", HOOKIMPL + '''
import os, re

def parse_well_field(file_name):
    match = re.match(r"^([A-H])(\\d+)_f(\\d+)\\.tif$", os.path.basename(file_name))
    if match is None:
        raise ValueError(f"{os.path.basename(file_name)!r} does not match '<row><column>_f<field>.tif'")
    return {"pos_idx": int(match[3]), "well": match[1] + match[2]}

@hookimpl
def register_filename_parsers(register):
    register("parse_well_field", parse_well_field)
''')
    import tifffile

    folder = tmp_path / "plate"
    folder.mkdir()
    fields = {f: np.full((4, 4), 10 * f + 1, np.uint8) for f in range(3)}
    for field, pixels in fields.items():
        tifffile.imwrite(folder / f"B7_f{field}.tif", pixels)
    result = upload(run_cli, upload_files, folder, frames_format="tif_folder",
                    filename_parser="parse_well_field")
    assert result.exit_code == 0, result.stderr
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        array = ds.read()
        assert {row["metadata_json"]["well"] for row in ds.frames()} == {"B7"}
    for field, pixels in fields.items():
        np.testing.assert_array_equal(array[field, 0, 0, 0], pixels)
    (folder / "overview.tif").write_bytes((folder / "B7_f0.tif").read_bytes())
    refused = upload(run_cli, upload_files, folder, "ML-2005-05-23-10-00-00-0002",
                     frames_format="tif_folder", filename_parser="parse_well_field")
    assert refused.exit_code == 2
    assert "overview.tif" in refused.errors[0] and "'<row><column>_f<field>.tif'" in refused.errors[0]


def test_hook_register_storage_backends(plugin_folder, run_cli, upload_files, mm_ometiff, tmp_path,
                                        monkeypatch):
    plugin_folder.install("imagingdb-lab-nas", HOOKIMPL + '''
from imagingdb.storage.local import LocalStorage

class LabNas(LocalStorage):
    """A lab's NAS: a local folder under a share, named by its volume."""
    name = "lab_nas"

    def __init__(self, options=None):
        super().__init__(root=f"{options['share']}/{options['volume']}")

@hookimpl
def register_storage_backends(register):
    register("lab_nas", LabNas)
''')
    share = tmp_path / "nas"
    config = tmp_path / "site.yaml"
    config.write_text(f"database:\n  url: sqlite:///{tmp_path / 'db.sqlite'}\n"
                      f"storage:\n  backend: lab_nas\n  options:\n    volume: imaging\n"
                      f"    share: {share}\n")
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(config))
    assert run_cli("init").exit_code == 0
    result = upload(run_cli, upload_files, mm_ometiff, frames_format="ome_tiff")
    assert result.exit_code == 0, result.stderr
    stored = sorted((share / "imaging" / "raw_frames" / DATASET_ID).glob("*.png"))
    assert len(stored) == 24
    listed = run_cli("plugins", "--format", "json").json()
    assert {"kind": "storage_backend", "name": "lab_nas",
            "plugin": "imagingdb-lab-nas 1.0.0"} in listed


def test_hook_register_commands(plugin_folder, run_cli):
    plugin_folder.install("imagingdb-hello", HOOKIMPL + '''
import typer

@hookimpl
def register_commands(cli):
    @cli.command()
    def hello(name: str = typer.Option("lab", "--name")):
        """Say hello (from a plugin)."""
        print(f"hello {name}")
''', version="0.3.0")
    result = run_cli("hello", "--name", "imaging core")
    assert result.exit_code == 0 and result.stdout == "hello imaging core\n"
    assert "hello" in run_cli("--help").stdout
    listed = run_cli("plugins", "--format", "json").json()
    assert {"kind": "command", "name": "hello", "plugin": "imagingdb-hello 0.3.0"} in listed
    table = run_cli("plugins", "--format", "table").stdout
    assert re.search(r"command\s+hello\s+imagingdb-hello 0\.3\.0", table)


def test_every_hook_has_a_test_and_documentation():
    hooks = [name for name, value in inspect.getmembers(hookspecs, inspect.isfunction)
             if hasattr(value, "imagingdb_spec")]  # what pluggy's HookspecMarker marked
    assert hooks, "no hook found in imagingdb.hookspecs"
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    tests = {name for name, _ in inspect.getmembers(sys.modules[__name__], inspect.isfunction)}
    for hook in hooks:
        assert f"test_hook_{hook}" in tests, f"hook {hook} has no test_hook_{hook}"
        assert f"### {hook}(" in docs, f"hook {hook} has no '### {hook}(' section in docs/plugins.md"


# ------------------------------------------------------------- broken and duplicate


def test_plugin_that_fails_to_import_is_skipped_and_listed(plugin_folder, run_cli, capfd,
                                                           uploaded_ometiff):
    plugin_folder.install("imagingdb-broken", "import no_such_module_anywhere\n", version="0.0.1")
    query = run_cli("query", "--format", "json")
    assert query.exit_code == 0
    assert [d["dataset_id"] for d in query.json()] == [uploaded_ometiff]
    warning = capfd.readouterr().err
    assert "Warning: plugin 'imagingdb-broken' (imagingdb-broken 0.0.1) is broken and skipped" in warning
    assert "No module named 'no_such_module_anywhere'" in warning
    listed = run_cli("plugins", "--format", "json")
    assert listed.exit_code == 0
    (broken,) = [e for e in listed.json() if e["kind"] == "broken plugin"]
    assert broken["name"] == "imagingdb-broken" and broken["plugin"] == "imagingdb-broken 0.0.1"
    assert "ModuleNotFoundError" in broken["error"]
    assert any(e["name"] == "ome_tiff" for e in listed.json())
    assert "broken plugin imagingdb-broken (imagingdb-broken 0.0.1): ModuleNotFoundError" in run_cli(
        "plugins").stdout


def test_plugin_whose_hook_raises_is_skipped_whole(plugin_folder, run_cli):
    plugin_folder.install("imagingdb-halfway", HOOKIMPL + '''
@hookimpl
def register_filename_parsers(register):
    register("parse_half", lambda name: {})
    raise RuntimeError("forgot a file")
''')
    listed = run_cli("plugins", "--format", "json").json()
    assert not any(e["name"] == "parse_half" for e in listed)
    (broken,) = [e for e in listed if e["kind"] == "broken plugin"]
    assert "register_filename_parsers failed: RuntimeError: forgot a file" in broken["error"]
    assert any(e["name"] == "parse_sms_name" for e in listed)


def test_duplicate_name_is_an_error_naming_both_plugins(plugin_folder, run_cli, upload_files,
                                                        mm_ometiff):
    plugin_folder.install("imagingdb-impostor", HOOKIMPL + '''
@hookimpl
def register_splitters(register):
    register("ome_tiff", object)
''', version="6.6.6")
    result = upload(run_cli, upload_files, mm_ometiff, frames_format="ome_tiff")
    assert result.exit_code == 2
    assert ("splitter 'ome_tiff' is registered twice: by imagingdb 0.1.0 (built-in) and by "
            "imagingdb-impostor 6.6.6") in result.errors[0]
    assert run_cli("plugins").exit_code == 2
    assert run_cli("query", "--format", "json").exit_code == 0  # splitters are not its business


def test_same_entry_point_name_twice_keeps_the_first(plugin_folder, run_cli):
    plugin_folder.install("imagingdb-one", HOOKIMPL, entry_point="shared")
    plugin_folder.install("imagingdb-two", HOOKIMPL, entry_point="shared")
    listed = run_cli("plugins", "--format", "json").json()
    (broken,) = [e for e in listed if e["kind"] == "broken plugin"]
    assert "entry point name 'shared' is already used by" in broken["error"]


def test_allow_list_loads_only_the_named_plugins(plugin_folder, run_cli, monkeypatch):
    for dist in ("imagingdb-alpha", "imagingdb-beta"):
        plugin_folder.install(dist, HOOKIMPL + f'''
@hookimpl
def register_filename_parsers(register):
    register("parse_{dist[10:]}", lambda name: {{}})
''')
    def parser_names():
        plugins.reset_for_tests()
        listed = run_cli("plugins", "--format", "json").json()
        return {e["name"] for e in listed if e["kind"] == "filename_parser"}

    assert {"parse_alpha", "parse_beta"} <= parser_names()
    monkeypatch.setenv("IMAGINGDB_LOAD_PLUGINS", "imagingdb-beta")
    names = parser_names()
    assert "parse_beta" in names and "parse_alpha" not in names
    monkeypatch.setenv("IMAGINGDB_LOAD_PLUGINS", "")
    names = parser_names()
    assert not {"parse_alpha", "parse_beta"} & names
    assert "parse_ml_name" in names  # built-ins always load


def test_a_plugin_declaring_an_impossible_grid_is_refused_before_anything_is_stored(
        plugin_folder, run_cli, upload_files, site, tmp_path):
    """Whatever splitter reads a source, the upload refuses dimensions no acquisition could
    have (here: a billion time points for 3 frames), so show and read never walk them."""
    plugin_folder.install("imagingdb-boastful", NPY_SPLITTER.replace(
        "self.dims = Dimensions(1, 1, t, 1, height, width, 1, self.array.dtype.name)",
        "self.dims = Dimensions(1, 1, 10**9, 1, height, width, 1, self.array.dtype.name)").replace(
        "for t in range(self.dims.nbr_timepoints):", "for t in range(len(self.array)):"))
    np.save(tmp_path / "series.npy", np.zeros((3, 4, 4), np.uint16))
    before = site.snapshot()
    result = upload(run_cli, upload_files, tmp_path / "series.npy", frames_format="npy_time_series")
    assert result.exit_code == 2 and len(result.errors) == 1, result.stderr
    assert "declares 1,000,000,000 frames, more than the 10,000,000" in result.errors[0]
    assert site.snapshot() == before
