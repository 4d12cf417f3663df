"""Micro-Manager's files as its writers lay them out, for tests (sample data, not the product).

- :func:`write_mm_ometiff`: a Micro-Manager 1.4 or 2.0 OME-TIFF acquisition
  (``*_MMStack_<position>.ome.tif`` and their ``_1``, ``_2`` continuation files);
- :func:`write_mm_tif_folder`, :func:`write_mm_position_folders`: Micro-Manager
  1.4 or 2.0 "image files" acquisitions (one TIFF per image, ``metadata.txt``),
  flat or in position folders; :func:`cut_metadata_txt` leaves a
  ``metadata.txt`` as a crashed or still-running acquisition does;
- :func:`write_demo_acquisition`: the small acquisition ``make demo`` uploads.

Pixels come from :mod:`.scenes`.
"""

from __future__ import annotations

import json
import os
import re
import struct
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Collection, Optional, Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from .scenes import FluorescenceScene, intensity_levels, rgb_frame

# --------------------------------------------------------------------------
# Micro-Manager: what an acquisition recorded, as 1.4 and 2.0 write it
# --------------------------------------------------------------------------
#
# Reproduced from Micro-Manager's writers (micro-manager/micro-manager):
# 1.4 = tag v1.4.23, mmstudio/src/org/micromanager/acquisition/
#   MultipageTiffWriter.java, TaggedImageStorageMultipageTiff.java, OMEMetadata.java,
#   TaggedImageStorageDiskDefault.java (image files);
# 2.0 = tag v2.0.0, mmstudio/src/main/java/org/micromanager/data/internal/
#   multipagetiff/{MultipageTiffWriter,FileSet,StorageMultipageTiff,OMEMetadata}.java,
#   StorageSinglePlaneTiffSeries.java (image files), and the JSON layouts of
#   internal/propertymap/NonPropertyMapJSONFormats.java with data/internal/PropertyKey.java.

_MM_VERSIONS = {"1.4": "1.4.23-20180220", "2.0": "2.0.0"}
_IMAGEJ_VERSIONS = {"1.4": "1.48v", "2.0": "1.53c"}  # the ImageJ each bundles
_OME_SCHEMAS = {"1.4": "2015-01", "2.0": "2016-06"}  # of the Bio-Formats each bundles
_MM_START = datetime(2018, 3, 21, 11, 22, 33, tzinfo=timezone(timedelta(hours=-7)))
_CAMERA = "HamamatsuHam_DCAM"
_PIXEL_SIZE_UM = 0.65
_Z_STEP_UM = 0.5
_INTERVAL_MS = 1000.0
# Micro-Manager's default channel colours (ARGB ints, as Java stores them).
_CHANNEL_COLORS = (-16776961, -16711936, -65536, -65281, -16711681, -256)
# MultipageTiffWriter.MAX_FILE_SIZE: classic TIFF offsets are 32-bit, so a
# position continues in a new file (<name>_1.ome.tif...) before 4 GB.
_MM_MAX_FILE_BYTES = 4 * 2**30
_MM_SPARE_BYTES = 5_000_000 + 1_048_576  # hasSpaceToWrite's padding and room for comments

# Micro-Manager file header: magic numbers of the blocks it locates (they are
# the values tifffile.read_micromanager_metadata checks).
_INDEX_MAP_HEADER, _INDEX_MAP_BLOCK = 54773648, 3453623
_DISPLAY_HEADER, _DISPLAY_BLOCK = 483765892, 347834724
_COMMENTS_HEADER, _COMMENTS_BLOCK = 99384722, 84720485
_SUMMARY_HEADER = 2355492
_DISPLAY_BYTES_PER_CHANNEL = 256

FrameTuple = tuple[int, int, int, int]  # (channel, slice, time, position)


