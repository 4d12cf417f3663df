"""Every query imagingdb runs on its tables, in SQLAlchemy Core, always parametrised."""

from __future__ import annotations

import io
import json
import math
from datetime import date, datetime, timedelta, timezone
from typing import Iterable, Optional, Sequence

import sqlalchemy as sa

from ..layout import OME_ZARR
from .tables import (
    JSONType,
    data_set,
    file_global,
    frames,
    frames_global,
    pending_removal,
    qc_summary,
    replica,
    thumbnail,
)

__all__ = [
    "find_dataset",
    "find_case_twin",
    "end_of_day",
    "query_datasets",
    "frames_global_of",
    "file_global_of",
    "select_frames",
    "insert_qc",
    "qc_summary_of",
    "thumbnails_of",
    "channel_names",
    "distinct_indexes",
    "datasets_named",
    "dataset_serial_of",
    "parent_pk_of",
    "datasets_with_content",
    "all_dataset_serials",
    "stored_sizes",
    "insert_dataset",
    "update_dataset",
    "delete_dataset_children",
    "insert_frames_global",
    "insert_frames",
    "insert_file_global",
    "frame_rows_after",
    "names_stored_in",
    "zarr_positions_stored_in",
    "storage_dirs",
    "count_frames",
    "children_of",
    "clear_parent_links",
    "delete_datasets",
    "move_dataset",
    "pending_removals",
    "insert_pending_removal",
    "delete_pending_removal",
    "replica_stores",
    "record_replicas",
    "mark_verified",
    "datasets_in_store",
    "replica_stores_by_serial",
]


# ----------------------------------------------------------------------- queries


def find_dataset(conn: sa.Connection, dataset_id: str) -> Optional[sa.Row]:
    """The (first) data_set row of the dataset ID ``dataset_id``, None if there is none."""
    return conn.execute(
        sa.select(data_set).where(data_set.c.dataset_serial == dataset_id).order_by(data_set.c.id)
    ).first()


def find_case_twin(conn: sa.Connection, dataset_id: str) -> Optional[str]:
    """The ID of a dataset whose ID differs from ``dataset_id`` by case only (``ml-...`` for
    ``ML-...``), None if there is none. IDs are ASCII, so SQL's lower() folds them alike on
    SQLite and PostgreSQL. A transaction about to register ``dataset_id`` takes
    :func:`.locks.lock_id_case_insensitively` first."""
    serial = data_set.c.dataset_serial
    return conn.execute(
        sa.select(serial).where(sa.func.lower(serial) == dataset_id.lower(), serial != dataset_id)
        .order_by(data_set.c.id).limit(1)
    ).scalar()


def end_of_day(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time()) + timedelta(days=1)


def query_datasets(
    conn: sa.Connection,
    *,
    project_id: Optional[str] = None,
    microscope: Optional[str] = None,
    start_date: Optional[date] = None,
    end_date: Optional[date] = None,
    description: Optional[str] = None,
) -> list[sa.Row]:
    """Datasets matching every given filter, ordered by dataset ID; selection in SQL."""
    parent = data_set.alias("parent")
    stmt = (
        sa.select(data_set, parent.c.dataset_serial.label("parent_dataset_id"))
        .select_from(data_set.outerjoin(parent, data_set.c.parent_id == parent.c.id))
        .order_by(data_set.c.dataset_serial)
    )
    if project_id:
        stmt = stmt.where(data_set.c.dataset_serial.startswith(f"{project_id}-", autoescape=True))
    if microscope:
        stmt = stmt.where(data_set.c.microscope.icontains(microscope, autoescape=True))
    if description:
        stmt = stmt.where(data_set.c.description.icontains(description, autoescape=True))
    if start_date:
        stmt = stmt.where(data_set.c.date_time >= datetime.combine(start_date, datetime.min.time()))
    if end_date:
        stmt = stmt.where(data_set.c.date_time < end_of_day(end_date))
    return list(conn.execute(stmt))


