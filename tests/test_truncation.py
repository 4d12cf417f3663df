"""A source cut short (a copy gone wrong) is refused, or stored with its lost frames listed as
missing: never registered as a complete dataset (issue 14, row 4).

Each source is a real file written as its software writes it (imagingdb.testing), then cut
at places a failed copy can end: inside the pixels of its last page, inside its last page's
directory, at two thirds of its size, and, for Micro-Manager's files, after every page but
before the blocks written as the file closes.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tifffile

from imagingdb.testing import (
    FluorescenceScene,
    write_bioformats_ometiff,
    write_fiji_hyperstack,
    write_fiji_image_sequence,
    write_imagej_hyperstack,
    write_mm_ometiff,
    write_mm_tif_folder,
    write_tiff_stack,
    write_tifffile_ometiff,
    write_tifffile_stack,
)
from tests.conftest import DATASET_ID
from tests.helpers import assert_refused

MM_TAG = 51123  # MicroManagerMetadata


def _cut_points(path: Path) -> dict[str, int]:
    """Where to cut ``path``: byte offsets named after what the cut falls in."""
    size = path.stat().st_size
    with tifffile.TiffFile(path) as tif:
        last = tif.pages[-1]
        points = {
            "second page's pixels": tif.pages[1].dataoffsets[0] + tif.pages[1].databytecounts[0] // 2
            if len(tif.pages) > 1 else 0,
            "last page's pixels": last.dataoffsets[-1] + last.databytecounts[-1] // 2,
            "last page's directory": last.offset + 6,
            "two thirds": size * 2 // 3,
        }
        if MM_TAG in last.tags:  # Micro-Manager closes a file with blocks after its pages
            tag = last.tags[MM_TAG]
            points["after the pages"] = tag.valueoffset + tag.count
            points["the closing blocks"] = (tag.valueoffset + tag.count + size) // 2
    return {what: at for what, at in points.items() if 0 < at < size}


def _cut(path: Path, at: int) -> None:
    path.write_bytes(path.read_bytes()[:at])


# each source: (name, write(folder) -> (source to upload, the file to cut), frames_format)
def _tif_id_zstack(folder: Path):
    path = write_tiff_stack(folder / "zstack.tif", slices=6, height=32, width=32)
    return path, path


def _tif_id_tifffile_array(folder: Path):
    """The issue's case: ``tifffile.imwrite(path, zstack)`` puts the pixels in one block and
    the page directories after it, so a cut short copy keeps only the first page's."""
    path = folder / "array.tif"
    scene = FluorescenceScene(64, 64, "uint16", nbr_slices=6, seed=3)
    tifffile.imwrite(path, np.stack([scene.frame(0, z, 0, 0) for z in range(6)]))
    return path, path


def _tif_id_tifffile_stack(folder: Path):
    path = write_tifffile_stack(folder / "stack.tif", axes="TZCYX", shape=(2, 3, 2))
    return path, path


def _tif_id_imagej_hyperstack(folder: Path):
    path = write_imagej_hyperstack(folder / "hyper.tif", channels=2, slices=3, times=2,
                                   height=16, width=16)
    return path, path


def _tif_id_fiji_hyperstack(folder: Path):
    path = write_fiji_hyperstack(folder / "fiji.tif", channels=2, slices=3, height=16, width=16)
    return path, path


def _ome_tiff_micromanager(folder: Path):
    files = write_mm_ometiff(folder / "mm", "cut", slices=3, times=2, positions=1,
                             height=16, width=16)
    return folder / "mm", files[-1]


def _ome_tiff_micromanager_2(folder: Path):
    files = write_mm_ometiff(folder / "mm2", "cut", slices=3, times=2, positions=2,
                             height=16, width=16, version="2.0")
    return folder / "mm2", files[-1]


def _ome_tiff_bioformats(folder: Path):
    files = write_bioformats_ometiff(folder / "bf.ome.tif", slices=3, times=2)
    return files[0], files[0]


