"""The upload CSV: one validated :class:`UploadRow` per dataset, or the reason a row is refused.

Columns as in the original imagingDB: ``dataset_id`` and ``file_name``
(required), ``description``, ``parent_dataset_id``, ``positions``. Any other
column is an annotation of each row's dataset (``strain``, ``plate``...; an
empty cell sets none), as are the ``--annotate KEY=VALUE`` pairs given to every
row. A problem with the file itself (missing, unreadable, no header, a column
that is no annotation key or looks like a misspelt column) is an InputError;
a bad row becomes a refused result of its own, so that the other rows can
still go in.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from . import annotations as notes
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
#: the separators a CSV may use: Excel writes ';' where the decimal mark is a comma, and
#: tabs for "Unicode text"
DELIMITERS = (",", ";", "\t")
#: an upload CSV larger than this is not one (64 MiB: ~300,000 rows)
CSV_LIMIT = 64 * 2**20
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
    #: the dataset's annotations: the row's annotation columns and --annotate
    annotations: dict[str, str] = field(default_factory=dict)
    #: the folder a relative file_name was read against (the CSV's), None for an absolute one
    relative_to: Optional[Path] = None

    @property
    def dataset_id(self) -> str:
        """The dataset ID as text."""
        return self.parsed_id.text

    def source_not_found(self) -> str:
        """Why the source is not there, in words: a relative file_name says where it was
        looked for (the CSV's folder, not the folder the command runs in)."""
        if self.relative_to is None:
            return f"{self.source} not found"
        name = self.source.relative_to(self.relative_to)
        return (f"{self.source} not found: file_name {str(name)!r} is relative to the CSV's "
                f"folder {self.relative_to.absolute()}, not to the current folder")


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


def _read_rows(handle, delimiter: str = ",") -> tuple[list[str],
                                                     list[tuple[int, dict[Optional[str], Any]]]]:
    """The header and each row as csv.DictReader gives it (extra cells under the key None),
    with the line the row starts on: a quoted value may span lines, and an error names the
    line a person finds the row at."""
    reader = csv.reader(handle, delimiter=delimiter)
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


def _annotation_columns(path: Path, columns: list[str], annotate: Mapping[str, str]) -> list[str]:
    """The columns that are annotations, checked; InputError for one that cannot be."""
    known = CSV_REQUIRED + CSV_OPTIONAL
    found = []
    for column in columns:
        if column in known:
            continue
        hint = difflib.get_close_matches(column, known, n=1, cutoff=0.85)
        if hint:
            raise InputError(f"CSV file {path} has a column {column!r}: did you mean {hint[0]!r}? "
                             "(other columns are annotations; rename it if it is one)")
        found.append(notes.check_key(column, f"CSV file {path} column"))
        if column in annotate:
            raise InputError(f"CSV file {path}: annotation {column!r} is both a column and "
                             "given with --annotate; keep one")
    return found


def check_encoding(name: Optional[str]) -> Optional[str]:
    """The codec name ``name`` (e.g. cp1252, latin-1), or InputError; None stays None."""
    if name is None:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise InputError(f"--encoding {name!r} is not an encoding Python knows; e.g. cp1252 "
                         "(Excel on Windows), latin-1, mac-roman, utf-16") from None


def _csv_text(path: Path, encoding: Optional[str]) -> str:
    """The CSV's text: UTF-8 (with or without a BOM), UTF-16 by its BOM, else ``encoding``.

    A file in another encoding is refused with the line of the first byte that is not
    UTF-8, rather than read as something it is not (a wrong file name would follow)."""
    from .input_files import read_bytes

    data = read_bytes(path, "CSV file", CSV_LIMIT)  # regular files only: not /dev/zero
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif data.startswith(codecs.BOM_UTF8) or encoding is None:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start:exc.start + 1].hex()
        if encoding == "utf-8-sig":
            raise InputError(
                f"CSV file {path} is not UTF-8: line {line} has the byte 0x{byte}; save it as "
                "\"CSV UTF-8\" (Excel: File > Save As), or name its encoding, e.g. "
                "--encoding cp1252") from None
        raise InputError(f"CSV file {path} is not {encoding}: line {line} has the byte "
                         f"0x{byte}; give its encoding with --encoding") from None


