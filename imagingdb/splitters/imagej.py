"""ImageJ's metadata in a TIFF file: the hyperstack header and the IJMetadata tag.

ImageJ and Fiji describe a stack in the first page's ImageDescription, one
``key=value`` per line (``ij/io/FileSaver.getDescriptionString``):
``ImageJ=1.53f``, ``images=34``, ``channels=2``, ``slices=17``, ``frames=``,
``hyperstack=true``, ``unit=`` (non-ASCII escaped as ``\\u00B5``),
``spacing=`` (z step), ``finterval=`` (seconds between frames), ``tunit=``,
``min=``/``max=``... Micro-Manager writes the same header in a *second*
ImageDescription (tifffile's ``page.description1``), after its OME-XML, and
adds ``order=zct`` when its pages run z fastest, which ImageJ's opener honours
(``ij/io/Opener``: ``HyperStackConverter.shuffle(..., ZCT)``). The original
imagingDB's ``positions=`` key counts as ImageJ too.

The IJMetadata tag (50839, its byte counts in 50838; ``ij/io/TiffEncoder.
writeMetaData``) holds the ``Info`` text, one ``Labels`` entry per image (an
empty label has 0 bytes), the channels' display ``Ranges``, ``LUTs``, and
binary ROI/overlay/plot blobs. tifffile decodes it; this module turns it into
JSON-able metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from ..errors import SplitterError
from . import tiff_pages

if TYPE_CHECKING:
    import tifffile

#: ImageDescription keys giving each axis' size
SIZE_KEYS = {"channel": "channels", "slice": "slices", "position": "positions", "time": "frames"}
#: page order (fastest axis first) for each ``order=`` value ImageJ's opener knows
PAGE_ORDERS = {
    "czt": ("channel", "slice", "position", "time"),
    "zct": ("slice", "channel", "position", "time"),
}
_ESCAPED = re.compile(r"\\u([0-9a-fA-F]{4})")
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_RESOLUTION_UNITS = {2: "inch", 3: "cm"}  # TIFF ResolutionUnit; 1 (none) means ImageJ's unit=


def parse_description(text: str) -> dict[str, Any]:
    """ImageJ's ``key=value`` lines as a dict (numbers and booleans typed); {} if not ImageJ."""
    entries: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        entries[key] = _typed(_ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), value.strip()))
    if "ImageJ" in entries or any(key in entries for key in SIZE_KEYS.values()):
        return entries
    return {}


def _typed(value: str) -> Any:
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if _NUMBER.fullmatch(value):
        return float(value)
    if value in ("true", "false"):
        return value == "true"
    return value


