"""The ``image_sequence`` splitter: a folder of single-image TIFF files told apart by one number.

What a source means: a folder whose TIFF files' names differ only by one
number, as Fiji's File > Save As > Image Sequence writes them
(``ij/plugin/StackWriter``: the title, then the image's number from "Start
At", 0 by default, in 4 digits: ``c_elegans_em_z0000.tif``), and as many
scripts do (``frame_1.tif``, ``frame_2.tif``...). Digits that every name
shares (``sample2_z0000.tif``, Fiji's sample ``t1-head0000.tif``) are part of
the name, not the number.

- **Axis**: a word right before the number that names an axis is the file's
  own declaration and is used: ``z``/``slice``, ``t``/``time``/``frame``,
  ``c``/``ch``/``channel``, ``p``/``pos``/``position``, in any case
  (``movie_t0001.tif``, ``stack-z12.tif``, ``time003.tif``). The word is the
  whole run of letters touching the digits (``stamp0001`` is no ``p``,
  ``frame_0001`` has no word). Names without one run along the upload
  config's ``sequence_axis`` (``z``, the default, or ``t``). Kind and global
  metadata say the axis (``sequence_axis``) and where it came from
  (``sequence_axis_from``: ``file names`` or ``sequence_axis``).
- **Index**: along that axis = the file's number - the smallest number. A gap
  in the numbers is a missing frame (with a warning), never closed up, so
  every image keeps its place; the first number is kept in global metadata
  (``sequence_first_number``), so the original numbers can be recovered.
  Numbers spread wider than any acquisition (``tiff_pages.check_declared_frames``
  on the span against the files present: timestamps or IDs, not places) are
  refused.
- **Not a sequence, tif_folder's**: names whose varying number and at least
  one other number follow axis words (the original imagingDB's
  ``im_c000_z003_t000_p000.tif``, Micro-Manager 2.0's
  ``img_channel000_position000_time000000000_z003.tif``) declare a place on
  several axes; they are neither claimed nor read (the constant axes would be
  dropped). Names holding exactly four integers (``0000_0003_0000_0000.tif``)
  are the original imagingDB's channel, slice, time, position convention,
  which ``tif_folder`` claims: image_sequence does not claim them, but reads
  them when ``frames_format: image_sequence`` says so (bare integers declare no
  axis; the file's own words do).
- **Refused**, one line naming the files and what to do: names that differ by
  anything but one number (other prefixes or suffixes, or several numbers,
  like Fiji's hyperstack sequences ``name_t0001_z0001_c0001.tif``: use
  ``tif_folder`` with a ``filename_parser``), two files with the same number,
  a multi-page file (``tif_id`` reads those), files of different shape or
  pixel type, Micro-Manager folders (a ``metadata.txt`` or
  MicroManagerMetadata: ``tif_folder``) and OME-TIFF files (``ome_tiff``).
- **Metadata**: global metadata holds the naming pattern, the numbers, and
  the first file's ImageJ calibration (``physical_size``) when Fiji wrote
  one; each frame's metadata is its file's TIFF tags, its file name and
  number, and the ImageJ ``Info`` and slice label (``Label``) Fiji stores in
  each file.

The folder is listed (``tiff_pages.listed``: hidden and AppleDouble files left
out) and the first file read at open; each file is opened when its frame is read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pluggy

from ..acquisition import (
    LIKELY,
    Acquisition,
    Dimensions,
    Frame,
    FrameIndex,
    SourceClaim,
    SplitOptions,
    Splitter,
)
from ..errors import SplitterError
from . import imagej, tif_id, tiff_pages

hookimpl = pluggy.HookimplMarker("imagingdb")

_DIGITS = re.compile(r"(\d+)")
_LAST_WORD = re.compile(r"([A-Za-z]+)$")
#: words that, right before a name's number, say which axis it numbers (lower case)
AXIS_WORDS = {
    "z": "slice", "slice": "slice",
    "t": "time", "time": "time", "frame": "time",
    "c": "channel", "ch": "channel", "channel": "channel",
    "p": "position", "pos": "position", "position": "position",
}
#: each FrameIndex axis as kinds and global metadata write it
AXIS_LETTERS = {"channel": "c", "slice": "z", "time": "t", "position": "p"}
#: the original imagingDB's names: channel, slice, time, position (tif_folder claims them)
_FOUR_INTEGERS = 4


class ImageSequenceSplitter(Splitter):
    """Splits a folder of numbered single-image TIFF files (``frames_format: image_sequence``)."""

    name = "image_sequence"

    def open(self, source: "os.PathLike[str] | str", options: SplitOptions) -> "ImageSequence":
        return ImageSequence(Path(source), options)


@hookimpl
def register_splitters(register: Callable[[str, Callable[[], Splitter]], None]) -> None:
    register("image_sequence", ImageSequenceSplitter)


@dataclass(frozen=True)
class Numbering:
    """The files of a sequence by number, and the pattern their names share."""

    files: dict[int, Path]  # number -> file, in increasing number
    pattern: str  # e.g. "c_elegans_em_z<number>.tif"
    axis: Optional[str] = None  # the FrameIndex axis the word before the number names
    numbers_per_name: int = 1  # digit runs in each name, the varying one included

    @property
    def first(self) -> int:
        return next(iter(self.files))

    @property
    def last(self) -> int:
        return next(reversed(self.files))

    @property
    def span(self) -> int:
        """How many places the numbers run over, gaps included."""
        return self.last - self.first + 1

    def gaps(self) -> list[int]:
        return [number for number in range(self.first, self.last + 1) if number not in self.files]

    def check_span(self, folder: Path) -> None:
        """Refuse numbers spread wider than any acquisition: each gap would be a missing frame."""
        try:
            tiff_pages.check_declared_frames(str(folder), self.span, len(self.files))
        except SplitterError:
            # The shared rule decides; its words are for a header, and here the names declare.
            raise SplitterError(
                f"{folder}: the numbers of {self.pattern} run from {self.first} to {self.last}, "
                f"{self.span:,} places for {len(self.files):,} files: numbers that far apart are "
                "timestamps or IDs, not places in a sequence; rename the files by their order "
                "(0, 1, 2...) or use frames_format: tif_folder with a filename_parser") from None


def number_files(folder: Path, names: list[str]) -> Numbering:
    """Each name's number, if the names differ by one number only; else a SplitterError."""
    if not names:
        raise SplitterError(f"{folder}: folder contains no TIFF file")
    split = {name: _DIGITS.split(name) for name in names}
    _check_one_skeleton(folder, split)
    runs = {name: parts[1::2] for name, parts in split.items()}
    width = len(next(iter(runs.values())))
    varying = [at for at in range(width) if len({run[at] for run in runs.values()}) > 1]
    example = sorted(names, key=tiff_pages.natural_key)[-1]
    if width == 0 or len(varying) > 1:
        what = "no number" if width == 0 else "several numbers that vary"
        raise SplitterError(
            f"{folder}: file names like {example} have {what}, so the image sequence's order "
            "is unknown; use frames_format: tif_folder with a filename_parser that reads them")
    at = varying[0] if varying else width - 1
    # Every name has the same text between its numbers, so the first name's words are all's.
    words = [_axis_word(text) for text in split[names[0]][0:2 * width:2]]
    if words[at] is not None and sum(word is not None for word in words) > 1:
        raise SplitterError(
            f"{folder}: file names like {example} number several axes "
            f"({', '.join(word for word in words if word)}), so an image sequence along one of "
            "them would drop the others; use frames_format: tif_folder with a filename_parser "
            "that reads them (parse_idx_from_name reads c, z, t, p)")
    files = _by_number(folder, names, {name: int(run[at]) for name, run in runs.items()})
    return Numbering(files, _pattern(split[names[0]], at),
                     AXIS_WORDS.get((words[at] or "").lower()), width)


