"""Every Micro-Manager structure uploads with the indexes, names and labels it recorded.

Sources come from imagingdb.testing's writers (which reproduce what 1.4 and 2.0
write, see tests/test_mm_structures.py); every stored pixel is compared with
what tifffile reads from the source file itself, placed by an index read
independently of imagingdb (the page's MicroManagerMetadata, or the file name
parsed here). The upload config leaves frames_format out, so each source is
also a test of the claims that choose the splitter.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import tifffile

from imagingdb.testing import (
    cut_metadata_txt,
    write_mm_ometiff,
    write_mm_position_folders,
    write_mm_tif_folder,
)
from tests.conftest import DATASET_ID, Site
from tests.helpers import assert_refused, source_frames

CHANNELS = ("DAPI", "GFP")
HCS_LABELS = ("1-Pos_000_000", "1-Pos_001_000", "1-Pos_001_001", "1-Pos_000_001")


@pytest.fixture
def local_site(isolated_home) -> Site:
    return Site("sqlite", isolated_home / "storage", None)


def upload(run_cli, upload_files, source, **config):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    config = upload_files.config(upload_type="frames", microscope="scope2", **config)
    return run_cli("upload", "--csv", csv_path, "--config", config, "--format", "json")


def stored():
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # missing frames are filled; checked separately
            array = ds.read()
        dims = ds.dims
        return {"sizes": (dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints,
                          dims.nbr_positions),
                "names": list(ds.channel_names().values()), "meta": ds.global_meta,
                "array": array, "frames": ds.frames(), "missing": ds.missing_frames()}


def assert_uploaded_as(result, kind, splitter):
    assert result.exit_code == 0, result.stderr
    assert f"{DATASET_ID}: {kind}; frames_format auto chose {splitter}" in result.stderr
    (row,) = result.json()
    assert row["format"] == splitter


def assert_every_pixel(array, expected):
    """``expected``: (channel, slice, time, position) -> pixels read from the source."""
    assert expected
    for (c, z, t, p), pixels in expected.items():
        np.testing.assert_array_equal(array[p, t, c, z], pixels, err_msg=str((c, z, t, p)))


# Independent readers of image-file names: the axis words of 2.0, the pattern of 1.4.
def name_index(name, channels=CHANNELS):
    words = dict((w, int(n)) for w, n in re.findall(r"(channel|position|time|z)(\d+)", name))
    if words:
        return (words.get("channel", 0), words.get("z", 0), words.get("time", 0),
                words.get("position", 0))
    _, time, channel, slice_ = name[:-len(".tif")].split("_")
    return channels.index(channel), int(slice_), int(time), 0


def image_files(files_by_position):
    return {(*name_index(path.name)[:3], position): tifffile.imread(path)
            for position, files in files_by_position.items() for path in files}


# ---------------------------------------------------------------- OME-TIFF


@pytest.mark.parametrize("version", ["1.4", "2.0"])
def test_ometiff_positions_follow_their_labels_not_the_file_names(
        local_site, run_cli, upload_files, tmp_path, version):
    # Sorted by name the files are positions 0, 3, 1, 2: only the metadata knows.
    folder = tmp_path / "hcs"
    files = write_mm_ometiff(folder, "plate", version=version, channels=("Cy5", "DAPI"),
                             slices=2, times=2, positions=4, height=16, width=12,
                             position_labels=HCS_LABELS, slices_first=True, seed=4)
    result = upload(run_cli, upload_files, folder)
    assert_uploaded_as(result, f"Micro-Manager {version} OME-TIFF (4 files)", "ome_tiff")
    got = stored()
    assert got["sizes"] == (2, 2, 2, 4) and got["names"] == ["Cy5", "DAPI"]
    assert got["meta"]["position_labels"] == {str(p): label for p, label in enumerate(HCS_LABELS)}
    assert_every_pixel(got["array"], source_frames(folder))
    by_position = {f["pos_idx"]: f["metadata_json"]["PositionName"] for f in got["frames"]}
    assert by_position == dict(enumerate(HCS_LABELS))
    assert len(files) == 4 and got["missing"] == []


@pytest.mark.parametrize("version", ["1.4", "2.0"])
def test_ometiff_rollover_files_continue_their_position(local_site, run_cli, upload_files,
                                                        tmp_path, version):
    folder = tmp_path / "long"
    files = write_mm_ometiff(folder, "long", version=version, channels=CHANNELS, slices=3,
                             times=2, positions=2, height=12, width=10, max_pages_per_file=5,
                             seed=5)
    assert len(files) == 6  # Pos0, Pos0_1, Pos0_2, Pos1...
    result = upload(run_cli, upload_files, folder)
    assert_uploaded_as(result, f"Micro-Manager {version} OME-TIFF (6 files)", "ome_tiff")
    got = stored()
    assert got["sizes"] == (2, 3, 2, 2) and got["names"] == list(CHANNELS)
    assert_every_pixel(got["array"], source_frames(folder))
    assert len(got["frames"]) == 24


def test_ometiff_keeps_the_whole_ome_xml_of_the_dataset(local_site, run_cli, upload_files,
                                                        tmp_path):
    folder = tmp_path / "acq"
    files = write_mm_ometiff(folder, "acq", version="2.0", positions=3, slices=4, times=2,
                             height=8, width=8, max_pages_per_file=7)
    with tifffile.TiffFile(files[0]) as tif:
        full = tif.pages[0].description
    assert len(full) > 10_000  # long enough that any cut would show
    # A single file of another position holds only a pointer, which is followed.
    assert upload(run_cli, upload_files, folder / "acq_MMStack_Pos2.ome.tif").exit_code == 0
    meta = stored()["meta"]
    assert meta["ome_xml"] == full
    assert meta["IntendedDimensions"] == {"time": 2, "position": 3, "z": 4, "channel": 2}


def test_ometiff_file_whose_pointer_leads_nowhere_keeps_it_and_says_so(
        local_site, run_cli, upload_files, tmp_path):
    files = write_mm_ometiff(tmp_path / "acq", "acq", positions=2, slices=1, times=1,
                             height=8, width=8)
    files[0].unlink()  # the file holding the full OME-XML
    result = upload(run_cli, upload_files, files[1])
    assert result.exit_code == 0, result.stderr
    assert (f"Warning: {DATASET_ID}: acq_MMStack_Pos1.ome.tif: its OME-XML points to "
            "acq_MMStack_Pos0.ome.tif, which is not in the folder") in result.stderr
    assert "<BinaryOnly" in stored()["meta"]["ome_xml"]


def test_ometiff_renamed_to_another_position_is_refused(local_site, run_cli, upload_files,
                                                        tmp_path):
    files = write_mm_ometiff(tmp_path / "acq", "acq", positions=2, slices=1, times=1,
                             height=8, width=8)
    renamed = files[1].rename(files[1].with_name("acq_MMStack_Pos7.ome.tif"))
    before = local_site.snapshot()
    result = upload(run_cli, upload_files, renamed, frames_format="ome_tiff")
    assert_refused(result, local_site, before, contains=(
        "acq_MMStack_Pos7.ome.tif: the file name says position 'Pos7' but",
        "page 0's MicroManagerMetadata says PositionName 'Pos1'"))


def test_ometiff_folder_of_two_acquisitions_is_refused(local_site, run_cli, upload_files,
                                                       tmp_path):
    """A's Pos1 was not copied, B's Pos1 was: B's frames would become A's position 1."""
    folder = tmp_path / "mixed"
    for name, channels in (("A", ("DAPI", "GFP")), ("B", ("Cy5", "FITC"))):
        write_mm_ometiff(folder, name, channels=channels, slices=3, times=2, positions=2,
                         height=8, width=8)
    (folder / "A_MMStack_Pos1.ome.tif").unlink()
    (folder / "B_MMStack_Pos0.ome.tif").unlink()
    before = local_site.snapshot()
    result = upload(run_cli, upload_files, folder)
    assert_refused(result, local_site, before, contains=(
        f"{folder}: A_MMStack_Pos0.ome.tif and B_MMStack_Pos1.ome.tif are files of two "
        "Micro-Manager acquisitions (their file names' prefixes A and B differ); upload each "
        "acquisition as its own CSV row",))


@pytest.mark.parametrize("version, second_run, differs", [
    ("1.4", {"seed": 1}, "UUID"),  # 1.4 gives each acquisition its own UUID
    ("2.0", {"channels": ("Cy5", "FITC")}, "ChNames"),
])
def test_ometiff_folder_of_two_acquisitions_with_one_prefix_is_refused(
        local_site, run_cli, upload_files, tmp_path, version, second_run, differs):
    folder = tmp_path / "runs"
    write_mm_ometiff(folder, "run", version=version, **{**dict(
        channels=CHANNELS, slices=1, times=1, positions=2, height=8, width=8), **second_run})
    (folder / "run_MMStack_Pos0.ome.tif").rename(tmp_path / "second_run_Pos0.ome.tif")
    write_mm_ometiff(folder, "run", version=version, channels=CHANNELS, slices=1, times=1,
                     positions=2, height=8, width=8)
    (tmp_path / "second_run_Pos0.ome.tif").replace(folder / "run_MMStack_Pos0.ome.tif")
    before = local_site.snapshot()
    result = upload(run_cli, upload_files, folder)
    assert_refused(result, local_site, before, contains=(
        "run_MMStack_Pos0.ome.tif and run_MMStack_Pos1.ome.tif are files of two Micro-Manager "
        f"acquisitions (their summaries' {differs} differ)",))


def long_acquisition(folder):
    """2 positions of 12 pages, 5 per file: Pos0, Pos0_1, Pos0_2, Pos1, Pos1_1, Pos1_2."""
    return write_mm_ometiff(folder, "long", channels=CHANNELS, slices=3, times=2, positions=2,
                            height=8, width=8, max_pages_per_file=5)


@pytest.mark.parametrize("source", ["long", "long/long_MMStack_Pos0.ome.tif"])
def test_ometiff_missing_rollover_file_is_refused_by_name(local_site, run_cli, upload_files,
                                                          tmp_path, source):
    long_acquisition(tmp_path / "long")
    (tmp_path / "long" / "long_MMStack_Pos0_1.ome.tif").unlink()
    before = local_site.snapshot()
    result = upload(run_cli, upload_files, tmp_path / source)
    assert_refused(result, local_site, before, contains=(
        "long_MMStack_Pos0_1.ome.tif is missing: Micro-Manager continues a position's pages in "
        "long_MMStack_Pos0_1.ome.tif, _2..., and long_MMStack_Pos0_2.ome.tif is there; copy "
        f"every file of the acquisition into {tmp_path / 'long'}",))


def test_ometiff_position_labels_ending_in_a_number_are_no_rollover_files(
        local_site, run_cli, upload_files, tmp_path):
    """cell_1 and cell_2 are positions (the summary lists them), not continuations of "cell"."""
    folder = tmp_path / "cells"
    files = write_mm_ometiff(folder, "cells", channels=CHANNELS, slices=3, times=2, positions=2,
                             height=8, width=8, max_pages_per_file=5,
                             position_labels=("cell_1", "cell_2"))
    assert files[1].name == "cells_MMStack_cell_1_1.ome.tif"
    result = upload(run_cli, upload_files, folder)
    assert_uploaded_as(result, "Micro-Manager 1.4 OME-TIFF (6 files)", "ome_tiff")
    got = stored()
    assert got["meta"]["position_labels"] == {"0": "cell_1", "1": "cell_2"}
    assert_every_pixel(got["array"], source_frames(folder))


@pytest.mark.parametrize("deleted", [
    ["long_MMStack_Pos0_2.ome.tif"],  # the last of a position's files: no gap shows
    ["long_MMStack_Pos1.ome.tif", "long_MMStack_Pos1_1.ome.tif", "long_MMStack_Pos1_2.ome.tif"],
])
def test_ometiff_folder_missing_a_file_its_ome_xml_names_is_refused(
        local_site, run_cli, upload_files, tmp_path, deleted):
    folder = tmp_path / "long"
    long_acquisition(folder)
    for name in deleted:
        (folder / name).unlink()
    before = local_site.snapshot()
    result = upload(run_cli, upload_files, folder)
    assert_refused(result, local_site, before, contains=(
        f"{folder}: {deleted[0]} is missing, though the acquisition's OME-XML names it; copy "
        "every file of the acquisition into the folder (or leave its position out with the "
        "CSV positions column)",))


def test_ometiff_folder_without_the_file_holding_the_ome_xml_is_refused(
        local_site, run_cli, upload_files, tmp_path):
    """Pos1's files point at Pos0_2, where the whole OME-XML is."""
    folder = tmp_path / "long"
    for path in long_acquisition(folder)[:3]:
        path.unlink()
    before = local_site.snapshot()
    result = upload(run_cli, upload_files, folder)
    assert_refused(result, local_site, before, contains=(
        "long_MMStack_Pos0_2.ome.tif is missing, though the acquisition's OME-XML names it",))


