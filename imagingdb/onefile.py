"""Entry point of the single-file executable (``dist/imagingdb``, built by shiv).

shiv's bootstrap has already unpacked the bundled site-packages (under
``$SHIV_ROOT``, default ``~/.shiv``) and put them on ``sys.path``. The executable
must neither depend on nor be broken by the packages of the Python running it,
so it runs isolated (``python3 -I -S``, its shebang); started any other way
(``python3 imagingdb ...``), it starts itself again that way.

Its compiled packages (numpy, numcodecs...) load only into the Python minor
version and platform it was built with, which the build records in
``_built_for.json`` beside this module. Any other interpreter is refused
before a command runs, in one line that names both: without the check, some
commands would run and others fail deep inside numpy's import.

This module is written for any Python 3, so that an old interpreter gets the
one-line refusal, not a syntax error.
"""

import json
import os
import sys

BUILT_FOR = "_built_for.json"


def interpreter_problem(built_for, version_info, platform, machine):
    """Why this interpreter cannot run the executable, or None. ``built_for`` is the build's
    record: {"python": "3.11", "platform": "linux", "machine": "x86_64"}."""
    found = "Python {}.{} on {} {}".format(version_info[0], version_info[1], platform, machine)
    wanted = "Python {} on {} {}".format(built_for["python"], built_for["platform"],
                                         built_for["machine"])
    if found == wanted:
        return None
    return ("this imagingdb executable was built for {}; it was started by {} ({}): run it "
            "with that Python (e.g. python{} imagingdb ...), or build one for this machine "
            "with make zipapp".format(wanted, found, sys.executable or "python3",
                                      built_for["python"]))


def check_interpreter():
    """Exit with one Error: line (code 2) if this Python is not the build's."""
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), BUILT_FOR)) as handle:
            built_for = json.load(handle)
    except OSError:  # not built by scripts/build_zipapp.py (an installed package): no check
        return
    problem = interpreter_problem(built_for, sys.version_info, sys.platform, os.uname().machine
                                  if hasattr(os, "uname") else "unknown")
    if problem:
        sys.stderr.write("Error: {}\n".format(problem))
        sys.exit(2)


def main():
    check_interpreter()
    if not (sys.flags.isolated and sys.flags.no_site) and sys.executable:
        os.execv(sys.executable, [sys.executable, "-I", "-S", *sys.argv])
    # Nothing is imported from the archive itself any more; scanning it for plugin
    # entry points would mean reading its whole table of contents on every start.
    archive = os.path.abspath(sys.argv[0])
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != archive]
    from .entry import main as cli_main

    cli_main()
