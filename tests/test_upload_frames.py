"""Micro-Manager OME-TIFF upload, end to end, on SQLite and on PostgreSQL."""

import json

import numpy as np
import pytest

from tests.conftest import DATASET_ID
from tests.helpers import read_png_with_pypng, source_frames


def test_upload_registers_the_dataset_with_its_dimensions(uploaded_ometiff, site):
    with site.connect() as db:
        ds = db.dataset(uploaded_ometiff)
        dims = ds.dims
        assert ds.is_frames and ds.nbr_frames == 24
        assert (dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints, dims.nbr_positions) == (
            2, 3, 2, 2)
        assert (dims.im_height, dims.im_width, dims.im_colors, dims.bit_depth) == (
            32, 48, 1, "uint16")
        assert ds.info.microscope == "scope2"
        assert ds.info.description == "two positions"
        assert ds.channel_names() == {0: "DAPI", 1: "GFP"}


def test_frames_are_stored_in_the_original_layout(uploaded_ometiff, site):
    folder = site.storage_root / "raw_frames" / uploaded_ometiff
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 24
    assert names[0] == "im_c000_z000_t000_p000.png"
    assert "im_c001_z002_t001_p001.png" in names


def test_stored_pngs_hold_the_exact_pixels(uploaded_ometiff, site, mm_ometiff):
    expected = source_frames(mm_ometiff)
    folder = site.storage_root / "raw_frames" / uploaded_ometiff
    for (c, z, t, p), pixels in expected.items():
        stored = read_png_with_pypng(folder / f"im_c{c:03d}_z{z:03d}_t{t:03d}_p{p:03d}.png")
        assert stored.dtype == pixels.dtype
        np.testing.assert_array_equal(stored, pixels)


def test_global_metadata_is_the_micromanager_summary(uploaded_ometiff, site):
    with site.connect() as db:
        meta = db.dataset(uploaded_ometiff).global_meta
    assert meta["ChNames"] == ["DAPI", "GFP"]
    assert len(meta["InitialPositionList"]) == 2
    assert any("MMStack_Pos0" in name for name in json.dumps(meta).split('"'))


def test_each_frame_keeps_its_own_metadata_and_checksum(uploaded_ometiff, site, mm_ometiff):
    import hashlib

    expected = source_frames(mm_ometiff)
    with site.connect() as db:
        rows = db.dataset(uploaded_ometiff).frames()
    assert len(rows) == 24
    for row in rows:
        key = (row["channel_idx"], row["slice_idx"], row["time_idx"], row["pos_idx"])
        meta = row["metadata_json"]
        assert (meta["ChannelIndex"], meta["SliceIndex"], meta["FrameIndex"],
                meta["PositionIndex"]) == key
        assert row["channel_name"] == ["DAPI", "GFP"][key[0]]
        assert row["sha256"] == hashlib.sha256(expected[key].astype("<u2").tobytes()).hexdigest()


def test_uint8_frames_keep_their_dtype(site, run_cli, upload_files, mm_ometiff_uint8):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff_uint8)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.frames_config()).exit_code == 0
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        array = ds.read()
    assert ds.dims.bit_depth == "uint8" and array.dtype == np.uint8
    for (c, z, t, p), pixels in source_frames(mm_ometiff_uint8).items():
        np.testing.assert_array_equal(array[p, t, c, z], pixels)


def test_positions_column_selects_a_subset(site, run_cli, upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff),
                                  "positions": "[1]"}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.frames_config()).exit_code == 0
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert ds.dims.nbr_positions == 1
        assert {row["pos_idx"] for row in ds.frames()} == {1}


def test_a_single_position_file_can_be_uploaded(site, run_cli, upload_files, mm_ometiff):
    one_file = mm_ometiff / "sample_MMStack_Pos1.ome.tif"
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(one_file)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.frames_config()).exit_code == 0
    with site.connect() as db:
        assert db.dataset(DATASET_ID).nbr_frames == 12


