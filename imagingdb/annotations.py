"""A dataset's annotations: the lab's own key-value pairs (sample, strain, treatment, plate...).

They come from the upload CSV's extra columns and ``--annotate KEY=VALUE``,
are changed by ``imagingdb edit``, and are stored in ``data_set.annotations``
(JSONB on PostgreSQL, JSON text on SQLite) as one JSON object of strings.
``query --where KEY=VALUE`` searches them.

This module holds the rules both paths share: what a key may be, how
``KEY=VALUE`` is read, and how annotations are merged.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Optional

from .errors import InputError

#: the longest key and value accepted (a key is a column header; a value is a note, not a file)
MAX_KEY = 64
MAX_VALUE = 1024

#: names that are columns of the upload CSV, or fields of a dataset that ``query --where``
#: finds by name: an annotation may not take them, so a key always means one thing
RESERVED_KEYS = frozenset({
    "dataset_id", "file_name", "description", "parent_dataset_id", "positions",
    "project", "project_id", "microscope", "date_time", "frames", "uploaded_by",
    "uploaded_host", "uploaded_at", "imagingdb_version", "source_path", "stored_bytes",
    "stored_objects", "nbr_frames", "content_sha256", "annotations",
})

# A key is a word of letters, digits and _ . - (a CSV header or a JSON path part):
# no spaces, quotes, operators or control characters, so that it is the same text in
# a CSV header, on a command line, in a --where filter and in a JSON path.
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def is_name(text: str) -> bool:
    """True if ``text`` has the syntax of a key (reserved names included): what ``query
    --where`` accepts as an annotation key or a metadata path."""
    return bool(_KEY.fullmatch(text)) and not text.endswith(".") and ".." not in text


def check_key(key: str, where: str) -> str:
    """``key`` stripped, or InputError naming ``where`` and what a key may be."""
    key = key.strip()
    if not key:
        raise InputError(f"{where}: an annotation needs a key, e.g. strain=WT")
    if len(key) > MAX_KEY:
        raise InputError(f"{where}: annotation key {key[:MAX_KEY]!r}... is longer than "
                         f"{MAX_KEY} characters")
    if not is_name(key):
        raise InputError(f"{where}: annotation key {key!r} is not a name; use letters, digits "
                         "and _ . - , starting with a letter (e.g. cell_line)")
    if key.lower() in RESERVED_KEYS:
        raise InputError(f"{where}: {key!r} is a field of every dataset, not an annotation; "
                         "choose another key")
    return key


def check_value(key: str, value: str, where: str) -> str:
    """``value`` stripped, or InputError: a value is one line of text."""
    value = value.strip()
    if len(value) > MAX_VALUE:
        raise InputError(f"{where}: the value of annotation {key!r} is longer than "
                         f"{MAX_VALUE} characters")
    if _CONTROL.search(value):
        raise InputError(f"{where}: the value of annotation {key!r} holds a control character "
                         "(a line break or tab?); annotations are one line of text")
    return value


def parse_assignment(text: str, where: str) -> tuple[str, str]:
    """``KEY=VALUE`` as (key, value); the value may be empty (it then removes the key)."""
    key, equals, value = text.partition("=")
    if not equals:
        raise InputError(f"{where}: {text!r} is not KEY=VALUE, e.g. strain=WT")
    key = check_key(key, where)
    return key, check_value(key, value, where)


def parse_assignments(texts: Iterable[str], where: str) -> dict[str, str]:
    """Several ``KEY=VALUE``; a key given twice is refused (which one was meant?)."""
    found: dict[str, str] = {}
    for text in texts:
        key, value = parse_assignment(text, where)
        if key in found:
            raise InputError(f"{where}: annotation {key!r} is given twice")
        found[key] = value
    return found


def merged(current: Optional[Mapping[str, str]], changes: Mapping[str, str]) -> dict[str, str]:
    """``current`` with ``changes`` applied: an empty value removes its key."""
    result = dict(current or {})
    for key, value in changes.items():
        if value == "":
            result.pop(key, None)
        else:
            result[key] = value
    return result


def stored(annotations: Mapping[str, str]) -> Optional[dict[str, str]]:
    """What data_set.annotations holds: the non-empty pairs, by key; NULL for none."""
    kept = {key: annotations[key] for key in sorted(annotations) if annotations[key] != ""}
    return kept or None


def check_required(annotations: Mapping[str, str], required: Iterable[str], where: str) -> None:
    """InputError naming the required annotations a row lacks (upload config
    ``required_annotations``)."""
    missing = [key for key in required if not annotations.get(key)]
    if missing:
        raise InputError(f"{where}: lacks the annotation(s) the upload config requires: "
                         f"{', '.join(missing)}; add them as CSV columns or --annotate KEY=VALUE")
