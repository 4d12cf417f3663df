"""``imagingdb edit``: change what the data_set row says of a dataset, in one transaction.

What may change: the description, the microscope, the parent dataset and the
annotations. The ID, the frames and the stored objects never do (``rename`` and
an upload with ``--overwrite`` are for those). A parent must exist and may not be
the dataset itself or one of its descendants (parents form no circle). Every
check runs inside the transaction that writes, so a refused edit changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Union

import sqlalchemy as sa

from . import annotations as ann
from . import db as dbq
from .errors import InputError, NotFoundError, WorkError
from .ids import parse_dataset_id
from .site import Site


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "leave this field as it is" (None means: clear it)
UNSET: Any = _Unset()

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_TEXT = 4096


@dataclass(frozen=True)
class Change:
    """One field that changed: ``annotations.KEY`` for an annotation; None for absent."""

    field: str
    old: Optional[str]
    new: Optional[str]

    def to_json(self) -> dict[str, Optional[str]]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class EditReport:
    dataset_id: str
    changes: tuple[Change, ...]

    def to_json(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "changes": [c.to_json() for c in self.changes]}


def edit_dataset(
    site: Site,
    dataset_id: str,
    *,
    description: Optional[str] = UNSET,
    microscope: Optional[str] = UNSET,
    parent: Optional[str] = UNSET,
    annotate: Union[Mapping[str, str], Iterable[str], None] = None,
    unset: Optional[Iterable[str]] = None,
) -> EditReport:
    """Apply the changes asked for to ``dataset_id``; returns those that made a difference
    (none: the dataset already was so). InputError when nothing is asked for."""
    dataset_id = parse_dataset_id(dataset_id).text
    annotation_changes = _annotation_changes(annotate, unset)
    if (description is UNSET and microscope is UNSET and parent is UNSET
            and not annotation_changes):
        raise InputError("nothing to edit: give --description, --microscope, --parent, "
                         "--no-parent, --annotate or --unset")
    texts = {name: _one_line(value, name) for name, value in
             (("description", description), ("microscope", microscope)) if value is not UNSET}
    parent_id = None if parent in (UNSET, None, "") else parse_dataset_id(parent).text
    if parent_id == dataset_id:
        raise InputError(f"dataset {dataset_id} cannot be its own parent")
    with site.connection(write=True) as conn:
        row = _the_row(conn, dataset_id)
        values: dict[str, Any] = {}
        changes: list[Change] = []
        for name, value in texts.items():
            if value != getattr(row, name):
                values[name] = value
                changes.append(Change(name, getattr(row, name), value))
        if parent is not UNSET:
            old = None if row.parent_id is None else dbq.dataset_serial_of(conn, row.parent_id)
            if parent_id != old:
                values["parent_id"] = _parent_pk(conn, row, parent_id)
                changes.append(Change("parent_dataset_id", old, parent_id))
        if annotation_changes:
            old_annotations = dict(row.annotations or {})
            new_annotations = ann.stored(ann.merged(old_annotations, annotation_changes)) or {}
            for key in sorted(set(old_annotations) | set(new_annotations)):
                if old_annotations.get(key) != new_annotations.get(key):
                    changes.append(Change(f"annotations.{key}", old_annotations.get(key),
                                          new_annotations.get(key)))
            if new_annotations != old_annotations:
                values["annotations"] = new_annotations or None
        if values:
            dbq.update_dataset(conn, row.id, values)
    return EditReport(dataset_id, tuple(changes))


def _annotation_changes(annotate: Union[Mapping[str, str], Iterable[str], None],
                        unset: Optional[Iterable[str]]) -> dict[str, str]:
    """KEY -> new value ("" removes it), every key and value checked."""
    if annotate is None:
        changes: dict[str, str] = {}
    elif isinstance(annotate, Mapping):
        changes = {}
        for key, value in annotate.items():
            key = ann.check_key(str(key), "--annotate")
            changes[key] = ann.check_value(key, "" if value is None else str(value), "--annotate")
    else:
        changes = ann.parse_assignments([annotate] if isinstance(annotate, str) else annotate,
                                        "--annotate")
    for key in [unset] if isinstance(unset, str) else unset or ():
        key = ann.check_key(key, "--unset")
        if key in changes:
            raise InputError(f"--unset: annotation {key!r} is also given to --annotate")
        changes[key] = ""
    return changes


def _one_line(value: Optional[str], what: str) -> Optional[str]:
    """A description or microscope: one line of text, stripped; empty or None clears it."""
    if value is None:
        return None
    value = str(value).strip()
    if _CONTROL.search(value):
        raise InputError(f"--{what} holds a control character (a line break or tab?); "
                         "give one line of text")
    if len(value) > MAX_TEXT:
        raise InputError(f"--{what} is longer than {MAX_TEXT} characters")
    return value or None


def _the_row(conn: sa.Connection, dataset_id: str, what: str = "dataset") -> sa.Row:
    rows = dbq.datasets_named(conn, dataset_id)
    if not rows:
        raise NotFoundError(f"{what} {dataset_id} not found")
    if len(rows) > 1:  # only in a database adopted from the original imagingDB
        raise WorkError(f"dataset {dataset_id} is registered {len(rows)} times; keep one, "
                        "see: imagingdb db status")
    return rows[0]


def _parent_pk(conn: sa.Connection, row: sa.Row, parent_id: Optional[str]) -> Optional[int]:
    """The data_set id of the new parent, checked: it exists and is no descendant of
    ``row`` (walking up from it must not reach ``row``)."""
    if parent_id is None:
        return None
    parent = _the_row(conn, parent_id, "parent dataset")
    seen, pk = set(), parent.id
    while pk is not None and pk not in seen:
        if pk == row.id:
            raise InputError(f"dataset {parent_id} descends from {row.dataset_serial}: "
                             "it cannot be its parent (parents would form a circle)")
        seen.add(pk)
        pk = dbq.parent_pk_of(conn, pk)
    return parent.id
