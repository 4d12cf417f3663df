"""meta_schema: per-frame metadata checked before anything is written."""

import json

import numpy as np
import pytest
import tifffile

from tests.conftest import DATASET_ID
from tests.helpers import assert_refused


@pytest.fixture
def ometiff_without_channel_names(tmp_path):
    """Micro-Manager-like pages whose MicroManagerMetadata lacks the Channel key."""
    path = tmp_path / "nameless_MMStack_Pos0.ome.tif"
    with tifffile.TiffWriter(path) as writer:
        for z in range(2):
            tag = json.dumps({"ChannelIndex": 0, "SliceIndex": z, "FrameIndex": 0,
                              "PositionIndex": 0})
            writer.write(np.full((8, 8), z, np.uint16), contiguous=False, metadata=None,
                         extratags=[(51123, "s", 0, tag, True)])
    return path


def test_ome_tiff_checks_micromanager_keys_by_default(site, run_cli, upload_files,
                                                      ometiff_without_channel_names):
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID,
                                  "file_name": str(ometiff_without_channel_names)}])
    result = run_cli("upload", "--csv", csv_path, "--config", upload_files.frames_config())
    assert_refused(result, site, before, contains=(
        "nameless_MMStack_Pos0.ome.tif page 0", "frame (c=0, z=0, t=0, p=0)", "key 'Channel'"))


def test_config_meta_schema_replaces_the_default(run_cli, upload_files,
                                                 ometiff_without_channel_names):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID,
                                  "file_name": str(ometiff_without_channel_names)}])
    config = upload_files.frames_config(meta_schema={"type": "object",
                                                     "required": ["ChannelIndex"]})
    result = run_cli("upload", "--csv", csv_path, "--config", config)
    assert result.exit_code == 0, result.stderr


def test_a_wrong_type_names_the_nested_key(site, run_cli, upload_files, mm_ometiff):
    before = site.snapshot()
    schema = {"type": "object", "properties": {"Exposure-ms": {"type": "string"}}}
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config",
                     upload_files.frames_config(meta_schema=schema))
    assert_refused(result, site, before, contains=(
        "sample_MMStack_Pos0.ome.tif page 0", "key 'Exposure-ms'", "is not of type 'string'"))


def test_an_invalid_schema_is_refused_before_work(site, run_cli, upload_files, mm_ometiff):
    before = site.snapshot()
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    result = run_cli("upload", "--csv", csv_path, "--config",
                     upload_files.frames_config(meta_schema={"type": "no-such-type"}))
    assert_refused(result, site, before, contains=("meta_schema is not a valid JSON Schema",))
