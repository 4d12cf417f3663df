"""pytest fixtures for a plugin's tests: a throwaway imagingdb site and its CLI, for real.

Load them from the plugin's ``conftest.py``::

    pytest_plugins = ["imagingdb.testing.fixtures"]

- ``imagingdb_home``: a fresh ``$IMAGINGDB_HOME`` (SQLite and local storage
  under ``tmp_path``) with no site config from the machine; plugins installed
  in the environment still load, so the plugin under test is there;
- ``imagingdb_cli``: runs ``imagingdb ARGS...`` in-process and returns a
  :class:`CliRun` (exit code, stdout, stderr, the ``Error:`` lines);
- ``upload_source``: uploads one file or folder as one dataset and returns the
  run; the upload config's keys are keyword arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

#: the dataset ID ``upload_source`` registers unless told another
DATASET_ID = "ML-2005-05-23-10-00-00-0001"


@dataclass(frozen=True)
class CliRun:
    """One in-process run of the ``imagingdb`` command."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def errors(self) -> list[str]:
        """The ``Error:`` lines on stderr (a refused command prints exactly one)."""
        return [line for line in self.stderr.splitlines() if line.startswith("Error:")]

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def imagingdb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh IMAGINGDB_HOME for the test; the machine's site config stays out."""
    home = tmp_path / "imagingdb-home"
    monkeypatch.setenv("IMAGINGDB_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("IMAGINGDB_CONFIG", raising=False)
    return home


@pytest.fixture
def imagingdb_cli(imagingdb_home: Path) -> Callable[..., CliRun]:
    """Run ``imagingdb ARGS...`` in-process, with the plugins' commands too."""
    from typer.testing import CliRunner

    from ..cli import make_app

    def run(*args: Any) -> CliRun:
        result = CliRunner().invoke(make_app(), [str(arg) for arg in args],
                                    catch_exceptions=False)
        return CliRun(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def upload_source(imagingdb_cli: Callable[..., CliRun], tmp_path: Path) -> Callable[..., CliRun]:
    """Upload one source as one dataset: ``upload_source(path, dataset_id=..., **config)``.

    The upload config defaults to ``upload_type: frames`` with ``frames_format``
    left out (chosen by what claims the source); pass e.g.
    ``frames_format="my_format"`` to name one.
    """
    import csv

    import yaml

    def upload(source: Path, dataset_id: str = DATASET_ID, **config: Any) -> CliRun:
        folder = tmp_path / f"upload-{dataset_id}"
        folder.mkdir(exist_ok=True)
        with open(folder / "rows.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerows([("dataset_id", "file_name"), (dataset_id, str(source))])
        (folder / "upload.yaml").write_text(
            yaml.safe_dump({"upload_type": "frames", **config}), encoding="utf-8")
        return imagingdb_cli("upload", "--csv", folder / "rows.csv",
                             "--config", folder / "upload.yaml")

    return upload
