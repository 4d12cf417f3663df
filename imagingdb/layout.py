"""Where a dataset's objects live in storage: the original imagingDB's key layout, in one place.

    raw_files/<ID>/<file name>                     a file kept whole
    raw_frames/<ID>/im_c001_z010_t000_p002.png     one 2D frame (channel, slice, time, position)
    raw_frames/<ID>/0/2/0/0/c/0/1/10/0/0            the same frame in the ome-zarr layout
                                                   (below: an OME-Zarr store per dataset)

Buckets and mounts written by the original keep working because nothing else
in imagingdb spells these keys out: uploads, reads, downloads, verify and gc
all ask this module. A dataset's row records its folder (``storage_dir``);
early rows of the original have none, and then the folder is the default one.

Generations. Every upload attempt writes into a folder no committed row uses,
so that an attempt that fails or is killed never touches the dataset it was
to replace, and two attempts never share a key; the commit that records the
folder in the row is the switch. A dataset's first upload writes into the
dataset folder itself, as the original did (``raw_frames/<ID>``); any other
attempt (an overwrite, or a rerun after a kill) into a generation folder of
its own inside it, named by a random token::

    raw_frames/<ID>/g5f0c2a9e41b7/im_c000_z000_t000_p000.png
    raw_files/<ID>/g5f0c2a9e41b7/<file name>

An attempt that means to write into the dataset folder itself first puts a
marker there (``.attempt-<token>``), so that any other attempt sees the folder
taken (see :mod:`imagingdb.upload`). Objects of a generation no row references
are garbage (:mod:`imagingdb.gc`); the committed generation's are the dataset.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .acquisition import FrameIndex

#: the frame layouts (frames_global.frame_format; NULL, in rows of the original, is png):
#: one PNG object per frame, the original's, or an OME-Zarr store (:mod:`imagingdb.omezarr`)
PNG = "png"
OME_ZARR = "ome-zarr"
FRAME_FORMATS = (PNG, OME_ZARR)

FRAMES_FOLDER = "raw_frames"
FILES_FOLDER = "raw_files"
#: the top folders holding dataset folders; nothing else in a store is imagingdb's
DATASET_FOLDERS = (FRAMES_FOLDER, FILES_FOLDER)
#: the suffix of a frame object of the png codec, the original's
FRAME_SUFFIX = ".png"
#: a generation folder's name: ``g`` and an upload attempt's token
_GENERATION = re.compile(r"g[0-9a-f]{12}")
_MARKER = ".attempt-"

#: how long a dataset folder must have been quiet before gc judges it (``gc --older-than``);
#: here, not in imagingdb.gc, because the CLI reads it at start-up and gc's imports cost ~20 ms
GC_GRACE = "24h"


def dataset_folder(dataset_id: str, frames: bool) -> str:
    """The dataset folder, ``raw_frames/<ID>`` or ``raw_files/<ID>``: a first upload's generation."""
    return f"{FRAMES_FOLDER if frames else FILES_FOLDER}/{dataset_id}"


def new_attempt_token() -> str:
    """A token naming one upload attempt: random, so that no two attempts share a folder."""
    import secrets  # 12 ms at import (hmac, random): only a writer needs it

    return secrets.token_hex(6)


def generation_folder(dataset_id: str, frames: bool, token: str) -> str:
    """The folder of the upload attempt ``token`` inside the dataset folder."""
    return f"{dataset_folder(dataset_id, frames)}/g{token}"


def attempt_marker(folder: str, token: str) -> str:
    """The key of the marker by which the attempt ``token`` takes the dataset folder ``folder``."""
    return f"{folder}/{_MARKER}{token}"


def storage_dir(recorded: Optional[str], frames: bool, dataset_id: str) -> str:
    """A row's folder: its recorded storage_dir, else (early original rows) the default one."""
    return (recorded or "").rstrip("/") or dataset_folder(dataset_id, frames)


def object_key(folder: str, name: str) -> str:
    """The key of the object ``name`` in the dataset folder ``folder``."""
    return f"{folder}/{name}"


def frame_name(index: "FrameIndex", suffix: str = FRAME_SUFFIX) -> str:
    """The original imagingDB's name of a frame object, e.g. ``im_c001_z010_t000_p002.png``
    (``suffix``: the frame codec's)."""
    return (f"im_c{index.channel:03d}_z{index.slice:03d}"
            f"_t{index.time:03d}_p{index.position:03d}{suffix}")


