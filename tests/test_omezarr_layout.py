"""The ome-zarr frame layout: a dataset's folder is an OME-Zarr 0.5 store that other people's
readers open (zarr-python reads every pixel, ome-zarr-models validates it), and read, verify,
gc, overwrite and the kill -9 guarantees work on it as on PNG frames."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from imagingdb.faults import KILL_AT_ENV
from tests.conftest import DATASET_ID
from tests.helpers import source_frames

ID = DATASET_ID


def upload(run_cli, upload_files, source, dataset_id=ID, *extra, **config):
    csv_path = upload_files.csv([{"dataset_id": dataset_id, "file_name": str(source)}])
    config.setdefault("frame_format", "ome-zarr")
    return run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(**config),
                   *extra)


def open_store(root: Path):
    import zarr

    return zarr.open_group(str(root), mode="r")


def validate_store(root: Path, positions):
    """The store is an OME-Zarr 0.5 plate whose every well's image validates."""
    from ome_zarr_models.v05.hcs import HCS
    from ome_zarr_models.v05.image import Image

    group = open_store(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ome-zarr-models notes the plate has no own version
        plate = HCS.from_zarr(group)
        images = {p: Image.from_zarr(group[f"0/{p}/0"]) for p in positions}
    assert [w.path for w in plate.ome_attributes.plate.wells] == [f"0/{p}" for p in positions]
    return group, images


def stored_root(site, dataset_id=ID) -> Path:
    with site.connect() as database:
        return site.storage_root / database.dataset(dataset_id).storage_dir


@pytest.fixture
def zarr_dataset(site, run_cli, upload_files, mm_ometiff):
    result = upload(run_cli, upload_files, mm_ometiff)
    assert result.exit_code == 0, result.stderr
    return stored_root(site)


def test_the_stored_folder_is_an_ome_zarr_that_zarr_python_reads_pixel_for_pixel(
        site, zarr_dataset, mm_ometiff):
    group, images = validate_store(zarr_dataset, positions=[0, 1])
    expected = source_frames(mm_ometiff)
    for p in (0, 1):
        array = group[f"0/{p}/0/0"]
        assert array.shape == (2, 2, 3, 32, 48) and array.chunks == (1, 1, 1, 32, 48)
        assert str(array.dtype) == "uint16"
        pixels = array[:]
        for (c, z, t, pos), frame in expected.items():
            if pos == p:
                np.testing.assert_array_equal(pixels[t, c, z], frame)
    omero = group["0/0/0"].attrs["ome"]["omero"]
    assert [channel["label"] for channel in omero["channels"]] == ["DAPI", "GFP"]
    axes = images[0].ome_attributes.multiscales[0].axes
    assert [axis.name for axis in axes] == ["t", "c", "z", "y", "x"]


def test_read_gives_what_zarr_python_reads_and_the_row_records_the_layout(site, zarr_dataset,
                                                                           run_cli):
    group = open_store(zarr_dataset)
    with site.connect() as database:
        dataset = database.dataset(ID)
        assert dataset.frame_format == "ome-zarr"
        array = dataset.read(verify=True)
        rows = dataset.frames(with_metadata=False)
    for p in (0, 1):
        np.testing.assert_array_equal(array[p], group[f"0/{p}/0/0"][:])
    assert {row["file_name"] for row in rows} == {
        f"0/{r['pos_idx']}/0/0/c/{r['time_idx']}/{r['channel_idx']}/{r['slice_idx']}/0/0"
        for r in rows}
    shown = run_cli("show", ID, "--format", "json")
    assert shown.exit_code == 0 and shown.json()["frame_format"] == "ome-zarr"


def test_png_and_ome_zarr_uploads_of_one_source_read_the_same(site, run_cli, upload_files,
                                                                 mm_ometiff):
    other = "ML-2005-05-23-10-00-00-0002"
    assert upload(run_cli, upload_files, mm_ometiff).exit_code == 0
    assert upload(run_cli, upload_files, mm_ometiff, other, frame_format="png").exit_code == 0
    with site.connect() as database:
        zarr_frames, png_frames = database.dataset(ID), database.dataset(other)
        assert png_frames.frame_format == "png"
        np.testing.assert_array_equal(zarr_frames.read(), png_frames.read())
        assert ([r["sha256"] for r in zarr_frames.frames()]
                == [r["sha256"] for r in png_frames.frames()])
    assert any(key.endswith(".png") for key in site.objects() if other in key)


def test_the_site_config_chooses_the_layout_and_an_upload_config_overrides_it(
        tmp_path, monkeypatch, run_cli, upload_files, mm_ometiff):
    root = tmp_path / "store"
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path / 'site.db'}"},
        "storage": {"backend": "local", "root": str(root), "frame_format": "ome-zarr"}}))
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(config))
    other = "ML-2005-05-23-10-00-00-0002"
    csv_path = upload_files.csv([{"dataset_id": ID, "file_name": str(mm_ometiff)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.frames_config()).exit_code == 0
    assert upload(run_cli, upload_files, mm_ometiff, other, frame_format="png").exit_code == 0
    import imagingdb

    with imagingdb.connect() as database:
        assert database.dataset(ID).frame_format == "ome-zarr"
        assert database.dataset(other).frame_format == "png"
    assert (root / "raw_frames" / ID / "zarr.json").is_file()


@pytest.mark.parametrize("where", ["upload", "site"])
def test_an_unknown_frame_format_is_refused_naming_the_key(where, tmp_path, monkeypatch,
                                                          run_cli, upload_files, mm_ometiff):
    csv_path = upload_files.csv([{"dataset_id": ID, "file_name": str(mm_ometiff)}])
    config = upload_files.frames_config(frame_format="zarr" if where == "upload" else "png")
    if where == "site":
        site_config = tmp_path / "site.yaml"
        site_config.write_text(yaml.safe_dump({
            "database": {"url": f"sqlite:///{tmp_path / 'site.db'}"},
            "storage": {"backend": "local", "root": str(tmp_path / "s"), "frame_format": "tiff"}}))
        monkeypatch.setenv("IMAGINGDB_CONFIG", str(site_config))
    result = run_cli("upload", "--csv", csv_path, "--config", config)
    assert result.exit_code == 2
    key = "'frame_format'" if where == "upload" else "'storage.frame_format'"
    assert len(result.errors) == 1 and key in result.errors[0], result.stderr
    assert "png, ome-zarr" in result.errors[0]
    assert not (tmp_path / "s").exists() and not (tmp_path / "imagingdb-home" / "storage").exists()


def test_rgb_frames_are_refused_before_anything_is_written(site, run_cli, upload_files, tmp_path,
                                                          snapshot_with_one_dataset):
    path = tmp_path / "rgb.tif"
    rgb = np.random.default_rng(2).integers(0, 255, (3, 16, 12, 3), dtype=np.uint8)
    tifffile.imwrite(path, rgb, photometric="rgb")
    result = upload(run_cli, upload_files, path, frames_format="auto")
    assert result.exit_code == 2
    assert len(result.errors) == 1 and "set frame_format: png" in result.errors[0]
    assert site.snapshot() == snapshot_with_one_dataset


def test_float_frames_are_stored_as_they_are(site, run_cli, upload_files, tmp_path):
    path = tmp_path / "deconvolved.ome.tif"
    pixels = (np.random.default_rng(1).random((2, 2, 3, 16, 12)) * 100).astype("float32")
    tifffile.imwrite(path, pixels, ome=True,
                     metadata={"axes": "TCZYX", "Channel": {"Name": ["A", "B"]}})
    result = upload(run_cli, upload_files, path, frames_format="auto")
    assert result.exit_code == 0, result.stderr
    with site.connect() as database:
        np.testing.assert_array_equal(database.dataset(ID).read()[0], pixels)
    group, _ = validate_store(stored_root(site), positions=[0])
    np.testing.assert_array_equal(group["0/0/0/0"][:], pixels)


def test_frames_never_written_read_as_the_fill_value(site, run_cli, upload_files, tmp_path):
    from imagingdb.testing import write_mm_ometiff

    dropped = {(1, 2, 1, 0), (0, 0, 1, 0)}
    folder = tmp_path / "stopped"
    write_mm_ometiff(folder, "stopped", channels=("DAPI", "GFP"), slices=3, times=2,
                     positions=1, height=16, width=24, drop=dropped, seed=3)
    assert upload(run_cli, upload_files, folder).exit_code == 0
    group, _ = validate_store(stored_root(site), positions=[0])
    array = group["0/0/0/0"][:]
    expected = source_frames(folder)
    for c, z, t in np.ndindex(2, 3, 2):
        if (c, z, t, 0) in dropped:
            assert (array[t, c, z] == 0).all()
        else:
            np.testing.assert_array_equal(array[t, c, z], expected[(c, z, t, 0)])


# ------------------------------------------------------------------- verify and gc


def test_verify_checks_the_chunks_and_the_store_metadata(site, zarr_dataset, run_cli):
    result = run_cli("verify", ID)
    assert result.exit_code == 0, result.stdout
    assert "32 object(s) checked" in result.stdout  # 24 frames and 8 zarr.json
    (zarr_dataset / "0/1/0/0/c/1/0/2/0/0").unlink()
    chunk = zarr_dataset / "0/0/0/0/c/0/1/0/0/0"
    data = bytearray(chunk.read_bytes())
    data[-5] ^= 0xFF
    chunk.write_bytes(bytes(data))
    (zarr_dataset / "0/1/0/zarr.json").unlink()
    array_doc = zarr_dataset / "0/0/0/0/zarr.json"
    document = json.loads(array_doc.read_text())
    document["shape"][0] = 1  # the time axis no longer holds t=1
    array_doc.write_text(json.dumps(document))
    (zarr_dataset / "0/0/stray.bin").write_bytes(b"x")
    checks = run_cli("verify", ID, "--format", "json").json()["datasets"]
    problems = {(p["problem"], p["key"].split(ID + "/")[1]) for p in checks[0]["problems"]}
    assert problems == {("missing", "0/1/0/0/c/1/0/2/0/0"), ("corrupted", "0/0/0/0/c/0/1/0/0/0"),
                        ("missing", "0/1/0/zarr.json"), ("corrupted", "0/0/0/0/zarr.json"),
                        ("extra", "0/0/stray.bin")}


def test_verify_reports_zarr_json_that_hides_the_frames_from_readers(site, zarr_dataset, run_cli):
    """A plate listing no wells, an image without multiscales, an array whose chunk keys and
    codecs changed: zarr-python then reads position 1 as zeros, and verify says so."""
    def edit(name, change):
        path = zarr_dataset / name
        document = json.loads(path.read_text())
        change(document)
        path.write_text(json.dumps(document))

    edit("zarr.json", lambda d: d.update(attributes={}))
    edit("0/1/0/zarr.json", lambda d: d.update(attributes={}))
    edit("0/1/0/0/zarr.json", lambda d: d.update(
        chunk_key_encoding={"name": "v2", "configuration": {"separator": "."}},
        codecs=[{"name": "bytes", "configuration": {"endian": "big"}},
                {"name": "gzip", "configuration": {"level": 1}}]))
    assert not open_store(zarr_dataset)["0/1/0/0"][:].any()  # what a reader now sees: zeros
    result = run_cli("verify", ID, "--format", "json")
    assert result.exit_code == 1
    problems = {(p["problem"], p["key"].split(ID + "/")[1])
                for p in result.json()["datasets"][0]["problems"]}
    assert problems == {("corrupted", "zarr.json"), ("corrupted", "0/1/0/zarr.json"),
                        ("corrupted", "0/1/0/0/zarr.json")}


def test_a_changed_display_window_or_channel_name_is_no_damage(site, zarr_dataset, run_cli):
    image = zarr_dataset / "0/0/0/zarr.json"
    document = json.loads(image.read_text())
    document["attributes"]["ome"]["omero"]["channels"][0].update(label="Hoechst", color="0000FF")
    image.write_text(json.dumps(document))
    assert run_cli("verify", ID).exit_code == 0


@pytest.mark.parametrize("how", ["export", "download"])
def test_a_damaged_chunk_is_never_copied_into_an_export_or_a_download(
        how, site, zarr_dataset, run_cli, tmp_path):
    chunk = zarr_dataset / "0/0/0/0/c/0/0/0/0/0"
    chunk.write_bytes(chunk.read_bytes()[:20])
    if how == "download":
        result = run_cli("download", "--id", ID, "--dest", tmp_path / "d")
    else:
        result = run_cli("export", "--id", ID, "--to", "ome-zarr", tmp_path / "x.ome.zarr")
    assert result.exit_code == 1, result.stderr
    assert len(result.errors) == 1 and "0/0/0/0/c/0/0/0/0/0" in result.errors[0]
    assert "imagingdb verify" in result.errors[0]
    assert not (tmp_path / "x.ome.zarr").exists() and not (tmp_path / "d" / ID).exists()


def test_a_download_names_the_missing_frames_as_chunks_of_its_own_store(site, run_cli,
                                                                       upload_files, tmp_path):
    from imagingdb.testing import write_mm_ometiff

    folder = tmp_path / "stopped"
    write_mm_ometiff(folder, "stopped", channels=("DAPI", "GFP"), slices=3, times=2,
                     positions=1, height=16, width=24, drop={(1, 2, 1, 0), (0, 0, 1, 0)}, seed=3)
    assert upload(run_cli, upload_files, folder).exit_code == 0
    result = run_cli("download", "--id", ID, "--dest", tmp_path / "d", "-c", "GFP")
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "d" / ID / "global_metadata.json").read_text())
    assert summary["missing_frames"] == ["0/0/0/0/c/1/0/2/0/0"]  # GFP is channel 0 there
    assert not (tmp_path / "d" / ID / "0/0/0/0/c/1/0/2/0/0").exists()


