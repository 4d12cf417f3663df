"""Upload: CSV rows -> validated jobs -> objects in storage -> rows committed last.

The data path, one way through: the splitter plugin streams frames; a bounded
pool of threads encodes each to PNG, hashes it and puts it in storage (zlib and
hashlib release the GIL); rows are spooled to a temporary file (imagingdb.spool)
and inserted in batches in ONE transaction that registers the dataset last. Nothing is registered until every
object is stored, so a failed or killed upload leaves no half-registered
dataset, and running it again finishes the job.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Container, Optional

import sqlalchemy as sa

from . import db as dbq
from . import faults, plugins, quick_schema
from .acquisition import Acquisition, Dimensions, Frame, SplitOptions
from .claims import claim_dataset
from .config import AUTO_FORMAT, UploadConfig, load_upload_config
from .errors import ImagingDBError, InputError, WorkError
from .ids import DatasetID, parse_dataset_id
from .progress import Progress
from .spool import RowSpool
from .storage import HashingReader, validate_object_name

if TYPE_CHECKING:
    from .api import Database
    from .storage import StorageBackend

CSV_REQUIRED = ("dataset_id", "file_name")
CSV_OPTIONAL = ("description", "parent_dataset_id", "positions")
INSERT_BATCH = 2000


# ------------------------------------------------------------------------- the CSV


@dataclass
class UploadRow:
    """One validated CSV row."""

    line: int
    dataset_id: DatasetID
    source: Path
    csv_name: str = ""
    description: Optional[str] = None
    parent_dataset_id: Optional[str] = None
    positions: Optional[list[int]] = None


@dataclass
class RowResult:
    """What happened to one CSV row."""

    line: int
    dataset_id: str
    ok: bool
    error: Optional[str] = None
    exit_code: int = 0
    frames: int = 0
    bytes: int = 0
    format: Optional[str] = None  # the splitter that read the source (frames uploads)
    kind: Optional[str] = None  # what the source is, in the splitter's words
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"row": self.line, "dataset_id": self.dataset_id,
                "status": "uploaded" if self.ok else "failed", "error": self.error,
                "frames": self.frames, "bytes": self.bytes, "format": self.format,
                "kind": self.kind, "warnings": self.warnings}


@dataclass
class UploadReport:
    results: list[RowResult] = field(default_factory=list)

    @property
    def failed(self) -> list[RowResult]:
        return [r for r in self.results if not r.ok]

    @property
    def exit_code(self) -> int:
        """0 all uploaded; 2 if every failure was bad input found before work; else 1."""
        if not self.failed:
            return 0
        return 2 if all(r.exit_code == 2 for r in self.failed) else 1


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


def read_upload_csv(path: Path) -> list[UploadRow | RowResult]:
    """Parse the upload CSV. File-level problems raise InputError; a bad row gives a RowResult."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            raw_rows = [(reader.line_num, row) for row in reader]
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
    seen: dict[str, int] = {}
    parsed: list[UploadRow | RowResult] = []
    for line, raw in raw_rows:
        row = {(k or "").strip(): v for k, v in raw.items()}
        where = f"{path.name} row {line}"
        try:
            if None in raw:  # more cells than header columns
                raise InputError(f"{where}: more values than columns")
            parsed_row = _parse_row(path, line, row, where)
            text = parsed_row.dataset_id.text
            if text in seen:
                raise InputError(f"{where}: dataset ID {text} repeats row {seen[text]}")
            seen[text] = line
            parsed.append(parsed_row)
        except InputError as exc:
            parsed.append(RowResult(line, (row.get("dataset_id") or "").strip(), False,
                                    str(exc), exc.exit_code))
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
        dataset_id=dataset_id,
        source=source,
        csv_name=path.name,
        description=description if description not in (None, "") else None,
        parent_dataset_id=parent_id,
        positions=_parse_positions(row.get("positions") or "", where),
    )


# ----------------------------------------------------------------------- the run


