"""The bad-input table of issue 8, rows not already in test_upload_errors.py and test_cli.py.

Each case: the exit code, one `Error:` line naming the file/row/key, and the
database rows and storage objects exactly as before (Site.snapshot()).
"""

import shutil
import socket
import subprocess
import threading

import numpy as np
import pytest
import sqlalchemy as sa
import yaml

from imagingdb.testing import write_mm_ometiff
from tests.conftest import DATASET_ID, EXISTING_ID
from tests.helpers import assert_refused
from tests.test_ome_tiff import SMALL_SUMMARY, page_meta, write_mm_pages


def upload_one(run_cli, upload_files, source, config=None, **row):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source), **row}])
    return run_cli("upload", "--csv", csv_path, "--config", config or upload_files.frames_config())


# ------------------------------------------------------- sources that disagree


def pages_of_another_shape(tmp_path):
    pages = [(np.zeros((8, 8), "uint16"), page_meta(t=0)),
             (np.zeros((8, 9), "uint16"), page_meta(t=1))]
    return write_mm_pages(tmp_path / "shapes.ome.tif", pages, SMALL_SUMMARY)


def pages_of_another_pixel_type(tmp_path):
    pages = [(np.zeros((8, 8), "uint16"), page_meta(t=0)),
             (np.zeros((8, 8), "uint8"), page_meta(t=1))]
    return write_mm_pages(tmp_path / "types.ome.tif", pages, SMALL_SUMMARY)


def positions_of_another_size(tmp_path):
    """Position 1's file comes from an acquisition of smaller frames."""
    folder = tmp_path / "mixed"
    write_mm_ometiff(folder, "run", slices=1, times=1, height=16, width=16)
    smaller = write_mm_ometiff(tmp_path / "small", "run", slices=1, times=1, height=8, width=16)
    shutil.copy(smaller[1], folder / smaller[1].name)
    return folder


def channel_index_beyond_the_summary(tmp_path):
    pages = [(np.zeros((8, 8), "uint16"), page_meta(c=0)),
             (np.zeros((8, 8), "uint16"), page_meta(c=3, channel="Cy5"))]
    return write_mm_pages(tmp_path / "channels.ome.tif", pages, SMALL_SUMMARY)


def negative_slice_index(tmp_path):
    pages = [(np.zeros((8, 8), "uint16"), page_meta(z=-1))]
    return write_mm_pages(tmp_path / "negative.ome.tif", pages, SMALL_SUMMARY)


@pytest.mark.parametrize("make_source, message", [
    (pages_of_another_shape, "page 1 is (8, 9) uint16 but the first page is (8, 8) uint16"),
    (pages_of_another_pixel_type, "page 1 is (8, 8) uint8 but the first page is (8, 8) uint16"),
    (positions_of_another_size, "run_MMStack_Pos1.ome.tif: page 0 is (8, 16) uint16"),
    (channel_index_beyond_the_summary, "channel index 3 but the acquisition summary declares 1"),
    (negative_slice_index, "SliceIndex on page 0 is -1"),
])
def test_inconsistent_dimensions_and_out_of_range_indexes_in_a_source(
        snapshot_with_one_dataset, site, run_cli, upload_files, tmp_path, make_source, message):
    result = upload_one(run_cli, upload_files, make_source(tmp_path))
    assert_refused(result, site, snapshot_with_one_dataset, contains=("row 2", message))


# --------------------------------------------------------- names and paths


