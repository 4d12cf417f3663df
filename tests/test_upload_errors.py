"""Bad input: a one-line Error: naming the file/row/key, the right exit code, nothing changed."""

import pytest

from tests.conftest import DATASET_ID
from tests.helpers import assert_refused

OTHER_ID = "ML-2005-05-23-10-00-00-0002"


def _write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


# ------------------------------------------------------------------- the CSV


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("dataset_id,file_name\n", "has no rows"),
    ("dataset_id,description\nML-2005-05-23-10-00-00-0001,x\n", "lacks column(s): file_name"),
    ("dataset_id,file_name,descripton\nML-2005-05-23-10-00-00-0001,a,b\n",
     "has a column 'descripton': did you mean 'description'?"),
    ("dataset_id,file_name,cell line\nML-2005-05-23-10-00-00-0001,a,b\n",
     "annotation key 'cell line' is not a name"),
    ("dataset_id,file_name,microscope\nML-2005-05-23-10-00-00-0001,a,b\n",
     "'microscope' is a field of every dataset, not an annotation"),
    ("dataset_id,file_name,strain,strain\nML-2005-05-23-10-00-00-0001,a,b,c\n",
     "has the column(s) strain twice"),
])
def test_bad_csv_file(snapshot_with_one_dataset, site, run_cli, upload_files, content, message):
    csv_path = _write(upload_files.folder / "bad.csv", content)
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert_refused(result, site, snapshot_with_one_dataset, contains=(str(csv_path), message))


def test_missing_csv_file(snapshot_with_one_dataset, site, run_cli, upload_files, tmp_path):
    result = run_cli("upload", "--csv", tmp_path / "nope.csv", "--config",
                     upload_files.frames_config())
    assert_refused(result, site, snapshot_with_one_dataset, contains=("nope.csv", "not found"))


def test_csv_with_a_bom_is_read(site, run_cli, upload_files, mm_ometiff):
    csv_path = _write(upload_files.folder / "bom.csv",
                      f"dataset_id,file_name\n{DATASET_ID},{mm_ometiff}\n", encoding="utf-8-sig")
    assert csv_path.read_bytes().startswith(b"\xef\xbb\xbf")
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("row, message", [
    ({"dataset_id": "ML-2005-13-40-10-00-00-0001"}, "not a real date"),
    ({"dataset_id": "not-an-id"}, "invalid dataset ID 'not-an-id'"),
    ({"dataset_id": "../../etc-2005-05-23-10-00-00-0001"}, "invalid dataset ID"),
    ({"dataset_id": ""}, "empty dataset ID"),
    ({"file_name": ""}, "file_name is empty"),
    ({"file_name": "/no/such/folder"}, "/no/such/folder not found"),
    ({"parent_dataset_id": "ML-1999-01-01-00-00-00-0001"},
     "parent dataset ML-1999-01-01-00-00-00-0001 does not exist"),
    ({"parent_dataset_id": "parent?"}, "parent_dataset_id: invalid dataset ID"),
    ({"parent_dataset_id": DATASET_ID}, "cannot be its own parent"),
    ({"positions": "[0, x]"}, "invalid positions '[0, x]'"),
    ({"positions": "[-1]"}, "positions must be 0 or more"),
    ({"positions": "[7]"}, "7"),
])
def test_bad_row_is_refused(snapshot_with_one_dataset, site, run_cli, upload_files, mm_ometiff, row, message):
    values = {"dataset_id": DATASET_ID, "file_name": str(mm_ometiff), "description": "",
              "parent_dataset_id": "", "positions": "", **row}
    csv_path = upload_files.csv([values])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert_refused(result, site, snapshot_with_one_dataset, contains=("row 2", message))


def test_one_bad_row_fails_alone_and_the_exit_code_says_so(site, run_cli, upload_files,
                                                          mm_ometiff):
    csv_path = upload_files.csv([
        {"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)},
        {"dataset_id": "ML-2005-05-23-10-00-00-9", "file_name": str(mm_ometiff)},
        {"dataset_id": OTHER_ID, "file_name": str(mm_ometiff)},
    ])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(),
                     "--format", "json")
    assert result.exit_code == 1  # some rows went in: not 2, "nothing was changed"
    assert len(result.errors) == 1 and "row 3" in result.errors[0]
    assert [r["status"] for r in result.json()] == ["uploaded", "failed", "uploaded"]
    assert "2 of 3 dataset(s) uploaded" in result.stderr
    with site.connect() as db:
        assert [d.dataset_id for d in db.query()] == [DATASET_ID, OTHER_ID]


