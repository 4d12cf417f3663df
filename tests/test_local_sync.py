"""Local storage syncs written objects in the background, so flush() has little left to do."""

import threading
import time

from imagingdb.storage import local
from imagingdb.storage.local import LocalStorage


def _sync_threads():
    return [t for t in threading.enumerate() if t.name == "imagingdb-sync"]


def _wait_caught_up(storage, timeout=30.0):
    background = storage._background_sync
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with background._lock:
            if not background._running:
                return background
        time.sleep(0.01)
    raise AssertionError("the background sync never caught up")


def test_background_sync_catches_up_and_stops(tmp_path):
    storage = LocalStorage(tmp_path / "store")
    storage.check(writable=True)
    for n in range(20):
        storage.put_bytes(f"raw_frames/X/im_{n:03d}.png", bytes(1000) * (n + 1))
    background = _wait_caught_up(storage)
    assert background._synced == background._written == 20
    for thread in _sync_threads():
        thread.join(timeout=10)
    assert not _sync_threads()
    storage.flush()
    assert sorted(storage.list_keys("raw_frames/X/")) == [
        f"raw_frames/X/im_{n:03d}.png" for n in range(20)]


def test_syncs_again_after_new_writes(tmp_path, monkeypatch):
    calls = []
    real = local._sync_filesystem
    monkeypatch.setattr(local, "_sync_filesystem", lambda root: (calls.append(root), real(root)))
    storage = LocalStorage(tmp_path / "store")
    storage.check(writable=True)
    storage.put_bytes("a/1", b"one")
    _wait_caught_up(storage)
    first = len(calls)
    assert first >= 1 and set(calls) == {storage.root}
    storage.put_bytes("a/2", b"two")
    background = _wait_caught_up(storage)
    assert len(calls) > first
    assert background._synced == background._written == 2
