"""The tif_folder splitter: folders of single-frame TIFFs, uploaded and read back exactly."""

import json
import warnings

import numpy as np
import pytest
import tifffile

from imagingdb.testing import write_mm_position_folders, write_mm_tif_folder
from tests.conftest import DATASET_ID
from tests.helpers import assert_refused

CHANNELS = ("DAPI", "GFP")


def tif_folder_config(upload_files, **extra):
    return upload_files.config(upload_type="frames", frames_format="tif_folder",
                               microscope="scope3", **extra)


def upload(run_cli, upload_files, source, **config):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    return run_cli("upload", "--csv", csv_path, "--config", tif_folder_config(upload_files, **config))


def mm_name_index(name):
    """(channel, slice, time) of img_<time>_<channel>_<slice>.tif, read independently."""
    _, time, channel, slice_ = name[:-len(".tif")].split("_")
    return CHANNELS.index(channel), int(slice_), int(time)


@pytest.fixture
def mm_tif_folder(tmp_path):
    """One position of a Micro-Manager 1.4 image-file acquisition: 2 channels x 3 slices x 2 times."""
    folder = tmp_path / "Pos0"
    write_mm_tif_folder(folder, channels=CHANNELS, slices=3, times=2, height=24, width=20, seed=3)
    return folder


def test_folder_uploads_and_reads_back_pixel_identical(site, run_cli, upload_files, mm_tif_folder):
    result = upload(run_cli, upload_files, mm_tif_folder)
    assert result.exit_code == 0, result.stderr
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        array = ds.read()
        dims = ds.dims
        assert ds.channel_names() == {0: "DAPI", 1: "GFP"}
        assert ds.missing_frames() == []
    assert (dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints, dims.nbr_positions) == (2, 3, 2, 1)
    assert array.shape == (1, 2, 2, 3, 24, 20) and array.dtype == np.uint16
    files = sorted(mm_tif_folder.glob("*.tif"))
    assert len(files) == 12
    for path in files:
        c, z, t = mm_name_index(path.name)
        np.testing.assert_array_equal(array[0, t, c, z], tifffile.imread(path))


def test_summary_is_global_metadata_and_tags_are_frame_metadata(run_cli, upload_files,
                                                                 mm_tif_folder):
    assert upload(run_cli, upload_files, mm_tif_folder).exit_code == 0
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        meta = ds.global_meta
        rows = ds.frames(channels=["GFP"], slices=[2], times=[1])
    assert meta["ChNames"] == list(CHANNELS) and meta["PixelType"] == "GRAY16"
    assert (meta["Width"], meta["Height"], meta["BitDepth"]) == (20, 24, 16)
    assert meta["file_origin"] == str(mm_tif_folder)
    (row,) = rows
    frame_meta = row["metadata_json"]
    assert frame_meta["FileName"] == "img_000000001_GFP_002.tif"
    assert (frame_meta["ChannelIndex"], frame_meta["SliceIndex"], frame_meta["FrameIndex"]) == (1, 2, 1)
    assert frame_meta["ImageWidth"] == 20 and frame_meta["BitsPerSample"] == 16
    assert "MicroManagerMetadata" not in frame_meta  # merged at the top, not nested


def test_rgb_folder_round_trips(run_cli, upload_files, tmp_path):
    folder = tmp_path / "rgb"
    files = write_mm_tif_folder(folder, channels=("BF",), slices=2, times=2, height=16, width=12,
                                rgb=True, seed=4)
    assert upload(run_cli, upload_files, folder).exit_code == 0
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        array = ds.read()
        assert ds.dims.im_colors == 3 and ds.dims.bit_depth == "uint8"
    assert array.shape == (1, 2, 1, 2, 16, 12, 3)
    for path in files:
        _, t, _, z = path.stem.split("_")
        np.testing.assert_array_equal(array[0, int(t), 0, int(z)], tifffile.imread(path))


