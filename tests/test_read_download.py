"""Getting data back: read() into numpy and download to a folder, on SQLite and PostgreSQL."""

import csv
import json

import numpy as np
import pytest

from imagingdb.errors import InputError, NotFoundError
from tests.helpers import read_png_with_pypng, source_frames


@pytest.fixture
def dataset(uploaded_ometiff, site):
    with site.connect() as db:
        yield db.dataset(uploaded_ometiff)


def test_read_everything_is_pixel_identical(dataset, mm_ometiff):
    array = dataset.read()
    assert array.shape == (2, 2, 2, 3, 32, 48) and array.dtype == np.uint16
    for (c, z, t, p), pixels in source_frames(mm_ometiff).items():
        np.testing.assert_array_equal(array[p, t, c, z], pixels)


def test_read_a_selection_keeps_the_order_asked(dataset, mm_ometiff):
    expected = source_frames(mm_ometiff)
    array = dataset.read(channels=["GFP", "DAPI"], slices=[2, 0], times=[1], positions=[1])
    assert array.shape == (1, 1, 2, 2, 32, 48)
    np.testing.assert_array_equal(array[0, 0, 0, 0], expected[(1, 2, 1, 1)])
    np.testing.assert_array_equal(array[0, 0, 1, 1], expected[(0, 0, 1, 1)])


def test_channels_by_index_and_ranges(dataset, mm_ometiff):
    expected = source_frames(mm_ometiff)
    array = dataset.read(channels=[1], slices=range(3), times=[0], positions=[0])
    assert array.shape == (1, 1, 1, 3, 32, 48)
    np.testing.assert_array_equal(array[0, 0, 0, 2], expected[(1, 2, 0, 0)])


def test_read_with_verify_checks_every_checksum(dataset):
    assert dataset.read(times=[0], verify=True).shape[1] == 1


def test_frames_rows_are_selected_in_sql(dataset):
    rows = dataset.frames(channels=["DAPI"], times=[0])
    assert len(rows) == 6
    assert {(r["channel_idx"], r["time_idx"]) for r in rows} == {(0, 0)}
    assert "id" not in rows[0] and rows[0]["metadata_json"]["Channel"] == "DAPI"


@pytest.mark.parametrize("kwargs, message", [
    ({"channels": ["Cy5"]}, "no channel 'Cy5'; it has: DAPI \\(0\\), GFP \\(1\\)"),
    ({"channels": [7]}, "no channel index 7"),
    ({"slices": [3]}, "no slice index 3; it has: 0-2"),
    ({"times": [-1]}, "no time index -1"),
    ({"positions": [5]}, "no position index 5; it has: 0-1"),
])
def test_unknown_selection_is_an_error_listing_what_exists(dataset, kwargs, message):
    with pytest.raises(NotFoundError, match=message):
        dataset.read(**kwargs)


def test_missing_dataset_is_not_found(site):
    with site.connect() as db:
        with pytest.raises(NotFoundError, match="not found"):
            db.dataset("ML-2001-01-01-00-00-00-0001")


