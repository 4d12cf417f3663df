"""OME-TIFF files that Micro-Manager did not write (Bio-Formats, tifffile, ImageJ's exporter...).

The ``ome_tiff`` splitter hands a source here when its first file's page 0
ImageDescription is OME-XML and carries no MicroManagerMetadata; ``tif_id``
hands one-image, one-file OME-TIFFs here too, so both read them alike.

What the OME-XML says, and how it is used:

- **Images** (``<Image><Pixels>``): each one becomes a position, in document
  order. They must share SizeX, SizeY, SizeC, SizeZ, SizeT, Type and samples
  per pixel (a dataset has one grid); otherwise the upload is refused, naming
  the CSV ``positions`` column as the way to upload each shape on its own.
- **Dimensions**: SizeC (divided by the channels' SamplesPerPixel: an RGB
  image is one channel of RGB frames), SizeZ, SizeT; channel names from each
  Channel's Name (else ``channel<c>``); PhysicalSizeX/Y/Z with their units and
  TimeIncrement, kept in global metadata as ``physical_size``.
- **Where each plane is** (the OME-TIFF specification's TiffData rules): a
  TiffData's planes start at plane (FirstC, FirstZ, FirstT) and follow the
  Pixels' DimensionOrder (``XYZCT``: z fastest) over PlaneCount pages from page
  IFD (defaults: IFD 0; PlaneCount 1 when IFD is given, else every page of the
  file). Its UUID child names the file holding those pages: the file whose own
  OME UUID it is, else its FileName beside the file holding the XML. An Image
  without TiffData has its planes in consecutive pages, in DimensionOrder,
  after the previous Image's.
- **Missing planes**: planes no TiffData places, and planes placed on pages
  past the end of their file (a writer that stopped), are missing frames, with
  a warning. A referenced *file* that is not there is refused instead: a
  writer lists the files of a set when it finishes writing them, so a missing
  one is a copy that went wrong, and storing the rest would record holes that
  look like an acquisition stopped early. Files of other positions than those
  asked for (the CSV ``positions`` column) are not needed. Sizes no
  acquisition could have (``tiff_pages.check_declared_frames``: the planes of
  the Images read against the pages of their files) are refused before any
  plane is placed or channel named.
- **Metadata**: global metadata keeps the full OME-XML (``ome_xml``, never
  cut) and a summary of each Image read; each frame's metadata is its page's
  TIFF tags, its Plane's attributes (TheC, TheZ, TheT, DeltaT, ExposureTime,
  PositionX...), its channel's name, Image, file and IFD. Micro-Manager's
  per-page keys are not asked of them (:attr:`frame_schema` is empty): they
  are not Micro-Manager files.

tifffile reads OME-TIFFs too (``TiffFile.series``), but it loads every page
of every file of a set to do it and zero-fills what is missing with only a
log message, so the placement is done here, streaming, and tifffile is the
independent reader the tests compare against. tifffile's ``xml2dict`` is not
used either: it makes a single child a dict and several a list, and turns a
channel named ``488`` into the number 488.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

from ..acquisition import LIKELY, Acquisition, Dimensions, Frame, FrameIndex, SourceClaim, SplitOptions
from ..errors import SplitterError
from . import tiff_pages

if TYPE_CHECKING:
    import tifffile

DIMENSION_ORDERS = ("XYZCT", "XYZTC", "XYCTZ", "XYCZT", "XYTCZ", "XYTZC")
_OME_START = re.compile(r"<(\w+:)?OME[\s>/]")
#: attributes the OME schema types as numbers (the others, names and units above all, stay text)
_NUMERIC = frozenset({
    "TheC", "TheZ", "TheT", "DeltaT", "ExposureTime", "PositionX", "PositionY", "PositionZ",
    "SamplesPerPixel", "Color", "ExcitationWavelength", "EmissionWavelength", "PinholeSize",
    "NDFilter", "PockelCellSetting", "PhysicalSizeX", "PhysicalSizeY", "PhysicalSizeZ",
    "TimeIncrement", "SizeX", "SizeY", "SizeC", "SizeZ", "SizeT", "SignificantBits",
})


def looks_like_ome(text: Optional[str]) -> bool:
    """True if an ImageDescription is OME-XML (an XML document whose root is OME)."""
    if not text or not text.lstrip("\ufeff \t\r\n").startswith("<"):
        return False
    return _OME_START.search(text[:8192]) is not None


# --------------------------------------------------------------------------
# The OME-XML document
# --------------------------------------------------------------------------

#: OME-XML Pixels Type names that are not numpy's (the others, uint16..., are the same)
_OME_TYPES = {"float": "float32", "double": "float64", "bit": "bool"}


@dataclass(frozen=True)
class TiffData:
    """One TiffData element: where a run of planes is stored."""

    ifd: int
    first: dict[str, int]  # FirstC, FirstZ, FirstT by axis letter
    count: Optional[int]  # None: every page of the file from ``ifd`` on
    uuid: Optional[str] = None
    file_name: Optional[str] = None


@dataclass
class OmeImage:
    """One Image's Pixels: its grid, channels, TiffData and Planes."""

    index: int
    id: str
    name: Optional[str]
    acquisition_date: Optional[str]
    pixels: dict[str, Any]  # the Pixels element's attributes, typed
    sizes: dict[str, int]  # X, Y, C (stored channels), Z, T
    samples_per_pixel: int
    channels: list[dict[str, Any]]
    tiff_data: list[TiffData]
    planes: dict[tuple[int, int, int], dict[str, Any]] = field(default_factory=dict)

    @property
    def dimension_order(self) -> str:
        return self.pixels["DimensionOrder"]

    @property
    def pixel_type(self) -> str:
        """The Pixels Type as a numpy dtype name (OME's float and double are float32, float64)."""
        declared = str(self.pixels.get("Type", "")).lower()
        return _OME_TYPES.get(declared, declared)

    @property
    def nbr_planes(self) -> int:
        return self.sizes["C"] * self.sizes["Z"] * self.sizes["T"]

    def plane(self, linear: int) -> dict[str, int]:
        """Plane number ``linear`` of DimensionOrder as {"C": c, "Z": z, "T": t}."""
        found = {}
        for letter in self.dimension_order[2:]:  # fastest first
            linear, found[letter] = divmod(linear, self.sizes[letter])
        return found

    def linear(self, plane: dict[str, int]) -> int:
        linear = 0
        for letter in reversed(self.dimension_order[2:]):
            linear = linear * self.sizes[letter] + plane[letter]
        return linear

    def channel_names(self) -> list[str]:
        return [str(channel.get("Name") or f"channel{number}")
                for number, channel in enumerate(self.channels[:self.sizes["C"]])] + [
            f"channel{number}" for number in range(len(self.channels), self.sizes["C"])]

    def grid(self) -> tuple[Any, ...]:
        """What must match between Images that become positions of one dataset."""
        return (self.sizes["X"], self.sizes["Y"], self.sizes["C"], self.sizes["Z"],
                self.sizes["T"], self.pixel_type, self.samples_per_pixel)

    def shape_text(self) -> str:
        """E.g. "T5 C2 Z5": the sizes above 1, OME's slowest-first reading of XYZCT."""
        shown = [f"{letter}{self.sizes[letter]}" for letter in "TCZ" if self.sizes[letter] > 1]
        return " ".join(shown) or "one plane"

    def physical_size(self) -> dict[str, Any]:
        """PhysicalSizeX/Y/Z and TimeIncrement with their units (OME's defaults: µm, s)."""
        found: dict[str, Any] = {}
        for axis in "XYZ":
            value = self.pixels.get(f"PhysicalSize{axis}")
            if isinstance(value, (int, float)):
                found[axis.lower()] = value
                found[f"{axis.lower()}_unit"] = self.pixels.get(f"PhysicalSize{axis}Unit", "µm")
        if isinstance(self.pixels.get("TimeIncrement"), (int, float)):
            found["time_increment"] = self.pixels["TimeIncrement"]
            found["time_unit"] = self.pixels.get("TimeIncrementUnit", "s")
        return found

    def summary(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "name": self.name,
                "acquisition_date": self.acquisition_date,
                "dimension_order": self.dimension_order, "type": self.pixel_type,
                "sizes": dict(self.sizes), "samples_per_pixel": self.samples_per_pixel,
                "channels": self.channels, "physical_size": self.physical_size()}


