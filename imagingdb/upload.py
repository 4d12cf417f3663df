"""Upload: CSV rows -> objects in storage -> rows committed last.

The data path, one way through: the CSV gives validated rows
(:mod:`imagingdb.upload_rows`); for each, the splitter chosen for its source
streams frames; a bounded pool (:mod:`imagingdb.pool`) encodes each to PNG,
hashes it and puts it in storage; frame rows are spooled to a temporary file
(:mod:`imagingdb.spool`) and inserted in batches in ONE transaction that
registers the dataset last. Nothing is registered until every object is
stored, so a failed or killed upload leaves no half-registered dataset, and
running it again finishes the job.

Every attempt writes into a folder of its own (:mod:`imagingdb.layout`: the
dataset folder for a first upload, a new generation folder otherwise), so an
overwrite never touches the dataset it replaces before its commit, which
records the new folder in the row: the switch. The objects the dataset no
longer uses go after the commit. The registering transaction proves that the
upload still holds its claim on the dataset ID (:mod:`imagingdb.claims`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Container, Mapping, Optional

import sqlalchemy as sa

from . import annotations as notes
from . import db as dbq
from . import faults, layout, plugins, provenance
from .acquisition import Acquisition, Dimensions, Frame, SplitOptions
from .claims import Claim, claim_dataset
from .codecs import FrameCodec, frame_codec
from .config import AUTO_FORMAT, StorageSettings, UploadConfig, load_upload_config
from .db import locks
from .errors import ImagingDBError, InputError, UnclaimedSourceError, WorkError
from .ids import CASE_ONLY, lowercase_project_warning
from .memory import release_free_memory
from .meta_schema import MetaValidator
from .pool import ENCODE, default_workers, run_bounded
from .progress import Progress
from .site import Site, open_storage
from .splitters import tiff_pages
from .spool import RowSpool
from .storage import HashingReader, file_sha256, validate_object_name
from .upload_rows import RefusedRow, UploadRow, check_encoding, read_upload_csv

if TYPE_CHECKING:
    from .qc import DatasetQC
    from .storage import StorageBackend

INSERT_BATCH = 2000
#: frames stored between two returns of freed memory to the system (imagingdb.memory)
RELEASE_EVERY = 1024


@dataclass
class RowResult:
    """What happened to one CSV row."""

    line: int
    dataset_id: str
    ok: bool
    error: Optional[str] = None
    exit_code: int = 0
    nbr_frames: int = 0  # frames stored (1 for a file kept whole)
    bytes: int = 0
    format: Optional[str] = None  # the splitter that read the source (frames uploads)
    kind: Optional[str] = None  # what the source is, in the splitter's words
    warnings: list[str] = field(default_factory=list)
    #: the dataset was registered already with this very content: nothing was done
    skipped: bool = False

    @property
    def status(self) -> str:
        return "failed" if not self.ok else "skipped" if self.skipped else "uploaded"

    def to_json(self) -> dict[str, Any]:
        return {"row": self.line, "dataset_id": self.dataset_id,
                "status": self.status, "error": self.error,
                "nbr_frames": self.nbr_frames, "bytes": self.bytes, "format": self.format,
                "kind": self.kind, "warnings": self.warnings}


@dataclass
class UploadReport:
    results: list[RowResult] = field(default_factory=list)

    @property
    def failed(self) -> list[RowResult]:
        return [r for r in self.results if not r.ok]

    @property
    def skipped(self) -> list[RowResult]:
        return [r for r in self.results if r.skipped]

    @property
    def exit_code(self) -> int:
        """0: every row is in (uploaded, or there already); 2: bad input found before any
        work and nothing changed (no row uploaded); else 1."""
        if not self.failed:
            return 0
        changed = any(r.ok and not r.skipped for r in self.results)
        return 2 if not changed and all(r.exit_code == 2 for r in self.failed) else 1


# ----------------------------------------------------------------------- the run


def upload_csv(
    site: Site,
    csv_path: Path,
    config_path: Path,
    *,
    overwrite: bool = False,
    workers: Optional[int] = None,
    progress: Optional[Progress] = None,
    on_result: Optional[Callable[[RowResult], None]] = None,
    annotate: Optional[Mapping[str, str]] = None,
    encoding: Optional[str] = None,
    replicate: bool = False,
) -> UploadReport:
    """Upload every row of the CSV with the upload config; rows are independent, one
    bad row fails alone. ``on_result`` sees each row's result as soon as it is known;
    ``annotate`` ({key: value}) annotates every row's dataset; ``encoding`` is the CSV's
    when it is not UTF-8 (e.g. cp1252); ``replicate``: write every object to every store of
    the site, not only the primary (the registration records a copy in each)."""
    config, rows = read_upload(csv_path, config_path, annotate, encoding)
    uploader = Uploader(site, config, overwrite=overwrite, workers=workers,
                        progress=progress or Progress(), replicate=replicate)
    report = UploadReport()
    for row in rows:
        result = _refused(row) if isinstance(row, RefusedRow) else uploader.upload_row(row)
        report.results.append(result)
        if on_result is not None:
            on_result(result)
    return report


def read_upload(csv_path: Path, config_path: Path, annotate: Optional[Mapping[str, str]] = None,
                encoding: Optional[str] = None) -> tuple[UploadConfig, list[UploadRow | RefusedRow]]:
    """The upload config and the CSV's rows, checked: a bad file is an InputError, a bad row
    a RefusedRow."""
    encoding = check_encoding(encoding)
    config = load_upload_config(config_path)
    checked = {}
    for key, value in (annotate or {}).items():
        key = notes.check_key(str(key), "--annotate")
        checked[key] = notes.check_value(key, str(value), "--annotate")
    return config, read_upload_csv(csv_path, checked, config.required_annotations, encoding)


def _refused(row: RefusedRow) -> RowResult:
    return RowResult(row.line, row.dataset_id, False, row.error, row.exit_code)


def json_safe(value: Any) -> Any:
    """Metadata as plain JSON: numpy scalars to Python, NaN/inf to None, bytes to text."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return json_safe(value.tolist())
    return str(value)


