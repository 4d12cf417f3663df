"""Quality control at ingest: per-frame figures exact against numpy on the very frames the
TIFFs hold, the dataset summary in show and in query --where, thumbnails and preview, on
both frame layouts, with qc: false, after upgrades; on SQLite and PostgreSQL where it is
the database's work."""

import json
import re
import shutil
import sys
from fractions import Fraction

import numpy as np
import png
import pytest
import sqlalchemy as sa
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from imagingdb import db as dbq
from imagingdb.db.tables import FRAMES_QC_COLUMNS
from imagingdb.testing import FluorescenceScene, write_mm_ometiff
from imagingdb.testing import micromanager as mm_writer
from tests.conftest import DATASET_ID
from tests.helpers import source_frames

only_sqlite = pytest.mark.parametrize("site", ["sqlite"], indirect=True)

CLEAN_ID = "ML-2005-05-23-10-00-00-0002"
FILE_ID = "ML-2005-05-23-10-00-00-0003"
OFF_ID = "ML-2005-05-23-10-00-00-0004"
SATURATED = 1  # channel 1 at time 1 of position 0: 5% of its pixels at the camera's maximum
BLANK_POSITION = 1  # every frame one value
BLURRED_POSITION = 2  # slice 1 sharp, slices 0 and 2 blurred


