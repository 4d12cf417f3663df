"""The ``imagingdb`` process: start-up choices made before a command runs, then the CLI.

Kept out of :mod:`imagingdb.cli` (commands only) because they are about the
process, not about any command:

- when the command line names a built-in command, plugins are not loaded and
  the app keeps that command alone: no other can be the one that runs, and
  scanning the installed packages' entry points, or turning ~25 commands into
  Click's, costs start-up time every user feels;
- no built-in command does linear algebra, but OpenBLAS starts a thread per
  core when numpy is imported, and they spin for ~0.1 s of CPU that the
  upload's encoding threads need (a user's own setting wins);
- start-up makes long-lived objects only (modules, classes, the app), yet each
  of Python's full garbage collections walks all of them, ~20 ms a time once
  SQLAlchemy is loaded: automatic collection is paused until the command's own
  work begins (:mod:`.start_up`);
- Python's last garbage collections at exit walk every object the libraries
  made (SQLAlchemy, numpy, tifffile...): ~0.15 s after an upload. Objects
  frozen at exit are skipped; the process is ending, so nothing is kept longer.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Optional

from . import start_up

_GLOBAL_OPTIONS_WITH_VALUE = ("--site-config", "--login")
#: imagingdb's own options that answer before any command runs
_TOP_LEVEL_FLAGS = frozenset(("-h", "--help", "--version"))


def command_word(args: list[str]) -> Optional[str]:
    """The command named in ``args`` after the global options, if any."""
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg in _GLOBAL_OPTIONS_WITH_VALUE:
            args = args[1:]
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: Optional[list[str]] = None) -> None:
    """The ``imagingdb`` console script."""
    start_up.pause()
    try:
        _main(argv)
    finally:
        start_up.end()


def _main(argv: Optional[list[str]]) -> None:
    import typer

    from .cli import add_plugin_commands, builtin_command_names, keep_only, make_app

    args = list(sys.argv[1:] if argv is None else argv)
    app = make_app(plugin_commands=False)
    word = command_word(args)
    if word in builtin_command_names(app):
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        if not _TOP_LEVEL_FLAGS.intersection(args[:args.index(word)]):
            keep_only(app, word)  # `imagingdb --help query` is the help of every command
    else:
        add_plugin_commands(app)
        start_up.end()  # a plugin's command may do anything: collection is on before it runs
    atexit.register(gc.freeze)
    command = typer.main.get_command(app)
    command.main(args=argv, prog_name="imagingdb")