@pytest.mark.parametrize("deleted", [
    ["long_MMStack_Pos1_2.ome.tif"],
    ["long_MMStack_Pos1.ome.tif", "long_MMStack_Pos1_1.ome.tif", "long_MMStack_Pos1_2.ome.tif"],
])
def test_ometiff_files_of_positions_left_out_need_not_be_there(local_site, run_cli, upload_files,
                                                               tmp_path, deleted):
    folder = tmp_path / "long"
    long_acquisition(folder)
    expected = {index: pixels for index, pixels in source_frames(folder).items()
                if index[3] == 0}
    for name in deleted:
        (folder / name).unlink()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(folder),
                                  "positions": "[0]"}])
    result = run_cli("upload", "--csv", csv_path, "--config",
                     upload_files.config(upload_type="frames", microscope="scope2"))
    assert result.exit_code == 0, result.stderr
    assert "Warning:" not in result.stderr
    got = stored()
    assert len(got["frames"]) == 12
    assert_every_pixel(got["array"], expected)


# ------------------------------------------------------------- image files


@pytest.mark.parametrize("version", ["1.4", "2.0"])
def test_image_files_in_position_folders(local_site, run_cli, upload_files, tmp_path, version):
    folder = tmp_path / "acq"
    written = write_mm_position_folders(folder, version=version, positions=(0, 1, 2),
                                        position_labels=("A1-Site_0", "A1-Site_1", "B2-Site_0"),
                                        channels=CHANNELS, slices=3, times=2, height=10,
                                        width=8, seed=6)
    result = upload(run_cli, upload_files, folder)
    assert_uploaded_as(result, f"Micro-Manager {version} image-file acquisition "
                               "(3 position folders)", "tif_folder")
    got = stored()
    assert got["sizes"] == (2, 3, 2, 3) and got["names"] == list(CHANNELS)
    assert got["meta"]["position_labels"] == {"0": "A1-Site_0", "1": "A1-Site_1", "2": "B2-Site_0"}
    assert_every_pixel(got["array"], image_files(written))


