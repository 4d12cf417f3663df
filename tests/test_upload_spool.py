"""Frame rows are spooled to disk during an upload, then registered in one transaction."""

import sqlalchemy as sa

from imagingdb import db as dbq
from imagingdb.spool import RowSpool
from tests.conftest import DATASET_ID
from tests.helpers import assert_refused, source_frames

# ------------------------------------------------------------------ RowSpool


def test_spool_gives_back_rows_in_order_and_in_batches():
    rows = [{"file_name": f"im_{n}.png", "metadata_json": {"n": n, "text": "µm ✓", "none": None}}
            for n in range(7)]
    with RowSpool() as spool:
        for row in rows:
            spool.add(f"raw_frames/X/{row['file_name']}", row)
        assert len(spool) == 7
        batches = list(spool.batches(3))
        assert [len(b) for b in batches] == [3, 3, 1]
        assert [row for batch in batches for row in batch] == rows
        assert list(spool.keys()) == [f"raw_frames/X/im_{n}.png" for n in range(7)]
        assert "raw_frames/X/im_3.png" in spool and "raw_frames/X/im_9.png" not in spool


def test_batches_of_large_rows_are_bounded_by_their_json_too():
    # Micro-Manager rows carry KBs of metadata: a batch stops once its JSON passes max_bytes
    rows = [{"file_name": f"im_{n}.png", "metadata_json": {"note": "x" * 1000, "n": n}}
            for n in range(10)]
    with RowSpool() as spool:
        for row in rows:
            spool.add(row["file_name"], row)
        batches = list(spool.batches(2000, max_bytes=3000))
        # each row's JSON is ~1,050 bytes: the third passes 3,000
        assert [len(b) for b in batches] == [3, 3, 3, 1]
        assert [row for batch in batches for row in batch] == rows
        assert [len(b) for b in spool.batches(4, max_bytes=10 ** 6)] == [4, 4, 2]


def test_empty_spool_has_no_batches():
    with RowSpool() as spool:
        assert len(spool) == 0 and list(spool.batches(10)) == [] and list(spool.keys()) == []


# ------------------------------------------------------------------ uploads


def _upload(run_cli, upload_files, mm_ometiff, *extra):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    return run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(), *extra)


def test_rows_inserted_in_many_batches_are_all_registered(site, run_cli, upload_files,
                                                          mm_ometiff, monkeypatch):
    monkeypatch.setattr("imagingdb.upload.INSERT_BATCH", 5)  # 24 frames: 5 batches
    result = _upload(run_cli, upload_files, mm_ometiff)
    assert result.exit_code == 0, result.stderr
    with site.connect() as database, database.site.connection() as conn:
        rows = conn.execute(sa.select(dbq.frames)).all()
        nbr_frames = conn.execute(sa.select(dbq.frames_global.c.nbr_frames)).scalar_one()
    assert nbr_frames == len(rows) == 24
    assert {(r.channel_idx, r.slice_idx, r.time_idx, r.pos_idx) for r in rows} == set(
        source_frames(mm_ometiff))
    assert all(r.metadata_json["Channel"] == r.channel_name for r in rows)


def test_registration_holds_one_batch_of_rows_at_a_time(site, run_cli, upload_files,
                                                        mm_ometiff, monkeypatch):
    """A registered batch's rows are let go before the next is read from the spool (a
    Micro-Manager row is ~10 KB of dicts: two batches alive was ~3 MB more at 1,024 frames)."""
    monkeypatch.setattr("imagingdb.upload.INSERT_BATCH", 5)
    insert_frames, seen = dbq.insert_frames, []

    def watching(conn, rows):
        assert all(not earlier for earlier in seen), "an earlier batch is still held"
        insert_frames(conn, rows)
        seen.append(rows)

    monkeypatch.setattr(dbq, "insert_frames", watching)
    result = _upload(run_cli, upload_files, mm_ometiff)
    assert result.exit_code == 0, result.output
    assert len(seen) == 5 and all(batch == [] for batch in seen)


def test_a_failing_batch_registers_nothing_and_removes_the_objects(site, run_cli, upload_files,
                                                                   mm_ometiff, monkeypatch):
    from imagingdb.errors import WorkError

    before = site.snapshot()
    monkeypatch.setattr("imagingdb.upload.INSERT_BATCH", 5)
    original = RowSpool.batches

    def failing_batches(self, size):
        for number, batch in enumerate(original(self, size)):
            if number == 2:
                raise WorkError("the database went away while registering")
            yield batch

    monkeypatch.setattr(RowSpool, "batches", failing_batches)
    result = _upload(run_cli, upload_files, mm_ometiff)
    assert_refused(result, site, before, code=1, contains=("went away",))


def test_the_uploader_holds_only_the_keys_in_flight(site, upload_files, mm_ometiff, monkeypatch):
    """Rows go to the spool as frames complete: memory does not grow with the frame count."""
    from imagingdb import upload
    from imagingdb.config import load_upload_config
    from imagingdb.progress import Progress
    from imagingdb.upload import Uploader
    from imagingdb.upload_rows import read_upload_csv

    held, row_uploads = [], []
    make_row_upload = upload.RowUpload.__init__

    def keep(self, *args):
        make_row_upload(self, *args)
        row_uploads.append(self)

    monkeypatch.setattr(upload.RowUpload, "__init__", keep)

    class Watch(Progress):
        def advance(self, frames, nbytes):
            held.append(row_uploads[-1].unspooled)

    with site.connect() as database:
        uploader = Uploader(database.site, load_upload_config(upload_files.frames_config()),
                            overwrite=False, workers=2, progress=Watch())
        csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
        (row,) = read_upload_csv(csv_path)
        assert uploader.upload_row(row).ok
    assert len(held) == 24 and max(held) <= 2 * 2
    assert row_uploads[-1].unspooled == 0
