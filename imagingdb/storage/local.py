"""The ``local`` storage backend: a folder (a local disk or a lab mount such as NFS/GPFS)."""

from __future__ import annotations

import errno
import functools
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import pluggy

from .. import faults
from ..errors import InputError, WorkError
from . import StorageBackend, StoredObject, validate_key

hookimpl = pluggy.HookimplMarker("imagingdb")


#: temporary names are never longer than this or the object's own name, whichever is longer
TEMP_NAME_BYTES = 100


def _temp_name(name: str) -> str:
    """A hidden temporary name beside ``name``, unique to this write: ``.<name>.<32 hex>.tmp``,
    with ``<name>`` cut (at a character) so that the temporary name is never longer than
    ``name`` itself once that is longer than TEMP_NAME_BYTES: every name the filesystem takes
    (255 bytes on most) can be written."""
    unique = f".{uuid.uuid4().hex}.tmp"
    encoded = os.fsencode(name)
    room = max(len(encoded), TEMP_NAME_BYTES) - 1 - len(unique)
    if len(encoded) > room:
        while room > 0 and encoded[room] & 0xC0 == 0x80:  # inside a UTF-8 character
            room -= 1
        name = os.fsdecode(encoded[:room])
    return f".{name}{unique}"


class LocalStorage(StorageBackend):
    """Objects are files under ``root``; keys are relative paths."""

    name = "local"
    put_takes_buffers = True

    def __init__(self, root: str | os.PathLike | None = None, **unknown):
        if unknown:
            raise InputError(
                f"storage backend 'local' does not take option(s): {', '.join(sorted(unknown))}"
            )
        if not root:
            raise InputError("storage backend 'local' needs storage.root (a folder)")
        self.root = Path(root).expanduser().resolve()
        # Folders already seen to resolve inside the root (a dataset's folder
        # holds thousands of frames: resolving its path for each one was ~0.1 ms
        # of lstat calls, held under the GIL, per object).
        self._folders_inside: set[Path] = set()
        self._background_sync = _BackgroundSync(self.root)

    def describe(self) -> str:
        return f"local:{self.root}"

    def _path(self, key: str) -> Path:
        """The file of ``key``; validate_key forbids '..', and this refuses symlinked escapes."""
        path = self.root.joinpath(*validate_key(key).split("/"))
        folder = path.parent
        if folder not in self._folders_inside:
            self._refuse_outside(folder, key)
            if folder.is_dir():  # remember only folders that exist, never a guess
                if len(self._folders_inside) >= _FOLDERS_REMEMBERED:
                    self._folders_inside.clear()  # the ome-zarr layout: a folder per chunk
                self._folders_inside.add(folder)
        if path.is_symlink():
            self._refuse_outside(path, key)
        return path

    def _refuse_outside(self, path: Path, key: str) -> None:
        if not path.resolve().is_relative_to(self.root):
            raise InputError(f"storage key {key!r} resolves outside the storage root")

    def check(self, writable: bool = False) -> None:
        if writable:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WorkError(f"cannot create storage folder {self.root}: {exc.strerror}") from None
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise WorkError(f"storage folder {self.root} is not writable")
        elif not self.root.is_dir():
            raise WorkError(f"storage folder {self.root} does not exist")

    def _write_atomically(self, key: str, write) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(_temp_name(path.name))
        try:
            with open(tmp, "wb") as out:
                write(out)
                out.flush()
                _start_writeback(out.fileno())
            faults.checkpoint("object-written")
            os.replace(tmp, path)
            self._background_sync.written()
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise WorkError(f"storage {self.root} is full while writing {key}") from None
            raise WorkError(f"cannot write {key} to {self.root}: {exc.strerror or exc}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write_atomically(key, lambda out: out.write(data))

    def put_fileobj(self, key: str, fileobj: BinaryIO) -> None:
        self._write_atomically(key, lambda out: shutil.copyfileobj(fileobj, out, 8 << 20))

    def copy(self, src_key: str, dst_key: str) -> None:
        """A hard link where the filesystem allows one (no byte moves; objects are only ever
        replaced whole, never written in place, so the two names never diverge by a write),
        else a copy; either is made under a temporary name and renamed into place."""
        source, path = self._path(src_key), self._path(dst_key)
        if not source.is_file():
            raise KeyError(src_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(_temp_name(path.name))
        try:
            os.link(source, tmp)
        except FileNotFoundError:
            raise KeyError(src_key) from None
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP,
                                 errno.ENOSYS):
                raise WorkError(f"cannot copy {src_key} to {dst_key} in {self.root}: "
                                f"{exc.strerror or exc}") from None
            self._write_atomically(dst_key, lambda out: _copy_stream(source, out, src_key))
            return
        try:
            os.utime(tmp)  # a new write for gc's grace period, as any other copy would be
            faults.checkpoint("object-written")
            os.replace(tmp, path)
            # rename() of a link onto another link of the same file does nothing (a rerun
            # that links again): the temporary name is then still there.
            tmp.unlink(missing_ok=True)
            self._background_sync.written()
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def get_bytes_into(self, key: str, buffer: bytearray) -> "bytes | memoryview":
        try:
            handle = open(self._path(key), "rb", buffering=0)
        except FileNotFoundError:
            raise KeyError(key) from None
        with handle:
            # One byte to spare, so a file that grows while it is read is noticed.
            if os.fstat(handle.fileno()).st_size < len(buffer):
                view = memoryview(buffer)
                size = 0
                while size < len(view) and (count := handle.readinto(view[size:])):
                    size += count
                if size < len(view):
                    return view[:size]
                handle.seek(0)
            return handle.read()

    def get_file(self, key: str, dest: str) -> None:
        try:
            _copy_file(self._path(key), dest)
        except FileNotFoundError as exc:
            if not self._path(key).exists():
                raise KeyError(key) from None
            raise WorkError(f"cannot write {dest}: {exc.strerror}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> Iterator[str]:
        folder = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not folder.is_dir():
            return
        for dirpath, _dirnames, filenames in os.walk(folder):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                yield name if rel == "." else f"{rel}/{name}"

    def read_chunks(self, key: str, chunk_size: int = 8 << 20) -> Iterator[bytes]:
        try:
            handle = open(self._path(key), "rb")
        except FileNotFoundError:
            raise KeyError(key) from None
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        folder = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        yield from self._scan(folder)

    def _scan(self, folder: Path) -> Iterator[StoredObject]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from self._scan(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted while listing
                    continue
                key = Path(entry.path).relative_to(self.root).as_posix()
                yield StoredObject(key, info.st_size, info.st_mtime)

    def delete(self, keys: Iterable[str]) -> None:
        parents = set()
        for key in keys:
            path = self._path(key)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # a folder in its place, a folder another user owns
                raise WorkError(f"cannot delete {key} from {self.root}: "
                                f"{exc.strerror or exc}") from None
            faults.checkpoint("object-deleted")
            parents.add(path.parent)
        for folder in parents:  # drop folders the deletes emptied (never the root)
            while folder != self.root and folder.is_relative_to(self.root):
                try:
                    folder.rmdir()
                except OSError:
                    break
                folder = folder.parent

    def flush(self) -> None:
        """syncfs() the storage's filesystem so objects survive a crash before the commit."""
        _sync_filesystem(self.root)


def _sync_filesystem(root: Path) -> None:
    """syncfs() the filesystem holding ``root`` (sync() where there is no syncfs)."""
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        return
    try:
        syncfs = _syncfs()
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


#: how many folders a backend remembers as inside its root: bounded, as an ome-zarr store
#: has a folder per frame (a PNG dataset has one for all its frames)
_FOLDERS_REMEMBERED = 4096


class _BackgroundSync:
    """Syncs the filesystem in a background thread while objects are being written.

    flush() must wait until every object is on disk before the database
    commit. Even with each file's writeback started as it is written, syncfs
    then waits ~1.2 ms per new object on the bench's VM (inodes, bitmaps and
    journal: 0.15 s for 128 frames). A thread that calls syncfs whenever
    objects were written since its last call does that work while later
    frames are encoded, so flush() finds only the last few objects to sync.
    The thread stops when it has caught up; the next write starts another.
    """

    def __init__(self, root: Path):
        self._root = root
        self._lock = threading.Lock()
        self._written = 0
        self._synced = 0
        self._running = False

    def written(self) -> None:
        """One more object was written."""
        if _syncfs() is None:  # without syncfs a sync() would flush every filesystem
            return
        with self._lock:
            self._written += 1
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._run, name="imagingdb-sync", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._synced == self._written:
                    self._running = False
                    return
                target = self._written
            _sync_filesystem(self._root)
            self._synced = target


@functools.lru_cache(maxsize=None)
def _syncfs():
    """libc's syncfs, looked up on first use; None where there is none (not Linux)."""
    import ctypes  # here, not at the top: every start (--help) would pay for it

    function = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    if function is not None:
        function.argtypes = (ctypes.c_int,)
    return function


_SYNC_FILE_RANGE_WRITE = 2


@functools.lru_cache(maxsize=None)
def _sync_file_range():
    """libc's sync_file_range, looked up on first use (ctypes at import would slow --help)."""
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not Linux
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
    return function


def _start_writeback(fd: int) -> None:
    """Ask the kernel to start writing this file to disk now, without waiting.

    flush() must make every object durable before the database commit; if
    the disk writes start only then, a 256 MB upload waits ~0.3 s at the end
    for what could have been written while later frames were being encoded.
    """
    sync_file_range = _sync_file_range()
    if sync_file_range is not None:
        sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def _copy_stream(source: Path, out: BinaryIO, key: str) -> None:
    try:
        with open(source, "rb") as reader:
            shutil.copyfileobj(reader, out, 8 << 20)
    except FileNotFoundError:
        raise KeyError(key) from None


def _copy_file(source: Path, dest: str) -> None:
    """Copy like ``cp``: copy_file_range lets the kernel copy (or share, on XFS/btrfs/NFS 4.2)
    the blocks without moving them through user space; shutil.copyfile where it is refused."""
    if not hasattr(os, "copy_file_range"):  # not Linux
        shutil.copyfile(source, dest)
        return
    with open(source, "rb") as reader, open(dest, "wb") as writer:
        size = os.fstat(reader.fileno()).st_size
        copied = 0
        try:
            while copied < size:
                done = os.copy_file_range(reader.fileno(), writer.fileno(), size - copied)
                if done == 0:
                    break
                copied += done
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                                 errno.EPERM) or copied:
                raise
            shutil.copyfileobj(reader, writer, 1 << 20)


@hookimpl
def register_storage_backends(register):
    register("local", LocalStorage)