def test_micromanager_2_z_stack_inside_its_position_folder_is_a_z_stack(
        local_site, run_cli, upload_files, tmp_path):
    """The issue's case: a 2.0 Pos0/ folder holding z000, z001, z002 (no metadata.txt),
    once refused as "file name says position 1"."""
    folder = tmp_path / "acq"
    written = write_mm_position_folders(folder, version="2.0", positions=(0,), channels=("BF",),
                                        slices=3, times=1, height=8, width=8,
                                        metadata_txt=False)
    assert [p.name for p in written[0]][1] == "img_channel000_position000_time000000000_z001.tif"
    result = upload(run_cli, upload_files, folder / "Pos0")
    assert_uploaded_as(result, "Micro-Manager 2.0 image-file acquisition (3 files)", "tif_folder")
    got = stored()
    assert got["sizes"] == (1, 3, 1, 1)
    assert_every_pixel(got["array"], image_files(written))


@pytest.mark.parametrize("version", ["1.4", "2.0"])
def test_flat_image_files(local_site, run_cli, upload_files, tmp_path, version):
    folder = tmp_path / "flat"
    files = write_mm_tif_folder(folder, version=version, channels=CHANNELS, slices=2, times=3,
                                height=8, width=6, seed=7)
    result = upload(run_cli, upload_files, folder)
    assert_uploaded_as(result, f"Micro-Manager {version} image-file acquisition (12 files)",
                       "tif_folder")
    got = stored()
    assert got["sizes"] == (2, 2, 3, 1) and got["names"] == list(CHANNELS)
    assert_every_pixel(got["array"], image_files({0: files}))
    frame = next(f for f in got["frames"] if (f["channel_idx"], f["slice_idx"], f["time_idx"])
                 == (1, 1, 2))["metadata_json"]
    assert (frame["ChannelIndex"], frame["SliceIndex"], frame["FrameIndex"]) == (1, 1, 2)
    assert frame["ImageWidth"] == 6  # the TIFF tags, with Micro-Manager's keys at the top


