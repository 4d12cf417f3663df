"""Schema versions on SQLite and PostgreSQL: a fresh database is schema.sql; an older one is
brought forward by `imagingdb db upgrade` to exactly what schema.sql makes, keeping every row."""

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from imagingdb import db as dbq
from imagingdb.config import find_site_config
from imagingdb.db import migrate, tables

SCHEMA_V1 = Path(__file__).parent / "data" / "schema_v1.sql"


def site_engine():
    """An engine on the site's database that does not touch its schema."""
    return dbq.create_engine(find_site_config().database)


def structure(engine) -> dict:
    """Columns (nullability), indexes, foreign keys (delete rule) of every imagingdb table."""
    inspector = sa.inspect(engine)
    result = {}
    for table in ("schema_version", "data_set", "file_global", "frames_global", "frames"):
        result[table] = {
            "columns": {c["name"]: c["nullable"] for c in inspector.get_columns(table)},
            "indexes": {i["name"]: (bool(i["unique"]), tuple(i["column_names"]))
                        for i in inspector.get_indexes(table)},
            "foreign_keys": foreign_keys(engine, table),
        }
    return result


def foreign_keys(engine, table) -> dict:
    """(columns) -> (referred table, delete rule); SQLAlchemy does not read SQLite's
    column-level ON DELETE, so SQLite's own PRAGMA is asked there."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            return {(row[3],): (row[2], row[6].upper())
                    for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({table})")}
    return {tuple(fk["constrained_columns"]): (
        fk["referred_table"], (fk["options"].get("ondelete") or "NO ACTION").upper())
        for fk in sa.inspect(engine).get_foreign_keys(table)}


def all_rows(engine) -> dict:
    with engine.connect() as conn:
        return {table: conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")).all()
                for table in ("data_set", "file_global", "frames_global", "frames")}


def assert_rows_kept(before: dict, after: dict) -> None:
    """Every row of ``before`` is in ``after`` unchanged; columns an upgrade added (at the
    end of a row) are NULL in it."""
    assert before.keys() == after.keys()
    for table, rows in before.items():
        assert len(after[table]) == len(rows), table
        for old, new in zip(rows, after[table]):
            assert tuple(new[:len(old)]) == tuple(old) and all(v is None for v in new[len(old):])


@pytest.fixture
def version_1(site, monkeypatch):
    """The site's database made by imagingdb's first schema, with a dataset of each kind."""
    engine = site_engine()
    with monkeypatch.context() as patch:
        patch.setattr(tables, "schema_sql", SCHEMA_V1.read_text)
        statements = dbq.schema_statements(engine.dialect.name)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
        frames_pk = conn.execute(sa.insert(dbq.data_set).values(
            dataset_serial="ML-2005-05-23-10-00-00-0001", frames=True, microscope="scope2",
            date_time=sa.func.current_timestamp()).returning(dbq.data_set.c.id)).scalar_one()
        global_pk = conn.execute(sa.insert(dbq.frames_global).values(
            storage_dir="raw_frames/ML-2005-05-23-10-00-00-0001", nbr_frames=1, im_width=4,
            im_height=3, nbr_slices=1, nbr_channels=1, nbr_timepoints=1, nbr_positions=1,
            im_colors=1, bit_depth="uint16", metadata_json={"ChNames": ["DAPI"]},
            dataset_id=frames_pk).returning(dbq.frames_global.c.id)).scalar_one()
        conn.execute(sa.insert(dbq.frames).values(
            channel_idx=0, slice_idx=0, time_idx=0, pos_idx=0, channel_name="DAPI",
            file_name="im_c000_z000_t000_p000.png", frames_global_id=global_pk))
        file_pk = conn.execute(sa.insert(dbq.data_set).values(
            dataset_serial="ML-2005-05-23-10-00-00-0002", frames=False,
            date_time=sa.func.current_timestamp(), parent_id=frames_pk,
        ).returning(dbq.data_set.c.id)).scalar_one()
        conn.execute(sa.insert(dbq.file_global).values(
            storage_dir="raw_files/ML-2005-05-23-10-00-00-0002", file_name="a.tif",
            dataset_id=file_pk, sha256="0" * 64))
    yield engine
    engine.dispose()


def fresh_structure(site, tmp_path, request):
    """The structure schema.sql gives a brand-new database of the same kind."""
    if site.kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    else:
        url = request.getfixturevalue("pg_server").create_database(f"fresh_{tmp_path.name[-8:]}")
    from imagingdb.config import DatabaseSettings

    engine = dbq.create_engine(DatabaseSettings(url=url, password_env=(
        None if site.kind == "sqlite" else "IMAGINGDB_TEST_PG_PASSWORD")))
    migrate.upgrade(engine)
    shape = structure(engine)
    engine.dispose()
    if site.kind != "sqlite":
        request.getfixturevalue("pg_server").drop_database(sa.make_url(url).database)
    return shape


def test_a_fresh_database_is_schema_sql_at_the_current_version(site, run_cli):
    result = run_cli("db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert f"created the schema (version {dbq.SCHEMA_VERSION})" in result.stderr
    with site_engine().connect() as conn:
        assert conn.execute(sa.select(dbq.schema_version.c.version)).scalars().all() == [
            dbq.SCHEMA_VERSION]


def test_version_1_is_upgraded_to_what_schema_sql_makes_keeping_every_row(
        version_1, site, run_cli, tmp_path, request):
    rows = all_rows(version_1)
    result = run_cli("db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert f"upgraded the schema from version 1 to {dbq.SCHEMA_VERSION}" in result.stderr
    assert "step 2: storage_dir may be NULL" in result.stderr
    assert "Warning" not in result.stderr
    assert_rows_kept(rows, all_rows(version_1))
    assert structure(version_1) == fresh_structure(site, tmp_path, request)
    with version_1.connect() as conn:
        assert conn.execute(sa.select(dbq.schema_version.c.version).order_by(
            dbq.schema_version.c.version)).scalars().all() == list(range(1, dbq.SCHEMA_VERSION + 1))
    assert run_cli("query", "--format", "json").json()[1]["parent_dataset_id"] == \
        "ML-2005-05-23-10-00-00-0001"


def test_upgrading_twice_changes_nothing(version_1, run_cli):
    assert run_cli("db", "upgrade").exit_code == 0
    shape, rows = structure(version_1), all_rows(version_1)
    again = run_cli("db", "upgrade")
    assert again.exit_code == 0 and f"the schema is up to date (version {dbq.SCHEMA_VERSION})" in again.stderr
    assert (structure(version_1), all_rows(version_1)) == (shape, rows)


def test_an_older_shared_database_must_be_upgraded_on_purpose(version_1, site, run_cli):
    result = run_cli("query")
    if site.kind == "sqlite":  # the embedded default is one user's: it upgrades by itself
        assert result.exit_code == 0, result.stderr
        with version_1.connect() as conn:
            assert dbq.detect_version(conn) == dbq.SCHEMA_VERSION
    else:
        assert result.exit_code == 1
        assert result.errors == ["Error: the database has schema version 1; this imagingdb "
                                 f"needs {dbq.SCHEMA_VERSION}: run imagingdb db upgrade"]


def test_init_upgrades_too(version_1, run_cli):
    result = run_cli("init")
    assert result.exit_code == 0, result.stderr
    assert f"upgraded the schema from version 1 to {dbq.SCHEMA_VERSION}" in result.stderr


def test_a_newer_database_is_refused(site, run_cli):
    assert run_cli("init").exit_code == 0
    with site_engine().begin() as conn:
        conn.execute(sa.insert(dbq.schema_version).values(
            version=99, applied_at=sa.func.current_timestamp()))
    for args in (["query"], ["db", "upgrade"]):
        result = run_cli(*args)
        assert result.exit_code == 1
        assert result.errors == ["Error: the database has schema version 99, newer than this "
                                 f"imagingdb understands ({dbq.SCHEMA_VERSION}); upgrade imagingdb"]


def test_status_shows_the_masked_url_version_and_pending_steps(version_1, site, run_cli,
                                                               monkeypatch):
    result = run_cli("db", "status", "--format", "json")
    assert result.exit_code == 0, result.stderr
    status = result.json()
    assert status["schema_version"] == 1 and status["imagingdb_schema_version"] == dbq.SCHEMA_VERSION
    assert status["state"] == "behind: run imagingdb db upgrade"
    assert status["upgrade_steps"] == ["2: storage_dir may be NULL",
                                      "3: frames_global records its frame layout (frame_format)",
                                      "4: annotations, provenance and sizes of datasets; "
                                      "pending removals",
                                      "5: where each dataset's complete copies are (replica)",
                                      "6: quality control at ingest (frames' qc_* columns, "
                                      "qc_summary, thumbnail)",
                                      "7: indexes on storage_dir (gc's look-up of a folder's rows)"]
    assert status["datasets"] == 2 and status["blocked"] == []
    assert status["database"] == find_site_config().database.url
    text = run_cli("db", "status")
    assert text.stdout.splitlines()[2].split() == ["schema_version", "1"]
    with version_1.connect() as conn:  # status changed nothing
        assert dbq.detect_version(conn) == 1


def test_status_with_the_original_login_file_never_shows_the_password(pg_server, pg_url,
                                                                      run_cli, tmp_path):
    login = tmp_path / "db_credentials.json"
    login.write_text(json.dumps({
        "drivername": "postgres", "username": pg_server.user, "password": pg_server.password,
        "host": pg_server.host, "port": pg_server.port, "dbname": sa.make_url(pg_url).database}))
    login.chmod(0o600)
    result = run_cli("--login", login, "db", "status")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == ["database", pg_url]
    assert pg_server.password not in result.stdout + result.stderr