def frames_global_of(conn: sa.Connection, dataset_pk: int) -> Optional[sa.Row]:
    return conn.execute(
        sa.select(frames_global).where(frames_global.c.dataset_id == dataset_pk)
        .order_by(frames_global.c.id)
    ).first()


def file_global_of(conn: sa.Connection, dataset_pk: int) -> Optional[sa.Row]:
    return conn.execute(
        sa.select(file_global).where(file_global.c.dataset_id == dataset_pk)
        .order_by(file_global.c.id)
    ).first()


def select_frames(
    conn: sa.Connection,
    frames_global_pk: int,
    *,
    channels: Optional[Sequence[int]] = None,
    slices: Optional[Iterable[int]] = None,
    times: Optional[Iterable[int]] = None,
    positions: Optional[Iterable[int]] = None,
    with_metadata: bool = True,
) -> list[sa.Row]:
    """The frames of one dataset matching the index filters (None: all), in index order."""
    columns = [c for c in frames.c if with_metadata or c.name != "metadata_json"]
    stmt = sa.select(*columns).where(frames.c.frames_global_id == frames_global_pk)
    for column, wanted in (
        (frames.c.channel_idx, channels),
        (frames.c.slice_idx, slices),
        (frames.c.time_idx, times),
        (frames.c.pos_idx, positions),
    ):
        if wanted is not None:
            stmt = stmt.where(column.in_(sorted(set(wanted))))
    stmt = stmt.order_by(
        frames.c.pos_idx, frames.c.time_idx, frames.c.channel_idx, frames.c.slice_idx
    )
    return list(conn.execute(stmt))


def channel_names(conn: sa.Connection, frames_global_pk: int) -> dict[int, str]:
    """channel index -> name, as recorded in the frames of a dataset."""
    rows = conn.execute(
        sa.select(frames.c.channel_idx, sa.func.max(frames.c.channel_name))
        .where(frames.c.frames_global_id == frames_global_pk)
        .group_by(frames.c.channel_idx)
        .order_by(frames.c.channel_idx)
    )
    return {idx: name for idx, name in rows}


def distinct_indexes(conn: sa.Connection, frames_global_pk: int) -> dict[str, list[int]]:
    """The channel/slice/time/position indexes a dataset actually has."""
    result = {}
    for key, column in (("channels", frames.c.channel_idx), ("slices", frames.c.slice_idx),
                        ("times", frames.c.time_idx), ("positions", frames.c.pos_idx)):
        result[key] = list(conn.execute(
            sa.select(column).where(frames.c.frames_global_id == frames_global_pk)
            .distinct().order_by(column)
        ).scalars())
    return result


def datasets_named(conn: sa.Connection, dataset_id: str) -> list[sa.Row]:
    """Every data_set row with this dataset ID (more than one only in an adopted database)."""
    return conn.execute(sa.select(data_set).where(data_set.c.dataset_serial == dataset_id)
                        .order_by(data_set.c.id)).all()


def dataset_serial_of(conn: sa.Connection, dataset_pk: int) -> Optional[str]:
    """The dataset ID of the data_set row ``dataset_pk``."""
    return conn.execute(sa.select(data_set.c.dataset_serial)
                        .where(data_set.c.id == dataset_pk)).scalar()


def parent_pk_of(conn: sa.Connection, dataset_pk: int) -> Optional[int]:
    """The data_set id of the parent of the data_set row ``dataset_pk`` (None: it has none)."""
    return conn.execute(sa.select(data_set.c.parent_id)
                        .where(data_set.c.id == dataset_pk)).scalar()


def datasets_with_content(conn: sa.Connection, content_sha256: str, *,
                          exclude: Optional[str] = None) -> list[str]:
    """IDs of the datasets whose content checksum is ``content_sha256`` (see
    :mod:`imagingdb.provenance`), but ``exclude``. A whole file is also matched by its
    file_global.sha256, which datasets registered before schema version 4 have too."""
    select_ids = sa.select(data_set.c.dataset_serial).where(
        data_set.c.content_sha256 == content_sha256)
    found: sa.Select | sa.CompoundSelect = select_ids
    if not content_sha256.startswith("frames:"):
        found = sa.union(select_ids, sa.select(data_set.c.dataset_serial).select_from(
            file_global.join(data_set, file_global.c.dataset_id == data_set.c.id))
            .where(file_global.c.sha256 == content_sha256))
    names = sorted(set(conn.execute(found).scalars()))
    return [name for name in names if name != exclude]


