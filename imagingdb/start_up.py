"""Python's automatic garbage collection, paused while the ``imagingdb`` process starts.

Start-up makes long-lived objects only (modules, classes, the app), yet each of
Python's full garbage collections walks every object made so far: ~20 ms a time
once SQLAlchemy is loaded, and a few fire while the modules load, at moments
that vary from run to run. :func:`pause` turns automatic collection off as the
process starts; :func:`done`, when the command's own work begins (its database
opened, the user's Python run, the demo started), freezes what start-up made
(never walked again: the process holds it to the end anyway) and turns it back
on.
:func:`end`, when the command is over, turns it back on if it is still off
(``--help``, a usage error) and unfreezes what :func:`done` froze, so that a
process that goes on after the command (tests, a script calling
:func:`imagingdb.entry.main`) keeps a heap the collector sees whole; the
``imagingdb`` process itself freezes everything at exit.

Only the ``imagingdb`` command calls :func:`pause`; the Python API never does.
"""

from __future__ import annotations

import gc

_paused = False
_frozen = False


def pause() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def done() -> None:
    """Start-up is over: freeze what it made and resume collection (when :func:`pause` paused it)."""
    global _paused, _frozen
    if _paused:
        _paused = False
        gc.freeze()
        _frozen = True
        gc.enable()


def end() -> None:
    """The command is over: collection on again, and nothing left frozen by :func:`done`."""
    global _paused, _frozen
    if _paused:
        _paused = False
        gc.enable()
    if _frozen:
        _frozen = False
        gc.unfreeze()
