"""``upload --plan``: what an upload would do, row by row, with nothing written anywhere.

Each CSV row goes the upload's own way as far as it goes without writing: the
same rows and config checks, the same splitter opening the source, the same
metadata pass and dimension checks (:class:`imagingdb.upload.RowUpload`), so a
row the upload would refuse is refused here with the same reason. Then a few
frames spread over the acquisition are read, encoded with the real codec and
hashed on the upload's worker count, timed: the stored size and the time are
extrapolated from them. The store is only read (its dataset folders listed),
the database only read, through an engine that cannot write
(:class:`ReadOnlySite`); no claim is taken.

What the estimate of time covers: the metadata pass (timed here in full), and
reading, encoding and hashing every frame at the sample's rate. Writes to a
local store are not measured (that would write): they are counted at the rate
the kernel's counters give for its disk, at the same time as the frames (the
store syncs in the background while later frames are encoded); for S3 each
request is counted at the round-trip time of a read request measured here,
bandwidth not.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import os
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional

import sqlalchemy as sa

from . import layout
from .acquisition import Acquisition, Frame, FrameIndex, describe_missing
from .codecs import FrameCodec
from .config import DEFAULT_PRICES, DatabaseSettings, SiteConfig, UploadConfig
from .errors import ImagingDBError, InputError, WorkError
from .progress import Progress
from .provenance import FRAMES_PREFIX
from .site import Site
from .storage import validate_object_name
from .terminal import human_size
from .upload import RowUpload, Uploader, ZarrStoreBuilder, read_upload
from .upload_rows import RefusedRow, UploadRow

if TYPE_CHECKING:
    from .storage import StorageBackend

#: frames encoded for the estimate: at least this many (or all)...
SAMPLE_FRAMES = 16
#: ...and at most this many, and at most this many bytes of pixels held at once
SAMPLE_MAX_FRAMES = 32
SAMPLE_MAX_BYTES = 128 << 20
#: bytes of a file kept whole read and hashed to time it
FILE_SAMPLE_BYTES = 64 << 20
GIB = 1 << 30


# ------------------------------------------------------------------ the database


class ReadOnlySite(Site):
    """The site as a plan sees it: its stores, and its database through an engine that
    cannot write. A database that does not exist yet (or is empty) is read as the empty
    one the upload would create; one the upload would upgrade first, as its upgraded copy
    in memory. :attr:`database_note` says which."""

    def __init__(self, config: SiteConfig):
        super().__init__(config)
        self.database_note: Optional[str] = None
        self._reading: Optional[sa.Engine] = None

    @property
    def engine(self) -> sa.Engine:
        if self._reading is None:
            with self.database_errors():
                self._reading = self._open_for_reading()
        return self._reading

    @property
    def unchecked_engine(self) -> sa.Engine:
        return self.engine

    @contextlib.contextmanager
    def connection(self, write: bool = False) -> Iterator[sa.Connection]:
        if write:
            raise WorkError("upload --plan writes nothing to the database")
        engine = self.engine
        with self.database_errors():
            with engine.begin() as conn:
                yield conn

    def close(self) -> None:
        if self._reading is not None:
            self._reading.dispose()
            self._reading = None
        super().close()

    def _open_for_reading(self) -> sa.Engine:
        from . import db as dbq
        from .db.schema_check import ensure_current

        settings = self.config.database
        path = _sqlite_path(settings)
        if path is not None and not path.exists():
            self.database_note = f"the database {path} does not exist yet: the upload creates it"
            return _empty_database()
        engine = dbq.create_engine(settings, read_only=True)
        with engine.connect() as conn:
            version = dbq.detect_version(conn)
        if version == dbq.SCHEMA_VERSION:
            return engine
        if version is None:
            engine.dispose()
            self.database_note = "the database is empty: the upload creates its schema"
            return _empty_database()
        if path is None:  # PostgreSQL: never upgraded by an upload; says why not
            ensure_current(engine, auto_upgrade=False)
            return engine
        copy = _in_memory_copy(engine)
        engine.dispose()
        ensure_current(copy, auto_upgrade=self.config.is_embedded_default)
        self.database_note = (f"the database has schema version {version}: the upload upgrades "
                              f"it to {dbq.SCHEMA_VERSION} first")
        return copy


def _sqlite_path(settings: DatabaseSettings) -> Optional[Path]:
    """The SQLite database file (None: not SQLite); an in-memory one has none to find."""
    if not settings.url.startswith("sqlite"):
        return None
    database = sa.make_url(settings.url).database
    if not database or database == ":memory:":
        return Path(os.devnull, "in-memory")  # never exists: read as the empty database
    return Path(database).expanduser()


def _empty_database() -> sa.Engine:
    """An in-memory database with the schema: what the upload would see once it made one."""
    from . import db as dbq
    from .db import migrate

    engine = dbq.create_engine(DatabaseSettings(url="sqlite://"))
    migrate.upgrade(engine)
    return engine


def _in_memory_copy(engine: sa.Engine) -> sa.Engine:
    """A copy in memory of the SQLite database ``engine`` reads (SQLite's backup API)."""
    from . import db as dbq

    copy = dbq.create_engine(DatabaseSettings(url="sqlite://"))
    source, target = engine.raw_connection(), copy.raw_connection()
    try:
        source.driver_connection.backup(target.driver_connection)
    finally:
        source.close()
        target.close()
    return copy


# ------------------------------------------------------------------- the figures


@dataclass
class Requests:
    """S3 requests by price class: PUT (PUT, POST, COPY), GET (GET, HEAD), LIST, DELETE."""

    put: int = 0
    get: int = 0
    list: int = 0
    delete: int = 0

    def add(self, other: "Requests") -> None:
        self.put += other.put
        self.get += other.get
        self.list += other.list
        self.delete += other.delete

    def cost(self, prices: Mapping[str, Any]) -> float:
        return (self.put * prices["put_per_1000"] + self.get * prices["get_per_1000"]
                + self.list * prices["list_per_1000"]
                + self.delete * prices["delete_per_1000"]) / 1000

    def to_json(self) -> dict[str, int]:
        return {"put": self.put, "get": self.get, "list": self.list, "delete": self.delete}


@dataclass
class RowPlan:
    """What the upload would do with one CSV row, and what it would cost."""

    line: int
    dataset_id: str
    ok: bool = True
    error: Optional[str] = None
    exit_code: int = 0
    #: upload (a new dataset), replace (--overwrite), skip (registered already), fail
    action: str = "upload"
    source: str = ""
    upload_type: str = ""
    format: Optional[str] = None
    kind: Optional[str] = None
    frame_format: Optional[str] = None
    frames: int = 0
    grid: int = 0
    dims: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # the groups of missing frames
    source_bytes: int = 0  # the source's size on disk
    read_bytes: int = 0  # bytes of pixels (frames) or of the file read
    stored_bytes: int = 0
    stored_objects: int = 0
    sample_frames: int = 0
    ratio: Optional[float] = None  # stored / pixel bytes of the sample
    seconds: float = 0.0
    seconds_parts: dict[str, float] = field(default_factory=dict)
    #: the sample's seconds a frame: reading, hashing, encoding on the workers, their CPU time
    sample: dict[str, float] = field(default_factory=dict)
    folder: Optional[str] = None
    #: requests the row makes of each S3 store (store name -> counts)
    requests: dict[str, Requests] = field(default_factory=dict)
    cost: Optional[float] = None  # requests + one month of what it stores
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, error: str, exit_code: int) -> None:
        self.ok, self.error, self.exit_code, self.action = False, error, exit_code, "fail"

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.line, "dataset_id": self.dataset_id, "ok": self.ok,
            "action": self.action, "error": self.error, "source": self.source,
            "upload_type": self.upload_type, "format": self.format, "kind": self.kind,
            "frame_format": self.frame_format, "frames": self.frames, "grid": self.grid,
            "missing_frames": max(0, self.grid - self.frames) if self.grid else 0,
            "missing": self.missing, "dims": self.dims, "source_bytes": self.source_bytes,
            "read_bytes": self.read_bytes, "stored_bytes": self.stored_bytes,
            "stored_objects": self.stored_objects, "sample_frames": self.sample_frames,
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "seconds": round(self.seconds, 3),
            "seconds_parts": {k: round(v, 3) for k, v in self.seconds_parts.items()},
            "sample": self.sample,
            "folder": self.folder,
            "requests": {name: counts.to_json() for name, counts in self.requests.items()},
            "cost": None if self.cost is None else round(self.cost, 6),
            "warnings": self.warnings, "notes": self.notes,
        }


