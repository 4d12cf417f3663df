"""png_filter, png_strategy and png_level: upload config keys that choose how frames are encoded."""

import inspect
import zlib

import imagecodecs
import numpy as np
import pytest

from imagingdb import config as config_module
from imagingdb.codecs import png as frames
from tests.conftest import DATASET_ID
from tests.helpers import assert_refused, read_png_with_pypng, source_frames


def filter_types(png_bytes: bytes, height: int) -> set[int]:
    """The filter type byte of every row of a PNG written by imagingdb (one IDAT)."""
    start = png_bytes.index(b"IDAT") + 4
    length = int.from_bytes(png_bytes[start - 8:start - 4], "big")
    scanlines = zlib.decompress(png_bytes[start:start + length])
    row_bytes = len(scanlines) // height
    return set(scanlines[::row_bytes])


@pytest.mark.parametrize("settings, filter_type", [
    ({}, 2),
    ({"png_filter": "sub", "png_strategy": "huffman"}, 1),
    ({"png_filter": "none", "png_strategy": "default", "png_level": 6}, 0),
    ({"png_filter": "up", "png_strategy": "filtered", "png_level": 9}, 2),
    ({"png_level": 0}, 2),
])
def test_frames_are_standard_pngs_read_back_exactly(site, run_cli, upload_files, mm_ometiff,
                                                     settings, filter_type):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config",
                     upload_files.frames_config(**settings))
    assert result.exit_code == 0, result.stderr
    expected = source_frames(mm_ometiff)
    folder = site.storage_root / "raw_frames" / DATASET_ID
    for (c, z, t, p), pixels in expected.items():
        path = folder / f"im_c{c:03d}_z{z:03d}_t{t:03d}_p{p:03d}.png"
        data = path.read_bytes()
        assert filter_types(data, pixels.shape[0]) == {filter_type}
        np.testing.assert_array_equal(read_png_with_pypng(path), pixels)
        np.testing.assert_array_equal(imagecodecs.png_decode(data), pixels)
    with site.connect() as database:
        array = database.dataset(DATASET_ID).read()
    for (c, z, t, p), pixels in expected.items():
        np.testing.assert_array_equal(array[p, t, c, z], pixels)


@pytest.mark.parametrize("line, message", [
    ("png_filter: paeth", "key 'png_filter' must be one of none, sub, up, got 'paeth'"),
    ("png_strategy: fast", "key 'png_strategy' must be one of auto, isal, default, filtered, huffman, rle"),
    ("png_level: 10", "key 'png_level' must be 0..9"),
    ("png_level: '1'", "key 'png_level' must be an integer"),
    ("png_filtre: up", "unknown key 'png_filtre' (did you mean 'png_filter'?)"),
])
def test_bad_codec_settings_are_refused_before_any_work(site, run_cli, upload_files, mm_ometiff,
                                                        line, message):
    before = site.snapshot()
    config = upload_files.folder / "bad.yaml"
    config.write_text(f"upload_type: frames\nframes_format: ome_tiff\n{line}\n")
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config", config)
    assert_refused(result, site, before, contains=(str(config), message))


def test_config_choices_are_the_codecs():
    assert set(config_module.PNG_FILTERS) == set(frames._WRITE_FILTERS)
    assert set(config_module.PNG_STRATEGIES) == set(frames._STRATEGIES)


def test_config_defaults_are_the_codecs_defaults():
    defaults = inspect.signature(frames.encode_png).parameters
    options = config_module.UploadConfig(upload_type="frames").png_options()
    assert options == {name: defaults[name].default for name in options}
