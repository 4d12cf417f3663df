"""Bad input costs little: selections are checked against the recorded dimensions before
anything is sized from them, and the YAML/JSON files a user names are read only when they
are regular files of bounded size, nesting and alias expansion (issue 14, rows 8-10).

Each refusal is one ``Error:`` line naming the file (or the range and the dataset's extent),
a non-zero exit and nothing changed, within seconds and a bounded amount of memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import tracemalloc

import numpy as np
import pytest
import tifffile

import imagingdb
from imagingdb.config import load_upload_config
from imagingdb.errors import NotFoundError
from imagingdb.testing import write_mm_tif_folder
from tests.conftest import DATASET_ID
from tests.helpers import assert_refused, imagingdb_command

#: what a refusal may allocate: far less than listing a billion indexes would
MEMORY_BOUND = 20 * 2**20


# ------------------------------------------------------------------ selections


@pytest.mark.parametrize("args, message", [
    (["-z", "0-999999999"], "has no slice index 3 (of the range 0-999999999 asked for); "
                            "it has: 0-2"),
    (["-t", "1-999999999999"], "has no time index 2 (of the range 1-999999999999 asked for)"),
    (["-z", "0,1", "-z", "5-999999999"], "has no slice index 5 (of the range 5-999999999"),
    (["-p", "1", "-p", "0-999999999,1"], "has no position index 2 (of the range 0-999999999"),
])
def test_download_of_a_huge_range_is_refused_at_once(uploaded_ometiff, site, run_cli, tmp_path,
                                                     args, message):
    before = site.snapshot()
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = run_cli("download", "--id", uploaded_ometiff, "--dest", tmp_path / "dest", *args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 2, result.stderr
    assert len(result.errors) == 1 and message in result.errors[0], result.stderr
    assert time.monotonic() - started < 10 and peak < MEMORY_BOUND
    assert not (tmp_path / "dest").exists()
    assert site.snapshot() == before


@pytest.mark.parametrize("selection", [
    {"slices": range(10**9)}, {"times": [0, range(10**12)]}, {"positions": range(0, 10**9, 7)},
])
def test_read_of_a_huge_range_is_refused_at_once(uploaded_ometiff, selection):
    tracemalloc.start()
    try:
        with imagingdb.connect() as db, pytest.raises(NotFoundError, match="of the range .* asked for"):
            db.dataset(uploaded_ometiff).read(**selection)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND


def test_huge_ranges_are_refused_at_once_on_postgresql_and_s3(pg_s3_site, run_cli, upload_files,
                                                             mm_ometiff, tmp_path):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.frames_config()).exit_code == 0
    before = pg_s3_site.snapshot()
    tracemalloc.start()
    try:
        result = run_cli("download", "--id", DATASET_ID, "--dest", tmp_path / "dest",
                         "-z", "0-999999999")
        with imagingdb.connect() as db, pytest.raises(NotFoundError,
                                                      match="of the range 0-999999998 asked"):
            db.dataset(DATASET_ID).read(times=range(999999999))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 2 and len(result.errors) == 1, result.stderr
    assert "has no slice index 3 (of the range 0-999999999 asked for)" in result.errors[0]
    assert peak < MEMORY_BOUND and pg_s3_site.snapshot() == before


def test_ranges_inside_the_dataset_still_select(uploaded_ometiff):
    with imagingdb.connect() as db:
        array = db.dataset(uploaded_ometiff).read(slices=range(1, 3), times=[1, range(0, 2)])
    assert array.shape[:4] == (2, 2, 2, 2)  # P, T (1 then 0), C, Z (1, 2)


def test_download_with_a_range_inside_the_dataset(uploaded_ometiff, run_cli, tmp_path):
    result = run_cli("download", "--id", uploaded_ometiff, "--dest", tmp_path / "dest",
                     "-z", "1-2", "-t", "1", "-p", "0-1", "-c", "DAPI", "--no-metadata")
    assert result.exit_code == 0, result.stderr
    assert len(list((tmp_path / "dest" / uploaded_ometiff).glob("*.png"))) == 4


# ------------------------------------------------------- YAML and JSON inputs

UPLOAD = "upload_type: frames\nframes_format: ome_tiff\n"
#: nine levels of nine aliases each: 9**9 (387 million) values once expanded
ALIAS_BOMB = "".join(
    [f"  l0: &l0 [{', '.join(['lol'] * 9)}]\n"]
    + [f"  l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]\n" for n in range(1, 10)])
NESTED_5000 = "[" * 5000 + "]" * 5000


def _oversize(path):
    path.write_text(UPLOAD + "#" * (5 * 2**20) + "\n")


def _fifo(path):
    os.mkfifo(path)  # opening it for reading would wait for a writer that never comes


BAD_YAML = {
    # name: (the text written, or a function making the file; what the Error: says)
    "alias bomb": (UPLOAD + "meta_schema:\n" + ALIAS_BOMB, "aliases expand to more than"),
    "alias into itself": (UPLOAD + "meta_schema:\n  a: &a [1, *a]\n", "an alias to itself"),
    "5000 levels of lists": (UPLOAD + "meta_schema: " + NESTED_5000 + "\n",
                             "nested more than 100 levels deep"),
    "5000 levels of mappings": (UPLOAD + "meta_schema: " + "{a: " * 5000 + "1" + "}" * 5000
                                + "\n", "nested more than 100 levels deep"),
    "a list as a key": (UPLOAD + "[upload_type, storage]: file\n", "is a list or mapping"),
    "a mapping as a key": (UPLOAD + "? {a: 1}\n: file\n", "is a list or mapping"),
    "a duplicate key": (UPLOAD + "upload_type: file\n", "duplicate key 'upload_type'"),
    "a date that is none": (UPLOAD + "microscope: 2020-13-45\n",
                            "invalid YAML at line 3: month must be in 1..12"),
    "an integer of 5000 digits": (UPLOAD + "nbr_workers: " + "9" * 5000 + "\n",
                                  "invalid YAML at line 3: Exceeds the limit"),
    "a mapping tag on a list": (UPLOAD + "storage: !!map [1]\n", "invalid YAML at line 3"),
    "oversize": (_oversize, "is larger than 4 MiB"),
    "a FIFO": (_fifo, "is a device, FIFO or socket, not a regular file"),
    "a folder": (os.mkdir, "is a folder, not a regular file"),
}


def _bad_file(path, name):
    content, message = BAD_YAML[name]
    if callable(content):
        content(path)
    else:
        path.write_text(content, encoding="utf-8")
    return message


def _run_bounded(args, cwd):
    """The installed command, killed if it takes more than a few seconds; (run, seconds)."""
    started = time.monotonic()
    run = subprocess.run([*imagingdb_command(), *map(str, args)], capture_output=True, text=True,
                         timeout=60, cwd=cwd)
    return run, time.monotonic() - started


def _assert_one_error(run, seconds, *texts):
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert run.returncode == 2, run.stderr
    assert len(errors) == 1, run.stderr
    for text in texts:
        assert text in errors[0], errors[0]
    assert "unexpected" not in run.stderr and "Traceback" not in run.stderr
    assert seconds < 20, f"took {seconds:.1f} s"


@pytest.mark.parametrize("name", list(BAD_YAML))
def test_bad_upload_config_is_refused_at_once_naming_it(site, run_cli, upload_files, mm_ometiff,
                                                        tmp_path, name):
    config = tmp_path / "upload.yaml"
    message = _bad_file(config, name)
    run_cli("init")
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    run, seconds = _run_bounded(["upload", "--csv", csv_path, "--config", config], tmp_path)
    _assert_one_error(run, seconds, str(config), message)
    assert site.snapshot() == before


@pytest.mark.parametrize("name", list(BAD_YAML))
def test_bad_meta_schema_file_is_refused_at_once_naming_it(site, run_cli, upload_files,
                                                           mm_ometiff, tmp_path, name):
    schema = tmp_path / "schema.yaml"
    message = _bad_file(schema, name)
    config = upload_files.config(upload_type="frames", frames_format="ome_tiff",
                                 meta_schema=str(schema))
    run_cli("init")
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    run, seconds = _run_bounded(["upload", "--csv", csv_path, "--config", config], tmp_path)
    _assert_one_error(run, seconds, str(schema), message)
    assert site.snapshot() == before


def test_meta_schema_dev_zero_is_refused_at_once(site, run_cli, upload_files, mm_ometiff,
                                                 tmp_path):
    config = upload_files.config(upload_type="frames", frames_format="ome_tiff",
                                 meta_schema="/dev/zero")
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    run, seconds = _run_bounded(["upload", "--csv", csv_path, "--config", config], tmp_path)
    _assert_one_error(run, seconds, "meta_schema file /dev/zero is a device, FIFO or socket")


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
@pytest.mark.parametrize("option", ["--site-config", "--login"])
def test_site_config_and_login_file_from_a_device_or_fifo_are_refused_at_once(
        tmp_path, option, special):
    if special == "fifo":
        special = tmp_path / "fifo"
        os.mkfifo(special)
    run, seconds = _run_bounded([option, special, "query"], tmp_path)
    _assert_one_error(run, seconds, str(special), "not a regular file")


@pytest.mark.parametrize("name", ["alias bomb", "5000 levels of lists", "a list as a key",
                                  "oversize"])
def test_bad_site_config_is_refused_naming_it(run_cli, tmp_path, name):
    config = tmp_path / "site.yaml"
    message = _bad_file(config, name)
    result = run_cli("--site-config", config, "query")
    assert result.exit_code == 2 and len(result.errors) == 1, result.stderr
    assert str(config) in result.errors[0] and message in result.errors[0], result.errors[0]


def test_login_file_nested_5000_levels_is_refused_naming_it(run_cli, tmp_path):
    login = tmp_path / "db_credentials.json"
    login.write_text(NESTED_5000)
    login.chmod(0o600)
    result = run_cli("--login", login, "query")
    assert result.exit_code == 2 and len(result.errors) == 1, result.stderr
    assert f"login file {login} is not valid JSON: nested too deeply" in result.errors[0]


def test_a_real_alias_and_a_deep_but_sane_schema_still_load(tmp_path):
    schema = {"type": "object", "properties": {"a": {"type": "object", "properties": {
        "b": {"type": "object", "properties": {"c": {"type": "integer"}}}}}}}
    config = tmp_path / "upload.yaml"
    config.write_text(UPLOAD + "microscope: &scope scope2\nstorage: null\n"
                      f"meta_schema: {json.dumps(schema)}\n")
    loaded = load_upload_config(config)
    assert loaded.microscope == "scope2" and loaded.meta_schema == schema


# ------------------------------------------------------------- metadata.txt


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    write_mm_tif_folder(folder, channels=("DAPI",), slices=2, times=1, height=16, width=16)
    return folder


def _replace_metadata_txt(folder, how):
    (metadata,) = folder.rglob("metadata.txt")
    metadata.unlink()
    if how == "fifo":
        os.mkfifo(metadata)
    elif how == "nested":
        metadata.write_text('{"Summary": ' + NESTED_5000 + "}")
    elif how == "folder":
        metadata.mkdir()
    elif how == "digits":
        metadata.write_text('{"Summary": {"Slices": ' + "9" * 5000 + "}}")
    return metadata


@pytest.mark.parametrize("how, message", [
    ("fifo", "is a device, FIFO or socket, not a regular file"),
    ("folder", "is a folder, not a regular file"),
    ("nested", "is not valid JSON: nested too deeply"),
    ("digits", "is not valid JSON: Exceeds the limit (4300 digits)"),
])
def test_bad_metadata_txt_is_refused_at_once_naming_it(site, run_cli, upload_files, image_folder,
                                                       tmp_path, how, message):
    metadata = _replace_metadata_txt(image_folder, how)
    config = upload_files.config(upload_type="frames", frames_format="tif_folder")
    run_cli("init")
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(image_folder)}])
    run, seconds = _run_bounded(["upload", "--csv", csv_path, "--config", config], tmp_path)
    _assert_one_error(run, seconds, str(metadata), message)
    assert site.snapshot() == before


def test_oversize_metadata_txt_is_refused_naming_it(run_cli, upload_files, image_folder,
                                                    monkeypatch):
    from imagingdb.splitters import micromanager

    monkeypatch.setattr(micromanager, "METADATA_TXT_BASE", 100)
    monkeypatch.setattr(micromanager, "METADATA_TXT_PER_FILE", 0)
    (metadata,) = image_folder.rglob("metadata.txt")
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(image_folder)}])
    result = run_cli("upload", "--csv", csv_path, "--config",
                     upload_files.config(upload_type="frames", frames_format="tif_folder"))
    assert result.exit_code == 2 and len(result.errors) == 1, result.stderr
    assert f"Micro-Manager metadata file {metadata} is larger than" in result.errors[0]


def test_metadata_txt_may_grow_with_the_folders_image_files(run_cli, upload_files,
                                                            image_folder, monkeypatch):
    """The limit is a summary's room and a few hundred KB more per image file, so that a
    large acquisition's metadata.txt is read and a small folder's cannot fill the heap."""
    from imagingdb.splitters import micromanager

    (metadata,) = image_folder.rglob("metadata.txt")
    files = len(list(metadata.parent.glob("*.tif")))
    monkeypatch.setattr(micromanager, "METADATA_TXT_BASE", 100)
    monkeypatch.setattr(micromanager, "METADATA_TXT_PER_FILE",
                        metadata.stat().st_size // files + 1)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(image_folder)}])
    result = run_cli("upload", "--csv", csv_path, "--config",
                     upload_files.config(upload_type="frames", frames_format="tif_folder"))
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_upload_csv_from_a_device_or_fifo_is_refused_at_once(upload_files, tmp_path, special):
    if special == "fifo":
        special = tmp_path / "rows.csv"
        os.mkfifo(special)
    run, seconds = _run_bounded(["upload", "--csv", special, "--config",
                                 upload_files.frames_config()], tmp_path)
    _assert_one_error(run, seconds, f"CSV file {special} is a device, FIFO or socket")


# --------------------------------------------- JSON inside TIFF tags, nested too deeply

DEEP_OBJECT = '{"a": ' * 5000 + "1" + "}" * 5000


def _mm_page_json_nested_5000_levels(tmp_path):
    from tests.test_ome_tiff import SMALL_SUMMARY, page_meta, write_mm_pages

    pixels = np.zeros((8, 8), "uint16")
    path = write_mm_pages(tmp_path / "deep.ome.tif", [(pixels, page_meta(t=0)),
                                                      (pixels, page_meta(t=1))], SMALL_SUMMARY)
    data = path.read_bytes()  # the second page's JSON, replaced by one as long, nested deep
    second = json.dumps(page_meta(t=1)).encode()
    at = data.rindex(second)
    path.write_bytes(data[:at] + DEEP_OBJECT[:len(second)].encode() + data[at + len(second):])
    return path, "ome_tiff", "MicroManagerMetadata on page 1 is not a JSON object"


def _shape_description_nested_5000_levels(tmp_path):
    path = tmp_path / "deep.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), "uint16"), metadata=None,
                     description='{"shape": ' + "[" * 5000 + "]" * 5000 + "}")
    return path, "tif_id", "its tifffile shape description"


def _imagej_info_nested_5000_levels(tmp_path):
    """Micro-Manager's summary, as ImageJ Info, nested too deep: read as no summary."""
    from tests.test_ome_tiff import page_meta

    path = tmp_path / "info.ome.tif"
    with tifffile.TiffWriter(path, ome=False, shaped=False) as writer:
        writer.write(np.zeros((8, 8), "uint16"), contiguous=False, metadata=None, extratags=[
            (51123, "s", 0, json.dumps(page_meta(t=0)), True),
            *tifffile.imagej_metadata_tag({"Info": DEEP_OBJECT}, "<")])
    return path, "ome_tiff", None