def test_micromanager_2_names_with_only_the_axes_used(local_site, run_cli, upload_files,
                                                      tmp_path):
    folder = tmp_path / "timelapse"
    files = write_mm_tif_folder(folder, version="2.0", channels=("BF",), slices=2, times=3,
                                height=6, width=6, axes=("time", "z"), metadata_txt=False)
    assert files[0].name == "img_time000000000_z000.tif"
    assert upload(run_cli, upload_files, folder).exit_code == 0
    got = stored()
    assert got["sizes"] == (1, 2, 3, 1)
    assert_every_pixel(got["array"], image_files({0: files}))


def test_four_integer_names_are_claimed_likely_and_read_by_their_letters(
        local_site, run_cli, upload_files, tmp_path):
    folder = tmp_path / "original"
    folder.mkdir()
    expected = {}
    for c, z, t, p in [(0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 1, 0), (1, 1, 1, 0)]:
        pixels = np.full((4, 5), 10 * c + z, np.uint16)
        # letters in another order than the original's c, z, t, p: read by letter
        tifffile.imwrite(folder / f"im_t{t:03d}_c{c:03d}_z{z:03d}_p{p:03d}.tif", pixels)
        expected[c, z, t, p] = pixels
    result = upload(run_cli, upload_files, folder)
    assert_uploaded_as(result, "folder of TIFF files (4 files)", "tif_folder")
    assert_every_pixel(stored()["array"], expected)


