"""The Python API: the product. The CLI is a thin skin over it.

    import imagingdb
    db = imagingdb.connect()
    for info in db.query(project_id="ML"):
        print(info.dataset_id)
    ds = db.dataset("ML-2005-05-23-10-00-00-0001")
    arr = ds.read(channels=["DAPI"], times=[0])   # axes (P, T, C, Z, Y, X)
"""

from __future__ import annotations

import functools
import itertools
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence, Union

from . import db as dbq
from . import layout
from .config import (
    DatabaseSettings,
    SiteConfig,
    StorageSettings,
    checked_frame_format,
    find_site_config,
    load_login_file,
)
from .errors import InputError, NotFoundError, WorkError
from .ids import parse_dataset_id
from .site import Site

if TYPE_CHECKING:
    import dask.array
    import numpy as np
    import pandas
    import xarray

    from .acquisition import Dimensions, FrameIndex
    from .analysis import FrameSource
    from .db import migrate
    from .download import Selection
    from .edit import EditReport
    from .export import ExportSource
    from .gc import GcReport
    from .progress import Progress
    from .remove import DeleteReport, RenameReport
    from .search import Filters, Stats
    from .storage import StorageBackend
    from .sync import SyncReport
    from .upload import UploadReport
    from .upload_plan import UploadPlan
    from .verify import VerifyRun

ChannelSelector = Union[int, str]


def connect(
    site_config: Optional[Union[str, os.PathLike]] = None,
    *,
    login: Optional[Union[str, os.PathLike]] = None,
    database_url: Optional[str] = None,
    storage: Optional[dict[str, Any]] = None,
) -> "Database":
    """Open imagingdb as the CLI does: the site config lookup, else the embedded default.

    ``login`` is the original imagingDB's credentials JSON; ``database_url`` and
    ``storage`` (e.g. ``{"backend": "local", "root": "/data"}``) override the config.
    """
    config = find_site_config(site_config)
    if login is not None:
        config.database = load_login_file(Path(login))
    if database_url is not None:
        config.database = DatabaseSettings(url=database_url)
    if storage is not None:
        options = dict(storage)
        frame_format = checked_frame_format(options.pop("frame_format", None), "connect()",
                                            "storage frame_format")
        config.use_single_store(StorageSettings(options.pop("backend", "local"), options,
                                                frame_format or layout.PNG))
    return Database(config)


@dataclass(frozen=True)
class DatasetInfo:
    """One row of ``query``: what the data_set table says about a dataset.

    The provenance and size fields are None for datasets uploaded before imagingdb
    recorded them (and by the original imagingDB)."""

    dataset_id: str
    date_time: datetime
    microscope: Optional[str]
    description: Optional[str]
    frames: bool
    parent_dataset_id: Optional[str]
    annotations: dict[str, str] = field(default_factory=dict)
    #: 0 for a file kept whole; None in Dataset.info (Dataset.nbr_frames has it)
    nbr_frames: Optional[int] = None
    stored_bytes: Optional[int] = None
    stored_objects: Optional[int] = None
    uploaded_by: Optional[str] = None  # the OS user
    uploaded_host: Optional[str] = None
    uploaded_at: Optional[datetime] = None  # UTC
    imagingdb_version: Optional[str] = None
    source_path: Optional[str] = None
    content_sha256: Optional[str] = None
    #: the stores holding a complete copy, the primary's first (Database.query fills it)
    stores: tuple[str, ...] = ()

    #: the keys of query's table: the first ones of :meth:`to_json`, which scripts rely on
    TABLE_KEYS = ("dataset_id", "date_time", "microscope", "description", "frames",
                  "parent_dataset_id")

    def to_json(self) -> dict[str, Any]:
        """The keys `imagingdb query --format json` prints, dates in ISO 8601: the six of
        the original first, then annotations, sizes and provenance."""
        return {
            "dataset_id": self.dataset_id,
            "date_time": self.date_time.isoformat() if self.date_time else None,
            "microscope": self.microscope,
            "description": self.description,
            "frames": self.frames,
            "parent_dataset_id": self.parent_dataset_id,
            "annotations": dict(self.annotations),
            "nbr_frames": self.nbr_frames,
            "stored_bytes": self.stored_bytes,
            "stored_objects": self.stored_objects,
            "uploaded_by": self.uploaded_by,
            "uploaded_host": self.uploaded_host,
            "uploaded_at": self.uploaded_at.isoformat() if self.uploaded_at else None,
            "imagingdb_version": self.imagingdb_version,
            "source_path": self.source_path,
            "content_sha256": self.content_sha256,
            "stores": list(self.stores),
        }


