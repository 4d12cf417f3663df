"""Where a dataset's objects live in storage: the original imagingDB's key layout, in one place.

    raw_files/<ID>/<file name>                     a file kept whole
    raw_frames/<ID>/im_c001_z010_t000_p002.png     one 2D frame (channel, slice, time, position)

Buckets and mounts written by the original keep working because nothing else
in imagingdb spells these keys out: uploads, reads, downloads, verify and gc
all ask this module. A dataset's row records its folder (``storage_dir``);
early rows of the original have none, and then the folder is the default one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .acquisition import FrameIndex

FRAMES_FOLDER = "raw_frames"
FILES_FOLDER = "raw_files"
#: the top folders holding dataset folders; nothing else in a store is imagingdb's
DATASET_FOLDERS = (FRAMES_FOLDER, FILES_FOLDER)
#: the suffix of a frame object of the png codec, the original's
FRAME_SUFFIX = ".png"


def dataset_folder(dataset_id: str, frames: bool) -> str:
    """The folder a new dataset's objects go to: ``raw_frames/<ID>`` or ``raw_files/<ID>``."""
    return f"{FRAMES_FOLDER if frames else FILES_FOLDER}/{dataset_id}"


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


def folder_of(key: str) -> Optional[str]:
    """The dataset folder (``raw_frames/<ID>``) a key lies in; None outside any dataset folder."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] not in DATASET_FOLDERS:
        return None
    return f"{parts[0]}/{parts[1]}"


def is_frames_folder(folder: str) -> bool:
    """True for a ``raw_frames/<ID>`` folder, False for ``raw_files/<ID>``."""
    return folder.split("/", 1)[0] == FRAMES_FOLDER


def is_dataset_folder(recorded: str, frames: bool) -> bool:
    """True if a recorded storage_dir is a dataset folder of this layout (gc only judges those)."""
    top = FRAMES_FOLDER if frames else FILES_FOLDER
    return re.fullmatch(rf"{top}/[^/]+/?", recorded) is not None