def _ome_tiff_tifffile(folder: Path):
    path = write_tifffile_ometiff(folder / "tf.ome.tif", slices=3, times=2)
    return path, path


def _tif_folder_micromanager(folder: Path):
    source = folder / "images"
    write_mm_tif_folder(source, channels=("DAPI", "GFP"), slices=3, times=2, height=16, width=16)
    return source, sorted(source.rglob("*.tif"))[-1]


def _image_sequence_fiji(folder: Path):
    files = write_fiji_image_sequence(folder / "seq", count=5, height=16, width=16)
    return folder / "seq", files[-1]


SOURCES: dict[str, tuple[Callable, str]] = {
    "tif_id z-stack": (_tif_id_zstack, "tif_id"),
    "tif_id tifffile array": (_tif_id_tifffile_array, "tif_id"),
    "tif_id tifffile TZC stack": (_tif_id_tifffile_stack, "tif_id"),
    "tif_id ImageJ hyperstack": (_tif_id_imagej_hyperstack, "tif_id"),
    "tif_id Fiji hyperstack": (_tif_id_fiji_hyperstack, "tif_id"),
    "ome_tiff Micro-Manager 1.4": (_ome_tiff_micromanager, "ome_tiff"),
    "ome_tiff Micro-Manager 2.0": (_ome_tiff_micromanager_2, "ome_tiff"),
    "ome_tiff Bio-Formats": (_ome_tiff_bioformats, "ome_tiff"),
    "ome_tiff tifffile": (_ome_tiff_tifffile, "ome_tiff"),
    "tif_folder Micro-Manager": (_tif_folder_micromanager, "tif_folder"),
    "image_sequence Fiji": (_image_sequence_fiji, "image_sequence"),
}

#: (source, cut) for every place each source can be cut
CUTS = ("second page's pixels", "last page's pixels", "last page's directory", "two thirds")
MM_CUTS = ("after the pages", "the closing blocks")  # only Micro-Manager's stacks have them
SINGLE_PAGE = ("tif_folder", "image_sequence")  # a file per frame: no second page
CASES = [pytest.param(name, where, id=f"{name}, cut in {where}")
         for name, (_, frames_format) in SOURCES.items()
         for where in CUTS + (MM_CUTS if name.startswith("ome_tiff Micro-Manager") else ())
         if not (where == CUTS[0] and frames_format in SINGLE_PAGE)]


def test_an_intact_source_uploads_complete(site, run_cli, upload_files, tmp_path):
    """The control: every source here, uncut, uploads with no missing frame."""
    for number, (name, (write, frames_format)) in enumerate(SOURCES.items()):
        (tmp_path / f"source{number}").mkdir()
        source, _ = write(tmp_path / f"source{number}")
        dataset_id = f"ML-2005-05-23-10-00-00-{number + 1:04d}"
        csv_path = upload_files.csv([{"dataset_id": dataset_id, "file_name": str(source)}],
                                    name=f"rows{number}.csv")
        result = run_cli("upload", "--csv", csv_path, "--config",
                         upload_files.config(upload_type="frames", frames_format=frames_format))
        assert result.exit_code == 0, (name, result.stderr)
        with site.connect() as db:
            assert db.dataset(dataset_id).summary()["missing_frames"] == 0, name


@pytest.mark.parametrize("name, where", CASES)
def test_a_cut_source_is_refused_or_stored_with_its_lost_frames_missing(
        site, run_cli, upload_files, tmp_path, name, where):
    write, frames_format = SOURCES[name]
    (tmp_path / "source").mkdir()
    source, victim = write(tmp_path / "source")
    points = _cut_points(victim)
    if where not in points:
        pytest.skip(f"{name} has no {where}")
    _cut(victim, points[where])
    run_cli("init")
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    result = run_cli("upload", "--csv", csv_path, "--config",
                     upload_files.config(upload_type="frames", frames_format=frames_format))
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    if result.exit_code != 0:
        assert_refused(result, site, before, contains=(victim.name,))
        return
    with site.connect() as db:
        summary = db.dataset(DATASET_ID).summary()
    assert summary["missing_frames"] > 0, (
        f"{name} cut in {where} was registered complete: {summary}\n{result.stderr}")
    assert victim.name in result.stderr, result.stderr  # the warning says which file


