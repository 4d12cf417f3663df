"""Every dataset in ../shared/realdata, one row each: uploaded with frames_format left out, it is
stored with the dimensions, channel names and metadata its own writer recorded, and every
pixel equals what the field's own readers (tifffile, ndtiff) read from the file.

The references below read the files independently of imagingdb: Micro-Manager pages by
their own MicroManagerMetadata, ImageJ/OME files by tifffile's series, NDTiff by ndtiff.
A file added to ../shared/realdata that no row covers fails test_every_real_file_is_covered.
Skipped when the folder is absent (tests/realdata.py); the format tests reproduce each
structure with the sample writers.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import tifffile

from tests.conftest import DATASET_ID
from tests.realdata import REALDATA, real

Index = tuple[int, int, int, int]  # (channel, slice, time, position)
Frames = dict[Index, np.ndarray]


# ------------------------------------------------------------ independent readers


def micromanager_pages(folder: Path) -> Frames:
    """Each page of each OME-TIFF, placed by its own MicroManagerMetadata; positions in the
    order of the summary's InitialPositionList labels."""
    frames: Frames = {}
    for path in sorted(folder.glob("*.ome.tif")):
        with tifffile.TiffFile(path) as tif:
            labels = [p["Label"] for p in tif.micromanager_metadata["Summary"]["InitialPositionList"]]
            for page in tif.pages:
                tags = page.tags[51123].value
                index = (tags["ChannelIndex"], tags["SliceIndex"], tags["FrameIndex"],
                         labels.index(tags["PositionName"]))
                frames[index] = page.asarray()
    return frames


def tifffile_series(path: Path) -> Frames:
    """The file's first series as tifffile shapes it (ImageJ, OME), by its axis letters."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes, data = series.axes, series.asarray()
    assert axes.endswith("YX") and set(axes[:-2]) <= set("CZT"), axes
    frames: Frames = {}
    for number in np.ndindex(*data.shape[:-2]):
        at = dict(zip(axes[:-2], number))
        frames[(at.get("C", 0), at.get("Z", 0), at.get("T", 0), 0)] = data[number]
    return frames


def numbered_files(folder: Path) -> Frames:
    """Fiji's image sequence: one file per z, the z in its name."""
    return {(0, int(re.search(r"(\d+)\.tif$", path.name)[1]), 0, 0): tifffile.imread(path)
            for path in folder.glob("*.tif")}


def one_file(relative: str) -> Callable[[Path], Frames]:
    return lambda folder: {(0, 0, 0, 0): tifffile.imread(folder / relative)}


def ndtiff_images(place: Callable[[dict[str, Any]], Index]) -> Callable[[Path], Frames]:
    """Every image ndtiff's reader lists at full resolution, placed by ``place(axes)``."""
    def read(folder: Path) -> Frames:
        ndtiff = pytest.importorskip("ndtiff")
        with contextlib.redirect_stdout(io.StringIO()):  # ndtiff prints its progress
            dataset = ndtiff.Dataset(str(folder))
        index = dataset.index if hasattr(dataset, "index") else dataset.res_levels[0].index
        frames = {}
        for key in index:
            axes = dict(key)
            frames[place(axes)] = np.asarray(dataset.read_image(**axes))
        return frames
    return read


# --------------------------------------------------------------------- metadata kept


def mm_14_kept(meta: dict, frames: list[dict], root: Path) -> None:
    """The summary, the whole OME-XML and each page's Micro-Manager keys are kept."""
    with tifffile.TiffFile(root / "1.4compatTest_3_MMStack_1-Pos_000_000.ome.tif") as tif:
        assert meta["ome_xml"] == tif.pages[0].description  # the whole OME-XML, 4 Images
        summary = tif.micromanager_metadata["Summary"]
    assert {key: meta[key] for key in ("ChNames", "InitialPositionList", "Interval_ms")} == {
        key: summary[key] for key in ("ChNames", "InitialPositionList", "Interval_ms")}
    assert all(f["metadata_json"]["Exposure-ms"] is not None for f in frames)


