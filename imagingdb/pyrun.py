"""``imagingdb python``: a Python with imagingdb and every package it carries importable.

Installed with pip, that is the environment's own ``python``. The single-file
executable has no such Python beside it: the machine's ``python3`` lacks numpy
(and should), so this command runs Python inside the executable's own process,
with its bundled packages on the path, the way ``python`` runs:

    imagingdb python analysis.py ARGS...     a script, as __main__, with sys.argv
    imagingdb python -c "import imagingdb; print(imagingdb.__version__)"
    imagingdb python -m MODULE ARGS...       a module, as __main__
    imagingdb python                         an interactive session
"""

from __future__ import annotations

import sys
from typing import Sequence

from .errors import InputError

#: the frames between imagingdb and the program run, left out of its tracebacks
_OWN_FRAMES = (__file__, "<frozen runpy>")


def run(args: Sequence[str]) -> int:
    """Run ``args`` as the ``python`` command line would; returns the exit code."""
    import runpy

    args = list(args)
    if not args or args[0] in ("-", "-c", "-m"):
        sys.path.insert(0, "")  # the working folder, as python puts it first for these
    if not args or args[0] == "-":
        if args == ["-"] or not sys.stdin.isatty():
            return _run_code(sys.stdin.read(), "<stdin>", ["-", *args[1:]])
        import code

        sys.argv = [""]
        code.interact(banner=f"Python {sys.version.split()[0]} with imagingdb: "
                             "import imagingdb; db = imagingdb.connect()", exitmsg="")
        return 0
    first = args[0]
    if first in ("-c", "-m"):
        if len(args) < 2:
            raise InputError(f"imagingdb python {first} needs an argument, e.g. "
                             + ("-c 'import imagingdb'" if first == "-c" else "-m json.tool"))
        if first == "-c":
            return _run_code(args[1], "<string>", ["-c", *args[2:]])
        sys.argv = [args[1], *args[2:]]
        return _exit_code(lambda: runpy.run_module(args[1], run_name="__main__", alter_sys=True))
    if first.startswith("-"):
        raise InputError(f"imagingdb python takes a script, -c CODE or -m MODULE, not {first!r}")
    import os

    if not os.path.isfile(first):
        raise InputError(f"cannot open script {first}: no such file")
    sys.argv = list(args)
    sys.path.insert(0, os.path.dirname(os.path.abspath(first)))
    return _exit_code(lambda: runpy.run_path(first, run_name="__main__"))


def _run_code(source: str, name: str, argv: list[str]) -> int:
    sys.argv = argv
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    return _exit_code(lambda: exec(compile(source, name, "exec"), namespace))  # noqa: S102


def _exit_code(call) -> int:
    """Run ``call`` as Python runs a program: SystemExit gives the code, an exception its
    traceback (it is the user's program, so the whole traceback) and 1."""
    try:
        call()
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - printed as python prints it
        import traceback

        tb = exc.__traceback__
        while tb is not None and (tb.tb_frame.f_code.co_filename in _OWN_FRAMES
                                  or tb.tb_frame.f_code.co_filename.endswith("/runpy.py")):
            tb = tb.tb_next  # the program's frames only, as python shows them
        traceback.print_exception(type(exc), exc, tb)
        return 1
    return 0
