"""imagingdb: store microscopy image data, find it, and get it back.

The Python API (see :mod:`imagingdb.api`)::

    import imagingdb
    db = imagingdb.connect()
    ds = db.dataset("ML-2005-05-23-10-00-00-0001")
    arr = ds.read(channels=["DAPI"], times=[0])
"""

__version__ = "0.1.0"
#: bumped when a hook specification changes in a way plugins must know about
PLUGIN_API_VERSION = 1


def connect(*args, **kwargs):
    """Open the configured database and storage; see :func:`imagingdb.api.connect`."""
    from .api import connect as _connect

    return _connect(*args, **kwargs)


__all__ = ["connect", "__version__", "PLUGIN_API_VERSION"]
