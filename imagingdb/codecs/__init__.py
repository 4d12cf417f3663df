"""Frame codecs: what a stored frame object's bytes mean (where they live is :mod:`imagingdb.storage`).

A codec turns one 2D frame (a numpy array) into the bytes of one stored
object and back. The upload encodes and hashes with it, reads and verify
decode with it; nothing else knows a frame's format. A new codec is a module
beside :mod:`.png` with a :class:`FrameCodec` subclass, chosen in
:func:`frame_codec`.

The contract a codec keeps:

- ``encode(pixels)`` may return a view of a buffer the calling thread
  reuses: it stays valid until that thread's next ``encode`` (the upload
  stores each frame before encoding the next on that thread);
- ``decode_into(data, out)`` fills ``out``, a slot of the frame's recorded
  shape and dtype (often a view into a larger array), and raises ValueError
  on bytes that are not a frame of that shape and dtype; ``check=True`` also
  verifies the object's own checksums, where the format has them;
- ``refusal(dtype, shape)`` says, before any work, why frames of that pixel
  type and shape cannot be stored and how to convert them (None: they can).
  It is the one rule of what is storable: splitters read whatever a file
  holds, the upload asks the codec;
- the pixel checksum is the same for every codec (:func:`pixel_sha256`), so
  a frame's recorded sha256 never depends on how it is stored.
"""

from __future__ import annotations

import abc
import hashlib
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    import numpy as np


def pixel_sha256(pixels: "np.ndarray") -> str:
    """Hex sha256 of the pixel bytes in C order, multi-byte samples little-endian.

    Fixing the byte order makes the checksum platform independent and equal
    to the original imagingDB's ``sha256(im.tobytes())`` on little-endian
    machines.
    """
    import numpy as np

    little_endian = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
    return hashlib.sha256(little_endian).hexdigest()


class FrameCodec(abc.ABC):
    """One frame <-> one stored object's bytes; see the module docstring for the contract."""

    #: the codec's name, as a dataset records it
    name: str = ""
    #: the suffix of its objects' names (``.png``)
    suffix: str = ""

    @abc.abstractmethod
    def refusal(self, dtype: str, shape: tuple[int, ...]) -> Optional[str]:
        """Why frames of numpy ``dtype`` and ``shape`` cannot be stored, and how to convert
        them; None if they can."""

    @abc.abstractmethod
    def encode(self, pixels: "np.ndarray") -> "bytes | memoryview":
        """The stored bytes of one frame (see the module docstring for how long a view lives)."""

    @abc.abstractmethod
    def decode_into(self, data: "bytes | memoryview", out: "np.ndarray", *,
                    check: bool = False) -> None:
        """Decode ``data`` into ``out``; ValueError if it is not such a frame."""

    def pixel_hash(self, pixels: "np.ndarray") -> str:
        """The frame's recorded checksum: :func:`pixel_sha256`, whatever the codec."""
        return pixel_sha256(pixels)


def frame_codec(name: Optional[str] = "png", **settings: Any) -> FrameCodec:
    """The codec of the frame layout ``name`` (None: png, the original's) with its settings
    (the upload config's ``png_*`` keys for png; ome-zarr takes none)."""
    from ..layout import FRAME_FORMATS, OME_ZARR, PNG

    name = name or PNG
    if name == OME_ZARR:
        from .blosc import BloscCodec

        return BloscCodec()
    if name != PNG:
        from ..errors import InputError

        raise InputError(f"unknown frame format {name!r}; available: {', '.join(FRAME_FORMATS)}")
    from .png import PngCodec

    return PngCodec(**settings)
