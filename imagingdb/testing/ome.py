"""OME-TIFF files for tests, as Bio-Formats and tifffile write them (no Micro-Manager tags)."""

from __future__ import annotations

import os
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import tifffile

from .scenes import FluorescenceScene

_OME_2016_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
_BIOFORMATS_WARNING = (
    "<!-- Warning: this comment is an OME-XML metadata block, which contains crucial "
    "dimensional parameters and other important metadata. Please edit cautiously (if at all), "
    "and back up the original data before doing so. For more information, see the OME-TIFF "
    "web site: https://docs.openmicroscopy.org/latest/ome-model/ome-tiff/. -->")


def _ome_plane_index(dimension_order: str, sizes: dict[str, int], plane: int) -> dict[str, int]:
    """Plane number ``plane`` of an OME DimensionOrder (``XYZCT``: z fastest) as C, Z, T."""
    found = {}
    for letter in dimension_order[2:]:
        plane, found[letter] = divmod(plane, sizes[letter])
    return found


def write_bioformats_ometiff(
    path: "os.PathLike[str] | str",
    *,
    images: int = 1,
    channels: Sequence[str] = ("DAPI", "GFP"),
    slices: int = 5,
    times: int = 5,
    dimension_order: str = "XYZCT",
    height: int = 24,
    width: int = 18,
    dtype: str = "uint8",
    physical_size: Optional[tuple[float, float, float]] = (0.1625, 0.1625, 0.5),
    time_increment: Optional[float] = 2.0,
    multifile: bool = False,
    creator: Optional[str] = "OME Bio-Formats 6.14.0",
    software: str = "OME Bio-Formats 6.14.0",
    seed: int = 0,
) -> list[Path]:
    """Write an OME-TIFF as Bio-Formats' OMETiffWriter does (bfconvert, Fiji's exporter).

    ``images`` Images (positions) of the same grid, in one file, or with
    ``multifile`` one file per Image (``<stem>_s<i>.ome.tif``, as bfconvert
    writes with ``%s`` in the output name), each holding the whole OME-XML.
    Every Plane has DeltaT, ExposureTime and the stage position. ``creator``
    None leaves the Creator attribute out, as Bio-Formats before 5.x did.
    Returns the files written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name[:-len(".ome.tif")] if path.name.endswith(".ome.tif") else path.stem
    names = ([f"{stem}_s{image}.ome.tif" for image in range(images)] if multifile
             else [path.name])
    file_of = (lambda image: names[image]) if multifile else (lambda image: names[0])
    uuids = {name: f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{name}:{seed}')}" for name in names}
    sizes = {"C": len(channels), "Z": slices, "T": times}
    root = _bioformats_ome(images, channels, sizes, dimension_order, height, width, dtype,
                           physical_size, time_increment, creator, file_of, uuids)
    scene = FluorescenceScene(height, width, dtype, nbr_slices=slices, seed=seed)
    written = []
    for name in names:
        root.set("UUID", uuids[name])
        xml = ET.tostring(root, encoding="unicode")
        xml = f'<?xml version="1.0" encoding="UTF-8"?>{_BIOFORMATS_WARNING}{xml}'
        frames = [(image, _ome_plane_index(dimension_order, sizes, plane))
                  for image in range(images) if file_of(image) == name
                  for plane in range(len(channels) * slices * times)]
        _write_bioformats_file(path.with_name(name), xml, frames, scene, software)
        written.append(path.with_name(name))
    return written


def _bioformats_ome(images: int, channels: Sequence[str], sizes: dict[str, int], order: str,
                    height: int, width: int, dtype: str,
                    physical_size: Optional[tuple[float, float, float]],
                    time_increment: Optional[float], creator: Optional[str],
                    file_of: Any, uuids: dict[str, str]) -> ET.Element:
    """Bio-Formats' OME-XML: Images with Channels, one TiffData and one Plane per plane."""
    root = ET.Element("OME", {"xmlns": _OME_2016_NS,
                              "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance"})
    if creator:
        root.set("Creator", creator)
    ifds: dict[str, int] = {}
    for image in range(images):
        element = ET.SubElement(root, "Image", {"ID": f"Image:{image}", "Name": f"Position {image}"})
        ET.SubElement(element, "AcquisitionDate").text = "2024-03-02T10:01:15"
        attrs = {"BigEndian": "false", "DimensionOrder": order, "ID": f"Pixels:{image}",
                 "Interleaved": "false", "SignificantBits": str(np.dtype(dtype).itemsize * 8),
                 "SizeC": str(sizes["C"]), "SizeT": str(sizes["T"]), "SizeX": str(width),
                 "SizeY": str(height), "SizeZ": str(sizes["Z"]), "Type": dtype}
        if physical_size is not None:
            for axis, value in zip("XYZ", physical_size):
                attrs.update({f"PhysicalSize{axis}": str(value), f"PhysicalSize{axis}Unit": "µm"})
        if time_increment is not None:
            attrs.update(TimeIncrement=str(time_increment), TimeIncrementUnit="s")
        pixels = ET.SubElement(element, "Pixels", attrs)
        for number, name in enumerate(channels):
            channel = ET.SubElement(pixels, "Channel", {"ID": f"Channel:{image}:{number}",
                                                        "Name": name, "SamplesPerPixel": "1"})
            ET.SubElement(channel, "LightPath")
        file_name = file_of(image)
        planes = [_ome_plane_index(order, sizes, plane)
                  for plane in range(sizes["C"] * sizes["Z"] * sizes["T"])]
        for plane in planes:
            ifd = ifds.get(file_name, 0)
            ifds[file_name] = ifd + 1
            data = ET.SubElement(pixels, "TiffData", {
                "FirstC": str(plane["C"]), "FirstT": str(plane["T"]), "FirstZ": str(plane["Z"]),
                "IFD": str(ifd), "PlaneCount": "1"})
            ET.SubElement(data, "UUID", {"FileName": file_name}).text = uuids[file_name]
        for plane in planes:
            ET.SubElement(pixels, "Plane", {
                "DeltaT": str(plane["T"] * (time_increment or 1.0)), "DeltaTUnit": "s",
                "ExposureTime": str(10.0 + 5 * plane["C"]), "ExposureTimeUnit": "ms",
                "PositionX": str(1000.0 + 250 * image), "PositionXUnit": "µm",
                "PositionY": str(2000.0), "PositionYUnit": "µm",
                "PositionZ": str(plane["Z"] * (physical_size[2] if physical_size else 1.0)),
                "PositionZUnit": "µm",
                "TheC": str(plane["C"]), "TheT": str(plane["T"]), "TheZ": str(plane["Z"])})
    return root


