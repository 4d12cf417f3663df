"""What a dataset's recorded metadata says about its pixels' physical size, time step and
channel display: read from the global metadata the splitters wrote, for OME-Zarr and
OME-TIFF writers.

Where each splitter leaves it in global metadata, and what is read there:

- ``physical_size`` (the OME-XML splitter, for the first Image read; ``tif_id``
  and ``image_sequence`` from ImageJ's header): x, y, z and time_increment
  with their units;
- ``ome_xml`` without ``physical_size`` (a Micro-Manager OME-TIFF, whose
  summary is at the top level): the first Image's Pixels PhysicalSizeX/Y/Z
  and TimeIncrement, with their units (OME's defaults: µm, s);
- Micro-Manager's summary at the top level (OME-TIFF, image-file folders,
  NDTiff): ``PixelSize_um`` (x and y), ``z-step_um``, ``Interval_ms``;
  ``ChColors`` (Java ints, ARGB or RGB); ``ChContrastMin``/``ChContrastMax``;
- ``ome_images`` (the OME-XML splitter): the first Image's Channel ``Color``,
  a signed 32-bit RGBA int;
- ImageJ (``tif_id``, ``image_sequence``): the IJMetadata ``Ranges`` (a
  start, end pair per channel) and ``LUTs`` (a colour where a LUT is a ramp
  from black to one colour), and the header's ``min=``/``max=`` for a
  one-channel image (of a composite one they are only the current channel's;
  an image sequence's are its first file's).

When several state an axis, the OME-XML wins over Micro-Manager's summary.
Micro-Manager's own OME-XML Channel Color is not read: its OMEMetadata passes
the Java ARGB int as OME's RGBA (``new Color(channel.getInt("Color"))``), so
red (-65536) would read as yellow; its summary's ChColors say the colour.
Per-image keys (Micro-Manager's PixelSizeUm) are not in global metadata: a
2.0 image-file folder, whose summary has no PixelSize_um, gets no x and y.
Units are as OME-Zarr names them (UDUNITS-2: ``micrometer``, ``second``);
:func:`ome_xml_unit` turns those back into OME-XML's symbols. An axis, colour
or window the metadata does not give is simply absent: nothing is guessed. A
size that is 0, negative, NaN or not a number is no size, and ImageJ's unit
``pixel`` (OME's ``pixel``, ``reference frame``) is no calibration.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Optional

#: unit symbols found in metadata (matched exactly: "Ms" is no "ms") -> OME-Zarr unit name
_SPACE_SYMBOLS = {
    "\u00b5m": "micrometer", "\u03bcm": "micrometer", "um": "micrometer",
    "nm": "nanometer", "mm": "millimeter", "cm": "centimeter", "m": "meter", "pm": "picometer",
    "\u00c5": "angstrom", "\u212b": "angstrom", "in": "inch",
}
_TIME_SYMBOLS = {
    "s": "second", "ms": "millisecond", "\u00b5s": "microsecond", "\u03bcs": "microsecond",
    "us": "microsecond", "ns": "nanosecond", "min": "minute", "h": "hour",
}
#: unit names found in metadata (ImageJ's "micron", "sec"...; matched in any case)
_SPACE_NAMES = {
    "micron": "micrometer", "microns": "micrometer", "micrometer": "micrometer",
    "micrometers": "micrometer", "micrometre": "micrometer", "micrometres": "micrometer",
    "nanometer": "nanometer", "nanometers": "nanometer", "nanometre": "nanometer",
    "millimeter": "millimeter", "millimeters": "millimeter", "millimetre": "millimeter",
    "centimeter": "centimeter", "centimeters": "centimeter", "centimetre": "centimeter",
    "meter": "meter", "meters": "meter", "metre": "meter", "picometer": "picometer",
    "angstrom": "angstrom", "angstroms": "angstrom", "inch": "inch", "inches": "inch",
}
_TIME_NAMES = {
    "sec": "second", "secs": "second", "second": "second", "seconds": "second",
    "msec": "millisecond", "millisecond": "millisecond", "milliseconds": "millisecond",
    "usec": "microsecond", "microsecond": "microsecond", "microseconds": "microsecond",
    "nanosecond": "nanosecond", "nanoseconds": "nanosecond",
    "min": "minute", "mins": "minute", "minute": "minute", "minutes": "minute",
    "hr": "hour", "hrs": "hour", "hour": "hour", "hours": "hour",
}
#: OME-Zarr unit name -> OME-XML's symbol (UnitsLength, UnitsTime)
_OME_XML_SYMBOLS = {
    "micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "centimeter": "cm", "meter": "m",
    "picometer": "pm", "angstrom": "Å", "inch": "in", "second": "s", "millisecond": "ms",
    "microsecond": "µs", "nanosecond": "ns", "minute": "min", "hour": "h",
}
#: what a Micro-Manager summary calls each axis' step, and the step's unit
_MM_STEPS = (("x", "PixelSize_um", "micrometer"), ("y", "PixelSize_um", "micrometer"),
             ("z", "z-step_um", "micrometer"), ("t", "Interval_ms", "millisecond"))
#: ImageJ description keys that make a parsed description ImageJ's (imagej.parse_description)
_IMAGEJ_KEYS = ("ImageJ", "images", "channels", "slices", "frames", "positions")
_XML_CHUNK = 1 << 16


@dataclass(frozen=True)
class Calibration:
    """The physical meaning of a dataset's axes and how its channels are shown."""

    #: axis ("x", "y", "z", "t") -> (size of one pixel, slice step or frame interval, unit as
    #: OME-Zarr names it, e.g. "micrometer", "second")
    scales: dict[str, tuple[float, str]] = field(default_factory=dict)
    #: channel index -> colour as "RRGGBB"
    colors: dict[int, str] = field(default_factory=dict)
    #: channel index -> (start, end) of the display window the acquisition recorded
    windows: dict[int, tuple[float, float]] = field(default_factory=dict)


