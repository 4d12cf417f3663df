"""An NDTiff dataset cut short (a copy gone wrong) is refused, or stored with its lost images
listed as missing frames: never registered complete (imagingdb issue 14, row 4).

The stack file is cut inside the last image's pixels, inside its metadata and at two thirds
of its size; the index inside an entry and at the boundary before the last entry (what a
copy of the index alone that stopped short leaves).
"""

from __future__ import annotations

import contextlib
import io

import ndtiff
import pytest
from ndtiff_checks import DATASET_ID, snapshot, upload
from ndtiff_sample import write_ndtiff

import imagingdb

STACK, INDEX = "acq_NDTiffStack.tif", "NDTiff.index"


def _last_entry(folder):
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = ndtiff.Dataset(str(folder))
        entries = sorted(dataset.index.values(), key=lambda entry: entry.pix_offset)
        dataset.close()
    return entries[-1]


def _cut_at(folder, what):
    """(file to cut, where) for a cut named ``what``."""
    last = _last_entry(folder)
    stack, index = folder / STACK, folder / INDEX
    if what == "last image's pixels":
        return stack, last.pix_offset + 100
    if what == "last image's metadata":
        return stack, last.metadata_offset + last.metadata_length // 2
    if what == "stack at two thirds":
        return stack, stack.stat().st_size * 2 // 3
    data = index.read_bytes()
    boundary = _entry_starts(data)[-1]
    return index, boundary + (0 if what == "index before its last entry" else 7)


def _entry_starts(data):
    """Where each index entry starts: axes JSON length, JSON, file name length, name, 32 bytes."""
    starts, position = [], 0
    while position < len(data):
        starts.append(position)
        length = int.from_bytes(data[position:position + 4], "little")
        name_length = int.from_bytes(data[position + 4 + length:position + 8 + length], "little")
        position += 4 + length + 4 + name_length + 32
    return starts


@pytest.mark.parametrize("what", ["last image's pixels", "last image's metadata",
                                  "stack at two thirds", "index inside its last entry",
                                  "index before its last entry"])
def test_a_cut_dataset_is_refused_or_stored_with_its_lost_images_missing(
        run_cli, upload_files, tmp_path, what):
    folder, _ = write_ndtiff(tmp_path / "data", slices=3, times=2, seed=11)
    victim, at = _cut_at(folder, what)
    victim.write_bytes(victim.read_bytes()[:at])
    run_cli("init")
    before = snapshot()
    result = upload(run_cli, upload_files, folder)
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    if result.exit_code != 0:
        assert result.exit_code == 2, result.stderr
        assert len(result.errors) == 1 and str(folder) in result.errors[0], result.stderr
        assert snapshot() == before
        return
    with imagingdb.connect() as db:
        summary = db.dataset(DATASET_ID).summary()
    assert summary["missing_frames"] > 0, f"cut in {what}, registered complete: {summary}"
    assert f"bytes after the last image {INDEX} lists: the index may have been cut short" in (
        result.stderr)