@dataclass
class StorePlan:
    """One store the upload writes to, as the plan found it."""

    name: str
    backend: str
    where: str
    prices: Optional[dict[str, Any]] = None  # None: no cost estimate (a local store)
    prices_configured: bool = False
    #: the requests of the run's storage check (once, before the first row)
    setup: Requests = field(default_factory=Requests)
    #: seconds of the first request (the client made, connected) and of one more (S3)
    connect_seconds: float = 0.0
    round_trip: Optional[float] = None
    #: bytes a second the disk under a local store moves while busy, from the kernel's
    #: counters (read, not written: Linux's /proc/diskstats); None: not known
    disk_rate: Optional[float] = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "where": self.where,
                "prices": self.prices, "prices_configured": self.prices_configured,
                "setup_requests": self.setup.to_json(),
                "connect_seconds": round(self.connect_seconds, 4),
                "round_trip_seconds": None if self.round_trip is None else round(self.round_trip, 4),
                "disk_bytes_per_second": None if self.disk_rate is None else round(self.disk_rate),
                "notes": self.notes}


@dataclass
class UploadPlan:
    csv: str
    database: str
    workers: int = 0
    #: the upload command's start-up, as this process took it (0: not a command's plan)
    startup_seconds: float = 0.0
    database_note: Optional[str] = None
    stores: list[StorePlan] = field(default_factory=list)
    rows: list[RowPlan] = field(default_factory=list)
    setup_error: Optional[str] = None

    @property
    def connect_seconds(self) -> float:
        """The stores' first requests, once a run (none without a row to plan)."""
        if not any(r.ok for r in self.rows):
            return 0.0
        return sum(store.connect_seconds for store in self.stores)

    @property
    def exit_code(self) -> int:
        """0: every row can be uploaded (or is there already); 1: a row would fail."""
        return 0 if all(r.ok for r in self.rows) else 1

    def requests(self) -> dict[str, Requests]:
        """Every request of the run, by S3 store: its check once, then every row's."""
        total: dict[str, Requests] = {}
        planned = [r for r in self.rows if r.ok]
        for store in self.stores:
            if store.prices is None or store.backend != "s3":
                continue
            counts = Requests()
            if planned:
                counts.add(store.setup)
            for row in planned:
                if store.name in row.requests:
                    counts.add(row.requests[store.name])
            total[store.name] = counts
        return total

    def totals(self) -> dict[str, Any]:
        planned = [r for r in self.rows if r.ok]
        requests = self.requests()
        cost = None
        priced = [s for s in self.stores if s.prices is not None]
        if priced:
            cost = 0.0
            for store in priced:
                if store.name in requests:
                    cost += requests[store.name].cost(store.prices)
                stored = sum(r.stored_bytes for r in planned)
                cost += stored / GIB * store.prices["storage_gb_month"]
        return {
            "rows": len(self.rows), "ok": len(planned), "failed": len(self.rows) - len(planned),
            "frames": sum(r.frames for r in planned),
            "read_bytes": sum(r.read_bytes for r in planned),
            "stored_bytes": sum(r.stored_bytes for r in planned),
            "stored_objects": sum(r.stored_objects for r in planned),
            "seconds": round(self.startup_seconds + self.connect_seconds
                             + sum(r.seconds for r in planned), 3),
            "startup_seconds": round(self.startup_seconds, 3),
            "connect_seconds": round(self.connect_seconds, 3),
            "requests": {name: counts.to_json() for name, counts in requests.items()},
            "cost": None if cost is None else round(cost, 6),
            "currency": priced[0].prices["currency"] if priced else None,
        }

    def to_json(self) -> dict[str, Any]:
        return {"csv": self.csv, "database": self.database, "database_note": self.database_note,
                "workers": self.workers, "stores": [s.to_json() for s in self.stores],
                "rows": [r.to_json() for r in self.rows], "totals": self.totals(),
                "time_covers": TIME_COVERS}