def keep_only_pixels(files_by_position):
    """What a tool that keeps only the pixels leaves: no metadata.txt, and images without
    Micro-Manager's JSON (ImageJ Info)."""
    for files in files_by_position.values():
        (files[0].parent / "metadata.txt").unlink()
        for path in files:
            tifffile.imwrite(path, tifffile.imread(path))


@pytest.mark.parametrize("version", ["1.4", "2.0"])
def test_position_folders_without_metadata_are_placed_by_their_pos_names(
        local_site, run_cli, upload_files, tmp_path, version):
    """Pos1 was skipped: Pos2 is the second folder, and stays position 2."""
    folder = tmp_path / "acq"
    written = write_mm_position_folders(folder, version=version, positions=(0, 2),
                                        nbr_positions=3, channels=CHANNELS, slices=1, times=2,
                                        height=6, width=6, seed=13)
    expected = image_files(written)
    keep_only_pixels(written)
    result = upload(run_cli, upload_files, folder)
    assert_uploaded_as(result, f"Micro-Manager {version} image-file acquisition "
                               "(2 position folders)", "tif_folder")
    got = stored()
    assert got["meta"]["position_folders"] == {"0": "Pos0", "2": "Pos2"}
    assert sorted({f["pos_idx"] for f in got["frames"]}) == [0, 2]
    # read() gives the positions stored, in order: position 2 is the second
    assert_every_pixel(got["array"], {(c, z, t, [0, 2].index(p)): pixels
                                      for (c, z, t, p), pixels in expected.items()})


def test_label_folders_without_metadata_are_refused(local_site, run_cli, upload_files,
                                                    tmp_path):
    """1.4 names hold no position and the labels' list went with metadata.txt: sorted by
    name, Alpha, Mid, Zeta would be positions 0, 1, 2 instead of 1, 2, 0."""
    folder = tmp_path / "acq"
    written = write_mm_position_folders(folder, positions=(0, 1, 2),
                                        position_labels=("Zeta", "Alpha", "Mid"),
                                        channels=CHANNELS, slices=3, times=2, height=6, width=6)
    keep_only_pixels(written)
    before = local_site.snapshot()
    result = upload(run_cli, upload_files, folder)
    assert_refused(result, local_site, before, contains=(
        f"{folder / 'Alpha'}: nothing says which position this folder is",
        "keep each position folder's metadata.txt, or upload each position folder as its own "
        "dataset"))


def test_label_folders_without_metadata_are_placed_by_their_file_names(
        local_site, run_cli, upload_files, tmp_path):
    """2.0 names hold the position (img_..._position001_...)."""
    folder = tmp_path / "acq"
    written = write_mm_position_folders(folder, version="2.0", positions=(0, 1, 2),
                                        position_labels=("Zeta", "Alpha", "Mid"),
                                        channels=CHANNELS, slices=1, times=2, height=6, width=6)
    expected = image_files(written)
    keep_only_pixels(written)
    result = upload(run_cli, upload_files, folder)
    assert result.exit_code == 0, result.stderr
    got = stored()
    assert got["meta"]["position_folders"] == {"0": "Zeta", "1": "Alpha", "2": "Mid"}
    assert_every_pixel(got["array"], expected)


def test_a_pos_folder_given_alone_without_metadata_keeps_its_position(
        local_site, run_cli, upload_files, tmp_path):
    folder = tmp_path / "acq"
    written = write_mm_position_folders(folder, positions=(2,), channels=CHANNELS, slices=1,
                                        times=2, height=6, width=6)
    keep_only_pixels(written)
    assert upload(run_cli, upload_files, folder / "Pos2").exit_code == 0
    assert {f["pos_idx"] for f in stored()["frames"]} == {2}


# ------------------------------------------------- a metadata.txt cut short


