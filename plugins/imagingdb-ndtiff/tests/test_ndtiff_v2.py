"""NDTiff 2.0 datasets (everything under ``Full resolution/``), uploaded from any part of them."""

import pytest
from ndtiff.old_format_version_readers.nd_tiff_v2 import NDTiff_v2_0
from ndtiff2_sample import write_ndtiff_v2, write_v2_acquisition
from ndtiff_checks import (
    DATASET_ID,
    assert_stored_as,
    close,
    real_dataset,
    reference,
    reference_axes,
    reference_read,
    snapshot,
    upload,
)

import imagingdb


def test_v2_writer_reproduces_a_real_ndtiff2_dataset(tmp_path):
    """What ndtiff reads in a real NDTiff 2.0 dataset, rewritten by the tests' writer, is that
    dataset byte for byte: the writer is the format, not a format only this plugin reads."""
    real = real_dataset("NDStorage/v2/ndtiffv2.0_test")
    ref = reference(real)
    images = [(axes, reference_read(ref, "image", axes), reference_read(ref, "metadata", axes))
              for axes in reference_axes(ref)]
    root = write_ndtiff_v2(tmp_path, "ndtiffv2.0_test", ref.summary_metadata, images)
    close(ref)
    for name in ("NDTiff.index", "ndtiffv2.0_test_NDTiffStack.tif"):
        assert (root / "Full resolution" / name).read_bytes() == \
            (real / "Full resolution" / name).read_bytes(), name


@pytest.mark.parametrize("part", ["", "Full resolution", "Full resolution/NDTiff.index",
                                  "Full resolution/acq_NDTiffStack.tif"])
def test_v2_dataset_uploads_from_any_part(run_cli, upload_files, tmp_path, part):
    root, written = write_v2_acquisition(tmp_path, seed=1)
    ref = reference(root)
    assert isinstance(ref, NDTiff_v2_0)  # ndtiff itself reads it as NDTiff 2
    close(ref)
    result = upload(run_cli, upload_files, root / part, frames_format=None)
    assert result.exit_code == 0, result.stderr
    assert "Micro-Manager NDTiff 2 dataset; frames_format auto chose ndtiff" in result.stderr
    with imagingdb.connect() as db:
        ds = db.dataset(DATASET_ID)
        dims = ds.dims
        assert ds.channel_names() == {0: "DAPI", 1: "FITC"}  # from each image's Channel metadata
        assert ds.global_meta["ndtiff_version"] == "2"
        assert ds.global_meta["file_origin"] == str(root)
    assert (dims.nbr_channels, dims.nbr_slices, dims.nbr_timepoints, dims.nbr_positions) == (2, 2, 3, 1)
    assert (dims.im_height, dims.im_width, dims.bit_depth) == (32, 32, "uint16")
    rows = assert_stored_as(root, lambda axes: (axes["channel"], axes["z"], axes["time"], 0))
    assert {index[:3] for index in rows} == set(written)


@pytest.mark.parametrize("dtype, rgb, colors", [("uint8", False, 1), ("uint8", True, 3)])
def test_v2_8bit_and_rgb_pixels(run_cli, upload_files, tmp_path, dtype, rgb, colors):
    """Pixel types ndtiff's own writer cannot write (it takes 16-bit only)."""
    root, _ = write_v2_acquisition(tmp_path, dtype=dtype, rgb=rgb, slices=1, times=2, seed=2)
    assert upload(run_cli, upload_files, root).exit_code == 0
    with imagingdb.connect() as db:
        dims = db.dataset(DATASET_ID).dims
    assert (dims.bit_depth, dims.im_colors) == (dtype, colors)
    assert_stored_as(root, lambda axes: (axes["channel"], axes["z"], axes["time"], 0))


def test_v2_dataset_in_several_stack_files(run_cli, upload_files, tmp_path):
    # Java starts a new file 5 MB before its limit: this limit holds about three images a file
    root, _ = write_v2_acquisition(tmp_path, size=64, max_file_bytes=5_030_000, seed=3)
    assert len(list((root / "Full resolution").glob("acq_NDTiffStack*.tif"))) > 2
    assert upload(run_cli, upload_files, root).exit_code == 0
    assert_stored_as(root, lambda axes: (axes["channel"], axes["z"], axes["time"], 0))


def test_damaged_v2_index_is_refused_and_changes_nothing(run_cli, upload_files, tmp_path):
    root, _ = write_v2_acquisition(tmp_path, seed=4)
    index = root / "Full resolution" / "NDTiff.index"
    index.write_bytes(index.read_bytes()[:50])
    run_cli("init")
    before = snapshot()
    result = upload(run_cli, upload_files, root)
    assert result.exit_code == 2
    assert len(result.errors) == 1
    assert f"{root / 'Full resolution'}: the NDTiff dataset cannot be read (" in result.errors[0]
    assert snapshot() == before