@dataclass
class OmeDocument:
    xml: str
    uuid: Optional[str]
    creator: Optional[str]
    images: list[OmeImage]
    binary_only: Optional[str] = None  # BinaryOnly's MetadataFile: the XML is elsewhere


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _typed(attrs: dict[str, str]) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for key, value in attrs.items():
        key = _local(key)
        if key in _NUMERIC:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):  # NaN and infinities stay text: JSON has no such numbers
                typed[key] = int(number) if number.is_integer() and "." not in value else number
                continue
        typed[key] = value
    return typed


def _int(attrs: dict[str, str], key: str, default: Optional[int], where: str,
         minimum: int = 0) -> Optional[int]:
    value = attrs.get(key)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise SplitterError(f"{where}: OME-XML {key}={value!r} is not an integer >= {minimum} "
                            "(damaged OME-XML)")
    return number


def parse_ome(xml: str, where: str) -> OmeDocument:
    """The OME-XML's Images, or a SplitterError naming ``where`` and what is wrong."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise SplitterError(f"{where}: its ImageDescription looks like OME-XML but cannot be "
                            f"parsed ({exc}); the file is damaged") from None
    if _local(root.tag) != "OME":
        raise SplitterError(f"{where}: its ImageDescription is XML but not OME-XML "
                            f"(root element {_local(root.tag)!r})")
    images, binary_only = [], None
    for element in root:
        if _local(element.tag) == "BinaryOnly":
            binary_only = element.attrib.get("MetadataFile", "?")
        elif _local(element.tag) == "Image":
            images.append(_parse_image(element, len(images), where))
    return OmeDocument(xml, root.attrib.get("UUID"), root.attrib.get("Creator"), images,
                       binary_only)


def _parse_image(element: ET.Element, index: int, where: str) -> OmeImage:
    where = f"{where}: OME Image {index}"
    pixels = next((child for child in element if _local(child.tag) == "Pixels"), None)
    if pixels is None:
        raise SplitterError(f"{where} has no Pixels element (damaged OME-XML)")
    attrs = _typed(pixels.attrib)
    order = str(attrs.get("DimensionOrder", ""))
    if order not in DIMENSION_ORDERS:
        raise SplitterError(f"{where}: DimensionOrder {order!r} is not one of "
                            f"{', '.join(DIMENSION_ORDERS)} (damaged OME-XML)")
    sizes = {axis: _int(pixels.attrib, f"Size{axis}", None, where, minimum=1) or 0
             for axis in "XYCZT"}
    if 0 in sizes.values():
        raise SplitterError(f"{where}: Pixels lacks one of SizeX, SizeY, SizeC, SizeZ, SizeT")
    channels = [_typed(child.attrib) for child in pixels if _local(child.tag) == "Channel"]
    samples = _samples_per_pixel(channels, sizes["C"], where)
    sizes["C"] //= samples
    acquired = next((child.text for child in element
                     if _local(child.tag) in ("AcquisitionDate", "AcquiredDate")), None)
    image = OmeImage(index, element.attrib.get("ID", f"Image:{index}"), element.attrib.get("Name"),
                     acquired, attrs, sizes, samples, channels,
                     [_parse_tiff_data(child, where) for child in pixels
                      if _local(child.tag) == "TiffData"])
    for child in pixels:
        if _local(child.tag) == "Plane":
            plane = _typed(child.attrib)
            key = tuple(plane.get(name, 0) for name in ("TheC", "TheZ", "TheT"))
            image.planes[key] = plane  # type: ignore[index]
    return image


def _samples_per_pixel(channels: list[dict[str, Any]], size_c: int, where: str) -> int:
    samples = {channel.get("SamplesPerPixel", 1) for channel in channels} or {1}
    if len(samples) > 1 or not isinstance(next(iter(samples)), int):
        raise SplitterError(f"{where}: its channels have different SamplesPerPixel "
                            f"({sorted(map(str, samples))}); frames must share one shape")
    value = next(iter(samples))
    if value < 1 or size_c % value:
        raise SplitterError(f"{where}: SizeC={size_c} is not a multiple of SamplesPerPixel="
                            f"{value} (damaged OME-XML)")
    return value


def _parse_tiff_data(element: ET.Element, where: str) -> TiffData:
    attrs = element.attrib
    count = _int(attrs, "PlaneCount", None, where)
    if count is None:
        count = _int(attrs, "NumPlanes", None, where)  # the 2003-2008 schemas' name
    if count is None and "IFD" in attrs:
        count = 1
    uuid = next((child for child in element if _local(child.tag) == "UUID"), None)
    return TiffData(
        ifd=_int(attrs, "IFD", 0, where) or 0,
        first={axis: _int(attrs, f"First{axis}", 0, where) or 0 for axis in "CZT"},
        count=count,
        uuid=(uuid.text or "").strip() or None if uuid is not None else None,
        file_name=uuid.attrib.get("FileName") if uuid is not None else None,
    )


def root_uuid(xml: str) -> Optional[str]:
    """The OME root element's UUID, read from the document's start only."""
    parser = ET.XMLPullParser(events=("start",))
    try:
        for start in range(0, len(xml), 4096):
            parser.feed(xml[start:start + 4096])
            for _event, element in parser.read_events():
                return element.attrib.get("UUID")
    except ET.ParseError:
        return None
    return None


# --------------------------------------------------------------------------
# The files of a set
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    """A file of the set, as read at open: its page count and page 0's pixel format."""

    path: Path
    pages: int
    format: tiff_pages.PixelFormat
    uuid: Optional[str]


