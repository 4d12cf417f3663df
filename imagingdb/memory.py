"""Memory the process no longer uses, given back to the system.

glibc's malloc keeps freed memory for reuse instead of returning it, and a long upload's
mix of short-lived buffers (each page's tags and metadata, each frame's encoded bytes,
in several threads' arenas) with long-lived ones leaves its heaps fragmented: freed
pages stay resident behind live blocks. Over 8,192 frames that grew an upload's RSS by
~10 MB that it was not using; :func:`release_free_memory` now and then (glibc's
``malloc_trim(0)``, which also releases the free pages inside a heap) keeps the RSS near
what is live (docs/performance.md, "Upload RSS"). Elsewhere (macOS, musl) it does nothing.

A closed TIFF reader is cyclic garbage (tifffile's file, pages and tags refer to each
other), which only the cycle collector frees, and rarely: an 8,192-frame Micro-Manager
OME-TIFF's two readers (the format's detection and the metadata pass) each kept a 3 MB
copy of its OME-XML until the upload ended. ``collect=True`` runs the collector first
(~10-50 ms: for large acquisitions, not for each of a thousand small ones).
"""

from __future__ import annotations

import functools
import gc
import sys
from typing import Any, Optional


def release_free_memory(collect: bool = False) -> None:
    """Return the C allocator's free pages to the system, where it can (glibc); with
    ``collect``, after collecting cyclic garbage."""
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=None)
def _malloc_trim() -> Optional[Any]:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the process runs on
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim
