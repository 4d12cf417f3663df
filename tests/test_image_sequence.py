"""The image_sequence splitter: Fiji's File > Save As > Image Sequence folders, and refusals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from imagingdb.acquisition import FrameIndex
from imagingdb.errors import MissingFramesWarning
from imagingdb.testing import write_fiji_image_sequence, write_mm_tif_folder
from tests.conftest import DATASET_ID
from tests.helpers import assert_refused
from tests.test_ome_xml import upload


def stored():
    """(dataset, (P, T, C, Z, Y, X) array of the indexes present, frames, missing frames)."""
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        ds.dims, ds.global_meta, ds.channel_names()  # loaded while connected
        frames = {FrameIndex(f["channel_idx"], f["slice_idx"], f["time_idx"], f["pos_idx"]):
                  f["metadata_json"] for f in ds.frames()}
        with warnings.catch_warnings():  # missing frames are checked through missing_frames()
            warnings.simplefilter("ignore", MissingFramesWarning)
            array = ds.read()
        return ds, array, frames, ds.missing_frames()


def test_fiji_image_sequence_is_a_z_stack_by_default(run_cli, upload_files, tmp_path):
    labels = [f"section {number}" for number in range(6)]
    files = write_fiji_image_sequence(tmp_path / "em", count=6, labels=labels, seed=21)
    result = upload(run_cli, upload_files, tmp_path / "em")
    assert ("image sequence (6 files, along z); frames_format auto chose image_sequence"
            in result.stderr), result.stderr
    ds, array, frames, missing = stored()
    assert (ds.dims.nbr_slices, ds.dims.nbr_timepoints, ds.dims.nbr_channels) == (6, 1, 1)
    assert missing == []
    for z, path in enumerate(files):
        np.testing.assert_array_equal(array[0, 0, 0, z], tifffile.imread(path))
        frame = frames[FrameIndex(0, z, 0, 0)]
        assert (frame["FileName"], frame["SequenceNumber"], frame["Label"]) == (
            path.name, z, labels[z])
    meta = ds.global_meta
    assert meta["file_name_pattern"] == "c_elegans_em_z<number>.tif"
    assert (meta["sequence_first_number"], meta["sequence_axis"]) == (0, "z")
    assert meta["image_description"] == {"ImageJ": "1.54f", "unit": ""}


def test_sequence_axis_t_makes_it_a_time_series(run_cli, upload_files, tmp_path):
    files = write_fiji_image_sequence(tmp_path / "movie", "img", count=4, seed=22)
    result = upload(run_cli, upload_files, tmp_path / "movie", sequence_axis="t")
    assert "image sequence (4 files, along t)" in result.stderr, result.stderr
    ds, array, _frames, _missing = stored()
    assert (ds.dims.nbr_slices, ds.dims.nbr_timepoints) == (1, 4)
    for t, path in enumerate(files):
        np.testing.assert_array_equal(array[0, t, 0, 0], tifffile.imread(path))


def test_numbers_are_indexes_from_the_first_and_gaps_stay_missing(run_cli, upload_files,
                                                                   tmp_path):
    """Numbered 1-6 (Start At 1), slices 3 and 4 never saved: z = number - 1, gaps kept."""
    files = write_fiji_image_sequence(tmp_path / "gaps", "img", count=6, start=1, digits=3,
                                      dtype="uint16", skip={2, 3}, seed=23)
    result = upload(run_cli, upload_files, tmp_path / "gaps")
    assert result.exit_code == 0, result.stderr
    assert "no file has number(s) 3, 4 of img<number>.tif: recorded as missing frames" in (
        result.stderr)
    ds, array, _frames, missing = stored()
    assert ds.dims.nbr_slices == 6 and missing == [FrameIndex(0, 2, 0, 0), FrameIndex(0, 3, 0, 0)]
    assert ds.global_meta["sequence_first_number"] == 1
    assert array.shape[3] == 6  # read() gives the intended grid, the gaps filled
    assert not array[0, 0, 0, 2].any() and not array[0, 0, 0, 3].any()
    for path in files:
        z = int(path.stem[3:]) - 1
        np.testing.assert_array_equal(array[0, 0, 0, z], tifffile.imread(path))


def test_digits_every_name_shares_are_not_the_number(run_cli, upload_files, tmp_path):
    files = write_fiji_image_sequence(tmp_path / "s", "embryo2_z", count=3, seed=24)
    assert upload(run_cli, upload_files, tmp_path / "s").exit_code == 0
    _ds, array, _frames, _missing = stored()
    for z, path in enumerate(files):
        np.testing.assert_array_equal(array[0, 0, 0, z], tifffile.imread(path))


AXIS_NAMES = [  # (prefix, digits, axis along which the files run, its letter)
    ("movie_t", 4, "time", "t"), ("cell_c", 1, "channel", "c"), ("well_p", 1, "position", "p"),
    ("stack-z", 2, "slice", "z"), ("time", 3, "time", "t"), ("Slice", 3, "slice", "z"),
    ("embryo_Frame", 4, "time", "t"), ("img_ch", 2, "channel", "c"),
    ("scan_pos", 3, "position", "p"), ("run_CHANNEL", 1, "channel", "c"),
]


@pytest.mark.parametrize("prefix, digits, axis, letter", AXIS_NAMES)
def test_an_axis_word_before_the_number_is_the_axis(run_cli, upload_files, tmp_path, prefix,
                                                   digits, axis, letter):
    files = write_fiji_image_sequence(tmp_path / "seq", prefix, count=3, digits=digits, seed=25)
    result = upload(run_cli, upload_files, tmp_path / "seq")
    assert f"image sequence (3 files, along {letter})" in result.stderr, result.stderr
    ds, array, frames, missing = stored()
    sizes = {"channel": ds.dims.nbr_channels, "slice": ds.dims.nbr_slices,
             "time": ds.dims.nbr_timepoints, "position": ds.dims.nbr_positions}
    assert sizes == {**dict.fromkeys(sizes, 1), axis: 3} and missing == []
    assert (ds.global_meta["sequence_axis"], ds.global_meta["sequence_axis_from"]) == (
        letter, "file names")
    for number, path in enumerate(files):
        index = FrameIndex(**{**dict.fromkeys(sizes, 0), axis: number})
        assert frames[index]["FileName"] == path.name
        at = {"channel": (0, 0, number, 0), "slice": (0, 0, 0, number),
              "time": (0, number, 0, 0), "position": (number, 0, 0, 0)}[axis]
        np.testing.assert_array_equal(array[at], tifffile.imread(path))


def test_the_names_axis_wins_over_sequence_axis(run_cli, upload_files, tmp_path):
    write_fiji_image_sequence(tmp_path / "em", count=3, seed=26)  # c_elegans_em_z0000.tif...
    result = upload(run_cli, upload_files, tmp_path / "em", sequence_axis="t")
    assert "image sequence (3 files, along z)" in result.stderr, result.stderr
    ds, _array, _frames, _missing = stored()
    assert (ds.dims.nbr_slices, ds.dims.nbr_timepoints) == (3, 1)


@pytest.mark.parametrize("prefix", ["img", "stamp", "t1-head", "mosaic", "frame_"])
def test_a_word_that_is_not_an_axis_leaves_it_to_sequence_axis(run_cli, upload_files, tmp_path,
                                                               prefix):
    """The whole word before the number counts ("stamp" is no p), and only right before it:
    Fiji's sample t1-head's "t1" is part of the title."""
    write_fiji_image_sequence(tmp_path / "seq", prefix, count=3, seed=27)
    result = upload(run_cli, upload_files, tmp_path / "seq", sequence_axis="t")
    assert "image sequence (3 files, along t)" in result.stderr, result.stderr
    ds, _array, _frames, _missing = stored()
    assert (ds.dims.nbr_slices, ds.dims.nbr_timepoints) == (1, 3)
    assert ds.global_meta["sequence_axis_from"] == "sequence_axis"


def test_a_positions_subset_of_a_position_sequence(run_cli, upload_files, tmp_path):
    """Only the positions asked for; a gap among the others is no missing frame of these."""
    files = write_fiji_image_sequence(tmp_path / "wells", "well_p", count=4, digits=1,
                                      skip={1}, seed=28)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(tmp_path / "wells"),
                                  "positions": "[2, 3]"}])
    config_path = upload_files.config(upload_type="frames", microscope="scope")
    result = run_cli("upload", "--csv", csv_path, "--config", config_path)
    assert result.exit_code == 0 and "Warning" not in result.stderr, result.stderr
    ds, array, frames, missing = stored()
    assert ds.dims.nbr_positions == 2 and missing == []
    assert sorted(frames) == [FrameIndex(0, 0, 0, 2), FrameIndex(0, 0, 0, 3)]
    for at, path in enumerate(files[1:]):
        np.testing.assert_array_equal(array[at, 0, 0, 0], tifffile.imread(path))


def test_a_position_the_sequence_does_not_hold_is_refused(site, run_cli, upload_files, tmp_path):
    write_fiji_image_sequence(tmp_path / "em", count=2)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(tmp_path / "em"),
                                  "positions": "[1]"}])
    before = site.snapshot()
    result = run_cli("upload", "--csv", csv_path, "--config",
                     upload_files.config(upload_type="frames", microscope="scope"))
    assert_refused(result, site, before, contains=(
        str(tmp_path / "em"), "position(s) 1 not found; it holds positions 0-0"))


def test_a_wide_gap_within_bounds_is_missing_frames(run_cli, upload_files, tmp_path):
    """A span under tiff_pages.check_declared_frames' limits is an acquisition with gaps."""
    write_fiji_image_sequence(tmp_path / "gap", "x_", count=1, digits=1)
    write_fiji_image_sequence(tmp_path / "gap", "x_", count=1, start=999, digits=1)
    result = upload(run_cli, upload_files, tmp_path / "gap")
    assert result.exit_code == 0, result.stderr
    ds, _array, _frames, missing = stored()
    assert ds.dims.nbr_slices == 1000 and len(missing) == 998