def all_dataset_serials(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(data_set.c.dataset_serial)
                             .order_by(data_set.c.dataset_serial)).scalars())


def stored_sizes(conn: sa.Connection, dataset_ids: Sequence[str]
                 ) -> dict[str, tuple[int, Optional[int]]]:
    """Dataset ID -> (objects, bytes) stored, as recorded at upload; a dataset from before
    sizes were recorded counts its frames (or its one file), and None bytes."""
    objects = sa.func.coalesce(data_set.c.stored_objects, frames_global.c.nbr_frames, 1)
    stmt = (sa.select(data_set.c.dataset_serial, objects, data_set.c.stored_bytes)
            .select_from(data_set.outerjoin(frames_global,
                                            frames_global.c.dataset_id == data_set.c.id)))
    wanted = list(dict.fromkeys(dataset_ids))
    sizes = {}
    for start in range(0, len(wanted), 500):  # bounded IN lists, for verify --all
        batch = stmt.where(data_set.c.dataset_serial.in_(wanted[start:start + 500]))
        for dataset_id, count, nbytes in conn.execute(batch):
            sizes.setdefault(dataset_id, (int(count), nbytes))
    return sizes


# ------------------------------------------------------------------ registering


def insert_dataset(conn: sa.Connection, values: dict) -> int:
    """A new data_set row; returns its id."""
    return conn.execute(sa.insert(data_set).values(**values).returning(data_set.c.id)).scalar_one()


def update_dataset(conn: sa.Connection, dataset_pk: int, values: dict) -> None:
    conn.execute(sa.update(data_set).where(data_set.c.id == dataset_pk).values(**values))


def delete_dataset_children(conn: sa.Connection, dataset_pk: int) -> None:
    """Remove a dataset's frames, frames_global, file_global, replica, qc_summary and thumbnail
    rows (an overwrite replaces them)."""
    fg_ids = sa.select(frames_global.c.id).where(frames_global.c.dataset_id == dataset_pk)
    conn.execute(sa.delete(frames).where(frames.c.frames_global_id.in_(fg_ids)))
    conn.execute(sa.delete(frames_global).where(frames_global.c.dataset_id == dataset_pk))
    conn.execute(sa.delete(file_global).where(file_global.c.dataset_id == dataset_pk))
    conn.execute(sa.delete(replica).where(replica.c.dataset_id == dataset_pk))
    conn.execute(sa.delete(qc_summary).where(qc_summary.c.dataset_id == dataset_pk))
    conn.execute(sa.delete(thumbnail).where(thumbnail.c.dataset_id == dataset_pk))


def insert_frames_global(conn: sa.Connection, values: dict) -> int:
    """A frames_global row; returns its id."""
    return conn.execute(sa.insert(frames_global).values(**values)
                        .returning(frames_global.c.id)).scalar_one()


def insert_frames(conn: sa.Connection, rows: list[dict]) -> None:
    """Frame rows in bulk. On PostgreSQL by COPY (:func:`copy_rows`): rows of ~2 KB of
    Micro-Manager metadata went in at ~1,800 rows/s as SQLAlchemy's multi-row INSERTs
    (pg8000's own executemany is one round trip a row, slower still) and at ~4,500 by
    COPY. SQLite's executemany is in-process (~23,000 rows/s)."""
    if conn.dialect.name == "postgresql":
        copy_rows(conn, frames, rows)
    else:
        conn.execute(sa.insert(frames), rows)


