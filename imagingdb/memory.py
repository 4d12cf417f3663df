"""Memory the process no longer uses, given back to the system.

glibc's malloc keeps freed memory for reuse instead of returning it, and a long upload's
mix of short-lived buffers (each page's tags and metadata, each frame's encoded bytes,
in several threads' arenas) with long-lived ones leaves its heaps fragmented: freed
pages stay resident behind live blocks. Over 8,192 frames that grew an upload's RSS by
~10 MB that it was not using; :func:`release_free_memory` now and then (glibc's
``malloc_trim(0)``, which also releases the free pages inside a heap) keeps the RSS near
what is live (docs/performance.md, "Upload RSS"). Elsewhere (macOS, musl) it does nothing.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Optional


def release_free_memory() -> None:
    """Return the C allocator's free pages to the system, where it can (glibc)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=None)
def _malloc_trim() -> Optional[Any]:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None).malloc_trim  # the C library the process runs on
    except (OSError, AttributeError):  # not glibc
        return None