def test_download_writes_frames_and_metadata(dataset, tmp_path, mm_ometiff):
    target = dataset.download(tmp_path / "dest")
    assert target == tmp_path / "dest" / dataset.id
    expected = source_frames(mm_ometiff)
    pngs = sorted(target.glob("*.png"))
    assert len(pngs) == 24
    for (c, z, t, p), pixels in expected.items():
        png = target / f"im_c{c:03d}_z{z:03d}_t{t:03d}_p{p:03d}.png"
        np.testing.assert_array_equal(read_png_with_pypng(png), pixels)
    meta = json.loads((target / "global_metadata.json").read_text())
    assert meta["dataset_id"] == dataset.id and meta["nbr_frames"] == 24
    assert meta["global_meta"]["ChNames"] == ["DAPI", "GFP"]
    with open(target / "frames_meta.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 24
    assert list(rows[0])[:7] == ["channel_idx", "slice_idx", "time_idx", "pos_idx",
                                 "channel_name", "file_name", "sha256"]
    # then each frame's metadata, flattened into columns, as ds.frames() has it
    frames = {(f["channel_idx"], f["slice_idx"], f["time_idx"], f["pos_idx"]): f
              for f in dataset.frames()}
    with open(target / "frames_meta.jsonl") as handle:
        records = [json.loads(line) for line in handle]
    assert len(records) == 24
    assert {"Exposure-ms", "ElapsedTime-ms"} <= set(rows[0])  # the acquisition's own keys
    for row, record in zip(rows, records):
        frame = frames[(int(row["channel_idx"]), int(row["slice_idx"]), int(row["time_idx"]),
                        int(row["pos_idx"]))]
        assert record["metadata"] == frame["metadata_json"]
        assert record["file_name"] == row["file_name"] == frame["file_name"]
        for key, value in frame["metadata_json"].items():
            if not isinstance(value, (dict, list)):
                expected = ("" if value is None else value if isinstance(value, str)
                            else json.dumps(value))
                assert row[key] == expected, key


def test_downloaded_frames_are_byte_identical_to_storage(dataset, tmp_path, site):
    target = dataset.download(tmp_path / "dest")
    stored = site.storage_root / "raw_frames" / dataset.id
    for png in target.glob("*.png"):
        assert png.read_bytes() == (stored / png.name).read_bytes()


def test_partial_download(dataset, tmp_path):
    target = dataset.download(tmp_path, channels=["GFP"], slices=[0, 1], times=[1], positions=[0])
    assert sorted(p.name for p in target.glob("*.png")) == [
        "im_c001_z000_t001_p000.png", "im_c001_z001_t001_p000.png"]


def test_no_download_writes_only_metadata(dataset, tmp_path):
    target = dataset.download(tmp_path, download=False)
    assert sorted(p.name for p in target.iterdir()) == ["frames_meta.csv", "frames_meta.jsonl",
                                                        "global_metadata.json"]


def test_no_metadata_writes_only_images(dataset, tmp_path):
    target = dataset.download(tmp_path, metadata=False, times=[0])
    assert {p.suffix for p in target.iterdir()} == {".png"}


def test_existing_destination_is_refused_and_left_alone(dataset, tmp_path):
    existing = tmp_path / dataset.id
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        dataset.download(tmp_path)
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_bad_selection_creates_nothing(dataset, tmp_path):
    with pytest.raises(NotFoundError):
        dataset.download(tmp_path / "dest", channels=["nope"])
    assert not (tmp_path / "dest").exists()


def test_download_failing_midway_leaves_no_partial_folder(dataset, tmp_path, site):
    from imagingdb.errors import WorkError

    (site.storage_root / "raw_frames" / dataset.id / "im_c001_z002_t001_p001.png").unlink()
    with pytest.raises(WorkError, match="im_c001_z002_t001_p001.png .*missing from storage"):
        dataset.download(tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_show_summary_has_dimensions_and_metadata(dataset):
    summary = dataset.summary()
    assert summary["nbr_frames"] == 24 and summary["nbr_positions"] == 2
    assert summary["channel_names"] == {0: "DAPI", 1: "GFP"}
    assert summary["missing_frames"] == 0


@pytest.mark.parametrize("bad_name", ["../escaped.png", "/tmp/escaped.png", "sub/dir.png"])
def test_download_refuses_file_names_from_the_database_that_leave_the_folder(
        dataset, tmp_path, site, bad_name):
    import sqlalchemy as sa

    from imagingdb import db as dbq
    from imagingdb.errors import WorkError

    with site.connect() as db, db.site.connection(write=True) as conn:
        conn.execute(sa.update(dbq.frames).where(dbq.frames.c.file_name ==
                                                 "im_c000_z000_t000_p000.png")
                     .values(file_name=bad_name))
    with pytest.raises(WorkError, match="not a plain file name"):
        dataset.download(tmp_path / "dest")
    assert not (tmp_path / "dest").exists()  # refused before anything was written
    assert not (tmp_path / "escaped.png").exists()


# --------------------------------------------------------------------- --resume


def test_resume_keeps_what_is_there_and_adds_the_rest(dataset, tmp_path, site):
    first = dataset.download(tmp_path, times=[0])
    assert len(list(first.glob("*.png"))) == 12
    kept = {png.name: png.stat().st_mtime_ns for png in first.glob("*.png")}
    broken = first / "im_c000_z000_t000_p000.png"
    broken.write_bytes(broken.read_bytes()[:-20])  # cut short: refetched
    target = dataset.download(tmp_path, resume=True)
    assert target == first
    stored = site.storage_root / "raw_frames" / dataset.id
    pngs = sorted(target.glob("*.png"))
    assert len(pngs) == 24
    for png in pngs:
        assert png.read_bytes() == (stored / png.name).read_bytes()
    for name, mtime in kept.items():  # untouched, but the one cut short
        assert ((target / name).stat().st_mtime_ns == mtime) == (name != broken.name), name
    assert not list(target.glob(".*"))  # no partial file left
    with open(target / "frames_meta.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 24  # the metadata is the new selection's


def test_resume_into_a_folder_not_there_is_a_download(dataset, tmp_path):
    target = dataset.download(tmp_path / "new", resume=True, times=[1])
    assert len(list(target.glob("*.png"))) == 12


def test_resume_of_a_file_kept_whole(site, run_cli, upload_files, mm_ometiff, tmp_path):
    tif = sorted(mm_ometiff.glob("*.tif"))[0]
    csv_path = upload_files.csv([{"dataset_id": "ML-2005-05-23-10-00-00-0009",
                                  "file_name": str(tif)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.file_config()).exit_code == 0
    first = run_cli("download", "--id", "ML-2005-05-23-10-00-00-0009", "--dest", tmp_path)
    assert first.exit_code == 0, first.stderr
    copy = tmp_path / "ML-2005-05-23-10-00-00-0009" / tif.name
    mtime = copy.stat().st_mtime_ns
    again = run_cli("download", "--id", "ML-2005-05-23-10-00-00-0009", "--dest", tmp_path,
                    "--resume")
    assert again.exit_code == 0, again.stderr
    assert copy.stat().st_mtime_ns == mtime and copy.read_bytes() == tif.read_bytes()


def test_resume_of_an_ome_zarr_download_is_refused(site, run_cli, upload_files, mm_ometiff,
                                                   tmp_path):
    csv_path = upload_files.csv([{"dataset_id": "ML-2005-05-23-10-00-00-0008",
                                  "file_name": str(mm_ometiff)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.frames_config(frame_format="ome-zarr")).exit_code == 0
    assert run_cli("download", "--id", "ML-2005-05-23-10-00-00-0008", "--dest", tmp_path,
                   "-t", "0").exit_code == 0
    again = run_cli("download", "--id", "ML-2005-05-23-10-00-00-0008", "--dest", tmp_path,
                    "--resume")
    assert again.exit_code == 2
    assert again.errors == [f"Error: --resume adds files to a download of PNG frames or of a "
                            f"file; the download of an ome-zarr dataset is one store: remove "
                            f"{tmp_path / 'ML-2005-05-23-10-00-00-0008'} and download again"]


def test_resume_finishes_a_download_interrupted_by_ctrl_c(dataset, tmp_path, site):
    from imagingdb.download import partial_folders
    from imagingdb.progress import Progress

    class CtrlC(Progress):
        done = 0

        def advance(self, frames, nbytes):
            CtrlC.done += frames
            if CtrlC.done == 10:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dataset.download(tmp_path, progress=CtrlC())
    assert not (tmp_path / dataset.id).exists()  # the folder appears whole or not at all
    (partial,) = partial_folders(tmp_path, dataset.id)
    kept = {png.name for png in partial.glob("*.png")}
    assert len(kept) >= 10
    mtimes = {name: (partial / name).stat().st_mtime_ns for name in kept}
    target = dataset.download(tmp_path, resume=True)
    assert partial_folders(tmp_path, dataset.id) == []
    stored = site.storage_root / "raw_frames" / dataset.id
    assert len(list(target.glob("*.png"))) == 24
    for png in target.glob("*.png"):
        assert png.read_bytes() == (stored / png.name).read_bytes()
    assert {name: (target / name).stat().st_mtime_ns for name in kept} == mtimes  # not refetched