@dataclass(frozen=True)
class _MMAcquisition:
    """What a Micro-Manager multi-dimensional acquisition was asked to record."""

    name: str
    channels: tuple[str, ...]
    slices: int
    times: int
    positions: int
    height: int
    width: int
    dtype: str
    seed: int
    version: str = "1.4"
    labels: tuple[str, ...] = ()  # position labels; default Pos0, Pos1...
    slices_first: bool = False  # z varies fastest (else channel)
    comment: str = ""
    rgb: bool = False
    times_written: Optional[int] = None  # time points an aborted acquisition completed

    @property
    def pixel_type(self) -> str:
        if self.rgb:
            return "RGB32"
        return "GRAY8" if self.dtype == "uint8" else "GRAY16"

    @property
    def bit_depth(self) -> int:
        return 8 if self.dtype == "uint8" else 16

    def label(self, position: int) -> str:
        return self.labels[position] if self.labels else f"Pos{position}"

    def order(self, position: int) -> list[FrameTuple]:
        """One position's images in acquisition order ("Time, Position, Slice, Channel")."""
        if self.slices_first:
            return [(c, z, t, position) for t in range(self.times)
                    for c in range(len(self.channels)) for z in range(self.slices)]
        return [(c, z, t, position) for t in range(self.times)
                for z in range(self.slices) for c in range(len(self.channels))]

    def exposure_ms(self, channel: int) -> float:
        return 50.0 * (channel + 1)

    def elapsed_ms(self, index: FrameTuple) -> float:
        channel, slice, time, position = index
        images_before = ((position * self.slices + slice) * len(self.channels) + channel)
        return time * _INTERVAL_MS + 30.0 * images_before

    def stage_xy_um(self, position: int) -> tuple[float, float]:
        """Positions on a 4-wide grid of tiles with 10% overlap."""
        step_x, step_y = 0.9 * self.width * _PIXEL_SIZE_UM, 0.9 * self.height * _PIXEL_SIZE_UM
        x = 1000.0 + step_x * (position % 4)
        y = 2000.0 + step_y * (position // 4)
        return round(x, 3), round(y, 3)

    def z_um(self, slice: int) -> float:
        return round(25.0 + _Z_STEP_UM * slice, 3)

    def uuid(self, *parts: object) -> str:
        """A deterministic UUID, so that files written twice are identical."""
        key = "/".join(str(part) for part in (self.name, self.seed, *parts))
        return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def _timestamp(elapsed_ms: float) -> str:
    when = _MM_START + timedelta(milliseconds=elapsed_ms)
    return when.strftime("%Y-%m-%d %H:%M:%S %z")


def _make_acquisition(name: str, channels: Sequence[str], slices: int, times: int,
                      positions: int, height: int, width: int, dtype: str, seed: int,
                      version: str, labels: Optional[Sequence[str]], **extra: Any
                      ) -> _MMAcquisition:
    if version not in _MM_VERSIONS:
        raise ValueError(f"version must be one of {', '.join(_MM_VERSIONS)}")
    if labels is not None and len(labels) != positions:
        raise ValueError("give one position label per position")
    acquisition = _MMAcquisition(name, tuple(channels), slices, times, positions, height, width,
                                 np.dtype(dtype).name, seed, version,
                                 tuple(labels) if labels else (), **extra)
    intensity_levels(acquisition.dtype)
    if not acquisition.channels:
        raise ValueError("at least one channel is needed")
    if min(slices, times, positions, height, width) < 1:
        raise ValueError("slices, times, positions, height and width must be >= 1")
    return acquisition


# ----------------------------------------------------------------- summaries


def _mm_summary(acquisition: _MMAcquisition) -> dict[str, Any]:
    """The acquisition summary, with the keys (and order) of acquisition.version."""
    if acquisition.version == "2.0":
        return _mm2_summary(acquisition)
    nbr_channels = len(acquisition.channels)
    max_value = int(np.iinfo(acquisition.dtype).max)
    return {
        "Prefix": acquisition.name,
        "MicroManagerVersion": _MM_VERSIONS["1.4"],
        "MetadataVersion": 10,
        "Source": "Micro-Manager",
        "UUID": acquisition.uuid("summary"),
        "Date": _MM_START.strftime("%Y-%m-%d"),
        "Time": _timestamp(0.0),
        "StartTime": _timestamp(0.0),
        "ComputerName": "scope-1",
        "UserName": "imagingdb",
        "Comment": acquisition.comment,
        "Channels": nbr_channels,
        "Slices": acquisition.slices,
        "Frames": acquisition.times,
        "Positions": acquisition.positions,
        "ChNames": list(acquisition.channels),
        "ChColors": [_CHANNEL_COLORS[c % len(_CHANNEL_COLORS)] for c in range(nbr_channels)],
        "ChContrastMin": [0] * nbr_channels,
        "ChContrastMax": [max_value] * nbr_channels,
        "ChannelGroup": "Channel",
        "Width": acquisition.width,
        "Height": acquisition.height,
        "PixelType": acquisition.pixel_type,
        "BitDepth": acquisition.bit_depth,
        "IJType": 4 if acquisition.rgb else 0 if acquisition.dtype == "uint8" else 1,
        "PixelSize_um": _PIXEL_SIZE_UM,
        "PixelAspect": 1.0,
        "z-step_um": _Z_STEP_UM,
        "Interval_ms": _INTERVAL_MS,
        "SlicesFirst": acquisition.slices_first,
        "TimeFirst": False,
        "KeepShutterOpenSlices": False,
        "KeepShutterOpenChannels": False,
        "InitialPositionList": [_mm_position(acquisition, p) for p in range(acquisition.positions)],
    }


def _mm_position(acquisition: _MMAcquisition, position: int) -> dict[str, Any]:
    """One entry of 1.4's InitialPositionList (a MultiStagePosition)."""
    x, y = acquisition.stage_xy_um(position)
    return {
        "Label": acquisition.label(position),
        "GridRowIndex": position // 4,
        "GridColumnIndex": position % 4,
        "DefaultXYStage": "XYStage",
        "DefaultZStage": "ZStage",
        "DeviceCoordinatesUm": {"XYStage": [x, y], "ZStage": [acquisition.z_um(0)]},
        "Properties": {},
    }


def _mm2_summary(acquisition: _MMAcquisition) -> dict[str, Any]:
    """2.0's SummaryFormat keys in their order; the 1.4 sizes are copies of IntendedDimensions."""
    intended = {"time": acquisition.times, "position": acquisition.positions,
                "z": acquisition.slices, "channel": len(acquisition.channels)}
    axis_order = ["z", "channel"] if acquisition.slices_first else ["channel", "z"]
    return {
        "Prefix": acquisition.name,
        "UserName": "imagingdb",
        "ProfileName": "Default user",
        "MicroManagerVersion": _MM_VERSIONS["2.0"],
        "MetadataVersion": "10",
        "ComputerName": "scope-1",
        "Directory": "D:\\data",
        "ChannelGroup": "Channel",
        "ChNames": list(acquisition.channels),
        "z-step_um": _Z_STEP_UM,
        "Interval_ms": _INTERVAL_MS,
        "CustomIntervals_ms": [],
        "AxisOrder": axis_order + ["position", "time"],
        "TimeFirst": False,
        "SlicesFirst": acquisition.slices_first,
        "IntendedDimensions": intended,
        "Frames": acquisition.times,
        "Positions": acquisition.positions,
        "Slices": acquisition.slices,
        "Channels": len(acquisition.channels),
        "StartTime": _timestamp(0.0),
        "StagePositions": [_mm2_position(acquisition, p) for p in range(acquisition.positions)],
        "KeepShutterOpenSlices": False,
        "KeepShutterOpenChannels": False,
        "PixelType": acquisition.pixel_type,
        "Width": acquisition.width,
        "Height": acquisition.height,
        "UserData": {},
    }


def _mm2_position(acquisition: _MMAcquisition, position: int) -> dict[str, Any]:
    """One of 2.0's StagePositions (MultiStagePositionFormat; Properties serialise as null)."""
    x, y = acquisition.stage_xy_um(position)
    return {
        "Label": acquisition.label(position),
        "DefaultXYStage": "XYStage",
        "DefaultZStage": "ZStage",
        "GridRow": position // 4,
        "GridCol": position % 4,
        "DevicePositions": [{"Device": "XYStage", "Position_um": [x, y]},
                            {"Device": "ZStage", "Position_um": [acquisition.z_um(0)]}],
    }


# ----------------------------------------------------------- per-image metadata


def _scope_data(acquisition: _MMAcquisition, index: FrameTuple) -> dict[str, str]:
    """Device properties of the core's state cache (strings, as Micro-Manager records them)."""
    channel, slice, _, _ = index
    return {
        "Core-Camera": _CAMERA, "Core-Focus": "ZStage", "Core-XYStage": "XYStage",
        "Core-Shutter": "LED", "Core-ChannelGroup": "Channel",
        f"{_CAMERA}-Binning": "1x1",
        f"{_CAMERA}-Exposure": f"{acquisition.exposure_ms(channel):.4f}",
        "ZStage-Position": f"{acquisition.z_um(slice):.4f}",
        "Dichroic-Label": f"{acquisition.channels[channel]} filter set",
    }


def _mm_page_metadata(acquisition: _MMAcquisition, index: FrameTuple,
                      file_name: str) -> dict[str, Any]:
    """An image's metadata as acquisition.version records it (1.4: TaggedImage tags)."""
    if acquisition.version == "2.0":
        return _mm2_image_metadata(acquisition, index, file_name)
    channel, slice, time, position = index
    exposure = acquisition.exposure_ms(channel)
    elapsed = acquisition.elapsed_ms(index)
    x, y = acquisition.stage_xy_um(position)
    return {
        "ChannelIndex": channel, "SliceIndex": slice, "FrameIndex": time, "PositionIndex": position,
        "Channel": acquisition.channels[channel], "Slice": slice, "Frame": time,
        "PositionName": acquisition.label(position),
        "FileName": file_name,
        "UUID": acquisition.uuid(*index),
        "Camera": _CAMERA, "CameraChannelIndex": 0, "Source": _CAMERA,
        "Exposure-ms": exposure,
        "ElapsedTime-ms": elapsed,
        "Time": _timestamp(elapsed),
        "Width": acquisition.width, "Height": acquisition.height,
        "PixelType": acquisition.pixel_type, "BitDepth": acquisition.bit_depth,
        "Binning": "1",
        "PixelSizeUm": _PIXEL_SIZE_UM,
        "ROI": f"0-0-{acquisition.width}-{acquisition.height}",
        "XPositionUm": x, "YPositionUm": y, "ZPositionUm": acquisition.z_um(slice),
        "SlicePosition": acquisition.z_um(slice), "AxisPositions": None,
        "NextFrame": time, "WaitInterval": 0, "Position": "Default",
        **_scope_data(acquisition, index),
    }


def _mm2_image_metadata(acquisition: _MMAcquisition, index: FrameTuple,
                        file_name: str) -> dict[str, Any]:
    """2.0's per-image JSON: ImageFormat, then CoordsFormat, then MetadataFormat keys.

    Unlike 1.4 there is no channel name (2.0 names channels in the summary only).
    """
    channel, slice, time, position = index
    x, y = acquisition.stage_xy_um(position)
    scope = _scope_data(acquisition, index)
    elapsed = acquisition.elapsed_ms(index)
    return {
        "Width": acquisition.width, "Height": acquisition.height,
        "PixelType": acquisition.pixel_type,
        "Frame": time, "FrameIndex": time, "PositionIndex": position,
        "Slice": slice, "SliceIndex": slice, "ChannelIndex": channel,
        "UUID": acquisition.uuid(*index),
        "Camera": _CAMERA,
        "Binning": 1,
        "ROI": f"0-0-{acquisition.width}-{acquisition.height}",
        "BitDepth": acquisition.bit_depth,
        "Exposure-ms": acquisition.exposure_ms(channel),
        "ElapsedTime-ms": elapsed,
        "ImageNumber": 0.0,
        "ReceivedTime": (_MM_START + timedelta(milliseconds=elapsed)).strftime(
            "%Y-%m-%d %H:%M:%S.%f")[:-3] + " -0700",
        "PixelSizeUm": _PIXEL_SIZE_UM,
        "PixelSizeAffine": f"{_PIXEL_SIZE_UM};0.0;0.0;0.0;{_PIXEL_SIZE_UM};0.0",
        "PositionName": acquisition.label(position),
        "XPositionUm": x, "YPositionUm": y, "ZPositionUm": acquisition.z_um(slice),
        **scope,
        "ScopeDataKeys": list(scope),
        "UserData": {},
        "FileName": file_name,
    }


def _mm2_coords(index: FrameTuple) -> dict[str, int]:
    """2.0's CoordsFormat: FrameIndex and SliceIndex repeat Frame and Slice for 1.4 readers."""
    channel, slice, time, position = index
    return {"Frame": time, "FrameIndex": time, "PositionIndex": position,
            "Slice": slice, "SliceIndex": slice, "ChannelIndex": channel}


def _json_compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _json_pretty(value: Any) -> str:
    """Gson's setPrettyPrinting and org.json's toString(2) both indent by two spaces."""
    return json.dumps(value, indent=2, ensure_ascii=False)


# -------------------------------------------------------------------- OME-XML


def _xml(tag: str, attributes: dict[str, Any], children: str = "", text: str = "") -> str:
    """One element; Bio-Formats' serialiser writes attributes in alphabetical order."""
    attrs = "".join(f" {key}={quoteattr(str(value))}" for key, value in sorted(attributes.items()))
    inner = children + escape(text)
    return f"<{tag}{attrs}/>" if not inner else f"<{tag}{attrs}>{inner}</{tag}>"


def _ome_document(acquisition: _MMAcquisition, body: str) -> str:
    schema = f"http://www.openmicroscopy.org/Schemas/OME/{_OME_SCHEMAS[acquisition.version]}"
    return ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>'
            f'<OME xmlns="{schema}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{schema} {schema}/ome.xsd">{body}</OME>')


