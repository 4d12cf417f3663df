"""quick_schema: valid metadata is accepted without jsonschema, and never wrongly."""

import subprocess
import sys

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagingdb.quick_schema import is_valid
from imagingdb.splitters.ome_tiff import OME_TIFF_META_SCHEMA

VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, 2.0, 1.5, -1.0]),
                   st.text(max_size=3), st.lists(st.integers(0, 2), max_size=2))
KEYS = st.sampled_from(["ChannelIndex", "SliceIndex", "Slice", "FrameIndex", "Frame",
                        "PositionIndex", "Channel", "PositionName", "FileName", "Exposure-ms"])
METADATA = st.dictionaries(KEYS, VALUES, max_size=9)

# Schemas made only of the keywords quick_schema evaluates: there it must agree with
# jsonschema both ways (valid -> True; invalid -> None).
HANDLED = [
    OME_TIFF_META_SCHEMA,
    {"type": "object", "required": ["ChannelIndex"], "properties": {"ChannelIndex": {"maximum": 1}}},
    {"allOf": [{"required": ["Channel"]}, {"properties": {"Channel": {"type": ["string", "null"]}}}]},
    {"properties": {"Frame": {"type": "number", "minimum": 0.5}}},
    {"properties": {"FileName": {"type": "array"}, "Slice": {"type": "boolean"}}},
    {},
]


@pytest.mark.parametrize("schema", HANDLED, ids=range(len(HANDLED)))
@settings(max_examples=300, deadline=None)
@given(metadata=METADATA)
def test_agrees_with_jsonschema_on_the_keywords_it_handles(schema, metadata):
    valid = jsonschema.validators.validator_for(schema)(schema).is_valid(metadata)
    assert is_valid(schema, metadata) is (True if valid else None)


@settings(max_examples=200, deadline=None)
@given(metadata=METADATA, keyword=st.sampled_from([
    {"enum": [1]}, {"pattern": "^x"}, {"additionalProperties": False}, {"not": {}},
    {"type": "no-such-type"}, {"minLength": 1.5}]))
def test_never_accepts_what_it_does_not_evaluate(metadata, keyword):
    schema = {"type": "object", "properties": {"Channel": keyword}}
    assert is_valid(schema, metadata) in (None, True)
    if is_valid(schema, metadata):  # only when the keyword was never reached
        assert "Channel" not in metadata


def test_integer_follows_json_schema():
    schema = {"properties": {"n": {"type": "integer", "minimum": 0}}}
    assert is_valid(schema, {"n": 2.0}) is True  # 2.0 is an integer to JSON Schema
    assert is_valid(schema, {"n": True}) is None  # a boolean is not
    assert is_valid(schema, {"n": -1}) is None
    assert is_valid(schema, {"n": 1.5}) is None


def test_valid_upload_does_not_import_jsonschema(tmp_path, mm_ometiff):
    """The default OME-TIFF schema is checked without importing jsonschema (~0.1 s)."""
    code = (
        "import sys\nfrom pathlib import Path\nimport imagingdb\n"
        "from imagingdb.upload import upload_csv\n"
        f"tmp = Path({str(tmp_path)!r})\n"
        "(tmp / 'site.yaml').write_text(f'database: {{url: \"sqlite:///{tmp}/db.sqlite\"}}\\n'\n"
        "    f'storage: {{backend: local, root: \"{tmp}/storage\"}}\\n')\n"
        "(tmp / 'up.yaml').write_text('upload_type: frames\\nframes_format: ome_tiff\\n')\n"
        f"(tmp / 'up.csv').write_text('dataset_id,file_name\\n'\n"
        f"    'ML-2005-05-23-10-00-00-0001,{mm_ometiff}\\n')\n"
        "db = imagingdb.connect(tmp / 'site.yaml')\n"
        "report = upload_csv(db.site, tmp / 'up.csv', tmp / 'up.yaml')\n"
        "assert report.exit_code == 0, report.results\n"
        "print('jsonschema' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