def upload_csv(
    database: "Database",
    csv_path: Path,
    config_path: Path,
    *,
    overwrite: bool = False,
    workers: Optional[int] = None,
    progress: Optional[Progress] = None,
    on_result: Optional[Callable[[RowResult], None]] = None,
) -> UploadReport:
    """Upload every row; rows are independent, one bad row fails alone."""
    config = load_upload_config(config_path)
    rows = read_upload_csv(csv_path)
    uploader = Uploader(database, config, overwrite=overwrite, workers=workers,
                        progress=progress or Progress())
    report = UploadReport()
    for row in rows:
        result = row if isinstance(row, RowResult) else uploader.upload_row(row)
        report.results.append(result)
        if on_result is not None:
            on_result(result)
    return report


def _json_safe(value: Any) -> Any:
    """Metadata as plain JSON: numpy scalars to Python, NaN/inf to None, bytes to text."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _json_safe(value.tolist())
    return str(value)


class Uploader:
    """Uploads rows with one upload config into one database and storage."""

    def __init__(self, database: "Database", config: UploadConfig, *, overwrite: bool,
                 workers: Optional[int], progress: Progress):
        self.database = database
        self.config = config
        self.overwrite = overwrite
        self.workers = workers or config.nbr_workers or max(2, os.cpu_count() or 2)
        self._workers_chosen = bool(workers or config.nbr_workers)
        self.progress = progress
        self._storage: Optional["StorageBackend"] = None
        self._splitters: dict[str, Any] = {}  # frames_format -> splitter instance
        self._validators: dict[str, Optional[_MetaValidator]] = {}  # frames_format -> checker
        self._parser = None
        self._row_notes: dict[str, Any] = {}  # this row's format, kind and warnings
        self._setup_error: Optional[ImagingDBError] = None
        self._written: set[str] = set()  # keys this row's upload has put so far
        self._commit_sent = False  # this row's registering transaction reached its commit

    # -------------------------------------------------------------- set-up, once

    def _setup(self) -> None:
        """Resolve plugins and check storage once; an error here fails every row alike."""
        if self._setup_error is not None:
            raise self._setup_error
        if self._storage is not None:
            return
        try:
            cfg = self.config
            if cfg.upload_type == "frames":
                if cfg.frames_format != AUTO_FORMAT:
                    plugins.get("splitter", cfg.frames_format)  # unknown: fails every row alike
                if cfg.meta_schema:
                    _schema_validator(cfg.meta_schema, cfg.source)  # invalid: fails every row
            if cfg.filename_parser:
                self._parser = plugins.get("filename_parser", cfg.filename_parser).obj
            storage = _storage_for(self.database, cfg)
            storage.check(writable=True)
            self._storage = storage
            if not self._workers_chosen and storage.transfer_workers:
                self.workers = max(self.workers, storage.transfer_workers)
        except ImagingDBError as exc:
            self._setup_error = exc
            raise

    # ------------------------------------------------------------------ one row

    def upload_row(self, row: UploadRow) -> RowResult:
        where = f"{row.csv_name} row {row.line} ({row.dataset_id})".lstrip()
        self._row_notes = {"warnings": []}
        try:
            self._setup()
            with claim_dataset(self.database, row.dataset_id.text):
                frames, nbytes = self._upload_claimed(row)
        except ImagingDBError as exc:
            return RowResult(row.line, row.dataset_id.text, False, f"{where}: {exc}",
                             exc.exit_code, **self._row_notes)
        return RowResult(row.line, row.dataset_id.text, True, frames=frames, bytes=nbytes,
                         **self._row_notes)

    def _upload_claimed(self, row: UploadRow) -> tuple[int, int]:
        """The upload proper, while this process holds the claim on the dataset ID."""
        self._check_before_work(row)
        self._written = set()
        self._commit_sent = False
        try:
            if self.config.upload_type == "file":
                return self._upload_file(row)
            return self._upload_frames(row)
        except BaseException:
            self._remove_unregistered(row)
            raise

    def _remove_unregistered(self, row: UploadRow) -> None:
        """After a failed upload of a new dataset, delete the objects it wrote.

        An overwrite keeps what it wrote: the old rows still name those keys,
        and running the upload again completes it. With the database out of
        reach, the objects of a new dataset go only if the commit was never
        sent (after that, it may have gone through); `imagingdb gc` finds the rest.
        """
        if not self._written:
            return
        try:
            with self.database.connection() as conn:
                registered = dbq.find_dataset(conn, row.dataset_id.text) is not None
        except Exception:  # noqa: BLE001 - the original error matters more
            registered = self.overwrite or self._commit_sent
        if registered:
            return
        try:
            self._storage.delete(sorted(self._written))
        except Exception:  # noqa: BLE001 - the original error matters more; gc finds leftovers
            pass

    def _check_before_work(self, row: UploadRow) -> None:
        if not row.source.exists():
            raise InputError(f"{row.source} not found")
        if row.parent_dataset_id == row.dataset_id.text:
            raise InputError("a dataset cannot be its own parent")
        with self.database.connection() as conn:
            existing = dbq.find_dataset(conn, row.dataset_id.text)
            if existing is not None and not self.overwrite:
                raise InputError(
                    f"dataset {row.dataset_id} already exists; use --overwrite to replace it"
                )
            if row.parent_dataset_id and dbq.find_dataset(conn, row.parent_dataset_id) is None:
                raise InputError(f"parent dataset {row.parent_dataset_id} does not exist")

    # -------------------------------------------------------------- file upload

    def _upload_file(self, row: UploadRow) -> tuple[int, int]:
        source = row.source
        if not source.is_file():
            raise InputError(f"{source} is not a file (upload_type: file takes one file)")
        name = validate_object_name(source.name)
        storage_dir = f"raw_files/{row.dataset_id}"
        key = f"{storage_dir}/{name}"
        metadata = _json_safe({"file_origin": str(source), **_tiff_tags(source)})
        self.progress.start(str(row.dataset_id), 1, source.stat().st_size)
        try:
            with open(source, "rb") as handle:
                reader = HashingReader(handle)
                self._written.add(key)
                self._storage.put_fileobj(key, reader)
            faults.checkpoint("object-stored")
        except BaseException as exc:
            self.progress.finish(ok=False)
            if isinstance(exc, OSError):
                raise WorkError(f"cannot read {source}: {exc.strerror or exc}") from None
            raise
        self.progress.advance(1, reader.bytes_read)
        self._storage.flush()

        def insert_children(conn: sa.Connection, dataset_pk: int) -> None:
            conn.execute(sa.insert(dbq.file_global).values(
                storage_dir=storage_dir, file_name=name, metadata_json=metadata,
                dataset_id=dataset_pk, sha256=reader.hexdigest(),
            ))

        self._register(row, frames=False, insert_children=insert_children,
                       keep_keys={key}, prefix=f"{storage_dir}/")
        self.progress.finish()
        return 1, reader.bytes_read

    # ------------------------------------------------------------ frames upload

    def _open(self, row: UploadRow) -> Acquisition:
        """Choose the splitter (frames_format, or what claims the source) and open the source."""
        explicit = self.config.frames_format
        claim = plugins.choose_format(row.source, None if explicit == AUTO_FORMAT else explicit)
        splitter = self._splitter(claim.format)
        options = SplitOptions(positions=row.positions, filename_parser=self._parser,
                               sequence_axis=self.config.sequence_axis)
        acquisition = splitter.open(row.source, options)
        kind = acquisition.kind or claim.kind
        self._row_notes.update(format=claim.format, kind=kind or None)
        if explicit == AUTO_FORMAT:
            self.progress.note(f"{row.dataset_id}: {kind}; frames_format auto chose {claim.format}")
        for warning in acquisition.warnings:
            self._row_notes["warnings"].append(warning)
            self.progress.note(f"Warning: {row.dataset_id}: {warning}")
        return acquisition

    def _splitter(self, name: str) -> Any:
        if name not in self._splitters:
            self._splitters[name] = plugins.get("splitter", name).obj()
        return self._splitters[name]

    def _validator(self, name: str) -> Optional["_MetaValidator"]:
        """The metadata check of frames read by splitter ``name``: the upload's meta_schema,
        else the splitter's own schema, else none."""
        if name not in self._validators:
            cfg = self.config
            schema = cfg.meta_schema or getattr(self._splitter(name), "default_meta_schema", None)
            # A splitter's own schema is known to be valid: not checked (nor jsonschema
            # imported) unless a frame's metadata needs an error message.
            self._validators[name] = (_MetaValidator(schema, cfg.source,
                                                     check_schema=bool(cfg.meta_schema))
                                      if schema else None)
        return self._validators[name]

    def _upload_frames(self, row: UploadRow) -> tuple[int, int]:
        with RowSpool() as spool:
            try:
                return self._upload_frames_via(row, spool)
            except BaseException:
                # Only now are the stored keys needed in memory: to delete them.
                self._written.update(spool.keys())
                raise

    def _upload_frames_via(self, row: UploadRow, frame_rows: RowSpool) -> tuple[int, int]:
        storage_dir = f"raw_frames/{row.dataset_id}"
        with self._open(row) as acquisition:
            count = self._validate_frames(row, acquisition)
            dims = acquisition.dims
            _check_dims(row, dims)
            frame_bytes = dims.im_height * dims.im_width * dims.im_colors * (
                2 if dims.bit_depth == "uint16" else 1)
            self.progress.start(str(row.dataset_id), count, count * frame_bytes)
            try:
                nbytes = self._store_frames(acquisition, storage_dir, frame_rows)
            except BaseException:
                self.progress.finish(ok=False)
                raise
            global_meta = _json_safe(acquisition.global_meta)
        self._storage.flush()

        def insert_children(conn: sa.Connection, dataset_pk: int) -> None:
            fg_pk = conn.execute(sa.insert(dbq.frames_global).values(
                storage_dir=storage_dir, nbr_frames=len(frame_rows),
                im_width=dims.im_width, im_height=dims.im_height,
                nbr_slices=dims.nbr_slices, nbr_channels=dims.nbr_channels,
                nbr_timepoints=dims.nbr_timepoints, nbr_positions=dims.nbr_positions,
                im_colors=dims.im_colors, bit_depth=dims.bit_depth,
                metadata_json=global_meta, dataset_id=dataset_pk,
            ).returning(dbq.frames_global.c.id)).scalar_one()
            for batch in frame_rows.batches(INSERT_BATCH):
                for frame_row in batch:
                    frame_row["frames_global_id"] = fg_pk
                conn.execute(sa.insert(dbq.frames), batch)

        try:
            self._register(row, frames=True, insert_children=insert_children,
                           keep_keys=frame_rows, prefix=f"{storage_dir}/")
        except BaseException:
            self.progress.finish(ok=False)
            raise
        self.progress.finish()
        return len(frame_rows), nbytes

    def _validate_frames(self, row: UploadRow, acquisition: Acquisition) -> int:
        """The metadata-only pass: every check that can fail is done before any write."""
        count = 0
        validator = self._validator(self._row_notes["format"])
        for frame in acquisition.iter_frames(pixels=False):
            if validator is not None:
                _check_meta(validator, row.source, frame)
            count += 1
        if count == 0:
            raise InputError(f"{row.source}: no frames to upload")
        return count

    def _store_frames(self, acquisition: Acquisition, storage_dir: str, rows: RowSpool) -> int:
        """Encode, hash and store every frame with a bounded pool; spool their rows.

        Returns the bytes of pixels stored. Memory is bounded by the frames in
        flight (2 per worker) whatever the acquisition's size: rows go to the
        spool and ``self._written`` only holds the keys being put.
        """
        from .frames import encode_png_reusing, pixel_sha256

        storage = self._storage
        codec = self.config.png_options()
        in_flight = threading.BoundedSemaphore(self.workers * 2)
        total = [0]
        written_lock = threading.Lock()

        def store(frame: Frame) -> tuple[str, dict[str, Any], int]:
            try:
                data = encode_png_reusing(frame.pixels, **codec)  # stored before the next
                if not getattr(storage, "put_takes_buffers", False):
                    data = bytes(data)
                checksum = pixel_sha256(frame.pixels)
                name = frame.index.file_name
                key = f"{storage_dir}/{name}"
                with written_lock:
                    self._written.add(key)
                storage.put_bytes(key, data)
                faults.checkpoint("object-stored")
                return key, {
                    "channel_idx": frame.index.channel, "slice_idx": frame.index.slice,
                    "time_idx": frame.index.time, "pos_idx": frame.index.position,
                    "channel_name": frame.channel_name, "file_name": name,
                    "sha256": checksum, "metadata_json": _json_safe(frame.metadata),
                }, frame.pixels.nbytes
            finally:
                in_flight.release()

        def collect(future: cf.Future) -> None:
            key, frame_row, nbytes = future.result()
            rows.add(key, frame_row)
            with written_lock:
                self._written.discard(key)  # the spool has it now
            total[0] += nbytes
            self.progress.advance(1, nbytes)

        with cf.ThreadPoolExecutor(self.workers, thread_name_prefix="imagingdb-store") as pool:
            pending: set[cf.Future] = set()
            try:
                for frame in acquisition.iter_frames(pixels=True):
                    in_flight.acquire()
                    pending.add(pool.submit(store, frame))
                    done = {f for f in pending if f.done()}
                    for future in done:
                        collect(future)
                    pending -= done
                for future in cf.as_completed(pending):
                    collect(future)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return total[0]

    # -------------------------------------------------------------- registration

    def _register(self, row: UploadRow, *, frames: bool, insert_children,
                  keep_keys: Container[str], prefix: str) -> None:
        """One transaction registers the dataset, then stale objects of an overwrite go."""
        faults.checkpoint("before-register")
        values = {
            "dataset_serial": row.dataset_id.text, "description": row.description,
            "microscope": self.config.microscope, "frames": frames,
            "date_time": row.dataset_id.date_time,
        }
        try:
            with self.database.connection(write=True) as conn:
                existing = dbq.find_dataset(conn, row.dataset_id.text)
                parent_pk = None
                if row.parent_dataset_id:
                    parent = dbq.find_dataset(conn, row.parent_dataset_id)
                    if parent is None:
                        raise InputError(f"parent dataset {row.parent_dataset_id} does not exist")
                    parent_pk = parent.id
                values["parent_id"] = parent_pk
                if existing is not None:
                    if not self.overwrite:
                        raise InputError(
                            f"dataset {row.dataset_id} already exists; use --overwrite to replace it"
                        )
                    dataset_pk = existing.id
                    _delete_children(conn, dataset_pk)
                    conn.execute(sa.update(dbq.data_set)
                                 .where(dbq.data_set.c.id == dataset_pk).values(**values))
                else:
                    dataset_pk = conn.execute(
                        sa.insert(dbq.data_set).values(**values).returning(dbq.data_set.c.id)
                    ).scalar_one()
                insert_children(conn, dataset_pk)
                faults.checkpoint("before-commit")
                self._commit_sent = True
        except sa.exc.IntegrityError:
            # Another process registered the same ID between our check and our commit.
            raise WorkError(f"dataset {row.dataset_id} was registered by another upload "
                            "at the same time; nothing of this upload was registered") from None
        faults.checkpoint("after-commit")
        stale = [k for k in self._storage.list_keys(prefix) if k not in keep_keys]
        if stale:
            self._storage.delete(stale)


