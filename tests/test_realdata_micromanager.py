"""The real Micro-Manager files in ``<repo root>/../shared/realdata/micro-manager``.

Skipped when the folder is absent (a fresh clone): the regression tests on the
sample writers (test_mm_structures.py, test_mm_uploads.py) cover the same
structures. Every pixel is compared with what tifffile reads from the file.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import tifffile

from tests.conftest import DATASET_ID
from tests.realdata import REALDATA, real

MICRO_MANAGER = REALDATA / "micro-manager"
VERSION_COMPAT = MICRO_MANAGER / "VersionCompatTest"
ALPHA = MICRO_MANAGER / "alpha_2.0_singleplane_manual"
HCS_LABELS = ["1-Pos_000_000", "1-Pos_001_000", "1-Pos_001_001", "1-Pos_000_001"]


def upload(run_cli, upload_files, source):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(source)}])
    config = upload_files.config(upload_type="frames", microscope="scope1")
    return run_cli("upload", "--csv", csv_path, "--config", config, "--format", "json")


def stored():
    import imagingdb

    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = ds.read()
        dims = ds.dims
        return ((dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints, dims.nbr_positions,
                 dims.im_height, dims.im_width, dims.bit_depth), ds.channel_names(),
                ds.global_meta, array, ds.frames(), ds.missing_frames())


def test_micromanager_14_ometiff(run_cli, upload_files):
    folder = real(VERSION_COMPAT)
    result = upload(run_cli, upload_files, folder)
    assert result.exit_code == 0, result.stderr
    assert "Micro-Manager 1.4 OME-TIFF (4 files); frames_format auto chose ome_tiff" in result.stderr
    assert "Warning:" not in result.stderr
    sizes, names, meta, array, frames, missing = stored()
    assert sizes == (2, 2, 2, 4, 64, 64, "uint16")
    assert names == {0: "Cy5", 1: "DAPI"}
    # positions in the order Micro-Manager listed them, whatever the files' name order
    assert meta["position_labels"] == {str(p): label for p, label in enumerate(HCS_LABELS)}
    assert {f["pos_idx"]: f["metadata_json"]["PositionName"] for f in frames} == dict(
        enumerate(HCS_LABELS))
    assert meta["Comment" if "Comment" in meta else "Prefix"]  # the summary, kept
    assert meta["ome_xml"].endswith("</OME>") and meta["ome_xml"].count("<Image ") == 4
    assert missing == [] and len(frames) == 32
    checked = 0
    for path in sorted(folder.glob("*.ome.tif")):
        with tifffile.TiffFile(path) as tif:
            for page in tif.pages:
                tags = page.tags[51123].value
                position = HCS_LABELS.index(tags["PositionName"])
                np.testing.assert_array_equal(
                    array[position, tags["FrameIndex"], tags["ChannelIndex"], tags["SliceIndex"]],
                    page.asarray())
                checked += 1
    assert checked == 32


def test_micromanager_14_single_position_file(run_cli, upload_files):
    path = real(VERSION_COMPAT / "1.4compatTest_3_MMStack_1-Pos_000_001.ome.tif")
    result = upload(run_cli, upload_files, path)
    assert result.exit_code == 0, result.stderr
    sizes, _, meta, array, frames, _ = stored()
    assert sizes[:4] == (2, 2, 2, 1) and {f["pos_idx"] for f in frames} == {3}
    # its BinaryOnly pointer is followed to the file holding the dataset's OME-XML
    with tifffile.TiffFile(VERSION_COMPAT / "1.4compatTest_3_MMStack_1-Pos_000_000.ome.tif") as tif:
        assert meta["ome_xml"] == tif.pages[0].description
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            tags = page.tags[51123].value
            np.testing.assert_array_equal(
                array[0, tags["FrameIndex"], tags["ChannelIndex"], tags["SliceIndex"]],
                page.asarray())


@pytest.mark.parametrize("source", ["", "Pos0"])
def test_micromanager_20_alpha_image_files(run_cli, upload_files, source):
    """What it declares: ChNames Alpha, Beta, Romeo; no size of a channel, z, time or
    position axis (Channels/Slices/Frames/Positions -1, IntendedDimensions only made-up
    axes, which image files cannot hold); one image at channel 0, z 0, time 0, position 0
    (its Coords entry, its name). So 3 channels, 1 z, 1 time, 1 position, the first
    channel's image present and the two others recorded missing."""
    folder = real(ALPHA) / source
    result = upload(run_cli, upload_files, folder)
    assert result.exit_code == 0, result.stderr
    kind = "1 position folder" if not source else "1 file"
    assert (f"Micro-Manager 2.0 image-file acquisition ({kind}); frames_format auto chose "
            "tif_folder") in result.stderr
    warnings_ = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings_ == [
        f"Warning: {DATASET_ID}: metadata.txt: cut after entry 2 (the acquisition stopped or is "
        "still running); 1 image entries kept, the rest read from the files' names/tags",
        f"Warning: {DATASET_ID}: metadata.txt: IntendedDimensions names axes Micro-Manager's "
        "image files cannot hold (axis 3, axis 5, axis 97); kept in the metadata, not used as "
        "dimensions",
        f"Warning: {DATASET_ID}: 1 of the 3 frames of its dimensions (C3 Z1 T1 P1) are in the "
        "source; 2 missing, read as the fill value (imagingdb show lists them)"]
    sizes, names, meta, array, frames, missing = stored()
    assert sizes == (3, 1, 1, 1, 16, 16, "uint16")
    assert names == {0: "Alpha"}  # the channels with frames; all three are in ChNames
    assert {(m.channel, m.slice, m.time, m.position) for m in missing} == {(1, 0, 0, 0),
                                                                          (2, 0, 0, 0)}
    assert meta["IntendedDimensions"] == {"axis 3": 9, "axis 97": 8, "axis 5": 2}
    # the position folder names it; given alone, only its image's own metadata does
    assert meta.get("position_labels") == (None if source else {"0": "Pos0"})
    (frame,) = frames
    assert frame["metadata_json"]["PositionName"] == "Pos0"
    assert frame["metadata_json"]["UUID"] == "00000000-0000-002a-0000-000000000011"
    image = ALPHA / "Pos0" / "img_channel000_position000_time000000000_z000.tif"
    np.testing.assert_array_equal(array[0, 0, 0, 0], tifffile.imread(image))
    assert json.loads(json.dumps(meta))["ChNames"] == ["Alpha", "Beta", "Romeo"]