def zarr_unit(text: Any, axis: str) -> Optional[str]:
    """The OME-Zarr unit name of a unit symbol or name found in metadata (None: not a unit of
    that axis, e.g. ImageJ's "pixel")."""
    if not isinstance(text, str):
        return None
    symbols, names = (_TIME_SYMBOLS, _TIME_NAMES) if axis == "t" else (_SPACE_SYMBOLS, _SPACE_NAMES)
    text = text.strip()
    return symbols.get(text) or names.get(text.lower())


def ome_xml_unit(name: str) -> str:
    """OME-XML's symbol of an OME-Zarr unit name (``micrometer`` -> ``µm``)."""
    return _OME_XML_SYMBOLS[name]


def calibration_of(global_meta: dict[str, Any]) -> Calibration:
    """The calibration a dataset's global metadata records (empty where it records none)."""
    if not isinstance(global_meta, dict):
        return Calibration()
    found: dict[str, tuple[float, str]] = {}
    for scales in (_physical_size_scales(global_meta), _ome_xml_scales(global_meta),
                   _mm_scales(global_meta)):
        for axis, scale in scales.items():
            found.setdefault(axis, scale)
    return Calibration(
        scales={axis: found[axis] for axis in ("x", "y", "z", "t") if axis in found},
        colors=_ome_colors(global_meta) or _mm_colors(global_meta) or _imagej_colors(global_meta),
        windows=_mm_windows(global_meta) or _imagej_windows(global_meta))


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


