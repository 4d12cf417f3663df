"""Built-in filename parsers: metadata a lab encodes in its file names.

A parser takes a file name (or path: only the base name is parsed) and
returns a dict. Keys ``channel_idx``, ``slice_idx``, ``time_idx``,
``pos_idx`` and ``channel_name`` are frame indexes (the ``tif_folder``
splitter uses them to place each file); every other key is metadata (global
metadata of the dataset for ``tif_id`` and ``ome_tiff``, frame metadata for
``tif_folder``). A name that does not follow the parser's pattern raises
:class:`FilenameError`, a ``ValueError`` whose message states the pattern.

The upload config selects one with ``filename_parser: <name>``; these are
registered through the same ``register_filename_parsers`` hook as any
third-party parser.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable

import pluggy

hookimpl = pluggy.HookimplMarker("imagingdb")

class FilenameError(ValueError):
    """A file name that does not follow a parser's pattern; the message names the pattern."""


def _base_name(file_name: "str | os.PathLike[str]") -> str:
    return os.path.basename(os.fspath(file_name))


def _stem(name: str) -> str:
    """The name without its extension(s) (``.ome.tif`` counts as one)."""
    lowered = name.lower()
    for suffix in (".ome.tiff", ".ome.tif"):
        if lowered.endswith(suffix):
            return name[:-len(suffix)]
    return os.path.splitext(name)[0]


# ------------------------------------------------------------- parse_idx_from_name

IDX_PATTERN = ("'img_<time>_<channel name>_<slice>.tif' (Micro-Manager 1.4, e.g. "
               "img_000000000_DAPI_000.tif), numbers named by axis words (Micro-Manager 2.0's "
               "img_channel000_position000_time000000000_z000.tif, or c/z/t/p as in "
               "im_c001_z002_t000_p003.tif), or exactly four integers in the order channel, "
               "slice, time, position")
_MM_IMAGE_NAME = re.compile(r"^img_(?P<time>\d+)_(?P<channel>.+)_(?P<slice>\d+)$")
#: Axis words as Micro-Manager 2.0 writes them, and the original imagingDB's letters.
_AXIS_WORDS = {"channel": "channel_idx", "c": "channel_idx", "z": "slice_idx",
               "time": "time_idx", "t": "time_idx", "position": "pos_idx", "p": "pos_idx"}
_NUMBER = re.compile(r"([A-Za-z]*)(\d+)")


def parse_idx_from_name(file_name: "str | os.PathLike[str]") -> dict[str, Any]:
    """Indexes from a per-frame file name, in one of three conventions.

    - Micro-Manager 1.4's image files, ``img_<time>_<channel name>_<slice>.tif``
      (``img_000000002_GFP_004.tif``): time and slice index, channel name (the
      splitter turns it into an index through the acquisition's ChNames);
    - numbers named by axis words: Micro-Manager 2.0's
      ``img_channel000_position001_time000000002_z003.tif`` (only the axes the
      acquisition used) or the original imagingDB's ``im_c001_z002_t000_p003.tif``.
      Each number is read by its word, whatever the order; a name mixing
      axis words with other numbers is refused rather than guessed;
    - the original imagingDB's rule for other names: exactly four integers,
      taken as channel, slice, time and position (``0001_0002_0000_0003.tif``).
    """
    name = _base_name(file_name)
    stem = _stem(name)
    match = _MM_IMAGE_NAME.match(stem)
    if match:
        return {"time_idx": int(match["time"]), "channel_name": match["channel"],
                "slice_idx": int(match["slice"])}
    numbers = _NUMBER.findall(stem)
    words = [word.lower() for word, _ in numbers]
    if any(word in _AXIS_WORDS for word in words):
        return _indexes_by_axis_word(name, numbers)
    if len(numbers) != 4:
        raise FilenameError(f"{name!r} does not match {IDX_PATTERN}; "
                            f"it holds {len(numbers)} integer(s)")
    channel, slice_, time, position = (int(number) for _, number in numbers)
    return {"channel_idx": channel, "slice_idx": slice_, "time_idx": time, "pos_idx": position}


def _indexes_by_axis_word(name: str, numbers: list[tuple[str, str]]) -> dict[str, Any]:
    """``img_time000000002_z003`` -> time 2, slice 3; every number must have its axis word."""
    result: dict[str, Any] = {}
    for word, number in numbers:
        key = _AXIS_WORDS.get(word.lower())
        if key is None:
            raise FilenameError(
                f"{name!r} mixes axis words (channel, position, time, z, or c, p, t) with "
                f"another number ({word}{number}); rename it to match {IDX_PATTERN}")
        if key in result:
            raise FilenameError(f"{name!r} names the {key[:-4].replace('pos', 'position')} "
                                "axis twice")
        result[key] = int(number)
    return result


# ------------------------------------------------------------------ parse_sms_name

SMS_PATTERN = ("'img_<channel name>_t<time>_p<position>_z<slice>.tif' "
               "(e.g. img_Brightfield_t001_p002_z003.tif)")
_SMS_NAME = re.compile(
    r"^img_(?P<channel>.+?)_(?P<first>[tpz]\d+)_(?P<second>[tpz]\d+)_(?P<third>[tpz]\d+)$")
_SMS_KEYS = {"t": "time_idx", "p": "pos_idx", "z": "slice_idx"}


def parse_sms_name(file_name: "str | os.PathLike[str]") -> dict[str, Any]:
    """The computational microscopy group's ``img_<channel>_t###_p###_z###.tif``.

    The channel name may itself contain underscores; the t, p and z parts may
    come in any order but each exactly once.
    """
    name = _base_name(file_name)
    match = _SMS_NAME.match(_stem(name))
    parts = [match[g] for g in ("first", "second", "third")] if match else []
    if not match or sorted(part[0] for part in parts) != ["p", "t", "z"]:
        raise FilenameError(f"{name!r} does not match {SMS_PATTERN}")
    result: dict[str, Any] = {"channel_name": match["channel"]}
    for part in parts:
        result[_SMS_KEYS[part[0]]] = int(part[1:])
    return result


# ------------------------------------------------------------------- parse_ml_name

ML_PATTERN = ("'<plate id>_<stack number>_<protein name>_<rest>.tif' "
              "(e.g. PL17_0042_LMNB1_PyProcessed.tif)")


def parse_ml_name(file_name: "str | os.PathLike[str]") -> dict[str, Any]:
    """The ML group's ``<plate ID>_<stack nbr>_<protein name>_<rest>.tif``.

    Gives dataset metadata, not indexes: ``plate_id``, ``stack_nbr`` (an
    integer), ``protein_name`` and ``name_rest`` (the rest of the name,
    e.g. ``PyProcessed``), as the original imagingDB stored them.
    """
    name = _base_name(file_name)
    parts = _stem(name).split("_")
    if len(parts) < 4 or not all(parts[:3]) or not parts[1].isdigit():
        raise FilenameError(f"{name!r} does not match {ML_PATTERN}")
    return {"plate_id": parts[0], "stack_nbr": int(parts[1]), "protein_name": parts[2],
            "name_rest": "_".join(parts[3:])}


@hookimpl
def register_filename_parsers(register: Callable[[str, Callable[..., dict[str, Any]]], None]) -> None:
    register("parse_idx_from_name", parse_idx_from_name)
    register("parse_sms_name", parse_sms_name)
    register("parse_ml_name", parse_ml_name)
