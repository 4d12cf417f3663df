"""IDs that differ only by case (``ML-...``, ``ml-...``) are never both registered: on a
case-insensitive mount (macOS, SMB shares) they would share one folder, and removing one would
delete the other's files. A lower-case project ID gets a warning."""

from datetime import datetime

import pytest

from imagingdb import db as dbq
from tests.conftest import DATASET_ID, EXISTING_ID
from tests.helpers import assert_refused

LOWER_ID = DATASET_ID.lower()  # ml-2005-05-23-10-00-00-0001


def _notes(tmp_path, name="notes.txt"):
    path = tmp_path / name
    path.write_text("notes")
    return path


@pytest.mark.parametrize("twin", [EXISTING_ID.lower(), "Ml" + EXISTING_ID[2:], "mL" + EXISTING_ID[2:]])
@pytest.mark.parametrize("overwrite", [False, True])
def test_an_id_differing_only_by_case_from_a_dataset_is_refused_naming_it(
        snapshot_with_one_dataset, site, run_cli, upload_files, tmp_path, twin, overwrite):
    csv_path = upload_files.csv([{"dataset_id": twin, "file_name": str(_notes(tmp_path))}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config(),
                     *(["--overwrite"] if overwrite else []))
    assert_refused(result, site, snapshot_with_one_dataset, contains=(
        f"row 2 ({twin}): dataset {EXISTING_ID} already exists and differs from {twin} only "
        "by case", "case-insensitive storage"))


def test_an_upper_case_id_is_refused_beside_a_lower_case_dataset(site, run_cli, upload_files,
                                                                 tmp_path):
    csv_path = upload_files.csv([{"dataset_id": LOWER_ID, "file_name": str(_notes(tmp_path))}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.file_config()).exit_code == 0
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(_notes(tmp_path))}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config())
    assert_refused(result, site, before, contains=(
        f"dataset {LOWER_ID} already exists and differs from {DATASET_ID} only by case",))


def test_two_rows_differing_only_by_case_refuse_the_second(site, run_cli, upload_files, tmp_path):
    csv_path = upload_files.csv([
        {"dataset_id": DATASET_ID, "file_name": str(_notes(tmp_path, "a.txt"))},
        {"dataset_id": LOWER_ID, "file_name": str(_notes(tmp_path, "b.txt"))},
    ])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config())
    assert result.exit_code == 1  # the first row went in
    assert result.errors == [
        f"Error: {csv_path.name} row 3: dataset ID {LOWER_ID} differs only by case from "
        f"{DATASET_ID} of row 2; on case-insensitive storage (macOS, SMB shares) both would use "
        "one folder, and removing one would delete the other's files"]
    with site.connect() as db:
        assert [d.dataset_id for d in db.query()] == [DATASET_ID]


def test_a_lower_case_project_id_is_uploaded_with_a_warning(site, run_cli, upload_files,
                                                            tmp_path):
    csv_path = upload_files.csv([{"dataset_id": LOWER_ID, "file_name": str(_notes(tmp_path))}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config(),
                     "--format", "json")
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings == [f"Warning: {LOWER_ID}: project ID 'ml' has lower-case letters; "
                        "imagingDB's are upper case (ML-...), and IDs that differ only by case "
                        "are refused"]
    assert result.json()[0]["warnings"] == [warnings[0].split(": ", 2)[2]]


def test_an_upper_case_project_id_gets_no_warning(site, run_cli, upload_files, tmp_path):
    csv_path = upload_files.csv([{"dataset_id": "ML2-2005-05-23-10-00-00-0001",
                                  "file_name": str(_notes(tmp_path))}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config())
    assert result.exit_code == 0 and "Warning" not in result.stderr


def test_a_twin_registered_during_the_upload_is_caught_when_registering(
        site, run_cli, upload_files, tmp_path, monkeypatch):
    """Another process registers ``ml-...`` after the upload's first check: the registering
    transaction checks again, registers nothing and leaves no object behind."""
    from imagingdb import faults

    original = faults.checkpoint

    def register_twin(stage):
        original(stage)
        if stage == "before-register":
            with site.connect() as database, database.site.connection(write=True) as conn:
                dbq.insert_dataset(conn, {"dataset_serial": LOWER_ID, "frames": False,
                                          "description": "the twin", "microscope": None,
                                          "date_time": datetime(2005, 5, 23, 10),
                                          "parent_id": None})

    monkeypatch.setattr(faults, "checkpoint", register_twin)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(_notes(tmp_path))}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config())
    assert result.exit_code == 2
    assert len(result.errors) == 1
    assert f"dataset {LOWER_ID} already exists and differs from {DATASET_ID}" in result.errors[0]
    with site.connect() as db:
        assert [d.dataset_id for d in db.query()] == [LOWER_ID]
    assert site.objects() == {}


def test_case_twins_are_found_in_sql_on_both_databases(site, run_cli, upload_files, tmp_path):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(_notes(tmp_path))}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.file_config()).exit_code == 0
    with site.connect() as database, database.site.connection() as conn:
        assert dbq.find_case_twin(conn, LOWER_ID) == DATASET_ID
        assert dbq.find_case_twin(conn, "mL" + DATASET_ID[2:]) == DATASET_ID
        assert dbq.find_case_twin(conn, DATASET_ID) is None  # itself is no twin
        assert dbq.find_case_twin(conn, "ml-2005-05-23-10-00-00-0002") is None
        assert dbq.find_case_twin(conn, "m_-2005-05-23-10-00-00-0001") is None  # no LIKE


def test_transactions_registering_case_twins_at_once_run_one_after_the_other(site):
    """What the registering transaction does (lock the case-folded ID, look for a twin, insert),
    twice at once: the second waits for the first's commit and sees its ID. Without the lock,
    PostgreSQL (read committed) would let both see no twin and register both."""
    import threading

    from imagingdb.db import locks

    first_inside, found = threading.Event(), {}

    def register(database, dataset_id, inside=None):
        with database.site.connection(write=True) as conn:
            locks.lock_id_case_insensitively(conn, dataset_id)
            twin = dbq.find_case_twin(conn, dataset_id)
            if twin is None:
                dbq.insert_dataset(conn, {"dataset_serial": dataset_id, "frames": False,
                                          "description": None, "microscope": None,
                                          "date_time": datetime(2005, 5, 23, 10),
                                          "parent_id": None})
            if inside is not None:
                inside.set()
                threading.Event().wait(0.5)  # the other transaction starts meanwhile
        return twin

    with site.connect() as database:
        def second():
            first_inside.wait(timeout=30)  # the first has inserted, and not committed
            found["second"] = register(database, LOWER_ID)

        waiting = threading.Thread(target=second)
        waiting.start()
        found["first"] = register(database, DATASET_ID, inside=first_inside)
        waiting.join(timeout=30)
        assert found == {"first": None, "second": DATASET_ID}
        assert [d.dataset_id for d in database.query()] == [DATASET_ID]


def test_a_claim_holds_every_spelling_of_the_id(site, run_cli):
    """Uploads of ``ML-...`` and ``ml-...`` never write at once: on a case-insensitive mount
    their folders are one, and the loser's clean-up would delete the winner's objects."""
    from imagingdb.claims import claim_dataset
    from imagingdb.errors import WorkError

    run_cli("init")
    with site.connect() as db:
        with claim_dataset(db.site, DATASET_ID):
            with pytest.raises(WorkError, match=f"dataset {LOWER_ID} is being uploaded by "
                                                "another process right now"):
                with claim_dataset(db.site, LOWER_ID):
                    pass
        with claim_dataset(db.site, LOWER_ID):  # released with the first
            pass