def test_four_integer_names_place_frames_at_channel_slice_time_position(run_cli, upload_files,
                                                                        tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(5)
    expected = {}
    for c, z, t, p in [(0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 2, 1), (1, 1, 2, 1), (0, 0, 1, 1)]:
        pixels = rng.integers(0, 4096, (8, 10), dtype=np.uint16)
        tifffile.imwrite(folder / f"im_c{c:03d}_z{z:03d}_t{t:03d}_p{p:03d}.tif", pixels)
        expected[c, z, t, p] = pixels
    assert upload(run_cli, upload_files, folder).exit_code == 0
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        rows = ds.frames()
        assert ds.channel_names() == {0: "0", 1: "1"}
        for (c, z, t, p), pixels in expected.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                array = ds.read(channels=[c], slices=[z], times=[t], positions=[p])
            np.testing.assert_array_equal(array[0, 0, 0, 0], pixels)
    assert len(rows) == len(expected)


def test_sms_names_with_the_sms_parser(run_cli, upload_files, tmp_path):
    folder = tmp_path / "sms"
    folder.mkdir()
    rng = np.random.default_rng(6)
    expected = {}
    for channel in ("Brightfield_computed", "Retardance"):
        for t, p, z in [(0, 0, 0), (0, 0, 1), (1, 2, 0)]:
            pixels = rng.integers(0, 255, (6, 9), dtype=np.uint8)
            tifffile.imwrite(folder / f"img_{channel}_t{t:03d}_p{p:03d}_z{z:03d}.tif", pixels)
            expected[channel, z, t, p] = pixels
    assert upload(run_cli, upload_files, folder, filename_parser="parse_sms_name").exit_code == 0
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert sorted(ds.channel_names().values()) == ["Brightfield_computed", "Retardance"]
        for (channel, z, t, p), pixels in expected.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                array = ds.read(channels=[channel], slices=[z], times=[t], positions=[p])
            np.testing.assert_array_equal(array[0, 0, 0, 0], pixels)


def test_micromanager_metadata_is_checkable_with_meta_schema(run_cli, upload_files, mm_tif_folder):
    schema = {"type": "object", "required": ["ChannelIndex", "Exposure-ms"],
              "properties": {"Exposure-ms": {"type": "number", "maximum": 100}}}
    result = upload(run_cli, upload_files, mm_tif_folder, meta_schema=schema)
    # GFP is exposed 100 ms, DAPI 50 ms: the schema's maximum holds for both
    assert result.exit_code == 0, result.stderr


def test_frame_breaking_meta_schema_names_file_frame_and_key(site, run_cli, upload_files,
                                                            mm_tif_folder):
    before = site.snapshot()
    schema = {"type": "object", "properties": {"Exposure-ms": {"type": "number", "maximum": 60}}}
    result = upload(run_cli, upload_files, mm_tif_folder, meta_schema=schema)
    assert_refused(result, site, before, contains=(
        "img_000000000_GFP_000.tif", "frame (c=1, z=0, t=0, p=0)", "'Exposure-ms'"))


# ------------------------------------------------- multi-position acquisitions


def test_position_folders_upload_as_one_dataset_at_their_positions(site, run_cli, upload_files,
                                                                  tmp_path):
    acquisition = tmp_path / "acq_1"
    written = write_mm_position_folders(acquisition, positions=(0, 1, 2), channels=CHANNELS,
                                        slices=2, times=2, height=12, width=10, seed=5)
    (acquisition / "display_and_comments.txt").write_text("{}")  # Micro-Manager writes it too
    result = upload(run_cli, upload_files, acquisition)
    assert result.exit_code == 0, result.stderr
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        array = ds.read()
        frames = ds.frames()
        meta = ds.global_meta
        assert ds.missing_frames() == []
    assert array.shape == (3, 2, 2, 2, 12, 10)
    assert meta["position_folders"] == {"0": "Pos0", "1": "Pos1", "2": "Pos2"}
    assert meta["nbr_files"] == 24
    for position, files in written.items():
        for path in files:
            c, z, t = mm_name_index(path.name)
            np.testing.assert_array_equal(array[position, t, c, z], tifffile.imread(path))
    # Each frame keeps its own folder's metadata.txt entry
    by_index = {(f["pos_idx"], f["time_idx"], f["channel_idx"], f["slice_idx"]): f for f in frames}
    frame_meta = by_index[(2, 1, 1, 0)]["metadata_json"]
    assert (frame_meta["PositionName"], frame_meta["PositionIndex"], frame_meta["FrameIndex"]) == (
        "Pos2", 2, 1)


def test_position_folders_are_placed_by_the_position_list_and_a_missing_one_is_recorded(
        site, run_cli, upload_files, tmp_path):
    acquisition = tmp_path / "acq_2"
    written = write_mm_position_folders(acquisition, positions=(1, 2), nbr_positions=3,
                                        channels=CHANNELS, slices=1, times=1, height=6, width=6)
    result = upload(run_cli, upload_files, acquisition)
    assert result.exit_code == 0, result.stderr
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert ds.dims.nbr_positions == 3
        assert sorted({f["pos_idx"] for f in ds.frames(with_metadata=False)}) == [1, 2]
        assert {m.position for m in ds.missing_frames()} == {0}
        array = ds.read(positions=[2])
    np.testing.assert_array_equal(array[0, 0, 0, 0], tifffile.imread(written[2][0]))


def test_positions_column_takes_some_position_folders(site, run_cli, upload_files, tmp_path):
    acquisition = tmp_path / "acq_3"
    write_mm_position_folders(acquisition, positions=(0, 1, 2), channels=CHANNELS, slices=1,
                              times=1, height=6, width=6)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(acquisition),
                                  "positions": "[1]"}])
    result = run_cli("upload", "--csv", csv_path, "--config", tif_folder_config(upload_files))
    assert result.exit_code == 0, result.stderr
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert {f["pos_idx"] for f in ds.frames(with_metadata=False)} == {1}
        assert ds.dims.nbr_positions == 1 and ds.nbr_frames == 2


