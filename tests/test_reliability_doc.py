"""docs/reliability.md names a test for each guarantee: every name must exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = re.compile(r"`(test_\w+\.py)::(test_\w+)(?:\[[^\]]*\])?`")


def test_every_test_named_in_reliability_md_exists():
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    references = REFERENCE.findall(text)
    assert len(references) > 50
    missing = [f"{file}::{name}" for file, name in sorted(set(references))
               if f"def {name}(" not in (ROOT / "tests" / file).read_text(encoding="utf-8")]
    assert missing == []