def copy_rows(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    """PostgreSQL's ``COPY table FROM STDIN`` (CSV) of ``rows``, in the connection's
    transaction: the first row's keys that are columns of ``table``, every row giving
    each (as an executemany would); JSON columns serialised as SQLAlchemy does."""
    if not rows:
        return
    columns = [column for column in table.columns if column.name in rows[0]]
    serialize = conn.dialect._json_serializer or json.dumps

    def json_field(value: object) -> str:
        return "" if value is None else _csv_field(serialize(value))

    fields = [(c.name, json_field if isinstance(c.type, type(JSONType)) else _csv_field)
              for c in columns]
    text = io.StringIO()
    for row in rows:
        text.write(",".join(field(row[name]) for name, field in fields))
        text.write("\n")
    text.seek(0)
    preparer = conn.dialect.identifier_preparer
    statement = (f"COPY {preparer.format_table(table)} "
                 f"({', '.join(preparer.quote(c.name) for c in columns)}) "
                 "FROM STDIN WITH (FORMAT csv)")
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.cursor()
    try:
        cursor.execute(statement, stream=text)
    except dbapi.Error as exc:  # as SQLAlchemy reports a statement's failure
        raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi.Error) from exc
    finally:
        cursor.close()


def _csv_field(value: object) -> str:
    """One value in COPY's CSV: NULL as nothing, text always quoted (so "" is an empty
    string), numbers as PostgreSQL reads them."""
    if value is None:
        return ""
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    raise TypeError(f"no COPY form for a {type(value).__name__}")


def insert_qc(conn: sa.Connection, dataset_pk: int, summary: dict, thumbnails: list[dict]) -> None:
    """A dataset's qc_summary row and thumbnail rows (imagingdb.qc)."""
    conn.execute(sa.insert(qc_summary).values(dataset_id=dataset_pk, **summary))
    if thumbnails:
        conn.execute(sa.insert(thumbnail), [{"dataset_id": dataset_pk, **row} for row in thumbnails])


def qc_summary_of(conn: sa.Connection, dataset_pk: int) -> Optional[sa.Row]:
    """A dataset's qc_summary row; None: it has no QC."""
    return conn.execute(sa.select(qc_summary).where(qc_summary.c.dataset_id == dataset_pk)).first()


def thumbnails_of(conn: sa.Connection, dataset_pk: int) -> list[sa.Row]:
    """A dataset's thumbnail rows by position, then channel."""
    return list(conn.execute(sa.select(thumbnail).where(thumbnail.c.dataset_id == dataset_pk)
                             .order_by(thumbnail.c.pos_idx, thumbnail.c.channel_idx)))


def insert_file_global(conn: sa.Connection, values: dict) -> None:
    conn.execute(sa.insert(file_global).values(**values))


# --------------------------------------------------------------- verify and gc


def frame_rows_after(conn: sa.Connection, frames_global_pk: int, after: Optional[int],
                     limit: int) -> list[sa.Row]:
    """Up to ``limit`` frame rows (no metadata) of a dataset with ids above ``after``, by id:
    pages through a dataset of any size in constant memory."""
    columns = (frames.c.id, frames.c.channel_idx, frames.c.slice_idx, frames.c.time_idx,
               frames.c.pos_idx, frames.c.file_name, frames.c.sha256)
    stmt = (sa.select(*columns).where(frames.c.frames_global_id == frames_global_pk)
            .order_by(frames.c.id).limit(limit))
    if after is not None:
        stmt = stmt.where(frames.c.id > after)
    return conn.execute(stmt).all()


def _owners_in_folder(conn: sa.Connection, owner: sa.Table, folder: str,
                      dataset_id: Optional[str]) -> list[int]:
    """Ids of the ``owner`` rows that keep their objects in ``folder`` (see
    :func:`names_stored_in`). Two look-ups, not one OR: an OR across owner and data_set
    cannot use an index, and gc asks this of every folder (a scan of data_set each time,
    quadratic over a catalogue; docs/performance.md "At lab scale")."""
    ids = list(conn.execute(sa.select(owner.c.id).where(
        owner.c.storage_dir.in_([folder, f"{folder}/"]))).scalars())
    if dataset_id is not None:
        ids += conn.execute(
            sa.select(owner.c.id).select_from(owner.join(data_set, owner.c.dataset_id == data_set.c.id))
            .where(data_set.c.dataset_serial == dataset_id,
                   sa.func.coalesce(owner.c.storage_dir, "") == "")).scalars()
    return ids


