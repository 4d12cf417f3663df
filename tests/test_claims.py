"""frames_format left out: each structure is claimed by the splitter that reads it, and said so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from imagingdb import plugins
from imagingdb.acquisition import LIKELY, POSSIBLE
from imagingdb.splitters import image_sequence, ome_xml, tif_id
from imagingdb.testing import (
    write_bioformats_ometiff,
    write_fiji_hyperstack,
    write_fiji_image_sequence,
    write_tiff_stack,
    write_tifffile_ometiff,
    write_tifffile_stack,
)
from tests.test_ome_xml import upload

STRUCTURES = {
    "fiji hyperstack": (lambda tmp: write_fiji_hyperstack(tmp / "h.tif", channels=2, slices=3),
                        "tif_id", "ImageJ hyperstack (ImageJ 1.53f; C2 Z3)"),
    "tifffile stack with axes": (lambda tmp: write_tifffile_stack(tmp / "s.tif"),
                                 "tif_id", "tifffile stack (TZCYX: T2 Z3 C2)"),
    "tifffile stack without axes": (lambda tmp: write_tiff_stack(tmp / "p.tif", slices=4,
                                                                 height=8, width=8),
                                    "tif_id", "tifffile stack (shape (4, 8, 8), along z)"),
    "plain stack": (lambda tmp: _plain_stack(tmp / "plain.tif"), "tif_id",
                    "multi-page TIFF (3 pages, along z)"),
    "single page": (lambda tmp: _single_page(tmp / "one.tif"), "tif_id", "single-page TIFF"),
    "bio-formats ome-tiff": (lambda tmp: write_bioformats_ometiff(tmp / "b.ome.tif")[0],
                             "ome_tiff", "OME-TIFF written by OME Bio-Formats 6.14.0 (1 image, "
                             "T5 C2 Z5)"),
    "bio-formats images": (lambda tmp: write_bioformats_ometiff(tmp / "m.ome.tif", images=2,
                                                                slices=1, times=1)[0],
                           "ome_tiff", "(2 images, C2 each)"),
    "bio-formats set folder": (lambda tmp: write_bioformats_ometiff(
        tmp / "set" / "m.ome.tif", images=2, slices=1, times=1, multifile=True)[0].parent,
        "ome_tiff", "(2 images in 2 files, C2 each)"),
    "tifffile ome-tiff": (lambda tmp: write_tifffile_ometiff(tmp / "t.ome.tif"), "ome_tiff",
                          "OME-TIFF written by tifffile.py"),
    "ome-tiff named .tif": (lambda tmp: _renamed(write_tifffile_ometiff(tmp / "t.ome.tif"),
                                                 "t.tif"), "ome_tiff", "(1 image, T2 C2 Z3)"),
    "fiji image sequence": (lambda tmp: write_fiji_image_sequence(tmp / "seq", count=3)[0].parent,
                            "image_sequence", "image sequence (3 files, along z)"),
}


def _single_page(path):
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), metadata=None)
    return path


def _plain_stack(path):
    tifffile.imwrite(path, np.zeros((3, 8, 8), np.uint16), metadata=None, photometric="minisblack")
    return path


def _renamed(path, name):
    return path.rename(path.with_name(name))


@pytest.mark.parametrize("structure", sorted(STRUCTURES))
def test_auto_picks_the_format_and_the_upload_says_so(run_cli, upload_files, tmp_path, structure):
    make, expected_format, kind = STRUCTURES[structure]
    source = make(tmp_path)
    result = upload(run_cli, upload_files, source)
    assert result.exit_code == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "frames_format auto chose" in line]
    assert len(notes) == 1 and notes[0].endswith(f"frames_format auto chose {expected_format}")
    assert kind in notes[0], notes[0]


def test_one_image_ome_tiff_is_ome_tiffs_likely_and_tif_ids_possible(tmp_path):
    [path] = write_bioformats_ometiff(tmp_path / "b.ome.tif", slices=1, times=1)
    made = {claim.format: claim.certainty for claim in plugins.claims(path)}
    assert made == {"ome_tiff": LIKELY, "tif_id": POSSIBLE}


def test_several_images_are_not_claimed_by_tif_id(tmp_path):
    [path] = write_bioformats_ometiff(tmp_path / "b.ome.tif", images=2, slices=1, times=1)
    assert tif_id.claim_source(path) is None


def test_a_folder_of_numbered_files_with_micromanager_tags_is_not_a_sequence(tmp_path):
    folder = tmp_path / "mm"
    folder.mkdir()
    for z in range(2):
        tifffile.imwrite(folder / f"img_{z:09d}.tif", np.zeros((8, 8), np.uint16),
                         extratags=[(51123, "s", 0, '{"SliceIndex": %d}' % z, True)])
    assert image_sequence.claim_source(folder) is None


def _named_files(folder, names):
    folder.mkdir()
    for name in names:
        tifffile.imwrite(folder / name, np.zeros((8, 8), np.uint8), metadata=None)
    return folder


@pytest.mark.parametrize("names", [
    [f"im_c000_z{z:03d}_t000_p000.tif" for z in range(3)],  # the original imagingDB's axis letters
    [f"0000_{z:04d}_0000_0000.tif" for z in range(3)],  # its four integers: c, z, t, p
], ids=["axis letters", "four integers"])
def test_the_original_imagingdbs_names_are_tif_folders_alone(tmp_path, names):
    folder = _named_files(tmp_path / "im", names)
    assert image_sequence.claim_source(folder) is None
    assert plugins.choose_format(folder).format == "tif_folder"


@pytest.mark.parametrize("prefix", ["sample2_z", "t1-head", "exp_20240101_"])
def test_digits_in_a_fiji_title_still_make_an_image_sequence(tmp_path, prefix):
    folder = _named_files(tmp_path / "seq", [f"{prefix}{z:04d}.tif" for z in range(3)])
    claim = plugins.choose_format(folder)
    assert (claim.format, claim.certainty) == ("image_sequence", LIKELY)


def _junk(tmp_path) -> list[Path]:
    text = tmp_path / "notes.tif"
    text.write_text("not a tiff")
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a1.tif").write_bytes(b"II*\x00garbage")
    (folder / "a2.tif").write_bytes(b"")
    bad_xml = tmp_path / "bad.ome.tif"
    tifffile.imwrite(bad_xml, np.zeros((8, 8), np.uint8), metadata=None,
                     description="<?xml version='1.0'?><OME><Image")
    return [text, empty, folder, bad_xml, tmp_path / "absent.tif", tmp_path]


@pytest.mark.parametrize("claim", [tif_id.claim_source, image_sequence.claim_source,
                                   ome_xml.claim_generic_ome])
def test_claims_never_raise_on_what_they_cannot_read(tmp_path, claim):
    for source in _junk(tmp_path):
        made = claim(source)
        assert made is None or made.format in ("tif_id", "ome_tiff", "image_sequence")


def test_damaged_ome_xml_is_still_ome_tiffs_so_its_reader_explains(tmp_path):
    bad = [path for path in _junk(tmp_path) if path.name == "bad.ome.tif"][0]
    claim = ome_xml.claim_generic_ome(bad)
    assert claim is not None and claim.format == "ome_tiff" and "damaged" in claim.kind


def test_an_inconsistent_imagej_header_is_still_tif_ids_so_its_reader_explains(tmp_path):
    path = tmp_path / "six.tif"
    tifffile.imwrite(path, np.zeros((6, 8, 8), np.uint16), metadata=None,
                     description="ImageJ=1.54f\nimages=6\nchannels=2\nslices=2\n")
    claim = tif_id.claim_source(path)
    assert claim.format == "tif_id" and claim.certainty == LIKELY
    assert "its header is inconsistent" in claim.kind