def test_several_rows_upload_several_datasets(site, run_cli, upload_files, mm_ometiff,
                                              mm_ometiff_uint8):
    csv_path = upload_files.csv([
        {"dataset_id": "ML-2005-05-23-10-00-00-0001", "file_name": str(mm_ometiff),
         "description": "first"},
        {"dataset_id": "ML-2005-05-24-10-00-00-0002", "file_name": str(mm_ometiff_uint8),
         "description": "second", "parent_dataset_id": "ML-2005-05-23-10-00-00-0001"},
    ])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(),
                     "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert [r["status"] for r in report] == ["uploaded", "uploaded"]
    with site.connect() as db:
        child = db.dataset("ML-2005-05-24-10-00-00-0002")
    assert child.info.parent_dataset_id == "ML-2005-05-23-10-00-00-0001"


def test_overwrite_replaces_rows_and_objects_of_that_dataset_only(
        site, run_cli, upload_files, mm_ometiff, mm_ometiff_uint8):
    other = "ML-2005-05-23-10-00-00-0009"
    csv_path = upload_files.csv([
        {"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)},
        {"dataset_id": other, "file_name": str(mm_ometiff)}])
    config = upload_files.frames_config()
    assert run_cli("upload", "--csv", csv_path, "--config", config).exit_code == 0
    other_objects = {p: p.read_bytes() for p in (site.storage_root / "raw_frames" / other).iterdir()}

    replace = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff_uint8),
                                 "positions": "0"}])
    refused = run_cli("upload", "--csv", replace, "--config", config)
    assert refused.exit_code == 2 and "already exists" in refused.errors[0]
    assert "--overwrite" in refused.errors[0]

    result = run_cli("upload", "--csv", replace, "--config", config, "--overwrite")
    assert result.exit_code == 0, result.stderr
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert ds.dims.bit_depth == "uint8" and ds.nbr_frames == 12
        assert len(db.query()) == 2
    # The new generation is a folder of its own; the old objects went after the commit.
    [generation] = (site.storage_root / "raw_frames" / DATASET_ID).iterdir()
    assert generation.name.startswith("g") and len(list(generation.iterdir())) == 12
    assert {p: p.read_bytes() for p in (site.storage_root / "raw_frames" / other).iterdir()} == \
        other_objects


def test_upload_of_a_whole_file_keeps_it_with_its_checksum_and_tags(
        site, run_cli, upload_files, mm_ometiff):
    import hashlib

    source = mm_ometiff / "sample_MMStack_Pos0.ome.tif"
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config())
    assert result.exit_code == 0, result.stderr
    stored = site.storage_root / "raw_files" / DATASET_ID / source.name
    assert stored.read_bytes() == source.read_bytes()
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert not ds.is_frames
        assert ds.file["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        meta = ds.global_meta
    assert meta["file_origin"] == str(source)
    assert meta["tiff_tags"]["ImageWidth"] == 48
    assert meta["nbr_pages"] == 12


def test_a_non_tiff_file_is_kept_whole_without_tags(site, run_cli, upload_files, tmp_path):
    source = tmp_path / "notes with spaces é.txt"
    source.write_text("plate layout\n", encoding="utf-8")
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.file_config()).exit_code == 0
    assert (site.storage_root / "raw_files" / DATASET_ID / source.name).read_text(
        encoding="utf-8") == "plate layout\n"


def test_relative_file_names_are_relative_to_the_csv(site, run_cli, upload_files, mm_ometiff):
    csv_path = mm_ometiff.parent / "rows.csv"
    csv_path.write_text(f"dataset_id,file_name\n{DATASET_ID},{mm_ometiff.name}\n")
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.frames_config()).exit_code == 0


@pytest.mark.parametrize("workers", ["1", "7"])
def test_worker_count_does_not_change_the_result(site, run_cli, upload_files, mm_ometiff,
                                                 workers):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    assert run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(),
                   "--workers", workers).exit_code == 0
    with site.connect() as db:
        assert db.dataset(DATASET_ID).nbr_frames == 24