def source_files(source: Path) -> list[Path]:
    """A folder's .ome.tif(f) files in natural order (hidden and AppleDouble ones left out),
    or the file itself."""
    if source.is_dir():
        files = tiff_pages.listed(source, tiff_pages.OME_TIFF_SUFFIXES)
        if not files:
            raise SplitterError(f"{source}: folder contains no .ome.tif file")
        return files
    if not source.is_file():
        raise SplitterError(f"{source}: no such file or folder")
    return [source]


def _read_description(path: Path) -> tuple[str, str]:
    """Page 0's ImageDescription and Software tag."""
    with tiff_pages.opened(path) as tif:
        page = tiff_pages.first_page(tif, path)
        with tiff_pages.reading(f"{path}: page 0"):
            return page.description or "", str(page.tags.valueof(305) or "")


def _read_document(files: list[Path]) -> tuple[Path, OmeDocument, str]:
    """The file holding the OME-XML, the parsed document, and that file's Software tag.

    A BinaryOnly file (pixels only, its XML in the set's master file) is
    followed to the master when the master is one of ``files``.
    """
    path = files[0]
    text, software = _read_description(path)
    if not looks_like_ome(text):
        raise SplitterError(f"{path}: page 0 has no OME-XML ImageDescription and no "
                            "MicroManagerMetadata: not an OME-TIFF; use frames_format: tif_id "
                            "for a plain TIFF stack")
    document = parse_ome(text, str(path))
    if document.binary_only is None:
        return path, document, software
    master = next((other for other in files if other.name == document.binary_only), None)
    if master is None:
        raise SplitterError(
            f"{path} holds pixels only: its OME-XML is in {document.binary_only!r} (a BinaryOnly "
            "OME-TIFF); give the OME-TIFF file that holds the OME-XML, or its folder")
    return _read_document([master])


