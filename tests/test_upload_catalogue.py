"""What an upload records beyond the original's rows (schema version 4): annotations from the
CSV and --annotate, provenance, stored sizes, the content checksum, and duplicates."""

import getpass
import hashlib
import json
import socket
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

import imagingdb
from imagingdb import db as dbq
from imagingdb import provenance
from tests.conftest import DATASET_ID
from tests.helpers import assert_refused

OTHER_ID = "ML-2005-05-23-10-00-00-0002"


def data_set_row(dataset_id: str):
    with imagingdb.connect() as db, db.site.connection() as conn:
        return conn.execute(sa.select(dbq.data_set)
                            .where(dbq.data_set.c.dataset_serial == dataset_id)).one()


def stored_objects(site, dataset_id: str) -> dict[str, bytes]:
    return {key: data for key, data in site.objects().items() if f"/{dataset_id}/" in f"/{key}"}


def frame_rows(dataset_id: str) -> list[dict]:
    with imagingdb.connect() as db, db.site.connection() as conn:
        pk = dbq.find_dataset(conn, dataset_id).id
        fg = dbq.frames_global_of(conn, pk)
        return [dict(row._mapping) for row in conn.execute(
            sa.select(dbq.frames).where(dbq.frames.c.frames_global_id == fg.id))]


@pytest.fixture
def tiff_file(mm_ometiff):
    """One file of the acquisition, for uploads that keep a file whole."""
    return sorted(mm_ometiff.glob("*.tif"))[0]


def upload(run_cli, csv_path, config, *args):
    return run_cli("upload", "--csv", csv_path, "--config", config, *args)


# ------------------------------------------------------------------- annotations


def test_extra_csv_columns_and_annotate_become_annotations(site, run_cli, upload_files,
                                                           mm_ometiff):
    csv_path = upload_files.csv([
        {"dataset_id": DATASET_ID, "file_name": str(mm_ometiff), "strain": "WT",
         "plate.well": " B03 ", "treatment": ""},
        {"dataset_id": OTHER_ID, "file_name": str(mm_ometiff), "strain": "'; DROP TABLE x; --",
         "plate.well": "C1", "treatment": "DMSO 0.1%"},
    ])
    result = upload(run_cli, csv_path, upload_files.frames_config(), "--annotate",
                    "operator=ana", "--annotate", "batch=7")
    assert result.exit_code == 0, result.stderr
    first, second = data_set_row(DATASET_ID), data_set_row(OTHER_ID)
    # stripped; an empty cell sets nothing; stored as one JSON object on both databases
    assert first.annotations == {"batch": "7", "operator": "ana", "plate.well": "B03",
                                 "strain": "WT"}
    assert second.annotations == {"batch": "7", "operator": "ana", "plate.well": "C1",
                                  "strain": "'; DROP TABLE x; --", "treatment": "DMSO 0.1%"}


def test_a_row_without_a_required_annotation_is_refused_alone(site, run_cli, upload_files,
                                                             mm_ometiff):
    csv_path = upload_files.csv([
        {"dataset_id": DATASET_ID, "file_name": str(mm_ometiff), "strain": "WT"},
        {"dataset_id": OTHER_ID, "file_name": str(mm_ometiff), "strain": ""},
    ])
    config = upload_files.frames_config(required_annotations=["strain"])
    result = upload(run_cli, csv_path, config)
    assert result.exit_code == 1  # one dataset went in
    assert result.errors == [
        f"Error: {csv_path.name} row 3: lacks the annotation(s) the upload config requires: "
        "strain; add them as CSV columns or --annotate KEY=VALUE"]
    assert data_set_row(DATASET_ID).annotations == {"strain": "WT"}
    with imagingdb.connect() as db, db.site.connection() as conn:
        assert dbq.find_dataset(conn, OTHER_ID) is None


@pytest.mark.parametrize("args, message", [
    (["--annotate", "strain"], "--annotate: 'strain' is not KEY=VALUE, e.g. strain=WT"),
    (["--annotate", "=WT"], "--annotate: an annotation needs a key"),
    (["--annotate", "bad key=1"], "--annotate: annotation key 'bad key' is not a name"),
    (["--annotate", "description=x"], "'description' is a field of every dataset"),
    (["--annotate", "a=1", "--annotate", "a=2"], "--annotate: annotation 'a' is given twice"),
    (["--annotate", "note=two\tcells"], "holds a control character"),
    (["--annotate", "strain=WT"], "annotation 'strain' is both a column and given with "
                                  "--annotate"),
])
def test_bad_annotations_are_refused_before_any_work(snapshot_with_one_dataset, site, run_cli,
                                                     upload_files, mm_ometiff, args, message):
    csv_path = upload_files.csv([{"dataset_id": OTHER_ID, "file_name": str(mm_ometiff),
                                  "strain": "WT"}])
    result = upload(run_cli, csv_path, upload_files.frames_config(), *args)
    assert_refused(result, site, snapshot_with_one_dataset, contains=(message,))