class Database:
    """One imagingdb instance, its database and storage: find, upload, read, check.

    The plumbing (engine, transactions, storage backend) is :attr:`site`, an
    :class:`imagingdb.site.Site`; everything here is the product.
    """

    def __init__(self, config: SiteConfig):
        self.site = Site(config)

    @property
    def config(self) -> SiteConfig:
        return self.site.config

    def close(self) -> None:
        self.site.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def describe(self) -> str:
        """The database (URL masked) and the storage, for messages."""
        return self.site.describe()

    @property
    def database_url(self) -> str:
        """The database URL, any password masked."""
        return self.site.database_url

    @property
    def storage_location(self) -> str:
        """Where the objects live, e.g. ``local:/mnt/imaging`` or ``s3://bucket/prefix``."""
        return self.site.storage.describe()

    @property
    def stores(self) -> dict[str, str]:
        """Every store of the site by name, the primary first, each as :attr:`storage_location`
        says where it is."""
        return {name: self.site.store(name).describe() for name in self.site.store_names}

    # ------------------------------------------------------------------ schema

    def init(self) -> "migrate.UpgradeReport":
        """Create or upgrade the schema, and check every store can be written; idempotent."""
        report = self.upgrade()
        for name in self.site.store_names:
            self.site.store(name).check(writable=True)
        return report

    def upgrade(self) -> "migrate.UpgradeReport":
        """Bring the schema to this imagingdb's version (or adopt an original imagingDB
        database) as far as the rows allow; what they block is in the report's problems."""
        from .db import migrate

        with self.site.database_errors():
            report = migrate.upgrade(self.site.unchecked_engine)
        self.site.schema_is_current()
        return report

    def schema_status(self) -> "migrate.SchemaStatus":
        """The schema version and what `upgrade` would do; changes nothing."""
        from .db import migrate

        with self.site.database_errors():
            return migrate.status(self.site.unchecked_engine)

    # ------------------------------------------------------------------ datasets

    def query(
        self,
        project_id: Optional[str] = None,
        microscope: Optional[str] = None,
        start_date: Optional[Union[date, str]] = None,
        end_date: Optional[Union[date, str]] = None,
        description: Optional[str] = None,
        *,
        where: Optional[Iterable[Union[str, Sequence[str]]]] = None,
        sort: str = "dataset_id",
        reverse: bool = False,
        limit: Optional[int] = None,
    ) -> list[DatasetInfo]:
        """Datasets matching every given filter (substring for microscope and description),
        sorted by ``sort`` (a field, an annotation key, a metadata path or a QC figure
        ``qc.KEY``; ``reverse``: the other way), at most ``limit`` of them.

        ``where`` holds conditions as ``"strain=WT"`` or ``("dose", ">", "10")``: see
        :mod:`imagingdb.search` for what keys, operators and values mean.
        """
        from . import search

        filters = self._filters(project_id, microscope, start_date, end_date, description, where)
        search.check_sort(sort)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise InputError(f"limit must be a whole number of datasets, not {limit!r}")
        from .replicas import stores_by_id

        with self.site.connection() as conn:
            rows = search.select_datasets(conn, filters, sort=sort, reverse=reverse, limit=limit)
            stores = stores_by_id(conn, self.site, [row[0] for row in rows])
        # positional: search.DATASET_COLUMNS are DatasetInfo's fields, in their order
        return [DatasetInfo(*row[:4], bool(row[4]), row[5], _annotations(row[6]), *row[7:],
                            stores=tuple(stores[row[0]])) for row in rows]

    def stats(
        self,
        project_id: Optional[str] = None,
        microscope: Optional[str] = None,
        start_date: Optional[Union[date, str]] = None,
        end_date: Optional[Union[date, str]] = None,
        description: Optional[str] = None,
        *,
        where: Optional[Iterable[Union[str, Sequence[str]]]] = None,
    ) -> "Stats":
        """Datasets, frames and stored bytes of the datasets :meth:`query` would find, by
        project and microscope, and in total."""
        from . import search

        filters = self._filters(project_id, microscope, start_date, end_date, description, where)
        with self.site.connection() as conn:
            return search.Stats.of(search.dataset_stats(conn, filters))

    @staticmethod
    def _filters(project_id, microscope, start_date, end_date, description,
                 where) -> "Filters":
        from . import search

        start, end = _as_date(start_date, "start date"), _as_date(end_date, "end date")
        if start and end and start > end:
            raise InputError(f"start date {start} is after end date {end}")
        if isinstance(where, str):
            where = [where]
        return search.Filters(project_id, microscope, start, end, description,
                              tuple(search.parse_conditions(where)))

    def edit(self, dataset_id: str, **changes: Any) -> "EditReport":
        """Change a dataset's description, microscope, parent or annotations in one
        transaction; see :meth:`Dataset.edit`."""
        from .edit import edit_dataset

        return edit_dataset(self.site, dataset_id, **changes)

    def dataset(self, dataset_id: str) -> "Dataset":
        """The dataset with this ID, or NotFoundError."""
        dataset_id = parse_dataset_id(dataset_id).text
        with self.site.connection() as conn:
            rows = dbq.datasets_named(conn, dataset_id)
            if not rows:
                raise NotFoundError(f"dataset {dataset_id} not found")
            if len(rows) > 1:  # only in a database adopted from the original imagingDB
                raise WorkError(f"dataset {dataset_id} is registered {len(rows)} times (data_set id "
                                f"{', '.join(str(r.id) for r in rows)}); keep one, see: "
                                "imagingdb db status")
            row = rows[0]
            parent = None if row.parent_id is None else dbq.dataset_serial_of(conn, row.parent_id)
        return Dataset(self, row, parent)

    def upload(self, csv_path: Union[str, os.PathLike], config_path: Union[str, os.PathLike],
               **kwargs: Any) -> "UploadReport":
        """Upload every row of an upload CSV; see :func:`imagingdb.upload.upload_csv`."""
        from .upload import upload_csv

        return upload_csv(self.site, Path(csv_path), Path(config_path), **kwargs)

    def plan_upload(self, csv_path: Union[str, os.PathLike], config_path: Union[str, os.PathLike],
                    **kwargs: Any) -> "UploadPlan":
        """What :meth:`upload` with these arguments would do, row by row, and what it would
        cost, with nothing written anywhere; see :func:`imagingdb.upload_plan.plan_csv`."""
        from .upload_plan import plan_csv

        return plan_csv(self.site, Path(csv_path), Path(config_path), **kwargs)

    def verify(self, dataset_ids: Optional[Sequence[str]] = None, *,
               workers: Optional[int] = None, storage: Optional[str] = None,
               all_stores: bool = False, progress: Optional["Progress"] = None) -> "VerifyRun":
        """Re-read datasets from storage against their checksums (all of them when None):
        iterate the result for one :class:`~imagingdb.verify.DatasetCheck` per dataset as
        it finishes, then ask it for ``ok`` and ``summary()``. ``storage``: the copies in
        that store (without IDs: the datasets it holds); ``all_stores``: every copy of each
        dataset, one check per dataset and store."""
        from .verify import VerifyRun, verify_datasets

        return VerifyRun(verify_datasets(
            self.site, None if dataset_ids is None else list(dataset_ids), workers=workers,
            store=storage, all_stores=all_stores, progress=progress))

    def sync(self, dataset_ids: Optional[Sequence[str]] = None, *,
             to: Union[str, Sequence[str], None] = None, dry_run: bool = False,
             no_copy: bool = False, recheck: bool = False, workers: Optional[int] = None,
             progress: Any = None) -> "SyncReport":
        """Copy datasets (all when None) into the stores ``to`` (a name or names; None: every
        store of the site) that lack a complete copy, each object checked, and record the
        copies; see :mod:`imagingdb.sync`."""
        from .sync import sync

        targets = [to] if isinstance(to, str) else (None if to is None else list(to))
        return sync(self.site, None if dataset_ids is None else list(dataset_ids), to=targets,
                    dry_run=dry_run, no_copy=no_copy, recheck=recheck, workers=workers,
                    progress=progress)

    def gc(self, *, delete: bool = False, older_than: Union[float, str, None] = None,
           on_garbage: Optional[Callable[[Any], None]] = None,
           progress: Optional["Progress"] = None) -> "GcReport":
        """Find (``delete``: remove) stored objects no dataset references, in folders not
        written to for ``older_than`` (seconds, or a duration like "2h"; default 24 hours)
        and in younger ones no running upload claims (an interrupted upload's)."""
        from .gc import DEFAULT_GRACE, collect_garbage, parse_duration

        if older_than is None:
            older_than = DEFAULT_GRACE
        if isinstance(older_than, str):
            older_than = parse_duration(older_than)
        from .remove import finish_pending_removals

        # What interrupted deletes and renames left is garbage whatever its age: their
        # commits said so. Finished (or listed) first, under each dataset ID's claim.
        pending = finish_pending_removals(self.site, dry_run=not delete, on_object=on_garbage)
        listed = {obj.key for removal in pending for obj in removal.objects}

        def not_listed(obj: Any) -> None:  # a dry run finds them again: each is listed once
            if on_garbage is not None and obj.key not in listed:
                on_garbage(obj)

        report = collect_garbage(self.site, delete=delete, older_than=older_than,
                                 on_garbage=not_listed, progress=progress)
        report.garbage = [obj for obj in report.garbage if obj.key not in listed]
        left = report.garbage_folders()
        report.interrupted = [folder for folder in report.interrupted if folder in left]
        report.pending_removals = pending
        return report

    # ------------------------------------------------------- delete and rename

    def delete(self, dataset_ids: Union[str, Iterable[str]], *, with_children: bool = False,
               clear_parent_links: bool = False, dry_run: bool = True) -> "DeleteReport":
        """Delete datasets, rows and objects, all or nothing; a dry run unless
        ``dry_run=False``. A dataset other datasets name as parent is refused unless
        ``with_children`` (delete them too) or ``clear_parent_links`` (they keep no parent).
        See :mod:`imagingdb.remove`."""
        from .remove import delete_datasets

        return delete_datasets(self.site, dataset_ids, with_children=with_children,
                               orphan_children=clear_parent_links, dry_run=dry_run)

    def rename(self, old: str, new: str, *, workers: Optional[int] = None) -> "RenameReport":
        """Give the dataset ``old`` the ID ``new``: its objects copied and checked, its rows
        switched in one transaction, the old objects removed last; safe to run again after
        an interruption. See :mod:`imagingdb.remove`."""
        from .remove import rename_dataset

        return rename_dataset(self.site, old, new, workers=workers)


