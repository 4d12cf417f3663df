"""Adopting a database and storage made by the original imagingDB, on PostgreSQL (where
the original ran) and SQLite: `imagingdb db upgrade` keeps every row, reports what rows
block, and the old datasets can be queried, downloaded and read as they are."""

import json
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from imagingdb import db as dbq
from imagingdb.config import find_site_config
from imagingdb.errors import WorkError
from tests.original_imagingdb import OriginalImagingDB, table_rows
from tests.test_migrate import fresh_structure, structure

FIRST = "ML-2018-04-05-00-00-00-0001"   # frames, storage_dir recorded
EARLY = "ML-2017-11-02-09-15-00-0001"   # frames, storage_dir NULL (the original's early days)
NOTES = "ML-2018-04-06-00-00-00-0002"   # one file kept whole, storage_dir NULL
TWICE = "ISP-2019-01-01-00-00-00-0001"  # registered twice: data_set ids 4 and 5

DUPLICATE_WARNING = (f"Warning: unique index data_set_dataset_serial_key on data_set "
                     f"(dataset_serial) waits for: dataset_serial {TWICE} is in 2 rows "
                     f"(id 4, 5); keep one row of each")


@pytest.fixture
def original(site):
    """The site's database and storage as the original imagingDB left them."""
    engine = dbq.create_engine(find_site_config().database)
    made = OriginalImagingDB(engine, site.storage_root)
    first = made.add_frames(FIRST, seed=1, description="first plate")
    made.add_frames(EARLY, seed=2, storage_dir=None, parent=first, channels=("BF",), slices=3)
    made.add_file(NOTES, "notes.tif", b"II*\x00 kept whole", storage_dir=None)
    made.add_file(TWICE, "a.txt", b"first upload")
    made.add_file(TWICE, "b.txt", b"second upload")
    yield made
    engine.dispose()


@pytest.fixture
def adopted(original, run_cli):
    result = run_cli("db", "upgrade")
    assert result.exit_code == 0, result.stderr
    return original


def test_commands_refuse_a_database_not_adopted_yet_and_say_how(original, run_cli):
    result = run_cli("query")
    assert result.exit_code == 1
    assert result.errors == ["Error: this database was made by the original imagingDB; adopt it "
                             "with: imagingdb db upgrade (nothing is lost, `imagingdb db status` "
                             "shows what it will do)"]
    status = run_cli("db", "status", "--format", "json").json()
    assert status["schema_version"] == 0 and status["datasets"] == 5
    assert status["state"] == "made by the original imagingDB: imagingdb db upgrade adopts it"
    assert status["blocked"] == [DUPLICATE_WARNING[len("Warning: "):]]
    assert "index data_set_date_time_idx on data_set (date_time)" in status["upgrade_adds"]