def _ome_binary_only(acquisition: _MMAcquisition, file_name: str) -> str:
    """What every file outside the master file set holds: a pointer to the full OME-XML."""
    return _ome_document(acquisition, _xml("BinaryOnly", {
        "MetadataFile": file_name, "UUID": f"urn:uuid:{acquisition.uuid(file_name)}"}))


def _ome_xml(acquisition: _MMAcquisition, plan: list["_MMFile"]) -> str:
    """The OME-XML of the whole dataset: an Image per position, a TiffData and a Plane per page."""
    instrument = "Microscope" if acquisition.version == "1.4" else "Instrument:0"
    body = _xml("Instrument", {"ID": instrument}, _xml("Detector", {
        "ID": _CAMERA if acquisition.version == "1.4" else "Detector:0:0",
        "Manufacturer": "Hamamatsu", "Model": "C13440"}))
    pages: dict[int, list[tuple[str, int, FrameTuple]]] = {}
    for mm_file in plan:
        for ifd, index in enumerate(mm_file.pages):
            pages.setdefault(mm_file.position, []).append((mm_file.name, ifd, index))
    for position in range(acquisition.positions):
        body += _ome_image(acquisition, position, pages.get(position, []), instrument)
    return _ome_document(acquisition, body)


def _ome_image(acquisition: _MMAcquisition, position: int,
               pages: list[tuple[str, int, FrameTuple]], instrument: str) -> str:
    x, y = acquisition.stage_xy_um(position)
    channels = "".join(
        _xml("Channel", {"ID": f"Channel:{position}:{c}", "Name": name, "SamplesPerPixel": 1,
                         **({"Color": _CHANNEL_COLORS[c % len(_CHANNEL_COLORS)]}
                            if acquisition.version == "1.4" else {})}, "<LightPath/>")
        for c, name in enumerate(acquisition.channels))
    tiff_data = "".join(
        _xml("TiffData", {"FirstC": c, "FirstT": t, "FirstZ": z, "IFD": ifd, "PlaneCount": 1},
             _xml("UUID", {"FileName": name}, text=f"urn:uuid:{acquisition.uuid(name)}"))
        for name, ifd, (c, z, t, _) in pages)
    planes = "".join(_ome_plane(acquisition, index) for _, _, index in pages)
    pixels = _xml("Pixels", {
        "BigEndian": "false", "DimensionOrder": "XYZCT" if acquisition.slices_first else "XYCZT",
        "ID": f"Pixels:{position}", "Type": acquisition.dtype,
        "SizeX": acquisition.width, "SizeY": acquisition.height,
        "SizeC": len(acquisition.channels), "SizeZ": acquisition.slices,
        "SizeT": acquisition.times_written or acquisition.times,
        "TimeIncrement": _INTERVAL_MS, "TimeIncrementUnit": "ms",
        "PhysicalSizeX": _PIXEL_SIZE_UM, "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": _PIXEL_SIZE_UM, "PhysicalSizeYUnit": "µm",
        "PhysicalSizeZ": _Z_STEP_UM, "PhysicalSizeZUnit": "µm"}, channels + tiff_data + planes)
    children = (_xml("AcquisitionDate", {}, text=_MM_START.strftime("%Y-%m-%dT%H:%M:%S"))
                + (_xml("Description", {}, text=acquisition.comment) if acquisition.comment else "")
                + _xml("InstrumentRef", {"ID": instrument})
                + _xml("StageLabel", {"Name": acquisition.label(position), "X": x, "XUnit": "µm",
                                      "Y": y, "YUnit": "µm"})
                + pixels)
    name = f"{acquisition.name}_MMStack_{acquisition.label(position)}"
    return _xml("Image", {"ID": f"Image:{position}", "Name": name}, children)