@dataclass(frozen=True)
class ImageJHeader:
    """A parsed ImageJ ImageDescription and where it was found."""

    entries: dict[str, Any]
    second: bool = False  # in the second ImageDescription (where Micro-Manager writes it)

    @property
    def version(self) -> str:
        return str(self.entries.get("ImageJ", "?"))

    @property
    def where(self) -> str:
        return "second ImageDescription" if self.second else "ImageDescription"

    def sizes(self, source: Any, sequence_axis: str = "slice") -> dict[str, int]:
        """Each axis' size; a stack declaring only ``images=N`` is N along ``sequence_axis``
        (slices unless the upload config says ``sequence_axis: t``), as a plain stack is.

        ``images`` that disagrees with channels x slices x frames (x positions)
        is refused: ImageJ would then open the file as a plain stack, and which
        page is which could only be guessed.
        """
        sizes = {}
        for axis, key in SIZE_KEYS.items():
            value = self.entries.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SplitterError(f"{source}: {self.where} {key}={value!r} is not a positive "
                                    "integer")
            sizes[axis] = value
        declared = sizes["channel"] * sizes["slice"] * sizes["position"] * sizes["time"]
        images = self.entries.get("images")
        if not isinstance(images, int) or isinstance(images, bool) or images == declared:
            return sizes
        if declared == 1 and images > 1:
            return {**sizes, sequence_axis: images}
        raise SplitterError(
            f"{source}: {self.where} declares images={images} but channels={sizes['channel']} "
            f"x slices={sizes['slice']} x frames={sizes['time']}"
            + (f" x positions={sizes['position']}" if sizes["position"] > 1 else "")
            + f" = {declared}, so where each page belongs is unknown; fix the header (Fiji: "
            "Image > Hyperstacks > Stack to Hyperstack, then save) or store the file whole "
            "with upload_type: file")

    def page_order(self, source: Any) -> tuple[str, ...]:
        """The axes in page order, fastest first (ImageJ's default: channel fastest)."""
        order = str(self.entries.get("order", "czt")).lower().removeprefix("xy")
        if order not in PAGE_ORDERS:
            raise SplitterError(
                f"{source}: {self.where} order={self.entries['order']!r} is not a page order "
                "ImageJ knows (czt or zct), so where each page belongs is unknown; store the "
                "file whole with upload_type: file")
        return PAGE_ORDERS[order]

    def kind(self, sizes: dict[str, int]) -> str:
        """E.g. "ImageJ hyperstack (ImageJ 1.53f; C2 Z17)"."""
        what = ("hyperstack" if self.entries.get("hyperstack") is True
                else "stack" if max(sizes.values()) > 1 else "image")
        shown = " ".join(f"{letter}{sizes[axis]}" for letter, axis in
                         (("C", "channel"), ("Z", "slice"), ("T", "time"), ("P", "position"))
                         if sizes[axis] > 1)
        place = "; in the second ImageDescription" if self.second else ""
        return f"ImageJ {what} (ImageJ {self.version}{'; ' + shown if shown else ''}{place})"

    def physical_size(self, page: "tifffile.TiffPage") -> dict[str, Any]:
        """Pixel size (from X/YResolution), z step, units and frame interval, as ImageJ saved them."""
        found: dict[str, Any] = {}
        unit = self.entries.get("unit")
        resolution_unit = _RESOLUTION_UNITS.get(_tag_int(page, 296))
        # ImageJ writes X/YResolution only for a calibrated image (one with a unit=);
        # others' default 1/1 without a unit is no calibration.
        calibrated = unit is not None or resolution_unit is not None
        for axis, code in (("x", 282), ("y", 283)):
            size = _pixel_size(page, code) if calibrated else None
            if size is not None:
                found[axis] = size
                found[f"{axis}_unit"] = resolution_unit or (
                    self.entries.get("yunit", unit) if axis == "y" else unit) or "pixel"
        if isinstance(self.entries.get("spacing"), (int, float)):
            found["z"] = float(self.entries["spacing"])
            found["z_unit"] = self.entries.get("zunit", unit) or "pixel"
        if isinstance(self.entries.get("finterval"), (int, float)):
            found["time_increment"] = float(self.entries["finterval"])
            found["time_unit"] = self.entries.get("tunit", "sec")
        return found


def find_header(page: "tifffile.TiffPage") -> Optional[ImageJHeader]:
    """The ImageJ header in page 0's first ImageDescription, else in its second one."""
    for second, text in ((False, page.description), (True, page.description1)):
        entries = parse_description(text or "")
        if entries:
            return ImageJHeader(entries, second)
    return None


def read_ijmetadata(page: "tifffile.TiffPage") -> dict[str, Any]:
    """The IJMetadata tag as JSON-able metadata: Info, Labels (a list), Ranges, LUTs, Properties.

    Binary entries (ROI, Overlays, Plot: ImageJ's own serialisations) are not
    kept; their sizes are, under ``binary_entries``, so it is known they existed.
    """
    try:
        value = page.tags.valueof(tiff_pages.IJ_METADATA_TAG)
    except Exception:  # noqa: BLE001 - a damaged tag is reported as absent, pixels still read
        return {}
    if not isinstance(value, dict):
        return {}
    kept: dict[str, Any] = {}
    binary: dict[str, int] = {}
    for key, entry in value.items():
        if key == "Labels":
            kept[key] = [entry] if isinstance(entry, str) else [str(label) for label in entry]
        elif key == "LUTs":
            luts = entry if isinstance(entry, list) else [entry]
            kept[key] = [lut.tolist() for lut in luts if hasattr(lut, "tolist")]
        elif isinstance(entry, (bytes, bytearray)):
            binary[key] = len(entry)
        elif isinstance(entry, list) and entry and isinstance(entry[0], (bytes, bytearray)):
            binary[key] = sum(len(item) for item in entry)
        elif isinstance(entry, tuple):
            kept[key] = list(entry)
        else:
            kept[key] = entry
    if binary:
        kept["binary_entries"] = binary
    return kept


def _tag_int(page: "tifffile.TiffPage", code: int) -> Optional[int]:
    tag = page.tags.get(code)
    try:
        return int(tag.value) if tag is not None else None
    except (TypeError, ValueError):
        return None


def _pixel_size(page: "tifffile.TiffPage", code: int) -> Optional[float]:
    """1 / X- or YResolution (a TIFF rational: pixels per unit), None if absent or zero."""
    tag = page.tags.get(code)
    value = tag.value if tag is not None else None
    if isinstance(value, tuple) and len(value) == 2 and value[0] and value[1]:
        return value[1] / value[0]
    return None