def test_gc_keeps_the_store_metadata_of_a_registered_dataset(site, zarr_dataset, run_cli):
    before = site.objects()
    result = run_cli("gc", "--older-than", "0", "--format", "json")
    assert result.exit_code == 0 and result.json()["objects"] == []
    assert site.objects() == before


@pytest.mark.parametrize("first, second", [("ome-zarr", "png"), ("png", "ome-zarr"),
                                           ("ome-zarr", "ome-zarr")])
def test_an_overwrite_switches_layouts_and_leaves_only_the_new_generation(
        first, second, site, run_cli, upload_files, mm_ometiff):
    assert upload(run_cli, upload_files, mm_ometiff, frame_format=first).exit_code == 0
    result = upload(run_cli, upload_files, mm_ometiff, ID, "--overwrite", frame_format=second)
    assert result.exit_code == 0, result.stderr
    with site.connect() as database:
        dataset = database.dataset(ID)
        assert dataset.frame_format == second
        storage_dir = dataset.storage_dir
        array = dataset.read(verify=True)
    keys = [key for key in site.objects() if ID in key]
    assert keys and all(key.startswith(storage_dir + "/") for key in keys)
    verified = run_cli("verify", ID)
    assert verified.exit_code == 0 and "leftover" not in verified.stdout, verified.stdout
    assert run_cli("gc", "--older-than", "0", "--format", "json").json()["objects"] == []
    expected = source_frames(mm_ometiff)
    np.testing.assert_array_equal(array[1, 1, 0, 2], expected[(0, 2, 1, 1)])
    if second == "ome-zarr":
        validate_store(site.storage_root / storage_dir, positions=[0, 1])