def _check_one_skeleton(folder: Path, split: dict[str, list[str]]) -> None:
    """The names must share everything but their digits."""
    skeletons: dict[tuple[str, ...], str] = {}
    for name, parts in split.items():
        skeletons.setdefault(tuple(parts[0::2]), name)
    if len(skeletons) > 1:
        first, other = list(skeletons.values())[:2]
        raise SplitterError(
            f"{folder}: {first} and {other} differ by more than a number, so they are not one "
            "image sequence; put each sequence in its own folder")


def _axis_word(text_before: str) -> Optional[str]:
    """The word touching a number (``t`` of ``movie_t0001``) if it names an axis, else None."""
    found = _LAST_WORD.search(text_before)
    return found[1] if found and found[1].lower() in AXIS_WORDS else None


def _by_number(folder: Path, names: list[str], numbers: dict[str, int]) -> dict[int, Path]:
    files: dict[int, Path] = {}
    for name in sorted(names, key=lambda name: (numbers[name], name)):  # a stable error message
        number = numbers[name]
        if number in files:
            raise SplitterError(f"{folder}: {files[number].name} and {name} have the same number "
                                f"({number}); an image sequence has one file per number")
        files[number] = folder / name
    return files


def _pattern(parts: list[str], at: int) -> str:
    shown = list(parts)
    shown[2 * at + 1] = "<number>"
    return "".join(shown)