def mm_20_alpha_kept(meta: dict, frames: list[dict], root: Path) -> None:
    """The (cut) metadata.txt's Summary is kept."""
    assert meta["ChNames"] == ["Alpha", "Beta", "Romeo"] and meta["Prefix"] == "thisIsAPrefix"
    assert meta["UserData"]["I'm a number"] == {"PropVal": 42, "PropType": "Integer"}


def imagej_kept(meta: dict, frames: list[dict], path: Path) -> None:
    """ImageJ's Info and slice Labels (IJMetadata) and its calibration (the header) are kept."""
    with tifffile.TiffFile(path) as tif:
        expected = tif.imagej_metadata
    kept = meta["imagej_metadata"]
    if "Info" in expected:
        assert kept["Info"] == expected["Info"]
    if "Labels" in expected:
        assert kept["Labels"] == list(expected["Labels"])
    header = meta["image_description"]
    for key in ("spacing", "unit", "finterval"):
        if isinstance(expected.get(key), float):
            assert header[key] == pytest.approx(expected[key])
        elif isinstance(expected.get(key), str):  # ImageJ escapes non-ASCII units (\u00B5m)
            assert header[key] == expected[key].encode().decode("unicode_escape")


def ome_xml_kept(meta: dict, frames: list[dict], path: Path) -> None:
    with tifffile.TiffFile(path) as tif:
        assert meta["ome_xml"] == tif.pages[0].description


def sequence_kept(meta: dict, frames: list[dict], root: Path) -> None:
    assert meta["sequence_first_number"] == 0
    assert meta["file_name_pattern"] == "c_elegans_em_z<number>.tif"


def ndtiff_summary_kept(meta: dict, frames: list[dict], root: Path) -> None:
    ndtiff = pytest.importorskip("ndtiff")
    with contextlib.redirect_stdout(io.StringIO()):
        summary = ndtiff.Dataset(str(root)).summary_metadata
    assert json.loads(json.dumps(summary)).items() <= meta.items()


# ---------------------------------------------------------------------------- table


@dataclass(frozen=True)
class RealDataset:
    path: str  # under REALDATA: the file or folder a lab would name in its CSV
    format: str  # the splitter frames_format auto must choose
    sizes: tuple  # channels, slices, times, positions, height, width, pixel type
    channel_names: dict[int, str]  # of the channels that have frames
    reference: Callable[[Path], Frames]
    kept: Callable[[dict, list, Path], None]
    warnings: int = 0  # Warning: lines the upload prints
    missing: int = 0  # frames the acquisition declares but never recorded
    extra: dict = field(default_factory=dict)  # global metadata imagingdb adds


POSITIONS_BY_LABEL = ["Pos0", "Pos1", "Pos2"]
TILES = [(0, 0), (1, 1)]  # of a 2x2 grid, row-major
BIOFORMATS = "bioformats-samples/2010-04_18x24y5z5t2c8b-text.ome-v2010-06.ome.tiff"