@pytest.mark.parametrize("version", ["1.4", "2.0"])
@pytest.mark.parametrize("half_of_next", [True, False])
def test_cut_metadata_txt_keeps_its_entries_and_warns(local_site, run_cli, upload_files,
                                                      tmp_path, version, half_of_next):
    folder = tmp_path / "Pos0"
    files = write_mm_tif_folder(folder, version=version, channels=CHANNELS, slices=2, times=2,
                                height=8, width=8, seed=8)
    entries_per_image = 1 if version == "1.4" else 2  # 2.0: Coords- and Metadata- entries
    kept_images = 3
    cut_metadata_txt(folder / "metadata.txt", keep_entries=1 + kept_images * entries_per_image,
                     half_of_next=half_of_next)
    result = upload(run_cli, upload_files, folder)
    assert result.exit_code == 0, result.stderr
    entries = 1 + kept_images * entries_per_image
    inside = ", inside entry" if half_of_next else " (the"
    warning = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warning) == 1 and warning[0].startswith(
        f"Warning: {DATASET_ID}: metadata.txt: cut after entry {entries}{inside}")
    assert (f"(the acquisition stopped or is still running); {kept_images} image entries kept, "
            "the rest read from the files' names/tags") in warning[0]
    assert result.json()[0]["warnings"] == [warning[0].split(f"{DATASET_ID}: ", 1)[1]]
    got = stored()
    # the Summary survived: its sizes and channel names hold
    assert got["sizes"] == (2, 2, 2, 1) and got["names"] == list(CHANNELS)
    assert_every_pixel(got["array"], image_files({0: files}))


def test_cut_metadata_txt_entries_place_the_images_they_describe(local_site, run_cli,
                                                                 upload_files, tmp_path):
    """The images here carry no metadata of their own (as the real 2.0 alpha file's lacks
    indexes): the kept entries place theirs and give their metadata, names the rest."""
    folder = tmp_path / "Pos0"
    files = write_mm_tif_folder(folder, version="2.0", channels=CHANNELS, slices=1, times=2,
                                height=6, width=6)
    for path in files:  # rewritten by a tool that kept only the pixels
        tifffile.imwrite(path, tifffile.imread(path))
    cut_metadata_txt(folder / "metadata.txt", keep_entries=5)  # Summary + two images
    lost = files[2:]  # c0 t1 and c1 t1; by name c0 t0 (kept) comes first, then c0 t1
    result = upload(run_cli, upload_files, folder, filename_parser="parse_sms_name")
    assert result.exit_code == 2  # the sms parser cannot read 2.0 names; kept entries need none
    assert f"{lost[0]}: parse_sms_name cannot parse the file name" in result.errors[0]
    result = upload(run_cli, upload_files, folder)  # ...the default parser can
    assert result.exit_code == 0, result.stderr
    assert "2 image entries kept" in result.stderr
    got = stored()
    assert_every_pixel(got["array"], image_files({0: files}))
    exposures = {(f["channel_idx"], f["time_idx"]): f["metadata_json"].get("Exposure-ms")
                 for f in got["frames"]}
    assert exposures == {(0, 0): 50.0, (1, 0): 100.0, (0, 1): None, (1, 1): None}


def test_metadata_txt_cut_inside_its_summary_is_read_from_the_images(
        local_site, run_cli, upload_files, tmp_path):
    folder = tmp_path / "Pos0"
    files = write_mm_tif_folder(folder, version="1.4", channels=CHANNELS, slices=1, times=2,
                                height=6, width=6)
    text = (folder / "metadata.txt").read_text()
    (folder / "metadata.txt").write_text(text[:text.index('"ChNames"')])
    result = upload(run_cli, upload_files, folder)
    assert result.exit_code == 0, result.stderr
    assert ("metadata.txt: cut after entry 0, inside entry 1 'Summary' (the acquisition "
            "stopped") in result.stderr
    assert "its Summary is lost with it" in result.stderr
    got = stored()
    assert got["sizes"] == (2, 1, 2, 1) and got["names"] == list(CHANNELS)
    assert_every_pixel(got["array"], image_files({0: files}))


# ------------------------------------------------------------- bad input