def test_four_integers_are_a_sequence_when_frames_format_says_so(run_cli, upload_files,
                                                                tmp_path):
    """tif_folder claims them (channel, slice, time, position); asked, image_sequence reads
    the one that varies, as bare integers declare no axis."""
    files = write_fiji_image_sequence(tmp_path / "s", "0000_0000_0000_", count=3, seed=29)
    result = upload(run_cli, upload_files, tmp_path / "s", frames_format="image_sequence")
    assert result.exit_code == 0, result.stderr
    ds, array, _frames, _missing = stored()
    assert ds.dims.nbr_slices == 3
    for z, path in enumerate(files):
        np.testing.assert_array_equal(array[0, 0, 0, z], tifffile.imread(path))


# ------------------------------------------------------------------ refused


def _other_prefix(folder):
    write_fiji_image_sequence(folder, "cell_", count=2)
    write_fiji_image_sequence(folder, "nucleus_", count=1)
    return ("cell_0000.tif and nucleus_0000.tif differ by more than a number",
            "put each sequence in its own folder")


def _two_numbers(folder):
    for t in range(2):
        write_fiji_image_sequence(folder, f"name_t{t:04d}_z", count=2, start=1)
    return ("have several numbers that vary", "use frames_format: tif_folder with a "
            "filename_parser")