class Uploader:
    """Uploads rows with one upload config into one site: what all rows share.

    The plugins, the storage and the metadata checks are resolved once; each
    row is then uploaded by its own :class:`RowUpload`, so nothing one row
    did (the objects it wrote, its warnings) carries over to the next.
    """

    def __init__(self, site: Site, config: UploadConfig, *, overwrite: bool,
                 workers: Optional[int], progress: Progress, replicate: bool = False):
        self.site = site
        self.config = config
        self.overwrite = overwrite
        self.replicate = replicate
        #: the site's stores the upload writes to, recorded as its dataset's replicas
        self.store_names: list[str] = []
        self._workers_chosen = workers or config.nbr_workers
        self.workers = self._workers_chosen or default_workers(ENCODE)
        self.progress = progress
        self.storage: Optional["StorageBackend"] = None
        self.parser = None
        self._splitters: dict[str, Any] = {}  # frames_format -> splitter instance
        self._validators: dict[str, Optional[MetaValidator]] = {}  # frames_format -> check
        self._setup_error: Optional[ImagingDBError] = None

    def upload_row(self, row: UploadRow) -> RowResult:
        upload = RowUpload(self, row)
        where = f"{row.csv_name} row {row.line} ({row.dataset_id})".lstrip()
        try:
            self._setup()
            with claim_dataset(self.site, row.dataset_id) as claim:
                frames, nbytes = upload.run(claim)
        except _AlreadyThere as there:
            self.progress.note(f"{row.dataset_id}: {there}; skipped")
            return RowResult(row.line, row.dataset_id, True, nbr_frames=there.frames,
                             skipped=True, **upload.notes)
        except ImagingDBError as exc:
            return RowResult(row.line, row.dataset_id, False, f"{where}: {exc}",
                             exc.exit_code, **upload.notes)
        return RowResult(row.line, row.dataset_id, True, nbr_frames=frames, bytes=nbytes,
                         **upload.notes)

    def _setup(self) -> None:
        """Resolve plugins and check storage once; an error here fails every row alike."""
        if self._setup_error is not None:
            raise self._setup_error
        if self.storage is None:
            self.resolve()

    def resolve(self, check_storage: bool = True) -> None:
        """Resolve the plugins and open the storage the rows go to, once; an error here fails
        every row alike. ``check_storage``: make sure the store takes writes, which writes (a
        probe object on S3, the root folder of a local store); ``upload --plan`` does not."""
        try:
            cfg = self.config
            if cfg.upload_type == "frames":
                if cfg.frames_format != AUTO_FORMAT:
                    plugins.get("splitter", cfg.frames_format)  # unknown: fails every row alike
                if cfg.meta_schema:
                    self._validators[""] = MetaValidator(cfg.meta_schema, cfg.source)
            if cfg.filename_parser:
                self.parser = plugins.get("filename_parser", cfg.filename_parser).obj
            storage, self.store_names = storage_for(self.site, cfg, self.replicate)
            if check_storage:
                storage.check(writable=True)
            self.storage = storage
            if not self._workers_chosen:
                self.workers = default_workers(ENCODE, storage.transfer_workers)
        except ImagingDBError as exc:
            self._setup_error = exc
            raise

    def splitter(self, name: str) -> Any:
        if name not in self._splitters:
            self._splitters[name] = plugins.get("splitter", name).obj()
        return self._splitters[name]

    def validator(self, name: str, acquisition: Acquisition) -> Optional[MetaValidator]:
        """The metadata check of frames that splitter ``name`` reads from ``acquisition``: the
        upload's meta_schema, else the acquisition's frame_schema, else the splitter's own."""
        if "" in self._validators:
            return self._validators[""]
        schema = acquisition.frame_schema
        if schema is None:
            schema = getattr(self.splitter(name), "default_meta_schema", None)
        if not schema:
            return None
        key = f"{name}:{id(schema)}"  # schemas are the splitters' constants
        if key not in self._validators:
            self._validators[key] = MetaValidator(schema, self.config.source, trusted=True)
        return self._validators[key]