def names_stored_in(conn: sa.Connection, folder: str, *, frames_folder: bool,
                    dataset_id: Optional[str]) -> set[str]:
    """The object names that committed rows keep in the storage folder ``folder``.

    A row whose storage_dir is empty (early rows of the original imagingDB)
    keeps its objects in its dataset's default folder: pass ``dataset_id``
    when ``folder`` is that one, None otherwise.
    """
    owner = frames_global if frames_folder else file_global
    owners = _owners_in_folder(conn, owner, folder, dataset_id)
    if not owners:
        return set()
    if frames_folder:  # through frames_index_key (frames_global_id first)
        stmt = sa.select(frames.c.file_name).where(frames.c.frames_global_id.in_(owners))
    else:
        stmt = sa.select(file_global.c.file_name).where(file_global.c.id.in_(owners))
    return set(conn.execute(stmt).scalars())


def zarr_positions_stored_in(conn: sa.Connection, folder: str, *,
                             dataset_id: Optional[str]) -> list[int]:
    """The positions of the ome-zarr datasets whose store is the folder ``folder`` (their
    zarr.json documents follow from them); ``dataset_id`` as for :func:`names_stored_in`."""
    owners = _owners_in_folder(conn, frames_global, folder, dataset_id)
    if not owners:
        return []
    stmt = (sa.select(frames.c.pos_idx).distinct()
            .select_from(frames_global.join(frames, frames.c.frames_global_id == frames_global.c.id))
            .where(frames_global.c.id.in_(owners), frames_global.c.frame_format == OME_ZARR)
            .order_by(frames.c.pos_idx))
    return list(conn.execute(stmt).scalars())


def storage_dirs(conn: sa.Connection) -> Iterable[tuple[bool, str, Optional[str]]]:
    """(frames?, dataset ID, storage_dir) of every frames_global and file_global row."""
    for owner, is_frames in ((frames_global, True), (file_global, False)):
        stmt = (sa.select(data_set.c.dataset_serial, owner.c.storage_dir)
                .select_from(owner.join(data_set, owner.c.dataset_id == data_set.c.id)))
        for dataset_id, storage_dir in conn.execute(stmt):
            yield is_frames, dataset_id, storage_dir


# ------------------------------------------------------------- delete and rename


def count_frames(conn: sa.Connection, frames_global_pk: int) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(frames)
                        .where(frames.c.frames_global_id == frames_global_pk)).scalar_one()


def children_of(conn: sa.Connection, dataset_pks: Iterable[int]) -> list[sa.Row]:
    """The (id, dataset_serial, parent_id) of every dataset naming one of ``dataset_pks`` as
    its parent, by dataset ID."""
    return conn.execute(
        sa.select(data_set.c.id, data_set.c.dataset_serial, data_set.c.parent_id)
        .where(data_set.c.parent_id.in_(sorted(set(dataset_pks))))
        .order_by(data_set.c.dataset_serial)).all()


def clear_parent_links(conn: sa.Connection, parent_pks: Iterable[int]) -> None:
    """Datasets naming one of ``parent_pks`` as parent keep no parent."""
    conn.execute(sa.update(data_set).where(data_set.c.parent_id.in_(sorted(set(parent_pks))))
                 .values(parent_id=None))


def delete_datasets(conn: sa.Connection, dataset_pks: Iterable[int]) -> None:
    """Remove data_set rows and their children (explicitly: a database adopted from the
    original imagingDB may lack the cascading foreign keys)."""
    pks = sorted(set(dataset_pks))
    for pk in pks:
        delete_dataset_children(conn, pk)
    conn.execute(sa.delete(data_set).where(data_set.c.id.in_(pks)))


def move_dataset(conn: sa.Connection, dataset_pk: int, dataset_id: str, date_time: datetime,
                 storage_dir: str) -> None:
    """Give a dataset a new ID (and the date_time it spells) and its objects' new folder."""
    conn.execute(sa.update(data_set).where(data_set.c.id == dataset_pk)
                 .values(dataset_serial=dataset_id, date_time=date_time))
    for owner in (frames_global, file_global):
        conn.execute(sa.update(owner).where(owner.c.dataset_id == dataset_pk)
                     .values(storage_dir=storage_dir))