@pytest.mark.parametrize("value, message", [
    (["strain", 3], "must be a list of annotation keys, got 3 in it"),
    ("strain", "key 'required_annotations' must be a list"),
    (["bad key"], "annotation key 'bad key' is not a name"),
])
def test_bad_required_annotations_key(snapshot_with_one_dataset, site, run_cli, upload_files,
                                      mm_ometiff, value, message):
    csv_path = upload_files.csv([{"dataset_id": OTHER_ID, "file_name": str(mm_ometiff)}])
    config = upload_files.frames_config(required_annotations=value)
    result = upload(run_cli, csv_path, config)
    assert_refused(result, site, snapshot_with_one_dataset, contains=(str(config), message))


def test_the_api_takes_annotations_and_checks_them(site, upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    with imagingdb.connect() as db:
        with pytest.raises(imagingdb.errors.InputError, match="is not a name"):
            db.upload(csv_path, upload_files.frames_config(), annotate={"a b": "1"})
        report = db.upload(csv_path, upload_files.frames_config(), annotate={"sample": "S1"})
    assert report.exit_code == 0
    assert data_set_row(DATASET_ID).annotations == {"sample": "S1"}


def test_an_overwrite_records_the_new_uploads_annotations(site, run_cli, upload_files,
                                                          mm_ometiff):
    first = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff),
                               "strain": "WT"}])
    assert upload(run_cli, first, upload_files.frames_config()).exit_code == 0
    again = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff),
                               "strain": "mutant"}])
    result = upload(run_cli, again, upload_files.frames_config(), "--overwrite")
    assert result.exit_code == 0, result.stderr
    assert data_set_row(DATASET_ID).annotations == {"strain": "mutant"}


# ------------------------------------------------------ provenance and sizes


@pytest.mark.parametrize("frame_format", ["png", "ome-zarr"])
def test_provenance_and_sizes_of_a_frames_upload(site, run_cli, upload_files, mm_ometiff,
                                                 frame_format):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    before = datetime.utcnow().replace(microsecond=0)
    result = upload(run_cli, csv_path, upload_files.frames_config(frame_format=frame_format))
    assert result.exit_code == 0, result.stderr
    row = data_set_row(DATASET_ID)
    assert row.uploaded_by == getpass.getuser()
    assert row.uploaded_host == socket.gethostname()
    assert before <= row.uploaded_at <= datetime.utcnow() + timedelta(seconds=1)
    assert row.imagingdb_version == imagingdb.__version__
    assert row.source_path == str(mm_ometiff.absolute())
    objects = stored_objects(site, DATASET_ID)
    assert row.stored_objects == len(objects)
    assert row.stored_bytes == sum(len(data) for data in objects.values())
    # the content checksum follows from the frame rows alone, whatever order they came in
    frames = frame_rows(DATASET_ID)
    assert row.content_sha256 == provenance.frames_digest(reversed(frames))
    assert row.content_sha256.startswith(f"frames:{len(frames)}:")


def test_provenance_and_sizes_of_a_file_upload(site, run_cli, upload_files, tiff_file):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(tiff_file)}])
    result = upload(run_cli, csv_path, upload_files.file_config())
    assert result.exit_code == 0, result.stderr
    row = data_set_row(DATASET_ID)
    data = tiff_file.read_bytes()
    assert row.content_sha256 == hashlib.sha256(data).hexdigest()
    assert (row.stored_bytes, row.stored_objects) == (len(data), 1)
    assert row.source_path == str(tiff_file.absolute())


def test_provenance_on_postgres_and_s3(pg_s3_site, run_cli, upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff),
                                  "plate": "P1"}])
    result = upload(run_cli, csv_path, upload_files.frames_config(frame_format="ome-zarr"))
    assert result.exit_code == 0, result.stderr
    row = data_set_row(DATASET_ID)
    objects = stored_objects(pg_s3_site, DATASET_ID)
    assert row.stored_bytes == sum(len(data) for data in objects.values())
    assert row.annotations == {"plate": "P1"}
    # JSONB: the annotations are queryable as JSON on the server itself
    with imagingdb.connect() as db, db.site.connection() as conn:
        assert conn.execute(sa.text("SELECT annotations ->> 'plate' FROM data_set")).scalar() == "P1"


# -------------------------------------------------------------------- duplicates