class RowUpload:
    """The upload of one row, while its process holds the claim on the dataset ID."""

    def __init__(self, uploader: Uploader, row: UploadRow):
        self.uploader = uploader
        self.row = row
        self.config = uploader.config
        self.progress = uploader.progress
        #: the row's format, what its source is, and the warnings shown (RowResult fields)
        self.notes: dict[str, Any] = {"warnings": []}
        self.claim = Claim(row.dataset_id)
        self.token = layout.new_attempt_token()
        self.folder: Optional[str] = None  # this attempt's generation folder, once taken
        self._replacing = False  # a dataset of this ID was registered when the upload began
        self._written: set[str] = set()  # keys this upload has put, not yet spooled
        self._marker: Optional[str] = None  # the key by which it took the dataset folder
        self._commit_sent = False  # the registering transaction reached its commit
        #: what registration records of the stored content: data_set.content_sha256,
        #: stored_bytes and stored_objects
        self.content: dict[str, Any] = {}
        #: the first frame's metadata (the metadata pass), where a camera's bit depth may be
        self._first_frame_meta: Optional[dict[str, Any]] = None

    @property
    def storage(self) -> "StorageBackend":
        return self.uploader.storage

    @property
    def replacing(self) -> bool:
        """A dataset of this ID was registered when :meth:`check_before_work` looked."""
        return self._replacing

    @property
    def unspooled(self) -> int:
        """How many stored objects' rows are not in the spool yet (bounded by the frames in flight)."""
        return len(self._written)

    def run(self, claim: Claim) -> tuple[int, int]:
        """Upload the row under ``claim``; returns (frames, bytes of pixels or of the file).
        Raises _AlreadyThere when the dataset is registered with this very content."""
        self.claim = claim
        existing = self.check_before_work()
        if existing is not None:
            self._refuse_or_skip(existing)
        try:
            if self.config.upload_type == "file":
                return self._upload_file()
            return self._upload_frames()
        except BaseException:
            self._remove_unregistered()
            raise

    def _remove_unregistered(self) -> None:
        """After a failed attempt, delete the objects it wrote.

        They lie in this attempt's own folder, which no committed row uses, so
        this never touches the dataset being replaced nor another attempt's
        objects. Only once the commit was sent, with the database out of reach,
        can the upload not know whether it was registered: then the objects
        stay, and `imagingdb gc` decides from what the database says.
        """
        written = self._written | ({self._marker} if self._marker else set())
        if not written or (self._commit_sent and not self._known_unregistered()):
            return
        try:
            self.storage.delete(sorted(written))
        except Exception:  # noqa: BLE001 - the original error matters more; gc finds leftovers
            pass

    def _known_unregistered(self) -> bool:
        """True if the database answers that the dataset's row does not name this attempt's folder."""
        dataset_id = self.row.dataset_id
        try:
            with self.uploader.site.connection() as conn:
                row = dbq.find_dataset(conn, dataset_id)
                if row is None:
                    return True
                owner = (dbq.frames_global_of if row.frames else dbq.file_global_of)(conn, row.id)
        except Exception:  # noqa: BLE001 - out of reach: unknown
            return False
        return owner is None or layout.storage_dir(owner.storage_dir, row.frames,
                                                   dataset_id) != self.folder

    def _take_folder(self, frames: bool) -> str:
        """The folder this attempt writes into: one no committed row uses, shared with no other
        attempt. A first upload takes the dataset folder itself while it is empty, as the
        original did; any other attempt (an overwrite, a rerun after a kill) a new generation."""
        dataset_id = self.row.dataset_id
        first = layout.dataset_folder(dataset_id, frames)
        if self._replacing or next(iter(self.storage.list_keys(f"{first}/")), None) is not None:
            self.folder = layout.generation_folder(dataset_id, frames, self.token)
        else:
            # Marker first, then the proof of the claim: an upload let in by a lost claim
            # lists the folder after the marker is there (and takes a generation), or this
            # one stops here, before any frame, having overwritten nothing.
            self._marker = layout.attempt_marker(first, self.token)
            self.storage.put_bytes(self._marker, f"upload of {dataset_id} in progress\n".encode())
            with self.uploader.site.connection() as conn:
                self.claim.prove(conn)
            self.folder = first
        faults.checkpoint("folder-chosen")
        return self.folder

    def check_before_work(self) -> Optional[sa.Row]:
        """Refuse the row before any work if it cannot go in; the registered dataset of its ID
        when there is one and no --overwrite (the caller decides: skip or refuse)."""
        row = self.row
        if not row.source.exists():
            raise InputError(row.source_not_found())
        if row.parent_dataset_id == row.dataset_id:
            raise InputError("a dataset cannot be its own parent")
        with self.uploader.site.connection() as conn:
            _refuse_case_twin(conn, row.dataset_id)
            existing = dbq.find_dataset(conn, row.dataset_id)
            self._replacing = existing is not None
            if row.parent_dataset_id and dbq.find_dataset(conn, row.parent_dataset_id) is None:
                raise InputError(f"parent dataset {row.parent_dataset_id} does not exist")
        warning = lowercase_project_warning(row.parsed_id)
        if warning:
            self._warn(warning)
        return None if self.uploader.overwrite else existing

    def _refuse_or_skip(self, existing: sa.Row) -> None:
        """A dataset of this ID is registered and no --overwrite: if it holds this very
        content (a rerun of an interrupted upload) the row is done; else it is refused."""
        row = self.row
        registered = self.registered_content(existing)
        if registered is not None and registered == self._source_content(existing.frames):
            changed = self.changed_fields(existing)
            if changed:
                raise InputError(f"dataset {row.dataset_id} is already uploaded with this "
                                 f"content, but the CSV row or config gives another "
                                 f"{', '.join(changed)}; change it with imagingdb edit "
                                 f"{row.dataset_id}, or replace the dataset with --overwrite")
            if registered.startswith(provenance.FRAMES_PREFIX):
                frames = int(registered.split(":")[1])
                what = f"{frames} frame{'s' if frames != 1 else ''}"
            else:
                frames, what = 1, "1 file"
            raise _AlreadyThere(f"already uploaded with the same content ({what})", frames)
        raise InputError(f"dataset {row.dataset_id} already exists with other content than "
                         f"{row.source}; use --overwrite to replace it, or another dataset ID")

    def changed_fields(self, existing: sa.Row) -> list[str]:
        """What this row would record differently from the registered dataset: description,
        microscope, parent and annotations (a rerun must not drop a change silently)."""
        row = self.row
        changed = []
        if (row.description or None) != (existing.description or None):
            changed.append("description")
        if (self.config.microscope or None) != (existing.microscope or None):
            changed.append("microscope")
        parent = None
        if existing.parent_id is not None:
            with self.uploader.site.connection() as conn:
                parent = dbq.dataset_serial_of(conn, existing.parent_id)
        if (row.parent_dataset_id or None) != parent:
            changed.append("parent_dataset_id")
        old = existing.annotations or {}
        new = notes.stored(row.annotations) or {}
        changed += [f"annotation {key}" for key in sorted(set(old) | set(new))
                    if old.get(key) != new.get(key)]
        return changed

    def registered_content(self, existing: sa.Row) -> Optional[str]:
        """The registered dataset's content checksum (computed from its rows when it
        predates schema version 4); None if its rows do not tell (no checksums)."""
        if existing.content_sha256:
            return existing.content_sha256
        with self.uploader.site.connection() as conn:
            if not existing.frames:
                owner = dbq.file_global_of(conn, existing.id)
                return owner.sha256 if owner is not None else None
            owner = dbq.frames_global_of(conn, existing.id)
            if owner is None:
                return None
            digest, after = provenance.FramesDigest(), None
            while True:  # paged: constant memory whatever the number of frames
                page = dbq.frame_rows_after(conn, owner.id, after, INSERT_BATCH)
                if not page:
                    break
                for r in page:
                    if r.sha256 is None:
                        return None
                    digest.add(r.channel_idx, r.slice_idx, r.time_idx, r.pos_idx, r.sha256)
                after = page[-1].id
        return None if after is None else digest.hexdigest()

    def _source_content(self, registered_frames: bool) -> Optional[str]:
        """The content checksum of the row's source as this upload would store it (None: a
        file kept whole where frames are registered, or the other way round)."""
        from .codecs import pixel_sha256

        source = self.row.source
        if (self.config.upload_type == "frames") != bool(registered_frames):
            return None
        if self.config.upload_type == "file":
            return file_sha256(source) if source.is_file() else None
        frames = provenance.FramesDigest()
        with self.open_source() as acquisition:
            for frame in acquisition.iter_frames(pixels=True):
                index = frame.index
                frames.add(index.channel, index.slice, index.time, index.position,
                           pixel_sha256(frame.pixels))
        return frames.hexdigest()

    # -------------------------------------------------------------- file upload

    def _upload_file(self) -> tuple[int, int]:
        source = self.row.source
        if not source.is_file():
            raise InputError(f"{source} is not a file (upload_type: file takes one file)")
        name = validate_object_name(source.name)
        if self.config.frame_format:  # set in this upload's config, not the site's default
            self._warn(f"frame_format: {self.config.frame_format} has no effect with upload_type: "
                       "file (the file is kept whole, as it is)")
        metadata = json_safe({"file_origin": str(source), **tiff_pages.file_tags(source)})
        storage_dir = self._take_folder(frames=False)
        key = layout.object_key(storage_dir, name)
        self.progress.start(self.row.dataset_id, 1, source.stat().st_size, unit="file")
        try:
            with open(source, "rb") as handle:
                reader = HashingReader(handle)
                self._written.add(key)
                self.storage.put_fileobj(key, reader)
            faults.checkpoint("object-stored")
        except BaseException as exc:
            self.progress.finish(ok=False)
            if isinstance(exc, OSError):
                raise WorkError(f"cannot read {source}: {exc.strerror or exc}") from None
            raise
        self.progress.advance(1, reader.bytes_read)
        self.storage.flush()
        self.content = {"content_sha256": reader.hexdigest(), "stored_bytes": reader.bytes_read,
                        "stored_objects": 1}

        def insert_children(conn: sa.Connection, dataset_pk: int) -> None:
            dbq.insert_file_global(conn, {
                "storage_dir": storage_dir, "file_name": name, "metadata_json": metadata,
                "dataset_id": dataset_pk, "sha256": reader.hexdigest()})

        self._register(is_frames=False, insert_children=insert_children, keep_keys={key})
        self.progress.finish()
        return 1, reader.bytes_read

    # ------------------------------------------------------------ frames upload

    def open_source(self) -> Acquisition:
        """Choose the splitter (frames_format, or what claims the source) and open the source."""
        row, explicit = self.row, self.config.frames_format
        try:
            claim = plugins.choose_format(row.source, None if explicit == AUTO_FORMAT else explicit)
        except UnclaimedSourceError as exc:
            reason = tiff_pages.unreadable_reason(row.source)
            if reason is None:
                raise
            raise InputError(f"{row.source} is {reason}, which no splitter reads (formats: "
                             f"{', '.join(exc.formats)}); upload it whole with upload_type: "
                             "file") from exc
        options = SplitOptions(positions=row.positions, filename_parser=self.uploader.parser,
                               sequence_axis=self.config.sequence_axis)
        acquisition = self.uploader.splitter(claim.format).open(row.source, options)
        kind = acquisition.kind or claim.kind
        self.notes.update(format=claim.format, kind=kind or None)
        if explicit == AUTO_FORMAT:
            self.progress.note(f"{row.dataset_id}: {kind}; frames_format auto chose {claim.format}")
        for warning in acquisition.warnings:
            self._warn(warning)
        return acquisition

    def _upload_frames(self) -> tuple[int, int]:
        with RowSpool() as spool:
            try:
                return self._upload_frames_via(spool)
            except BaseException:
                # Only now are the stored keys needed in memory: to delete them.
                self._written.update(spool.keys())
                raise

    def frame_layout(self) -> tuple[str, FrameCodec]:
        """The frame layout this row's frames are stored in (the upload config's, else the
        site's) and its codec."""
        frame_format = self.config.frame_format or self.uploader.site.config.storage.frame_format
        return frame_format, frame_codec(frame_format, **(
            self.config.png_options() if frame_format == layout.PNG else {}))

    def check_frames(self, acquisition: Acquisition, codec: FrameCodec,
                     on_frame: Optional[Callable[[Frame], None]] = None) -> int:
        """Every check of an opened acquisition that can fail, done before any write (the
        metadata pass, its grid, what the codec stores); ``on_frame`` sees each frame of the
        metadata pass (no pixels). Returns the number of frames."""
        row = self.row
        count = self.validate_frames(acquisition, on_frame)
        dims = acquisition.dims
        # Whatever splitter read it: a grid no acquisition could have is refused here,
        # before show and read would walk its missing frames.
        grid = dims.nbr_channels * dims.nbr_slices * dims.nbr_timepoints * dims.nbr_positions
        tiff_pages.check_declared_frames(str(row.source), grid, count)
        _check_storable(row, dims, codec)
        if count < grid:
            self._warn(f"{count} of the {grid} frames of its dimensions (C{dims.nbr_channels} "
                       f"Z{dims.nbr_slices} T{dims.nbr_timepoints} P{dims.nbr_positions}) "
                       f"are in the source; {grid - count} missing, read as the fill value "
                       "(imagingdb show lists them)")
        return count

    def _upload_frames_via(self, frame_rows: RowSpool) -> tuple[int, int]:
        row = self.row
        frame_format, codec = self.frame_layout()
        with self.open_source() as acquisition:
            count = self.check_frames(acquisition, codec)
            large = count >= RELEASE_EVERY  # small ones: not worth a trim or a collection
            if large:
                release_free_memory(collect=True)  # what the metadata pass left
            dims = acquisition.dims
            frame_bytes = dims.im_height * dims.im_width * dims.im_colors * _itemsize(dims.bit_depth)
            storage_dir = self._take_folder(frames=True)
            self.progress.start(row.dataset_id, count, count * frame_bytes)
            store = ZarrStoreBuilder(row.dataset_id, dims) if frame_format == layout.OME_ZARR else None
            measure = self._dataset_qc(acquisition) if self.config.qc else None
            try:
                nbytes = self._store_frames(acquisition, codec, storage_dir, frame_rows, store,
                                            measure)
            except BaseException:
                self.progress.finish(ok=False)
                raise
            global_meta = json_safe(acquisition.global_meta)
            documents = [] if store is None else self._store_documents(
                store, acquisition.channel_names, global_meta, storage_dir)
        del acquisition  # closed; its reader's copies of the source's metadata can go
        self.storage.flush()
        if large:
            release_free_memory(collect=True)  # before registration copies the global metadata
        self.content["stored_objects"] = len(frame_rows) + len(documents)
        qc_rows = None if measure is None else (measure.summary_row(), measure.thumbnail_rows())

        def insert_children(conn: sa.Connection, dataset_pk: int) -> None:
            fg_pk = dbq.insert_frames_global(conn, {
                "storage_dir": storage_dir, "nbr_frames": len(frame_rows),
                "im_width": dims.im_width, "im_height": dims.im_height,
                "nbr_slices": dims.nbr_slices, "nbr_channels": dims.nbr_channels,
                "nbr_timepoints": dims.nbr_timepoints, "nbr_positions": dims.nbr_positions,
                "im_colors": dims.im_colors, "bit_depth": dims.bit_depth,
                "metadata_json": global_meta, "dataset_id": dataset_pk,
                "frame_format": frame_format})
            for batch in frame_rows.batches(INSERT_BATCH):
                for frame_row in batch:
                    frame_row["frames_global_id"] = fg_pk
                dbq.insert_frames(conn, batch)
                batch.clear()  # else alive beside the next batch, read before the loop rebinds it
            if qc_rows is not None:
                dbq.insert_qc(conn, dataset_pk, *qc_rows)

        try:
            self._register(is_frames=True, insert_children=insert_children,
                           keep_keys=_KeptKeys(frame_rows, documents))
        except BaseException:
            self.progress.finish(ok=False)
            raise
        self.progress.finish()
        return len(frame_rows), nbytes

    def _store_documents(self, store: "ZarrStoreBuilder", channel_names: list[str],
                         global_meta: dict[str, Any], storage_dir: str) -> list[str]:
        """The zarr.json documents of an ome-zarr upload, put after its chunks."""
        keys = []
        for name, document in store.documents(channel_names, global_meta).items():
            key = layout.object_key(storage_dir, name)
            self._written.add(key)
            self.storage.put_bytes(key, document)
            self.content["stored_bytes"] += len(document)
            keys.append(key)
        faults.checkpoint("object-stored")
        return keys

    def validate_frames(self, acquisition: Acquisition,
                        on_frame: Optional[Callable[[Frame], None]] = None) -> int:
        """The metadata-only pass: every check that can fail is done before any write."""
        count = 0
        validator = self.uploader.validator(self.notes["format"], acquisition)
        for frame in acquisition.iter_frames(pixels=False):
            if validator is not None:
                validator.check(frame, self.row.source)
            if on_frame is not None:
                on_frame(frame)
            if count == 0:
                self._first_frame_meta = frame.metadata
            count += 1
        if count == 0:
            raise InputError(f"{self.row.source}: no frames to upload")
        return count

    def _dataset_qc(self, acquisition: Acquisition) -> "DatasetQC":
        """What gathers the QC summary and thumbnails (imagingdb.qc): the saturation level is
        the camera's bit depth the source declares (its summary, else its first frame's
        metadata), else the dtype's."""
        from .qc import DatasetQC, pool_factor, saturation_bits

        dims = acquisition.dims
        bits = saturation_bits(dims.bit_depth, acquisition.global_meta,
                               self._first_frame_meta)
        return DatasetQC(bits, pool_factor(dims.im_height, dims.im_width))

    def _store_frames(self, acquisition: Acquisition, codec: FrameCodec, storage_dir: str,
                      rows: RowSpool, zarr_store: Optional["ZarrStoreBuilder"],
                      measure: Optional["DatasetQC"] = None) -> int:
        """Encode, hash and store every frame with a bounded pool; spool their rows; with
        ``measure``, each frame's QC is computed in the worker that encodes it.

        Returns the bytes of pixels stored. Memory is bounded by the frames in
        flight whatever the acquisition's size: rows go to the spool and
        ``self._written`` only holds the keys being put.
        """
        storage = self.storage
        total = [0]
        written_lock = threading.Lock()
        digest = provenance.FramesDigest()
        self.content.update(stored_bytes=0)

        if measure is not None:
            from .qc import measure as measure_frame

            level, factor = measure.level, measure.factor

        def store(frame: Frame) -> tuple[str, dict[str, Any], int, int, Any]:
            data = codec.encode(frame.pixels)  # a view this thread reuses: stored before the next
            if not getattr(storage, "put_takes_buffers", False):
                data = bytes(data)
            checksum = codec.pixel_hash(frame.pixels)
            if zarr_store is None:
                name = layout.frame_name(frame.index, codec.suffix)
            else:
                index = frame.index
                name = layout.zarr_chunk_name(index.position, index.time, index.channel, index.slice)
                zarr_store.windows.add(index.channel, frame.pixels)
            key = layout.object_key(storage_dir, name)
            with written_lock:
                self._written.add(key)
            storage.put_bytes(key, data)
            faults.checkpoint("object-stored")
            frame_row = {
                "channel_idx": frame.index.channel, "slice_idx": frame.index.slice,
                "time_idx": frame.index.time, "pos_idx": frame.index.position,
                "channel_name": frame.channel_name, "file_name": name,
                "sha256": checksum, "metadata_json": json_safe(frame.metadata),
            }
            small = None
            if measure is not None:
                values, small = measure_frame(frame.pixels, level, factor)
                frame_row.update(values)
            return key, frame_row, frame.pixels.nbytes, memoryview(data).nbytes, small

        def collect(stored: tuple[str, dict[str, Any], int, int, Any]) -> None:
            key, frame_row, nbytes, stored_bytes, small = stored
            rows.add(key, frame_row)
            if measure is not None:
                measure.add(frame_row, small)
            digest.add(frame_row["channel_idx"], frame_row["slice_idx"], frame_row["time_idx"],
                       frame_row["pos_idx"], frame_row["sha256"])
            self.content["stored_bytes"] += stored_bytes
            if zarr_store is not None:
                zarr_store.saw(frame_row)
            with written_lock:
                self._written.discard(key)  # the spool has it now
            total[0] += nbytes
            self.progress.advance(1, nbytes)
            if len(rows) % RELEASE_EVERY == 0:
                release_free_memory()

        run_bounded(store, acquisition.iter_frames(pixels=True), self.uploader.workers,
                    on_result=collect, name="imagingdb-store")
        self.content["content_sha256"] = digest.hexdigest()
        return total[0]

    # -------------------------------------------------------------- registration

    def _register(self, *, is_frames: bool, insert_children: Callable[[sa.Connection, int], None],
                  keep_keys: Container[str]) -> None:
        """One transaction registers the dataset (proving the claim first and last), then the
        objects the dataset no longer uses go."""
        row = self.row
        faults.checkpoint("before-register")
        if self._marker:
            # The stored objects show the folder taken from now on; gone before the commit,
            # the marker is never left in a registered dataset's folder.
            self.storage.delete([self._marker])
            self._marker = None
        # Listed before the commit: an attempt that begins after it never loses an object here.
        stale = self._stale_objects(keep_keys)
        try:
            with self.uploader.site.connection(write=True) as conn:
                # First, so that an upload that lost its claim says so (not "already exists"
                # when the upload let in meanwhile registered); last, for the moment between.
                self.claim.prove(conn)
                _refuse_case_twin(conn, row.dataset_id, registering=True)  # registered meanwhile?
                self._check_duplicate(conn)
                self._write_rows(conn, is_frames, insert_children)
                self.claim.prove(conn)
                faults.checkpoint("before-commit")
                self._commit_sent = True
        except sa.exc.IntegrityError:
            # Another process registered the same ID between our check and our commit.
            raise WorkError(f"dataset {row.dataset_id} was registered by another upload "
                            "at the same time; nothing of this upload was registered") from None
        faults.checkpoint("after-commit")
        self._delete_stale(stale)

    def _write_rows(self, conn: sa.Connection, is_frames: bool,
                    insert_children: Callable[[sa.Connection, int], None]) -> None:
        """The dataset's rows, replacing those of the dataset it overwrites."""
        row = self.row
        values = {
            "dataset_serial": row.dataset_id, "description": row.description,
            "microscope": self.config.microscope, "frames": is_frames,
            "date_time": row.parsed_id.date_time,
            "annotations": notes.stored(row.annotations),
            "uploaded_by": provenance.os_user(), "uploaded_host": provenance.host_name(),
            "uploaded_at": provenance.now_utc(),
            "imagingdb_version": provenance.imagingdb_version(),
            "source_path": str(row.source.absolute()),
            "content_sha256": None, "stored_bytes": None, "stored_objects": None,
            **self.content,
        }
        existing = dbq.find_dataset(conn, row.dataset_id)
        parent_pk = None
        if row.parent_dataset_id:
            parent = dbq.find_dataset(conn, row.parent_dataset_id)
            if parent is None:
                raise InputError(f"parent dataset {row.parent_dataset_id} does not exist")
            parent_pk = parent.id
        values["parent_id"] = parent_pk
        if existing is not None:
            if not self.uploader.overwrite:
                raise InputError(
                    f"dataset {row.dataset_id} already exists; use --overwrite to replace it"
                )
            dataset_pk = existing.id
            dbq.delete_dataset_children(conn, dataset_pk)
            dbq.update_dataset(conn, dataset_pk, values)
        else:
            dataset_pk = dbq.insert_dataset(conn, values)
        insert_children(conn, dataset_pk)
        dbq.record_replicas(conn, dataset_pk, self.uploader.store_names)

    def _check_duplicate(self, conn: sa.Connection) -> None:
        """Say (upload config ``duplicates``: warn, error or ignore) when the content just
        stored is already another dataset's; an error fails the row in the registering
        transaction, before any row is written."""
        action, content = self.config.duplicates, self.content.get("content_sha256")
        if action == "ignore" or not content:
            return
        twins = dbq.datasets_with_content(conn, content, exclude=self.row.dataset_id)
        if not twins:
            return
        shown = ", ".join(twins[:3]) + (f" and {len(twins) - 3} more" if len(twins) > 3 else "")
        what = "the file" if self.config.upload_type == "file" else "every frame"
        if action == "error":
            raise InputError(f"{self.row.source}: its content ({what}) is already dataset(s) "
                             f"{shown}; nothing was registered (set duplicates: warn in the "
                             "upload config to allow it)")
        self._warn(f"the same content ({what}) as dataset(s) {shown}; uploaded anyway "
                   "(duplicates: error in the upload config refuses it)")

    def _stale_objects(self, keep_keys: Container[str]) -> list[str]:
        """Every object in this dataset ID's folders (frames and file, every generation) that
        the new rows will not reference: the replaced dataset's, leftovers of killed attempts."""
        stale = []
        for frames in (True, False):
            folder = layout.dataset_folder(self.row.dataset_id, frames)
            stale += [key for key in self.storage.list_keys(f"{folder}/") if key not in keep_keys]
        return stale

    def _delete_stale(self, stale: list[str]) -> None:
        """After the commit: the dataset is registered whatever happens here, so a failure is
        a warning (gc finds what is left), not a failed upload."""
        if not stale:
            return
        try:
            self.storage.delete(stale)
        except ImagingDBError as exc:
            self._warn(f"{len(stale)} object(s) the dataset no longer uses were not all "
                       f"deleted ({exc}); imagingdb gc removes them")

    def _warn(self, warning: str) -> None:
        """Show a ``Warning:`` line for the row and keep it for its report."""
        self.notes["warnings"].append(warning)
        self.progress.note(f"Warning: {self.row.dataset_id}: {warning}")


