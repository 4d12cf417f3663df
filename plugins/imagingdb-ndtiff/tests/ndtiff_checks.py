"""What the plugin's tests share: an upload through the CLI, ndtiff as the reference reader.

Every check of stored frames goes back to ndtiff's own reader
(``ndtiff.Dataset``), never to this plugin's code: the test states which
imagingdb index each NDTiff image must have, and the pixels and metadata
stored there must be what ndtiff reads at those NDTiff axes.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any, Callable, Optional

import ndtiff
import numpy as np
import pytest

import imagingdb

DATASET_ID = "MM-2024-06-14-09-30-00-0001"


def upload(run_cli, upload_files, source: Path, frames_format: Optional[str] = "ndtiff", **row: Any):
    """``imagingdb upload`` of one CSV row; ``frames_format=None`` leaves the key out (auto)."""
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source), **row}])
    keys = {"upload_type": "frames", "microscope": "scope2"}
    if frames_format is not None:
        keys["frames_format"] = frames_format
    return run_cli("upload", "--csv", csv_path, "--config", upload_files.config(**keys))


def reference(root: Path) -> Any:
    """The dataset as ndtiff opens it (its progress lines kept off the test output)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return ndtiff.Dataset(str(root))


def reference_axes(dataset: Any) -> list[dict[str, Any]]:
    """Every full-resolution image's NDTiff axes, from ndtiff's index."""
    level = dataset.res_levels[0] if hasattr(dataset, "res_levels") else dataset
    return [dict(key) for key in level.index]


def reference_read(dataset: Any, what: str, axes: dict[str, Any]) -> Any:
    # channel=None: ndtiff's NDTiff 2 reader adds channel 0 to a lookup otherwise
    return getattr(dataset, f"read_{what}")(**{"channel": None, **axes})


def assert_stored_as(root: Path, index_of: Callable[[dict[str, Any]], tuple[int, int, int, int]]
                     ) -> dict[tuple[int, int, int, int], dict[str, Any]]:
    """Each NDTiff image is stored at ``index_of(axes)`` = (c, z, t, p) with ndtiff's pixels and
    metadata, and nothing else is stored; returns the frame rows by index."""
    ref = reference(root)
    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        array = ds.read()
        rows = {(r["channel_idx"], r["slice_idx"], r["time_idx"], r["pos_idx"]): r for r in ds.frames()}
        grid = ds.select()
    coordinates = reference_axes(ref)
    assert sorted(rows) == sorted(index_of(axes) for axes in coordinates)
    # read() lays out the intended grid: every index of the recorded dimensions on each axis
    present = [grid.channels, grid.slices, grid.times, grid.positions]
    assert list(array.shape[:4]) == [len(grid.positions), len(grid.times), len(grid.channels),
                                     len(grid.slices)]
    for axes in coordinates:
        index = index_of(axes)
        c, z, t, p = (values.index(value) for values, value in zip(present, index))
        np.testing.assert_array_equal(array[p, t, c, z], reference_read(ref, "image", axes))
        metadata = rows[index]["metadata_json"]
        assert reference_read(ref, "metadata", axes).items() <= metadata.items()
    close(ref)
    return rows


def close(dataset: Any) -> None:
    # NDTiffPyramidDataset.close() iterates its levels' numbers, not the levels (ndtiff 3.1.0)
    levels = getattr(dataset, "res_levels", None)
    for level in levels.values() if isinstance(levels, dict) else [dataset]:
        level.close()


def snapshot() -> dict[str, Any]:
    """Every row and stored object, to prove a refused upload changed nothing."""
    from tests.conftest import Site

    return Site("sqlite", imagingdb.config.imagingdb_home() / "storage", None).snapshot()


#: the project's copies of real files (see its README), beside the repository: ../shared/realdata;
#: IMAGINGDB_REALDATA names them for a checkout that lives elsewhere (a git worktree)
REPOSITORY = Path(__file__).resolve().parents[3]
REALDATA = Path(os.environ.get("IMAGINGDB_REALDATA") or REPOSITORY.parent / "shared" / "realdata")


def real_dataset(relative: str) -> Path:
    """A dataset under REALDATA; the test is skipped when the copies are not there."""
    path = REALDATA / relative
    if not path.exists():
        pytest.skip(f"{path} is not there (the real files live in ../shared/realdata)")
    return path