def _positive(value: Any) -> Optional[float]:
    """A size: a finite number over 0 (not a bool, not text), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _window(start: Any, end: Any) -> Optional[tuple[float, float]]:
    start, end = _number(start), _number(end)
    if start is None or end is None or end < start:
        return None
    return start, end


def _int32(value: Any) -> Optional[int]:
    """A 32-bit colour int as recorded, signed or not (Java's and OME's are signed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or not -(1 << 31) <= value < (1 << 32):
        return None
    return value & 0xFFFFFFFF


def _hex(rgb: int) -> str:
    return f"{rgb & 0xFFFFFF:06X}"


# --------------------------------------------------------------------------
# Scales
# --------------------------------------------------------------------------


def _physical_size_scales(global_meta: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """The ``physical_size`` dict that the OME-XML, ImageJ and tif_id splitters record."""
    found = global_meta.get("physical_size")
    if not isinstance(found, dict):
        return {}
    scales = {}
    for axis, key, unit_key, default in (("x", "x", "x_unit", "µm"), ("y", "y", "y_unit", "µm"),
                                         ("z", "z", "z_unit", "µm"),
                                         ("t", "time_increment", "time_unit", "s")):
        size, unit = _positive(found.get(key)), zarr_unit(found.get(unit_key, default), axis)
        if size is not None and unit is not None:
            scales[axis] = (size, unit)
    return scales


def _ome_xml_scales(global_meta: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """PhysicalSizeX/Y/Z and TimeIncrement of the first Image in ``ome_xml`` (a Micro-Manager
    OME-TIFF's; the OME-XML splitter's own reading is ``physical_size``)."""
    xml = global_meta.get("ome_xml")
    if "physical_size" in global_meta or not isinstance(xml, str):
        return {}
    pixels = _first_pixels(xml)
    if pixels is None:
        return {}
    scales = {}
    for axis, key, default in (("x", "PhysicalSizeX", "µm"), ("y", "PhysicalSizeY", "µm"),
                               ("z", "PhysicalSizeZ", "µm"), ("t", "TimeIncrement", "s")):
        size = _positive(_float(pixels.get(key)))
        unit = zarr_unit(pixels.get(f"{key}Unit", default), axis)
        if size is not None and unit is not None:
            scales[axis] = (size, unit)
    return scales


def _float(text: Optional[str]) -> Optional[float]:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _first_pixels(xml: str) -> Optional[dict[str, str]]:
    """The attributes of the document's first Pixels element (of its first Image), read only
    as far as that element: a Micro-Manager OME-XML has a Plane per image after it."""
    parser = ET.XMLPullParser(events=("start",))
    try:
        for start in range(0, len(xml), _XML_CHUNK):
            parser.feed(xml[start:start + _XML_CHUNK])
            for _, element in parser.read_events():
                if element.tag.rsplit("}", 1)[-1] == "Pixels":
                    return dict(element.attrib)
    except ET.ParseError:
        return None
    return None


def _mm_scales(global_meta: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """Micro-Manager's summary: PixelSize_um, z-step_um, Interval_ms (0 when not set)."""
    scales = {}
    for axis, key, unit in _MM_STEPS:
        size = _positive(global_meta.get(key))
        if size is not None:
            scales[axis] = (size, unit)
    return scales


# --------------------------------------------------------------------------
# Colours and windows
# --------------------------------------------------------------------------


def _ome_colors(global_meta: dict[str, Any]) -> dict[int, str]:
    """The first Image's Channel Color: a signed 32-bit RGBA int (OME's default, -1, is
    white); RRGGBB is its top three bytes."""
    images = global_meta.get("ome_images")
    if not isinstance(images, list) or not images or not isinstance(images[0], dict):
        return {}
    channels = images[0].get("channels")
    if not isinstance(channels, list):
        return {}
    colors = {}
    for index, channel in enumerate(channels):
        rgba = _int32(channel.get("Color")) if isinstance(channel, dict) else None
        if rgba is not None:
            colors[index] = _hex(rgba >> 8)
    return colors


def _mm_colors(global_meta: dict[str, Any]) -> dict[int, str]:
    """Micro-Manager's ChColors: Java ``Color.getRGB()`` ints (ARGB, so mostly negative), or
    plain RGB ints; RRGGBB is the low three bytes."""
    values = global_meta.get("ChColors")
    if not isinstance(values, list):
        return {}
    colors = {}
    for index, value in enumerate(values):
        argb = _int32(value)
        if argb is not None:
            colors[index] = _hex(argb)
    return colors


def _imagej_colors(global_meta: dict[str, Any]) -> dict[int, str]:
    """The colour of each ImageJ LUT that is a ramp from black to one colour (Fiji's and
    Micro-Manager's channel LUTs); other LUTs (Fire...) have no one colour."""
    ijmeta = global_meta.get("imagej_metadata")
    luts = ijmeta.get("LUTs") if isinstance(ijmeta, dict) else None
    if not isinstance(luts, list):
        return {}
    colors = {}
    for index, lut in enumerate(luts):
        top = _ramp_top(lut)
        if top is not None:
            colors[index] = "".join(f"{value:02X}" for value in top)
    return colors


def _ramp_top(lut: Any) -> Optional[tuple[int, int, int]]:
    """(red, green, blue) at index 255 of a 3 x 256 LUT rising linearly from black, else None."""
    if not isinstance(lut, (list, tuple)) or len(lut) != 3:
        return None
    top = []
    for ramp in lut:
        if (not isinstance(ramp, (list, tuple)) or len(ramp) != 256
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255
                           for v in ramp)):
            return None
        peak = ramp[255]
        if any(abs(value - i * peak / 255) > 1 for i, value in enumerate(ramp)):
            return None
        top.append(peak)
    return top[0], top[1], top[2]


def _mm_windows(global_meta: dict[str, Any]) -> dict[int, tuple[float, float]]:
    """Micro-Manager's ChContrastMin and ChContrastMax, channel by channel."""
    lows, highs = global_meta.get("ChContrastMin"), global_meta.get("ChContrastMax")
    if not isinstance(lows, list) or not isinstance(highs, list):
        return {}
    windows = {}
    for index, (low, high) in enumerate(zip(lows, highs)):
        window = _window(low, high)
        if window is not None:
            windows[index] = window
    return windows


def _imagej_windows(global_meta: dict[str, Any]) -> dict[int, tuple[float, float]]:
    """ImageJ's display Ranges (IJMetadata: start, end per channel), else for a one-channel
    image the header's min= and max=."""
    ijmeta = global_meta.get("imagej_metadata")
    ranges = ijmeta.get("Ranges") if isinstance(ijmeta, dict) else None
    if isinstance(ranges, (list, tuple)) and ranges and len(ranges) % 2 == 0:
        windows = {}
        for index in range(len(ranges) // 2):
            window = _window(ranges[2 * index], ranges[2 * index + 1])
            if window is not None:
                windows[index] = window
        if windows:
            return windows
    header = global_meta.get("image_description")
    if not isinstance(header, dict) or not any(key in header for key in _IMAGEJ_KEYS):
        return {}
    if header.get("channels", 1) != 1 or "min" not in header or "max" not in header:
        return {}
    window = _window(header["min"], header["max"])
    return {0: window} if window is not None else {}