def test_positions_column_asking_for_an_absent_position_is_refused(site, run_cli, upload_files,
                                                                  tmp_path):
    acquisition = tmp_path / "acq_6"
    write_mm_position_folders(acquisition, positions=(0, 1), channels=CHANNELS, slices=1,
                              times=1, height=6, width=6)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(acquisition),
                                  "positions": "[1, 5]"}])
    before = site.snapshot()
    result = run_cli("upload", "--csv", csv_path, "--config", tif_folder_config(upload_files))
    assert_refused(result, site, before, contains=(
        f"{acquisition}: position(s) 5 not found; available positions: 0, 1",))


def test_folder_without_tiffs_or_position_folders_is_refused(site, run_cli, upload_files, tmp_path):
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    before = site.snapshot()
    result = upload(run_cli, upload_files, empty)
    assert_refused(result, site, before, contains=(
        str(empty), "no .tif file, nor position folders that do (Pos0/, Pos1/...)"))


def test_two_folders_at_one_position_are_refused(site, run_cli, upload_files, tmp_path):
    import shutil

    acquisition = tmp_path / "acq_5"
    write_mm_position_folders(acquisition, positions=(0,), channels=CHANNELS, slices=1, times=1,
                              height=6, width=6)
    shutil.copytree(acquisition / "Pos0", acquisition / "copy")  # its metadata.txt: position 0
    before = site.snapshot()
    result = upload(run_cli, upload_files, acquisition)
    assert_refused(result, site, before, contains=("Pos0 and ", "copy are both position 0"))


def test_name_giving_another_position_than_its_folder_is_refused(site, run_cli, upload_files,
                                                                 tmp_path):
    acquisition = tmp_path / "acq_4"
    for p in (0, 1):
        (acquisition / f"Pos{p}").mkdir(parents=True)
        tifffile.imwrite(acquisition / f"Pos{p}" / f"im_c000_z000_t000_p{p:03d}.tif",
                         np.zeros((4, 4), np.uint8))
    (acquisition / "Pos1" / "im_c000_z000_t000_p001.tif").rename(
        acquisition / "Pos1" / "im_c000_z001_t000_p003.tif")
    before = site.snapshot()
    result = upload(run_cli, upload_files, acquisition)
    assert_refused(result, site, before, contains=(
        "im_c000_z001_t000_p003.tif", "says position 3 but its folder is position 1"))


# ------------------------------------------------------------------ bad folders


def _multi_page(folder):
    tifffile.imwrite(folder / "img_000000001_DAPI_002.tif", np.zeros((2, 24, 20), np.uint16))


def _other_shape(folder):
    tifffile.imwrite(folder / "img_000000001_DAPI_002.tif", np.zeros((12, 20), np.uint16),
                     photometric="minisblack")


def _float_pixels(folder):
    tifffile.imwrite(folder / "img_000000001_DAPI_002.tif", np.zeros((24, 20), np.float32))


def _renamed_file(folder):
    (folder / "img_000000001_DAPI_002.tif").rename(folder / "overview.tif")


def _bad_metadata_txt(folder):
    (folder / "metadata.txt").write_text('{"Summary": {"Channels": 2}} and more')


def _summary_declaring_fewer_frames(folder):
    text = (folder / "metadata.txt").read_text()
    (folder / "metadata.txt").write_text(text.replace('"Frames": 2', '"Frames": 1', 1))


def _image_disagreeing_with_its_entry(folder):
    info = {"ChannelIndex": 0, "SliceIndex": 1, "FrameIndex": 1, "PositionIndex": 0,
            "FileName": "img_000000001_DAPI_002.tif"}
    tifffile.imwrite(folder / "img_000000001_DAPI_002.tif", np.zeros((24, 20), np.uint16),
                     extratags=tifffile.imagej_metadata_tag({"Info": json.dumps(info)}, "<"))