def _sequence_files(folder: Path) -> list[str]:
    """The folder's TIFF file names, after refusing the formats that place their own images."""
    if tiff_pages.listed(folder, ("metadata.txt",)):
        raise SplitterError(f"{folder} holds a Micro-Manager metadata.txt, which places each "
                            "image: use frames_format: tif_folder")
    names = [path.name for path in tiff_pages.listed(folder)]
    if any(tiff_pages.has_ome_suffix(name) for name in names):
        raise SplitterError(f"{folder} holds OME-TIFF files, placed by their OME-XML: use "
                            "frames_format: ome_tiff")
    return names


class ImageSequence(Acquisition):
    """A numbered folder of TIFF files: names numbered and the first file read at open."""

    def __init__(self, source: Path, options: SplitOptions):
        if not source.is_dir():
            raise SplitterError(f"{source}: no such folder" if not source.exists() else
                                f"{source} is a file; image_sequence takes a folder of numbered "
                                "TIFF files (use frames_format: tif_id for one TIFF file)")
        self.source = source
        self.numbering = number_files(source, _sequence_files(source))
        self.numbering.check_span(source)
        self._axis = self.numbering.axis or options.sequence_axis
        sizes = {**dict.fromkeys(AXIS_LETTERS, 1), self._axis: self.numbering.span}
        self._positions = tif_id.selected_positions(source, sizes["position"], options.positions)
        self._format, header, physical_size = _read_first(self.numbering.files[self.numbering.first])
        along = AXIS_LETTERS[self._axis]
        self.kind = f"image sequence ({len(self.numbering.files)} files, along {along})"
        self.channel_names = [f"channel{c}" for c in range(sizes["channel"])]
        self.dims = Dimensions(
            nbr_channels=sizes["channel"], nbr_slices=sizes["slice"],
            nbr_timepoints=sizes["time"], nbr_positions=len(self._positions),
            im_height=self._format.shape[0], im_width=self._format.shape[1],
            im_colors=self._format.colors, bit_depth=self._format.dtype)
        gaps = [number for number in self.numbering.gaps()  # of the positions uploaded
                if self._axis != "position" or number - self.numbering.first in self._positions]
        self.warnings = [f"{source}: no file has number(s) {_numbers_text(gaps)} of "
                         f"{self.numbering.pattern}: recorded as missing frames"] if gaps else []
        self.global_meta = {
            **options.name_metadata(source),
            "file_origin": str(source),
            "file_name_pattern": self.numbering.pattern,
            "sequence_axis": along,
            "sequence_axis_from": "file names" if self.numbering.axis else "sequence_axis",
            "sequence_first_number": self.numbering.first,
            "sequence_last_number": self.numbering.last,
            "nbr_files": len(self.numbering.files),
            "missing_numbers": gaps,
            "image_description": header.entries if header else None,
            "physical_size": physical_size,
        }

    def iter_frames(self, pixels: bool = True) -> Iterator[Frame]:
        first = self.numbering.files[self.numbering.first]
        for number, path in self.numbering.files.items():
            index = FrameIndex(**{**dict.fromkeys(AXIS_LETTERS, 0),
                                  self._axis: number - self.numbering.first})
            if index.position not in self._positions:
                continue
            with tiff_pages.opened(path) as tif:
                page = _single_page(tif, path)
                where = f"{path}: page 0"
                self._format.check_same(tiff_pages.PixelFormat.of(page, where), where, first.name)
                with tiff_pages.reading(where):
                    metadata = _frame_metadata(page, path, number)
                yield Frame(index=index, channel_name=self.channel_names[index.channel],
                            metadata=metadata,
                            pixels=tiff_pages.read_pixels(page, where) if pixels else None,
                            origin=path.name)