def test_the_same_frames_under_a_second_id_are_a_warning_by_default(site, run_cli, upload_files,
                                                                    mm_ometiff):
    first = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    assert upload(run_cli, first, upload_files.frames_config()).exit_code == 0
    # the same pixels stored in the other layout are the same content
    second = upload_files.csv([{"dataset_id": OTHER_ID, "file_name": str(mm_ometiff)}])
    result = upload(run_cli, second, upload_files.frames_config(frame_format="ome-zarr"),
                    "--format", "json")
    assert result.exit_code == 0, result.stderr
    warning = (f"Warning: {OTHER_ID}: the same content (every frame) as dataset(s) {DATASET_ID}; "
               "uploaded anyway (duplicates: error in the upload config refuses it)")
    assert warning in result.stderr.splitlines()
    assert json.loads(result.stdout)[0]["warnings"] == [warning.split(": ", 2)[2]]
    assert data_set_row(OTHER_ID).content_sha256 == data_set_row(DATASET_ID).content_sha256


def test_duplicates_error_refuses_the_row_and_leaves_nothing(site, run_cli, upload_files,
                                                             tiff_file):
    first = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(tiff_file)}])
    assert upload(run_cli, first, upload_files.file_config()).exit_code == 0
    before = site.snapshot()
    second = upload_files.csv([{"dataset_id": OTHER_ID, "file_name": str(tiff_file)}])
    result = upload(run_cli, second, upload_files.file_config(duplicates="error"))
    assert result.exit_code == 2
    assert result.errors == [
        f"Error: {second.name} row 2 ({OTHER_ID}): {tiff_file}: its content (the file) is "
        f"already dataset(s) {DATASET_ID}; nothing was registered (set duplicates: warn in the "
        "upload config to allow it)"]
    assert site.snapshot() == before  # no row, and the objects it had stored are gone


def test_duplicates_ignore_and_a_rerun_of_the_same_id_say_nothing(site, run_cli, upload_files,
                                                                  mm_ometiff):
    first = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    assert upload(run_cli, first, upload_files.frames_config()).exit_code == 0
    again = upload(run_cli, first, upload_files.frames_config(duplicates="error"), "--overwrite")
    assert again.exit_code == 0 and "same content" not in again.stderr  # itself is no duplicate
    second = upload_files.csv([{"dataset_id": OTHER_ID, "file_name": str(mm_ometiff)}])
    result = upload(run_cli, second, upload_files.frames_config(duplicates="ignore"))
    assert result.exit_code == 0 and "Warning" not in result.stderr


def test_a_file_matches_a_dataset_registered_before_content_checksums(site, run_cli,
                                                                      upload_files, tiff_file):
    first = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(tiff_file)}])
    assert upload(run_cli, first, upload_files.file_config()).exit_code == 0
    with imagingdb.connect() as db, db.site.connection(write=True) as conn:
        conn.execute(sa.update(dbq.data_set).values(content_sha256=None))  # as version 3 left it
    second = upload_files.csv([{"dataset_id": OTHER_ID, "file_name": str(tiff_file)}])
    result = upload(run_cli, second, upload_files.file_config())
    assert result.exit_code == 0
    assert f"the same content (the file) as dataset(s) {DATASET_ID}" in result.stderr