def _several_axis_words(folder):
    write_fiji_image_sequence(folder, "im_c000_z", count=2, digits=3)
    for path in folder.iterdir():
        path.rename(path.with_name(path.stem + "_t000_p003.tif"))
    return ("file names like im_c000_z001_t000_p003.tif number several axes (c, z, t, p)",
            "use frames_format: tif_folder")


def _numbers_far_apart(folder):
    write_fiji_image_sequence(folder, "x_", count=1, digits=1)
    write_fiji_image_sequence(folder, "x_", count=1, start=1000000, digits=1)
    return ("the numbers of x_<number>.tif run from 0 to 1000000, 1,000,001 places for 2 files",
            "timestamps or IDs", "rename the files by their order")


def _same_number(folder):
    write_fiji_image_sequence(folder, "img", count=2, digits=2)
    write_fiji_image_sequence(folder, "img", count=1, start=1, digits=1)
    return ("img01.tif and img1.tif have the same number (1)",)


def _multi_page_file(folder):
    write_fiji_image_sequence(folder, "img", count=2)
    tifffile.imwrite(folder / "img0002.tif", np.zeros((3, 32, 32), np.uint8),
                     photometric="minisblack")
    return ("img0002.tif holds 3 pages", "upload a multi-page file alone with frames_format: "
            "tif_id")


def _other_shape(folder):
    write_fiji_image_sequence(folder, "img", count=2)
    write_fiji_image_sequence(folder, "img", count=1, start=2, height=16)
    return ("img0002.tif: page 0 is (16, 32) uint8 but img0000.tif is (32, 32) uint8",)


def _micromanager_folder(folder):
    write_mm_tif_folder(folder, channels=("DAPI",), slices=2, times=1, height=8, width=8)
    # tif_folder claims it as its own, so the explicit image_sequence is refused up front
    return ("is a Micro-Manager 1.4 image-file acquisition (2 files), which frames_format "
            "image_sequence would not read as it was recorded", "use frames_format: tif_folder")


def _ome_tiff_files(folder):
    folder.mkdir()
    for number in range(2):
        tifffile.imwrite(folder / f"img{number}.ome.tif", np.zeros((8, 8), np.uint8))
    return ("holds OME-TIFF files", "use frames_format: ome_tiff")


@pytest.mark.parametrize("make", [_other_prefix, _two_numbers, _several_axis_words,
                                  _numbers_far_apart, _same_number, _multi_page_file,
                                  _other_shape, _micromanager_folder, _ome_tiff_files])
def test_a_folder_that_is_not_one_sequence_is_refused(site, run_cli, upload_files, tmp_path,
                                                      make):
    folder = tmp_path / "seq"
    messages = make(folder)
    before = site.snapshot()
    result = upload(run_cli, upload_files, folder, frames_format="image_sequence")
    assert_refused(result, site, before, contains=(str(folder), *messages))


def test_a_file_is_not_a_sequence(run_cli, upload_files, tmp_path):
    [path] = write_fiji_image_sequence(tmp_path, "one", count=1)
    result = upload(run_cli, upload_files, path, frames_format="image_sequence")
    assert result.exit_code == 2 and "image_sequence takes a folder" in result.errors[0]
