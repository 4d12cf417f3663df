"""frames_format auto: the splitter is chosen by what claims the source, never by guessing.

Plugins installed for real (tests.conftest.PluginFolder) make the claims, so
the rules of :func:`imagingdb.plugins.choose_format` are checked on their own;
the built-in splitters' claims are checked with each format's tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from imagingdb import plugins
from imagingdb.errors import InputError
from tests.conftest import DATASET_ID
from tests.test_plugins import NPY_SPLITTER


def _claiming(name: str, certainty: str, kind: str = "numpy time series") -> str:
    """The NPY splitter registered as ``name``, claiming .npy files with ``certainty``."""
    return NPY_SPLITTER.replace('"npy_time_series"', repr(name)) + f'''
from imagingdb.acquisition import {certainty}, SourceClaim

@hookimpl
def claim_source(source):
    if source.suffix == ".npy":
        return SourceClaim({name!r}, {kind!r}, {certainty})
'''


@pytest.fixture
def npy_file(tmp_path):
    path = tmp_path / "series.npy"
    np.save(path, np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4))
    return path


def test_the_most_certain_claim_wins(plugin_folder, npy_file):
    plugin_folder.install("imagingdb-sure", _claiming("npy_sure", "CERTAIN"))
    plugin_folder.install("imagingdb-maybe", _claiming("npy_maybe", "POSSIBLE"))
    assert plugins.choose_format(npy_file).format == "npy_sure"


def test_two_formats_equally_certain_are_refused_naming_both(plugin_folder, npy_file):
    plugin_folder.install("imagingdb-one", _claiming("npy_one", "LIKELY", "one reading"))
    plugin_folder.install("imagingdb-two", _claiming("npy_two", "LIKELY", "another reading"))
    with pytest.raises(InputError, match=r"could be read as npy_\w+ \(\w+ reading\) or "
                                         r"npy_\w+ \(\w+ reading\); set frames_format"):
        plugins.choose_format(npy_file)


def test_an_explicit_format_is_refused_when_another_claims_the_source_as_its_own(
        plugin_folder, npy_file):
    plugin_folder.install("imagingdb-sure", _claiming("npy_sure", "CERTAIN", "numpy series"))
    with pytest.raises(InputError, match="is a numpy series, which frames_format tif_id would "
                                         "not read as it was recorded; use frames_format: npy_sure"):
        plugins.choose_format(npy_file, "tif_id")


def test_an_explicit_format_that_only_likely_reads_the_source_goes_ahead(plugin_folder, npy_file):
    plugin_folder.install("imagingdb-maybe", _claiming("npy_maybe", "LIKELY"))
    assert plugins.choose_format(npy_file, "tif_id").format == "tif_id"


def test_an_unknown_explicit_format_lists_the_available_ones(npy_file):
    with pytest.raises(InputError, match="unknown splitter 'tiff_id'; available: .*tif_id"):
        plugins.choose_format(npy_file, "tiff_id")


def test_a_source_nobody_claims_is_refused_with_what_to_do(run_cli, upload_files, site, tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text("not an image")
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.config(upload_type="frames"))
    assert result.exit_code == 2
    assert len(result.errors) == 1
    assert "notes.txt is not a TIFF file, which no splitter reads (formats: " in result.errors[0]
    assert "upload it whole with upload_type: file" in result.errors[0]
    assert site.snapshot() == before


@pytest.mark.parametrize("make, reason", [
    (lambda folder: (folder / "empty.tif").touch() or folder / "empty.tif", "an empty file (0 bytes)"),
    (lambda folder: (folder / "nothing").mkdir() or folder / "nothing", "an empty folder"),
    (lambda folder: ((folder / "notes").mkdir(), (folder / "notes" / "a.txt").write_text("x"),
                     folder / "notes")[-1], "a folder with no TIFF file"),
])
def test_an_unreadable_source_is_named_for_what_it_is(run_cli, upload_files, site, tmp_path,
                                                      make, reason):
    source = make(tmp_path)
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.config(upload_type="frames"))
    assert result.exit_code == 2 and len(result.errors) == 1, result.stderr
    assert f"{source} is {reason}" in result.errors[0]
    assert site.snapshot() == before


def test_a_source_no_splitter_claims_but_readable_keeps_the_general_message(
        run_cli, upload_files, tmp_path):
    """A real TIFF nobody claims (here: a folder of TIFFs with unrelated names) is not called
    unreadable: the message says to set frames_format."""
    import tifffile

    folder = tmp_path / "misc"
    folder.mkdir()
    for name in ("alpha.tif", "beta.tif"):
        tifffile.imwrite(folder / name, np.zeros((4, 4), np.uint8))
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(folder)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.config(upload_type="frames"))
    assert result.exit_code == 2
    assert "no splitter recognises it" in result.errors[0] and "set frames_format" in result.errors[0]