def test_bad_duplicates_key(snapshot_with_one_dataset, site, run_cli, upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": OTHER_ID, "file_name": str(mm_ometiff)}])
    config = upload_files.frames_config(duplicates="refuse")
    result = upload(run_cli, csv_path, config)
    assert_refused(result, site, snapshot_with_one_dataset, contains=(
        str(config), "key 'duplicates' must be one of warn, error, ignore, got 'refuse'"))


def test_the_frames_digest_is_a_multiset_hash():
    rows = [{"channel_idx": c, "slice_idx": 0, "time_idx": t, "pos_idx": 0, "sha256": f"{c}{t}"}
            for c in range(2) for t in range(3)]
    digest = provenance.frames_digest(rows)
    assert digest == provenance.frames_digest(rows[::-1])
    swapped = [dict(r) for r in rows]
    swapped[0]["sha256"], swapped[1]["sha256"] = swapped[1]["sha256"], swapped[0]["sha256"]
    assert provenance.frames_digest(swapped) != digest  # a frame at another index differs
    assert provenance.frames_digest(rows[:-1]) != digest


# ------------------------------------------------------------ reruns finish (issue 18)


def test_a_rerun_skips_what_is_in_and_exits_0(site, run_cli, upload_files, mm_ometiff,
                                              tiff_file):
    frames_csv = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    file_csv = upload_files.csv([{"dataset_id": OTHER_ID, "file_name": str(tiff_file)}])
    frames_config, file_config = upload_files.frames_config(), upload_files.file_config()
    assert upload(run_cli, frames_csv, frames_config).exit_code == 0
    assert upload(run_cli, file_csv, file_config).exit_code == 0
    before = site.snapshot()
    again = upload(run_cli, frames_csv, frames_config, "--format", "json")
    assert again.exit_code == 0, again.stderr
    assert again.stderr.splitlines() == [
        f"{DATASET_ID}: already uploaded with the same content (24 frames); skipped",
        "0 of 1 dataset(s) uploaded, 1 already there (skipped)"]
    assert again.json()[0]["status"] == "skipped" and again.json()[0]["nbr_frames"] == 24
    again = upload(run_cli, file_csv, file_config)
    assert again.exit_code == 0, again.stderr
    assert f"{OTHER_ID}: already uploaded with the same content (1 file); skipped" in \
        again.stderr.splitlines()
    assert site.snapshot() == before  # nothing was written


def test_a_rerun_of_a_dataset_registered_before_content_checksums_is_skipped(
        site, run_cli, upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    config = upload_files.frames_config()
    assert upload(run_cli, csv_path, config).exit_code == 0
    with imagingdb.connect() as db, db.site.connection(write=True) as conn:
        conn.execute(sa.update(dbq.data_set).values(content_sha256=None))  # as version 3 left it
    again = upload(run_cli, csv_path, config)
    assert again.exit_code == 0, again.stderr
    assert "already uploaded with the same content (24 frames); skipped" in again.stderr


@pytest.mark.parametrize("kind", ["frames", "file"])
def test_other_content_under_an_existing_id_stays_an_error(site, run_cli, upload_files,
                                                           mm_ometiff, mm_ometiff_uint8,
                                                           tiff_file, kind):
    config = upload_files.frames_config() if kind == "frames" else upload_files.file_config()
    first, other = ((mm_ometiff, mm_ometiff_uint8) if kind == "frames" else
                    (tiff_file, sorted(mm_ometiff_uint8.glob("*.tif"))[0]))
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(first)}])
    assert upload(run_cli, csv_path, config).exit_code == 0
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(other)}])
    result = upload(run_cli, csv_path, config)
    assert_refused(result, site, before, contains=(
        f"dataset {DATASET_ID} already exists with other content than {other}; "
        "use --overwrite to replace it, or another dataset ID",))


def test_exit_2_only_when_nothing_changed(site, run_cli, upload_files, mm_ometiff):
    mixed = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)},
                              {"dataset_id": OTHER_ID, "file_name": "/no/such/folder"}])
    result = upload(run_cli, mixed, upload_files.frames_config())
    assert result.exit_code == 1  # a dataset went in: not "nothing was changed"
    # the rerun changes nothing: the first row is there, the second is still bad input
    result = upload(run_cli, mixed, upload_files.frames_config())
    assert result.exit_code == 2, result.stderr


def test_annotations_and_provenance_are_kept_in_a_download(site, run_cli, upload_files,
                                                           mm_ometiff, tmp_path):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff),
                                  "strain": "WT", "plate": "P1"}])
    assert upload(run_cli, csv_path, upload_files.frames_config()).exit_code == 0
    result = run_cli("download", "--id", DATASET_ID, "--dest", tmp_path, "--no-download")
    assert result.exit_code == 0, result.stderr
    meta = json.loads((tmp_path / DATASET_ID / "global_metadata.json").read_text())
    assert meta["annotations"] == {"plate": "P1", "strain": "WT"}
    assert meta["source_path"] == str(mm_ometiff.absolute())
    assert meta["uploaded_by"] == getpass.getuser()


def test_a_rerun_with_other_values_in_the_csv_is_refused_not_skipped(site, run_cli, upload_files,
                                                                     mm_ometiff):
    first = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff),
                               "description": "old", "strain": "WT"}])
    assert upload(run_cli, first, upload_files.frames_config()).exit_code == 0
    before = site.snapshot()
    changed = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff),
                                 "description": "new", "strain": "MUT", "plate": "P1"}])
    result = upload(run_cli, changed, upload_files.frames_config())
    assert_refused(result, site, before, contains=(
        f"dataset {DATASET_ID} is already uploaded with this content, but the CSV row or config "
        "gives another description, annotation plate, annotation strain; change it with "
        f"imagingdb edit {DATASET_ID}, or replace the dataset with --overwrite",))
    result = upload(run_cli, first, upload_files.frames_config(microscope="scope9"))
    assert result.exit_code == 2 and "gives another microscope;" in result.errors[0]
