"""Finding datasets: the filters of ``query`` and ``stats``, ``--where KEY=VALUE``, sorting.

A ``--where`` condition is ``KEY OP VALUE`` with OP one of ``=  !=  ~  <  >  <=  >=``
(read at the first of the characters ``= ! ~ < >``). KEY is

- a field of every dataset, by its name (:data:`FIELDS`): ``microscope~sp8``,
  ``stored_bytes>1e9``, ``uploaded_by=alice``, ``date_time>=2024-05-01``;
- else an annotation key or a dotted path into the dataset's global metadata
  (frames_global.metadata_json, or file_global's for a file kept whole): the
  condition holds when the annotation satisfies it or the metadata value at
  that path does. ``annotations.KEY`` and ``meta.PATH`` pick one of the two;
  ``frames.PATH`` holds when any frame's metadata satisfies it;
- ``qc.KEY``: a figure of the quality control summary measured at upload
  (:data:`imagingdb.qc.SUMMARY_KEYS`: ``qc.saturated_frames>0``, ``qc.blank_frames>0``,
  ``qc.blank_positions>0``, ``qc.focus_min<100``...), compared as a number; a dataset
  without QC (a file kept whole, uploaded before QC or with ``qc: false``) never matches.

What a value means is the same on SQLite and PostgreSQL:

- ``=`` / ``!=`` compare text (JSON true/false read as ``true``/``false``), but
  numerically when both the value given and the one stored are numbers (JSON
  numbers, or text written as one: ``1 = 1.0``);
- ``~`` is a substring, case-insensitive for the letters A-Z (both databases fold
  those alike; other letters are compared as they are);
- ``<`` ``>`` ``<=`` ``>=`` compare numbers when the value given is a number, dates
  when it is an ISO date (``YYYY-MM-DD``, optionally ``THH:MM`` or ``THH:MM:SS``)
  at the precision given (``<=2024-05-01`` includes the whole day); stored text that
  is no number (or no date) never satisfies them;
- only single values are compared: a key whose value is a list or an object, or
  that a dataset lacks, never matches, ``!=`` included (as SQL's NULL).

``KEY~`` with nothing after it holds for every dataset that has KEY. Keys are
checked (letters, digits, ``_ . -``), and every key and value reaches the
database as a bound parameter, never as SQL text.

Indexes: none is added for searching. Annotation keys and metadata paths are
the lab's own, so no index can cover them (an expression index serves one key;
a GIN index serves PostgreSQL's containment operators, not these comparisons);
a condition costs one JSON parse per dataset (SQLite: json_each reads the type
and the value together), about 0.04 s per 10,000 datasets with 1.5 KB of
global metadata each, measured; the joins to frames_global and file_global go
through their unique dataset_id indexes, a frames.PATH condition through
frames_index_key, a qc.KEY condition through qc_summary_dataset_id_key, and sorting
10,000 rows before a limit costs milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable, Optional, Sequence, Union

import sqlalchemy as sa

from .annotations import is_name
from .db.tables import data_set, file_global, frames, frames_global, qc_summary
from .errors import InputError
from .qc import SUMMARY_KEYS

__all__ = ["Condition", "FIELDS", "DATASET_COLUMNS", "parse_condition", "parse_conditions",
           "check_sort", "Filters", "select_datasets", "dataset_stats", "project_of",
           "StatsGroup", "Stats"]

OPERATORS = ("!=", "<=", ">=", "=", "~", "<", ">")
_OPERATOR_START = re.compile(r"[=!~<>]")
#: a number as JSON writes one (the exponent kept small enough for any database's type)
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,4})?")
# The same in SQL, for both databases' regular expressions (SQLite's is Python's re.search,
# whose "$" also matches before a final newline: the lookahead refuses that).
_SQL_NUMBER = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,4})?$(?!\n)"
_SQL_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?")
_ASCII_UPPER, _ASCII_LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
#: the tail of a dataset ID after its project: -YYYY-MM-DD-HH-MM-SS-NNNN
_ID_TAIL = 25
MAX_PATH = 200

#: the fields of every dataset --where and --sort find by name, and their kind
FIELDS = {
    "dataset_id": "text", "project": "text", "project_id": "text", "microscope": "text",
    "description": "text", "parent_dataset_id": "text", "uploaded_by": "text",
    "uploaded_host": "text", "imagingdb_version": "text", "source_path": "text",
    "content_sha256": "text", "date_time": "datetime", "uploaded_at": "datetime",
    "frames": "boolean", "stored_bytes": "number", "stored_objects": "number",
    "nbr_frames": "number",
}
_SCOPES = ("annotations", "meta", "frames", "qc")


@dataclass(frozen=True)
class Condition:
    """One ``--where`` condition: ``key op value``, and where the key is looked up."""

    key: str
    op: str
    value: str
    #: "field", "annotations", "meta", "frames", "qc", or "any" (the annotation or the metadata)
    scope: str

    @property
    def text(self) -> str:
        return f"{self.key}{self.op}{self.value}"

    @property
    def name(self) -> str:
        """The key without its scope prefix: the field, annotation key or metadata path."""
        prefix = f"{self.scope}."
        return self.key[len(prefix):] if self.key.startswith(prefix) else self.key

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))


def parse_condition(item: Union[str, Sequence[str]]) -> Condition:
    """``KEY OP VALUE`` text, or a (key, op, value) tuple, as a checked Condition."""
    if isinstance(item, str):
        match = _OPERATOR_START.search(item)
        if match is None:
            raise InputError(f"--where {item!r} has no operator; use KEY=VALUE, KEY!=VALUE, "
                             "KEY~TEXT, KEY<NUMBER or KEY>NUMBER")
        rest = item[match.start():]
        op = next((o for o in OPERATORS if rest.startswith(o)), None)
        if op is None:
            raise InputError(f"--where {item!r}: {rest[:2]!r} is not an operator; use = != ~ "
                             "< > <= >=")
        key, value = item[:match.start()], rest[len(op):]
    else:
        try:
            key, op, value = (str(part) for part in item)
        except ValueError:
            raise InputError(f"where {item!r}: expected (key, operator, value)") from None
        if op not in OPERATORS:
            raise InputError(f"where {item!r}: {op!r} is not an operator; use = != ~ < > <= >=")
    key, value = key.strip(), value.strip()
    condition = Condition(key, op, value, _scope_of(key, f"--where {key}{op}{value}"))
    _check_value(condition)
    return condition


def parse_conditions(items: Optional[Iterable[Union[str, Sequence[str]]]]) -> list[Condition]:
    return [parse_condition(item) for item in items or ()]


def _scope_of(key: str, given: str) -> str:
    """Where ``key`` is looked up; ``given`` names the option in messages."""
    if not key:
        raise InputError(f"{given} needs a key before the operator, e.g. strain=WT")
    if key in FIELDS:
        return "field"
    head, dot, rest = key.partition(".")
    scope = head if dot and head in _SCOPES else "any"
    name = rest if scope != "any" else key
    if len(name) > MAX_PATH or not is_name(name) or any(p.isdigit() for p in name.split(".")):
        raise InputError(f"{given}: {key!r} is not a field, an annotation key or a "
                         "metadata path; use letters, digits and _ - , parts joined by '.', "
                         "each starting with a letter (e.g. strain, Summary.Objective)")
    if scope == "qc" and name not in SUMMARY_KEYS:
        raise InputError(f"{given}: {key!r} is no QC figure; use one of "
                         f"{', '.join('qc.' + k for k in SUMMARY_KEYS)}")
    return scope


def check_sort(key: str) -> None:
    """InputError unless datasets can be sorted by ``key``: a field, an annotation key, a
    global metadata path or a QC figure (``qc.KEY``)."""
    if key in FIELDS:
        return
    if _scope_of(key, f"--sort {key}") == "frames":
        raise InputError(f"--sort {key}: datasets sort by a field, an annotation, a global "
                         "metadata path or a QC figure, not by frame metadata")


def _check_value(condition: Condition) -> None:
    """The errors a value can have before any query: a comparison without a number or date,
    a field given a value of the wrong kind."""
    op, value, text = condition.op, condition.value, condition.text
    kind = FIELDS.get(condition.key) if condition.scope == "field" else None
    if condition.scope == "qc":
        kind = "number"
    if kind == "boolean":
        if op not in ("=", "!=") or value.lower() not in ("true", "false"):
            raise InputError(f"--where {text!r}: {condition.key} is true or false; use "
                             f"{condition.key}=true or {condition.key}=false")
    elif kind == "datetime":
        if op == "~" or _as_date(value) is None:
            raise InputError(f"--where {text!r}: {condition.key} compares with a date, e.g. "
                             f"{condition.key}>=2024-05-01 (= != < > <= >=)")
    elif kind == "number" and (op == "~" or not _NUMBER.fullmatch(value)):
        raise InputError(f"--where {text!r}: {condition.key} is a number; compare it with a "
                         "number (= != < > <= >=)")
    elif op in ("<", ">", "<=", ">=") and not _NUMBER.fullmatch(value) and _as_date(value) is None:
        raise InputError(f"--where {condition.key}{op}{value}: {op} needs a number or a date "
                         "(YYYY-MM-DD)")


def _as_date(value: str) -> Optional[tuple[str, datetime, timedelta]]:
    """An ISO date or date and time as (its text with a 'T', its start, its precision)."""
    if not _DATE.fullmatch(value):
        return None
    normalized = value.replace(" ", "T")
    try:
        start = datetime.fromisoformat(normalized)
    except ValueError:
        return None
    step = {10: timedelta(days=1), 16: timedelta(minutes=1)}.get(len(normalized),
                                                                   timedelta(seconds=1))
    return normalized, start, step


# ----------------------------------------------------------------- stored values


@dataclass(frozen=True)
class _Stored:
    """A value as SQL sees it: its text (NULL unless it is a single value, so that a
    dataset without it matches nothing), its number (NULL unless it is one) and whether
    it is text (not a number or a boolean)."""

    text: sa.ColumnElement
    number: sa.ColumnElement
    is_text: sa.ColumnElement


def _number_type(dialect: str) -> sa.types.TypeEngine:
    # NUMERIC on PostgreSQL: exact, and no cast overflows; SQLite has REAL
    return sa.Numeric() if dialect == "postgresql" else sa.Float()


def _json_at(column: sa.ColumnElement, path: Sequence[str], dialect: str) -> _Stored:
    """The value at ``path`` (object keys) in the JSON ``column``. Each CASE names the JSON
    type once: SQLite parses the document for every function call, which is most of the
    cost of a search."""
    if dialect == "postgresql":
        parts = [sa.literal(part, sa.String) for part in path]
        json_type = sa.func.jsonb_typeof(sa.func.jsonb_extract_path(column, *parts))
        raw = sa.func.jsonb_extract_path_text(column, *parts, type_=sa.String)
        text = sa.case({"string": raw, "number": raw, "boolean": raw}, value=json_type,
                       else_=sa.null())
        number = sa.case({"number": sa.cast(raw, sa.Numeric()),
                          "string": sa.case((raw.regexp_match(_SQL_NUMBER),
                                             sa.cast(raw, sa.Numeric())), else_=sa.null())},
                         value=json_type, else_=sa.null())
        return _Stored(text, number, json_type == "string")
    json_path = _json_path(path)
    json_type = sa.func.json_type(column, json_path, type_=sa.String)
    raw = sa.func.json_extract(column, json_path)
    as_text = sa.cast(raw, sa.String)
    text = sa.case({"text": raw, "integer": as_text, "real": as_text, "true": "true",
                    "false": "false"}, value=json_type, else_=sa.null())
    number = sa.case({"integer": raw, "real": raw,
                      "text": sa.case((as_text.regexp_match(_SQL_NUMBER), sa.cast(raw, sa.Float())),
                                      else_=sa.null())},
                     value=json_type, else_=sa.null())
    return _Stored(text, number, json_type == "text")


def _json_satisfies(column: sa.ColumnElement, path: Sequence[str], op: str, value: str,
                    dialect: str) -> sa.ColumnElement:
    """The value at ``path`` in the JSON ``column`` satisfies ``op value``.

    On SQLite, json_each() reads the type and the value in one parse of the document
    (json_type and json_extract parse it once each: twice the time over 10,000 global
    metadata documents); it yields the value itself, with no key, when it is a single one.
    """
    if dialect == "postgresql":
        return _satisfies(_json_at(column, path, dialect), op, value, dialect)
    each = sa.func.json_each(column, _json_path(path)).table_valued("key", "type", "atom")
    as_text = sa.cast(each.c.atom, sa.String)
    stored = _Stored(
        sa.case({"text": each.c.atom, "integer": as_text, "real": as_text, "true": "true",
                 "false": "false"}, value=each.c.type, else_=sa.null()),
        sa.case({"integer": each.c.atom, "real": each.c.atom,
                 "text": sa.case((as_text.regexp_match(_SQL_NUMBER),
                                  sa.cast(each.c.atom, sa.Float())), else_=sa.null())},
                value=each.c.type, else_=sa.null()),
        each.c.type == "text")
    return sa.exists(sa.select(sa.literal_column("1")).select_from(each)
                     .where(each.c.key.is_(None), _satisfies(stored, op, value, dialect)))


def _json_path(path: Sequence[str]) -> sa.ColumnElement:
    """SQLite's JSON path of object keys, as a parameter; the keys are checked names, and
    quoted a '-' or '.' in one is no operator."""
    return sa.literal("$" + "".join(f'."{part}"' for part in path), sa.String)


def _column_value(column: sa.ColumnElement, kind: str, dialect: str) -> _Stored:
    if kind == "number":
        return _Stored(sa.cast(column, sa.String), column, sa.false())
    number = sa.case((column.regexp_match(_SQL_NUMBER), sa.cast(column, _number_type(dialect))),
                     else_=sa.null())
    return _Stored(column, number, column.isnot(None))


def _first_of(first: _Stored, second: _Stored) -> _Stored:
    """``first`` where it is there, else ``second`` (sorting by an annotation or a path)."""
    def pick(a: sa.ColumnElement, b: sa.ColumnElement) -> sa.ColumnElement:
        return sa.case((first.text.isnot(None), a), else_=b)

    return _Stored(pick(first.text, second.text), pick(first.number, second.number),
                   pick(first.is_text, second.is_text))


def _folded(text: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """A-Z as a-z, and nothing else, alike on both databases (PostgreSQL's lower() would
    fold other letters too, SQLite's only these)."""
    if dialect == "postgresql":
        return sa.func.translate(text, sa.literal(_ASCII_UPPER), sa.literal(_ASCII_LOWER))
    return sa.func.lower(text)


def _binary(text: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """Text ordered by its characters' codes, as SQLite always does (PostgreSQL's default
    collation orders by language)."""
    return sa.collate(text, "C") if dialect == "postgresql" else text


def _satisfies(stored: _Stored, op: str, value: str, dialect: str) -> sa.ColumnElement:
    given = sa.literal(value, sa.String)
    if op in ("=", "!="):
        equal = stored.text == given
        if _NUMBER.fullmatch(value):
            given_number = sa.cast(given, _number_type(dialect))
            equal = sa.or_(sa.and_(stored.number.isnot(None), stored.number == given_number),
                           sa.and_(stored.number.is_(None), stored.text == given))
        # NULL (no such value) is neither equal nor different: the dataset does not match
        return sa.and_(stored.text.isnot(None), equal if op == "=" else sa.not_(equal))
    if op == "~":  # text only: the two databases write JSON numbers as text differently
        find = sa.func.strpos if dialect == "postgresql" else sa.func.instr
        return sa.and_(stored.is_text, find(_folded(stored.text, dialect), _folded(given, dialect)) > 0)
    compare = {"<": sa.sql.operators.lt, ">": sa.sql.operators.gt,
               "<=": sa.sql.operators.le, ">=": sa.sql.operators.ge}[op]
    if _NUMBER.fullmatch(value):
        return compare(stored.number, sa.cast(given, _number_type(dialect)))
    day, _, _ = _as_date(value)
    # Compared at the precision given: the stored text's first len(day) characters.
    head = sa.func.replace(sa.func.substr(stored.text, 1, len(day)), " ", "T")
    return sa.and_(stored.is_text, stored.text.regexp_match(_SQL_DATE),
                   compare(_binary(head, dialect), sa.literal(day, sa.String)))


def _datetime_satisfies(column: sa.ColumnElement, op: str, value: str) -> sa.ColumnElement:
    """A timestamp column against a date or time, at its precision: ``=2024-05-01`` is that
    day, ``<=2024-05-01`` on or before it, ``>2024-05-01`` after it."""
    _, start, step = _as_date(value)
    end = start + step
    return {"=": sa.and_(column >= start, column < end),
            "!=": sa.or_(column < start, column >= end),
            "<": column < start, "<=": column < end,
            ">": column >= end, ">=": column >= start}[op]


# ------------------------------------------------------------------- the query


@dataclass(frozen=True)
class Filters:
    """Everything that selects datasets: query's options and its --where conditions."""

    project_id: Optional[str] = None
    microscope: Optional[str] = None
    start_date: Optional[date] = None
    end_date: Optional[date] = None
    description: Optional[str] = None
    where: tuple[Condition, ...] = ()


class _Sources:
    """data_set with what a query may look at: its parent, its frames_global and
    file_global rows (one at most each), as outer joins."""

    def __init__(self, dialect: str):
        self.dialect = dialect
        self.parent = data_set.alias("parent")
        self.fg = frames_global.alias("fg")
        self.fi = file_global.alias("fi")
        self._uses_file_global = False

    def from_clause(self) -> sa.FromClause:
        """The joins; call it after building the clauses and sort keys, which decide whether
        file_global is needed (a tenth of a plain query's time over 10,000 datasets)."""
        # each join finds one row at most, through the unique index on its dataset_id
        joined = (data_set.outerjoin(self.parent, data_set.c.parent_id == self.parent.c.id)
                  .outerjoin(self.fg, self.fg.c.dataset_id == data_set.c.id))
        if self._uses_file_global:
            joined = joined.outerjoin(self.fi, self.fi.c.dataset_id == data_set.c.id)
        return joined

    def field(self, name: str) -> sa.ColumnElement:
        if name in ("project", "project_id"):
            return project_of(data_set.c.dataset_serial)
        if name == "dataset_id":
            return data_set.c.dataset_serial
        if name == "parent_dataset_id":
            return self.parent.c.dataset_serial
        if name == "nbr_frames":
            return sa.func.coalesce(self.fg.c.nbr_frames, 0)
        return data_set.c[name]

    def global_meta(self) -> sa.ColumnElement:
        self._uses_file_global = True
        return sa.func.coalesce(self.fg.c.metadata_json, self.fi.c.metadata_json,
                                type_=self.fg.c.metadata_json.type)

    def stored(self, scope: str, name: str) -> _Stored:
        """The value an annotation key or metadata path names (scope "any": the annotation
        if the dataset has it, else the metadata's)."""
        if scope == "annotations":
            return _json_at(data_set.c.annotations, (name,), self.dialect)
        meta = _json_at(self.global_meta(), name.split("."), self.dialect)
        if scope == "meta":
            return meta
        return _first_of(_json_at(data_set.c.annotations, (name,), self.dialect), meta)

    def clause(self, condition: Condition) -> sa.ColumnElement:
        op, value, dialect = condition.op, condition.value, self.dialect
        if condition.scope == "field":
            kind = FIELDS[condition.key]
            column = self.field(condition.key)
            if kind == "boolean":
                return column == (value.lower() == "true") if op == "=" else \
                    column != (value.lower() == "true")
            if kind == "datetime":
                return _datetime_satisfies(column, op, value)
            return _satisfies(_column_value(column, kind, dialect), op, value, dialect)
        if condition.scope == "qc":
            # one qc_summary row at most per dataset, through its unique dataset_id index
            column = qc_summary.c[condition.name]
            return sa.exists().where(qc_summary.c.dataset_id == data_set.c.id, _satisfies(
                _column_value(column, "number", dialect), op, value, dialect))
        if condition.scope == "frames":
            # per dataset, its frames through frames_index_key (frames_global_id first)
            return sa.exists().where(frames.c.frames_global_id == self.fg.c.id, _json_satisfies(
                frames.c.metadata_json, condition.path, op, value, dialect))
        annotation = _json_satisfies(data_set.c.annotations, (condition.name,), op, value,
                                     dialect)
        meta = _json_satisfies(self.global_meta(), condition.path, op, value, dialect)
        return {"annotations": annotation, "meta": meta}.get(condition.scope,
                                                             sa.or_(annotation, meta))

    def sort_keys(self, key: str, reverse: bool) -> list[sa.ColumnElement]:
        def order(expr: sa.ColumnElement) -> sa.ColumnElement:
            return (expr.desc() if reverse else expr.asc()).nulls_last()

        id_key = _binary(data_set.c.dataset_serial, self.dialect)
        if key in ("dataset_id", "project", "project_id"):
            # an ID is never NULL: on SQLite its unique index gives the order, no sort
            return [id_key.desc() if reverse else id_key.asc()]
        if key in FIELDS:
            column = self.field(key)
            if FIELDS[key] == "text":
                column = _binary(column, self.dialect)
            keys = [order(column)]
        else:
            check_sort(key)
            scope = _scope_of(key, f"--sort {key}")
            name = Condition(key, "=", "", scope).name
            if scope == "qc":
                # the dataset's one qc_summary row (its unique dataset_id index); none: last
                keys = [order(sa.select(qc_summary.c[name])
                              .where(qc_summary.c.dataset_id == data_set.c.id)
                              .scalar_subquery())]
            else:
                stored = self.stored(scope, name)
                # numbers by value, then text, then the datasets without the key
                keys = [order(stored.number), order(_binary(stored.text, self.dialect))]
        return [*keys, id_key.desc() if reverse else id_key.asc()]


def project_of(dataset_serial: sa.ColumnElement) -> sa.ColumnElement:
    """The project part of a dataset ID in SQL: all before its -YYYY-MM-DD-HH-MM-SS-NNNN."""
    # The numbers are SQL constants, not parameters, so that the GROUP BY of stats and its
    # SELECT are the same expression to PostgreSQL.
    tail, one = sa.literal_column(str(_ID_TAIL)), sa.literal_column("1")
    length = sa.func.length(dataset_serial)
    return sa.case((length > tail, sa.func.substr(dataset_serial, one, length - tail)),
                   else_=dataset_serial)


def _where(sources: _Sources, filters: Filters) -> list[sa.ColumnElement]:
    from .db.queries import end_of_day

    clauses = []
    if filters.project_id:
        clauses.append(data_set.c.dataset_serial.startswith(f"{filters.project_id}-",
                                                            autoescape=True))
    if filters.microscope:
        clauses.append(data_set.c.microscope.icontains(filters.microscope, autoescape=True))
    if filters.description:
        clauses.append(data_set.c.description.icontains(filters.description, autoescape=True))
    if filters.start_date:
        clauses.append(data_set.c.date_time >= datetime.combine(filters.start_date,
                                                                datetime.min.time()))
    if filters.end_date:
        clauses.append(data_set.c.date_time < end_of_day(filters.end_date))
    clauses.extend(sources.clause(condition) for condition in filters.where)
    return clauses


#: what :func:`select_datasets` returns of each dataset, in this order
DATASET_COLUMNS = ("dataset_id", "date_time", "microscope", "description", "frames",
                   "parent_dataset_id", "annotations", "nbr_frames", "stored_bytes",
                   "stored_objects", "uploaded_by", "uploaded_host", "uploaded_at",
                   "imagingdb_version", "source_path", "content_sha256")


def select_datasets(conn: sa.Connection, filters: Filters, *, sort: str = "dataset_id",
                    reverse: bool = False, limit: Optional[int] = None) -> list[tuple]:
    """The DATASET_COLUMNS of the datasets matching ``filters``, sorted and limited in SQL,
    as plain tuples (a named attribute of a Row costs more than building the tuple: a
    tenth of a second over 10,000 datasets)."""
    sources = _Sources(conn.dialect.name)
    order = sources.sort_keys(sort, reverse)
    clauses = _where(sources, filters)
    columns = [sources.field(name).label(name) if name in FIELDS else data_set.c[name]
               for name in DATASET_COLUMNS]
    stmt = (sa.select(*columns)
            .select_from(sources.from_clause()).where(*clauses).order_by(*order))
    if limit is not None:
        stmt = stmt.limit(limit)
    return [tuple(row) for row in conn.execute(stmt)]


def dataset_stats(conn: sa.Connection, filters: Filters) -> list[sa.Row]:
    """Per (project, microscope) of the datasets matching ``filters``: datasets, frames,
    stored bytes and how many datasets have no recorded size, in one GROUP BY."""
    sources = _Sources(conn.dialect.name)
    clauses = _where(sources, filters)
    project = project_of(data_set.c.dataset_serial).label("project")
    microscope = data_set.c.microscope.label("microscope")
    stmt = (sa.select(project, microscope,
                      sa.func.count().label("datasets"),
                      sa.func.coalesce(sa.func.sum(sources.fg.c.nbr_frames), 0).label("frames"),
                      sa.func.coalesce(sa.func.sum(data_set.c.stored_bytes), 0)
                      .label("stored_bytes"),
                      (sa.func.count() - sa.func.count(data_set.c.stored_bytes))
                      .label("unsized"))
            .select_from(sources.from_clause()).where(*clauses)
            .group_by(project_of(data_set.c.dataset_serial), data_set.c.microscope)
            .order_by(_binary(project_of(data_set.c.dataset_serial), sources.dialect),
                      _binary(data_set.c.microscope, sources.dialect).asc().nulls_last()))
    return list(conn.execute(stmt))


@dataclass(frozen=True)
class StatsGroup:
    """What ``stats`` sums for one project and microscope (both None: the total)."""

    project: Optional[str]
    microscope: Optional[str]
    datasets: int
    frames: int
    stored_bytes: int  # of the datasets whose size is recorded
    unsized: int  # datasets without a recorded size (uploaded before imagingdb kept it)

    def to_json(self) -> dict:
        return {"project": self.project, "microscope": self.microscope,
                "datasets": self.datasets, "frames": self.frames,
                "stored_bytes": self.stored_bytes, "datasets_without_size": self.unsized}


@dataclass(frozen=True)
class Stats:
    groups: tuple[StatsGroup, ...]
    total: StatsGroup

    @classmethod
    def of(cls, rows: Iterable[sa.Row]) -> "Stats":
        groups = tuple(StatsGroup(r.project, r.microscope, int(r.datasets), int(r.frames),
                                  int(r.stored_bytes), int(r.unsized)) for r in rows)
        total = StatsGroup(None, None, *(sum(getattr(g, name) for g in groups) for name in
                                         ("datasets", "frames", "stored_bytes", "unsized")))
        return cls(groups, total)

    def to_json(self) -> dict:
        return {"groups": [g.to_json() for g in self.groups], "total": self.total.to_json()}
