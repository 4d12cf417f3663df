"""Storage backends: move bytes by key, nothing else.

A backend knows nothing of datasets or the database. Keys use the original
imagingDB's layout (``raw_files/<ID>/<name>``, ``raw_frames/<ID>/im_c000_z000_t000_p000.png``)
and are checked by :func:`validate_key` so no key can escape the storage root.
Backends are plugins: see ``register_storage_backends`` in :mod:`imagingdb.hookspecs`.
"""

from __future__ import annotations

import abc
import hashlib
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator, Optional

from ..errors import InputError, WorkError


def validate_key(key: str) -> str:
    """Refuse keys that could leave the storage root or that stores treat specially."""
    if not isinstance(key, str) or not key:
        raise InputError("empty storage key")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise InputError(f"unsafe storage key {key!r}")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InputError(f"unsafe storage key {key!r}")
    return key


def validate_object_name(name: str, what: str = "file name") -> str:
    """A single key segment (a file name kept in storage): no separators, no '..'."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise InputError(f"unsafe {what} {name!r}: it must be a plain name without '/' or '..'")
    return name


class HashingReader:
    """A read-only file wrapper that computes sha256 and counts bytes as it is read."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._hash = hashlib.sha256()
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self._hash.update(chunk)
        self.bytes_read += len(chunk)
        return chunk

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing sees it."""

    key: str
    size: int
    modified: float  # last write, POSIX seconds (the store's clock)


class StorageBackend(abc.ABC):
    """What imagingdb needs from a store. Implementations must be thread-safe."""

    #: the name used in the site config (storage.backend) and upload config (storage)
    name: str = ""
    #: how many concurrent transfers suit this store when the user sets none (None: the
    #: CPU-based default); a remote store of many small objects wants more than a disk
    transfer_workers: Optional[int] = None
    #: True if put_bytes takes any bytes-like object (a memoryview of a buffer the
    #: caller reuses), not only bytes; upload then passes frames without a copy
    put_takes_buffers: bool = False

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the data lives, for messages (e.g. ``local:/mnt/imaging``, ``s3://bucket``)."""

    @abc.abstractmethod
    def check(self, writable: bool = False) -> None:
        """Raise an ImagingDBError (before any work) if the store is unusable."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically: readers see the old object or the new one."""

    @abc.abstractmethod
    def put_fileobj(self, key: str, fileobj: BinaryIO) -> None:
        """Store a stream read sequentially to its end (for large whole files)."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; KeyError if it does not exist."""

    def get_bytes_into(self, key: str, buffer: bytearray) -> "bytes | memoryview":
        """The object's bytes: read into ``buffer`` if they fit and the store can, else new bytes.

        For callers that read many objects one after another and are done
        with each before the next (``Dataset.read``): reusing a buffer spares
        the kernel mapping fresh memory for every object. A memoryview result
        is only valid until ``buffer`` is used again. KeyError if the object
        does not exist. This default returns :meth:`get_bytes`.
        """
        return self.get_bytes(key)

    @abc.abstractmethod
    def get_file(self, key: str, dest: str) -> None:
        """Copy the object to the local path ``dest`` (which does not exist yet)."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """True if an object is stored at ``key``."""

    @abc.abstractmethod
    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix`` (a folder-like prefix ending in '/')."""

    @abc.abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove these objects; missing ones are ignored."""

    def flush(self) -> None:
        """Make every object put so far durable (called before the database commit)."""

    def read_chunks(self, key: str, chunk_size: int = 8 << 20) -> Iterator[bytes]:
        """The object's bytes in pieces, for hashing large files in constant memory.

        KeyError if it does not exist. Backends that can stream override this.
        """
        yield self.get_bytes(key)

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Every object under ``prefix`` with its size and age (``imagingdb gc`` needs the age)."""
        raise WorkError(f"storage backend {self.name!r} cannot list objects with their age, "
                        "which imagingdb gc needs to leave running uploads alone")