def _ome_plane(acquisition: _MMAcquisition, index: FrameTuple) -> str:
    channel, slice, time, position = index
    x, y = acquisition.stage_xy_um(position)
    return _xml("Plane", {
        "TheC": channel, "TheZ": slice, "TheT": time,
        "DeltaT": acquisition.elapsed_ms(index), "DeltaTUnit": "ms",
        "ExposureTime": acquisition.exposure_ms(channel), "ExposureTimeUnit": "ms",
        "PositionX": x, "PositionXUnit": "µm", "PositionY": y, "PositionYUnit": "µm",
        "PositionZ": acquisition.z_um(slice), "PositionZUnit": "µm"})


# --------------------------------------------------------------- ImageJ parts


def _ij_description(acquisition: _MMAcquisition) -> str:
    """The second ImageDescription of a file's first page (getIJDescriptionString)."""
    channels, slices = len(acquisition.channels), acquisition.slices
    times = acquisition.times_written or acquisition.times  # setAbortedNumFrames
    lines = [f"ImageJ={_IMAGEJ_VERSIONS[acquisition.version]}"]
    lines += [f"{key}={value}" for key, value in
              (("channels", channels), ("slices", slices), ("frames", times)) if value > 1]
    if max(channels, slices, times) > 1:
        lines.append("hyperstack=true")
        if channels > 1 and slices > 1 and acquisition.slices_first:
            lines.append("order=zct")
    lines.append("unit=um")
    if slices > 1:
        lines.append(f"spacing={_Z_STEP_UM}")
    max_value = float(np.iinfo(acquisition.dtype).max)
    if channels > 1:
        lines.append("mode=composite")
    else:
        lines += (["mode=gray"] if acquisition.version == "2.0" else []) + [
            "min=0.0", f"max={max_value}"]
    return "\n".join(lines) + "\n\0"


def _ij_info(acquisition: _MMAcquisition) -> str:
    """The ImageJ Info of the first page: the summary, after the comment if there is one."""
    summary = _mm_summary(acquisition)
    text = _json_compact(summary) if acquisition.version == "1.4" else _json_pretty(summary)
    if acquisition.comment:
        text = f"Acquisition comments: \n{acquisition.comment}\n\n\n{text}"
    return text


def _lut(color: int) -> bytes:
    """ImageUtils.makeLUT(color, gamma 1): 256 reds, 256 greens, 256 blues."""
    argb = color & 0xFFFFFFFF
    components = ((argb >> 16) & 0xFF, (argb >> 8) & 0xFF, argb & 0xFF)
    ramp = np.arange(256) / 255.0
    return b"".join((ramp * value).astype(np.uint8).tobytes() for value in components)


def _ij_metadata(acquisition: _MMAcquisition) -> tuple[list[int], bytes]:
    """IJMetadataByteCounts and IJMetadata as writeImageJMetadata writes them (info, ranges, LUTs)."""
    nbr_channels = len(acquisition.channels)
    info = _ij_info(acquisition).encode("utf-16-le")
    max_value = float(np.iinfo(acquisition.dtype).max)
    ranges = struct.pack(f"<{2 * nbr_channels}d", *[v for _ in range(nbr_channels)
                                                    for v in (0.0, max_value)])
    luts = [_lut(_CHANNEL_COLORS[c % len(_CHANNEL_COLORS)]) for c in range(nbr_channels)]
    header = struct.pack("<7I", 0x494A494A, 0x696E666F, 1, 0x72616E67, 1, 0x6C757473,
                         nbr_channels)
    counts = [len(header), len(info), len(ranges), *[len(lut) for lut in luts]]
    return counts, header + info + ranges + b"".join(luts)


def _display_settings(acquisition: _MMAcquisition) -> str:
    max_value = int(np.iinfo(acquisition.dtype).max)
    if acquisition.version == "2.0":  # DefaultDisplaySettings as a property map
        return _json_compact({"encoding": "UTF-8", "format": "Micro-Manager Property Map",
                              "major_version": 2, "minor_version": 0, "map": {}})
    return _json_compact([
        {"Name": name, "Color": _CHANNEL_COLORS[c % len(_CHANNEL_COLORS)],
         "Min": 0, "Max": max_value, "Gamma": 1.0, "HistogramMax": -1, "DisplayMode": 1}
        for c, name in enumerate(acquisition.channels)])


def _comments(acquisition: _MMAcquisition, pages: Sequence[FrameTuple]) -> str:
    comments = {"Summary": acquisition.comment}
    if acquisition.version == "2.0":  # MM1JSONSerializer: one (empty) comment per image
        comments.update((f"{c}_{z}_{t}_{p}", "") for c, z, t, p in pages)
    return _json_compact(comments)


