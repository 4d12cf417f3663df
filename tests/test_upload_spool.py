"""Frame rows are spooled to disk during an upload, then registered in one transaction."""

import pytest
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


AWKWARD = ["", "a,b", 'say "hi"', "line\nbreak\r\n", "back\\slash \\N \\.", "µm ✓ 日本",
           "tab\there", "NULL", ",\",\n"]


def _frames_global(conn, dataset_id):
    from datetime import datetime

    pk = dbq.insert_dataset(conn, {"dataset_serial": dataset_id, "description": "rows",
                                   "microscope": "Leica SP8", "frames": True,
                                   "date_time": datetime(2031, 1, 1)})
    return dbq.insert_frames_global(conn, {
        "storage_dir": f"raw_frames/{dataset_id}", "nbr_frames": 10, "im_width": 8,
        "im_height": 8, "nbr_slices": 1, "nbr_channels": 10, "nbr_timepoints": 1,
        "nbr_positions": 1, "im_colors": 1, "bit_depth": "uint16", "metadata_json": {},
        "dataset_id": pk, "frame_format": "png"})


def test_frame_rows_are_registered_with_every_value_as_given(site):
    """insert_frames (COPY on PostgreSQL, executemany on SQLite): quotes, commas, line
    breaks, backslashes and COPY's own markers, non-ASCII, an empty string apart from
    NULL, JSON with nulls and numbers at their limits, NULL QC figures."""
    rows = [{"channel_idx": c, "slice_idx": 0, "time_idx": 0, "pos_idx": 0,
             "channel_name": name, "file_name": f"im_c{c:03d}.png", "sha256": f"{c:064x}",
             "metadata_json": {"text": name, "nested": {"q": '"', "list": [1, None, 2.5]},
                               "big": 10 ** 15, "tiny": 1e-300, "yes": True},
             "qc_min": 0.0, "qc_max": 65535.0, "qc_mean": 1 / 3, "qc_saturated": None,
             "qc_focus": 1.5e300} for c, name in enumerate(AWKWARD)]
    rows.append({**rows[0], "channel_idx": len(AWKWARD), "channel_name": None,
                 "sha256": None, "metadata_json": None})
    with site.connect() as database, database.site.connection(write=True) as conn:
        fg = _frames_global(conn, DATASET_ID)
        dbq.insert_frames(conn, [{**row, "frames_global_id": fg} for row in rows])
        stored = conn.execute(sa.select(dbq.frames).where(dbq.frames.c.frames_global_id == fg)
                              .order_by(dbq.frames.c.channel_idx)).mappings().all()
    assert len(stored) == len(rows)
    for row, got in zip(rows, stored):
        assert {key: got[key] for key in row} == row


def test_a_refused_frame_row_is_the_database_s_error_and_registers_nothing(site):
    row = {"channel_idx": 0, "slice_idx": 0, "time_idx": 0, "pos_idx": 0, "channel_name": "DAPI",
           "file_name": "im.png", "sha256": None, "metadata_json": {}}
    with pytest.raises(sa.exc.IntegrityError):  # the same frame twice: frames_index_key
        with site.connect() as database, database.site.connection(write=True) as conn:
            fg = _frames_global(conn, DATASET_ID)
            dbq.insert_frames(conn, [{**row, "frames_global_id": fg}] * 2)
    with site.connect() as database, database.site.connection() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dbq.frames)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(dbq.data_set)).scalar() == 0