TIME_COVERS = ("start-up, opening and the metadata pass as this plan took them; reading, "
               "encoding and hashing every frame at the sample's rate on the upload's "
               "workers; a local store's writes at its disk's rate so far (from the kernel's "
               "counters, nothing written), at the same time as the frames; S3 requests at "
               "the round-trip time of a read; not the registration, nor S3's bandwidth")

#: parts of a row's time that run at the same time: the disk writes the frames the workers
#: stored while later frames are encoded (the local store's background sync), so the slower
#: of the two is the time they take
ALONGSIDE = ("frames", "disk writes")


def total_seconds(parts: Mapping[str, float]) -> float:
    """A row's estimated seconds from its parts: those in ALONGSIDE overlap, the rest add."""
    together = [seconds for name, seconds in parts.items() if name in ALONGSIDE]
    return sum(seconds for name, seconds in parts.items() if name not in ALONGSIDE) + max(
        together, default=0.0)


# ------------------------------------------------------------------------ the run


def plan_csv(site: Site, csv_path: Path, config_path: Path, *, overwrite: bool = False,
             workers: Optional[int] = None, annotate: Optional[Mapping[str, str]] = None,
             encoding: Optional[str] = None, replicate: bool = False,
             startup_seconds: float = 0.0) -> UploadPlan:
    """What ``upload_csv`` with these arguments would do, with nothing written anywhere.
    Bad files (the CSV, the upload config) raise InputError as the upload does.
    ``startup_seconds``: what the command's start-up took so far (:func:`process_age`),
    counted in the total time as the upload's own start-up."""
    config, rows = read_upload(csv_path, config_path, annotate, encoding)
    with ReadOnlySite(site.config) as reading:
        plan = UploadPlan(str(csv_path), reading.database_url, startup_seconds=startup_seconds)
        planner = _Planner(reading, config, plan, overwrite=overwrite, workers=workers,
                           replicate=replicate)
        for row in rows:
            if isinstance(row, RefusedRow):
                row_plan = RowPlan(row.line, row.dataset_id)
                row_plan.fail(row.error, row.exit_code)
            else:
                row_plan = planner.plan_row(row)
            plan.rows.append(row_plan)
        plan.database_note = reading.database_note
    return plan