def _file_name_of(data: TiffData, document: OmeDocument, xml_path: Path, where: str) -> str:
    """The name of the file holding a TiffData's pages ('' for the file holding the XML)."""
    if data.uuid is None or data.uuid == document.uuid:
        return ""
    if data.file_name is None:
        raise SplitterError(f"{where}: a TiffData names its file by UUID {data.uuid} only, "
                            "without FileName, so the file cannot be found (damaged OME-XML)")
    if document.uuid is None and data.file_name.lower() == xml_path.name.lower():
        return ""
    if Path(data.file_name).name != data.file_name or data.file_name in ("", ".", ".."):
        raise SplitterError(f"{where}: TiffData FileName {data.file_name!r} is not a file name "
                            "beside this file (damaged OME-XML)")
    return data.file_name


def _open_file(path: Path, expected_uuid: Optional[str], xml_path: Path) -> _File:
    if not path.is_file():
        raise SplitterError(
            f"{xml_path}: its OME-XML places planes in {path.name}, which is not in "
            f"{path.parent}: copy every file of the OME-TIFF set there (or leave that file's "
            "positions out with the CSV positions column)")
    with tiff_pages.opened(path) as tif:
        page = tiff_pages.first_page(tif, path)
        page_format = tiff_pages.PixelFormat.of(page, f"{path}: page 0")
        count = tiff_pages.page_count(tif, path)
        with tiff_pages.reading(f"{path}: page 0"):
            text = page.description or ""
    uuid = root_uuid(text) if looks_like_ome(text) else None
    if path != xml_path and expected_uuid is not None and uuid != expected_uuid:
        raise SplitterError(
            f"{path} is not the file {xml_path.name}'s OME-XML places planes in: its OME UUID "
            f"is {uuid or 'missing'}, not {expected_uuid}; copy the OME-TIFF set's own files")
    return _File(path, count, page_format, uuid)


