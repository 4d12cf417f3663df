"""What a dataset's recorded metadata says about its pixels' physical size, time step and
channel display: read from the global metadata the splitters wrote, for OME-Zarr and
OME-TIFF writers.

The splitters keep the source's own words (``physical_size`` from OME-XML and
ImageJ calibrations; Micro-Manager's summary). This module reads them into
one :class:`Calibration`, with units as OME-Zarr names them (UDUNITS-2:
``micrometer``, ``second``); :func:`ome_xml_unit` turns those back into
OME-XML's symbols. An axis, colour or window the metadata does not give is
simply absent: nothing is guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

#: unit symbols and names found in metadata -> the OME-Zarr (UDUNITS-2) unit name
_SPACE_UNITS = {
    "µm": "micrometer", "\u03bcm": "micrometer", "um": "micrometer", "micron": "micrometer",
    "microns": "micrometer", "micrometer": "micrometer", "micrometre": "micrometer",
    "nm": "nanometer", "nanometer": "nanometer", "mm": "millimeter", "millimeter": "millimeter",
    "cm": "centimeter", "centimeter": "centimeter", "m": "meter", "meter": "meter",
    "pm": "picometer", "picometer": "picometer", "Å": "angstrom", "angstrom": "angstrom",
}
_TIME_UNITS = {
    "s": "second", "sec": "second", "second": "second", "seconds": "second",
    "ms": "millisecond", "millisecond": "millisecond", "milliseconds": "millisecond",
    "µs": "microsecond", "\u03bcs": "microsecond", "us": "microsecond",
    "microsecond": "microsecond", "ns": "nanosecond", "nanosecond": "nanosecond",
    "min": "minute", "minute": "minute", "minutes": "minute", "h": "hour", "hour": "hour",
    "hours": "hour",
}
#: OME-Zarr unit name -> OME-XML's symbol (UnitsLength, UnitsTime)
_OME_XML_SYMBOLS = {
    "micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "centimeter": "cm", "meter": "m",
    "picometer": "pm", "angstrom": "Å", "second": "s", "millisecond": "ms",
    "microsecond": "µs", "nanosecond": "ns", "minute": "min", "hour": "h",
}


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
    units = _TIME_UNITS if axis == "t" else _SPACE_UNITS
    return units.get(text.strip()) or units.get(text.strip().lower())


def ome_xml_unit(name: str) -> str:
    """OME-XML's symbol of an OME-Zarr unit name (``micrometer`` -> ``µm``)."""
    return _OME_XML_SYMBOLS[name]


def _positive(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def _from_physical_size(found: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """The ``physical_size`` dict that the OME-XML, ImageJ and tif_id splitters record."""
    scales = {}
    for axis, key, unit_key, default in (("x", "x", "x_unit", "µm"), ("y", "y", "y_unit", "µm"),
                                         ("z", "z", "z_unit", "µm"),
                                         ("t", "time_increment", "time_unit", "s")):
        size, unit = _positive(found.get(key)), zarr_unit(found.get(unit_key, default), axis)
        if size is not None and unit is not None:
            scales[axis] = (size, unit)
    return scales


def calibration_of(global_meta: dict[str, Any]) -> Calibration:
    """The calibration a dataset's global metadata records (empty where it records none)."""
    found = global_meta.get("physical_size")
    scales = _from_physical_size(found) if isinstance(found, dict) else {}
    return Calibration(scales=scales)