@pytest.mark.parametrize("damage, message", [
    (_multi_page, "holds 2 pages; tif_folder expects one frame per file"),
    (_other_shape, "all frames of a dataset must share shape"),
    # one float file among uint16 ones: refused as a mixed dataset before any codec is asked
    (_float_pixels, "is (24, 20) float32 but the first file"),
    (_renamed_file, "overview.tif: its own metadata (ImageJ Info) says this image is "
                    "img_000000001_DAPI_002.tif; give the file back its name"),
    (_bad_metadata_txt, "metadata.txt is not valid JSON: text follows its closing brace"),
    (_summary_declaring_fewer_frames, "time index 1 but"),
    (_image_disagreeing_with_its_entry, ("img_000000001_DAPI_002.tif's own metadata (ImageJ "
                                         "Info) says slice 1 but", "metadata.txt entry "
                                         "'FrameKey-1-0-2' says slice 2")),
])
def test_bad_folder_is_refused_and_changes_nothing(site, run_cli, upload_files, mm_tif_folder,
                                                   damage, message):
    damage(mm_tif_folder)
    before = site.snapshot()
    result = upload(run_cli, upload_files, mm_tif_folder)
    assert_refused(result, site, before,
                   contains=message if isinstance(message, tuple) else (message,))


def plain_tiffs(folder, names, summary=None):
    """TIFF files that carry no Micro-Manager metadata: only their names place them."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, name in enumerate(names):
        tifffile.imwrite(folder / name, np.full((4, 4), number, np.uint16))
    if summary is not None:
        (folder / "metadata.txt").write_text(json.dumps({"Summary": summary}))
    return folder


@pytest.mark.parametrize("names, summary, message", [
    (["img_000000000_DAPI_000.tif", "overview.tif"], None,
     "overview.tif' does not match 'img_<time>_<channel name>_<slice>.tif'"),
    (["img_000000000_DAPI_000.tif", "img_000000000_Cy5_000.tif"], {"ChNames": ["DAPI", "GFP"]},
     "channel 'Cy5' is not in metadata.txt's ChNames (DAPI, GFP)"),
    (["img_000000000_DAPI_000.tif", "img_000000007_DAPI_000.tif"], {"Frames": 2},
     "img_000000007_DAPI_000.tif: time index 7 but"),
    (["img_channel000_position000_time000000000_z000.tif",
      "img_channel000_position000_time000000000_z000.tiff"], None, "are both frame"),
])
def test_names_that_cannot_place_a_frame_are_refused(site, run_cli, upload_files, tmp_path,
                                                    names, summary, message):
    folder = plain_tiffs(tmp_path / "named", names, summary)
    before = site.snapshot()
    assert_refused(upload(run_cli, upload_files, folder), site, before, contains=(message,))


def test_a_file_is_not_a_folder(run_cli, upload_files, mm_tif_folder):
    result = upload(run_cli, upload_files, next(mm_tif_folder.glob("*.tif")))
    assert result.exit_code == 2 and "tif_folder takes a folder" in result.errors[0]


def test_folder_without_metadata_txt_learns_dimensions_from_names(run_cli, upload_files, tmp_path):
    folder = tmp_path / "bare"
    write_mm_tif_folder(folder, channels=CHANNELS, slices=2, times=3, height=8, width=8,
                        metadata_txt=False)
    assert upload(run_cli, upload_files, folder).exit_code == 0
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert (ds.dims.nbr_channels, ds.dims.nbr_slices, ds.dims.nbr_timepoints) == (2, 2, 3)
        assert ds.global_meta["file_origin"] == str(folder)
        assert json.dumps(ds.channel_names()) == '{"0": "DAPI", "1": "GFP"}'


def test_positions_column_takes_a_subset_of_the_folder(run_cli, upload_files, tmp_path):
    folder = tmp_path / "positions"
    folder.mkdir()
    for p in range(3):
        tifffile.imwrite(folder / f"im_c000_z000_t000_p{p:03d}.tif", np.full((4, 4), p, np.uint8))
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(folder),
                                  "positions": "[0, 2]"}])
    result = run_cli("upload", "--csv", csv_path, "--config", tif_folder_config(upload_files))
    assert result.exit_code == 0, result.stderr
    import imagingdb

    with imagingdb.connect() as db:
        array = db.dataset(DATASET_ID).read()
    assert array.shape == (2, 1, 1, 1, 4, 4)
    assert array[0].max() == 0 and array[1].min() == 2