def test_image_file_name_contradicting_its_entry_is_refused(local_site, run_cli, upload_files,
                                                           tmp_path):
    """A 2.0 z001 renamed z007, its metadata.txt entry following the name: the entry still
    says slice 1."""
    folder = tmp_path / "acq" / "Pos0"
    write_mm_tif_folder(folder, version="2.0", channels=("BF",), slices=3, times=1, height=6,
                        width=6, position_folder="Pos0")
    old = "img_channel000_position000_time000000000_z001.tif"
    new = "img_channel000_position000_time000000000_z007.tif"
    (folder / old).rename(folder / new)
    text = (folder / "metadata.txt").read_text()
    (folder / "metadata.txt").write_text(text.replace(old, new))
    before = local_site.snapshot()
    result = upload(run_cli, upload_files, folder, frames_format="tif_folder")
    assert_refused(result, local_site, before, contains=(
        f"{new}: the file name says slice 7 but", f"metadata.txt entry 'Coords-Pos0/{new}' / "
        f"'Metadata-Pos0/{new}' says slice 1"))


def test_position_folder_whose_images_record_two_positions_is_refused(
        local_site, run_cli, upload_files, tmp_path):
    folder = tmp_path / "acq"
    write_mm_position_folders(folder, positions=(0, 1), channels=CHANNELS, slices=1, times=1,
                              height=6, width=6)
    text = (folder / "Pos0" / "metadata.txt").read_text()
    at = text.index('"PositionIndex": 0', text.index('"FrameKey-0-1-0"'))
    (folder / "Pos0" / "metadata.txt").write_text(text[:at] + '"PositionIndex": 1'
                                                  + text[at + 18:])
    before = local_site.snapshot()
    result = upload(run_cli, upload_files, folder, frames_format="tif_folder")
    assert_refused(result, local_site, before, contains=(
        "Pos0: its images record positions 0, 1; a position folder holds one position",))


def test_position_folder_named_after_another_position_is_refused(local_site, run_cli,
                                                                 upload_files, tmp_path):
    folder = tmp_path / "acq"
    write_mm_position_folders(folder, positions=(0, 1), channels=("BF",), slices=1, times=1,
                              height=6, width=6)
    (folder / "Pos1").rename(folder / "Pos2")  # the 1.4 summary lists Pos0, Pos1
    text = (folder / "Pos0" / "metadata.txt").read_text()
    listed = json.loads(text)["Summary"]["InitialPositionList"]
    listed.append(dict(listed[0], Label="Pos2"))
    for name in ("Pos0", "Pos2"):
        data = json.loads((folder / name / "metadata.txt").read_text())
        data["Summary"]["InitialPositionList"] = listed
        (folder / name / "metadata.txt").write_text(json.dumps(data))
    before = local_site.snapshot()
    result = upload(run_cli, upload_files, folder, frames_format="tif_folder")
    assert_refused(result, local_site, before, contains=(
        "Pos2: the PositionIndex its images record says position 1 but the folder name "
        "'Pos2' in the summary's position list says 2",))


def test_metadata_txt_damaged_before_its_end_is_refused(local_site, run_cli, upload_files,
                                                        tmp_path):
    folder = tmp_path / "Pos0"
    write_mm_tif_folder(folder, channels=CHANNELS, slices=1, times=1, height=6, width=6)
    text = (folder / "metadata.txt").read_text()
    (folder / "metadata.txt").write_text(text.replace('"FrameKey-0-1-0": {',
                                                      '"FrameKey-0-1-0": {{', 1))
    before = local_site.snapshot()
    result = upload(run_cli, upload_files, folder)
    assert_refused(result, local_site, before, contains=(
        str(folder / "metadata.txt"), "is not valid JSON", "before its end (not a cut file)"))


def test_missing_metadata_txt_is_accepted_without_warning(local_site, run_cli, upload_files,
                                                          tmp_path):
    folder = tmp_path / "Pos0"
    write_mm_tif_folder(folder, channels=CHANNELS, slices=2, times=1, height=6, width=6,
                        metadata_txt=False)
    result = upload(run_cli, upload_files, folder)
    assert result.exit_code == 0, result.stderr
    assert "Warning:" not in result.stderr
    assert stored()["sizes"] == (2, 2, 1, 1)


def test_aborted_ometiff_records_the_frames_never_acquired(local_site, run_cli, upload_files,
                                                          tmp_path):
    folder = tmp_path / "stopped"
    write_mm_ometiff(folder, "stopped", channels=CHANNELS, slices=2, times=3, positions=2,
                     height=8, width=8, aborted_after=10, seed=9)
    result = upload(run_cli, upload_files, folder)
    assert_uploaded_as(result, "Micro-Manager 1.4 OME-TIFF (2 files)", "ome_tiff")
    got = stored()
    assert got["sizes"] == (2, 2, 3, 2) and len(got["frames"]) == 10
    assert len(got["missing"]) == 24 - 10
    expected = {}
    for path in sorted(folder.glob("*.ome.tif")):
        with tifffile.TiffFile(path) as tif:
            for page in tif.pages:
                tags = page.tags[51123].value  # None: a blank page ("NULL "), no image
                if tags is not None:
                    expected[tags["ChannelIndex"], tags["SliceIndex"], tags["FrameIndex"],
                             tags["PositionIndex"]] = page.asarray()
    assert len(expected) == 10
    assert_every_pixel(got["array"], expected)