class QcScene:
    """Frames with what QC must find: saturated, blank, in and out of focus."""

    def __init__(self, height, width, dtype="uint16", top=None, seed=3):
        self.dtype = np.dtype(dtype)
        self.top = top if top is not None else np.iinfo(self.dtype).max
        self.base = FluorescenceScene(height, width, dtype, nbr_slices=3, seed=seed)
        self.rng_seed = seed

    def frame(self, channel, slice, time, position):
        if position == BLANK_POSITION:
            return np.full((self.base.height, self.base.width), 100 + channel, self.dtype)
        pixels = self.base.frame(channel, 1 if position == BLURRED_POSITION else slice, time,
                                 position)
        if position == BLURRED_POSITION and slice != 1:
            wide = pixels.astype(np.float64)
            for axis in (0, 1):  # a 5-pixel box blur, twice: out of focus
                for _ in range(2):
                    wide = sum(np.roll(wide, shift, axis) for shift in range(-2, 3)) / 5
            pixels = np.rint(wide).astype(self.dtype)
        if position == 0 and channel == SATURATED and time == 1:
            rng = np.random.default_rng([self.rng_seed, slice])
            flat = pixels.reshape(-1).copy()
            flat[rng.choice(flat.size, flat.size // 20, replace=False)] = self.top
            pixels = flat.reshape(pixels.shape)
        return np.minimum(pixels, self.top).astype(self.dtype)


def _write(folder, *, top=None, dtype="uint16"):
    folder.mkdir()
    write_mm_ometiff(folder, "qc", channels=("DAPI", "GFP"), slices=3, times=2, positions=3,
                     height=30, width=40, dtype=dtype,
                     scene=QcScene(30, 40, dtype, top=top))
    return folder


@pytest.fixture
def qc_acquisition(tmp_path):
    return _write(tmp_path / "qc-acquisition")


def _upload(run_cli, upload_files, dataset_id, source, **config):
    csv_path = upload_files.csv([{"dataset_id": dataset_id, "file_name": str(source)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(**config))
    assert result.exit_code == 0, result.stderr
    return result


def _laplacian(pixels):
    """The 4-neighbour Laplacian on the interior, in int64 (exact), written out anew."""
    p = pixels.astype(np.int64)
    return (4 * p[1:-1, 1:-1] - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:])


def _check_frames_exact(rows, expected, level):
    assert len(rows) == len(expected)
    for row in rows:
        pixels = expected[(row["channel_idx"], row["slice_idx"], row["time_idx"], row["pos_idx"])]
        assert row["qc_min"] == float(pixels.min()) and row["qc_max"] == float(pixels.max())
        # 16-bit sums are exact in float64, so numpy's mean is the correctly rounded one too
        assert row["qc_mean"] == float(np.mean(pixels, dtype=np.float64))
        assert row["qc_saturated"] == np.count_nonzero(pixels >= level) / pixels.size
        lap = _laplacian(pixels)
        # ours is the exact variance, rounded once; numpy's float64 var rounds as it goes,
        # so it agrees to a few units in the last place only
        exact = Fraction(int((lap * lap).sum()), lap.size) - Fraction(int(lap.sum()), lap.size) ** 2
        assert row["qc_focus"] == float(exact)
        assert row["qc_focus"] == pytest.approx(float(np.var(lap.astype(np.float64))), rel=1e-12)


@only_sqlite
@pytest.mark.parametrize("frame_format", ["png", "ome-zarr"])
def test_every_frame_figure_is_exact_against_numpy(site, run_cli, upload_files, qc_acquisition,
                                                   frame_format):
    _upload(run_cli, upload_files, DATASET_ID, qc_acquisition, frame_format=frame_format)
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert ds.frame_format == frame_format
        rows = ds.frames(with_metadata=False)
        summary = ds.qc
    expected = source_frames(qc_acquisition)
    _check_frames_exact(rows, expected, 65535)
    assert summary["saturation_level"] == 65535 and summary["bits"] == 16
    assert summary["frames"] == 36


@only_sqlite
def test_the_summary_counts_saturated_blank_and_focus(site, run_cli, upload_files,
                                                      qc_acquisition):
    _upload(run_cli, upload_files, DATASET_ID, qc_acquisition)
    with site.connect() as db:
        summary = db.dataset(DATASET_ID).qc
        rows = db.dataset(DATASET_ID).frames(with_metadata=False)
    expected = source_frames(qc_acquisition)
    saturated = sorted(k for k, a in expected.items()
                       if np.count_nonzero(a == 65535) / a.size > 0.01)
    assert saturated == [(SATURATED, z, 1, 0) for z in range(3)]
    assert summary["saturated_frames"] == 3
    assert [(f["channel"], f["slice"], f["time"], f["position"])
            for f in summary["saturated"]] == saturated
    blank = [k for k, a in expected.items() if a.min() == a.max()]
    assert summary["blank_frames"] == len(blank) == 12 and summary["blank_positions"] == 1
    assert summary["positions"]["1"]["blank_frames"] == 12
    focus = [r["qc_focus"] for r in rows]
    assert summary["focus_min"] == min(focus) and summary["focus_max"] == max(focus)
    blurred = {r["slice_idx"]: r["qc_focus"] for r in rows
               if r["pos_idx"] == BLURRED_POSITION and r["channel_idx"] == 0 and r["time_idx"] == 0}
    assert blurred[1] > 10 * blurred[0] and blurred[1] > 10 * blurred[2]
    assert summary["positions"]["2"]["focus_max"] == max(
        r["qc_focus"] for r in rows if r["pos_idx"] == BLURRED_POSITION)


@only_sqlite
def test_the_cameras_bit_depth_sets_the_saturation_level(site, run_cli, upload_files, tmp_path,
                                                         monkeypatch):
    # a 12-bit camera in 16-bit pixels: Micro-Manager writes BitDepth 12 in the summary
    # and in every image's metadata
    monkeypatch.setattr(mm_writer._MMAcquisition, "bit_depth", property(lambda self: 12))
    source = _write(tmp_path / "twelve-bit", top=4095)
    monkeypatch.undo()
    _upload(run_cli, upload_files, DATASET_ID, source)
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        assert ds.global_meta["BitDepth"] == 12
        summary, rows = ds.qc, ds.frames(with_metadata=False)
    assert summary["bits"] == 12 and summary["saturation_level"] == 4095
    assert summary["saturated_frames"] == 3
    _check_frames_exact(rows, source_frames(source), 4095)


@only_sqlite
def test_uint8_frames_saturate_at_255(site, run_cli, upload_files, tmp_path):
    source = _write(tmp_path / "eight-bit", dtype="uint8")
    _upload(run_cli, upload_files, DATASET_ID, source)
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        summary, rows = ds.qc, ds.frames(with_metadata=False)
    assert summary["saturation_level"] == 255 and summary["bits"] == 8
    _check_frames_exact(rows, source_frames(source), 255)


@only_sqlite
def test_show_reports_the_qc_summary(site, run_cli, upload_files, qc_acquisition, tmp_path):
    _upload(run_cli, upload_files, DATASET_ID, qc_acquisition)
    text = run_cli("show", DATASET_ID)
    assert text.exit_code == 0, text.stderr
    lines = [line.strip() for line in text.stdout.splitlines()]
    (at,) = [i for i, line in enumerate(lines) if line.startswith("qc ")]
    assert lines[at].split(None, 1) == ["qc", "36 frames measured; saturation at 65535 (16 bits)"]
    assert lines[at - 1].startswith("missing_frames")
    assert "3 frames saturated > 1%" in lines
    assert "12 blank frames" in lines
    assert "position 1 blank" in lines
    with site.connect() as db:
        summary = db.dataset(DATASET_ID).qc
    (focus,) = [line for line in lines if line.startswith("focus ")]
    shown = [float(figure.replace(",", "")) for figure in focus[len("focus "):].split("..")]
    assert shown == [float(f"{summary['focus_min']:.4g}"), float(f"{summary['focus_max']:.4g}")]
    assert "e+" not in focus or summary["focus_max"] >= 1e7
    data = run_cli("show", DATASET_ID, "--format", "json").json()
    assert data["qc"]["saturated_frames"] == 3 and data["qc"]["blank_positions"] == 1
    assert data["qc"] == json.loads(json.dumps(summary))


@only_sqlite
def test_show_says_when_there_is_no_qc(site, run_cli, upload_files, qc_acquisition, tmp_path):
    _upload(run_cli, upload_files, OFF_ID, qc_acquisition, qc=False)
    _upload_whole_file(run_cli, upload_files, tmp_path)
    off = run_cli("show", OFF_ID)
    assert "none (uploaded before QC, by the original imagingDB, or with qc: false)" in off.stdout
    assert run_cli("show", OFF_ID, "--format", "json").json()["qc"] is None
    assert "none (a file kept whole is not read)" in run_cli("show", FILE_ID).stdout
    with site.connect() as db:
        ds = db.dataset(OFF_ID)
        assert ds.qc is None and ds.thumbnails() == []
        assert all(r["qc_min"] is None and r["qc_focus"] is None
                   for r in ds.frames(with_metadata=False))


def _three_datasets(run_cli, upload_files, tmp_path, qc_acquisition):
    """DATASET_ID: saturated and blank; CLEAN_ID: neither; OFF_ID: both, but qc: false;
    FILE_ID: a file kept whole."""
    from imagingdb.testing import write_mm_ometiff

    clean = tmp_path / "clean"
    clean.mkdir()
    write_mm_ometiff(clean, "clean", channels=("DAPI",), slices=2, times=1, positions=1,
                     height=20, width=24, seed=4)
    _upload(run_cli, upload_files, DATASET_ID, qc_acquisition)
    _upload(run_cli, upload_files, CLEAN_ID, clean)
    _upload(run_cli, upload_files, OFF_ID, qc_acquisition, qc=False)
    _upload_whole_file(run_cli, upload_files, tmp_path)


def _upload_whole_file(run_cli, upload_files, tmp_path):
    """FILE_ID: a file kept whole (never read, so no QC)."""
    whole = tmp_path / "whole.tif"
    whole.write_bytes(b"II*\x00 kept whole")
    csv_path = upload_files.csv([{"dataset_id": FILE_ID, "file_name": str(whole)}])
    assert run_cli("upload", "--csv", csv_path, "--config",
                   upload_files.file_config()).exit_code == 0


def test_query_where_selects_on_qc_in_sql(site, run_cli, upload_files, tmp_path,
                                          qc_acquisition):
    _three_datasets(run_cli, upload_files, tmp_path, qc_acquisition)

    def found(*conditions):
        result = run_cli("query", *[a for c in conditions for a in ("--where", c)],
                         "--format", "json")
        assert result.exit_code == 0, result.stderr
        return [d["dataset_id"] for d in result.json()]

    assert found("qc.saturated_frames>0") == [DATASET_ID]
    assert found("qc.blank_frames>0") == [DATASET_ID]
    assert found("qc.blank_positions=1") == [DATASET_ID]
    assert found("qc.saturated_frames=0") == [CLEAN_ID]
    # a dataset without QC never matches, != included
    assert found("qc.frames>=0") == [DATASET_ID, CLEAN_ID]
    assert found("qc.saturated_frames!=3") == [CLEAN_ID]
    with site.connect() as db:
        focus_max = db.dataset(CLEAN_ID).qc["focus_max"]
        assert [d.dataset_id for d in db.query(where=["qc.blank_frames>0"])] == [DATASET_ID]
        assert [d.dataset_id for d in db.query(where=[("qc.focus_max", "<=", repr(focus_max)),
                                                      ("qc.frames", "=", "2")])] == [CLEAN_ID]


@only_sqlite
@pytest.mark.parametrize("condition, said", [
    ("qc.saturated=1", "'qc.saturated' is no QC figure; use one of qc.frames, qc.saturated_frames"),
    ("qc.blank_frames~1", "qc.blank_frames is a number"),
    ("qc.blank_frames>many", "qc.blank_frames is a number"),
])
def test_a_bad_qc_condition_is_one_error_line(site, run_cli, condition, said):
    result = run_cli("query", "--where", condition)
    assert result.exit_code == 2 and len(result.errors) == 1
    assert said in result.errors[0]


def test_query_sorts_by_a_qc_figure_with_the_datasets_without_qc_last(
        site, run_cli, upload_files, tmp_path, qc_acquisition):
    _three_datasets(run_cli, upload_files, tmp_path, qc_acquisition)

    def order(*options):
        result = run_cli("query", "--sort", *options, "--format", "json")
        assert result.exit_code == 0, result.stderr
        return [d["dataset_id"] for d in result.json()]

    without_qc = sorted([OFF_ID, FILE_ID])
    assert order("qc.saturated_frames") == [CLEAN_ID, DATASET_ID, *without_qc]
    assert order("qc.saturated_frames", "--reverse") == [DATASET_ID, CLEAN_ID,
                                                         *reversed(without_qc)]
    assert order("qc.blank_positions", "--limit", "1") == [CLEAN_ID]
    with site.connect() as db:
        assert [d.dataset_id for d in db.query(sort="qc.blank_frames", reverse=True)][:2] == [
            DATASET_ID, CLEAN_ID]


@only_sqlite
def test_sorting_by_frame_metadata_or_an_unknown_qc_figure_is_one_error_line(site, run_cli):
    for key, said in (("frames.Exposure-ms", "not by frame metadata"),
                      ("qc.focus", "'qc.focus' is no QC figure")):
        result = run_cli("query", "--sort", key)
        assert result.exit_code == 2 and len(result.errors) == 1, key
        assert said in result.errors[0], result.errors


def _pooled(array, factor):
    """Max over factor x factor blocks, written anew (padding with the dtype's minimum)."""
    height, width = array.shape
    rows, cols = -(-height // factor), -(-width // factor)
    padded = np.zeros((rows * factor, cols * factor), array.dtype)
    padded[:height, :width] = array
    return padded.reshape(rows, factor, cols, factor).max(axis=(1, 3))


def _read_png(path_or_bytes):
    reader = (png.Reader(bytes=path_or_bytes) if isinstance(path_or_bytes, bytes)
              else png.Reader(filename=str(path_or_bytes)))
    width, height, rows, info = reader.read()
    array = np.vstack([np.asarray(row, dtype=np.uint8) for row in rows])
    assert info["bitdepth"] == 8
    return array.reshape(height, width, info["planes"]) if info["planes"] > 1 else array


def _expected_thumbnail(frames, position, channel, factor):
    projection = np.max([a for (c, _, _, p), a in frames.items()
                         if c == channel and p == position], axis=0)
    small = _pooled(projection, factor)
    low, high = np.percentile(small, [0.5, 99.5])
    if high > low:
        shown = np.clip(np.rint((small.astype(np.float64) - low) * (255.0 / (high - low))), 0, 255)
    else:
        shown = np.where(small > low, 255, 0)
    return shown.astype(np.uint8)


def test_thumbnails_are_max_projections_and_preview_lays_them_out(site, run_cli, upload_files,
                                                                   tmp_path):
    # 300 x 200 pixels: pooled by 3 to 100 x 67
    source = tmp_path / "big"
    source.mkdir()
    write_mm_ometiff(source, "big", channels=("DAPI", "GFP"), slices=2, times=2, positions=2,
                     height=200, width=300, seed=5)
    _upload(run_cli, upload_files, DATASET_ID, source)
    frames = source_frames(source)
    with site.connect() as db:
        thumbnails = db.dataset(DATASET_ID).thumbnails()
    assert [(t["position"], t["channel"]) for t in thumbnails] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for thumb in thumbnails:
        expected = _expected_thumbnail(frames, thumb["position"], thumb["channel"], 3)
        assert expected.shape == (67, 100)
        np.testing.assert_array_equal(_read_png(thumb["png"]), expected)
        assert len(thumb["png"]) < 16_000
    out = tmp_path / "preview.png"
    result = run_cli("preview", DATASET_ID, "--out", out, "--format", "json")
    assert result.exit_code == 0, result.stderr
    written = result.json()
    assert written["positions"] == [0, 1] and written["channels"] == [0, 1]
    assert written["channel_names"] == ["DAPI", "GFP"]
    sheet = _read_png(out)
    assert sheet.shape == (2 * 67 + 2, 2 * 100 + 2) == (written["height"], written["width"])
    for position in (0, 1):
        for channel in (0, 1):
            top, left = position * 69, channel * 102
            np.testing.assert_array_equal(sheet[top:top + 67, left:left + 100],
                                          _expected_thumbnail(frames, position, channel, 3))
    assert (sheet[67:69] == 64).all() and (sheet[:, 100:102] == 64).all()
    text = run_cli("preview", DATASET_ID, "--out", tmp_path / "again.png")
    assert text.exit_code == 0 and "2 position(s) x 2 channel(s), 202 x 136 pixels" in text.stdout
    assert "rows, top to bottom: position 0, 1; columns, left to right: DAPI, GFP" in text.stdout


@only_sqlite
def test_a_blank_position_has_a_black_thumbnail(site, run_cli, upload_files, qc_acquisition):
    _upload(run_cli, upload_files, DATASET_ID, qc_acquisition)
    with site.connect() as db:
        thumbnails = {(t["position"], t["channel"]): t for t in db.dataset(DATASET_ID).thumbnails()}
    blank = thumbnails[(BLANK_POSITION, 0)]
    assert not _read_png(blank["png"]).any() and blank["display_min"] == blank["display_max"] == 100


@only_sqlite
def test_preview_refuses_bad_inputs_with_one_error_line(site, run_cli, upload_files,
                                                        qc_acquisition, tmp_path):
    _upload(run_cli, upload_files, OFF_ID, qc_acquisition, qc=False)
    _upload(run_cli, upload_files, DATASET_ID, qc_acquisition)
    cases = [
        (("preview", "ML-2005-05-23-10-00-00-0099", "--out", tmp_path / "a.png"),
         "ML-2005-05-23-10-00-00-0099 not found"),
        (("preview", OFF_ID, "--out", tmp_path / "b.png"),
         f"dataset {OFF_ID} has no thumbnails (uploaded before QC or with qc: false"),
        (("preview", DATASET_ID, "--out", tmp_path / "nowhere" / "c.png"),
         "does not exist; create it or write elsewhere"),
        (("preview", DATASET_ID, "--out", tmp_path), "is a folder; give the PNG file"),
    ]
    for args, said in cases:
        result = run_cli(*args)
        assert result.exit_code != 0 and len(result.errors) == 1, result.stderr
        assert said in result.errors[0]
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "nowhere").exists()


@only_sqlite
def test_preview_into_a_file_that_cannot_be_written_is_one_error_line(site, run_cli, upload_files,
                                                                      qc_acquisition, tmp_path):
    _upload(run_cli, upload_files, DATASET_ID, qc_acquisition)
    too_long = tmp_path / ("p" * 300 + ".png")  # no file system takes a 300-byte name
    result = run_cli("preview", DATASET_ID, "--out", too_long)
    assert result.exit_code == 2 and len(result.errors) == 1, result.stderr
    assert "cannot write it (File name too long); nothing was written" in result.errors[0]
    assert not list(tmp_path.glob("p*"))


@only_sqlite
def test_overwrite_replaces_and_delete_removes_the_qc_rows(site, run_cli, upload_files,
                                                           qc_acquisition, tmp_path):
    _upload(run_cli, upload_files, DATASET_ID, qc_acquisition)
    clean = tmp_path / "clean"
    clean.mkdir()
    write_mm_ometiff(clean, "clean", channels=("DAPI",), slices=2, times=1, positions=1,
                     height=20, width=24, seed=4)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(clean)}])
    assert run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config(),
                   "--overwrite").exit_code == 0
    engine = dbq.create_engine(__import__("imagingdb.config", fromlist=["x"])
                               .find_site_config().database)
    with engine.connect() as conn:
        assert conn.execute(sa.select(dbq.qc_summary.c.frames)).scalars().all() == [2]
        assert len(conn.execute(sa.select(dbq.thumbnail.c.id)).all()) == 1
    assert run_cli("delete", DATASET_ID, "--yes").exit_code == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dbq.qc_summary)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(dbq.thumbnail)).scalar() == 0
    engine.dispose()


