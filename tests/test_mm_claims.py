"""Which sources ome_tiff and tif_folder claim (the claim_source hook), and how surely."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from imagingdb import plugins
from imagingdb.acquisition import CERTAIN, LIKELY
from imagingdb.splitters import ome_tiff, tif_folder
from imagingdb.testing import write_mm_ometiff, write_mm_position_folders, write_mm_tif_folder


def small(**options):
    return dict(slices=1, times=1, height=4, width=4, **options)


def mm14_folder(tmp_path):
    write_mm_ometiff(tmp_path / "acq", "acq", positions=2, **small())
    return tmp_path / "acq"


def mm14_file_with_rollover(tmp_path):
    return write_mm_ometiff(tmp_path / "acq", "acq", positions=1, max_pages_per_file=1,
                            slices=3, times=1, height=4, width=4)[0]


def mm20_folder(tmp_path):
    write_mm_ometiff(tmp_path / "acq", "acq", version="2.0", positions=3, **small())
    return tmp_path / "acq"


def file_without_mm_header(tmp_path):
    return write_mm_ometiff(tmp_path / "acq", "acq", positions=1, file_header=False,
                            **small())[0]


def image_files_14(tmp_path):
    write_mm_tif_folder(tmp_path / "Pos0", **small())
    return tmp_path / "Pos0"


def image_files_20_positions(tmp_path):
    write_mm_position_folders(tmp_path / "acq", version="2.0", positions=(0, 1, 2), **small())
    return tmp_path / "acq"


def image_files_without_metadata_txt(tmp_path):
    write_mm_tif_folder(tmp_path / "Pos0", version="2.0", metadata_txt=False, **small())
    return tmp_path / "Pos0"


def summary_beside_other_names(tmp_path):
    folder = tmp_path / "renamed"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.zeros((4, 4), np.uint8))
    (folder / "metadata.txt").write_text('{\n"Summary": {"ChNames": ["BF"]}\n}\n')
    return folder


def four_integers(tmp_path):
    folder = tmp_path / "original"
    folder.mkdir()
    for p in range(2):
        tifffile.imwrite(folder / f"im_c000_z000_t000_p{p:03d}.tif", np.zeros((4, 4), np.uint8))
    return folder


@pytest.mark.parametrize("make_source, format, kind", [
    (mm14_folder, "ome_tiff", "Micro-Manager 1.4 OME-TIFF (2 files)"),
    (mm14_file_with_rollover, "ome_tiff", "Micro-Manager 1.4 OME-TIFF (6 files)"),
    (mm20_folder, "ome_tiff", "Micro-Manager 2.0 OME-TIFF (3 files)"),
    (file_without_mm_header, "ome_tiff", "Micro-Manager 1.4 OME-TIFF (1 file)"),
    (image_files_14, "tif_folder", "Micro-Manager 1.4 image-file acquisition (2 files)"),
    (image_files_20_positions, "tif_folder",
     "Micro-Manager 2.0 image-file acquisition (3 position folders)"),
    (image_files_without_metadata_txt, "tif_folder",
     "Micro-Manager 2.0 image-file acquisition (2 files)"),
    (summary_beside_other_names, "tif_folder", "Micro-Manager image-file acquisition (1 file)"),
])
def test_micromanager_sources_are_claimed_certain(tmp_path, make_source, format, kind):
    source = make_source(tmp_path)
    claims = [claim for claim in (ome_tiff.claim_source(source), tif_folder.claim_source(source))
              if claim is not None]
    assert [(claim.format, claim.kind, claim.certainty) for claim in claims] == [
        (format, kind, CERTAIN)]
    assert plugins.choose_format(source).format == format  # what frames_format auto uses


def test_four_integer_names_are_claimed_likely(tmp_path):
    source = four_integers(tmp_path)
    assert ome_tiff.claim_source(source) is None
    claim = tif_folder.claim_source(source)
    assert (claim.format, claim.certainty) == ("tif_folder", LIKELY)
    assert claim.kind == "folder of TIFF files named by four integers (2 files)"


def ndtiff_stack(tmp_path):
    """NDTiff carries Micro-Manager's page tags: its index file says it is NDTiff's."""
    folder = tmp_path / "nd"
    folder.mkdir()
    tag = json.dumps({"ChannelIndex": 0, "SliceIndex": 0, "FrameIndex": 0})
    tifffile.imwrite(folder / "nd_NDTiffStack.tif", np.zeros((4, 4), np.uint16),
                     extratags=[(51123, "s", 0, tag, True)])
    (folder / "NDTiff.index").write_bytes(b"\0" * 16)
    return folder


def image_sequence(tmp_path):
    folder = tmp_path / "sequence"
    folder.mkdir()
    for z in range(3):
        tifffile.imwrite(folder / f"c_elegans_em_z{z:04d}.tif", np.zeros((4, 4), np.uint8))
    return folder


def plain_stack(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 4, 4), np.uint8))
    return tmp_path / "stack.tif"


def text_named_ome_tif(tmp_path):
    (tmp_path / "notes.ome.tif").write_text("not an image")
    return tmp_path / "notes.ome.tif"


def empty_file(tmp_path):
    (tmp_path / "empty.ome.tif").write_bytes(b"")
    return tmp_path / "empty.ome.tif"


def truncated_header(tmp_path):
    source = write_mm_ometiff(tmp_path / "src", "x", positions=1, **small())[0]
    (tmp_path / "cut.ome.tif").write_bytes(source.read_bytes()[:30])
    return tmp_path / "cut.ome.tif"


def empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def broken_link(tmp_path):
    (tmp_path / "link.ome.tif").symlink_to(tmp_path / "nowhere")
    return tmp_path / "link.ome.tif"


def folder_of_folders_without_images(tmp_path):
    (tmp_path / "acq" / "Pos0").mkdir(parents=True)
    (tmp_path / "acq" / "Pos0" / "metadata.txt").write_text('{"Summary": {}}')
    return tmp_path / "acq"


@pytest.mark.parametrize("make_source", [
    ndtiff_stack, image_sequence, plain_stack, text_named_ome_tif, empty_file, truncated_header,
    empty_folder, broken_link, folder_of_folders_without_images,
])
def test_other_sources_are_not_claimed_and_never_raise(tmp_path, make_source):
    source = make_source(tmp_path)
    assert ome_tiff.claim_source(source) is None
    assert tif_folder.claim_source(source) is None


def test_an_ndtiff_file_given_alone_is_not_claimed(tmp_path):
    folder = ndtiff_stack(tmp_path)
    assert ome_tiff.claim_source(folder / "nd_NDTiffStack.tif") is None


def test_a_folder_of_ometiffs_is_not_a_folder_of_image_files(tmp_path):
    assert tif_folder.claim_source(mm14_folder(tmp_path)) is None


def test_claims_are_registered_through_the_plugin_hook(tmp_path):
    source = image_files_14(tmp_path)
    assert [(claim.format, claim.certainty) for claim in plugins.claims(source)][:1] == [
        ("tif_folder", CERTAIN)]
