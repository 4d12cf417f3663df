"""Python's automatic garbage collection, paused while the ``imagingdb`` process starts.

Start-up makes long-lived objects only (modules, classes, the app), yet each of
Python's full garbage collections walks every object made so far: ~20 ms a time
once SQLAlchemy is loaded, and a few fire while the modules load, at moments
that vary from run to run. :func:`pause` turns automatic collection off as the
process starts; :func:`done`, when the command's own work begins (its database
opened, or the user's Python run), freezes what start-up made (never walked
again, never freed: the process holds it to the end anyway) and turns it back
on. :func:`end` turns it back on without freezing, for a command that ended
before its work began (``--help``, a usage error) in a process that goes on, as
tests do.

Only the ``imagingdb`` process calls :func:`pause`; the Python API never does.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def done() -> None:
    """Start-up is over: freeze what it made and resume collection (when :func:`pause` paused it)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def end() -> None:
    """Resume collection, if still paused, freezing nothing."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()