def pending_removals(conn: sa.Connection,
                     dataset_ids: Optional[Iterable[str]] = None) -> list[sa.Row]:
    """The pending_removal rows (of these dataset IDs), oldest first."""
    stmt = sa.select(pending_removal).order_by(pending_removal.c.id)
    if dataset_ids is not None:
        stmt = stmt.where(pending_removal.c.dataset_serial.in_(sorted(set(dataset_ids))))
    return conn.execute(stmt).all()


def insert_pending_removal(conn: sa.Connection, dataset_id: str, storage_dir: str,
                           reason: str) -> None:
    conn.execute(sa.insert(pending_removal).values(
        dataset_serial=dataset_id, storage_dir=storage_dir, reason=reason,
        created_at=datetime.now(timezone.utc).replace(tzinfo=None)))


def delete_pending_removal(conn: sa.Connection, pending_pk: int) -> None:
    conn.execute(sa.delete(pending_removal).where(pending_removal.c.id == pending_pk))


# --------------------------------------------------------------------- replicas


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def replica_stores(conn: sa.Connection, dataset_pks: Iterable[int]) -> dict[int, list[sa.Row]]:
    """The replica rows of these datasets, by data_set id (a dataset without any: absent)."""
    found: dict[int, list[sa.Row]] = {}
    pks = sorted(set(dataset_pks))
    for start in range(0, len(pks), 500):  # bound the IN list
        stmt = (sa.select(replica).where(replica.c.dataset_id.in_(pks[start:start + 500]))
                .order_by(replica.c.dataset_id, replica.c.store))
        for row in conn.execute(stmt):
            found.setdefault(row.dataset_id, []).append(row)
    return found


def record_replicas(conn: sa.Connection, dataset_pk: int, stores: Iterable[str], *,
                    verified: bool = False, complete_at: Optional[datetime] = None) -> None:
    """Record that complete copies of the dataset are in ``stores`` (now, or at
    ``complete_at``); ``verified``: every object was just checked too."""
    now = _utc_now()
    have = {row.store for row in replica_stores(conn, [dataset_pk]).get(dataset_pk, [])}
    for store in dict.fromkeys(stores):
        if store in have:
            if verified:
                mark_verified(conn, dataset_pk, store)
            continue
        conn.execute(sa.insert(replica).values(
            dataset_id=dataset_pk, store=store, complete_at=complete_at or now,
            verified_at=now if verified else None))


def mark_verified(conn: sa.Connection, dataset_pk: int, store: str) -> None:
    """Every object of the dataset's copy in ``store`` was just found intact."""
    conn.execute(sa.update(replica).where(replica.c.dataset_id == dataset_pk,
                                          replica.c.store == store)
                 .values(verified_at=_utc_now()))


def datasets_in_store(conn: sa.Connection, store: str) -> list[int]:
    """The data_set ids with a replica row for ``store``."""
    return list(conn.execute(sa.select(replica.c.dataset_id).where(replica.c.store == store)
                             .order_by(replica.c.dataset_id)).scalars())


def replica_stores_by_serial(conn: sa.Connection, dataset_ids: Sequence[str]) -> dict[str, list[str]]:
    """The stores recorded as holding each of these datasets, by dataset ID (a dataset without
    a replica row: absent)."""
    found: dict[str, list[str]] = {}
    wanted = set(dataset_ids)
    stmt = (sa.select(data_set.c.dataset_serial, replica.c.store)
            .join(replica, replica.c.dataset_id == data_set.c.id))
    if len(wanted) <= 500:
        stmt = stmt.where(data_set.c.dataset_serial.in_(sorted(wanted)))
    # else every replica row in one pass: cheaper than binding thousands of IDs
    for serial, store in conn.execute(stmt):
        if serial in wanted:
            found.setdefault(serial, []).append(store)
    return found
