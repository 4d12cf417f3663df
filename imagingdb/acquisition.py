"""What a splitter hands to the upload pipeline: an opened acquisition and its frames.

A splitter plugin opens a source (a file or a folder) and returns an
:class:`Acquisition`: the global metadata and the dimensions are known at once,
the frames are streamed one at a time by :meth:`Acquisition.iter_frames`, so a
file of hundreds of gigabytes is never held in memory. A splitter never sees
storage or the database.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence

from .errors import SplitterError

if TYPE_CHECKING:  # numpy is imported lazily: `imagingdb --help` must stay fast
    import numpy as np


#: filename parser keys that place a frame rather than describe it
FRAME_INDEX_KEYS = ("channel_idx", "slice_idx", "time_idx", "pos_idx", "channel_name")

#: How sure a :class:`SourceClaim` is, from strongest to weakest.
CERTAIN = 3  # the format's own signature: Micro-Manager's tags, an NDTiff index...
LIKELY = 2  # the format's structure without its signature: OME-XML, an ImageJ hyperstack...
POSSIBLE = 1  # a generic reading that fits anything of that shape: a plain multi-page TIFF


@dataclass(frozen=True, order=True)
class FrameIndex:
    """Where a 2D frame sits in the (channel, slice, time, position) grid."""

    channel: int
    slice: int
    time: int
    position: int


@dataclass
class Frame:
    """One 2D frame: its index, its pixels (None in a metadata-only pass), its metadata."""

    index: FrameIndex
    channel_name: str
    metadata: dict[str, Any]
    pixels: Optional["np.ndarray"] = None  # (Y, X) or (Y, X, 3); uint8 or uint16
    origin: Optional[str] = None  # where it was read (file, page), named in error messages


@dataclass
class Dimensions:
    """The grid an acquisition fills; becomes the ``frames_global`` row."""

    nbr_channels: int
    nbr_slices: int
    nbr_timepoints: int
    nbr_positions: int
    im_height: int
    im_width: int
    im_colors: int = 1
    bit_depth: str = "uint16"  # numpy dtype name, as the original stored it


@dataclass
class SplitOptions:
    """What the upload config and the CSV row tell a splitter."""

    positions: Optional[list[int]] = None  # only these positions, None for all
    filename_parser: Optional[Callable[[str], dict[str, Any]]] = None
    #: the axis of a sequence numbered by one integer (image sequences, plain stacks):
    #: "slice" (the upload config's ``sequence_axis: z``, the default) or "time" (``t``)
    sequence_axis: str = "slice"
    extra: dict[str, Any] = field(default_factory=dict)

    def parse_name(self, path: "os.PathLike[str] | str") -> dict[str, Any]:
        """What the configured filename parser reads from ``path`` ({} without a parser).

        A name the parser refuses (its ValueError states the pattern) becomes
        a SplitterError naming the file.
        """
        if self.filename_parser is None:
            return {}
        try:
            parsed = self.filename_parser(os.fspath(path))
        except ValueError as exc:
            parser = getattr(self.filename_parser, "__name__", "filename_parser")
            raise SplitterError(f"{path}: {parser} cannot parse the file name: {exc}") from None
        if not isinstance(parsed, dict):
            raise SplitterError(f"{path}: filename parser returned {type(parsed).__name__}, not a dict")
        return parsed

    def name_metadata(self, path: "os.PathLike[str] | str") -> dict[str, Any]:
        """The parser's metadata for a whole dataset's file: its keys other than indexes."""
        return {key: value for key, value in self.parse_name(path).items()
                if key not in FRAME_INDEX_KEYS}


@dataclass(frozen=True)
class SourceClaim:
    """A splitter's answer to "is this source yours?" (the ``claim_source`` hook).

    ``frames_format: auto`` (the default) asks every plugin and takes the
    claim with the highest ``certainty``; the upload shows ``kind``.
    """

    format: str  # the frames_format that reads the source, e.g. "ome_tiff"
    kind: str  # what the source is, in words, e.g. "Micro-Manager 1.4 OME-TIFF (4 files)"
    certainty: int  # CERTAIN, LIKELY or POSSIBLE


def frames_numbered(frames: Iterator[Frame], wanted: set[int]) -> Iterator[Frame]:
    """The frames of ``frames`` at the places in ``wanted`` (0-based), stopping after the
    last of them; ``frames`` is closed (its files released) however this one ends."""
    last = max(wanted, default=-1)
    try:
        for number, frame in enumerate(frames):
            if number > last:
                break
            if number in wanted:
                yield frame
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


class Acquisition(abc.ABC):
    """An opened source. Use as a context manager so file handles are closed."""

    #: JSON-serialisable metadata for the whole dataset (goes to frames_global.metadata_json)
    global_meta: dict[str, Any]
    #: the dimensions of what will be stored (after a positions subset is applied)
    dims: Dimensions
    #: channel index -> channel name
    channel_names: list[str]
    #: what the source is, in words (e.g. "Micro-Manager 2.0 OME-TIFF"); the upload shows it
    kind: str = ""
    #: problems that did not stop the upload, one line each naming the file (e.g. a
    #: damaged metadata.txt whose complete entries were kept); shown as ``Warning:`` lines
    warnings: Sequence[str] = ()
    #: JSON Schema every frame's metadata must meet when the upload config sets no
    #: ``meta_schema``, for what this source turned out to be; None leaves it to the
    #: splitter's ``default_meta_schema``, {} asks nothing
    frame_schema: Optional[dict[str, Any]] = None

    @abc.abstractmethod
    def iter_frames(self, pixels: bool = True) -> Iterator[Frame]:
        """Yield every frame to store, reading one page at a time.

        With ``pixels=False`` only indexes and metadata are read (a fast pass the
        upload uses to validate everything before writing anything).
        Raise :class:`imagingdb.errors.SplitterError` naming the file on bad data.
        """

    #: True if :meth:`sample_frames` reads the pixels of the frames it returns only, so
    #: that a sample spread over the whole acquisition costs little (``upload --plan``)
    samples_anywhere: bool = False

    def sample_frames(self, numbers: Sequence[int]) -> Iterator[Frame]:
        """The frames at these places (0-based, ascending) of :meth:`iter_frames`' order,
        with their pixels: what ``upload --plan`` encodes and times. This default reads every
        frame up to the last one asked for; a splitter that can read one frame's pixels
        alone overrides it and sets :attr:`samples_anywhere`."""
        return frames_numbered(self.iter_frames(pixels=True), set(numbers))

    def close(self) -> None:
        """Release open files."""

    def __enter__(self) -> "Acquisition":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Splitter(abc.ABC):
    """A format plugin: turns a source path into an :class:`Acquisition`."""

    #: the ``frames_format`` value that selects this splitter
    name: str = ""
    #: JSON Schema for per-frame metadata checked when the upload config sets none
    default_meta_schema: Optional[dict[str, Any]] = None

    @abc.abstractmethod
    def open(self, source: "os.PathLike[str] | str", options: SplitOptions) -> Acquisition:
        """Open ``source`` (file or folder); raise SplitterError if it is not this format."""



def index_ranges(indexes: Iterable[int]) -> str:
    """0, 2-5, 7: sorted indexes with runs written as ranges."""
    runs: list[list[int]] = []
    for index in sorted(set(indexes)):
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def describe_missing(missing: Iterable[FrameIndex], axes: dict[str, Sequence[int]]) -> list[str]:
    """Missing frames as few groups as a grid allows, each ``p=0 t=3 c=1 z=0-2`` with an
    axis left out when the group spans all of it (``t=3``: every frame of time point 3).
    ``axes``: the indexes of each axis ``p``, ``t``, ``c``, ``z`` the grid intends."""
    order = ("p", "t", "c", "z")
    groups = [{"p": frozenset([i.position]), "t": frozenset([i.time]),
               "c": frozenset([i.channel]), "z": frozenset([i.slice])} for i in missing]
    for _ in range(2):  # a second pass merges what the first made alike
        for axis in reversed(order):
            merged: dict[tuple, dict[str, frozenset]] = {}
            for group in groups:
                key = tuple(group[a] for a in order if a != axis)
                if key in merged:
                    merged[key] = {**merged[key], axis: merged[key][axis] | group[axis]}
                else:
                    merged[key] = group
            groups = list(merged.values())
    groups.sort(key=lambda g: tuple(min(g[a]) for a in order))
    lines = []
    for group in groups:
        parts = [f"{a}={index_ranges(group[a])}" for a in order
                 if set(group[a]) != set(axes.get(a, ()))]
        lines.append(" ".join(parts) or "all")
    return lines