def _write_bioformats_file(path: Path, xml: str, frames: list[tuple[int, dict[str, int]]],
                           scene: FluorescenceScene, software: str) -> None:
    """Pages as Bio-Formats' TiffSaver writes them: one row per strip, X/YResolution 1/1, the
    OME-XML (UTF-8) on page 0 and an empty description on the others.

    tifffile cannot leave ResolutionUnit out, so it is written as inch, what its
    absence means in TIFF; nor write PlanarConfiguration 2 for one sample per
    pixel, where it means nothing.
    """
    with tifffile.TiffWriter(path, byteorder="<") as writer:
        for number, (image, plane) in enumerate(frames):
            writer.write(scene.frame(plane["C"], plane["Z"], plane["T"], image),
                         description=xml.encode() if number == 0 else None, metadata=None,
                         rowsperstrip=1, software=software, contiguous=False,
                         resolution=(1, 1), resolutionunit="INCH",
                         extratags=() if number == 0 else [(270, "s", 0, "", False)])


def write_tifffile_ometiff(
    path: "os.PathLike[str] | str",
    *,
    images: int = 1,
    channels: Sequence[str] = ("DAPI", "GFP"),
    slices: int = 3,
    times: int = 2,
    height: int = 16,
    width: int = 12,
    dtype: str = "uint16",
    physical_size: tuple[float, float, float] = (0.2, 0.2, 1.0),
    time_increment: float = 30.0,
    seed: int = 0,
) -> Path:
    """Write an OME-TIFF with tifffile's own OME writer (``ome=True``, axes TZCYX).

    tifffile writes one TiffData per Image (IFD, PlaneCount), no UUID children,
    and Creator="tifffile.py <version>"; each Image is a series of the file.
    """
    path = Path(path)
    scene = FluorescenceScene(height, width, dtype, nbr_slices=slices, seed=seed)
    with tifffile.TiffWriter(path, ome=True) as writer:
        for image in range(images):
            frames = (scene.frame(c, z, t, image) for t in range(times) for z in range(slices)
                      for c in range(len(channels)))
            writer.write(frames, shape=(times, slices, len(channels), height, width),
                         dtype=dtype, metadata={
                             "axes": "TZCYX", "Name": f"Position {image}",
                             "Channel": {"Name": list(channels)},
                             "PhysicalSizeX": physical_size[0], "PhysicalSizeY": physical_size[1],
                             "PhysicalSizeZ": physical_size[2], "TimeIncrement": time_increment,
                             "TimeIncrementUnit": "s"})
    return path
