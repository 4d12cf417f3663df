"""How a command meets the terminal: one ``Error:`` line, the exit codes, no traceback.

Every error a command raises becomes one line on stderr starting ``Error:``
and the exit code of SPEC section 4 (2: bad usage or input found before any
work, nothing changed; 1: a failure during the work; 130: interrupted).
Tracebacks are printed only with ``--debug``. The typer app of
:mod:`imagingdb.cli` is built on :class:`ImagingDBGroup`.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from typing import Iterator, Optional

import typer
from typer.core import TyperGroup

from .errors import ImagingDBError
from .terminal import printable

#: what an interrupted command kept, set by the command as it goes (None: the general line)
interrupted_note: Optional[str] = None

INTERRUPTED = ("interrupted: nothing half-done was kept (what finished before stays); run the "
               "same command again to finish")


class ImagingDBGroup(TyperGroup):
    """Turns every error into one ``Error:`` line and the exit codes of SPEC section 4."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        global interrupted_note
        interrupted_note = None  # each command says its own
        args = list(sys.argv[1:] if args is None else args)
        debug = _global_flag(args, "--debug")
        try:
            with warning_lines():
                result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Exit as exc:
            result = exc.exit_code
        except (typer.Abort, KeyboardInterrupt):
            result = 130
        except ImagingDBError as exc:
            _error(str(exc), debug)
            sys.exit(exc.exit_code)
        except Exception as exc:  # noqa: BLE001 - never a traceback unless --debug
            if _is_click_error(exc):
                code = _click_error(exc, debug, args)
            else:
                _error(f"unexpected {type(exc).__name__}: {exc}; run again with --debug "
                       "for details", debug)
                code = 1
            sys.exit(code)
        if result == 130:  # typer turns a KeyboardInterrupt in a command into exit code 130
            _error(interrupted_note or INTERRUPTED, debug)
        sys.exit(result if isinstance(result, int) else 0)


@contextlib.contextmanager
def warning_lines() -> Iterator[None]:
    """imagingdb's warnings (:class:`~imagingdb.errors.ImagingDBWarning`) that no command
    collects itself, each as one ``Warning:`` line on stderr as it happens."""
    import warnings

    from .errors import ImagingDBWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, ImagingDBWarning):
            print(f"Warning: {printable(' '.join(str(message).split()))}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():  # restores the filters and showwarning after the command
        warnings.simplefilter("default", ImagingDBWarning)  # each message once per command
        warnings.showwarning = show
        yield


def _is_click_error(exc: Exception) -> bool:
    # Typer may vendor its own copy of click, so recognise its exceptions by shape.
    return hasattr(exc, "format_message") and hasattr(exc, "exit_code")


def _click_error(exc: Exception, debug: bool, args: list[str]) -> int:
    """Print a click usage/parameter error as one line; returns the exit code."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        print(ctx.get_help())
        return 0
    message = exc.format_message()
    hint = _global_option_hint(exc, ctx, args)
    if hint:
        message = hint
    elif ctx is not None and exc.exit_code == 2:
        command = " ".join(ctx.command_path.split()[1:])
        message += f" (see: imagingdb {command + ' ' if command else ''}--help)"
    _error(message, debug)
    return exc.exit_code


def _global_option_hint(exc: Exception, ctx, args: list[str]) -> Optional[str]:
    """For an option of imagingdb itself given after the command (``imagingdb query
    --site-config lab.yaml``): the message saying so, with the command line put right."""
    option = getattr(exc, "option_name", None)
    if type(exc).__name__ != "NoSuchOption" or ctx is None or ctx.parent is None or not option:
        return None
    root = ctx.find_root().command
    param = next((p for p in root.params if option in p.opts), None)
    if param is None:
        return None
    moved = [option]
    rest = list(args)
    at = next((n for n, arg in enumerate(rest) if arg == option or arg.startswith(option + "=")),
              None)
    if at is not None:
        takes_value = not getattr(param, "is_flag", False) and "=" not in rest[at]
        moved = rest[at:at + (2 if takes_value else 1)]
        del rest[at:at + len(moved)]
    fixed = " ".join(shlex.quote(arg) for arg in ["imagingdb", *moved, *rest])
    command = " ".join(ctx.command_path.split()[1:])
    return (f"{option} is an option of imagingdb itself, not of {command}: give it "
            f"before the command, e.g. {fixed}")


def _global_flag(args: list[str], flag: str) -> bool:
    for arg in args:
        if arg == flag:
            return True
        if not arg.startswith("-"):
            return False  # the command name: global options end here
    return False


def _error(message: str, debug: bool) -> None:
    if debug:
        import traceback

        exc = sys.exc_info()[1]
        if exc is not None:  # its messages may quote data: escaped, one line per line
            for line in traceback.format_exc().splitlines():
                print(printable(line), file=sys.stderr)
    first_line = " ".join(str(message).split())
    print(f"Error: {printable(first_line)}", file=sys.stderr)