def test_a_position_folder_given_alone_keeps_its_position(local_site, run_cli, upload_files,
                                                          tmp_path):
    """Images without metadata of their own in the Pos2 folder of a 1.4 acquisition whose
    metadata.txt was cut before their entries: its Summary's PositionIndex says where."""
    folder = tmp_path / "acq"
    written = write_mm_position_folders(folder, positions=(2,), nbr_positions=3, channels=CHANNELS,
                                        slices=1, times=2, height=6, width=6)
    for path in written[2]:
        tifffile.imwrite(path, tifffile.imread(path))  # pixels only
    cut_metadata_txt(folder / "Pos2" / "metadata.txt", keep_entries=2, half_of_next=False)
    assert upload(run_cli, upload_files, folder / "Pos2").exit_code == 0
    got = stored()
    assert {f["pos_idx"] for f in got["frames"]} == {2}
    # read() gives the positions stored: position 2 is the first
    assert_every_pixel(got["array"], {(*index[:3], 0): pixels for index, pixels
                                      in image_files({2: written[2]}).items()})


# ------------------------------------------------- copied from a Mac

#: the start of an AppleDouble file (magic, version, "Mac OS X" filler): resource fork and
#: Finder info, which macOS writes as ``._<name>`` beside each file copied to a non-Mac share
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02" + bytes(4070)


def leave_appledouble_files(folder):
    for path in sorted(folder.rglob("*")):
        (path.parent / f"._{path.name}").write_bytes(APPLEDOUBLE)


@pytest.mark.parametrize("version", ["1.4", "2.0"])
def test_ometiff_folder_copied_from_a_mac_leaves_out_its_appledouble_files(
        local_site, run_cli, upload_files, tmp_path, version):
    folder = tmp_path / "v14"
    write_mm_ometiff(folder, "v14", version=version, channels=CHANNELS, slices=2, times=1,
                     positions=2, height=8, width=8, max_pages_per_file=3, seed=10)
    expected = source_frames(folder)
    leave_appledouble_files(folder)  # ._v14_MMStack_Pos0.ome.tif sorts first
    result = upload(run_cli, upload_files, folder)
    assert_uploaded_as(result, f"Micro-Manager {version} OME-TIFF (4 files)", "ome_tiff")
    got = stored()
    assert got["meta"]["source_files"] == ["v14_MMStack_Pos0.ome.tif", "v14_MMStack_Pos0_1.ome.tif",
                                           "v14_MMStack_Pos1.ome.tif", "v14_MMStack_Pos1_1.ome.tif"]
    assert_every_pixel(got["array"], expected)


@pytest.mark.parametrize("version", ["1.4", "2.0"])
def test_image_files_copied_from_a_mac_leave_out_their_appledouble_files(
        local_site, run_cli, upload_files, tmp_path, version):
    flat = tmp_path / "flat"
    files = write_mm_tif_folder(flat, version=version, channels=CHANNELS, slices=2, times=1,
                                height=6, width=6, seed=11)
    leave_appledouble_files(flat)
    result = upload(run_cli, upload_files, flat)
    assert_uploaded_as(result, f"Micro-Manager {version} image-file acquisition (4 files)",
                       "tif_folder")
    assert_every_pixel(stored()["array"], image_files({0: files}))


def test_position_folders_copied_from_a_mac_leave_out_their_appledouble_files(
        local_site, run_cli, upload_files, tmp_path):
    folder = tmp_path / "acq"
    written = write_mm_position_folders(folder, positions=(0, 1), channels=CHANNELS, slices=1,
                                        times=2, height=6, width=6, seed=12)
    leave_appledouble_files(folder)  # ._Pos0 (a file) beside Pos0/, ._img_... inside it
    result = upload(run_cli, upload_files, folder)
    assert_uploaded_as(result, "Micro-Manager 1.4 image-file acquisition (2 position folders)",
                       "tif_folder")
    got = stored()
    assert got["meta"]["nbr_files"] == 8
    assert_every_pixel(got["array"], image_files(written))
