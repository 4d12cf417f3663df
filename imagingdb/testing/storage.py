"""A storage backend's contract, checked: run :func:`check_storage_backend` in a plugin's tests.

Each check exercises one rule stated on :class:`imagingdb.storage.StorageBackend`
the way imagingdb relies on it, and a broken rule raises
:class:`StorageContractError` naming the rule. The backend is written to
under the prefix ``imagingdb-contract-check/`` only, and those objects are
deleted at the end.
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import Callable

from ..storage import StorageBackend

PREFIX = "imagingdb-contract-check"


class StorageContractError(AssertionError):
    """A storage backend breaks one of the rules imagingdb relies on."""


def _require(condition: bool, rule: str, detail: str) -> None:
    if not condition:
        raise StorageContractError(f"{rule}: {detail}")


def _payload(size: int, seed: int) -> bytes:
    return bytes((seed + 7 * n) % 251 for n in range(size))


def check_reused_buffers(storage: StorageBackend) -> None:
    """put_takes_buffers: every byte is written before put_bytes returns, no reference kept."""
    if not storage.put_takes_buffers:
        return
    buffer = bytearray(_payload(4096, 1))
    first = bytes(buffer)
    storage.put_bytes(f"{PREFIX}/buffers/first", memoryview(buffer))
    buffer[:] = _payload(4096, 2)  # the upload's thread reuses its buffer for the next frame
    storage.put_bytes(f"{PREFIX}/buffers/second", memoryview(buffer))
    storage.flush()
    _require(storage.get_bytes(f"{PREFIX}/buffers/first") == first,
             "put_takes_buffers", "an object holds bytes written into the caller's buffer "
             "after put_bytes returned: finish with every byte before returning")


def check_round_trip(storage: StorageBackend) -> None:
    """put_bytes / put_fileobj, then get_bytes, read_chunks and get_file give the bytes back."""
    data = _payload(70_000, 3)
    storage.put_bytes(f"{PREFIX}/round-trip/bytes", data)
    storage.put_fileobj(f"{PREFIX}/round-trip/stream", io.BytesIO(data))
    storage.flush()
    for key in (f"{PREFIX}/round-trip/bytes", f"{PREFIX}/round-trip/stream"):
        _require(storage.get_bytes(key) == data, "get_bytes", f"{key} came back different")
        chunks = b"".join(storage.read_chunks(key, chunk_size=16_384))
        _require(chunks == data, "read_chunks", f"{key}'s chunks do not add up to the object")
    with tempfile.TemporaryDirectory() as folder:
        dest = os.path.join(folder, "copy")
        storage.get_file(f"{PREFIX}/round-trip/bytes", dest)
        with open(dest, "rb") as handle:
            _require(handle.read() == data, "get_file", "the copy differs from the object")


def check_buffer_handshake(storage: StorageBackend) -> None:
    """get_bytes_into: a view only for an object shorter than the buffer, else new bytes."""
    small, large = _payload(1000, 4), _payload(5000, 5)
    storage.put_bytes(f"{PREFIX}/into/small", small)
    storage.put_bytes(f"{PREFIX}/into/large", large)
    storage.put_bytes(f"{PREFIX}/into/exact", small)
    buffer = bytearray(2000)
    got = storage.get_bytes_into(f"{PREFIX}/into/small", buffer)
    _require(bytes(got) == small, "get_bytes_into", "an object shorter than the buffer came "
             "back different")
    got = storage.get_bytes_into(f"{PREFIX}/into/large", buffer)
    _require(bytes(got) == large and len(got) >= len(buffer), "get_bytes_into",
             "an object longer than the buffer must come back whole, as new bytes")
    exact = bytearray(len(small))
    got = storage.get_bytes_into(f"{PREFIX}/into/exact", exact)
    _require(bytes(got) == small, "get_bytes_into", "an object as long as the buffer came "
             "back different")
    if isinstance(got, memoryview):
        _require(got.obj is not exact, "get_bytes_into", "an object as long as the buffer was "
                 "returned as a view of it: the caller cannot tell that it filled the buffer")


def check_missing_objects(storage: StorageBackend) -> None:
    """Reading an object that does not exist is a KeyError; deleting one is no error."""
    key = f"{PREFIX}/missing/none"
    readers: dict[str, Callable[[], object]] = {
        "get_bytes": lambda: storage.get_bytes(key),
        "get_bytes_into": lambda: storage.get_bytes_into(key, bytearray(10)),
        "read_chunks": lambda: list(storage.read_chunks(key)),
    }
    with tempfile.TemporaryDirectory() as folder:
        readers["get_file"] = lambda: storage.get_file(key, os.path.join(folder, "copy"))
        for name, read in readers.items():
            try:
                read()
            except KeyError:
                continue
            raise StorageContractError(f"{name}: a missing object must raise KeyError")
    _require(not storage.exists(key), "exists", "a missing object exists")
    storage.delete([key])  # must not raise


def check_listing_and_delete(storage: StorageBackend) -> None:
    """list_keys gives whole keys under a prefix only; delete removes exactly what it is given."""
    keys = [f"{PREFIX}/list/a/one", f"{PREFIX}/list/a/two", f"{PREFIX}/list/b/three"]
    for key in keys:
        storage.put_bytes(key, b"x")
    storage.flush()
    listed = sorted(storage.list_keys(f"{PREFIX}/list/a/"))
    _require(listed == keys[:2], "list_keys", f"{PREFIX}/list/a/ listed {listed}, not {keys[:2]}")
    _require(list(storage.list_keys(f"{PREFIX}/list/nothing/")) == [], "list_keys",
             "a prefix with no objects must list nothing")
    storage.delete(keys[:1])
    _require(not storage.exists(keys[0]) and storage.exists(keys[1]), "delete",
             "delete must remove the keys it is given and only those")


def check_copy(storage: StorageBackend) -> None:
    """copy: the bytes under a new key, the source kept; a copy over an existing object replaces
    it; copying a missing object is a KeyError (``imagingdb rename`` copies every object)."""
    data = _payload(50_000, 6)
    source, target = f"{PREFIX}/copy/source", f"{PREFIX}/copy/nested/target"
    storage.put_bytes(source, data)
    storage.put_bytes(target, b"old")
    storage.copy(source, target)
    storage.copy(source, target)  # again: a rerun of a rename copies what it copied before
    storage.flush()
    _require(storage.get_bytes(target) == data, "copy", "the copy differs from the object")
    _require(storage.get_bytes(source) == data, "copy", "the source changed")
    listed = sorted(storage.list_keys(f"{PREFIX}/copy/"))
    _require(listed == [f"{PREFIX}/copy/nested/target", source], "copy",
             f"{PREFIX}/copy/ listed {listed}: a copy must leave no other object behind")
    try:
        storage.copy(f"{PREFIX}/copy/missing", f"{PREFIX}/copy/never")
    except KeyError:
        pass
    else:
        raise StorageContractError("copy: copying a missing object must raise KeyError")
    _require(not storage.exists(f"{PREFIX}/copy/never"), "copy",
             "copying a missing object wrote the target")


#: the longest file names most filesystems take (255 bytes), in one- to four-byte characters
LONG_NAMES = ("n" * 251 + ".txt", "é" * 125 + "a.txt", "日" * 83 + ".txt", "🔬" * 62 + ".txt")


def check_put_verified(storage: StorageBackend) -> None:
    """put_verified: the bytes stored as put_bytes stores them, replacing an older object
    (``imagingdb sync`` writes every copy with it)."""
    key = f"{PREFIX}/verified/object"
    storage.put_verified(key, _payload(70_000, 9))
    data = _payload(50_000, 10)
    storage.put_verified(key, data)
    _require(storage.get_bytes(key) == data, "put_verified", "the object differs from what was put")
    listed = list(storage.list_keys(f"{PREFIX}/verified/"))
    _require(listed == [key], "put_verified",
             f"{PREFIX}/verified/ listed {listed}: it must leave no other object behind")
    storage.delete([key])


def check_long_names(storage: StorageBackend) -> None:
    """A key whose last part is as long as a file name may be (255 bytes) is stored and read
    back: a file kept whole keeps its name, and every name a filesystem allows is a source."""
    for name in LONG_NAMES:
        key = f"{PREFIX}/long/{name}"
        storage.put_bytes(key, b"long")
        storage.put_fileobj(key, io.BytesIO(b"longer"))
        storage.flush()
        _require(storage.get_bytes(key) == b"longer", "long names",
                 f"a {len(name.encode())}-byte name did not round-trip")
    listed = sorted(storage.list_keys(f"{PREFIX}/long/"))
    expected = sorted(f"{PREFIX}/long/{name}" for name in LONG_NAMES)
    _require(listed == expected, "long names", "list_keys must list long names whole, "
             "and no temporary object is left beside them")


CHECKS = (check_reused_buffers, check_round_trip, check_buffer_handshake,
          check_missing_objects, check_listing_and_delete, check_copy, check_put_verified,
          check_long_names)


def check_storage_backend(storage: StorageBackend) -> None:
    """Run every check on ``storage`` (writable); raise StorageContractError on the first rule broken."""
    storage.check(writable=True)
    try:
        for check in CHECKS:
            check(storage)
    finally:
        storage.delete(list(storage.list_keys(f"{PREFIX}/")))