# --------------------------------------------------------------------------
# Where each plane is
# --------------------------------------------------------------------------


@dataclass
class _Plan:
    """The selected Images' planes: which file and page each one is on."""

    files: dict[Path, _File] = field(default_factory=dict)  # in the order planes are found
    pages: dict[Path, dict[int, FrameIndex]] = field(default_factory=dict)  # file -> IFD -> frame
    warnings: list[str] = field(default_factory=list)

    def add(self, path: Path, ifd: int, index: FrameIndex, where: str) -> None:
        on_page = self.pages.setdefault(path, {})
        if ifd in on_page:
            raise SplitterError(f"{where}: page {ifd} of {path.name} is placed twice, as "
                                f"{_describe(on_page[ifd])} and {_describe(index)} (damaged "
                                "OME-XML)")
        on_page[ifd] = index


def _describe(index: FrameIndex) -> str:
    # Not micromanager.describe_index: an OME position is an Image, and the user reads "image".
    return f"(channel {index.channel}, slice {index.slice}, time {index.time}, image {index.position})"


def _tiff_data_of(image: OmeImage, document: OmeDocument, where: str) -> list[TiffData]:
    """The Image's TiffData; without any, its planes follow the previous Images' pages."""
    if image.tiff_data:
        return image.tiff_data
    if any(other.tiff_data for other in document.images):
        raise SplitterError(f"{where}: OME Image {image.index} has no TiffData while other "
                            "Images have, so its pages are unknown (damaged OME-XML)")
    offset = sum(other.nbr_planes for other in document.images[:image.index])
    return [TiffData(ifd=offset, first={"C": 0, "Z": 0, "T": 0}, count=image.nbr_planes)]


def _plan(document: OmeDocument, xml_path: Path, images: list[OmeImage]) -> _Plan:
    """Which file and page each plane of ``images`` is on; every file is opened first."""
    where = str(xml_path)
    runs = [(image, data, _path_of(data, document, xml_path))
            for image in images for data in _tiff_data_of(image, document, where)]
    plan = _Plan()
    for _image, data, path in runs:
        if path not in plan.files:
            plan.files[path] = _open_file(path, data.uuid, xml_path)
    # Placing walks every declared plane, and the dataset's grid holds them all.
    tiff_pages.check_declared_frames(where, sum(image.nbr_planes for image in images),
                                     sum(found.pages for found in plan.files.values()))
    for image in images:
        _place(plan, image, [(data, path) for owner, data, path in runs if owner is image],
               xml_path)
    return plan


def _path_of(data: TiffData, document: OmeDocument, xml_path: Path) -> Path:
    name = _file_name_of(data, document, xml_path, str(xml_path))
    return xml_path.parent / name if name else xml_path


