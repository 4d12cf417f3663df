"""Several stores written as one: what ``upload --replicate`` writes through.

Every write (put, copy, delete, flush) goes to each store in turn, so that
when the upload registers its dataset, every store holds every object and
the registration records a replica in each. Reads and age listings come from
the first store (the primary); :meth:`MirroredStorage.list_keys` lists every
store, so that the upload's look at a folder (is it taken? what is stale in
it?) sees objects any of them holds.
"""

from __future__ import annotations

from typing import BinaryIO, Iterable, Iterator

from . import ChunkStream, StorageBackend, StoredObject


class MirroredStorage(StorageBackend):
    """Writes to every one of ``stores`` (the first is read), in order."""

    def __init__(self, stores: list[StorageBackend]):
        if not stores:
            raise ValueError("MirroredStorage needs at least one store")
        self.stores = stores
        self.first = stores[0]
        self.name = "+".join(store.name for store in stores)
        workers = [store.transfer_workers for store in stores if store.transfer_workers]
        self.transfer_workers = max(workers) if workers else None
        # each put finishes with the buffer before the next store's begins
        self.put_takes_buffers = all(store.put_takes_buffers for store in stores)

    def describe(self) -> str:
        return " and ".join(store.describe() for store in self.stores)

    def check(self, writable: bool = False) -> None:
        for store in self.stores:
            store.check(writable)

    def put_bytes(self, key: str, data: bytes) -> None:
        for store in self.stores:
            store.put_bytes(key, data)

    def put_verified(self, key: str, data: bytes) -> None:
        for store in self.stores:
            store.put_verified(key, data)

    def put_fileobj(self, key: str, fileobj: BinaryIO) -> None:
        """Read once: the first store gets the stream, the others a copy of its object."""
        self.first.put_fileobj(key, fileobj)
        for store in self.stores[1:]:
            chunks = iter(self.first.read_chunks(key))
            store.put_fileobj(key, ChunkStream(next(chunks, b""), chunks))

    def copy(self, src_key: str, dst_key: str) -> None:
        for store in self.stores:
            store.copy(src_key, dst_key)

    def get_bytes(self, key: str) -> bytes:
        return self.first.get_bytes(key)

    def get_bytes_into(self, key: str, buffer: bytearray) -> "bytes | memoryview":
        return self.first.get_bytes_into(key, buffer)

    def get_file(self, key: str, dest: str) -> None:
        self.first.get_file(key, dest)

    def exists(self, key: str) -> bool:
        return self.first.exists(key)

    def read_chunks(self, key: str, chunk_size: int = 8 << 20) -> Iterator[bytes]:
        return self.first.read_chunks(key, chunk_size)

    def list_keys(self, prefix: str) -> Iterator[str]:
        seen: set[str] = set()
        for store in self.stores:
            for key in store.list_keys(prefix):
                if key not in seen:
                    seen.add(key)
                    yield key

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        return self.first.list_objects(prefix)

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for store in self.stores:
            store.delete(keys)

    def flush(self) -> None:
        for store in self.stores:
            store.flush()