def test_duplicate_ids_in_one_csv_fail_the_repeat(site, run_cli, upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)},
                                 {"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert result.exit_code == 1  # the first row went in
    assert result.errors == [f"Error: {csv_path.name} row 3: dataset ID {DATASET_ID} "
                             "repeats row 2"]
    with site.connect() as db:
        assert db.dataset(DATASET_ID).nbr_frames == 24


def test_more_cells_than_columns_is_a_row_error(snapshot_with_one_dataset, site, run_cli, upload_files,
                                                mm_ometiff):
    csv_path = _write(upload_files.folder / "extra.csv",
                      f"dataset_id,file_name\n{DATASET_ID},{mm_ometiff},surprise\n")
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert_refused(result, site, snapshot_with_one_dataset, contains=("row 2", "more values than columns"))


def test_description_with_quotes_newlines_and_non_ascii_is_kept(site, run_cli, upload_files,
                                                                mm_ometiff):
    text = 'He said "stop"; it\'s 37°C\nsecond line — ünïcode'
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff),
                                  "description": text}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.frames_config()).exit_code == 0
    with site.connect() as db:
        assert db.dataset(DATASET_ID).info.description == text


# ----------------------------------------------------------- the upload config


@pytest.mark.parametrize("text, message", [
    ("upload_type: frames\nframe_format: ome_tiff\n",
     "the source's format is the key 'frames_format'"),
    ("upload_type: frames\nframe_formats: ome_tiff\n",
     "unknown key 'frame_formats' (did you mean"),
    ("upload_type: frames\nframes_format: ome_tiff\nupload_type: file\n",
     "duplicate key 'upload_type'"),
    ("upload_type: frames\nframes_format: [ome_tiff\n", "invalid YAML"),
    ("upload_type: frames\nframes_format: lif\n", "unknown splitter 'lif'; available: "),
    ("upload_type: frames\nframes_format: ome_tiff\nfilename_parser: parse_nothing\n",
     "unknown filename parser 'parse_nothing'"),
    ("upload_type: frames\nframes_format: ome_tiff\nstorage: ftp\n",
     "unknown storage backend 'ftp'"),
    ("upload_type: frames\nframes_format: ome_tiff\nmeta_schema: {type: 7}\n",
     "meta_schema is not a valid JSON Schema"),
])
def test_bad_upload_config(snapshot_with_one_dataset, site, run_cli, upload_files, mm_ometiff, text, message):
    config = _write(upload_files.folder / "bad.yaml", text)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", config)
    assert result.exit_code == 2, result.stderr
    assert len(result.errors) >= 1 and message in result.errors[0], result.errors
    assert site.snapshot() == snapshot_with_one_dataset


def test_meta_schema_violation_names_frame_and_key(snapshot_with_one_dataset, site, run_cli, upload_files,
                                                   mm_ometiff):
    config = upload_files.frames_config(meta_schema={"type": "object",
                                                     "required": ["LaserPower"]})
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", config)
    assert_refused(result, site, snapshot_with_one_dataset,
                   contains=("frame (c=0, z=0, t=0, p=0)", "'LaserPower'", "meta_schema"))


# ------------------------------------------------------------------ the source


def _tiff_variants(tmp_path, mm_ometiff):
    import numpy as np
    import tifffile

    good = mm_ometiff / "sample_MMStack_Pos0.ome.tif"
    zero = _write(tmp_path / "zero.ome.tif", "")
    truncated = tmp_path / "truncated.ome.tif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = _write(tmp_path / "text.ome.tif", "this is not a TIFF\n")
    plain = tmp_path / "plain.ome.tif"
    tifffile.imwrite(plain, np.zeros((3, 8, 8), np.uint16), ome=False)
    return {"zero": zero, "truncated": truncated, "text": text, "plain": plain}


@pytest.mark.parametrize("variant, message", [
    ("zero", "zero.ome.tif"),
    ("truncated", "truncated.ome.tif"),
    ("text", "text.ome.tif"),
    ("plain", "no MicroManagerMetadata"),
])
def test_bad_source_files(snapshot_with_one_dataset, site, run_cli, upload_files, mm_ometiff,
                          tmp_path, variant, message):
    source = _tiff_variants(tmp_path, mm_ometiff)[variant]
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert_refused(result, site, snapshot_with_one_dataset, contains=("row 2", message))


def test_file_upload_of_a_folder_is_refused(snapshot_with_one_dataset, site, run_cli,
                                            upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.file_config())
    assert_refused(result, site, snapshot_with_one_dataset, contains=("is not a file",))


