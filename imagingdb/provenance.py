"""Where a dataset came from: who uploaded it, from where, with what, and what its content is.

Recorded in data_set at registration (schema version 4; NULL in older rows):
``uploaded_by`` (the OS user), ``uploaded_host``, ``uploaded_at`` (UTC),
``imagingdb_version``, ``source_path`` and ``content_sha256``.

``content_sha256`` identifies the source's content, so that the same data
uploaded under a second ID is noticed (upload config ``duplicates``):

- a file kept whole: the sha256 of its bytes (the same as file_global.sha256);
- a dataset of frames: ``frames:`` followed by a digest of its frames, each
  frame being its index (channel, slice, time, position) and the sha256 of its
  pixels, as frames.sha256 holds. The digest is the sum, modulo 2**256, of the
  sha256 of each frame's ``c,z,t,p:sha256`` line (a multiset hash): it does
  not depend on the order frames are stored in, and it is computed in
  constant memory while frames stream, whatever the number of frames.

Two uploads of one source give the same value whatever the layout (png or
ome-zarr) or codec settings, since pixels, not stored bytes, are hashed.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import threading
from datetime import datetime, timezone
from typing import Optional

FRAMES_PREFIX = "frames:"
_MODULUS = 1 << 256


def os_user() -> Optional[str]:
    """The login name of the uploading process (its uid when it has none)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no USER/LOGNAME and no passwd entry: a container
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else None


def host_name() -> Optional[str]:
    return socket.gethostname() or None


def now_utc() -> datetime:
    """The current time in UTC, without a zone (data_set's TIMESTAMP columns hold no zone)."""
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def imagingdb_version() -> str:
    from . import __version__

    return __version__


class FramesDigest:
    """The content digest of a dataset's frames, fed one frame at a time from any thread."""

    def __init__(self) -> None:
        self._sum = 0
        self._count = 0
        self._lock = threading.Lock()

    def add(self, channel: int, slice_: int, time: int, position: int, sha256: str) -> None:
        line = f"{channel},{slice_},{time},{position}:{sha256}".encode()
        value = int.from_bytes(hashlib.sha256(line).digest(), "big")
        with self._lock:
            self._sum = (self._sum + value) % _MODULUS
            self._count += 1

    def hexdigest(self) -> str:
        """``frames:<count>:<64 hex digits>``."""
        return f"{FRAMES_PREFIX}{self._count}:{self._sum:064x}"


def frames_digest(rows) -> str:
    """The digest of frame rows (mappings with channel_idx, slice_idx, time_idx, pos_idx and
    sha256), as :class:`FramesDigest` computes it while an upload streams."""
    digest = FramesDigest()
    for row in rows:
        digest.add(row["channel_idx"], row["slice_idx"], row["time_idx"], row["pos_idx"],
                   row["sha256"])
    return digest.hexdigest()
