"""Entry point of the single-file executable (``dist/imagingdb``, built by shiv).

shiv's bootstrap has already unpacked the bundled site-packages (under
``$SHIV_ROOT``, default ``~/.shiv``) and put them on ``sys.path``. The executable
must neither depend on nor be broken by the packages of the Python running it,
so it runs isolated (``python3 -I -S``, its shebang); started any other way
(``python3 imagingdb ...``), it starts itself again that way.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    if not (sys.flags.isolated and sys.flags.no_site) and sys.executable:
        os.execv(sys.executable, [sys.executable, "-I", "-S", *sys.argv])
    # Nothing is imported from the archive itself any more; scanning it for plugin
    # entry points would mean reading its whole table of contents on every start.
    archive = os.path.abspath(sys.argv[0])
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != archive]
    from .entry import main as cli_main

    cli_main()