def _delete_children(conn: sa.Connection, dataset_pk: int) -> None:
    fg_ids = sa.select(dbq.frames_global.c.id).where(dbq.frames_global.c.dataset_id == dataset_pk)
    conn.execute(sa.delete(dbq.frames).where(dbq.frames.c.frames_global_id.in_(fg_ids)))
    conn.execute(sa.delete(dbq.frames_global).where(dbq.frames_global.c.dataset_id == dataset_pk))
    conn.execute(sa.delete(dbq.file_global).where(dbq.file_global.c.dataset_id == dataset_pk))


def _storage_for(database: "Database", config: UploadConfig) -> "StorageBackend":
    """The site's storage, unless the upload config names another (the original's keys)."""
    if not config.storage and not config.storage_access:
        return database.storage
    from .api import open_storage
    from .config import StorageSettings

    backend = config.storage or database.config.storage.backend
    options = dict(database.config.storage.options) if backend == database.config.storage.backend else {}
    if config.storage_access:
        options["root" if backend == "local" else "bucket"] = config.storage_access
    return open_storage(StorageSettings(backend, options))


def _check_dims(row: UploadRow, dims: Dimensions) -> None:
    if dims.bit_depth not in ("uint8", "uint16"):
        raise InputError(
            f"{row.source}: {dims.bit_depth} pixels cannot be stored as PNG frames without loss; "
            "convert them to uint16 or upload the file whole with upload_type: file"
        )
    if min(dims.im_height, dims.im_width) < 1:
        raise InputError(f"{row.source}: frames have no pixels ({dims.im_height}x{dims.im_width})")


