"""imagingdb-ndtiff: the ``ndtiff`` splitter for Micro-Manager 2 NDTiff datasets.

Loaded by imagingdb at start-up through the ``imagingdb`` entry-point group;
``ndtiff`` and numpy are imported only when a dataset is opened, so commands
that do not upload NDTiff stay fast.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("imagingdb")


def _ndtiff_splitter():
    from .splitter import NDTiffSplitter

    return NDTiffSplitter()


@hookimpl
def register_splitters(register):
    register("ndtiff", _ndtiff_splitter)