# ------------------------------------------------------- the multipage TIFF file


class _MMStackFile:
    """One ``*_MMStack_*.ome.tif`` laid out byte for byte as MultipageTiffWriter does.

    Header (8 bytes TIFF, then 32 bytes of Micro-Manager block offsets), the
    summary JSON, the index map (an entry per page: channel, slice, frame,
    position, IFD offset; room reserved for more), then page after page: an
    IFD (13 entries; 17 on the first page, with two empty ImageDescriptions and
    the IJMetadata pair, filled when the file is closed), the pixels, the
    resolution rationals, the page's JSON. Closing appends the ImageJ
    metadata, the OME-XML, the ImageJ description, display settings and
    comments, and points the first IFD and the header at them. Pixels are
    little-endian ('II'), as Micro-Manager writes on the PCs it runs on.
    """

    def __init__(self, path: Path, summary: str, image_bytes: int, capacity: int,
                 mm_header: bool):
        self._fh: BinaryIO = open(path, "wb")
        self._mm_header = mm_header
        self._image_bytes = image_bytes
        self._first_ifd = True
        self._tag_slots: dict[str, int] = {}  # tag -> file offset of its IFD entry
        self._next_ifd_slot = 4  # where the last page's next-IFD offset is
        if not mm_header:
            self._fh.write(b"II*\x00" + struct.pack("<I", 8))
            self._position = 8
            return
        summary_bytes = summary.encode("utf-8")
        index_map_space = 8 + 20 * capacity
        first_ifd = 40 + len(summary_bytes) + index_map_space
        self._fh.write(b"II*\x00" + struct.pack("<I", first_ifd))
        self._fh.write(struct.pack("<8I", _INDEX_MAP_HEADER, 40 + len(summary_bytes), 0, 0, 0, 0,
                                   _SUMMARY_HEADER, len(summary_bytes)))
        self._fh.write(summary_bytes)
        self._index_map_start = 40 + len(summary_bytes)
        self._fh.write(struct.pack("<II", _INDEX_MAP_BLOCK, capacity))
        self._index_map_next = self._index_map_start + 8
        self._position = first_ifd  # the reserved entries stay zero (sparse on disk)

    def write_image(self, pixels: np.ndarray, index: FrameTuple, md_bytes: bytes,
                    resolution: int, indexed: bool = True) -> None:
        height, width = pixels.shape[:2]
        count = 17 if self._first_ifd else 13
        start = self._position
        data = start + 2 + count * 12 + 4
        entries = [(256, 4, 1, width), (257, 4, 1, height),
                   (258, 3, 1, pixels.dtype.itemsize * 8), (259, 3, 1, 1), (262, 3, 1, 1)]
        if self._first_ifd:
            entries += [(270, 2, 0, 0), (270, 2, 0, 0)]
        entries += [(273, 4, 1, data), (277, 3, 1, 1), (278, 3, 1, height),
                    (279, 4, 1, self._image_bytes), (282, 5, 1, data + self._image_bytes),
                    (283, 5, 1, data + self._image_bytes + 8), (296, 3, 1, 3)]
        if self._first_ifd:
            entries += [(50838, 4, 0, 0), (50839, 1, 0, 0)]
        entries.append((51123, 2, len(md_bytes), data + self._image_bytes + 16))
        ifd = bytearray(struct.pack("<H", count))
        slots = iter(("ome-xml", "imagej-description", "imagej-counts", "imagej-data"))
        for number, (tag, kind, n, value) in enumerate(entries):
            if self._first_ifd and tag in (270, 50838, 50839):
                self._tag_slots[next(slots)] = start + 2 + 12 * number
            value_bytes = (struct.pack("<HH", value, 0) if kind == 3 and n == 1
                           else struct.pack("<I", value))
            ifd += struct.pack("<HHI", tag, kind, n) + value_bytes
        self._next_ifd_slot = start + len(ifd)
        next_ifd = data + self._image_bytes + 16 + len(md_bytes)
        ifd += struct.pack("<I", next_ifd)
        self._fh.seek(start)
        self._fh.write(ifd)
        self._fh.write(np.ascontiguousarray(pixels, pixels.dtype.newbyteorder("<")).tobytes())
        self._fh.write(struct.pack("<4I", resolution, 1, resolution, 1))
        self._fh.write(md_bytes)
        if self._mm_header and indexed:
            self._fh.seek(self._index_map_next)
            self._fh.write(struct.pack("<5I", *index, start))
            self._index_map_next += 20
        self._position = next_ifd
        self._first_ifd = False

    def finish(self) -> None:
        """The last page links to no next page; the index map says how many entries it has."""
        self._put(self._next_ifd_slot, struct.pack("<I", 0))
        if self._mm_header:
            entries = (self._index_map_next - self._index_map_start - 8) // 20
            self._put(self._index_map_start + 4, struct.pack("<I", entries))

    def close(self, ome_xml: str, ij_description: str, ij_metadata: tuple[list[int], bytes],
              display_settings: str, nbr_channels: int, comments: str) -> None:
        counts, ij_data = ij_metadata
        self._append_to_tag("imagej-counts", len(counts), struct.pack(f"<{len(counts)}I", *counts))
        self._append_to_tag("imagej-data", len(ij_data), ij_data)
        for slot, text in (("ome-xml", ome_xml), ("imagej-description", ij_description)):
            data = text.encode("utf-8") + b"\0"
            self._append_to_tag(slot, len(data), data)
        if self._mm_header:
            settings = display_settings.encode("utf-8")
            reserved = nbr_channels * _DISPLAY_BYTES_PER_CHANNEL
            self._append_block(16, _DISPLAY_HEADER, _DISPLAY_BLOCK, reserved, settings, reserved)
            data = comments.encode("utf-8")
            self._append_block(24, _COMMENTS_HEADER, _COMMENTS_BLOCK, len(data), data, len(data))
        self._fh.truncate(self._position + 8)  # "extra byte of space", as Micro-Manager leaves
        self._fh.close()

    def _append_to_tag(self, slot: str, count: int, data: bytes) -> None:
        self._put(self._tag_slots[slot] + 4, struct.pack("<II", count, self._position))
        self._put(self._position, data)
        self._position += len(data)

    def _append_block(self, header_at: int, offset_magic: int, block_magic: int, length: int,
                      data: bytes, reserved: int) -> None:
        self._put(self._position, struct.pack("<II", block_magic, length) + data)
        self._put(header_at, struct.pack("<II", offset_magic, self._position))
        self._position += 8 + reserved

    def _put(self, offset: int, data: bytes) -> None:
        self._fh.seek(offset)
        self._fh.write(data)