class _MetaValidator:
    """Checks frame metadata against the upload's JSON Schema.

    Metadata that :func:`quick_schema.is_valid` accepts passes without
    jsonschema; anything else goes to jsonschema, imported then, for the
    exact error.
    """

    def __init__(self, schema: dict[str, Any], source: Optional[Path], check_schema: bool):
        self.schema = schema
        self._validator = _schema_validator(schema, source) if check_schema else None

    def first_error(self, metadata: Any):
        """The first jsonschema error of ``metadata``, None if it is valid."""
        if quick_schema.is_valid(self.schema, metadata):
            return None
        if self._validator is None:
            import jsonschema

            self._validator = jsonschema.validators.validator_for(self.schema)(self.schema)
        return next(iter(self._validator.iter_errors(metadata)), None)


def _schema_validator(schema: dict[str, Any], source: Optional[Path]):
    import jsonschema

    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InputError(f"{source}: meta_schema is not a valid JSON Schema: {exc.message}") from None
    return validator_class(schema)


def _check_meta(validator: _MetaValidator, source: Path, frame: Frame) -> None:
    error = validator.first_error(frame.metadata)
    if error is None:
        return
    if error.validator in ("anyOf", "oneOf") and error.context:
        # "matches none of the alternatives" names no key; the best alternative's error does
        import jsonschema

        error = jsonschema.exceptions.best_match(error.context)
    key = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "required":
        key = error.message.split("'")[1] if "'" in error.message else key
    i = frame.index
    where = f"{source}: {frame.origin}," if frame.origin else f"{source}:"
    raise InputError(
        f"{where} frame (c={i.channel}, z={i.slice}, t={i.time}, p={i.position}) metadata "
        f"breaks meta_schema at key {key!r}: {error.message}"
    )


def _tiff_tags(path: Path) -> dict[str, Any]:
    """TIFF tags of the first page as metadata, when the file is a TIFF; {} otherwise."""
    if path.suffix.lower() not in (".tif", ".tiff", ".btf", ".tf8"):
        return {}
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            tags = {}
            for tag in page.tags:
                value = tag.value
                if isinstance(value, (bytes, bytearray)) and len(value) > 4096:
                    continue  # binary blobs (ICC profiles...) are not metadata
                tags[tag.name] = value
            return {"tiff_tags": tags, "nbr_pages": len(tif.pages)}
    except Exception as exc:  # noqa: BLE001 - kept whole anyway; say why there are no tags
        return {"tiff_error": f"{type(exc).__name__}: {exc}".splitlines()[0]}

