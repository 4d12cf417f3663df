"""Dataset IDs: ``<PROJECT>-YYYY-MM-DD-HH-MM-SS-<NNNN>``, parsed and validated.

The ID is the only user-given text that becomes part of a storage key, so it
is validated strictly, before any work: project letters/digits, a real
calendar timestamp, a four-digit serial.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from .errors import InputError

_ID_PATTERN = re.compile(
    r"(?P<project>[A-Za-z0-9]+)-(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"-(?P<hour>\d{2})-(?P<minute>\d{2})-(?P<second>\d{2})-(?P<serial>\d{4})",
    re.ASCII,  # else \d also matches other scripts' digits, e.g. Arabic-Indic
)
ID_FORMAT = "<PROJECT>-YYYY-MM-DD-HH-MM-SS-<NNNN>, e.g. ML-2005-05-23-10-00-00-0001"
#: why two IDs differing only by case are never both registered
CASE_ONLY = ("on case-insensitive storage (macOS, SMB shares) both would use one folder, "
             "and removing one would delete the other's files")


@dataclass(frozen=True)
class DatasetID:
    """A validated dataset ID; ``str(id)`` gives it back as text."""

    text: str
    project: str
    date_time: datetime
    serial: str

    def __str__(self) -> str:
        return self.text


def case_folded(dataset_id: str) -> str:
    """The ID with its case folded: IDs that differ only by case (one folder on a
    case-insensitive mount) fold to the same text. IDs are ASCII."""
    return dataset_id.upper()


def parse_dataset_id(text: object) -> DatasetID:
    """Parse and validate a dataset ID, or raise InputError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"empty dataset ID; expected {ID_FORMAT}")
    candidate = text.strip()
    match = _ID_PATTERN.fullmatch(candidate)
    if match is None:
        raise InputError(f"invalid dataset ID {candidate!r}; expected {ID_FORMAT}")
    parts = {k: int(v) for k, v in match.groupdict().items() if k not in ("project", "serial")}
    try:
        stamp = datetime(**parts)
    except ValueError as exc:
        raise InputError(
            f"invalid dataset ID {candidate!r}: its timestamp is not a real date/time ({exc})"
        ) from None
    return DatasetID(candidate, match["project"], stamp, match["serial"])


def lowercase_project_warning(dataset_id: DatasetID) -> Optional[str]:
    """A warning for a project part with lower-case letters (``ml-...``): imagingDB's IDs
    have them upper case, and one differing from another only by case is refused."""
    project = dataset_id.project
    if project == project.upper():
        return None
    return (f"project ID {project!r} has lower-case letters; imagingDB's are upper case "
            f"({project.upper()}-...), and IDs that differ only by case are refused")


def is_dataset_id(text: object) -> bool:
    """True when ``text`` is a valid dataset ID."""
    try:
        parse_dataset_id(text)
    except InputError:
        return False
    return True
