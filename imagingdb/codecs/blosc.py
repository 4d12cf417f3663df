"""The ome-zarr frame codec: one 2D frame <-> one Zarr v3 chunk, Blosc (zstd, byte shuffle).

A frame of the ``ome-zarr`` layout is one chunk ``(1, 1, 1, Y, X)`` of an
OME-Zarr image array (:mod:`imagingdb.omezarr` writes the arrays' metadata).
Its bytes are exactly what zarr-python writes for that chunk with the codec
pipeline :func:`zarr_codecs` names: the pixels in C order, little-endian (the
``bytes`` codec), compressed by Blosc 1 with zstd at level 1 and byte shuffle
(the ``blosc`` codec), through numcodecs, the library zarr-python itself calls.

Why these settings: on sCMOS frames (1024x1024 uint16, the bench's), Blosc
zstd-1 with byte shuffle stores 0.80 of zlib -1's output and encodes about
ten times as fast, losslessly; bitshuffle is larger (0.825), zstd on raw bytes
much larger (0.96 at level 3, 1.05 at level 1); zstd-3 and zstd-5 buy 2-4% for
half and a fifth of the speed
(docs/performance.md, "The ome-zarr codec"). Blosc releases the GIL, and its
contextual API (taken when called outside the main thread) keeps threads
apart, so the upload's pool encodes in parallel.

Blosc 1 has no checksum of its own: a damaged chunk either fails to decompress
(its header names its sizes, checked here) or decodes to other pixels, which
the frame's recorded sha256 catches (verify, ``read(verify=True)``).
"""

from __future__ import annotations

import struct
from typing import Any, Optional

import numpy as np

from ..layout import OME_ZARR
from . import FrameCodec

#: the layout's name, as a dataset records it (frames_global.frame_format)
NAME = OME_ZARR
CNAME = "zstd"
CLEVEL = 1
_HEADER = struct.Struct("<BBBBIII")  # version, versionlz, flags, typesize, nbytes, blocksize, cbytes
_STORABLE_KINDS = "uif"  # unsigned and signed integers, floats: what Zarr and OME-Zarr hold


def _blosc(itemsize: int) -> Any:
    """The compressor of :func:`zarr_codecs`' settings for samples of ``itemsize`` bytes."""
    from numcodecs import Blosc

    return Blosc(cname=CNAME, clevel=CLEVEL, blocksize=0,
                 shuffle=Blosc.SHUFFLE if itemsize > 1 else Blosc.NOSHUFFLE)


def zarr_codecs(dtype: "np.dtype") -> list[dict[str, Any]]:
    """The Zarr v3 codec pipeline of the chunks this codec writes, for the array's zarr.json."""
    dtype = np.dtype(dtype)
    return [{"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "blosc", "configuration": {
                "typesize": dtype.itemsize, "cname": CNAME, "clevel": CLEVEL,
                "shuffle": "shuffle" if dtype.itemsize > 1 else "noshuffle", "blocksize": 0}}]


def refusal(dtype: str, shape: tuple[int, ...]) -> Optional[str]:
    """Why ome-zarr frames cannot hold ``dtype`` pixels of ``shape``; None if they can.

    Integers and floats of any width are stored as they are; an RGB frame has
    no place in OME-Zarr's (t, c, z, y, x) image, whose channels are separate
    grayscale planes.
    """
    kind = np.dtype(dtype)
    if kind.kind not in _STORABLE_KINDS or kind.itemsize > 8:
        return (f"{kind} pixels cannot be stored in the ome-zarr layout (it holds integer and "
                "float pixels); upload the file whole with upload_type: file")
    if len(shape) == 3 and shape[2] == 3:
        return ("RGB frames cannot be stored in the ome-zarr layout (an OME-Zarr image has "
                "grayscale channels); set frame_format: png in the upload config")
    if len(shape) != 2 or 0 in shape:
        return (f"frames must be 2D (height, width) with height and width >= 1, got shape "
                f"{tuple(shape)}: split stacks into 2D frames first, or upload the file whole "
                "with upload_type: file")
    return None


class BloscCodec(FrameCodec):
    """Frames as Zarr v3 chunks compressed by Blosc; see the module docstring."""

    name = NAME
    suffix = ""

    def __init__(self) -> None:
        self._compressors = {size: _blosc(size) for size in (1, 2, 4, 8)}

    def refusal(self, dtype: str, shape: tuple[int, ...]) -> Optional[str]:
        return refusal(dtype, shape)

    def encode(self, pixels: "np.ndarray") -> bytes:
        little = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
        return self._compressors[little.itemsize].encode(little)

    def decode_into(self, data: "bytes | memoryview", out: "np.ndarray", *,
                    check: bool = False) -> None:
        data = check_chunk(data, out.nbytes, f"a frame of shape {out.shape} and type {out.dtype}")
        compressor = self._compressors.get(out.itemsize) or _blosc(out.itemsize)
        little = out.dtype.newbyteorder("<")
        if out.flags.c_contiguous and out.dtype == little:
            compressor.decode(data, out=out)
            return
        plane = np.empty(out.shape, little)
        compressor.decode(data, out=plane)
        out[...] = plane


def check_chunk(data: "bytes | memoryview", nbytes: int, what: str) -> memoryview:
    """``data`` as bytes, if its Blosc header says it is whole and holds ``nbytes`` of pixels
    (``what``, for the message); else ValueError. A cheap test of a chunk copied unchanged."""
    data = memoryview(data).cast("B")
    if len(data) < _HEADER.size:
        raise ValueError(f"{len(data)} bytes are not a Blosc chunk (its header alone is "
                         f"{_HEADER.size})")
    _version, _lz, _flags, _typesize, held, _block, cbytes = _HEADER.unpack_from(data)
    if cbytes != len(data):
        raise ValueError(f"the chunk's header says {cbytes} bytes, it has {len(data)}")
    if held != nbytes:
        raise ValueError(f"the chunk holds {held} bytes of pixels; {what} has {nbytes}")
    return data