def _place(plan: _Plan, image: OmeImage, runs: list[tuple[TiffData, Path]],
           xml_path: Path) -> None:
    """Add the pages of one Image's TiffData to the plan; warn of the planes it lacks."""
    where = str(xml_path)
    placed: set[FrameIndex] = set()
    past_end: dict[Path, int] = {}
    for data, path in runs:
        for ifd, index in _planes_of(image, data, plan.files[path].pages, where):
            if index in placed:
                raise SplitterError(f"{where}: plane {_describe(index)} is placed twice by "
                                    "the OME-XML's TiffData (damaged OME-XML)")
            placed.add(index)
            if ifd >= plan.files[path].pages:
                past_end[path] = past_end.get(path, 0) + 1
            else:
                plan.add(path, ifd, index, where)
    plan.warnings += _missing_warnings(image, xml_path, plan, placed, past_end)


def _planes_of(image: OmeImage, data: TiffData, nbr_pages: int,
               where: str) -> Iterator[tuple[int, FrameIndex]]:
    """(page, frame) of each plane a TiffData places, in DimensionOrder from its First* plane."""
    for axis in "CZT":
        if data.first[axis] >= image.sizes[axis]:
            raise SplitterError(f"{where}: a TiffData of OME Image {image.index} starts at "
                                f"First{axis}={data.first[axis]} but Size{axis} is "
                                f"{image.sizes[axis]} (damaged OME-XML)")
    start = image.linear(data.first)
    if data.count is None:  # every page of the file: as many as the Image has room for
        count = min(max(nbr_pages - data.ifd, 0), image.nbr_planes - start)
    elif start + data.count > image.nbr_planes:
        raise SplitterError(f"{where}: a TiffData of OME Image {image.index} places "
                            f"{data.count} planes from plane {start}, past the Image's "
                            f"{image.nbr_planes} (damaged OME-XML)")
    else:
        count = data.count
    for number in range(count):
        plane = image.plane(start + number)
        yield data.ifd + number, FrameIndex(channel=plane["C"], slice=plane["Z"],
                                            time=plane["T"], position=image.index)


def _missing_warnings(image: OmeImage, xml_path: Path, plan: _Plan, placed: set[FrameIndex],
                      past_end: dict[Path, int]) -> list[str]:
    warnings = [f"{path}: the OME-XML places {count} plane(s) of image {image.index} on pages "
                f"past its last page (it has {plan.files[path].pages}): recorded as missing "
                "frames" for path, count in past_end.items()]
    unplaced = image.nbr_planes - len(placed)
    if unplaced:
        warnings.append(f"{xml_path}: {unplaced} of the {image.nbr_planes} planes of OME image "
                        f"{image.index} have no TiffData: recorded as missing frames")
    return warnings


# --------------------------------------------------------------------------
# The opened acquisition
# --------------------------------------------------------------------------