@pytest.mark.parametrize("make", [_mm_page_json_nested_5000_levels,
                                  _shape_description_nested_5000_levels,
                                  _imagej_info_nested_5000_levels])
def test_json_nested_5000_levels_in_a_tiff_tag_is_no_unexpected_error(run_cli, upload_files,
                                                                     tmp_path, make):
    source, frames_format, message = make(tmp_path)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    result = run_cli("upload", "--csv", csv_path, "--config",
                     upload_files.config(upload_type="frames", frames_format=frames_format))
    assert "unexpected" not in result.stderr and "RecursionError" not in result.stderr
    assert "Warning: plugin" not in result.stderr, result.stderr
    if message is None:  # a summary that cannot be read is none: the pages place the frames
        assert result.exit_code == 0, result.stderr
        return
    assert result.exit_code == 2 and len(result.errors) == 1, result.stderr
    assert str(source) in result.errors[0] and message in result.errors[0], result.errors[0]


@pytest.mark.parametrize("schema, message", [
    ({"$ref": "http://10.255.255.1/schema.json"}, "has a $ref that cannot be resolved"),
    ({"$ref": "#/definitions/missing"}, "has a $ref that cannot be resolved"),
    ({"$ref": "#"}, "refers to itself without end"),
])
def test_meta_schema_refs_that_lead_nowhere_are_refused_naming_the_config(
        site, run_cli, upload_files, mm_ometiff, schema, message):
    """No schema is fetched from the network, and none recurses into a RecursionError."""
    config = upload_files.config(upload_type="frames", frames_format="ome_tiff",
                                 meta_schema=schema)
    run_cli("init")
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", config)
    assert "unexpected" not in result.stderr
    assert_refused(result, site, before, contains=(str(config), message))


