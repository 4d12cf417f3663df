"""Where an NDTiff dataset's parts are, found from any path into it, without ndtiff.

An NDTiff dataset is a folder. NDTiff 3 keeps its ``NDTiff.index`` and
``*_NDTiffStack.tif`` files in that folder; NDTiff 2, and NDTiff 3 saved as a
multi-resolution pyramid (Explore, Magellan, stitched acquisitions), keep them
in ``Full resolution/``, beside one ``Downsampled_x<N>/`` folder per pyramid
level. The stack files' header says the format version (micro-manager/NDStorage
README: bytes 8-11 hold 483729, 12-15 the major version; from 3.0 on, 16-19 the
minor version). Both the ``claim_source`` hook and the splitter use this module:
it reads a few bytes and lists at most two folders, so a claim stays cheap.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

INDEX_FILE = "NDTiff.index"
FULL_RESOLUTION = "Full resolution"
DOWNSAMPLED = re.compile(r"^Downsampled_x(\d+)$")
NDTIFF_MAGIC = 483729  # what sets an NDTiff stack apart from a Micro-Manager OME-TIFF


@dataclass(frozen=True)
class DatasetLayout:
    """An NDTiff dataset as found on disk."""

    root: Path  # the dataset folder
    level: Path  # the folder whose NDTiff.index is read: root, or root/"Full resolution"
    #: (major, minor) from a stack file's header; minor is None before 3.0, and
    #: (0, None) when no stack file could be read (ndtiff's reader will then say why)
    version: tuple[int, Optional[int]]
    downsampled: tuple[str, ...]  # the pyramid's Downsampled_x<N> folders, lowest factor first
    given: Path  # the source as the upload named it
    given_level: Optional[str] = None  # a Downsampled_x<N> folder the source points into

    @property
    def version_text(self) -> str:
        major, minor = self.version
        if major == 0:
            return ""
        return f"{major}" if minor is None else f"{major}.{minor}"

    @property
    def multi_resolution(self) -> bool:
        return bool(self.downsampled)

    def describe(self) -> str:
        """What the dataset is, in words, before its index is read."""
        version = f"NDTiff {self.version_text}" if self.version_text else "NDTiff"
        what = f"Micro-Manager {version} {'multi-resolution ' if self.multi_resolution else ''}dataset"
        if self.given_level is not None:
            return f"{self.given_level} level of a {what}"
        if self.multi_resolution:
            what += (f" (Explore/Magellan tiles): full resolution stored, its "
                     f"{len(self.downsampled)} downsampled level(s) not")
        if self.given.is_file():
            return f"{'index' if self.given.name == INDEX_FILE else 'stack file'} of a {what}"
        return what


def locate(source: Path) -> Optional[DatasetLayout]:
    """The NDTiff dataset that ``source`` is, or is a file or level folder of; None if none.

    ``source`` may be the dataset folder, its ``Full resolution`` (or a
    ``Downsampled_x<N>``) folder, or the ``NDTiff.index`` or a stack file in one.
    """
    folder = _folder_of(source)
    if folder is None:
        return None
    if (folder / FULL_RESOLUTION / INDEX_FILE).is_file():
        root, level = folder, folder / FULL_RESOLUTION
    elif (folder / INDEX_FILE).is_file():
        nested = folder.name == FULL_RESOLUTION or DOWNSAMPLED.match(folder.name)
        in_pyramid = nested and (folder.parent / FULL_RESOLUTION / INDEX_FILE).is_file()
        root = folder.parent if in_pyramid else folder
        level = root / FULL_RESOLUTION if in_pyramid else folder
    else:
        return None
    given_level = folder.name if level != folder and root != folder else None
    return DatasetLayout(root=root, level=level, version=stack_version(level),
                         downsampled=_downsampled_levels(root) if level != root else (),
                         given=source, given_level=given_level)


def _folder_of(source: Path) -> Optional[Path]:
    """The folder a source names: itself, or the folder of its index or stack file."""
    if source.is_dir():
        return source
    if not source.is_file():
        return None
    if source.name == INDEX_FILE:
        return source.parent
    if source.suffix.lower() == ".tif" and (source.parent / INDEX_FILE).is_file():
        return source.parent if _header_version(source) is not None else None
    return None


def stack_version(level: Path) -> tuple[int, Optional[int]]:
    """The format version in the header of the level's first stack file."""
    for stack in sorted(level.glob("*.tif")):
        version = _header_version(stack)
        if version is not None:
            return version
    return (0, None)


def _header_version(stack: Path) -> Optional[tuple[int, Optional[int]]]:
    try:
        with open(stack, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:2] not in (b"II", b"MM"):
        return None
    order = "<" if header[:2] == b"II" else ">"
    magic, major, minor = struct.unpack(order + "III", header[8:20])
    if magic != NDTIFF_MAGIC:
        return None
    # Before 3.0, bytes 16-19 hold the summary metadata header, not a minor version.
    return (major, minor if major >= 3 else None)


def _downsampled_levels(root: Path) -> tuple[str, ...]:
    found = [(int(match[1]), entry.name) for entry in root.iterdir()
             if entry.is_dir() and (match := DOWNSAMPLED.match(entry.name))]
    return tuple(name for _, name in sorted(found))