# ------------------------------------------------------------- the ome-zarr layout
#
# A frames dataset of the ome-zarr layout keeps, in its folder, one OME-Zarr 0.5 store
# (Zarr v3) shaped as iohub shapes a multi-position acquisition: an HCS plate of one row
# ("0"), a well per position (column = the position index), one field ("0") per well,
# holding the position's image, one resolution level ("0") of axes (t, c, z, y, x)::
#
#     raw_frames/<ID>/zarr.json                    the plate: lists every position
#     raw_frames/<ID>/0/zarr.json                  the row
#     raw_frames/<ID>/0/<p>/zarr.json              the well of position p
#     raw_frames/<ID>/0/<p>/0/zarr.json            the image: axes, scales, channels
#     raw_frames/<ID>/0/<p>/0/0/zarr.json          the array: shape, chunks, codecs
#     raw_frames/<ID>/0/<p>/0/0/c/<t>/<c>/<z>/0/0  one frame (a chunk (1, 1, 1, Y, X))
#
# A frame row's file_name is its chunk's key in the store; the zarr.json documents have
# no rows: they follow from the positions the rows hold (zarr_document_names).

ZARR_ROW = "0"
ZARR_FIELD = "0"
ZARR_LEVEL = "0"
ZARR_DOCUMENT = "zarr.json"


def zarr_image_path(position: int) -> str:
    """The path of position ``position``'s image group in an ome-zarr store."""
    return f"{ZARR_ROW}/{position}/{ZARR_FIELD}"


def zarr_chunk_name(position: int, time: int, channel: int, slice: int) -> str:
    """The key, in an ome-zarr store, of the chunk holding one frame."""
    return f"{zarr_image_path(position)}/{ZARR_LEVEL}/c/{time}/{channel}/{slice}/0/0"


def zarr_array_document_name(position: int) -> str:
    """The key, in an ome-zarr store, of position ``position``'s array metadata."""
    return f"{zarr_image_path(position)}/{ZARR_LEVEL}/{ZARR_DOCUMENT}"


def zarr_position_document_names(position: int) -> tuple[str, str, str]:
    """The keys of position ``position``'s well, image and array metadata in an ome-zarr store."""
    return (f"{ZARR_ROW}/{position}/{ZARR_DOCUMENT}", f"{zarr_image_path(position)}/{ZARR_DOCUMENT}",
            zarr_array_document_name(position))


def zarr_document_names(positions: "list[int]") -> list[str]:
    """The keys of every zarr.json document of an ome-zarr store holding these positions."""
    names = [ZARR_DOCUMENT, f"{ZARR_ROW}/{ZARR_DOCUMENT}"]
    for position in positions:
        names += zarr_position_document_names(position)
    return names


def folder_of(key: str) -> Optional[str]:
    """The generation folder a key lies in (``raw_frames/<ID>`` or ``raw_frames/<ID>/g<token>``);
    None outside any dataset folder. Anything else inside a dataset folder is the dataset
    folder's own, so that it is judged (as garbage, by gc) rather than overlooked."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] not in DATASET_FOLDERS:
        return None
    if len(parts) > 3 and _GENERATION.fullmatch(parts[2]):
        return "/".join(parts[:3])
    return f"{parts[0]}/{parts[1]}"


def dataset_id_of(folder: str) -> str:
    """The dataset ID a generation folder (of :func:`folder_of`) belongs to."""
    return folder.split("/")[1]


def is_first_generation(folder: str) -> bool:
    """True for the dataset folder itself (where rows without a storage_dir keep their objects)."""
    return folder.count("/") == 1


def is_frames_folder(folder: str) -> bool:
    """True for a ``raw_frames/<ID>`` folder, False for ``raw_files/<ID>``."""
    return folder.split("/", 1)[0] == FRAMES_FOLDER


def is_dataset_folder(recorded: str, frames: bool) -> bool:
    """True if a recorded storage_dir is a generation folder of this layout (gc only judges those)."""
    top = FRAMES_FOLDER if frames else FILES_FOLDER
    return re.fullmatch(rf"{top}/[^/]+(/{_GENERATION.pattern})?/?", recorded) is not None
