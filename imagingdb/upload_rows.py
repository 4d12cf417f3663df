"""The upload CSV: one validated :class:`UploadRow` per dataset, or the reason a row is refused.

Columns as in the original imagingDB: ``dataset_id`` and ``file_name``
(required), ``description``, ``parent_dataset_id``, ``positions``. A problem
with the file itself (missing, unreadable, no header, unknown columns) is an
InputError; a bad row becomes a refused result of its own, so that the other
rows can still go in.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from .errors import InputError
from .ids import CASE_ONLY, DatasetID, case_folded, parse_dataset_id


@dataclass(frozen=True)
class RefusedRow:
    """A CSV row refused before any work: its line, what it names, and why."""

    line: int
    dataset_id: str
    error: str
    exit_code: int = 2


CSV_REQUIRED = ("dataset_id", "file_name")
CSV_OPTIONAL = ("description", "parent_dataset_id", "positions")


@dataclass
class UploadRow:
    """One validated CSV row."""

    line: int
    parsed_id: DatasetID
    source: Path
    csv_name: str = ""
    description: Optional[str] = None
    parent_dataset_id: Optional[str] = None
    positions: Optional[list[int]] = None

    @property
    def dataset_id(self) -> str:
        """The dataset ID as text."""
        return self.parsed_id.text


def _parse_positions(text: str, where: str) -> Optional[list[int]]:
    cleaned = text.strip().strip("[]()").replace(",", " ").split()
    if not cleaned:
        return None
    try:
        positions = [int(p) for p in cleaned]
    except ValueError:
        raise InputError(f"{where}: invalid positions {text!r}; expected e.g. [0, 1, 2]") from None
    if any(p < 0 for p in positions):
        raise InputError(f"{where}: positions must be 0 or more, got {text!r}")
    return positions


def _blank(value: Optional[str]) -> bool:
    # The original accepted 'None'/'nan' for an empty parent (pandas wrote them).
    return value is None or value.strip() == "" or value.strip().lower() in ("none", "nan")


def _read_rows(handle) -> tuple[list[str], list[tuple[int, dict[Optional[str], Any]]]]:
    """The header and each row as csv.DictReader gives it (extra cells under the key None),
    with the line the row starts on: a quoted value may span lines, and an error names the
    line a person finds the row at."""
    reader = csv.reader(handle)
    header = next(reader, [])
    rows = []
    start = reader.line_num + 1
    for cells in reader:
        if cells:  # blank lines are skipped, as csv.DictReader does
            row: dict[Optional[str], Any] = dict(zip(header, cells))
            row.update({name: None for name in header[len(cells):]})
            if len(cells) > len(header):
                row[None] = cells[len(header):]
            rows.append((start, row))
        start = reader.line_num + 1
    return header, rows


def read_upload_csv(path: Path) -> list[Union[UploadRow, RefusedRow]]:
    """Parse the upload CSV. File-level problems raise InputError; a bad row gives a RefusedRow."""
    from .input_files import require_regular_file

    require_regular_file(path, "CSV file")  # /dev/zero or a FIFO would be read forever
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header, raw_rows = _read_rows(handle)
            columns = [c.strip() for c in header]
    except FileNotFoundError:
        raise InputError(f"CSV file {path} not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read CSV file {path}: {exc}") from None
    if not columns:
        raise InputError(f"CSV file {path} is empty; it needs a header with dataset_id,file_name")
    missing = [c for c in CSV_REQUIRED if c not in columns]
    if missing:
        raise InputError(f"CSV file {path} lacks column(s): {', '.join(missing)}")
    unknown = [c for c in columns if c not in CSV_REQUIRED + CSV_OPTIONAL]
    if unknown:
        raise InputError(
            f"CSV file {path} has unknown column(s): {', '.join(unknown)}; "
            f"allowed: {', '.join(CSV_REQUIRED + CSV_OPTIONAL)}"
        )
    if not raw_rows:
        raise InputError(f"CSV file {path} has no rows to upload")
    seen: dict[str, tuple[str, int]] = {}  # upper-case ID -> (ID, line)
    parsed: list[Union[UploadRow, RefusedRow]] = []
    for line, raw in raw_rows:
        row = {(k or "").strip(): v for k, v in raw.items()}
        where = f"{path.name} row {line}"
        try:
            if None in raw:  # more cells than header columns
                raise InputError(f"{where}: more values than columns")
            parsed_row = _parse_row(path, line, row, where)
            text = parsed_row.dataset_id
            folded = case_folded(text)
            if folded in seen:
                first, first_line = seen[folded]
                if first == text:
                    raise InputError(f"{where}: dataset ID {text} repeats row {first_line}")
                raise InputError(f"{where}: dataset ID {text} differs only by case from {first} "
                                 f"of row {first_line}; {CASE_ONLY}")
            seen[folded] = (text, line)
            parsed.append(parsed_row)
        except InputError as exc:
            parsed.append(RefusedRow(line, (row.get("dataset_id") or "").strip(), str(exc),
                                     exc.exit_code))
    return parsed


def _parse_row(path: Path, line: int, row: dict[str, Optional[str]], where: str) -> UploadRow:
    try:
        dataset_id = parse_dataset_id(row.get("dataset_id") or "")
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    file_name = (row.get("file_name") or "").strip()
    if not file_name:
        raise InputError(f"{where}: file_name is empty")
    source = Path(file_name).expanduser()
    if not source.is_absolute():
        source = path.parent / source  # relative to the CSV's folder
    parent = row.get("parent_dataset_id")
    parent_id = None
    if not _blank(parent):
        try:
            parent_id = parse_dataset_id(parent).text
        except InputError as exc:
            raise InputError(f"{where}: parent_dataset_id: {exc}") from None
    description = row.get("description")
    return UploadRow(
        line=line,
        parsed_id=dataset_id,
        source=source,
        csv_name=path.name,
        description=description if description not in (None, "") else None,
        parent_dataset_id=parent_id,
        positions=_parse_positions(row.get("positions") or "", where),
    )