def _single_page(tif: Any, path: Path) -> Any:
    """Page 0 of a file that must hold one image and no Micro-Manager metadata."""
    page = tiff_pages.first_page(tif, path)
    if tiff_pages.has_micromanager_metadata(page):
        raise SplitterError(f"{path} is a Micro-Manager image, placed by its "
                            "MicroManagerMetadata: use frames_format: tif_folder for its folder")
    pages = tiff_pages.page_count(tif, path)
    if pages > 1:
        raise SplitterError(f"{path} holds {pages} pages; an image sequence has one image per "
                            "file: upload a multi-page file alone with frames_format: tif_id")
    return page


def _read_first(path: Path) -> tuple[tiff_pages.PixelFormat, Optional[imagej.ImageJHeader],
                                     dict[str, Any]]:
    with tiff_pages.opened(path) as tif:
        page = _single_page(tif, path)
        page_format = tiff_pages.PixelFormat.of(page, f"{path}: page 0")
        with tiff_pages.reading(f"{path}: page 0"):
            header = imagej.find_header(page)
            return page_format, header, header.physical_size(page) if header else {}


def _frame_metadata(page: Any, path: Path, number: int) -> dict[str, Any]:
    metadata = tiff_pages.page_metadata(page)
    ijmeta = imagej.read_ijmetadata(page)
    if ijmeta.get("Info"):
        metadata["Info"] = ijmeta["Info"]
    labels = ijmeta.get("Labels") or []
    if labels and labels[0]:
        metadata["Label"] = labels[0]
    metadata.update(FileName=path.name, SequenceNumber=number)
    return metadata


def _numbers_text(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:10]))
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


@hookimpl
def claim_source(source: Path) -> Optional[SourceClaim]:
    """LIKELY: a folder of TIFF files named alike but for one number, without Micro-Manager's
    metadata.txt or OME-TIFF files (one listing, page 0 of one file).

    Names of exactly four integers are left to tif_folder, whose LIKELY claim
    they are: with both claiming, every such folder would need frames_format.
    """
    if not source.is_dir():
        return None
    try:
        names = _sequence_files(source)
        if len(names) < 2:
            return None
        numbering = number_files(source, names)
        if numbering.numbers_per_name == _FOUR_INTEGERS:
            return None
        with tiff_pages.opened(numbering.files[numbering.first]) as tif:
            if tiff_pages.has_micromanager_metadata(tif.pages.first):
                return None
    except Exception:  # noqa: BLE001 - not a sequence (or unreadable): another format's, or none
        return None
    return SourceClaim("image_sequence", f"image sequence ({len(numbering.files)} files, "
                       f"{numbering.pattern})", LIKELY)
