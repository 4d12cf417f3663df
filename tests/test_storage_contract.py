"""The storage backend contract: the built-in backends keep it, and a backend breaking a rule
is caught by imagingdb.testing.check_storage_backend with the rule named."""

from __future__ import annotations

import threading

import pytest

from imagingdb.storage import StorageBackend
from imagingdb.storage.local import LocalStorage
from imagingdb.storage.s3 import S3Storage
from imagingdb.testing import StorageContractError, check_storage_backend


def test_local_storage_keeps_the_contract(tmp_path):
    check_storage_backend(LocalStorage(root=tmp_path / "store"))
    assert list((tmp_path / "store").rglob("*.*")) == []  # the check cleans up after itself


def test_s3_storage_keeps_the_contract(s3_bucket):
    store = S3Storage(bucket=s3_bucket.name, endpoint_url=s3_bucket.endpoint_url,
                      region=s3_bucket.region)
    check_storage_backend(store)
    assert list(store.list_keys("")) == []


class CopiesByDefault(LocalStorage):
    """A backend with no copy of its own, as a plugin written before copy existed."""

    copy = StorageBackend.copy


def test_the_default_copy_keeps_the_contract(tmp_path):
    check_storage_backend(CopiesByDefault(root=tmp_path / "store"))
    assert list((tmp_path / "store").rglob("*.*")) == []


class WritesLater(LocalStorage):
    """Claims put_takes_buffers but writes each object on flush, from the caller's buffer."""

    def __init__(self, root):
        super().__init__(root=root)
        self._pending = []
        self._lock = threading.Lock()

    def put_bytes(self, key, data):
        with self._lock:
            self._pending.append((key, data))  # a reference to the caller's buffer: the bug

    def flush(self):
        with self._lock:
            pending, self._pending = self._pending, []
        for key, data in pending:
            super().put_bytes(key, data)
        super().flush()


class ViewOfAFullBuffer(LocalStorage):
    """Hands back a view of the buffer even when the object filled it."""

    def get_bytes_into(self, key, buffer):
        data = self.get_bytes(key)
        if len(data) <= len(buffer):
            buffer[:len(data)] = data
            return memoryview(buffer)[:len(data)]
        return data


class SilentOnMissing(LocalStorage):
    """Returns empty bytes for an object that does not exist."""

    def get_bytes(self, key):
        try:
            return super().get_bytes(key)
        except KeyError:
            return b""


@pytest.mark.parametrize("backend, rule", [
    (WritesLater, "put_takes_buffers: an object holds bytes written into the caller's buffer"),
    (ViewOfAFullBuffer, "get_bytes_into: an object as long as the buffer was returned as a view"),
    (SilentOnMissing, "get_bytes: a missing object must raise KeyError"),
])
def test_a_backend_breaking_a_rule_is_caught_with_the_rule_named(tmp_path, backend, rule):
    with pytest.raises(StorageContractError, match=rule):
        check_storage_backend(backend(tmp_path / "store"))


def test_importing_the_testing_package_loads_no_numpy_or_tifffile():
    import subprocess
    import sys

    code = ("import sys, imagingdb.testing; "
            "print([m for m in ('numpy', 'tifffile') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
