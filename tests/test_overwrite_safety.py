"""An overwrite never touches the old copy until the new one is committed.

`upload --overwrite` writes the new dataset into a generation folder of its
own (``raw_frames/<ID>/g<token>/``); the commit that records it in the row is
the switch, and the old objects go only after it. So an overwrite that fails
half-way (a corrupt page, a full disk, a bucket that refuses) leaves the old
dataset exactly as it was, verifying clean (issue 14, rows 1 and 2). Killed
overwrites: tests/test_crash_recovery.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from imagingdb.testing import write_mm_ometiff
from tests.conftest import DATASET_ID
from tests.test_bad_input import small_disk  # noqa: F401 - a fixture

PAGES = 20


def write_stack(path, seed, corrupt_page=None):
    """A 20-page deflate-compressed stack; ``corrupt_page`` (1-based) with its compressed
    bytes garbled, as a bad sector would leave them: its tags read, its pixels do not."""
    pixels = np.random.default_rng(seed).integers(0, 4000, (PAGES, 32, 48), dtype=np.uint16)
    tifffile.imwrite(path, pixels, photometric="minisblack", compression="zlib")
    if corrupt_page is not None:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[corrupt_page - 1]
            offset, size = page.dataoffsets[0], page.databytecounts[0]
        with open(path, "r+b") as handle:
            handle.seek(offset + 2)
            handle.write(b"\xff" * (size - 4))
    return path, pixels


def upload_stack(run_cli, upload_files, path, *extra):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(path)}])
    config = upload_files.config(upload_type="frames", frames_format="tif_id", microscope="scope")
    return run_cli("upload", "--csv", csv_path, "--config", config, "--workers", "2", *extra)


def assert_old_dataset_intact(site, run_cli, before, pixels=None, frames=PAGES):
    """Every row and every object as it was, verify clean, the old pixels read back."""
    assert site.snapshot() == before
    verified = run_cli("verify", DATASET_ID)
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    assert f"{frames} object(s) checked" in verified.stdout
    if pixels is not None:
        with site.connect() as db:
            array = db.dataset(DATASET_ID).read(verify=True)
        np.testing.assert_array_equal(array[0, 0, 0], pixels)


def overwrite_with_a_corrupt_page_15_of_20(site, run_cli, upload_files, tmp_path):
    old, pixels = write_stack(tmp_path / "old.tif", seed=1)
    assert upload_stack(run_cli, upload_files, old).exit_code == 0
    new, _ = write_stack(tmp_path / "new.tif", seed=2, corrupt_page=15)
    before = site.snapshot()
    result = upload_stack(run_cli, upload_files, new, "--overwrite")
    assert result.exit_code != 0
    assert len(result.errors) == 1 and str(new) in result.errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert_old_dataset_intact(site, run_cli, before, pixels)


def test_overwrite_with_a_corrupt_page_leaves_the_old_dataset_intact(
        site, run_cli, upload_files, tmp_path):
    overwrite_with_a_corrupt_page_15_of_20(site, run_cli, upload_files, tmp_path)


def test_overwrite_with_a_corrupt_page_leaves_the_old_dataset_intact_on_s3(
        pg_s3_site, run_cli, upload_files, tmp_path):
    overwrite_with_a_corrupt_page_15_of_20(pg_s3_site, run_cli, upload_files, tmp_path)


def big_acquisition(folder, seed):
    """24 frames of 256x256 uint16 (about 2 MB as PNG)."""
    folder.mkdir(parents=True)
    write_mm_ometiff(folder, "big", height=256, width=256, seed=seed)
    return folder


def upload_acquisition(run_cli, upload_files, folder, *extra):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(folder)}])
    return run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(),
                   "--workers", "2", *extra)


def test_storage_filling_up_during_an_overwrite_leaves_the_old_dataset_intact(
        site, run_cli, upload_files, small_disk, tmp_path):  # noqa: F811 - the fixture
    small_disk(site.storage_root, size="3m")  # room for the old dataset, not for both
    assert upload_acquisition(run_cli, upload_files, big_acquisition(tmp_path / "a", 5)
                              ).exit_code == 0
    before = site.snapshot()
    result = upload_acquisition(run_cli, upload_files, big_acquisition(tmp_path / "b", 6),
                                "--overwrite")
    assert result.exit_code == 1, result.stderr
    assert len(result.errors) == 1 and "is full while writing" in result.errors[0]
    assert f"raw_frames/{DATASET_ID}/g" in result.errors[0]  # the new generation, not the old
    assert_old_dataset_intact(site, run_cli, before, frames=24)


def test_bucket_refusing_writes_during_an_overwrite_leaves_the_old_dataset_intact(
        pg_s3_site, run_cli, upload_files, mm_ometiff, mm_ometiff_uint8, monkeypatch):
    from botocore.exceptions import ClientError

    from imagingdb.storage.s3 import S3Storage

    assert upload_acquisition(run_cli, upload_files, mm_ometiff).exit_code == 0
    before = pg_s3_site.snapshot()
    put, frames = S3Storage.put_bytes, []

    def put_until_the_quota_is_reached(self, key, data):
        if "/im_" in key:
            frames.append(key)
            if len(frames) > 5:
                raise self._error(ClientError(
                    {"Error": {"Code": "QuotaExceeded", "Message": "bucket quota reached"}},
                    "PutObject"), "write", key)
        put(self, key, data)

    monkeypatch.setattr(S3Storage, "put_bytes", put_until_the_quota_is_reached)
    result = upload_acquisition(run_cli, upload_files, mm_ometiff_uint8, "--overwrite")
    assert result.exit_code == 1, result.stderr
    assert len(result.errors) == 1 and "QuotaExceeded" in result.errors[0]
    monkeypatch.setattr(S3Storage, "put_bytes", put)
    assert_old_dataset_intact(pg_s3_site, run_cli, before, frames=24)


# --------------------------------------------------------- the layout, and the original's


def test_first_upload_writes_the_dataset_folder_as_the_original_did(
        site, run_cli, upload_files, tmp_path):
    old, _ = write_stack(tmp_path / "old.tif", seed=1)
    assert upload_stack(run_cli, upload_files, old).exit_code == 0
    with site.connect() as db:
        assert db.dataset(DATASET_ID).storage_dir == f"raw_frames/{DATASET_ID}"
    assert sorted(site.objects()) == [
        f"raw_frames/{DATASET_ID}/im_c000_z{z:03d}_t000_p000.png" for z in range(PAGES)]


def test_overwrite_switches_to_a_new_generation_and_removes_the_old_after_its_commit(
        site, run_cli, upload_files, tmp_path):
    old, _ = write_stack(tmp_path / "old.tif", seed=1)
    new, pixels = write_stack(tmp_path / "new.tif", seed=2)
    assert upload_stack(run_cli, upload_files, old).exit_code == 0
    assert upload_stack(run_cli, upload_files, new, "--overwrite").exit_code == 0
    with site.connect() as db:
        folder = db.dataset(DATASET_ID).storage_dir
        np.testing.assert_array_equal(db.dataset(DATASET_ID).read(verify=True)[0, 0, 0], pixels)
    assert folder.startswith(f"raw_frames/{DATASET_ID}/g")
    assert sorted(site.objects()) == [
        f"{folder}/im_c000_z{z:03d}_t000_p000.png" for z in range(PAGES)]
    verified = run_cli("verify", DATASET_ID)
    assert verified.exit_code == 0 and "leftover" not in verified.stdout, verified.stdout


@pytest.mark.parametrize("storage_dir", ["default", None, ""])
def test_overwrite_of_an_original_imagingdb_dataset(site, run_cli, upload_files, tmp_path,
                                                    storage_dir):
    """The original's rows keep their objects in raw_frames/<ID> (early ones record no
    storage_dir at all): a failed overwrite leaves them, a good one replaces them."""
    from imagingdb import db as dbq
    from imagingdb.config import find_site_config
    from tests.original_imagingdb import OriginalImagingDB

    serial = "ML-2018-04-05-00-00-00-0001"
    engine = dbq.create_engine(find_site_config().database)
    OriginalImagingDB(engine, site.storage_root).add_frames(serial, seed=3,
                                                            storage_dir=storage_dir)
    engine.dispose()
    assert run_cli("db", "upgrade").exit_code == 0
    before = site.snapshot()
    config = upload_files.config(upload_type="frames", frames_format="tif_id", microscope="scope")

    def overwrite(path):
        csv_path = upload_files.csv([{"dataset_id": serial, "file_name": str(path)}])
        return run_cli("upload", "--csv", csv_path, "--config", config, "--overwrite")

    failed = overwrite(write_stack(tmp_path / "bad.tif", seed=2, corrupt_page=15)[0])
    assert failed.exit_code != 0 and len(failed.errors) == 1, failed.stderr
    assert site.snapshot() == before
    assert run_cli("verify", serial).exit_code == 0

    good, pixels = write_stack(tmp_path / "good.tif", seed=4)
    assert overwrite(good).exit_code == 0
    with site.connect() as db:
        folder = db.dataset(serial).storage_dir
        np.testing.assert_array_equal(db.dataset(serial).read(verify=True)[0, 0, 0], pixels)
    assert folder.startswith(f"raw_frames/{serial}/g")
    assert set(site.objects()) == {f"{folder}/im_c000_z{z:03d}_t000_p000.png"
                                   for z in range(PAGES)}
    assert run_cli("verify", serial).exit_code == 0
