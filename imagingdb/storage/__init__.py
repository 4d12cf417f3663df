"""Storage backends: where bytes live, moved by key, nothing else.

A backend knows nothing of datasets, frames or the database: the keys it is
given follow :mod:`imagingdb.layout`, and what the bytes mean is a frame
codec's business (:mod:`imagingdb.codecs`). Keys are checked by
:func:`validate_key` so that none can escape the storage root. Backends are
plugins: see ``register_storage_backends`` in :mod:`imagingdb.hookspecs`.

The rules every backend keeps are stated on :class:`StorageBackend`'s
methods; :func:`imagingdb.testing.check_storage_backend` checks a backend
against each of them, and names the rule it breaks.
"""

from __future__ import annotations

import abc
import hashlib
import os
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


def sha256_of_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    """(hex sha256, bytes) of a stream of chunks: an object's :meth:`StorageBackend.read_chunks`,
    or a file's pieces (:func:`file_sha256`)."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def file_sha256(path: "str | os.PathLike", piece: int = 8 << 20) -> str:
    """The hex sha256 of a local file, read a piece at a time (a file kept whole may be large)."""
    with open(path, "rb") as handle:
        return sha256_of_chunks(iter(lambda: handle.read(piece), b""))[0]


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


class ChunkStream:
    """Chunks of bytes as a read-only file, for put_fileobj (the default :meth:`StorageBackend.copy`)."""

    def __init__(self, first: bytes, rest: Iterator[bytes]):
        self._buffer = bytes(first)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._rest, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing sees it."""

    key: str
    size: int
    modified: float  # last write, POSIX seconds (the store's clock)


class StorageBackend(abc.ABC):
    """What imagingdb needs from a store.

    Every method may be called from many threads at once (uploads, reads and
    verify fan out over a pool). A missing object is a ``KeyError`` from the
    methods that read one; every other failure is an
    :class:`~imagingdb.errors.ImagingDBError` with a one-line message.
    """

    #: the name used in the site config (storage.backend) and upload config (storage)
    name: str = ""
    #: how many concurrent transfers suit this store when the user sets none (None: the
    #: CPU-based default); a remote store of many small objects wants more than a disk
    transfer_workers: Optional[int] = None
    #: True if put_bytes takes any bytes-like object, not only bytes. The upload then
    #: passes each frame as a memoryview of a buffer its thread REUSES for the next
    #: frame as soon as put_bytes returns: such a backend must have written or copied
    #: every byte before it returns, and keep no reference to ``data`` (else the next
    #: frame's bytes would be stored under this key)
    put_takes_buffers: bool = False

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the data lives, for messages (e.g. ``local:/mnt/imaging``, ``s3://bucket``)."""

    @abc.abstractmethod
    def check(self, writable: bool = False) -> None:
        """Raise an ImagingDBError (before any work) if the store is unusable."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically: readers see the old object or the new one.

        With ``put_takes_buffers``, ``data`` may be a memoryview of a buffer the
        caller reuses once this returns: finish with every byte before returning.
        """

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
        the kernel mapping fresh memory for every object. The handshake: a
        memoryview of ``buffer`` is returned only for an object SHORTER than
        the buffer (one byte to spare, so that a file growing while it is
        read is noticed); an object as long as the buffer or longer comes
        back as new bytes, and the caller, seeing ``len(result) >= len(buffer)``,
        grows its buffer. A memoryview result is valid until ``buffer`` is
        used again. KeyError if the object does not exist. This default
        returns :meth:`get_bytes`.
        """
        return self.get_bytes(key)

    @abc.abstractmethod
    def get_file(self, key: str, dest: str) -> None:
        """Copy the object to the local path ``dest``, which does not exist yet (create it,
        never write through an existing file or link); KeyError if the object does not exist."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """True if an object is stored at ``key``."""

    @abc.abstractmethod
    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix`` (a folder-like prefix ending in '/'), as whole keys;
        nothing for a prefix with no objects."""

    @abc.abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove these objects; missing ones are ignored."""

    def copy(self, src_key: str, dst_key: str) -> None:
        """Store a copy of the object at ``src_key`` at ``dst_key``, atomically as put_bytes
        does; KeyError if ``src_key`` does not exist. The copy counts as a new write (its
        age starts now: ``imagingdb gc`` leaves it alone for its grace period). This default
        streams the bytes through this process; backends that can copy in place override it.
        """
        chunks = iter(self.read_chunks(src_key))
        first = next(chunks, b"")  # a missing object is a KeyError here, before any write
        self.put_fileobj(dst_key, ChunkStream(first, chunks))

    def put_verified(self, key: str, data: bytes) -> None:
        """:meth:`put_bytes`, then make sure the store holds exactly ``data`` at ``key``
        (``imagingdb sync``'s copies), raising a WorkError if not. This default reads the
        object back; a store that checks a checksum sent with the bytes overrides it."""
        self.put_bytes(key, data)
        self.check_written(key, data)

    def check_written(self, key: str, data: bytes) -> None:
        """Read ``key`` back: a WorkError unless it holds exactly ``data``."""
        try:
            back = self.get_bytes(key)
        except KeyError:
            back = None
        if back != data:
            raise WorkError(f"{self.describe()}: {key} differs from what was written once "
                            "read back")

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