def test_a_small_file_is_read_without_allocating_its_limit(tmp_path):
    # read(n) allocates n bytes first: a 100-byte CSV under a 64 MB limit must not
    from imagingdb.input_files import read_bytes

    small = tmp_path / "rows.csv"
    small.write_bytes(b"dataset_id,file_name\n" * 5)
    tracemalloc.start()
    try:
        assert read_bytes(small, "CSV file", 64 * 1024 * 1024) == small.read_bytes()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


def test_a_file_that_grew_after_its_size_was_read_is_read_whole_or_refused(tmp_path, monkeypatch):
    # the size fstat gives only sizes the first read: a file written meanwhile is read on
    from imagingdb import input_files
    from imagingdb.errors import InputError

    real_fstat = os.fstat

    def stale_fstat(fd):  # the size before another process appended to the file
        status = real_fstat(fd)
        return os.stat_result((*status[:6], 10, *status[7:]))

    monkeypatch.setattr(input_files.os, "fstat", stale_fstat)
    path = tmp_path / "rows.csv"
    path.write_bytes(b"y" * 3000)
    assert input_files.read_bytes(path, "CSV file", 4096) == b"y" * 3000
    assert input_files.read_bytes(path, "CSV file", 3000) == b"y" * 3000
    with pytest.raises(InputError, match="larger than"):
        input_files.read_bytes(path, "CSV file", 2999)