class OmeXmlAcquisition(Acquisition):
    """An OME-TIFF file or set read by its OME-XML: the plan made at open, pages streamed.

    ``reader`` names the splitter using it; ``tif_id`` takes one Image in one
    file and refuses the rest, naming ``ome_tiff``.
    """

    #: ome_tiff's default schema asks Micro-Manager's per-page keys, which these files lack
    frame_schema: dict[str, Any] = {}

    def __init__(self, source: Path, options: SplitOptions, reader: str = "ome_tiff"):
        self.source = source
        files = source_files(source)
        xml_path, document, software = _read_document(files)
        if reader != "ome_tiff" and len(document.images) > 1:
            raise SplitterError(
                f"{source} holds {len(document.images)} OME Images (positions); {reader} reads "
                "one image: use frames_format: ome_tiff (or leave frames_format out)")
        images = _selected_images(source, document, options.positions)
        _check_alike(xml_path, images)
        plan = _plan(document, xml_path, images)
        if reader != "ome_tiff" and len(plan.files) > 1:
            raise SplitterError(
                f"{source} is one file of a multi-file OME-TIFF set ({len(plan.files)} files); "
                f"{reader} reads one file: use frames_format: ome_tiff (or leave it out)")
        if source.is_dir():
            _check_folder_is_one_set(source, files, document, xml_path)
        self._plan = plan
        self._images = {image.index: image for image in images}
        self._format = _check_format(images[0], plan, xml_path)
        first = images[0]
        self.channel_names = first.channel_names()
        self.dims = Dimensions(
            nbr_channels=first.sizes["C"], nbr_slices=first.sizes["Z"],
            nbr_timepoints=first.sizes["T"], nbr_positions=len(images),
            im_height=first.sizes["Y"], im_width=first.sizes["X"],
            im_colors=self._format.colors, bit_depth=self._format.dtype)
        self.kind = describe(document, software, len(plan.files))
        self.warnings = plan.warnings + _channel_name_warnings(xml_path, images)
        if options.positions is None:
            self.warnings += _unplaced_page_warnings(plan)
        self.global_meta = {
            **options.name_metadata(source),
            "file_origin": str(source),
            "source_files": [path.name for path in plan.files],
            "ome_creator": document.creator,
            "software": software or None,
            "ome_images": [image.summary() for image in images],
            "physical_size": first.physical_size(),
            "ome_xml": document.xml,
        }

    def iter_frames(self, pixels: bool = True) -> Iterator[Frame]:
        for path, on_page in self._plan.pages.items():
            with tiff_pages.opened(path) as tif:
                for number, page in tiff_pages.numbered_pages(tif, path, stop=max(on_page) + 1):
                    index = on_page.get(number)
                    if index is None:
                        continue
                    where = f"{path}: page {number}"
                    self._format.check_same(tiff_pages.PixelFormat.of(page, where), where,
                                            f"{next(iter(self._plan.files))}: page 0")
                    yield Frame(
                        index=index,
                        channel_name=self.channel_names[index.channel],
                        metadata=self._frame_metadata(page, path, number, index),
                        pixels=tiff_pages.read_pixels(page, where) if pixels else None,
                        origin=f"{path.name} page {number}",
                    )

    def _frame_metadata(self, page: "tifffile.TiffPage", path: Path, number: int,
                        index: FrameIndex) -> dict[str, Any]:
        metadata = tiff_pages.page_metadata(page)
        if looks_like_ome(metadata.get("ImageDescription")):
            del metadata["ImageDescription"]  # the whole OME-XML: kept once, in global metadata
        image = self._images[index.position]
        metadata.update(image.planes.get((index.channel, index.slice, index.time), {}))
        metadata.update({
            "Channel": self.channel_names[index.channel],
            "OMEImage": image.id, "FileName": path.name, "IFD": number,
        })
        return metadata


def _selected_images(source: Path, document: OmeDocument,
                     positions: Optional[list[int]]) -> list[OmeImage]:
    if not document.images:
        raise SplitterError(f"{source}: its OME-XML describes no Image")
    if positions is None:
        return list(document.images)
    outside = sorted(p for p in positions if p >= len(document.images))
    if outside:
        raise SplitterError(f"{source}: position(s) {', '.join(map(str, outside))} not found; "
                            f"the OME-XML has images 0-{len(document.images) - 1}")
    return [document.images[p] for p in sorted(set(positions))]


def _check_alike(xml_path: Path, images: list[OmeImage]) -> None:
    first = images[0]
    for image in images[1:]:
        if image.grid() != first.grid():
            raise SplitterError(
                f"{xml_path}: OME Image {image.index} is {_grid_text(image)} but Image "
                f"{first.index} is {_grid_text(first)}; its Images become the positions of one "
                "dataset, so they must share shape and type: upload each kind as its own "
                "dataset with the CSV positions column")


def _grid_text(image: OmeImage) -> str:
    sizes = image.sizes
    colors = f"x{image.samples_per_pixel} samples " if image.samples_per_pixel > 1 else ""
    return (f"{sizes['X']}x{sizes['Y']} {colors}{image.pixel_type}, C{sizes['C']} Z{sizes['Z']} "
            f"T{sizes['T']}")


def _check_format(image: OmeImage, plan: _Plan, xml_path: Path) -> tiff_pages.PixelFormat:
    """Page 0 of every file must hold what the OME-XML says: SizeY x SizeX of Type."""
    expected_shape = (image.sizes["Y"], image.sizes["X"]) + (
        (image.samples_per_pixel,) if image.samples_per_pixel > 1 else ())
    for found in plan.files.values():
        if found.format.shape != expected_shape or found.format.dtype != image.pixel_type:
            raise SplitterError(
                f"{found.path}: page 0 is {found.format.shape} {found.format.dtype} but the "
                f"OME-XML says {expected_shape} {image.pixel_type} (damaged or mislabelled file)")
    return next(iter(plan.files.values())).format