def test_upgrade_adopts_it_without_changing_a_row(original, run_cli):
    before = table_rows(original.engine)
    result = run_cli("db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert f"upgraded the schema from version 0 to {dbq.SCHEMA_VERSION}" in result.stderr
    assert "step 1: adopt a database made by the original imagingDB" in result.stderr
    assert DUPLICATE_WARNING in result.stderr.splitlines()
    assert "run imagingdb db upgrade again" in result.stderr
    assert table_rows(original.engine) == before
    shape = structure(original.engine)
    assert "data_set_dataset_serial_key" not in shape["data_set"]["indexes"]
    assert shape["frames"]["indexes"]["frames_index_key"] == (
        True, ("frames_global_id", "channel_idx", "slice_idx", "time_idx", "pos_idx"))
    assert shape["frames"]["columns"]["file_name"] is False  # NOT NULL where the rows allow
    assert shape["frames"]["foreign_keys"][("frames_global_id",)] == ("frames_global", "CASCADE")
    assert shape["frames_global"]["columns"]["storage_dir"] is True  # NULL in early datasets


def test_adopted_datasets_are_queried_as_they_are(adopted, run_cli):
    records = run_cli("query", "--format", "json").json()
    assert [(r["dataset_id"], r["frames"], r["parent_dataset_id"]) for r in records] == [
        (TWICE, False, None), (TWICE, False, None), (EARLY, True, FIRST), (FIRST, True, None),
        (NOTES, False, None)]
    assert records[3]["date_time"] == "2018-04-05T00:00:00"
    assert records[3]["description"] == "first plate"
    assert [r["dataset_id"] for r in run_cli("query", "--project-id", "ML", "--start-date",
                                             "2018-01-01", "--format", "json").json()] == [
        FIRST, NOTES]


@pytest.mark.parametrize("serial", [FIRST, EARLY])
def test_adopted_frames_are_read_from_the_original_layout(adopted, site, serial):
    with site.connect() as db:
        ds = db.dataset(serial)
        array = ds.read(verify=True)  # the original's sha256 checks out
    for (c, z, t, p), pixels in adopted.pixels[serial].items():
        np.testing.assert_array_equal(array[p, t, c, z], pixels)


def test_adopted_frames_are_downloaded_byte_for_byte(adopted, site, run_cli, tmp_path):
    result = run_cli("download", "--id", FIRST, "--dest", tmp_path, "-c", "GFP", "-z", "1")
    assert result.exit_code == 0, result.stderr
    target = Path(result.stdout.strip())
    name = "im_c001_z001_t000_p000.png"
    assert sorted(p.name for p in target.glob("*.png")) == [name]
    assert (target / name).read_bytes() == (
        site.storage_root / "raw_frames" / FIRST / name).read_bytes()
    meta = json.loads((target / "global_metadata.json").read_text())
    assert meta["global_meta"] == {"ChNames": ["DAPI", "GFP"], "Slices": 2}


def test_adopted_file_without_storage_dir_is_downloaded(adopted, run_cli, tmp_path):
    result = run_cli("download", "--id", NOTES, "--dest", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / NOTES / "notes.tif").read_bytes() == b"II*\x00 kept whole"


def test_a_duplicated_id_is_an_error_naming_its_rows(adopted, site, run_cli, tmp_path):
    with site.connect() as db, pytest.raises(WorkError) as error:
        db.dataset(TWICE)
    assert str(error.value) == (f"dataset {TWICE} is registered 2 times (data_set id 4, 5); "
                                "keep one, see: imagingdb db status")
    result = run_cli("download", "--id", TWICE, "--dest", tmp_path)
    assert result.exit_code == 1 and "is registered 2 times" in result.errors[0]


def test_once_the_duplicate_is_resolved_the_unique_index_goes_in(adopted, site, run_cli,
                                                                 tmp_path, request):
    with adopted.engine.begin() as conn:  # what the README tells a lab to do
        conn.execute(sa.text("DELETE FROM file_global WHERE dataset_id = 5"))
        conn.execute(sa.text("DELETE FROM data_set WHERE id = 5"))
    result = run_cli("db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert ("added unique index data_set_dataset_serial_key on data_set (dataset_serial)"
            in result.stderr)
    assert "Warning" not in result.stderr
    assert run_cli("db", "status", "--format", "json").json()["state"] == "up to date"
    assert structure(adopted.engine) == fresh_structure(site, tmp_path, request)
    download = run_cli("download", "--id", TWICE, "--dest", tmp_path / "d")
    assert download.exit_code == 0, download.stderr
    assert (tmp_path / "d" / TWICE / "a.txt").read_bytes() == b"first upload"


def test_new_uploads_go_into_an_adopted_database(adopted, site, run_cli, upload_files,
                                                 mm_ometiff):
    new_id = "ML-2020-02-02-12-00-00-0001"
    result = run_cli("upload", "--csv", upload_files.csv([{"dataset_id": new_id,
                                                           "file_name": str(mm_ometiff)}]),
                     "--config", upload_files.frames_config())
    assert result.exit_code == 0, result.stderr
    with site.connect() as db:
        assert db.dataset(new_id).nbr_frames == 24
        assert len(db.query()) == 6


def test_nulls_where_imagingdb_needs_a_value_are_reported_then_fixed(original, site, run_cli):
    with original.engine.begin() as conn:
        conn.execute(sa.text("UPDATE frames_global SET nbr_frames = NULL WHERE id = 2"))
    result = run_cli("db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert ("Warning: NOT NULL on frames_global.nbr_frames waits for: frames_global.nbr_frames "
            "is NULL in 1 row (id 2); fill it in") in result.stderr.splitlines()
    with site.connect() as db:
        assert db.dataset(EARLY).read().shape == (1, 1, 1, 3, 6, 5)
    with original.engine.begin() as conn:
        conn.execute(sa.text("UPDATE frames_global SET nbr_frames = 3 WHERE id = 2"))
    again = run_cli("db", "upgrade")
    warnings = [line for line in again.stderr.splitlines() if line.startswith("Warning")]
    assert DUPLICATE_WARNING in warnings and not [w for w in warnings if "nbr_frames" in w]
    assert structure(original.engine)["frames_global"]["columns"]["nbr_frames"] is False


def test_rows_pointing_at_nothing_are_reported(original, site, run_cli):
    with original.engine.connect() as conn:
        if site.kind == "sqlite":  # the original never made SQLite enforce foreign keys
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")
        else:  # a PostgreSQL database that lost the constraint along the way
            conn.exec_driver_sql("ALTER TABLE frames DROP CONSTRAINT frames_frames_global_id_fkey")
        conn.exec_driver_sql("INSERT INTO frames (channel_idx, slice_idx, time_idx, pos_idx, "
                             "file_name, frames_global_id) VALUES (0, 0, 0, 0, 'lost.png', 99)")
        conn.commit()
    before = table_rows(original.engine)
    result = run_cli("db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert ("Warning: foreign key frames.frames_global_id -> frames_global.id waits for: frames "
            "has 1 row (id 8) pointing at no frames_global row") in result.stderr.splitlines()
    assert table_rows(original.engine) == before
    with site.connect() as db:
        assert db.dataset(FIRST).read().shape == (1, 1, 2, 2, 6, 5)