def _as_date(value: Optional[Union[date, str]], what: str) -> Optional[date]:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"invalid {what} {value!r}; expected YYYY-MM-DD, e.g. 2005-05-23") from None


def _annotations(stored: Optional[dict[str, str]]) -> dict[str, str]:
    """data_set.annotations as a dict by key (JSONB keeps its own order)."""
    return dict(sorted(stored.items())) if stored else {}


def _info(row: Any, parent_id_text: Optional[str], nbr_frames: Optional[int] = None
          ) -> DatasetInfo:
    return DatasetInfo(
        dataset_id=row.dataset_serial,
        date_time=row.date_time,
        microscope=row.microscope,
        description=row.description,
        frames=bool(row.frames),
        parent_dataset_id=parent_id_text,
        annotations=_annotations(row.annotations),
        nbr_frames=nbr_frames,
        stored_bytes=row.stored_bytes,
        stored_objects=row.stored_objects,
        uploaded_by=row.uploaded_by,
        uploaded_host=row.uploaded_host,
        uploaded_at=row.uploaded_at,
        imagingdb_version=row.imagingdb_version,
        source_path=row.source_path,
        content_sha256=row.content_sha256,
    )


class Dataset:
    """One dataset: its row, its metadata, its frames or file."""

    def __init__(self, database: Database, row: Any, parent_id_text: Optional[str]):
        self.database = database
        self._site = database.site
        self._row = row
        self.info = _info(row, parent_id_text)
        self.id = row.dataset_serial
        self._frames_global: Any = None
        self._file_global: Any = None
        self._loaded = False
        #: the store asked for (None: any) -> the name of the store reads use
        self._read_from: dict[Optional[str], str] = {}

    def _store(self, storage: Optional[str] = None) -> "StorageBackend":
        """The store reads of this dataset use: ``storage`` (a store's name in the site config,
        which must hold a copy), else the primary, falling back to another store holding a
        copy, with a warning, when the primary cannot be reached (:mod:`imagingdb.replicas`)."""
        from .replicas import reading_store

        if storage is not None and not isinstance(storage, str):
            raise InputError(f"storage must be a store's name (one of: "
                             f"{', '.join(self._site.store_names)}), got {storage!r}")
        if storage not in self._read_from:
            name, _backend = reading_store(self._site, self._row.id, self.id, storage)
            self._read_from[storage] = name
        return self._site.store(self._read_from[storage])

    @property
    def stores(self) -> list[str]:
        """The names of the stores holding a complete copy, the primary's first."""
        return [r["store"] for r in self.replicas]

    @property
    def replicas(self) -> list[dict[str, Any]]:
        """Where the dataset's complete copies are: one entry per store, the primary's first
        (``store``, ``recorded``: False for a dataset registered before imagingdb recorded
        copies, assumed in the primary; ``complete_at``, ``verified_at``: ISO UTC or None)."""
        from .replicas import replicas_of

        with self._site.connection() as conn:
            return [r.to_json() for r in replicas_of(conn, self._site, [self._row.id])[self._row.id]]

    def __repr__(self) -> str:
        kind = "frames" if self.is_frames else "file"
        return f"<Dataset {self.id} ({kind})>"

    @property
    def is_frames(self) -> bool:
        return bool(self._row.frames)

    def _load(self) -> None:
        if self._loaded:
            return
        with self._site.connection() as conn:
            if self.is_frames:
                self._frames_global = dbq.frames_global_of(conn, self._row.id)
            else:
                self._file_global = dbq.file_global_of(conn, self._row.id)
        if self._frames_global is None and self._file_global is None:
            raise WorkError(f"dataset {self.id} has no frames_global or file_global row")
        self._loaded = True

    @property
    def storage_dir(self) -> str:
        self._load()
        row = self._frames_global if self.is_frames else self._file_global
        return layout.storage_dir(row.storage_dir, self.is_frames, self.id)

    @property
    def global_meta(self) -> dict[str, Any]:
        """The dataset's global metadata (from the microscope's summary, or the file's tags)."""
        self._load()
        row = self._frames_global if self.is_frames else self._file_global
        return dict(row.metadata_json or {})

    @property
    def dims(self) -> Optional[Dimensions]:
        """The frames_global dimensions; None for a dataset kept as one file."""
        self._load()
        if not self.is_frames:
            return None
        from .acquisition import Dimensions

        g = self._frames_global
        return Dimensions(g.nbr_channels, g.nbr_slices, g.nbr_timepoints, g.nbr_positions,
                          g.im_height, g.im_width, g.im_colors, g.bit_depth)

    @property
    def frame_format(self) -> Optional[str]:
        """How the frames are stored: ``png`` (the original's layout) or ``ome-zarr`` (an
        OME-Zarr store in :attr:`storage_dir`); None for a dataset kept as one file."""
        self._load()
        if not self.is_frames:
            return None
        return getattr(self._frames_global, "frame_format", None) or layout.PNG

    @property
    def nbr_frames(self) -> int:
        self._load()
        return self._frames_global.nbr_frames if self.is_frames else 0

    @property
    def file(self) -> Optional[dict[str, Any]]:
        """For a dataset kept whole: its key, file name and sha256."""
        self._load()
        if self.is_frames:
            return None
        f = self._file_global
        return {"key": layout.object_key(self.storage_dir, f.file_name), "file_name": f.file_name,
                "sha256": f.sha256}

    def summary(self) -> dict[str, Any]:
        """Everything `imagingdb show` prints: the data_set row (annotations, provenance),
        dimensions, stored size, metadata."""
        result = self.info.to_json()
        result["storage_dir"] = self.storage_dir
        result["nbr_frames"] = self.nbr_frames
        if self.is_frames:
            dims = self.dims
            result.update({**dims.__dict__, "frame_format": self.frame_format})
            result["channel_names"] = self.channel_names()
            missing = self.missing_frames()
            result["missing_frames"] = len(missing)
            result["missing_frame_indexes"] = [
                {"channel": i.channel, "slice": i.slice, "time": i.time, "position": i.position}
                for i in missing]
        else:
            result.update({"file_name": self.file["file_name"], "sha256": self.file["sha256"]})
        stored_bytes, stored_objects, measured = self.stored_size()
        result.update({"stored_bytes": stored_bytes, "stored_objects": stored_objects,
                       "stored_size_measured": measured})
        replicas = self.replicas
        result["stores"] = [r["store"] for r in replicas]
        result["replicas"] = replicas
        result["qc"] = self.qc
        result["global_meta"] = self.global_meta
        return result

    @property
    def qc(self) -> Optional[dict[str, Any]]:
        """The quality control summary measured at upload (:mod:`imagingdb.qc`): frames,
        saturation_level, bits, saturated_frames (> 1% of pixels saturated), blank_frames,
        blank_positions, focus_min, focus_max, saturated (the first such frames' indexes) and
        positions (the same figures per position); None when the dataset has no QC (a file
        kept whole, uploaded before QC or with ``qc: false``). Per frame: the ``qc_*`` keys
        of :meth:`frames`."""
        from .qc import summary_json

        with self._site.connection() as conn:
            row = dbq.qc_summary_of(conn, self._row.id)
        return summary_json(None if row is None else row._mapping)

    def preview(self, out: Union[str, os.PathLike]) -> dict[str, Any]:
        """Write the contact sheet of the thumbnails to ``out`` (PNG): positions as rows,
        channels as columns. Returns what was written (path, positions and channels in the
        sheet's order, channel_names in that order, width, height, bytes). InputError if
        the dataset has no thumbnails or ``out``'s folder does not exist; nothing is
        written then."""
        from .codecs.png import encode_png
        from .qc import contact_sheet

        path = Path(out)
        try:
            is_folder, folder_exists = path.is_dir(), path.absolute().parent.is_dir()
        except OSError as exc:  # a name too long, a path through a file
            raise InputError(f"--out {path}: cannot write it ({exc.strerror or exc}); "
                             "nothing was written") from None
        if is_folder:
            raise InputError(f"--out {path}: is a folder; give the PNG file to write, e.g. "
                             f"{path / 'preview.png'}")
        if not folder_exists:
            raise InputError(f"--out {path}: folder {path.absolute().parent} does not exist; "
                             "create it or write elsewhere")
        thumbnails = self.thumbnails()
        if not thumbnails:
            why = ("a file kept whole is not read" if not self.is_frames else
                   "uploaded before QC or with qc: false in its upload config")
            raise InputError(f"dataset {self.id} has no thumbnails ({why}); nothing was written")
        sheet, positions, channels = contact_sheet(thumbnails)
        data = encode_png(sheet, level=9, strategy="default")
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise InputError(f"--out {path}: cannot write it ({exc.strerror or exc}); "
                             "nothing was written") from None
        names = self.channel_names()
        return {"dataset_id": self.id, "path": str(path), "positions": positions,
                "channels": channels,
                "channel_names": [names.get(c, f"channel {c}") for c in channels],
                "width": int(sheet.shape[1]),
                "height": int(sheet.shape[0]), "bytes": len(data)}

    def thumbnails(self) -> list[dict[str, Any]]:
        """The thumbnail of each position and channel: ``position``, ``channel``, ``png`` (the
        8-bit PNG bytes of its max projection over slices and time points, max-pooled to
        <= 128 pixels), ``display_min``/``display_max`` (the values shown as 0 and 255);
        empty when the dataset has none."""
        with self._site.connection() as conn:
            rows = dbq.thumbnails_of(conn, self._row.id)
        return [{"position": r.pos_idx, "channel": r.channel_idx, "png": bytes(r.png),
                 "display_min": r.display_min, "display_max": r.display_max} for r in rows]

    def stored_size(self) -> tuple[Optional[int], Optional[int], bool]:
        """(bytes, objects, measured) of the dataset's stored objects: as recorded at upload,
        else (older datasets) measured by listing its storage folder (measured True; None
        when the storage backend cannot list sizes)."""
        if self.info.stored_bytes is not None:
            return self.info.stored_bytes, self.info.stored_objects, False
        try:
            objects = list(self._store().list_objects(f"{self.storage_dir}/"))
        except WorkError:  # a backend without sizes in its listings, or no store reachable
            return None, None, True
        return sum(o.size for o in objects), len(objects), True

    def edit(self, **changes: Any) -> "EditReport":
        """Change the description, microscope, parent or annotations in one transaction:
        ``description=``, ``microscope=`` (None or "" clears them), ``parent=`` (a dataset
        ID, None for none), ``annotate={"strain": "WT"}`` or ``["strain=WT"]`` (an empty value
        removes the key), ``unset=["strain"]``. Returns what changed (old and new values);
        this object keeps the values it was read with."""
        return self.database.edit(self.id, **changes)

    # ------------------------------------------------------------ frame selection

    def _require_frames(self) -> None:
        if not self.is_frames:
            raise InputError(
                f"dataset {self.id} is a file kept whole, not frames; use download to get it"
            )

    def channel_names(self) -> dict[int, str]:
        """channel index -> channel name."""
        self._require_frames()
        self._load()
        with self._site.connection() as conn:
            return dbq.channel_names(conn, self._frames_global.id)

    def select(
        self,
        channels: Optional[Sequence[ChannelSelector]] = None,
        slices: Optional[Iterable[int]] = None,
        times: Optional[Iterable[int]] = None,
        positions: Optional[Iterable[int]] = None,
    ) -> Selection:
        """Resolve channel names/indexes and check every index exists; errors list what does."""
        from .download import Selection

        self._require_frames()
        self._load()
        with self._site.connection() as conn:
            present = self._intended_indexes(dbq.distinct_indexes(conn, self._frames_global.id))
            names = dbq.channel_names(conn, self._frames_global.id)
        return Selection(
            channels=_resolve_channels(self.id, channels, names, present["channels"]),
            slices=_resolve_indexes(self.id, "slice", slices, present["slices"]),
            times=_resolve_indexes(self.id, "time", times, present["times"]),
            positions=_resolve_indexes(self.id, "position", positions, present["positions"]),
        )

    def _frame_rows(self, selection: Selection, with_metadata: bool) -> list[Any]:
        with self._site.connection() as conn:
            return dbq.select_frames(conn, self._frames_global.id, with_metadata=with_metadata,
                                     **selection.as_filters())

    def frames(
        self,
        channels: Optional[Sequence[ChannelSelector]] = None,
        slices: Optional[Iterable[int]] = None,
        times: Optional[Iterable[int]] = None,
        positions: Optional[Iterable[int]] = None,
        with_metadata: bool = True,
    ) -> list[dict[str, Any]]:
        """Rows of frame metadata (indexes, channel name, file name, sha256, metadata_json)."""
        selection = self.select(channels, slices, times, positions)
        rows = self._frame_rows(selection, with_metadata)
        return [_frame_dict(row) for row in rows]

    def _intended_indexes(self, present: dict[str, list[int]]) -> dict[str, list[int]]:
        """The indexes of each axis the acquisition intended: those its frames have, and as
        many more as the recorded dimensions count (a time point or position never reached
        has no row at all), taken from the lowest indexes no frame has."""
        g = self._frames_global
        counts = {"channels": g.nbr_channels, "slices": g.nbr_slices,
                  "times": g.nbr_timepoints, "positions": g.nbr_positions}
        intended = {}
        for axis, have in present.items():
            lacking = max(0, counts[axis] - len(have))
            have_set = set(have)
            unreached = [i for i in range(counts[axis]) if i not in have_set][:lacking]
            intended[axis] = sorted([*have, *unreached])
        return intended

    def missing_frames(self) -> list[FrameIndex]:
        """Indexes inside the recorded dimensions that have no frame (incomplete acquisitions),
        in the order read() lays them out (position, time, channel, slice)."""
        from .acquisition import FrameIndex

        self._require_frames()
        self._load()
        g = self._frames_global
        with self._site.connection() as conn:
            axes = self._intended_indexes(dbq.distinct_indexes(conn, g.id))
            have = {
                (r.channel_idx, r.slice_idx, r.time_idx, r.pos_idx)
                for r in dbq.select_frames(conn, g.id, with_metadata=False)
            }
        return [FrameIndex(c, z, t, p) for p in axes["positions"] for t in axes["times"]
                for c in axes["channels"] for z in axes["slices"] if (c, z, t, p) not in have]

    def read(
        self,
        channels: Optional[Sequence[ChannelSelector]] = None,
        slices: Optional[Iterable[int]] = None,
        times: Optional[Iterable[int]] = None,
        positions: Optional[Iterable[int]] = None,
        *,
        fill_value: int = 0,
        workers: Optional[int] = None,
        verify: bool = False,
        storage: Optional[str] = None,
    ) -> "np.ndarray":
        """Frames into one array with axes (P, T, C, Z, Y, X) (+ a colour axis for RGB).

        Each axis lists the asked indexes in the order asked (when not asked: every
        index of the recorded dimensions, ascending, those no frame has included).
        An incomplete acquisition (stopped early, a timepoint or position missing)
        has holes in that grid: they are filled
        with ``fill_value`` (0 by default, so choose e.g. 65535 to tell them from
        dark pixels), and a :class:`imagingdb.errors.MissingFramesWarning` says how
        many; :meth:`missing_frames` lists them.
        ``verify=True`` also checks every frame's sha256.
        """
        from .download import read_frames

        selection = self.select(channels, slices, times, positions)
        rows = self._frame_rows(selection, with_metadata=False)
        return read_frames(self._store(storage), self.storage_dir, rows, selection, self.dims,
                           dataset_id=self.id, fill_value=fill_value, workers=workers,
                           verify=verify, frame_format=self.frame_format)

    def iter_frames(
        self,
        channels: Optional[Sequence[ChannelSelector]] = None,
        slices: Optional[Iterable[int]] = None,
        times: Optional[Iterable[int]] = None,
        positions: Optional[Iterable[int]] = None,
        *,
        workers: Optional[int] = None,
        verify: bool = False,
        storage: Optional[str] = None,
    ) -> Iterator[tuple[dict[str, Any], "np.ndarray"]]:
        """(frame row, pixels) of every selected frame that exists, in index order (position,
        time, channel, slice as :meth:`frames` lists them), streamed: memory holds a few
        frames whatever the dataset's size."""
        from .download import iter_frames

        selection = self.select(channels, slices, times, positions)
        rows = self._frame_rows(selection, with_metadata=False)
        for row, pixels in iter_frames(self._store(storage), self.storage_dir, rows, self.dims,
                                       dataset_id=self.id, frame_format=self.frame_format,
                                       workers=workers, verify=verify):
            yield _frame_dict(row), pixels

    def download(
        self,
        dest: Union[str, os.PathLike],
        *,
        channels: Optional[Sequence[ChannelSelector]] = None,
        slices: Optional[Iterable[int]] = None,
        times: Optional[Iterable[int]] = None,
        positions: Optional[Iterable[int]] = None,
        metadata: bool = True,
        download: bool = True,
        workers: Optional[int] = None,
        progress: Any = None,
        resume: bool = False,
        storage: Optional[str] = None,
    ) -> Path:
        """Write ``dest/<ID>/``: the frames asked for (all by default) or the file kept whole,
        with ``global_metadata.json`` and (frames) ``frames_meta.csv`` (each frame's row and
        metadata, flattened into columns) and ``frames_meta.jsonl`` (the metadata whole)
        unless ``metadata`` is False; ``download=False`` writes the metadata only. Returns
        that folder, which appears complete or not at all; an existing one is refused,
        unless ``resume``: then the files already there with the recorded sha256 are kept
        and the rest added (PNG frames and files kept whole).

        The frames of an ome-zarr dataset are written as the OME-Zarr store of the selection
        (``dest/<ID>/zarr.json`` and its chunks, copied unchanged; see :meth:`export`), and
        frames_meta.csv names each frame's chunk in it."""
        from .download import DownloadPlan, check_destination
        from .download import download as write_download

        dest = Path(dest)
        if not resume:
            check_destination(dest, self.id)
        if self.is_frames:
            from .download import warn_missing

            selection = self.select(channels, slices, times, positions)  # refused before any store
            plan = DownloadPlan(self.id, self._store(storage), is_frames=self.is_frames)
            rows = self._frame_rows(selection, with_metadata=False)
            asked = (len(selection.channels) * len(selection.slices) * len(selection.times)
                     * len(selection.positions))
            if len(rows) < asked:
                warn_missing(self.id, asked - len(rows), asked, "are not in the download "
                             "(global_metadata.json lists every missing frame)", stacklevel=2)
            renumbering = None  # an ome-zarr dataset downloads as a store of the selection
            if self.frame_format == layout.OME_ZARR:
                from .export import Renumbering, store_entries, write_ome_zarr

                source = self._export_source(selection, rows, storage)
                renumbering = Renumbering(selection)
                if download:
                    plan.write_frames = functools.partial(write_ome_zarr, source)
                rows = store_entries(source)
            elif download:
                plan.objects = [(layout.object_key(self.storage_dir, row.file_name), row.file_name)
                                for row in rows]
                plan.checksums = {row.file_name: (row.sha256, "pixels") for row in rows}
                plan.pixel_hash = self._png_pixel_hash
            if metadata:
                plan.frame_metadata = functools.partial(self._frame_metadata, selection)
                plan.summary = self.summary()
                plan.summary["missing_frames"] = (
                    [layout.frame_name(i) for i in self.missing_frames()] if renumbering is None
                    else renumbering.missing_chunk_names(self.missing_frames()))
                plan.frame_rows = rows
        else:
            if any(x is not None for x in (channels, slices, times, positions)):
                raise InputError(f"dataset {self.id} is a file kept whole: it has no channels, "
                                 "slices, times or positions to select")
            plan = DownloadPlan(self.id, self._store(storage), is_frames=self.is_frames)
            if download:
                plan.objects = [(self.file["key"], self.file["file_name"])]
                plan.checksums = {self.file["file_name"]: (self.file.get("sha256"), "bytes")}
            if metadata:
                plan.summary = self.summary()
        return write_download(plan, dest, workers=workers, progress=progress, resume=resume)

    def _frame_metadata(self, selection: Selection) -> Iterator[tuple[int, int, int, int, Any]]:
        """(channel, slice, time, position, metadata) of the selected frames, in index order."""
        with self._site.connection() as conn:
            for row in dbq.select_frames(conn, self._frames_global.id, with_metadata=True,
                                         **selection.as_filters()):
                yield row.channel_idx, row.slice_idx, row.time_idx, row.pos_idx, row.metadata_json

    def _png_pixel_hash(self, data: bytes) -> str:
        """The sha256 of the pixels of a PNG frame of this dataset (ValueError if it is none)."""
        import numpy as np

        from .codecs import frame_codec, pixel_sha256

        dims = self.dims
        shape = (dims.im_height, dims.im_width) + ((dims.im_colors,) if dims.im_colors > 1 else ())
        out = np.empty(shape, np.dtype(dims.bit_depth))
        frame_codec(layout.PNG).decode_into(data, out, check=True)
        return pixel_sha256(out)

    def export(
        self,
        dest: Union[str, os.PathLike],
        *,
        to: str = "ome-zarr",
        channels: Optional[Sequence[ChannelSelector]] = None,
        slices: Optional[Iterable[int]] = None,
        times: Optional[Iterable[int]] = None,
        positions: Optional[Iterable[int]] = None,
        workers: Optional[int] = None,
        progress: Any = None,
        storage: Optional[str] = None,
    ) -> Path:
        """Write the frames asked for (all by default) at ``dest`` as an OME-Zarr store
        (``to="ome-zarr"``, a folder) or an OME-TIFF file (``to="ome-tiff"``, one series per
        position), from either layout, streamed frame by frame; see :mod:`imagingdb.export`.
        Returns ``dest``, which appears complete or not at all; an existing one is refused.
        Frames an incomplete acquisition never recorded are zeros, and a
        :class:`imagingdb.errors.MissingFramesWarning` says how many."""
        from .export import check_destination, check_format
        from .export import export as write_export

        dest = Path(dest)
        check_format(to)
        self._require_frames()
        check_destination(dest)
        selection = self.select(channels, slices, times, positions)
        source = self._export_source(selection, self._frame_rows(selection, with_metadata=False),
                                     storage)
        return write_export(source, dest, to, workers=workers, progress=progress)

    def _export_source(self, selection: Selection, rows: Sequence[Any],
                       storage: Optional[str] = None) -> "ExportSource":
        """What :mod:`imagingdb.export` reads of this dataset's ``selection``."""
        from .export import ExportSource

        return ExportSource(self.id, self._store(storage), self.storage_dir, self.frame_format,
                            self.dims, selection, rows, self.channel_names(), self.global_meta)


    # ------------------------------------------- lazy access (imagingdb.analysis)

    def _frame_source(self, storage: Optional[str] = None) -> "FrameSource":
        from functools import partial

        from .analysis import FrameSource
        from .site import open_storage

        backend = self._store(storage)
        name = self._read_from[storage]
        return FrameSource(self.id, self.storage_dir, self.dims, self.frame_format,
                           backend, partial(open_storage, self._site.store_settings(name)))

    def to_dask(
        self,
        channels: Optional[Sequence[ChannelSelector]] = None,
        slices: Optional[Iterable[int]] = None,
        times: Optional[Iterable[int]] = None,
        positions: Optional[Iterable[int]] = None,
        *,
        fill_value: int = 0,
        verify: bool = False,
        storage: Optional[str] = None,
    ) -> "dask.array.Array":
        """The frames :meth:`read` would return, as a lazy dask array of the same shape, type
        and axes: one chunk per frame, read from storage only when computed (so a dataset
        larger than memory can be sliced, reduced or saved chunk by chunk). Missing frames
        are chunks of ``fill_value``, with a MissingFramesWarning now.
        Needs the ``analysis`` extra (dask)."""
        from .analysis import frame_array, require

        require("dask.array", "to_dask")  # before any query: the error is about installing
        selection = self.select(channels, slices, times, positions)
        rows = self._frame_rows(selection, with_metadata=False)
        return frame_array(self._frame_source(storage), rows, selection, fill_value=fill_value,
                           verify=verify)

    def to_xarray(
        self,
        channels: Optional[Sequence[ChannelSelector]] = None,
        slices: Optional[Iterable[int]] = None,
        times: Optional[Iterable[int]] = None,
        positions: Optional[Iterable[int]] = None,
        *,
        fill_value: int = 0,
        verify: bool = False,
        storage: Optional[str] = None,
    ) -> "xarray.DataArray":
        """:meth:`to_dask` labelled: dims P, T, C, Z, Y, X (+ S, an RGB frame's colours),
        channel names on C, the indexes on P (and as pos_idx, time_idx, slice_idx), physical
        coordinates on X, Y, Z, T where the metadata records a calibration (else indexes).
        Needs the ``analysis`` extra (xarray, dask)."""
        from .analysis import frame_data_array, require

        require("xarray", "to_xarray")
        require("dask.array", "to_xarray")
        selection = self.select(channels, slices, times, positions)
        rows = self._frame_rows(selection, with_metadata=False)
        return frame_data_array(self._frame_source(storage), rows, selection, self.channel_names(),
                                self.global_meta, fill_value=fill_value, verify=verify)

    def frames_table(
        self,
        channels: Optional[Sequence[ChannelSelector]] = None,
        slices: Optional[Iterable[int]] = None,
        times: Optional[Iterable[int]] = None,
        positions: Optional[Iterable[int]] = None,
    ) -> "pandas.DataFrame":
        """:meth:`frames` as a pandas DataFrame, one row per frame, each frame metadata key
        a column (nested keys joined by '.'). Needs the ``analysis`` extra (pandas)."""
        from .analysis import frames_table, require

        require("pandas", "frames_table")
        selection = self.select(channels, slices, times, positions)
        return frames_table(self._frame_rows(selection, with_metadata=True))