def _check_folder_is_one_set(source: Path, files: list[Path], document: OmeDocument,
                             xml_path: Path) -> None:
    """A folder given as the source must hold one set: the files its OME-XML names."""
    named = {xml_path.name} | {
        _file_name_of(data, document, xml_path, str(xml_path)) or xml_path.name
        for image in document.images for data in image.tiff_data}
    strangers = [path.name for path in files if path.name not in named]
    if strangers:
        raise SplitterError(
            f"{source}: {', '.join(strangers[:3])}{'...' if len(strangers) > 3 else ''} "
            f"hold(s) no plane of the OME-TIFF set that {xml_path.name} describes; give each "
            "OME-TIFF file (or set) as its own CSV row")


def _channel_name_warnings(xml_path: Path, images: list[OmeImage]) -> list[str]:
    names = images[0].channel_names()
    return [f"{xml_path}: OME Image {image.index} names its channels "
            f"{', '.join(image.channel_names())}, Image {images[0].index} "
            f"{', '.join(names)}: the dataset uses the latter"
            for image in images[1:] if image.channel_names() != names]


def _unplaced_page_warnings(plan: _Plan) -> list[str]:
    warnings = []
    for path, found in plan.files.items():
        unplaced = found.pages - len(plan.pages.get(path, {}))
        if unplaced > 0:
            warnings.append(f"{path}: {unplaced} of its {found.pages} pages hold no plane of the "
                            "OME-XML and are not stored")
    return warnings


def describe(document: OmeDocument, software: str = "", nbr_files: int = 1) -> str:
    """E.g. "OME-TIFF written by Bio-Formats (1 image, T5 C2 Z5)"."""
    writer = document.creator or software
    images = document.images
    count = f"{len(images)} image{'s' if len(images) != 1 else ''}"
    shapes = {image.shape_text() for image in images}
    shape = (f", {shapes.pop()}{' each' if len(images) > 1 else ''}" if len(shapes) == 1
             else ", of different shapes")
    files = f" in {nbr_files} files" if nbr_files > 1 else ""
    return f"OME-TIFF{' written by ' + writer if writer else ''} ({count}{files}{shape})"


# --------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------


def first_file(source: Path) -> Optional[Path]:
    """The file whose page 0 says what ``source`` is: the file, or a folder's first .ome.tif."""
    if source.is_file():
        return source if source.name.lower().endswith(tiff_pages.TIFF_SUFFIXES) else None
    if source.is_dir():
        files = tiff_pages.listed(source, tiff_pages.OME_TIFF_SUFFIXES)
        return files[0] if files else None
    return None


def generic_ome_description(path: Path) -> Optional[tuple[str, str]]:
    """Page 0's OME-XML and Software tag if ``path`` is an OME-TIFF without Micro-Manager's tags.

    None for anything else, including files that cannot be read: a claim or a
    dispatch must never fail where the format's own reader would explain.
    """
    try:
        with tiff_pages.opened(path) as tif:
            page = tif.pages.first
            if tiff_pages.has_micromanager_metadata(page) or tiff_pages.is_ndtiff(tif):
                return None
            text = page.description or ""
            software = str(page.tags.valueof(305) or "")
    except Exception:  # noqa: BLE001 - anything unreadable is simply not claimed here
        return None
    return (text, software) if looks_like_ome(text) else None


def is_generic_ome(source: Path) -> bool:
    """True if ``source``'s first file is an OME-TIFF that Micro-Manager did not write."""
    path = first_file(source)
    return path is not None and generic_ome_description(path) is not None


def claim_generic_ome(source: Path) -> Optional[SourceClaim]:
    """``ome_tiff``'s claim on OME-TIFFs without Micro-Manager metadata: LIKELY."""
    path = first_file(source)
    found = generic_ome_description(path) if path is not None else None
    if found is None:
        return None
    try:
        document = parse_ome(found[0], str(path))
    except SplitterError:
        return SourceClaim("ome_tiff", "OME-TIFF (damaged OME-XML)", LIKELY)
    return SourceClaim("ome_tiff", describe(document, found[1]), LIKELY)