def test_the_qc_off_config_key_must_be_true_or_false(tmp_path):
    from imagingdb.config import load_upload_config
    from imagingdb.errors import InputError

    good = tmp_path / "good.yaml"
    good.write_text("upload_type: frames\nqc: false\n", encoding="utf-8")
    assert load_upload_config(good).qc is False
    bad = tmp_path / "bad.yaml"
    bad.write_text("upload_type: frames\nqc: sometimes\n", encoding="utf-8")
    with pytest.raises(InputError, match="key 'qc' must be true or false"):
        load_upload_config(bad)


SCHEMA_V5 = __import__("pathlib").Path(__file__).parent / "data" / "schema_v5.sql"


def test_a_version_5_database_gets_the_qc_columns_and_tables(site, run_cli, upload_files,
                                                             qc_acquisition, monkeypatch):
    from imagingdb.config import find_site_config
    from imagingdb.db import migrate, tables

    engine = dbq.create_engine(find_site_config().database)
    with monkeypatch.context() as patch:
        patch.setattr(tables, "schema_sql", SCHEMA_V5.read_text)
        statements = dbq.schema_statements(engine.dialect.name)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    with engine.connect() as conn:
        assert dbq.detect_version(conn) == 5
        assert "qc_min" not in {c["name"] for c in sa.inspect(conn).get_columns("frames")}
    result = run_cli("db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert "6: quality control at ingest" in result.stderr
    assert "7: indexes on storage_dir" in result.stderr
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert set(FRAMES_QC_COLUMNS) <= {c["name"] for c in inspector.get_columns("frames")}
        assert inspector.has_table("qc_summary") and inspector.has_table("thumbnail")
        assert dbq.detect_version(conn) == dbq.SCHEMA_VERSION == 7
        assert migrate.status(engine).missing == []  # the same as a fresh database
    engine.dispose()
    again = run_cli("db", "upgrade")
    assert again.exit_code == 0 and "up to date (version 7)" in again.stderr
    _upload(run_cli, upload_files, DATASET_ID, qc_acquisition)
    with site.connect() as db:
        assert db.dataset(DATASET_ID).qc["saturated_frames"] == 3


def test_an_adopted_original_database_has_no_qc_and_takes_new_uploads_with_it(
        site, run_cli, upload_files, qc_acquisition):
    from imagingdb.config import find_site_config
    from tests.original_imagingdb import OriginalImagingDB

    engine = dbq.create_engine(find_site_config().database)
    old = "ML-2018-04-05-00-00-00-0001"
    OriginalImagingDB(engine, site.storage_root).add_frames(old, seed=1)
    assert run_cli("db", "upgrade").exit_code == 0
    with engine.connect() as conn:
        assert set(FRAMES_QC_COLUMNS) <= {c["name"] for c in
                                              sa.inspect(conn).get_columns("frames")}
    engine.dispose()
    assert "none (uploaded before QC, by the original imagingDB" in run_cli("show", old).stdout
    _upload(run_cli, upload_files, DATASET_ID, qc_acquisition)
    result = run_cli("query", "--where", "qc.frames>0", "--format", "json")
    assert [d["dataset_id"] for d in result.json()] == [DATASET_ID]
    assert len(run_cli("query", "--format", "json").json()) == 2


@pytest.mark.parametrize("shape, span, dtype", [
    ((400, 500), 65535, np.uint16), ((100, 120), 10000, np.uint16), ((400, 500), 900, np.uint16),
    ((7, 9, 3), 255, np.uint8), ((50, 60), 900, np.int16), ((50, 60), 200, np.int8)])
def test_focus_is_exact_on_every_summing_path(shape, span, dtype):
    # 400 x 500 of full 16-bit range: count * (4 * span)**2 > 2**53, all in int64; a span of
    # 10000 (4 * span >= 2**15): float32 and float64; 900: uint16 wrapping, read as int16;
    # uint8 RGB likewise, its colours pooled
    from imagingdb.qc import focus, frame_qc

    # signed pixels (ome-zarr keeps them) are centred on 0
    low = -(span // 2) if np.dtype(dtype).kind == "i" else 0
    pixels = np.random.default_rng(span).integers(low, low + span + 1, shape).astype(dtype)
    pixels.flat[0], pixels.flat[1] = low, low + span
    lap = _laplacian(pixels)
    exact = Fraction(int((lap * lap).sum()), lap.size) - Fraction(int(lap.sum()), lap.size) ** 2
    assert focus(pixels) == float(exact) == frame_qc(pixels, None)["qc_focus"]
    assert focus(pixels) == pytest.approx(float(np.var(lap.astype(np.float64))), rel=1e-12)
    assert focus(pixels[:2]) is None


@only_sqlite
def test_rgb_frames_are_measured_over_every_sample_and_previewed_in_colour(
        site, run_cli, upload_files, tmp_path):
    import tifffile

    from imagingdb.testing import write_mm_tif_folder

    folder = tmp_path / "rgb"
    files = write_mm_tif_folder(folder, channels=("BF",), slices=2, times=2, height=16, width=12,
                                rgb=True, seed=4)
    _upload(run_cli, upload_files, DATASET_ID, folder, frames_format="tif_folder")
    expected = {}
    for path in files:
        _, t, _, z = path.stem.split("_")
        expected[(0, int(z), int(t), 0)] = tifffile.imread(path)
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        rows, summary = ds.frames(with_metadata=False), ds.qc
        (thumb,) = ds.thumbnails()
    assert all(a.shape == (16, 12, 3) for a in expected.values())
    _check_frames_exact(rows, expected, 255)
    assert summary["saturation_level"] == 255
    projection = np.max(list(expected.values()), axis=0)
    np.testing.assert_array_equal(_read_png(thumb["png"]), _expected_rgb(projection))
    out = tmp_path / "rgb.png"
    assert run_cli("preview", DATASET_ID, "--out", out).exit_code == 0
    np.testing.assert_array_equal(_read_png(out), _expected_rgb(projection))


def _expected_rgb(projection):
    low, high = np.percentile(projection, [0.5, 99.5])
    shown = np.clip(np.rint((projection.astype(np.float64) - low) * (255.0 / (high - low))), 0, 255)
    return shown.astype(np.uint8)


def _reject_constant(name):
    raise AssertionError(f"{name} in JSON output")


@only_sqlite
def test_float_frames_are_measured_over_their_finite_values(site, run_cli, upload_files,
                                                            tmp_path):
    # a deconvolved stack as Fiji saves it: NaN where there is no value, an Inf, one
    # channel's second slice all NaN
    rng = np.random.default_rng(4)
    pixels = (rng.random((2, 2, 30, 40)) * 100).astype(np.float32)  # Z C Y X
    pixels[0, 0, 3, 4] = np.nan
    pixels[0, 1, 5, 6] = np.inf
    pixels[1, 1] = np.nan
    path = tmp_path / "deconvolved.tif"
    tifffile.imwrite(path, pixels, imagej=True, metadata={"axes": "ZCYX"})
    _upload(run_cli, upload_files, DATASET_ID, path, frames_format="auto",
            frame_format="ome-zarr")
    with site.connect() as db:
        ds = db.dataset(DATASET_ID)
        rows = {(r["channel_idx"], r["slice_idx"]): r for r in ds.frames(with_metadata=False)}
        thumbnails = {t["channel"]: t for t in ds.thumbnails()}
    for (channel, slice), row in rows.items():
        frame = pixels[slice, channel].astype(np.float64)
        if np.isnan(frame).all():
            assert [row[c] for c in FRAMES_QC_COLUMNS] == [None] * len(FRAMES_QC_COLUMNS)
            continue
        finite = frame[np.isfinite(frame)]
        assert row["qc_min"] == finite.min() and row["qc_max"] == finite.max()
        assert row["qc_mean"] == pytest.approx(finite.mean(), rel=1e-12)
        assert row["qc_saturated"] is None
        lap = (4 * frame[1:-1, 1:-1] - frame[:-2, 1:-1] - frame[2:, 1:-1] - frame[1:-1, :-2]
               - frame[1:-1, 2:])
        left_out = np.count_nonzero(~np.isfinite(lap))
        assert left_out == (5 if not np.isfinite(frame).all() else 0)
        assert row["qc_focus"] == pytest.approx(lap[np.isfinite(lap)].var(), rel=1e-12)
    shown = run_cli("show", DATASET_ID, "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    summary = json.loads(shown.stdout, parse_constant=_reject_constant)["qc"]
    assert summary["blank_frames"] == 1 and summary["frames"] == 4
    assert summary["focus_min"] == min(r["qc_focus"] for r in rows.values() if r["qc_focus"])
    # channel 1's projection: slice 0 (one Inf, shown at the top) over an all-NaN slice
    projection = np.fmax(pixels[0, 1], pixels[1, 1]).astype(np.float64)
    low, high = np.percentile(projection[np.isfinite(projection)], [0.5, 99.5])
    expected = np.clip(np.rint((np.where(np.isinf(projection), high, projection) - low)
                               * (255.0 / (high - low))), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(_read_png(thumbnails[1]["png"]), expected)
    assert _read_png(thumbnails[1]["png"])[5, 6] == 255
    preview = run_cli("preview", DATASET_ID, "--out", tmp_path / "preview.png")
    assert preview.exit_code == 0, preview.stderr


# ------------------------------------------------------------------ the C kernel

KERNEL_DTYPES = (np.uint8, np.int8, np.uint16, np.int16)


def _numpy_figures(pixels, level, factor):
    """Every figure the kernel returns, written out anew in int64 numpy."""
    p = pixels.astype(np.int64)
    height, width = p.shape
    small = np.full((-(-height // factor), -(-width // factor)), np.iinfo(np.int64).min)
    for y in range(small.shape[0]):
        for x in range(small.shape[1]):
            small[y, x] = p[y * factor:(y + 1) * factor, x * factor:(x + 1) * factor].max()
    lap = _laplacian(pixels) if height >= 3 and width >= 3 else None
    return ((int(p.min()), int(p.max()), int(p.sum()),
             0 if level < 0 else int(np.count_nonzero(p >= level)),
             None if lap is None else int(lap.sum()),
             None if lap is None else int((lap * lap).sum())), small)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="no C compiler: the install leaves the optional kernel out")
def test_the_kernel_is_built_where_a_compiler_is():
    from imagingdb import qc

    assert qc._kernel is not None, "imagingdb/_qc.c did not build: see pip install -e . -v"


@st.composite
def kernel_frames(draw):
    """Frames of values over the dtype's range, or within a span that keeps each Laplacian
    value below 2**15 (the kernel's 16-bit lanes), some with one pixel at an extreme."""
    dtype = draw(st.sampled_from(KERNEL_DTYPES))
    info = np.iinfo(dtype)
    low = draw(st.integers(int(info.min), int(info.max)))
    high = draw(st.sampled_from([int(info.max), min(int(info.max), low + 8191),
                                 min(int(info.max), low + 50)]))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40))
    pixels = draw(hnp.arrays(dtype, shape, elements=st.integers(low, high)))
    if draw(st.booleans()):
        pixels.flat[draw(st.integers(0, pixels.size - 1))] = draw(
            st.sampled_from([int(info.min), int(info.max), 0]))
    return pixels


@settings(max_examples=300, deadline=None)
@given(pixels=kernel_frames(), cut=st.integers(0, 3), factor=st.integers(1, 9),
       level=st.sampled_from(["none", "max", "low"]))
def test_the_kernel_is_exact_against_numpy_and_agrees_with_the_fallback(pixels, cut, factor,
                                                                        level):
    from imagingdb import qc

    if qc._kernel is None:
        pytest.skip("the optional kernel is not built here")
    view = pixels[cut // 2:, cut % 2:] if min(pixels.shape) > 1 else pixels  # rows strided
    if view.size == 0:
        view = pixels
    info = np.iinfo(view.dtype)
    threshold = {"none": -1, "max": int(info.max), "low": max(0, int(view.max()))}[level]
    small = np.empty((-(-view.shape[0] // factor), -(-view.shape[1] // factor)), view.dtype)
    figures = qc._kernel.frame_stats(view, threshold, factor, small)
    expected, expected_small = _numpy_figures(view, threshold, factor)
    assert figures == expected
    assert np.array_equal(small, expected_small)
    # measure() gives the same row values and thumbnail with the kernel and with numpy
    level_arg = None if threshold < 0 else threshold
    with_kernel = qc.measure(view, level_arg, factor)
    kernel, qc._kernel = qc._kernel, None
    try:
        with_numpy = qc.measure(view, level_arg, factor)
    finally:
        qc._kernel = kernel
    assert with_kernel[0] == with_numpy[0]
    assert with_kernel[1].dtype == with_numpy[1].dtype
    assert np.array_equal(with_kernel[1], with_numpy[1])


def test_frames_the_kernel_does_not_take_are_measured_by_numpy_alike():
    # RGB samples, big-endian words, strided columns, 32-bit and float pixels: numpy's path
    from imagingdb import qc

    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, (9, 11, 3), dtype=np.uint8),
              rng.integers(0, 4096, (12, 13)).astype(">u2"),
              rng.integers(0, 4096, (12, 26), dtype=np.uint16)[:, ::2],
              rng.integers(0, 2 ** 20, (12, 13), dtype=np.uint32),
              rng.random((12, 13), dtype=np.float32)]
    for pixels in frames:
        assert not qc._kernel_takes(pixels)
        values, small = qc.measure(pixels, None, 4)
        assert values["qc_min"] == float(pixels.min()) and values["qc_max"] == float(pixels.max())
        assert np.array_equal(small, qc.pooled(pixels, 4))


@pytest.mark.parametrize("pixels, small, message", [
    (np.zeros((4, 4), np.float32), None, "8- or 16-bit integers"),
    (np.zeros((4, 4, 3), np.uint8), None, "2-D"),
    (np.zeros((4, 8), np.uint16)[:, ::2], None, "contiguous"),
    (np.zeros((0, 4), np.uint16), None, "non-empty"),
    (np.zeros((4, 4), np.uint16), np.zeros((1, 1), np.uint16), "ceil(H/factor)"),
    (np.zeros((4, 4), np.uint16), np.zeros((2, 2), np.uint8), "frame's type"),
    (np.frombuffer(bytes(33), "<u2", offset=1).reshape(4, 4), None, "aligned"),
])
def test_the_kernel_refuses_what_it_cannot_measure(pixels, small, message):
    from imagingdb import qc

    if qc._kernel is None:
        pytest.skip("the optional kernel is not built here")
    with pytest.raises(ValueError, match=re.escape(message)):
        qc._kernel.frame_stats(pixels, -1, 2, small)


def test_the_kernel_refuses_a_negative_level_and_a_factor_that_overflows():
    from imagingdb import qc

    if qc._kernel is None:
        pytest.skip("the optional kernel is not built here")
    pixels = np.zeros((4, 4), np.int16)
    with pytest.raises(ValueError, match="level"):
        qc._kernel.frame_stats(pixels, -5, 1, None)
    with pytest.raises(ValueError, match=re.escape("ceil(H/factor)")):
        qc._kernel.frame_stats(pixels, -1, sys.maxsize, np.empty((0, 0), np.int16))
    # measure() sends what the kernel refuses to numpy: the same figures either way
    signed = np.arange(-8, 8, dtype=np.int16).reshape(4, 4)
    assert qc.measure(signed, -3, 2)[0]["qc_saturated"] == 11 / 16


@pytest.mark.parametrize("view", ["reversed rows", "one row repeated", "wide"])
def test_the_kernel_reads_any_row_stride_and_wide_rows(view):
    from imagingdb import qc

    if qc._kernel is None:
        pytest.skip("the optional kernel is not built here")
    rng = np.random.default_rng(3)
    if view == "reversed rows":
        pixels = rng.integers(0, 60000, (37, 301), dtype=np.uint16)[::-1]
    elif view == "one row repeated":
        pixels = np.broadcast_to(rng.integers(0, 900, 257, dtype=np.uint16), (9, 257))
    else:  # rows of both kinds: narrow (16-bit lanes) and full-range (32-bit)
        pixels = rng.integers(100, 4000, (20, 1500), dtype=np.uint16)
        pixels[7:10] = rng.integers(0, 65535, (3, 1500), dtype=np.uint16)
    small = np.empty((-(-pixels.shape[0] // 4), -(-pixels.shape[1] // 4)), pixels.dtype)
    assert qc._kernel.frame_stats(pixels, 65535, 4, small) == _numpy_figures(pixels, 65535, 4)[0]
    assert np.array_equal(small, _numpy_figures(pixels, 65535, 4)[1])