DATASETS = [
    RealDataset("micro-manager/VersionCompatTest", "ome_tiff", (2, 2, 2, 4, 64, 64, "uint16"),
                {0: "Cy5", 1: "DAPI"}, micromanager_pages, mm_14_kept,
                extra={"position_labels": {"0": "1-Pos_000_000", "1": "1-Pos_001_000",
                                           "2": "1-Pos_001_001", "3": "1-Pos_000_001"}}),
    RealDataset("micro-manager/alpha_2.0_singleplane_manual", "tif_folder",
                (3, 1, 1, 1, 16, 16, "uint16"), {0: "Alpha"},
                one_file("Pos0/img_channel000_position000_time000000000_z000.tif"),
                mm_20_alpha_kept, warnings=3, missing=2),  # the 3rd: 1 of 3 frames
    RealDataset("NEUBIAS/xyzc_16bit__spots.tif", "tif_id", (2, 17, 1, 1, 88, 89, "uint16"),
                {0: "channel0", 1: "channel1"}, tifffile_series, imagej_kept),
    RealDataset("NEUBIAS/xyz_8bit__nucleus.tif", "tif_id", (1, 7, 1, 1, 207, 207, "uint8"),
                {0: "channel0"}, tifffile_series, imagej_kept),
    RealDataset("NEUBIAS/xyt_8bit_polyp.tif", "tif_id", (1, 1, 3, 1, 313, 313, "uint8"),
                {0: "channel0"}, tifffile_series, imagej_kept),
    RealDataset("NEUBIAS/xyz_8bit__em_volume_tiff_series", "image_sequence",
                (1, 21, 1, 1, 256, 256, "uint8"), {0: "channel0"}, numbered_files, sequence_kept),
    RealDataset(BIOFORMATS, "ome_tiff", (2, 5, 5, 1, 24, 18, "uint8"),
                {0: "channel0", 1: "channel1"}, tifffile_series, ome_xml_kept),
    RealDataset("NDStorage/v2/ndtiffv2.0_test", "ndtiff", (2, 1, 5, 1, 32, 32, "uint16"),
                {0: "DAPI", 1: "FITC"},
                ndtiff_images(lambda axes: (axes["channel"], 0, axes["time"], 0)),
                ndtiff_summary_kept),
    RealDataset("NDStorage/v3/labeled_positions_1", "ndtiff", (1, 1, 1, 3, 512, 512, "uint16"),
                {0: "DAPI"},
                ndtiff_images(lambda axes: (0, 0, 0, POSITIONS_BY_LABEL.index(axes["position"]))),
                ndtiff_summary_kept, extra={"position_names": POSITIONS_BY_LABEL}),
    RealDataset("NDStorage/v3/ndtiffv3.0_stitched_test", "ndtiff",
                (1, 1, 1, 2, 32, 32, "uint16"), {0: "channel0"},
                ndtiff_images(lambda axes: (0, 0, 0, TILES.index((axes["row"], axes["column"])))),
                ndtiff_summary_kept,
                extra={"tiles": [{"position": 0, "row": 0, "column": 0},
                                 {"position": 1, "row": 1, "column": 1}]}),
    RealDataset("NDStorage/v3/ndtiff3.2_multichannel", "ndtiff", (2, 16, 8, 1, 64, 64, "uint16"),
                {0: "DAPI", 1: "FITC"},
                ndtiff_images(lambda axes: (["DAPI", "FITC"].index(axes["channel"]), axes["z"],
                                            axes["time"], 0)),
                ndtiff_summary_kept),
]


def _stored() -> tuple:
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # missing frames are checked below, not warned
            array = ds.read()
        d = ds.dims
        sizes = (d.nbr_channels, d.nbr_slices, d.nbr_timepoints, d.nbr_positions, d.im_height,
                 d.im_width, d.bit_depth)
        return sizes, ds.channel_names(), ds.global_meta, array, ds.frames(), ds.missing_frames()


@pytest.mark.parametrize("dataset", DATASETS, ids=[Path(d.path).name for d in DATASETS])
def test_real_dataset_is_stored_as_its_writer_recorded_it(run_cli, upload_files, dataset):
    source = real(dataset.path)
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.config(upload_type="frames"))
    assert result.exit_code == 0, result.stderr
    assert f"frames_format auto chose {dataset.format}" in result.stderr
    assert result.stderr.count("Warning:") == dataset.warnings, result.stderr
    sizes, names, meta, array, frames, missing = _stored()
    assert sizes == dataset.sizes
    assert names == dataset.channel_names
    assert len(missing) == dataset.missing
    reference = dataset.reference(source)
    assert len(frames) == len(reference) > 0
    positions = sorted({c_z_t_p[3] for c_z_t_p in reference})  # read() keeps the positions present
    for (c, z, t, p), pixels in reference.items():
        np.testing.assert_array_equal(array[positions.index(p), t, c, z], pixels,
                                      err_msg=f"frame (c={c}, z={z}, t={t}, p={p})")
    assert dataset.extra.items() <= meta.items()
    dataset.kept(meta, frames, source)


def test_every_real_file_is_covered():
    """A file added to ../shared/realdata gets a row here, so that nothing real goes untested."""
    if not REALDATA.is_dir():
        pytest.skip(f"{REALDATA} is not here")
    covered = [Path(d.path) for d in DATASETS]
    uncovered = [path for path in REALDATA.rglob("*") if path.is_file() and path.name != "README.md"
                 and not any(path.relative_to(REALDATA).is_relative_to(c) for c in covered)]
    assert uncovered == []