def test_missing_config_file(snapshot_with_one_dataset, site, run_cli, upload_files, mm_ometiff, tmp_path):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", tmp_path / "none.yaml")
    assert_refused(result, site, snapshot_with_one_dataset, contains=("none.yaml", "not found"))


def test_storage_error_midway_removes_what_was_written(site, run_cli, upload_files, mm_ometiff,
                                                       monkeypatch):
    from imagingdb.errors import WorkError
    from imagingdb.storage.local import LocalStorage

    before = site.snapshot()
    original = LocalStorage.put_bytes
    calls = []

    def failing_put(self, key, data):
        calls.append(key)
        if len(calls) == 10:
            raise WorkError(f"storage {self.root} is full while writing {key}")
        original(self, key, data)

    monkeypatch.setattr(LocalStorage, "put_bytes", failing_put)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(),
                     "--workers", "2")
    assert_refused(result, site, before, code=1, contains=("is full",))


# ------------------------------------------------------- CSVs as Excel writes them


def _excel_csv(path, rows, delimiter, encoding, bom=b""):
    text = "\r\n".join(delimiter.join(cells) for cells in rows) + "\r\n"
    path.write_bytes(bom + text.encode(encoding))
    return path


@pytest.mark.parametrize("delimiter, encoding, bom, args", [
    (";", "utf-8", b"\xef\xbb\xbf", []),            # Excel "CSV UTF-8", a European locale
    ("\t", "utf-16-le", b"\xff\xfe", []),            # Excel "Unicode text"
    (",", "cp1252", b"", ["--encoding", "cp1252"]),  # Excel "CSV" on Windows
    (";", "mac-roman", b"", ["--encoding", "mac-roman"]),
])
def test_excel_csvs_are_read(site, run_cli, upload_files, mm_ometiff, delimiter, encoding, bom,
                             args):
    csv_path = _excel_csv(upload_files.folder / "excel.csv", [
        ["dataset_id", "file_name", "description", "strain"],
        [DATASET_ID, str(mm_ometiff), "cellules fixées; 10x", "wild-type é"],
    ], delimiter, encoding, bom)
    if delimiter == ";":  # a ';' inside a value is quoted, as Excel does
        csv_path.write_bytes(csv_path.read_bytes().replace(
            "cellules fixées; 10x".encode(encoding), '"cellules fixées; 10x"'.encode(encoding)))
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(),
                     *args)
    assert result.exit_code == 0, result.stderr
    with site.connect() as db:
        info = db.dataset(DATASET_ID)
        assert info.summary()["description"] == "cellules fixées; 10x"
    with site.connect() as db, db.site.connection() as conn:
        from imagingdb import db as dbq
        assert dbq.find_dataset(conn, DATASET_ID).annotations == {"strain": "wild-type é"}


def test_a_csv_not_in_utf8_is_refused_with_its_line(snapshot_with_one_dataset, site, run_cli,
                                                     upload_files):
    csv_path = _excel_csv(upload_files.folder / "cp1252.csv", [
        ["dataset_id", "file_name", "description"],
        [OTHER_ID, "/data/run1", "fixées"],
    ], ",", "cp1252")
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert_refused(result, site, snapshot_with_one_dataset, contains=(
        f"CSV file {csv_path} is not UTF-8: line 2 has the byte 0xe9; save it as \"CSV UTF-8\"",
        "--encoding cp1252"))


def test_an_unknown_encoding_is_refused(snapshot_with_one_dataset, site, run_cli, upload_files,
                                        mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": OTHER_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(),
                     "--encoding", "klingon")
    assert_refused(result, site, snapshot_with_one_dataset,
                   contains=("--encoding 'klingon' is not an encoding Python knows",))


@pytest.mark.parametrize("header, hint", [
    ("dataset_id,filename", "lacks column(s): file_name (did you mean 'filename' for 'file_name'?)"),
    ("Dataset ID;File Name", "lacks column(s): dataset_id, file_name (did you mean 'Dataset ID' "
                             "for 'dataset_id' and 'File Name' for 'file_name'?)"),
])
def test_misspelt_required_columns_get_a_hint(snapshot_with_one_dataset, site, run_cli,
                                              upload_files, header, hint):
    csv_path = _write(upload_files.folder / "typo.csv", f"{header}\n{OTHER_ID},/data/x\n")
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert_refused(result, site, snapshot_with_one_dataset, contains=(hint,))