@pytest.mark.parametrize("dataset_id", [
    "/abs-2005-05-23-10-00-00-0001", "ML-2005-05-23-10-00-00-0001/../x", "..",
    "ML-2005-05-23-10-00-00-0001\\x",
])
def test_paths_in_a_dataset_id_are_refused(snapshot_with_one_dataset, site, run_cli, upload_files, mm_ometiff,
                                           dataset_id):
    csv_path = upload_files.csv([{"dataset_id": dataset_id, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert_refused(result, site, snapshot_with_one_dataset, contains=("row 2", "invalid dataset ID"))


def test_dot_dot_in_a_file_name_is_a_source_path_and_the_key_its_base_name(
        site, run_cli, upload_files, tmp_path):
    """file_name says where to read; the storage key is built from the validated base name."""
    source = tmp_path / "elsewhere" / "notes.txt"
    source.parent.mkdir()
    source.write_text("outside the CSV folder")
    relative = f"../elsewhere/{source.name}"  # the CSV sits in tmp_path/upload
    result = upload_one(run_cli, upload_files, relative, upload_files.file_config())
    assert result.exit_code == 0, result.stderr
    assert set(site.snapshot()["objects"]) == {f"raw_files/{DATASET_ID}/notes.txt"}
    stored = site.storage_root / "raw_files" / DATASET_ID / "notes.txt"
    assert stored.read_text() == "outside the CSV folder"


@pytest.mark.parametrize("file_name, message", [
    ("..", "is not a file"),
    ("/", "is not a file"),
    ("./", "is not a file"),
])
def test_a_file_name_that_is_a_folder_is_refused_for_a_file_upload(
        snapshot_with_one_dataset, site, run_cli, upload_files, file_name, message):
    result = upload_one(run_cli, upload_files, file_name, upload_files.file_config())
    assert_refused(result, site, snapshot_with_one_dataset, contains=("row 2", message))


def test_absolute_file_name_reads_that_file(site, run_cli, upload_files, tmp_path):
    source = tmp_path / "abs name ü.txt"
    source.write_text("absolute")
    result = upload_one(run_cli, upload_files, source.resolve(), upload_files.file_config())
    assert result.exit_code == 0, result.stderr
    assert set(site.snapshot()["objects"]) == {f"raw_files/{DATASET_ID}/abs name ü.txt"}


# ----------------------------------------------- selections that do not exist


@pytest.mark.parametrize("args, message", [
    (["-c", "Cy5"], "has no channel 'Cy5'; it has: DAPI (0), GFP (1)"),
    (["-c", "dapi"], "has no channel 'dapi'"),
    (["-c", "2"], "has no channel index 2"),
    (["-z", "3"], "has no slice index 3; it has: 0-2"),
    (["-t", "0-5"], "has no time index 2 (of the range 0-5 asked for); it has: 0-1"),
    (["-p", "9"], "has no position index 9; it has: 0-1"),
    (["-z", "-1"], "has no slice index -1; it has: 0-2"),
    (["-t", "one"], "invalid time index 'one'"),
])
def test_unknown_channels_and_out_of_range_indexes_download_nothing(
        uploaded_ometiff, site, run_cli, tmp_path, args, message):
    before = site.snapshot()
    result = run_cli("download", "--id", uploaded_ometiff, "--dest", tmp_path / "dest", *args)
    assert result.exit_code == 2
    assert len(result.errors) == 1 and message in result.errors[0], result.stderr
    assert not (tmp_path / "dest").exists()
    assert site.snapshot() == before


# ------------------------------------------------------- a database that is down


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def database_down(tmp_path, monkeypatch):
    """A site whose PostgreSQL server is not running; returns (URL, storage root)."""
    url = f"postgresql+pg8000://imaging@127.0.0.1:{closed_port()}/imaging"
    root = tmp_path / "storage"
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": url},
                                      "storage": {"backend": "local", "root": str(root)}}))
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(config))
    return url, root


@pytest.mark.parametrize("command", [
    ["init"], ["query"], ["show", DATASET_ID], ["verify", DATASET_ID], ["verify", "--all"],
    ["gc"], ["download", "--id", DATASET_ID, "--dest", "{dest}"], ["upload"],
])
def test_every_command_against_a_database_that_is_down(database_down, run_cli, upload_files,
                                                      mm_ometiff, tmp_path, command):
    url, root = database_down
    if command == ["upload"]:
        csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
        command = ["upload", "--csv", csv_path, "--config", upload_files.frames_config()]
    command = [str(a).replace("{dest}", str(tmp_path / "dest")) for a in command]
    result = run_cli(*command)
    assert result.exit_code == 1, result.stderr
    assert len(result.errors) == 1, result.stderr
    assert f"cannot connect to database {url}:" in result.errors[0]
    assert "Traceback" not in result.stderr
    assert not any(p.is_file() for p in root.rglob("*"))
    assert not (tmp_path / "dest").exists()