@dataclass
class _MMFile:
    name: str
    position: int
    pages: list[FrameTuple]
    blank: frozenset[FrameTuple] = frozenset()  # padding of an aborted acquisition's last frame


def _mm_file_plan(acquisition: _MMAcquisition, drop: set[FrameTuple],
                  max_pages_per_file: Optional[int], blank: set[FrameTuple]) -> list[_MMFile]:
    """Every file to write: a position's pages continue in <base>_1.ome.tif... when one is full."""
    page_bytes = acquisition.height * acquisition.width * np.dtype(acquisition.dtype).itemsize
    limit = (_MM_MAX_FILE_BYTES - _MM_SPARE_BYTES) // (page_bytes + 4096)
    per_file = min(max_pages_per_file or limit, limit)
    plan = []
    for position in range(acquisition.positions):
        pages = [index for index in acquisition.order(position) if index not in drop]
        pages += sorted((index for index in blank if index[3] == position),
                        key=lambda index: (index[1], index[0]))
        base = f"{acquisition.name}_MMStack_{acquisition.label(position)}"
        for part, start in enumerate(range(0, len(pages), per_file)):
            suffix = f"_{part}" if part else ""
            chunk = pages[start:start + per_file]
            plan.append(_MMFile(f"{base}{suffix}.ome.tif", position, chunk,
                                frozenset(blank.intersection(chunk))))
    return plan


def _aborted(acquisition: _MMAcquisition, images: int) -> tuple[set[FrameTuple], set[FrameTuple]]:
    """(images never acquired, blank pages) of an acquisition stopped after ``images`` images.

    FileSet.finishAbortedAcqIfNeeded completes the last time point of every position
    already started with blank images (completeFrameWithBlankImages).
    """
    order = [index for time in range(acquisition.times) for position in range(acquisition.positions)
             for index in acquisition.order(position) if index[2] == time]
    acquired, lost = order[:images], set(order[images:])
    if not acquired or not lost:
        return lost, set()
    last = acquired[-1][2]
    started = {index[3] for index in acquired}
    blank = {(c, z, last, p) for p in started for c in range(len(acquisition.channels))
             for z in range(acquisition.slices)} - set(acquired)
    return lost, blank


def write_mm_ometiff(
    folder: "os.PathLike[str] | str",
    name: str = "sample",
    *,
    channels: Sequence[str] = ("DAPI", "GFP"),
    slices: int = 3,
    times: int = 2,
    positions: int = 2,
    height: int = 64,
    width: int = 64,
    dtype: str = "uint16",
    max_pages_per_file: Optional[int] = None,
    drop: Collection[FrameTuple] = (),
    seed: int = 0,
    file_header: bool = True,
    scene: Any = None,
    version: str = "1.4",
    position_labels: Optional[Sequence[str]] = None,
    slices_first: bool = False,
    comment: str = "",
    reserve_index_map: bool = False,
    aborted_after: Optional[int] = None,
) -> list[Path]:
    """Write a Micro-Manager OME-TIFF acquisition (``version`` "1.4" or "2.0") into ``folder``.

    One file per position, ``<name>_MMStack_<label>.ome.tif`` (labels default
    to ``Pos0``, ``Pos1``...: both versions name a position's files after its
    label); a position whose pages exceed ``max_pages_per_file`` (or 4 GB)
    continues in ``<name>_MMStack_<label>_1.ome.tif``, ``_2``... Pages are in
    Micro-Manager's default order, time outermost, then slice, channel
    innermost (``slices_first``: then channel, slice innermost).

    Every file has Micro-Manager's header (summary, index map of its own
    pages, display settings, comments) and each page its
    ``MicroManagerMetadata`` JSON (1.4: ChannelIndex... with the channel
    name; 2.0: Width, Height, PixelType, Frame, FrameIndex, PositionIndex,
    Slice, SliceIndex, ChannelIndex, then metadata, no channel name). The
    first page of every file holds two ImageDescriptions: the OME-XML (the
    whole dataset's in every file of the first position, a ``BinaryOnly``
    pointer to that position's last file elsewhere) and the ImageJ
    description; and the summary as ImageJ ``Info``. ``file_header=False``
    mimics a file rewritten by a tool that dropped Micro-Manager's header.
    Micro-Manager reserves room for 4 GB / image size index entries, hundreds
    of megabytes for test-sized images: ``reserve_index_map`` does the same
    (the room stays sparse on disk), else only the pages written get room.

    ``aborted_after``: the acquisition was stopped after this many images (in
    acquisition order: time, then position, then its slices and channels), and
    Micro-Manager completed the last time point of each position it had started
    with blank pages (MicroManagerMetadata ``NULL``, absent from the index
    map), declaring that many time points in the ImageJ description and the
    OME-XML; the summary keeps the sizes asked for.
    ``drop``: (channel, slice, time, position) tuples not written, to mimic an
    acquisition stopped early without that completion. Pixels come from :class:`FluorescenceScene`
    with ``seed`` (or ``scene``); pages are streamed one at a time, so any
    size is written in constant memory. Returns the files written, sorted.
    """
    acquisition = _make_acquisition(name, channels, slices, times, positions, height, width,
                                    dtype, seed, version, position_labels,
                                    slices_first=slices_first, comment=comment)
    if max_pages_per_file is not None and max_pages_per_file < 1:
        raise ValueError("max_pages_per_file must be >= 1")
    drop, blank = set(map(tuple, drop)), set()
    if aborted_after is not None:
        lost, blank = _aborted(acquisition, aborted_after)
        drop |= lost
        if blank:
            acquisition = replace(acquisition, times_written=max(i[2] for i in blank) + 1)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plan = _mm_file_plan(acquisition, drop, max_pages_per_file, blank)
    if scene is None:
        scene = FluorescenceScene(height, width, dtype, nbr_slices=slices, seed=seed)
    full_ome = _ome_xml(acquisition, plan)
    # The first position's file set takes the full OME-XML (a HashMap of positions, walked
    # in order); the others point at its current, i.e. last, file.
    master = [mm_file for mm_file in plan if mm_file.position == plan[0].position] if plan else []
    pointer = _ome_binary_only(acquisition, master[-1].name) if master else ""
    for mm_file in plan:
        _write_mm_file(folder / mm_file.name, acquisition, mm_file,
                       full_ome if mm_file in master else pointer, scene, file_header,
                       reserve_index_map)
    return sorted(folder / mm_file.name for mm_file in plan)