# ---------------------------------------------------------------------- kill -9


def run_killed_upload(csv_path, config, stage):
    env = {**os.environ, KILL_AT_ENV: stage}
    return subprocess.run(
        [sys.executable, "-m", "imagingdb", "upload", "--csv", str(csv_path), "--config",
         str(config), "--workers", "2"], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("stage", ["object-stored:5", "object-stored:25", "before-commit"])
def test_an_upload_killed_at_any_stage_registers_nothing_and_a_rerun_completes(
        stage, run_cli, upload_files, mm_ometiff):
    import imagingdb

    csv_path = upload_files.csv([{"dataset_id": ID, "file_name": str(mm_ometiff)}])
    config = upload_files.frames_config(frame_format="ome-zarr")
    killed = run_killed_upload(csv_path, config, stage)
    assert killed.returncode == -9, killed.stderr
    with imagingdb.connect() as database:
        assert database.query() == []
    rerun = run_cli("upload", "--csv", csv_path, "--config", config, "--workers", "2")
    assert rerun.exit_code == 0, rerun.stderr
    verified = run_cli("verify", ID)
    assert verified.exit_code == 0, verified.stdout
    assert run_cli("gc", "--older-than", "0", "--yes").exit_code == 0
    assert run_cli("verify", ID).stdout.count("leftover") == 0
    with imagingdb.connect() as database:
        root = Path(os.environ["IMAGINGDB_HOME"]) / "storage" / database.dataset(ID).storage_dir
    validate_store(root, positions=[0, 1])


def test_an_overwrite_into_ome_zarr_killed_midway_leaves_the_png_dataset_whole(
        site, run_cli, upload_files, mm_ometiff):
    assert upload(run_cli, upload_files, mm_ometiff, frame_format="png").exit_code == 0
    with site.connect() as database:
        before = database.dataset(ID).read()
    csv_path = upload_files.csv([{"dataset_id": ID, "file_name": str(mm_ometiff)}])
    config = upload_files.frames_config(frame_format="ome-zarr")
    env = {**os.environ, KILL_AT_ENV: "object-stored:7"}
    killed = subprocess.run(
        [sys.executable, "-m", "imagingdb", "upload", "--csv", str(csv_path), "--config",
         str(config), "--workers", "2", "--overwrite"], env=env, capture_output=True, text=True,
        timeout=120)
    assert killed.returncode == -9, killed.stderr
    with site.connect() as database:
        assert database.dataset(ID).frame_format == "png"
        np.testing.assert_array_equal(database.dataset(ID).read(verify=True), before)
    rerun = run_cli("upload", "--csv", csv_path, "--config", config, "--overwrite")
    assert rerun.exit_code == 0, rerun.stderr
    with site.connect() as database:
        assert database.dataset(ID).frame_format == "ome-zarr"
        np.testing.assert_array_equal(database.dataset(ID).read(verify=True), before)


def test_nan_pixels_leave_the_display_window_valid_json(tmp_path):
    from imagingdb.omezarr import StoreSpec, WindowTracker, documents

    tracker = WindowTracker()
    frame = np.full((32, 32), np.nan, np.float32)
    tracker.add(0, frame)
    frame[::16, ::16] = 3.5
    tracker.add(1, frame)
    docs = documents(StoreSpec("X", [0], (1, 2, 1, 32, 32), "float32", ["a", "b"],
                               windows=tracker.windows()))
    channels = json.loads(docs["0/0/0/zarr.json"])["attributes"]["ome"]["omero"]["channels"]
    assert channels[1]["window"]["start"] == channels[1]["window"]["end"] == 3.5
    assert all("NaN" not in doc.decode() for doc in docs.values())


# -------------------------------------------------------------------- S3 and PostgreSQL


def test_an_ome_zarr_dataset_on_s3_reads_verifies_and_opens_in_zarr_python(
        pg_s3_site, run_cli, upload_files, mm_ometiff, tmp_path):
    result = upload(run_cli, upload_files, mm_ometiff)
    assert result.exit_code == 0, result.stderr
    with pg_s3_site.connect() as database:
        dataset = database.dataset(ID)
        array = dataset.read(verify=True)
        prefix = f"imaging/{dataset.storage_dir}/"
    mirror = tmp_path / "mirror"  # the bucket's objects as a folder, read by zarr-python
    for key, data in pg_s3_site.objects().items():
        if key.startswith(prefix):
            path = mirror / key[len(prefix):]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    group, _ = validate_store(mirror, positions=[0, 1])
    for p in (0, 1):
        np.testing.assert_array_equal(group[f"0/{p}/0/0"][:], array[p])
    assert run_cli("verify", ID).exit_code == 0


def test_the_api_refuses_an_unknown_frame_format_naming_it(tmp_path):
    import imagingdb
    from imagingdb.errors import InputError

    with pytest.raises(InputError, match="storage frame_format.*png, ome-zarr, got 'zarr'"):
        imagingdb.connect(storage={"backend": "local", "root": str(tmp_path), "frame_format": "zarr"})


def test_frame_format_on_a_file_kept_whole_is_said_to_have_no_effect(run_cli, upload_files,
                                                                    tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("kept whole\n")
    csv_path = upload_files.csv([{"dataset_id": ID, "file_name": str(notes)}])
    result = run_cli("upload", "--csv", csv_path, "--config",
                     upload_files.file_config(frame_format="ome-zarr"))
    assert result.exit_code == 0, result.stderr
    assert "frame_format: ome-zarr has no effect with upload_type: file" in result.stderr