class _AlreadyThere(Exception):
    """The row's dataset is registered with the content of its source: nothing to do."""

    def __init__(self, message: str, frames: int):
        super().__init__(message)
        self.frames = frames


def _refuse_case_twin(conn: sa.Connection, dataset_id: str, *, registering: bool = False) -> None:
    """Refuse ``dataset_id`` if a dataset's ID differs from it only by case; ``registering``:
    in the registering transaction, which then holds the case-folded ID until it ends."""
    if registering:
        locks.lock_id_case_insensitively(conn, dataset_id)
    twin = dbq.find_case_twin(conn, dataset_id)
    if twin is not None:
        raise InputError(f"dataset {twin} already exists and differs from {dataset_id} only "
                         f"by case; {CASE_ONLY}: use {twin} or another ID")


def storage_for(site: Site, config: UploadConfig,
                 replicate: bool = False) -> tuple["StorageBackend", list[str]]:
    """Where the upload writes, and the names of the site's stores that are: the primary
    (``replicate``: every store), unless the upload config names another store (``storage``:
    a store's name, or a backend as the original's configs do, with ``storage_access``)."""
    if replicate:
        if config.storage or config.storage_access:
            raise InputError(f"{config.source}: --replicate writes to every store of the site; "
                             "remove the upload config's storage/storage_access keys")
        from .storage.mirrored import MirroredStorage

        names = site.store_names
        return MirroredStorage([site.store(name) for name in names]), names
    if not config.storage and not config.storage_access:
        return site.storage, [site.primary]
    if config.storage in site.config.stores and not config.storage_access:
        return site.store(config.storage), [config.storage]
    backend = config.storage or site.config.storage.backend
    options = dict(site.config.storage.options) if backend == site.config.storage.backend else {}
    if config.storage_access:
        options["root" if backend == "local" else "bucket"] = config.storage_access
    settings = StorageSettings(backend, options)
    # the same place as one of the site's stores: recorded as that store's copy
    named = [name for name, store in site.config.stores.items()
             if (store.backend, store.options) == (settings.backend, settings.options)]
    return open_storage(settings), named[:1]