def _write_mm_file(path: Path, acquisition: _MMAcquisition, mm_file: _MMFile,
                   ome_xml: str, scene: Any, file_header: bool, reserve_index_map: bool) -> None:
    summary = _mm_summary(acquisition)
    if acquisition.version == "1.4":
        summary.pop("Comment")  # writeMMHeaderAndSummaryMD drops it ("TODO: removing summary comment")
        summary_text = _json_compact(summary)
    else:
        summary_text = _json_pretty(summary)
    image_bytes = acquisition.height * acquisition.width * np.dtype(acquisition.dtype).itemsize
    acquired = [index for index in mm_file.pages if index not in mm_file.blank]
    capacity = _MM_MAX_FILE_BYTES // image_bytes if reserve_index_map else len(acquired)
    writer = _MMStackFile(path, summary_text, image_bytes, capacity, file_header)
    resolution = int(1 / (0.0001 * _PIXEL_SIZE_UM))  # pixels per cm, as the rational's numerator
    for index in mm_file.pages:
        if index in mm_file.blank:  # writeBlankIFD: zeros, "NULL " unterminated, not indexed
            writer.write_image(np.zeros((acquisition.height, acquisition.width), acquisition.dtype),
                               index, b"NULL ", resolution, indexed=False)
            continue
        metadata = _json_compact(_mm_page_metadata(acquisition, index, path.name))
        writer.write_image(scene.frame(*index), index, metadata.encode("utf-8") + b"\0",
                           resolution)
    writer.finish()
    writer.close(ome_xml, _ij_description(acquisition), _ij_metadata(acquisition),
                 _display_settings(acquisition), len(acquisition.channels),
                 _comments(acquisition, acquired))


def write_demo_acquisition(folder: "os.PathLike[str] | str") -> Path:
    """Write the ``make demo`` acquisition into ``folder`` and return the folder.

    2 positions x 2 channels (DAPI, GFP) x 3 slices x 2 time points of
    128x128 uint16, as ``demo_MMStack_Pos0.ome.tif`` and ``..._Pos1.ome.tif``.
    """
    write_mm_ometiff(folder, "demo", channels=("DAPI", "GFP"), slices=3, times=2,
                     positions=2, height=128, width=128, dtype="uint16")
    return Path(folder)


# --------------------------------------------------------------------------
# Micro-Manager image files: one TIFF per image, a metadata.txt per folder
# --------------------------------------------------------------------------


#: The axes a 2.0 acquisition uses, as its summary's AxisOrder names them.
MM2_AXES = ("channel", "position", "time", "z")


def mm_image_file_name(version: str, acquisition_channels: Sequence[str], index: FrameTuple,
                       axes: Sequence[str] = MM2_AXES) -> str:
    """The file name Micro-Manager gives an image: 1.4 ``img_<time>_<channel>_<slice>.tif``;
    2.0 ``img`` + ``_<axis><index>`` for each axis used, axes sorted by name
    (``%03d``, time ``%09d``): ``img_channel000_position000_time000000000_z000.tif``."""
    channel, slice, time, position = index
    if version == "1.4":
        return f"img_{time:09d}_{acquisition_channels[channel]}_{slice:03d}.tif"
    values = {"channel": channel, "position": position, "time": time, "z": slice}
    return "img" + "".join(f"_{axis}{values[axis]:{'09d' if axis == 'time' else '03d'}}"
                           for axis in sorted(axes)) + ".tif"


def _imagej_image_file(path: Path, pixels: np.ndarray, info: str, acquisition: _MMAcquisition
                       ) -> None:
    """An image as ImageJ's FileSaver (TiffEncoder) writes it for Micro-Manager: big-endian;
    one IFD (NewSubfileType ... ResolutionUnit, then IJMetadataByteCounts, IJMetadata) followed
    by the description, the resolution, the ImageJ metadata and last the pixels; the image's
    JSON as the ImageJ ``Info`` property, no MicroManagerMetadata tag."""
    lines = [f"ImageJ={_IMAGEJ_VERSIONS[acquisition.version]}", "unit=um"]
    interval_s = _INTERVAL_MS / 1000.0
    lines.append(f"finterval={int(interval_s) if interval_s.is_integer() else interval_s}")
    if not acquisition.rgb and acquisition.dtype == "uint16":
        lines += [f"min={float(pixels.min())}", f"max={float(pixels.max())}"]
    description = ("\n".join(lines) + "\n\0").encode("ascii")
    ij_header = struct.pack(">3I", 0x494A494A, 0x696E666F, 1)
    ij_info = info.encode("utf-16-be")
    samples = 3 if pixels.ndim == 3 else 1
    height, width = pixels.shape[:2]
    data = np.ascontiguousarray(pixels, pixels.dtype.newbyteorder(">")).tobytes()
    bits_at = 8 + 2 + 15 * 12 + 4
    description_at = bits_at + (6 if samples == 3 else 0)
    scale_at = description_at + len(description)
    counts_at = scale_at + 16
    ij_at = counts_at + 8
    pixels_at = ij_at + len(ij_header) + len(ij_info)
    # TiffEncoder: xscale = 1/pixelWidth over 1000000 (1000 when xscale > 1000)
    denominator = 1000 if 1 / _PIXEL_SIZE_UM > 1000 else 1000000
    entries = [(254, 4, 1, 0), (256, 4, 1, width), (257, 4, 1, height),
               (258, 3, samples, bits_at if samples == 3 else pixels.dtype.itemsize * 8),
               (262, 3, 1, 2 if samples == 3 else 1), (270, 2, len(description), description_at),
               (273, 4, 1, pixels_at), (277, 3, 1, samples), (278, 3, 1, height),
               (279, 4, 1, len(data)), (282, 5, 1, scale_at), (283, 5, 1, scale_at + 8),
               (296, 3, 1, 1), (50838, 4, 2, counts_at),
               (50839, 1, len(ij_header) + len(ij_info), ij_at)]
    ifd = struct.pack(">H", len(entries)) + b"".join(
        struct.pack(">HHI", tag, kind, count)
        + (struct.pack(">HH", value, 0) if kind == 3 and count == 1 else struct.pack(">I", value))
        for tag, kind, count, value in entries) + struct.pack(">I", 0)
    resolution = struct.pack(">2I", int(denominator / _PIXEL_SIZE_UM), denominator) * 2
    with open(path, "wb") as fh:
        fh.write(b"MM\x00\x2a" + struct.pack(">I", 8) + ifd)
        fh.write(struct.pack(">3H", 8, 8, 8) if samples == 3 else b"")
        fh.write(description + resolution + struct.pack(">2I", len(ij_header), len(ij_info)))
        fh.write(ij_header + ij_info + data)