def _frame_dict(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data.pop("id", None)
    data.pop("frames_global_id", None)
    return data


def _resolve_channels(
    dataset_id: str,
    wanted: Optional[Sequence[ChannelSelector]],
    names: dict[int, str],
    present: list[int],
) -> list[int]:
    if wanted is None:
        return list(present)
    if isinstance(wanted, (str, int)):
        wanted = [wanted]
    by_name = {name: idx for idx, name in names.items() if name is not None}
    available = ", ".join(f"{names.get(i) or '?'} ({i})" for i in present)
    result = []
    for item in wanted:
        if isinstance(item, str) and item.strip().isdigit() and item not in by_name:
            item = int(item)
        if isinstance(item, str):
            if item not in by_name:
                raise NotFoundError(
                    f"dataset {dataset_id} has no channel {item!r}; it has: {available}"
                )
            idx = by_name[item]
        else:
            idx = int(item)
            if idx not in present:
                raise NotFoundError(
                    f"dataset {dataset_id} has no channel index {idx}; it has: {available}"
                )
        if idx not in result:
            result.append(idx)
    return result


def _resolve_indexes(
    dataset_id: str, what: str, wanted: Optional[Iterable[int]], present: list[int]
) -> list[int]:
    """The indexes asked for, each checked to be one the dataset has.

    ``wanted`` may hold ``range`` objects (the CLI's ``-z 0-9``), or be one: a range is
    checked against the recorded indexes before it is walked, so ``0-999999999`` is refused
    at once, naming the range and what the dataset has, instead of being listed first.
    """
    if wanted is None:
        return list(present)
    if isinstance(wanted, (int, range)):
        wanted = [wanted]
    have = set(present)
    result: dict[int, None] = {}  # ordered, and a membership test that stays fast
    for item in wanted:
        if isinstance(item, range):
            result.update(dict.fromkeys(_checked_range(dataset_id, what, item, have, present)))
            continue
        try:
            idx = int(item)
        except (TypeError, ValueError):
            raise InputError(f"invalid {what} index {item!r}: expected an integer") from None
        if idx not in have:
            raise NotFoundError(
                f"dataset {dataset_id} has no {what} index {idx}; it has: {_ranges(present)}"
            )
        result[idx] = None
    return list(result)


def _checked_range(dataset_id: str, what: str, wanted: range, have: set[int],
                   present: list[int]) -> range:
    """``wanted`` if the dataset has every index in it, else a NotFoundError naming it.

    At most ``len(present) + 1`` of its indexes are looked at: a longer range must hold
    one the dataset lacks among them.
    """
    lacking = next((i for i in itertools.islice(wanted, len(present) + 1) if i not in have), None)
    if lacking is None:
        return wanted
    shown = f"{wanted.start}-{wanted.stop - 1}" if wanted.step == 1 else str(wanted)
    raise NotFoundError(f"dataset {dataset_id} has no {what} index {lacking} (of the range "
                        f"{shown} asked for); it has: {_ranges(present)}")


def _ranges(values: list[int]) -> str:
    """[0,1,2,5] -> '0-2, 5'."""
    if not values:
        return "none"
    parts, start, prev = [], values[0], values[0]
    for v in values[1:] + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)