def _delimiter(text: str) -> str:
    """The separator of the header line: the one that splits it into the required columns,
    else the one that splits it most (then the missing columns are named)."""
    header = text.lstrip("\r\n").splitlines()[0] if text.strip() else ""
    best, best_fields = ",", 0
    for delimiter in DELIMITERS:
        fields = [f.strip() for f in next(csv.reader([header], delimiter=delimiter), [])]
        if all(column in fields for column in CSV_REQUIRED):
            return delimiter
        if len(fields) > best_fields:
            best, best_fields = delimiter, len(fields)
    return best


#: what else labs call the required columns (checked after the spelling ones look like)
COLUMN_SYNONYMS = {
    "file_name": ("file", "path", "file_path", "filepath", "fname", "source", "image", "folder"),
    "dataset_id": ("id", "dataset", "datasetid", "dataset_name"),
}


def _column_hint(missing: list[str], columns: list[str]) -> str:
    """'; did you mean ...' for missing columns that a present one looks like, or that has a
    name labs use for them (path, file, id...)."""
    hints = []
    folded = {column.lower().replace(" ", "_").replace("-", "_"): column for column in columns}
    for name in missing:
        close = difflib.get_close_matches(name, list(folded), n=1, cutoff=0.75)
        close = close or [f for f in folded if f in COLUMN_SYNONYMS.get(name, ())][:1]
        if close:
            hints.append(f"{folded[close[0]]!r} for {name!r}")
    return f" (did you mean {' and '.join(hints)}?)" if hints else ""


def read_upload_csv(path: Path, annotate: Optional[Mapping[str, str]] = None,
                    required_annotations: Sequence[str] = (),
                    encoding: Optional[str] = None) -> list[Union[UploadRow, RefusedRow]]:
    """Parse the upload CSV. File-level problems raise InputError; a bad row gives a RefusedRow.

    The separator (``,`` ``;`` or tab) is the one its header uses; the text is UTF-8
    (a BOM allowed), UTF-16 with a BOM, or in ``encoding`` (e.g. cp1252).
    ``annotate`` (checked KEY=VALUE pairs, e.g. from --annotate) annotates every row;
    a row lacking one of ``required_annotations`` is refused."""
    annotate = dict(annotate or {})
    text = _csv_text(path, encoding)
    delimiter = _delimiter(text)
    try:
        header, raw_rows = _read_rows(io.StringIO(text, newline=""), delimiter)
    except csv.Error as exc:
        raise InputError(f"cannot read CSV file {path}: {exc}") from None
    columns = [c.strip() for c in header]
    if not columns:
        raise InputError(f"CSV file {path} is empty; it needs a header with dataset_id,file_name")
    missing = [c for c in CSV_REQUIRED if c not in columns]
    if missing:
        raise InputError(f"CSV file {path} lacks column(s): {', '.join(missing)}"
                         f"{_column_hint(missing, columns)}")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise InputError(f"CSV file {path} has the column(s) {', '.join(repeated)} twice; "
                         "keep one of each")
    annotation_columns = _annotation_columns(path, columns, annotate)
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
            parsed_row.annotations = _row_annotations(row, annotation_columns, annotate, where)
            notes.check_required(parsed_row.annotations, required_annotations, where)
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


def _row_annotations(row: Mapping[str, Optional[str]], columns: list[str],
                     annotate: Mapping[str, str], where: str) -> dict[str, str]:
    found = {key: notes.check_value(key, row.get(key) or "", where) for key in columns}
    found.update(annotate)
    return {key: value for key, value in found.items() if value != ""}


def _parse_row(path: Path, line: int, row: dict[str, Optional[str]], where: str) -> UploadRow:
    try:
        dataset_id = parse_dataset_id(row.get("dataset_id") or "")
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    file_name = (row.get("file_name") or "").strip()
    if not file_name:
        raise InputError(f"{where}: file_name is empty")
    source = Path(file_name).expanduser()
    relative_to = None
    if not source.is_absolute():
        relative_to = path.parent
        source = relative_to / source  # relative to the CSV's folder
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
        relative_to=relative_to,
    )