def write_mm_tif_folder(
    folder: "os.PathLike[str] | str",
    *,
    version: str = "1.4",
    channels: Sequence[str] = ("DAPI", "GFP"),
    slices: int = 3,
    times: int = 2,
    position: int = 0,
    height: int = 64,
    width: int = 64,
    dtype: str = "uint16",
    rgb: bool = False,
    drop: Collection[tuple[int, int, int]] = (),
    metadata_txt: bool = True,
    nbr_positions: int = 1,
    position_labels: Optional[Sequence[str]] = None,
    position_folder: str = "",
    axes: Sequence[str] = MM2_AXES,
    seed: int = 0,
) -> list[Path]:
    """Write one folder of a Micro-Manager "image files" acquisition.

    Each image is an ImageJ TIFF (:func:`_imagej_image_file`) named as
    ``version`` names it (:func:`mm_image_file_name`; 2.0 uses only the
    ``axes`` of its AxisOrder), with its metadata as ImageJ ``Info``. With
    ``metadata_txt``, Micro-Manager's ``metadata.txt``: ``{``, the
    ``Summary`` (1.4: with the folder's PositionIndex; 2.0: SummaryFormat with
    Width and Height 0, as the image-file storage writes them), then per image
    1.4's ``FrameKey-<time>-<channel>-<slice>`` entry, or 2.0's
    ``Coords-<file>`` and ``Metadata-<file>`` entries (``<file>`` includes the
    position folder, ``position_folder``), then ``}``.
    ``drop``: (channel, slice, time) images not written (an acquisition
    stopped early). ``rgb`` writes 8-bit RGB images (PixelType RGB32).
    ``nbr_positions``: the stage positions the summary lists, as in each
    folder of a multi-position acquisition. Returns the image files written,
    in acquisition order.
    """
    if rgb:
        dtype = "uint8"
    acquisition = _make_acquisition("img", channels, slices, times,
                                    max(position + 1, nbr_positions), height, width, dtype,
                                    seed, version, position_labels, rgb=rgb)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scene = FluorescenceScene(height, width, dtype, nbr_slices=slices, seed=seed)
    summary = _image_files_summary(acquisition, position, nbr_positions)
    chunks = ["{\n", f'"Summary": {_json_pretty(summary)}']
    written = []
    for index in acquisition.order(position):
        if index[:3] in drop:
            continue
        name = mm_image_file_name(version, channels, index, axes)
        file_name = f"{position_folder}/{name}" if position_folder and version == "2.0" else name
        metadata = _mm_page_metadata(acquisition, index, file_name)
        pixels = rgb_frame(scene, *index[1:]) if rgb else scene.frame(*index)
        _imagej_image_file(folder / name, pixels, _json_pretty(metadata), acquisition)
        if version == "1.4":
            chunks.append(f',\n"FrameKey-{index[2]}-{index[0]}-{index[1]}": '
                          + _json_pretty(metadata))
        else:
            chunks.append(f',\n"Coords-{file_name}": {_json_pretty(_mm2_coords(index))}'
                          f',\n"Metadata-{file_name}": {_json_pretty(metadata)}')
        written.append(folder / name)
    if metadata_txt:
        chunks.append("\n}\n")
        (folder / "metadata.txt").write_text("".join(chunks), encoding="utf-8")
    return written


def _image_files_summary(acquisition: _MMAcquisition, position: int,
                         nbr_positions: int) -> dict[str, Any]:
    summary = _mm_summary(acquisition)
    if nbr_positions == 1:
        listed = [(_mm_position if acquisition.version == "1.4" else _mm2_position)(
            acquisition, position)]
        summary.update(Positions=1, **{"InitialPositionList" if acquisition.version == "1.4"
                                       else "StagePositions": listed})
        if acquisition.version == "2.0":
            summary["IntendedDimensions"]["position"] = 1
    if acquisition.version == "1.4":
        # openNewDataSet adds the first image's time and the folder's position
        summary.update(Time=_timestamp(0.0), Date=_MM_START.strftime("%Y-%m-%d"),
                       PositionIndex=position)
    else:
        # SummaryFormat writes Width/Height from the summary, which has none ("save zero
        # even if missing"); IJType and PixelType come from the first image.
        summary.update(Width=0, Height=0, IJType=4 if acquisition.rgb
                       else 0 if acquisition.dtype == "uint8" else 1)
    return summary


def write_mm_position_folders(
    folder: "os.PathLike[str] | str",
    *,
    positions: Collection[int] = (0, 1),
    nbr_positions: Optional[int] = None,
    version: str = "1.4",
    position_labels: Optional[Sequence[str]] = None,
    **options: Any,
) -> dict[int, list[Path]]:
    """Write a multi-position Micro-Manager "image files" acquisition.

    One folder per position in ``positions`` under ``folder``, named after the
    position's label (``Pos<p>`` by default), each as :func:`write_mm_tif_folder`
    writes it, with a summary listing ``nbr_positions`` positions (default: up
    to the highest written, so a missing folder can be left out). ``options``
    go to :func:`write_mm_tif_folder`. Returns each position's files.
    """
    count = nbr_positions if nbr_positions is not None else max(positions) + 1
    labels = list(position_labels) if position_labels else [f"Pos{p}" for p in range(count)]
    return {position: write_mm_tif_folder(Path(folder) / labels[position], position=position,
                                          nbr_positions=count, version=version,
                                          position_labels=labels,
                                          position_folder=labels[position], **options)
            for position in positions}


def cut_metadata_txt(path: "os.PathLike[str] | str", *, keep_entries: int,
                     half_of_next: bool = True) -> Path:
    """Leave ``path`` (a metadata.txt) as an acquisition that crashed or is still running does.

    Micro-Manager writes ``{``, then each entry (the Summary is the first) as
    its image is saved, flushing after each, and the closing ``}`` only when
    the acquisition ends; an entry longer than the 8 KB write buffer can be
    flushed in part. Keeps the first ``keep_entries`` entries and, with
    ``half_of_next``, half of the next one; no closing brace.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    # Top-level keys start their own line; nested ones are indented.
    starts = [match.start() + 1 for match in re.finditer(r'\n"', text)]
    if not 0 < keep_entries < len(starts):
        raise ValueError(f"{path} has {len(starts)} entries; keep 1 to {len(starts) - 1}")
    end = starts[keep_entries] - 2  # before the ",\n" that opens the next entry
    cut = text[:end]
    if half_of_next:
        following = starts[keep_entries + 1] - 2 if keep_entries + 1 < len(starts) else \
            text.rindex("}")
        cut += text[end:end + (following - end) // 2]
    path.write_text(cut, encoding="utf-8")
    return path