def _itemsize(bit_depth: str) -> int:
    import numpy as np

    return np.dtype(bit_depth).itemsize


class _KeptKeys:
    """The keys a registered upload references: its frames' (in the spool) and others."""

    def __init__(self, frame_rows: RowSpool, others: list[str]):
        self._frame_rows = frame_rows
        self._others = set(others)

    def __contains__(self, key: object) -> bool:
        return key in self._others or key in self._frame_rows


class ZarrStoreBuilder:
    """What the zarr.json documents of an ome-zarr upload need, gathered as frames are stored:
    the positions, the highest index of each axis, the pixel range of each channel."""

    def __init__(self, dataset_id: str, dims: Dimensions):
        from .omezarr import WindowTracker

        self.dataset_id = dataset_id
        self.dims = dims
        self.windows = WindowTracker()
        self.positions: set[int] = set()
        self.highest = {"time_idx": -1, "channel_idx": -1, "slice_idx": -1}
        self.channel_names: dict[int, str] = {}  # as the frames' rows record them

    def saw(self, frame_row: dict[str, Any]) -> None:
        """Called in one thread (the pool's collector) for every stored frame."""
        self.positions.add(frame_row["pos_idx"])
        if frame_row["channel_name"]:
            self.channel_names.setdefault(frame_row["channel_idx"], frame_row["channel_name"])
        for axis, highest in self.highest.items():
            if frame_row[axis] > highest:
                self.highest[axis] = frame_row[axis]

    def documents(self, channel_names: list[str], global_meta: dict[str, Any]) -> dict[str, bytes]:
        from .calibration import calibration_of
        from .omezarr import StoreSpec, documents, grid_shape

        dims, highest = self.dims, self.highest
        times, channels, slices = grid_shape(
            (dims.nbr_timepoints, dims.nbr_channels, dims.nbr_slices),
            (highest["time_idx"], highest["channel_idx"], highest["slice_idx"]))
        names = [self.channel_names.get(c) or (channel_names[c] if c < len(channel_names) else "")
                 or f"channel{c}" for c in range(channels)]
        return documents(StoreSpec(
            name=self.dataset_id, positions=sorted(self.positions),
            shape=(times, channels, slices, dims.im_height, dims.im_width), dtype=dims.bit_depth,
            channel_names=names, calibration=calibration_of(global_meta),
            windows=self.windows.windows()))


def _check_storable(row: UploadRow, dims: Dimensions, codec: FrameCodec) -> None:
    """The codec's one rule of what is storable, asked before anything is written."""
    shape = (dims.im_height, dims.im_width) + ((dims.im_colors,) if dims.im_colors > 1 else ())
    reason = codec.refusal(dims.bit_depth, shape)
    if reason is not None:
        raise InputError(f"{row.source}: {reason}")
