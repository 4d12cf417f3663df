"""imagingdb verify: every object re-read and checked against its rows, on SQLite and PostgreSQL."""

import hashlib

import numpy as np
import pytest
import sqlalchemy as sa

from imagingdb import db as dbq
from imagingdb.codecs.png import decode_png, encode_png
from tests.conftest import DATASET_ID

FILE_ID = "ML-2000-01-01-00-00-00-0001"
FRAME = "im_c001_z002_t001_p000.png"


@pytest.fixture
def frames_dir(uploaded_ometiff, site):
    return site.storage_root / "raw_frames" / uploaded_ometiff


@pytest.fixture
def file_dataset(site, run_cli, upload_files, tmp_path):
    """A dataset kept whole: a 3 MB file, so the streamed hash reads it in pieces."""
    source = tmp_path / "stack.bin"
    source.write_bytes(np.random.default_rng(3).bytes(3 << 20))
    csv_path = upload_files.csv([{"dataset_id": FILE_ID, "file_name": str(source)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.file_config()).exit_code == 0
    return site.storage_root / "raw_files" / FILE_ID / "stack.bin"


def flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_intact_dataset_verifies(frames_dir, run_cli):
    result = run_cli("verify", DATASET_ID)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [f"{DATASET_ID}  ok  (24 object(s) checked)"]
    assert result.stderr.strip() == ("verified 1 dataset(s), 24 object(s): all match their "
                                     "checksums")


def test_intact_dataset_json(frames_dir, run_cli):
    report = run_cli("verify", DATASET_ID, "--format", "json").json()
    assert report["ok"] is True
    [dataset] = report["datasets"]
    assert dataset["objects_checked"] == 24 and dataset["problems"] == []
    assert dataset["bytes_read"] == sum(p.stat().st_size for p in frames_dir.iterdir())


def test_flipped_byte_is_reported_corrupted_with_its_frame(frames_dir, run_cli, site):
    flip_byte(frames_dir / FRAME, 100)
    before = site.snapshot()
    result = run_cli("verify", DATASET_ID, "--format", "json")
    assert result.exit_code == 1
    assert result.errors == ["Error: 1 of 1 dataset(s) failed verification (1 corrupted)"]
    [problem] = result.json()["datasets"][0]["problems"]
    assert problem["problem"] == "corrupted"
    assert problem["key"] == f"raw_frames/{DATASET_ID}/{FRAME}"
    assert problem["frame"] == {"channel": 1, "slice": 2, "time": 1, "position": 0}
    assert site.snapshot() == before  # verify only reads


def test_valid_png_with_one_pixel_changed_fails_its_sha256(frames_dir, run_cli):
    pixels = decode_png((frames_dir / FRAME).read_bytes())
    pixels[3, 4] ^= 1
    (frames_dir / FRAME).write_bytes(encode_png(pixels))
    result = run_cli("verify", DATASET_ID)
    assert result.exit_code == 1
    assert f"corrupted  raw_frames/{DATASET_ID}/{FRAME} frame (c=1, z=2, t=1, p=0): the " \
           "sha256 of its pixels differs" in result.stdout


def test_png_of_another_shape_is_corrupted(frames_dir, run_cli):
    (frames_dir / FRAME).write_bytes(encode_png(np.zeros((32, 47), np.uint16)))
    result = run_cli("verify", DATASET_ID)
    assert result.exit_code == 1 and "shape (32, 47)" in result.stdout


def test_deleted_object_is_missing(frames_dir, run_cli):
    (frames_dir / FRAME).unlink()
    result = run_cli("verify", DATASET_ID)
    assert result.exit_code == 1
    assert f"  missing    raw_frames/{DATASET_ID}/{FRAME} frame (c=1, z=2, t=1, p=0): not in " \
           "storage" in result.stdout.splitlines()
    assert result.errors == ["Error: 1 of 1 dataset(s) failed verification (1 missing)"]


@pytest.mark.parametrize("name", ["stray.png", ".im_c000_z000_t000_p000.png.0123abcd.tmp"])
def test_stray_object_is_extra(frames_dir, run_cli, name):
    (frames_dir / name).write_bytes(b"left behind")
    result = run_cli("verify", DATASET_ID, "--format", "json")
    assert result.exit_code == 1
    assert result.json()["datasets"][0]["problems"] == [{
        "problem": "extra", "key": f"raw_frames/{DATASET_ID}/{name}", "frame": None,
        "detail": "no row references it"}]


def test_leftover_of_the_other_kind_is_noted_not_counted_as_damage(frames_dir, run_cli, site):
    """raw_files/<ID> is not the committed generation of a frames dataset: what lies there
    is another upload attempt's (a killed one), which gc removes."""
    leftover = site.storage_root / "raw_files" / DATASET_ID / "old.tif"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"an earlier upload kept whole")
    result = run_cli("verify", DATASET_ID)
    assert result.exit_code == 0, result.stdout
    assert f"leftover   raw_files/{DATASET_ID}: 1 object(s) of another upload attempt" \
        in result.stdout


def test_every_kind_of_problem_at_once(frames_dir, run_cli):
    flip_byte(frames_dir / "im_c000_z000_t000_p000.png", 60)
    (frames_dir / "im_c000_z001_t000_p001.png").unlink()
    (frames_dir / "extra.png").write_bytes(b"x")
    result = run_cli("verify", DATASET_ID)
    assert result.exit_code == 1
    kinds = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert sorted(kinds) == ["corrupted", "extra", "missing"]
    assert result.errors == [
        "Error: 1 of 1 dataset(s) failed verification (1 missing, 1 corrupted, 1 extra)"]


def test_a_frame_row_lost_from_the_database_is_incomplete(frames_dir, run_cli, site):
    with site.connect() as db, db.site.connection(write=True) as conn:
        conn.execute(sa.delete(dbq.frames).where(dbq.frames.c.file_name == FRAME))
    result = run_cli("verify", DATASET_ID, "--format", "json")
    problems = {p["problem"]: p for p in result.json()["datasets"][0]["problems"]}
    assert set(problems) == {"incomplete", "extra"}
    assert "records 24 frame(s) but the frames table holds 23" in problems["incomplete"]["detail"]
    assert problems["extra"]["key"].endswith(FRAME)


def test_frame_rows_are_read_in_pages(frames_dir, site, monkeypatch):
    from imagingdb import verify

    monkeypatch.setattr(verify, "ROWS_PER_PAGE", 5)
    (frames_dir / FRAME).unlink()
    with site.connect() as db:
        check = verify.verify_dataset(db.site, DATASET_ID, workers=3)
    assert check.objects_checked == 24
    assert [(p.kind, p.key.rsplit("/", 1)[1]) for p in check.problems] == [("missing", FRAME)]


def test_file_dataset_verifies_then_fails_on_a_flipped_byte(file_dataset, run_cli):
    assert run_cli("verify", FILE_ID).exit_code == 0
    flip_byte(file_dataset, (2 << 20) + 5)
    result = run_cli("verify", FILE_ID, "--format", "json")
    assert result.exit_code == 1
    [problem] = result.json()["datasets"][0]["problems"]
    assert problem == {"problem": "corrupted", "key": f"raw_files/{FILE_ID}/stack.bin",
                       "frame": None, "detail": problem["detail"]}
    assert "sha256 differs" in problem["detail"]


def test_file_read_in_pieces_hashes_like_the_whole(file_dataset, site):
    with site.connect() as db:
        pieces = list(db.site.storage.read_chunks(f"raw_files/{FILE_ID}/stack.bin", chunk_size=1 << 20))
    assert len(pieces) == 3
    assert hashlib.sha256(b"".join(pieces)).digest() == hashlib.sha256(
        file_dataset.read_bytes()).digest()


def test_missing_file_of_a_file_dataset(file_dataset, run_cli):
    file_dataset.unlink()
    result = run_cli("verify", FILE_ID)
    assert result.exit_code == 1
    assert f"missing    raw_files/{FILE_ID}/stack.bin: not in storage" in result.stdout


def test_all_checks_every_dataset_and_names_the_bad_one(frames_dir, file_dataset, run_cli):
    flip_byte(file_dataset, 10)
    result = run_cli("verify", "--all")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{FILE_ID}  1 problem(s)  (1 object(s) checked)"
    assert lines[2] == f"{DATASET_ID}  ok  (24 object(s) checked)"
    assert result.errors == ["Error: 1 of 2 dataset(s) failed verification (1 corrupted)"]


def test_all_on_an_empty_database_is_fine(site, run_cli):
    result = run_cli("verify", "--all")
    assert result.exit_code == 0 and "verified 0 dataset(s)" in result.stderr


@pytest.mark.parametrize("args, message", [
    ([], "give one dataset ID or --all"),
    ([DATASET_ID, "--all"], "give one dataset ID or --all"),
    (["ML-1999-01-01-00-00-00-0001"], "dataset ML-1999-01-01-00-00-00-0001 not found"),
    (["../etc/passwd"], "invalid dataset ID '../etc/passwd'"),
    ([DATASET_ID, "--format", "xml"], "Invalid value for '--format'"),
])
def test_bad_verify_arguments(frames_dir, run_cli, args, message):
    result = run_cli("verify", *args)
    assert result.exit_code == 2
    assert len(result.errors) == 1 and message in result.errors[0], result.stderr