@pytest.mark.parametrize("name", list(SOURCES))
def test_a_source_cut_in_its_last_page_changes_nothing_on_postgresql_and_s3(
        pg_s3_site, run_cli, upload_files, tmp_path, name):
    """The cut found last, after the frames before it went to the bucket: the upload
    refuses, or lists the lost frames, and a refusal leaves no object behind."""
    write, frames_format = SOURCES[name]
    (tmp_path / "source").mkdir()
    source, victim = write(tmp_path / "source")
    _cut(victim, _cut_points(victim)["last page's pixels"])
    run_cli("init")
    before = pg_s3_site.snapshot()
    result = _upload(run_cli, upload_files, DATASET_ID, source, frames_format)
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    if result.exit_code != 0:
        assert_refused(result, pg_s3_site, before, contains=(victim.name,))
        return
    with pg_s3_site.connect() as db:
        assert db.dataset(DATASET_ID).summary()["missing_frames"] > 0, result.stderr


#: random cuts per run (TRUNCATION_TRIALS), over every source; TRUNCATION_SEED repeats a run
TRIALS = int(os.environ.get("TRUNCATION_TRIALS", "24"))


def test_random_cuts_are_refused_or_stored_with_their_lost_frames_missing(
        site, run_cli, upload_files, tmp_path, capsys):
    """A cut that loses only bytes nothing points at (tifffile leaves some after the last page
    of an ImageJ file) may store the dataset complete: then its frames must be the whole
    file's, checked against an upload of the uncut copy."""
    seed = int(os.environ.get("TRUNCATION_SEED") or random.randrange(2**32))
    with capsys.disabled():
        print(f"\nrandom cuts: {TRIALS} trial(s), TRUNCATION_SEED={seed}")
    rng = random.Random(seed)
    run_cli("init")
    for trial in range(TRIALS):
        name = rng.choice(sorted(SOURCES))
        write, frames_format = SOURCES[name]
        folder = tmp_path / f"trial{trial}"
        (folder / "cut").mkdir(parents=True)
        source, victim = write(folder / "cut")
        shutil.copytree(folder / "cut", folder / "whole")
        size = victim.stat().st_size
        at = rng.randrange(size // 8, size)  # a copy that stops before its end, at any byte
        _cut(victim, at)
        where = f"trial {trial} (TRUNCATION_SEED={seed}): {name} cut at {at} of {size} bytes"
        dataset_id = f"ML-2005-05-23-10-00-00-{trial + 1:04d}"
        before = site.snapshot()
        result = _upload(run_cli, upload_files, dataset_id, source, frames_format)
        assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, where
        if result.exit_code != 0:
            assert result.exit_code == 2 and len(result.errors) == 1, (where, result.stderr)
            assert victim.name in result.errors[0], (where, result.errors[0])
            assert site.snapshot() == before, where
            continue
        with site.connect() as db:
            summary = db.dataset(dataset_id).summary()
        if summary["missing_frames"] == 0:
            whole_id = f"ML-2005-05-23-10-00-00-{trial + 5001:04d}"
            whole = folder / "whole" / source.relative_to(folder / "cut")
            assert _upload(run_cli, upload_files, whole_id, whole, frames_format).exit_code == 0
            with site.connect() as db:
                np.testing.assert_array_equal(db.dataset(dataset_id).read(),
                                              db.dataset(whole_id).read(), err_msg=where)


def _upload(run_cli, upload_files, dataset_id, source, frames_format):
    csv_path = upload_files.csv([{"dataset_id": dataset_id, "file_name": str(source)}])
    return run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.config(upload_type="frames", frames_format=frames_format))
