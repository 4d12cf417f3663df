"""Names: every file name the filesystem allows is storable, CSV errors point at the line a row
starts on, and a download never writes through a symlink at DEST/<ID>."""

import os

import pytest

from imagingdb.testing.storage import LONG_NAMES
from tests.conftest import DATASET_ID
from tests.helpers import assert_refused

#: 234 bytes: the name the adversary's upload was refused for, and the longest names there are
NAMES = ("s" * 230 + ".txt", *LONG_NAMES)


def _upload_whole(run_cli, upload_files, source):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    return run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config())


def _stored_long_name_round_trips(site, run_cli, upload_files, tmp_path, name):
    source = tmp_path / "src" / name
    source.parent.mkdir()
    source.write_bytes(b"a long name\n")
    result = _upload_whole(run_cli, upload_files, source)
    assert result.exit_code == 0, result.stderr
    assert result.errors == []
    assert run_cli("verify", DATASET_ID).exit_code == 0
    objects = site.objects()
    assert [key for key in objects if key.endswith(name)] == [
        key for key in objects if DATASET_ID in key]  # no temporary object left beside it
    downloaded = run_cli("download", "--id", DATASET_ID, "--dest", tmp_path / "out")
    assert downloaded.exit_code == 0, downloaded.stderr
    assert (tmp_path / "out" / DATASET_ID / name).read_bytes() == b"a long name\n"


@pytest.mark.parametrize("name", NAMES, ids=lambda n: f"{len(n.encode())}-bytes-{n[0]}")
def test_a_file_with_the_longest_name_allowed_is_stored_and_read_back(site, run_cli, upload_files,
                                                                      tmp_path, name):
    _stored_long_name_round_trips(site, run_cli, upload_files, tmp_path, name)


@pytest.mark.parametrize("name", NAMES[:2], ids=lambda n: f"{len(n.encode())}-bytes")
def test_a_file_with_the_longest_name_allowed_is_stored_on_s3(pg_s3_site, run_cli, upload_files,
                                                               tmp_path, name):
    _stored_long_name_round_trips(pg_s3_site, run_cli, upload_files, tmp_path, name)


def test_temporary_names_are_never_longer_than_the_name_or_100_bytes():
    from imagingdb.storage.local import _temp_name

    for name in ("a.png", "img_channel000_position000_time000000000_z000.png", *NAMES,
                 "é" * 127 + "\udcff"):  # an undecodable byte of a file name
        temp = _temp_name(name)
        encoded, temp_encoded = os.fsencode(name), os.fsencode(temp)
        assert len(temp_encoded) <= max(len(encoded), 100), name
        assert temp.startswith(".") and temp.endswith(".tmp") and temp != _temp_name(name)
        temp_encoded.decode("utf-8", errors="surrogateescape")  # never cut inside a character
        if len(encoded) < 60:
            assert temp.startswith(f".{name}.")  # short names stay whole, to be recognised


# ------------------------------------------------------------------- CSV lines


def test_a_bad_row_with_a_multi_line_description_is_reported_where_it_starts(
        snapshot_with_one_dataset, site, run_cli, upload_files, tmp_path):
    missing = tmp_path / "missing.ome.tif"
    csv_path = upload_files.folder / "lines.csv"
    csv_path.write_text(
        "dataset_id,file_name,description\n"                # line 1
        "\n"                                                 # line 2: blank, skipped
        f'{DATASET_ID},{missing},"first\nsecond\nthird"\n'   # lines 3-5: a missing source
        f"ML-2005-13-40-10-00-00-0001,{missing},x\n",        # line 6: a bad date
        encoding="utf-8")
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert result.exit_code == 2
    assert result.errors == [
        f"Error: lines.csv row 3 ({DATASET_ID}): {missing} not found",
        "Error: lines.csv row 6: invalid dataset ID 'ML-2005-13-40-10-00-00-0001': its timestamp "
        "is not a real date/time (month must be in 1..12)",
    ]
    assert site.snapshot() == snapshot_with_one_dataset


def test_a_repeated_id_names_the_line_the_first_row_starts_on(site, run_cli, upload_files,
                                                              tmp_path, snapshot_with_one_dataset):
    notes = tmp_path / "notes.txt"
    notes.write_text("notes")
    csv_path = upload_files.folder / "repeat.csv"
    csv_path.write_text(
        "dataset_id,file_name,description\n"
        f'{DATASET_ID},{tmp_path / "missing.txt"},"two\nlines"\n'  # lines 2-3
        f"{DATASET_ID},{notes},again\n",                          # line 4
        encoding="utf-8")
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config())
    assert result.exit_code == 2
    assert result.errors == [
        f"Error: repeat.csv row 2 ({DATASET_ID}): {tmp_path / 'missing.txt'} not found",
        f"Error: repeat.csv row 4: dataset ID {DATASET_ID} repeats row 2",
    ]
    assert site.snapshot() == snapshot_with_one_dataset


# ------------------------------------------------------------------- download destination


@pytest.mark.parametrize("points_to", ["missing", "file", "folder"])
def test_a_download_destination_that_is_a_symlink_is_refused_first(uploaded_ometiff, site, run_cli,
                                                                    tmp_path, points_to):
    dest = tmp_path / "dest"
    dest.mkdir()
    elsewhere = tmp_path / "elsewhere"
    if points_to == "file":
        elsewhere.write_text("not yours")
    elif points_to == "folder":
        elsewhere.mkdir()
    (dest / uploaded_ometiff).symlink_to(elsewhere)
    before = site.snapshot()
    result = run_cli("download", "--id", uploaded_ometiff, "--dest", dest)
    assert_refused(result, site, before, contains=(
        f"destination {dest / uploaded_ometiff} is a symbolic link (to {elsewhere})",))
    assert result.stdout == ""  # no "Downloaded ..." nor the folder's name
    assert sorted(p.name for p in dest.iterdir()) == [uploaded_ometiff]  # nothing staged
    assert (dest / uploaded_ometiff).is_symlink()
    if points_to == "file":
        assert elsewhere.read_text() == "not yours"
    elif points_to == "folder":
        assert list(elsewhere.iterdir()) == []
    else:
        assert not elsewhere.exists()


def test_the_api_refuses_a_symlinked_destination_too(uploaded_ometiff, site, tmp_path):
    from imagingdb.errors import InputError

    (tmp_path / uploaded_ometiff).symlink_to(tmp_path / "nowhere")
    with site.connect() as db, pytest.raises(InputError, match="is a symbolic link"):
        db.dataset(uploaded_ometiff).download(tmp_path)
    assert not (tmp_path / "nowhere").exists()