class _Planner:
    def __init__(self, site: ReadOnlySite, config: UploadConfig, plan: UploadPlan, *,
                 overwrite: bool, workers: Optional[int], replicate: bool):
        self.site = site
        self.config = config
        self.plan = plan
        self.uploader = Uploader(site, config, overwrite=overwrite, workers=workers,
                                 progress=Progress(), replicate=replicate)
        self._setup_error: Optional[ImagingDBError] = None
        self._ready = False
        self._stores: list[tuple[StorePlan, "StorageBackend"]] = []

    # -- once ------------------------------------------------------------------

    def _setup(self) -> None:
        """The upload's setup without its write check; the stores checked by reading."""
        if self._setup_error is not None:
            raise self._setup_error
        if self._ready:
            return
        try:
            self.uploader.resolve(check_storage=False)
            self.plan.workers = self.uploader.workers
            storage = self.uploader.storage
            stores = getattr(storage, "stores", [storage])  # --replicate: every store
            names = self.uploader.store_names
            for number, store in enumerate(stores):
                name = names[number] if number < len(names) else store.name
                self._stores.append((self._check_store(name, store), store))
            self.plan.stores = [plan for plan, _ in self._stores]
            self._ready = True
        except ImagingDBError as exc:
            self._setup_error = exc
            raise

    def _check_store(self, name: str, store: "StorageBackend") -> StorePlan:
        from .storage.local import LocalStorage

        settings = self.site.config.stores.get(name)
        configured = settings.prices if settings is not None else None
        plan = StorePlan(name, store.name, store.describe(), prices_configured=bool(configured))
        if store.name == "s3" or configured:
            plan.prices = dict(configured or DEFAULT_PRICES)
        if isinstance(store, LocalStorage):
            _check_local_root(store.root, plan)
            plan.disk_rate = disk_rate(store.root)
            if plan.disk_rate is None:
                plan.notes.append("the disk's speed is not known here: writing is not in the "
                                  "time")
            return plan
        started = time.perf_counter()
        store.check()  # the first request also makes the client, as the upload's check does
        plan.connect_seconds = time.perf_counter() - started
        started = time.perf_counter()
        store.check()
        plan.round_trip = time.perf_counter() - started
        if store.name == "s3":
            plan.setup = Requests(put=1, get=1, delete=1)  # the bucket, a probe put and removed
            plan.notes.append("write permission not checked (that takes a write)")
        return plan

    # -- a row -----------------------------------------------------------------

    def plan_row(self, row: UploadRow) -> RowPlan:
        self._row_started = time.perf_counter()
        upload = RowUpload(self.uploader, row)
        plan = RowPlan(row.line, row.dataset_id, source=str(row.source),
                       upload_type=self.config.upload_type)
        where = f"{row.csv_name} row {row.line} ({row.dataset_id})".lstrip()
        try:
            self._setup()
            existing = upload.check_before_work()
            if upload.replacing:
                plan.action = "replace" if existing is None else "skip"
            if self.config.upload_type == "file":
                self._plan_file(upload, plan, existing)
            else:
                self._plan_frames(upload, plan, existing)
            if plan.action != "skip":
                self._plan_requests(upload, plan)
        except ImagingDBError as exc:
            plan.fail(f"{where}: {exc}", exc.exit_code)
        plan.warnings = list(upload.notes["warnings"])
        plan.format = upload.notes.get("format")
        plan.kind = upload.notes.get("kind")
        return plan

    def _plan_file(self, upload: RowUpload, plan: RowPlan, existing: Optional[sa.Row]) -> None:
        source = upload.row.source
        if not source.is_file():
            raise InputError(f"{source} is not a file (upload_type: file takes one file)")
        validate_object_name(source.name)
        if self.config.frame_format:
            upload.notes["warnings"].append(
                f"frame_format: {self.config.frame_format} has no effect with upload_type: "
                "file (the file is kept whole, as it is)")
        size = source.stat().st_size
        plan.frames = 1
        plan.source_bytes = plan.read_bytes = size
        opened = time.perf_counter() - self._row_started  # the sample hash is not the opening
        hash_seconds = _time_file_hash(source) * size
        if existing is not None:
            self._refuse_or_skip(upload, plan, existing, size)
            plan.seconds_parts = {"content check": hash_seconds}
            plan.seconds = hash_seconds
            return
        plan.stored_bytes, plan.stored_objects = size, 1
        plan.seconds_parts = {"open and check": opened, "read and hash": hash_seconds}
        plan.seconds = total_seconds(plan.seconds_parts)

    def _plan_frames(self, upload: RowUpload, plan: RowPlan, existing: Optional[sa.Row]) -> None:
        frame_format, codec = upload.frame_layout()
        plan.frame_format = frame_format
        with upload.open_source() as acquisition:
            present = _Present()
            started = time.perf_counter()
            count = upload.check_frames(acquisition, codec, on_frame=present.add)
            metadata_seconds = time.perf_counter() - started
            opened = time.perf_counter() - self._row_started
            dims = acquisition.dims
            plan.frames = count
            plan.grid = (dims.nbr_channels * dims.nbr_slices * dims.nbr_timepoints
                         * dims.nbr_positions)
            plan.dims = {"channels": dims.nbr_channels, "slices": dims.nbr_slices,
                         "times": dims.nbr_timepoints, "positions": dims.nbr_positions,
                         "height": dims.im_height, "width": dims.im_width,
                         "colors": dims.im_colors, "dtype": dims.bit_depth,
                         "channel_names": list(acquisition.channel_names),
                         "position_indexes": sorted(present.axes["p"])}
            if count < plan.grid:
                plan.missing = present.missing(dims)
            frame_bytes = dims.im_height * dims.im_width * dims.im_colors * _itemsize(dims.bit_depth)
            plan.read_bytes = count * frame_bytes
            plan.source_bytes = _size_on_disk(upload.row.source)
            sample = self._sample(acquisition, codec, count, frame_bytes, metadata_seconds)
            plan.sample_frames = sample.frames
            plan.ratio = sample.ratio
            if existing is not None:
                self._refuse_or_skip(upload, plan, existing, count)
                check = opened + count * (sample.read + sample.hash)
                plan.seconds_parts = {"content check": check}
                plan.seconds = check
                return
            plan.stored_bytes = round(sample.ratio * plan.read_bytes)
            plan.stored_objects = count
            if frame_format == layout.OME_ZARR:
                documents = self._zarr_documents(upload, acquisition, present, sample)
                plan.stored_objects += len(documents)
                plan.stored_bytes += sum(len(d) for d in documents.values())
            plan.sample = sample.to_json()
            plan.seconds_parts = {
                "open and check": opened + sample.first,
                "frames": count * sample.per_frame(self.uploader.workers),
            }
        plan.seconds = total_seconds(plan.seconds_parts)

    def _refuse_or_skip(self, upload: RowUpload, plan: RowPlan, existing: sa.Row,
                        size: int) -> None:
        """A registered dataset and no --overwrite: what tells, without reading every pixel,
        that the upload would refuse the row; else it skips it if the content is the same."""
        row = upload.row
        registered = upload.registered_content(existing)
        other = InputError(f"dataset {row.dataset_id} already exists with other content than "
                           f"{row.source}; use --overwrite to replace it, or another dataset ID")
        is_frames = self.config.upload_type == "frames"
        if registered is None or bool(existing.frames) != is_frames:
            raise other
        if is_frames and registered.startswith(FRAMES_PREFIX) and \
                int(registered.split(":")[1]) != size:
            raise other
        if not is_frames and existing.stored_bytes is not None and existing.stored_bytes != size:
            raise other
        changed = upload.changed_fields(existing)
        if changed:
            raise InputError(f"dataset {row.dataset_id} is already uploaded, and the CSV row or "
                             f"config gives another {', '.join(changed)}: the upload refuses "
                             f"it; change it with imagingdb edit {row.dataset_id}, or replace "
                             "the dataset with --overwrite")
        plan.notes.append("registered already: the upload skips it if its content is the same "
                          "(it reads every pixel to check), else refuses it (--overwrite "
                          "replaces it)")

    # -- the sample ------------------------------------------------------------

    def _sample(self, acquisition: Acquisition, codec: FrameCodec, count: int,
                frame_bytes: int, metadata_seconds: float) -> "_Sample":
        """Read, encode and hash a few frames spread over the acquisition, timed."""
        workers = self.uploader.workers
        wanted = max(SAMPLE_FRAMES, 2 * workers)
        wanted = min(count, wanted, SAMPLE_MAX_FRAMES, max(1, SAMPLE_MAX_BYTES // max(frame_bytes, 1)))
        if acquisition.samples_anywhere:
            numbers = sorted({round(i * (count - 1) / max(wanted - 1, 1)) for i in range(wanted)})
        else:
            numbers = list(range(wanted))
        started = time.perf_counter()
        frames = list(acquisition.sample_frames(numbers))
        walked = numbers[-1] + 1 if numbers else 0
        reading = time.perf_counter() - started - walked * metadata_seconds / max(count, 1)
        if not frames:
            raise WorkError(f"{acquisition.kind or 'the source'}: no frame could be read")
        started = time.perf_counter()
        codec.encode(frames[0].pixels)  # the codec's first call imports its library
        first = time.perf_counter() - started
        measure = self._qc_measure(frames[0]) if self.uploader.config.qc else None
        started = time.perf_counter()
        for frame in frames:
            codec.pixel_hash(frame.pixels)
            if measure is not None:
                measure(frame)
        hashing = time.perf_counter() - started
        def encode(frame: Frame) -> tuple[int, float]:
            """The frame's stored bytes, and the CPU seconds its worker spent on it."""
            started = time.thread_time()
            data = codec.encode(frame.pixels)
            nbytes = memoryview(data).nbytes
            codec.pixel_hash(frame.pixels)
            if measure is not None:
                measure(frame)
            return nbytes, time.thread_time() - started

        with cf.ThreadPoolExecutor(workers, thread_name_prefix="imagingdb-plan") as pool:
            # Each thread's first frame makes its buffers, as in the upload's first frames.
            list(pool.map(encode, frames[:workers]))
            started = time.perf_counter()
            sizes, cpu = zip(*pool.map(encode, frames))
            encoding = time.perf_counter() - started
        pixel_bytes = sum(frame.pixels.nbytes for frame in frames)
        return _Sample(frames=len(frames), first=first, read=max(reading, 0.0) / len(frames),
                       hash=hashing / len(frames), encode=encoding / len(frames),
                       cpu=sum(cpu) / len(frames), ratio=sum(sizes) / max(pixel_bytes, 1),
                       pixels=frames)

    @staticmethod
    def _qc_measure(first: Frame) -> Any:
        """The work QC at ingest does on each frame in the upload's workers (imagingdb.qc),
        timed with the sample's encoding and hashing; the saturation level is the dtype's."""
        from .qc import level_of, pool_factor
        from .qc import measure as measure_frame

        pixels = first.pixels
        level = level_of(pixels.dtype.itemsize * 8) if pixels.dtype.kind == "u" else None
        factor = pool_factor(pixels.shape[0], pixels.shape[1])

        def measure(frame: Frame) -> None:
            measure_frame(frame.pixels, level, factor)

        return measure

    def _zarr_documents(self, upload: RowUpload, acquisition: Acquisition, present: "_Present",
                        sample: "_Sample") -> dict[str, bytes]:
        """The zarr.json documents the upload would write (windows from the sample's pixels)."""
        from .upload import json_safe

        builder = ZarrStoreBuilder(upload.row.dataset_id, acquisition.dims)
        for frame_row in present.rows():
            builder.saw(frame_row)
        for frame in sample.pixels:
            builder.windows.add(frame.index.channel, frame.pixels)
        return builder.documents(acquisition.channel_names, json_safe(acquisition.global_meta))

    # -- requests --------------------------------------------------------------

    def _plan_requests(self, upload: RowUpload, plan: RowPlan) -> None:
        """The folder it takes and, for each S3 store, the requests it makes: from what the
        dataset's folders hold now (listed: a read)."""
        from .storage.s3 import DELETE_BATCH, LIST_PAGE_SIZE

        row, storage = upload.row, self.uploader.storage
        is_frames = self.config.upload_type == "frames"
        held = {frames: sum(1 for _ in storage.list_keys(f"{layout.dataset_folder(row.dataset_id, frames)}/"))
                for frames in (True, False)}
        first = layout.dataset_folder(row.dataset_id, is_frames)
        generation = upload.replacing or held[is_frames] > 0
        plan.folder = (layout.generation_folder(row.dataset_id, is_frames, upload.token)
                       if generation else first)
        if generation and not upload.replacing:
            plan.notes.append(f"{first} holds {held[is_frames]} object(s) of an earlier attempt: "
                              "the upload writes a new generation folder and deletes them after "
                              "its commit")
        stale = held[True] + held[False]

        def pages(keys: int) -> int:
            return max(1, math.ceil(keys / LIST_PAGE_SIZE))

        for store_plan, store in self._stores:
            if store_plan.backend != "s3":
                continue
            counts = Requests()
            if not upload.replacing:
                counts.list += 1  # is the dataset folder taken?
                if not generation:
                    counts.put += 1  # the marker that takes it...
                    counts.delete += 1  # ...removed before the commit
            if is_frames:
                counts.put += plan.stored_objects
            else:
                counts.put += _file_requests(plan.read_bytes, store)
                if store is not self._stores[0][1]:
                    counts.get += 1  # --replicate copies the first store's object
            new = plan.stored_objects
            counts.list += pages(held[True] + (new if is_frames else 0))
            counts.list += pages(held[False] + (0 if is_frames else new))
            counts.delete += math.ceil(stale / DELETE_BATCH)
            plan.requests[store_plan.name] = counts
            if store_plan.round_trip is not None:
                workers = max(1, min(self.uploader.workers, store.transfer_workers or 1))
                plan.seconds_parts["S3 requests"] = plan.seconds_parts.get("S3 requests", 0.0) + (
                    (counts.put + counts.list + counts.delete) * store_plan.round_trip / workers)
        for store_plan, _ in self._stores:
            if store_plan.disk_rate:
                plan.seconds_parts["disk writes"] = plan.seconds_parts.get("disk writes", 0.0) + (
                    plan.stored_bytes / store_plan.disk_rate)
        plan.seconds = total_seconds(plan.seconds_parts)
        costs = [self._row_cost(plan, store_plan) for store_plan, _ in self._stores
                 if store_plan.prices is not None]
        plan.cost = sum(costs) if costs else None

    def _row_cost(self, plan: RowPlan, store: StorePlan) -> float:
        cost = plan.stored_bytes / GIB * store.prices["storage_gb_month"]
        if store.name in plan.requests:
            cost += plan.requests[store.name].cost(store.prices)
        return cost


@dataclass
class _Sample:
    frames: int
    first: float  # the codec's first call: its library's import, which the upload pays too
    read: float  # seconds a frame: reading its pixels
    hash: float  # hashing them, one thread
    encode: float  # encoding and hashing, on the upload's workers (wall time a frame)
    #: the workers' CPU time a frame doing it (their thread clocks, every sampled frame)
    cpu: float
    ratio: float  # stored bytes / pixel bytes
    pixels: list[Frame]

    def per_frame(self, workers: int) -> float:
        """Seconds a frame in the upload's pipeline: one thread reads while the workers
        encode and hash, so the slower of the two, unless the cores cannot run both."""
        cores = os.cpu_count() or 1
        return max(self.read, self.encode, (self.read + self.cpu) / min(cores, workers + 1))

    def to_json(self) -> dict[str, float]:
        return {"frames": self.frames, "read_seconds": round(self.read, 5),
                "hash_seconds": round(self.hash, 5), "encode_seconds": round(self.encode, 5),
                "cpu_seconds": round(self.cpu, 5)}


class _Present:
    """The frames the metadata pass found: their indexes, for the missing frames."""

    def __init__(self) -> None:
        self.indexes: set[tuple[int, int, int, int]] = set()
        self.names: dict[int, str] = {}
        self.axes: dict[str, set[int]] = {"c": set(), "z": set(), "t": set(), "p": set()}

    def add(self, frame: Frame) -> None:
        i = frame.index
        self.indexes.add((i.channel, i.slice, i.time, i.position))
        for axis, value in zip("cztp", (i.channel, i.slice, i.time, i.position)):
            self.axes[axis].add(value)
        if frame.channel_name:
            self.names.setdefault(i.channel, frame.channel_name)

    def rows(self) -> Iterator[dict[str, Any]]:
        """What a ZarrStoreBuilder sees of each frame."""
        for c, z, t, p in self.indexes:
            yield {"channel_idx": c, "slice_idx": z, "time_idx": t, "pos_idx": p,
                   "channel_name": self.names.get(c, "")}

    def missing(self, dims: Any) -> list[str]:
        """The missing frames in groups, as ``imagingdb show`` will list them: every axis's
        indexes the frames have, and as many more as the dimensions count."""
        counts = {"c": dims.nbr_channels, "z": dims.nbr_slices, "t": dims.nbr_timepoints,
                  "p": dims.nbr_positions}
        axes = {}
        for axis, have in self.axes.items():
            lacking = max(0, counts[axis] - len(have))
            axes[axis] = sorted([*have, *[i for i in range(counts[axis]) if i not in have][:lacking]])
        missing = [FrameIndex(c, z, t, p) for p in axes["p"] for t in axes["t"]
                   for c in axes["c"] for z in axes["z"] if (c, z, t, p) not in self.indexes]
        return describe_missing(missing, axes)


def disk_rate(folder: Path) -> Optional[float]:
    """Bytes a second the block device holding ``folder`` has moved while busy since the
    machine started (Linux's /proc/diskstats: sectors read and written over the time it
    was busy); None where that is not known (another system, a network or memory file
    system, a disk hardly used yet)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        device = os.stat(folder).st_dev
        wanted = (str(os.major(device)), str(os.minor(device)))
        with open("/proc/diskstats", encoding="ascii") as handle:
            for line in handle:
                fields = line.split()
                if tuple(fields[:2]) == wanted and len(fields) >= 13:
                    moved = (int(fields[5]) + int(fields[9])) * 512
                    busy = int(fields[12]) / 1000
                    return moved / busy if busy >= 10 and moved >= 1 << 30 else None
    except (OSError, ValueError):
        return None
    return None


#: a process older than this when it plans is no command starting (an API session, a test
#: runner): its age says nothing of an upload command's start-up
STARTUP_AT_MOST = 30.0


def process_age() -> float:
    """Seconds since this process started (Linux's /proc; elsewhere, or in a process older
    than STARTUP_AT_MOST, 0: not known)."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as handle:
            uptime = float(handle.read().split()[0])
        age = max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
        return age if age <= STARTUP_AT_MOST else 0.0
    except (OSError, ValueError, IndexError):
        return 0.0


def _check_local_root(root: Path, plan: StorePlan) -> None:
    """What the upload's write check of a local store would say, found by looking."""
    if root.is_dir():
        if not os.access(root, os.W_OK | os.X_OK):
            raise WorkError(f"storage folder {root} is not writable")
        return
    parent = root
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise WorkError(f"cannot create storage folder {root}: Permission denied")
    plan.notes.append(f"the storage folder {root} does not exist yet: the upload creates it")


def _file_requests(size: int, store: "StorageBackend") -> int:
    """PUT-class requests of one file put whole: one, or a multipart upload's parts + 2."""
    options = getattr(store, "options", {})
    threshold = int(options.get("multipart_threshold_mb", 16) * (1 << 20))
    chunk = int(options.get("multipart_chunksize_mb", 16) * (1 << 20))
    if size < threshold:
        return 1
    return math.ceil(size / chunk) + 2


def _time_file_hash(source: Path) -> float:
    """Seconds a byte to read and hash a file kept whole, from its first bytes."""
    import hashlib

    digest, done = hashlib.sha256(), 0
    started = time.perf_counter()
    with open(source, "rb") as handle:
        while done < FILE_SAMPLE_BYTES:
            chunk = handle.read(8 << 20)
            if not chunk:
                break
            digest.update(chunk)
            done += len(chunk)
    return (time.perf_counter() - started) / max(done, 1)


def _size_on_disk(source: Path) -> int:
    if source.is_file():
        return source.stat().st_size
    return sum(p.stat().st_size for p in source.rglob("*") if p.is_file())


def _itemsize(bit_depth: str) -> int:
    import numpy as np

    return np.dtype(bit_depth).itemsize


# ------------------------------------------------------------------------ as text


def _seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _money(amount: float, currency: str) -> str:
    return f"{amount:.4f} {currency}" if amount < 100 else f"{amount:,.2f} {currency}"


def _requests(counts: Requests) -> str:
    return f"{counts.put} PUT, {counts.get} GET, {counts.list} LIST, {counts.delete} DELETE"


ACTIONS = {"upload": "new dataset", "replace": "replaces the registered dataset (--overwrite)",
           "skip": "registered already", "fail": "would fail"}


def format_plan(plan: UploadPlan) -> list[str]:
    """The plan as lines for a terminal (80 columns, but for long paths)."""
    lines = [f"Plan (nothing written): {plan.csv} into {plan.database}"]
    for store in plan.stores:
        lines.append(f"  store {store.name}: {store.where}")
        lines += [f"    {note}" for note in store.notes]
    if plan.database_note:
        lines.append(f"  {plan.database_note}")
    if plan.workers:
        lines.append(f"  {plan.workers} worker thread(s)")
    currency = next((s.prices["currency"] for s in plan.stores if s.prices), "")
    for row in plan.rows:
        lines.append("")
        lines.append(f"row {row.line}  {row.dataset_id}: {ACTIONS[row.action]}")
        if not row.ok:
            lines.append("  (its Error: line says why)")
            continue
        lines += _row_lines(row, currency)
    totals = plan.totals()
    lines.append("")
    if plan.startup_seconds:
        lines.append(f"  start-up  ~{_seconds(plan.startup_seconds)} (as this command's took)")
    if plan.connect_seconds:
        lines.append(f"  connect   ~{_seconds(plan.connect_seconds)} (the stores' first request)")
    lines.append(f"Total: {totals['ok']} of {totals['rows']} row(s) can go in, "
                 f"~{_seconds(totals['seconds'])}: {totals['frames']} frame(s), "
                 f"{human_size(totals['read_bytes'])} read,")
    lines.append(f"  ~{human_size(totals['stored_bytes'])} stored in {totals['stored_objects']} "
                 "object(s)")
    for name, counts in totals["requests"].items():
        lines.append(f"  {name}: {_requests(counts_of(counts))} (with the run's storage check)")
    if totals["cost"] is not None:
        lines.append(f"  cost ~{_money(totals['cost'], currency)}: the requests and one month "
                     "of what is stored")
    for store in plan.stores:
        if store.prices is not None:
            where = ("the site config's storage prices" if store.prices_configured else
                     "AWS us-east-1 S3 Standard list prices (defaults; set prices: in the site "
                     "config's store)")
            lines.append(f"  prices of {store.name}: {where}")
    lines += textwrap.wrap(f"time covers {TIME_COVERS}", 78, initial_indent="  ",
                           subsequent_indent="    ")
    return lines


def counts_of(counts: Mapping[str, int]) -> Requests:
    return Requests(counts["put"], counts["get"], counts["list"], counts["delete"])


def _row_lines(row: RowPlan, currency: str) -> list[str]:
    lines = [f"  source    {row.source}"]
    if row.kind or row.format:
        lines.append(f"  read as   {row.kind or ''} ({row.format})".replace("  (", " ("))
    if row.upload_type == "frames" and row.dims:
        d = row.dims
        pixels = f"{d['height']} x {d['width']}" + (f" x {d['colors']}" if d["colors"] > 1 else "")
        lines.append(f"  frames    {row.frames} of {row.grid}: C{d['channels']} Z{d['slices']} "
                     f"T{d['times']} P{d['positions']}, {pixels} {d['dtype']}")
        missing = "; ".join(row.missing[:3]) + ("; ..." if len(row.missing) > 3 else "")
        lines.append(f"  missing   {row.grid - row.frames} {('(' + missing + ')') if missing else ''}"
                     .rstrip())
        lines.append(f"  read      {human_size(row.read_bytes)} of pixels ({human_size(row.source_bytes)} "
                     "on disk)")
    else:
        lines.append(f"  read      {human_size(row.read_bytes)} (the file, kept whole)")
    if row.action != "skip":
        how = (f"{row.frame_format}: {row.ratio:.2f} x pixels, {row.sample_frames} frames "
               "sampled" if row.ratio is not None else "the file as it is")
        lines.append(f"  stored    ~{human_size(row.stored_bytes)} in {row.stored_objects} object(s) "
                     f"({how})")
        if row.folder:
            lines.append(f"  folder    {row.folder}")
    # The disk writes beside the frames go on a line of their own: they do not add.
    overlap = all(name in row.seconds_parts for name in ALONGSIDE)
    parts = ", ".join(f"{name} {_seconds(value)}" for name, value in row.seconds_parts.items()
                      if not (overlap and name == ALONGSIDE[1]))
    lines.append(f"  time      ~{_seconds(row.seconds)} ({parts})")
    if overlap:
        lines.append(f"            {ALONGSIDE[1]} {_seconds(row.seconds_parts[ALONGSIDE[1]])}, "
                     "while the frames are encoded")
    for name, counts in row.requests.items():
        lines.append(f"  {name:<9} {_requests(counts)}")
    if row.cost is not None:
        lines.append(f"  cost      ~{_money(row.cost, currency)} (requests, and a month stored)")
    lines += [f"  note      {note}" for note in row.notes]
    lines += [f"  warning   {warning}" for warning in row.warnings]
    return lines
