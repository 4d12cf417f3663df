"""A test seam: kill this process at a named point of an upload, to prove crash safety.

``IMAGINGDB_TEST_KILL_AT=<stage>[:<n>[:INT]]`` makes the ``n``-th call (default
the first) of :func:`checkpoint` with that stage send SIGKILL to the process, as a
power cut or an OOM kill would (``:INT``: SIGINT, as Ctrl-C does). tests/test_crash_recovery.py runs real
``imagingdb upload`` processes with it. Unset (always, outside those tests),
a checkpoint costs one environment lookup.

Stages, in the order an upload passes them:

- ``folder-chosen``: the attempt has taken the folder it writes into (for a
  first upload, its marker is in the dataset folder), no frame stored yet;
- ``object-written``: an object's bytes are in a temporary file, not yet
  renamed into place (local storage);
- ``object-stored``: an object is in place (each frame, or the whole file);
- ``before-register``: every object is stored and flushed, no row written yet;
- ``before-commit``: the dataset's rows are inserted, the transaction not committed;
- ``after-commit``: the transaction is committed, the objects the dataset
  no longer uses (an overwrite's old generation) not yet deleted;
- ``object-deleted``: an object is deleted (local storage; also during gc
  and the clean-up of a failed upload).
"""

from __future__ import annotations

import os
import signal
import threading

KILL_AT_ENV = "IMAGINGDB_TEST_KILL_AT"

_lock = threading.Lock()
_passes: dict[str, int] = {}


def checkpoint(stage: str) -> None:
    """SIGKILL this process if ``$IMAGINGDB_TEST_KILL_AT`` names this pass of ``stage``."""
    wanted = os.environ.get(KILL_AT_ENV)
    if not wanted:
        return
    name, _, rest = wanted.partition(":")
    if name != stage:
        return
    count, _, how = rest.partition(":")
    with _lock:  # frames are stored by a thread pool: count passes exactly
        _passes[stage] = _passes.get(stage, 0) + 1
        if _passes[stage] == int(count or 1):
            os.kill(os.getpid(), signal.SIGINT if how == "INT" else signal.SIGKILL)
