"""imagingdb-ndtiff: the ``ndtiff`` splitter for Micro-Manager NDTiff datasets.

Loaded by imagingdb at start-up through the ``imagingdb`` entry-point group;
``ndtiff`` and numpy are imported only when a dataset is opened, and
``claim_source`` only looks for an ``NDTiff.index`` and reads a stack file's
20-byte header, so commands that do not upload NDTiff stay fast.
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


@hookimpl
def claim_source(source):
    """An NDTiff dataset folder, its Full resolution or Downsampled_x<N> folder, or a file in one.

    CERTAIN: the NDTiff.index beside NDTiff-headed stack files is the format's
    own signature, so a stack file given to another splitter (tif_id would read
    its pages as one z-stack) is refused, naming ndtiff.
    """
    from imagingdb.acquisition import CERTAIN, SourceClaim

    from .layout import locate

    layout = locate(source)
    return None if layout is None else SourceClaim("ndtiff", layout.describe(), CERTAIN)