def test_database_lost_in_the_middle_of_an_upload(pg_server, pg_url, tmp_path, monkeypatch,
                                                  run_cli, upload_files, mm_ometiff):
    """The server stops accepting connections while frames are being stored."""
    from imagingdb.storage.local import LocalStorage
    from tests.conftest import Site

    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": pg_url, "password_env": "IMAGINGDB_TEST_PG_PASSWORD"},
        "storage": {"backend": "local", "root": str(tmp_path / "storage")}}))
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(config))
    site = Site("postgres", tmp_path / "storage", config)
    notes = tmp_path / "snapshot_with_one_dataset.txt"
    notes.write_text("snapshot_with_one_dataset")
    csv_path = upload_files.csv([{"dataset_id": EXISTING_ID, "file_name": str(notes)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.file_config()).exit_code == 0
    before = site.snapshot()

    database = sa.make_url(pg_url).database
    original_put, calls, lock = LocalStorage.put_bytes, [], threading.Lock()

    def put_then_lose_the_database(self, key, data):
        original_put(self, key, data)
        with lock:
            calls.append(key)
            if len(calls) == 5:
                admin = pg_server.connect()
                admin.run(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
                admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = :name AND pid <> pg_backend_pid()", name=database)
                admin.close()

    monkeypatch.setattr(LocalStorage, "put_bytes", put_then_lose_the_database)
    try:
        result = upload_one(run_cli, upload_files, mm_ometiff)
    finally:
        admin = pg_server.connect()
        admin.run(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        admin.close()
    assert result.exit_code == 1, result.stderr
    assert len(result.errors) == 1 and "cannot connect to database" in result.errors[0]
    assert f"row 2 ({DATASET_ID})" in result.errors[0]
    assert len(calls) >= 5
    assert site.snapshot() == before  # the frames written before the loss were removed


# ------------------------------------------------------------------ full disks


@pytest.fixture
def small_disk():
    """Mount a tmpfs of a given size on a folder (root only); unmounted afterwards."""
    mounted = []

    def mount(folder, size="1m"):
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def big_acquisition(tmp_path):
    """24 frames of 256x256 uint16 (3 MB of pixels, about 2 MB as PNG)."""
    folder = tmp_path / "big"
    write_mm_ometiff(folder, "big", height=256, width=256, seed=5)
    return folder


def test_storage_filling_up_during_a_frames_upload(site, run_cli, upload_files, small_disk,
                                                   big_acquisition, snapshot_with_one_dataset):
    small_disk(site.storage_root)
    before = site.snapshot()
    result = upload_one(run_cli, upload_files, big_acquisition)
    assert_refused(result, site, before, code=1,
                   contains=("row 2", "is full while writing", f"raw_frames/{DATASET_ID}/im_"))


def test_storage_filling_up_during_a_file_upload(site, run_cli, upload_files, small_disk,
                                                 snapshot_with_one_dataset, tmp_path):
    small_disk(site.storage_root)
    before = site.snapshot()
    source = tmp_path / "big.bin"
    source.write_bytes(np.random.default_rng(1).bytes(2 << 20))
    result = upload_one(run_cli, upload_files, source, upload_files.file_config())
    assert_refused(result, site, before, code=1,
                   contains=("row 2", f"is full while writing raw_files/{DATASET_ID}/big.bin"))


def test_download_destination_filling_up(site, run_cli, upload_files, small_disk,
                                         big_acquisition, tmp_path):
    assert upload_one(run_cli, upload_files, big_acquisition).exit_code == 0
    dest = small_disk(tmp_path / "usb-stick")
    before = site.snapshot()
    result = run_cli("download", "--id", DATASET_ID, "--dest", dest)
    assert result.exit_code == 1
    assert result.errors == [f"Error: cannot write to {dest}: No space left on device"]
    assert list(dest.iterdir()) == []  # no partial folder left behind
    assert site.snapshot() == before
