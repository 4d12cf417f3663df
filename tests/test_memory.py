"""imagingdb.memory: freed memory given back to the system, where the C library can."""

import ctypes
import platform
import sys

import pytest

from imagingdb import memory

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="malloc_trim is glibc's")


@glibc_only
def test_freed_memory_is_given_back_to_the_system_on_glibc():
    # 50 MB freed in 64 KB blocks (below the mmap threshold: from malloc's heap), each
    # between two still in use, so that no free() can shrink the heap: resident until trimmed
    assert memory._malloc_trim() is not None
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(64 * 1024) for _ in range(1600)]
    for block in blocks:
        ctypes.memset(block, 1, 64 * 1024)
    for block in blocks[::2]:
        libc.free(block)
    before = _rss_kb()
    memory.release_free_memory()
    assert before - _rss_kb() > 30 * 1024
    for block in blocks[1::2]:
        libc.free(block)


def test_it_does_nothing_where_there_is_no_malloc_trim(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    memory.release_free_memory()  # no error: macOS, musl


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
