"""Realistic Micro-Manager-style test data, written with tifffile.

Used by the tests, ``make demo`` and the benchmark. Frames look like
fluorescence microscopy (uneven illumination, gaussian "cells", shot noise over
a camera baseline), not zeros, so that PNG encoding, compression and statistics
behave as on real data. Everything is deterministic for a given seed.

Image content, shared by every format writer in this module:

- :func:`fluorescence_frame`: one frame with true Poisson noise;
- :class:`FluorescenceScene`: cheap frames for a whole (channel, slice, time,
  position) grid, fast enough to stream hundreds of megabytes.

Format writers:

- :func:`write_mm_ometiff`: a Micro-Manager 1.4-style OME-TIFF acquisition;
- :func:`write_demo_acquisition`: the small acquisition ``make demo`` uploads.

This module imports numpy and tifffile: import it lazily from the CLI.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Collection, Optional, Sequence

import numpy as np
import tifffile

# --------------------------------------------------------------------------
# Image content
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Levels:
    """Intensities (in camera ADU) of a typical acquisition for one pixel type."""

    offset: float  # camera baseline, added to every pixel
    background: float  # autofluorescence above the baseline, before vignetting
    peak: tuple[float, float]  # range of a cell's peak brightness above background
    read_noise: float  # standard deviation of the camera read noise


_LEVELS = {
    "uint16": _Levels(offset=100.0, background=300.0, peak=(1500.0, 6000.0), read_noise=2.0),
    "uint8": _Levels(offset=4.0, background=15.0, peak=(60.0, 160.0), read_noise=1.0),
}

# Tags separating the random streams drawn from one seed, so that e.g. the
# cells of a position do not depend on how many channels were asked for.
_STREAM_CELLS, _STREAM_CHANNEL, _STREAM_NOISE, _STREAM_FRAME = 1, 2, 3, 4
# Frames take a random window of a noise pool this much larger than a frame.
_NOISE_MARGIN = 64


def _levels(dtype: str) -> _Levels:
    try:
        return _LEVELS[np.dtype(dtype).name]
    except (KeyError, TypeError):
        raise ValueError(f"dtype must be uint8 or uint16, not {dtype!r}") from None


def _background(rng: np.random.Generator, height: int, width: int, level: float) -> np.ndarray:
    """Uneven illumination: brighter in the centre (vignetting), slightly tilted."""
    tilt_y, tilt_x = rng.uniform(-0.1, 0.1, size=2)
    y = np.linspace(-1.0, 1.0, height, dtype=np.float32)
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)
    profile_y = 1.0 - 0.25 * y**2 + tilt_y * y
    profile_x = 1.0 - 0.25 * x**2 + tilt_x * x
    return (level * np.outer(profile_y, profile_x)).astype(np.float32)


def _cell_layout(rng: np.random.Generator, height: int,
                 width: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres (n, 2) and sizes (n,) of the cells in one field of view."""
    count = int(np.clip(height * width // 2000, 3, 40))
    centres = rng.uniform((0, 0), (height, width), size=(count, 2))
    sigmas = np.maximum(rng.uniform(0.02, 0.05, size=count) * min(height, width), 1.5)
    return centres, sigmas


def _cells(height: int, width: int, centres: np.ndarray, sigmas: np.ndarray,
           amplitudes: np.ndarray) -> np.ndarray:
    """Sum of gaussian blobs; each is computed only within 4 sigma of its centre."""
    image = np.zeros((height, width), np.float32)
    for (cy, cx), sigma, amplitude in zip(centres, sigmas, amplitudes):
        if amplitude <= 0:
            continue
        radius = int(4 * sigma) + 1
        y0, y1 = max(0, int(cy) - radius), min(height, int(cy) + radius + 1)
        x0, x1 = max(0, int(cx) - radius), min(width, int(cx) + radius + 1)
        profile_y = np.exp(-0.5 * ((np.arange(y0, y1) - cy) / sigma) ** 2)
        profile_x = np.exp(-0.5 * ((np.arange(x0, x1) - cx) / sigma) ** 2)
        image[y0:y1, x0:x1] += amplitude * np.outer(profile_y, profile_x)
    return image


def _to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """Clip to the pixel type's range (in place) and convert."""
    np.clip(values, 0, np.iinfo(dtype).max, out=values)
    return values.astype(dtype)


def fluorescence_frame(rng: np.random.Generator, height: int, width: int,
                       dtype: str = "uint16", *, focus: float = 1.0) -> np.ndarray:
    """One fluorescence-like frame of shape (height, width).

    Uneven background, gaussian cells, Poisson shot noise and camera read noise
    over a camera baseline. ``focus`` (0..1) scales the cells' brightness, e.g.
    to mimic a slice away from the focal plane. Draws everything from ``rng``.
    """
    levels = _levels(dtype)
    centres, sigmas = _cell_layout(rng, height, width)
    amplitudes = rng.uniform(*levels.peak, size=len(sigmas))
    signal = _background(rng, height, width, levels.background)
    signal += focus * _cells(height, width, centres, sigmas, amplitudes)
    noisy = rng.poisson(signal).astype(np.float32)
    noisy += levels.offset + rng.normal(0.0, levels.read_noise, size=signal.shape)
    return _to_dtype(noisy, dtype)


class FluorescenceScene:
    """Deterministic, cheap frames for a (channel, slice, time, position) grid.

    Each position is one field of view: its cells sit at the same places in
    every channel; each channel has its own background and cell brightness
    (some cells do not express the non-first channels). These layers are drawn
    once per (channel, position). A frame then only scales them by a focus
    factor (slices away from the middle one are dimmer) and a bleaching factor
    (later time points are dimmer), and adds shot noise approximated by a
    gaussian of variance = signal, taken from a random window of a shared noise
    pool. So a 512x512 frame costs about a millisecond, and a frame depends
    only on its index and the seed, never on which other frames were rendered.
    """

    def __init__(self, height: int, width: int, dtype: str = "uint16", *,
                 nbr_slices: int = 1, seed: int = 0):
        self.height, self.width, self.dtype = height, width, np.dtype(dtype).name
        self._levels = _levels(dtype)
        self._nbr_slices = nbr_slices
        self._seed = seed
        pool_rng = np.random.default_rng([seed, _STREAM_NOISE])
        self._noise = pool_rng.standard_normal(
            (height + _NOISE_MARGIN, width + _NOISE_MARGIN), dtype=np.float32)
        # Layers of the last position only: writers go position by position,
        # and keeping every position's layers would grow with the dataset.
        self._position: Optional[int] = None
        self._layers: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def frame(self, channel: int, slice: int, time: int, position: int) -> np.ndarray:
        """The (height, width) frame at this index."""
        background, cells = self._channel_layers(channel, position)
        bleaching = np.float32(0.97**time)
        signal = background * bleaching + cells * (self._focus(slice) * bleaching)
        rng = np.random.default_rng([self._seed, _STREAM_FRAME, channel, slice, time, position])
        dy, dx = rng.integers(0, _NOISE_MARGIN + 1, size=2)
        noise = self._noise[dy:dy + self.height, dx:dx + self.width]
        noisy = signal + np.sqrt(signal) * noise
        noisy += self._levels.offset
        return _to_dtype(noisy, self.dtype)

    def _focus(self, slice: int) -> np.float32:
        middle = (self._nbr_slices - 1) / 2
        depth = max(1.0, self._nbr_slices / 4)
        return np.float32(0.3 + 0.7 * np.exp(-0.5 * ((slice - middle) / depth) ** 2))

    def _channel_layers(self, channel: int, position: int) -> tuple[np.ndarray, np.ndarray]:
        if position != self._position:
            self._position, self._layers = position, {}
        if channel not in self._layers:
            layout_rng = np.random.default_rng([self._seed, _STREAM_CELLS, position])
            centres, sigmas = _cell_layout(layout_rng, self.height, self.width)
            rng = np.random.default_rng([self._seed, _STREAM_CHANNEL, channel, position])
            expressing = 1.0 if channel == 0 else 0.6
            amplitudes = rng.uniform(*self._levels.peak, size=len(sigmas))
            amplitudes *= rng.random(len(sigmas)) < expressing
            self._layers[channel] = (
                _background(rng, self.height, self.width, self._levels.background),
                _cells(self.height, self.width, centres, sigmas, amplitudes),
            )
        return self._layers[channel]


@dataclass(frozen=True)
class CameraModel:
    """How an sCMOS camera turns photoelectrons into ADU (numbers from camera datasheets).

    Defaults: a 16-bit-mode scientific CMOS of the Hamamatsu ORCA-Flash4.0 /
    pco.edge 4.2 class: 0.46 e-/ADU (so one photoelectron is 2.17 ADU), an
    offset ("baseline") of 100 ADU, read noise of 0.8 e- rms (1.7 ADU) and a
    small per-pixel offset non-uniformity (fixed pattern, 0.5 ADU rms).
    """

    offset_adu: float = 100.0
    adu_per_electron: float = 1 / 0.46
    read_noise_adu: float = 1.7
    offset_pattern_adu: float = 0.5


@dataclass(frozen=True)
class ChannelLook:
    """Photoelectrons per pixel of one channel: what the sample and optics give the camera."""

    background_e: float  # autofluorescence + out-of-focus light, before vignetting
    peak_e: tuple[float, float]  # range of a cell's brightness above background
    cell_scale: float  # cell radius relative to the typical cell (nucleus < cytoplasm)
    texture: float  # relative brightness variation inside a cell


#: A widefield acquisition of cultured cells: a nuclear stain and a cytoplasmic GFP.
SCMOS_CHANNELS = (
    ChannelLook(background_e=25.0, peak_e=(400.0, 1600.0), cell_scale=0.6, texture=0.15),
    ChannelLook(background_e=45.0, peak_e=(150.0, 900.0), cell_scale=1.0, texture=0.35),
)


class SCMOSScene:
    """Frames as a lab's sCMOS camera records cultured cells through a widefield microscope.

    The model, per pixel and frame (all deterministic for a seed):

    - photoelectrons expected = background (vignetted: 30% less in the
      corners) + cells; cells are ellipses with soft edges (about 20-45 um
      across at 0.65 um/pixel for the cytoplasm, nuclei smaller), a smooth
      internal texture, covering roughly a fifth of the field; slices away
      from focus are dimmer and lose contrast into a haze; time points
      bleach by 1% each;
    - recorded = Poisson(expected) photoelectrons (true shot noise) times the
      camera gain, plus the camera offset, its fixed pattern, and gaussian
      read noise, rounded and clipped to the pixel type.

    So most of a frame is background near 100 + 55..100 ADU with 10-15 ADU of
    noise, and cells reach a few thousand ADU: what raw Micro-Manager files
    from such a camera hold. See docs/performance.md.
    """

    def __init__(self, height: int, width: int, *, nbr_slices: int = 1, seed: int = 0,
                 camera: CameraModel = CameraModel(),
                 channels: Sequence[ChannelLook] = SCMOS_CHANNELS):
        self.height, self.width, self.dtype = height, width, "uint16"
        self.camera, self.channels = camera, tuple(channels)
        self._nbr_slices, self._seed = nbr_slices, seed
        rng = np.random.default_rng([seed, _STREAM_NOISE])
        self._offset = camera.offset_adu + rng.normal(
            0.0, camera.offset_pattern_adu, (height, width)).astype(np.float32)
        y = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
        x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
        self._vignetting = 1.0 - 0.15 * (x**2 + y**2)
        self._layers: dict[tuple[int, int], np.ndarray] = {}

    def frame(self, channel: int, slice: int, time: int, position: int) -> np.ndarray:
        """The (height, width) uint16 frame at this index."""
        look = self.channels[channel % len(self.channels)]
        cells = self._cells(channel, position)
        middle = (self._nbr_slices - 1) / 2
        defocus = abs(slice - middle) / max(1.0, self._nbr_slices / 4)
        focus = np.float32(np.exp(-0.5 * defocus**2))
        bleaching = np.float32(0.99**time)
        haze = np.float32((1 - focus) * 0.2 * cells.mean())
        expected = (look.background_e * self._vignetting + haze + cells * focus) * bleaching
        rng = np.random.default_rng([self._seed, _STREAM_FRAME, channel, slice, time, position])
        electrons = rng.poisson(expected).astype(np.float32)
        adu = electrons * np.float32(self.camera.adu_per_electron) + self._offset
        adu += rng.normal(0.0, self.camera.read_noise_adu, adu.shape).astype(np.float32)
        return _to_dtype(np.rint(adu, out=adu), "uint16")

    def _cells(self, channel: int, position: int) -> np.ndarray:
        """Expected photoelectrons of the cells of one channel at one position (cached)."""
        key = (channel, position)
        if key not in self._layers:
            if len(self._layers) >= 2 * len(self.channels):
                self._layers.clear()  # writers go position by position: keep memory flat
            look = self.channels[channel % len(self.channels)]
            layout = np.random.default_rng([self._seed, _STREAM_CELLS, position])
            rng = np.random.default_rng([self._seed, _STREAM_CHANNEL, channel, position])
            self._layers[key] = _soft_cells(layout, rng, self.height, self.width, look)
        return self._layers[key]


def _soft_cells(layout: np.random.Generator, rng: np.random.Generator, height: int, width: int,
                look: ChannelLook) -> np.ndarray:
    """Ellipses with soft edges and smooth texture; ``layout`` places them (shared by channels)."""
    count = max(1, round(height * width / 12_000))
    centres = layout.uniform((0, 0), (height, width), size=(count, 2))
    radii = layout.uniform(18, 35, size=(count, 2)) * (min(height, width) / 1024) ** 0.5
    angles = layout.uniform(0, np.pi, size=count)
    brightness = rng.uniform(*look.peak_e, size=count)
    texture = _smooth_noise(rng, height, width, scale=6.0)
    image = np.zeros((height, width), np.float32)
    for (cy, cx), (ry, rx), angle, peak in zip(centres, radii * look.cell_scale, angles, brightness):
        reach = int(1.5 * max(ry, rx)) + 2
        y0, y1 = max(0, int(cy) - reach), min(height, int(cy) + reach)
        x0, x1 = max(0, int(cx) - reach), min(width, int(cx) + reach)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        cos, sin = np.cos(angle), np.sin(angle)
        u, v = (yy - cy) * cos + (xx - cx) * sin, (xx - cx) * cos - (yy - cy) * sin
        distance = np.sqrt((u / max(ry, 1.0)) ** 2 + (v / max(rx, 1.0)) ** 2)
        inside = 1.0 / (1.0 + np.exp((distance - 1.0) * 6.0))
        image[y0:y1, x0:x1] += peak * inside * (1.0 + look.texture * texture[y0:y1, x0:x1])
    return np.maximum(image, 0.0)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Gaussian-filtered white noise (correlation length ``scale`` pixels), unit variance."""
    noise = rng.standard_normal((height, width)).astype(np.float32)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    smooth = np.fft.irfft2(np.fft.rfft2(noise) * np.exp(-2 * (np.pi * scale) ** 2 * (fy**2 + fx**2)),
                           s=(height, width)).astype(np.float32)
    return smooth / max(float(smooth.std()), 1e-6)


# --------------------------------------------------------------------------
# Micro-Manager OME-TIFF
# --------------------------------------------------------------------------

_MM_VERSION = "1.4.23 20180220"
_MM_START = datetime(2018, 3, 21, 11, 22, 33, tzinfo=timezone(timedelta(hours=-7)))
_CAMERA = "HamamatsuHam_DCAM"
_PIXEL_SIZE_UM = 0.65
_Z_STEP_UM = 0.5
_INTERVAL_MS = 1000.0
# Micro-Manager's default channel colours (ARGB ints, as Java stores them).
_CHANNEL_COLORS = (-16776961, -16711936, -65536, -65281, -16711681, -256)
# Classic TIFF offsets are 32-bit: like Micro-Manager, start a new file before
# 4 GB, leaving room for IFDs, per-page JSON and the OME-XML.
_CLASSIC_TIFF_BYTES = 2**32 - 2**26
_PAGE_OVERHEAD_BYTES = 8192

# Micro-Manager file header: magic numbers of the blocks it locates (they are
# the values tifffile.read_micromanager_metadata checks).
_INDEX_MAP_HEADER, _INDEX_MAP_BLOCK = 54773648, 3453623
_DISPLAY_HEADER, _DISPLAY_BLOCK = 483765892, 347834724
_COMMENTS_HEADER, _COMMENTS_BLOCK = 99384722, 84720485
_SUMMARY_HEADER = 2355492

_OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"

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

    @property
    def pixel_type(self) -> str:
        return "GRAY8" if self.dtype == "uint8" else "GRAY16"

    @property
    def bit_depth(self) -> int:
        return 8 if self.dtype == "uint8" else 16

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
) -> list[Path]:
    """Write a Micro-Manager 1.4-style OME-TIFF acquisition into ``folder``.

    One file per position, ``<name>_MMStack_Pos<p>.ome.tif``; a position whose
    pages exceed ``max_pages_per_file`` (or 4 GB) continues in
    ``<name>_MMStack_Pos<p>_1.ome.tif``, ``_2``... Pages are in Micro-Manager's
    default order ("Time, Position, Slice, Channel"): time outermost, then
    slice, channel innermost.

    Every page carries the ``MicroManagerMetadata`` tag (51123, JSON with
    ChannelIndex, SliceIndex, FrameIndex, PositionIndex, Channel, ...). The
    first page of each file carries the OME-XML of the whole dataset as
    ImageDescription and the summary as ImageJ ``Info`` (IJMetadata tag). With
    ``file_header`` the Micro-Manager file header is written too (summary,
    index map, display settings, comments), read by
    ``TiffFile.micromanager_metadata``; ``False`` mimics a file rewritten by a
    tool that dropped it.

    ``drop``: (channel, slice, time, position) tuples not written, to mimic an
    acquisition stopped early. Pixels come from :class:`FluorescenceScene`
    with ``seed``; pages are streamed one at a time, so any size can be
    written in constant memory. Returns the files written, sorted.
    """
    acquisition = _MMAcquisition(
        name, tuple(channels), slices, times, positions, height, width,
        np.dtype(dtype).name, seed)
    _check_acquisition(acquisition)
    if max_pages_per_file is not None and max_pages_per_file < 1:
        raise ValueError("max_pages_per_file must be >= 1")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plan = _mm_file_plan(acquisition, set(map(tuple, drop)), max_pages_per_file)
    summary = _mm_summary(acquisition)
    ome = _ome_xml(acquisition, plan)
    if scene is None:
        scene = FluorescenceScene(height, width, dtype, nbr_slices=slices, seed=seed)
    for file_name, pages in plan:
        ome.set("UUID", f"urn:uuid:{acquisition.uuid(file_name)}")
        _write_mm_file(folder / file_name, acquisition, pages, summary,
                       ET.tostring(ome, encoding="unicode"), scene, file_header)
    return sorted(folder / file_name for file_name, _ in plan)


def write_demo_acquisition(folder: "os.PathLike[str] | str") -> Path:
    """Write the ``make demo`` acquisition into ``folder`` and return the folder.

    2 positions x 2 channels (DAPI, GFP) x 3 slices x 2 time points of
    128x128 uint16, as ``demo_MMStack_Pos0.ome.tif`` and ``..._Pos1.ome.tif``.
    """
    write_mm_ometiff(folder, "demo", channels=("DAPI", "GFP"), slices=3, times=2,
                     positions=2, height=128, width=128, dtype="uint16")
    return Path(folder)


def _check_acquisition(acquisition: _MMAcquisition) -> None:
    _levels(acquisition.dtype)
    if not acquisition.channels:
        raise ValueError("at least one channel is needed")
    sizes = (acquisition.slices, acquisition.times, acquisition.positions,
             acquisition.height, acquisition.width)
    if min(sizes) < 1:
        raise ValueError("slices, times, positions, height and width must be >= 1")


def _mm_file_plan(acquisition: _MMAcquisition, drop: set[FrameTuple],
                  max_pages_per_file: Optional[int]) -> list[tuple[str, list[FrameTuple]]]:
    """(file name, pages in writing order) for every file to write."""
    page_bytes = acquisition.height * acquisition.width * np.dtype(acquisition.dtype).itemsize
    limit = _CLASSIC_TIFF_BYTES // (page_bytes + _PAGE_OVERHEAD_BYTES)
    per_file = min(max_pages_per_file or limit, limit)
    plan = []
    for position in range(acquisition.positions):
        pages = [
            (channel, slice, time, position)
            for time in range(acquisition.times)
            for slice in range(acquisition.slices)
            for channel in range(len(acquisition.channels))
            if (channel, slice, time, position) not in drop
        ]
        for part, start in enumerate(range(0, len(pages), per_file)):
            suffix = f"_{part}" if part else ""
            file_name = f"{acquisition.name}_MMStack_Pos{position}{suffix}.ome.tif"
            plan.append((file_name, pages[start:start + per_file]))
    return plan


def _mm_summary(acquisition: _MMAcquisition) -> dict[str, Any]:
    """The acquisition summary, with the keys Micro-Manager 1.4 writes."""
    nbr_channels = len(acquisition.channels)
    max_value = int(np.iinfo(acquisition.dtype).max)
    return {
        "Prefix": acquisition.name,
        "MicroManagerVersion": _MM_VERSION,
        "MetadataVersion": 10,
        "Source": "Micro-Manager",
        "UUID": acquisition.uuid("summary"),
        "Date": _MM_START.strftime("%Y-%m-%d"),
        "Time": _timestamp(0.0),
        "StartTime": _timestamp(0.0),
        "ComputerName": "scope-1",
        "UserName": "imagingdb",
        "Comment": "",
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
        "IJType": 0 if acquisition.dtype == "uint8" else 1,
        "PixelSize_um": _PIXEL_SIZE_UM,
        "PixelAspect": 1.0,
        "z-step_um": _Z_STEP_UM,
        "Interval_ms": _INTERVAL_MS,
        "SlicesFirst": False,
        "TimeFirst": False,
        "KeepShutterOpenSlices": False,
        "KeepShutterOpenChannels": False,
        "InitialPositionList": [_mm_position(acquisition, p) for p in range(acquisition.positions)],
    }


def _mm_position(acquisition: _MMAcquisition, position: int) -> dict[str, Any]:
    """One entry of the summary's InitialPositionList (a MultiStagePosition)."""
    x, y = acquisition.stage_xy_um(position)
    return {
        "Label": f"Pos{position}",
        "GridRowIndex": position // 4,
        "GridColumnIndex": position % 4,
        "DefaultXYStage": "XYStage",
        "DefaultZStage": "ZStage",
        "DeviceCoordinatesUm": {"XYStage": [x, y], "ZStage": [acquisition.z_um(0)]},
        "Properties": {},
    }


def _mm_page_metadata(acquisition: _MMAcquisition, index: FrameTuple,
                      file_name: str) -> dict[str, Any]:
    """A page's MicroManagerMetadata: indexes, image keys, device properties."""
    channel, slice, time, position = index
    exposure = acquisition.exposure_ms(channel)
    elapsed = acquisition.elapsed_ms(index)
    x, y = acquisition.stage_xy_um(position)
    z = acquisition.z_um(slice)
    return {
        "ChannelIndex": channel, "SliceIndex": slice, "FrameIndex": time, "PositionIndex": position,
        "Channel": acquisition.channels[channel], "Slice": slice, "Frame": time,
        "PositionName": f"Pos{position}",
        "FileName": file_name,
        "UUID": acquisition.uuid(*index),
        "Camera": _CAMERA,
        "Exposure-ms": exposure,
        "ElapsedTime-ms": elapsed,
        "Time": _timestamp(elapsed),
        "Width": acquisition.width, "Height": acquisition.height,
        "PixelType": acquisition.pixel_type, "BitDepth": acquisition.bit_depth,
        "Binning": 1,
        "PixelSizeUm": _PIXEL_SIZE_UM,
        "ROI": f"0-0-{acquisition.width}-{acquisition.height}",
        "XPositionUm": x, "YPositionUm": y, "ZPositionUm": z,
        "Core-Camera": _CAMERA, "Core-Focus": "ZStage", "Core-XYStage": "XYStage",
        "Core-Shutter": "LED", "Core-ChannelGroup": "Channel",
        f"{_CAMERA}-Binning": "1x1",
        f"{_CAMERA}-Exposure": f"{exposure:.4f}",
        "ZStage-Position": f"{z:.4f}",
        "Dichroic-Label": f"{acquisition.channels[channel]} filter set",
    }


def _ome_xml(acquisition: _MMAcquisition,
             plan: list[tuple[str, list[FrameTuple]]]) -> ET.Element:
    """The OME-XML of the whole dataset: one Image per position.

    Every file carries it (with its own root UUID); TiffData elements point to
    the file and IFD holding each plane, as in an OME-TIFF file set.
    """
    ome = ET.Element("OME", {
        "xmlns": _OME_NS,
        "Creator": f"Micro-Manager {_MM_VERSION}",
    })
    pixels_of = {p: _ome_image(ome, acquisition, p) for p in range(acquisition.positions)}
    tiff_data: dict[int, list[ET.Element]] = {p: [] for p in pixels_of}
    planes: dict[int, list[ET.Element]] = {p: [] for p in pixels_of}
    for file_name, pages in plan:
        file_uuid = f"urn:uuid:{acquisition.uuid(file_name)}"
        for ifd, index in enumerate(pages):
            channel, slice, time, position = index
            element = ET.Element("TiffData", {
                "FirstC": str(channel), "FirstZ": str(slice), "FirstT": str(time),
                "IFD": str(ifd), "PlaneCount": "1"})
            ET.SubElement(element, "UUID", {"FileName": file_name}).text = file_uuid
            tiff_data[position].append(element)
            planes[position].append(_ome_plane(acquisition, index))
    for position, pixels in pixels_of.items():
        # schema order inside Pixels: Channel*, TiffData*, Plane*
        pixels.extend(tiff_data[position] + planes[position])
    return ome


def _ome_image(ome: ET.Element, acquisition: _MMAcquisition, position: int) -> ET.Element:
    """Add the Image of one position to ``ome``; return its Pixels element."""
    image = ET.SubElement(ome, "Image", {"ID": f"Image:{position}", "Name": f"Pos{position}"})
    ET.SubElement(image, "AcquisitionDate").text = _MM_START.strftime("%Y-%m-%dT%H:%M:%S")
    x, y = acquisition.stage_xy_um(position)
    ET.SubElement(image, "StageLabel", {"Name": f"Pos{position}", "X": str(x), "Y": str(y)})
    pixels = ET.SubElement(image, "Pixels", {
        "ID": f"Pixels:{position}", "DimensionOrder": "XYCZT", "Type": acquisition.dtype,
        "BigEndian": "false",
        "SizeX": str(acquisition.width), "SizeY": str(acquisition.height),
        "SizeC": str(len(acquisition.channels)), "SizeZ": str(acquisition.slices),
        "SizeT": str(acquisition.times),
        "PhysicalSizeX": str(_PIXEL_SIZE_UM), "PhysicalSizeY": str(_PIXEL_SIZE_UM),
        "PhysicalSizeZ": str(_Z_STEP_UM)})
    for channel, channel_name in enumerate(acquisition.channels):
        ET.SubElement(pixels, "Channel", {
            "ID": f"Channel:{position}:{channel}", "Name": channel_name,
            "SamplesPerPixel": "1"})
    return pixels


def _ome_plane(acquisition: _MMAcquisition, index: FrameTuple) -> ET.Element:
    channel, slice, time, position = index
    x, y = acquisition.stage_xy_um(position)
    return ET.Element("Plane", {
        "TheC": str(channel), "TheZ": str(slice), "TheT": str(time),
        "DeltaT": str(acquisition.elapsed_ms(index)), "DeltaTUnit": "ms",
        "ExposureTime": str(acquisition.exposure_ms(channel)), "ExposureTimeUnit": "ms",
        "PositionX": str(x), "PositionY": str(y), "PositionZ": str(acquisition.z_um(slice))})


def _write_mm_file(path: Path, acquisition: _MMAcquisition, pages: list[FrameTuple],
                   summary: dict[str, Any], ome_xml: str, scene: Any,
                   file_header: bool) -> None:
    """Stream one file: header, then IFD + pixels page by page, then trailer blocks."""
    summary_json = json.dumps(summary).encode()
    ifd_offsets = []
    with open(path, "wb") as fh:
        with tifffile.TiffWriter(fh, ome=False, shaped=False) as writer:
            if file_header:
                # Micro-Manager puts its header right after the 8-byte TIFF
                # header; tifffile writes the first IFD wherever the file is.
                fh.write(struct.pack("<8I", _INDEX_MAP_HEADER, 0, _DISPLAY_HEADER, 0,
                                     _COMMENTS_HEADER, 0, _SUMMARY_HEADER, len(summary_json)))
                fh.write(summary_json)
            for number, index in enumerate(pages):
                ifd_offsets.append(fh.tell() + fh.tell() % 2)  # IFDs start on a word boundary
                tags = _page_tags(_mm_page_metadata(acquisition, index, path.name))
                if number == 0:
                    tags["description"] = ome_xml
                    tags["extratags"] += _imagej_tags(acquisition, summary)
                writer.write(scene.frame(*index), **tags)
        if file_header:
            _append_mm_blocks(fh, acquisition, pages, ifd_offsets)


def _page_tags(metadata: dict[str, Any]) -> dict[str, Any]:
    """TiffWriter.write arguments for one page, as Micro-Manager writes it."""
    resolution = 1e4 / _PIXEL_SIZE_UM  # pixels per cm
    return dict(
        photometric="minisblack", contiguous=False,
        metadata=None, software=False,  # no tifffile JSON description or Software tag
        resolution=(resolution, resolution), resolutionunit="CENTIMETER",
        extratags=[(51123, "s", 0, json.dumps(metadata), True)])  # MicroManagerMetadata


def _imagej_tags(acquisition: _MMAcquisition, summary: dict[str, Any]) -> list[tuple]:
    """IJMetadata tags: the summary as Info and the channels' display ranges."""
    max_value = float(np.iinfo(acquisition.dtype).max)
    ranges = [value for _ in acquisition.channels for value in (0.0, max_value)]
    info = {"Info": json.dumps(summary, indent=2), "Ranges": ranges}
    return list(tifffile.imagej_metadata_tag(info, "<"))


def _append_mm_blocks(fh: BinaryIO, acquisition: _MMAcquisition, pages: list[FrameTuple],
                      ifd_offsets: list[int]) -> None:
    """Append the index map, display settings and comments; point the header at them."""
    fh.seek(0, os.SEEK_END)
    index_map = struct.pack("<II", _INDEX_MAP_BLOCK, len(pages)) + b"".join(
        struct.pack("<5I", *index, offset) for index, offset in zip(pages, ifd_offsets))
    display = json.dumps(_mm_display_settings(acquisition)).encode()
    comments = json.dumps({"Summary": ""}).encode()
    block_offsets = []
    for block in (index_map,
                  struct.pack("<II", _DISPLAY_BLOCK, len(display)) + display,
                  struct.pack("<II", _COMMENTS_BLOCK, len(comments)) + comments):
        block_offsets.append(fh.tell())
        fh.write(block)
    for header_offset, block_offset in zip((12, 20, 28), block_offsets):
        fh.seek(header_offset)
        fh.write(struct.pack("<I", block_offset))


def _mm_display_settings(acquisition: _MMAcquisition) -> list[dict[str, Any]]:
    max_value = int(np.iinfo(acquisition.dtype).max)
    return [
        {"Name": channel_name, "Color": _CHANNEL_COLORS[c % len(_CHANNEL_COLORS)],
         "Min": 0, "Max": max_value, "Gamma": 1.0, "HistogramMax": -1, "DisplayMode": 1}
        for c, channel_name in enumerate(acquisition.channels)
    ]


# --------------------------------------------------------------------------
# Folders of TIFF files, ImageJ hyperstacks, plain stacks
# --------------------------------------------------------------------------


def rgb_frame(scene: FluorescenceScene, slice: int, time: int, position: int) -> np.ndarray:
    """An RGB (height, width, 3) frame: the scene's channels 0, 1 and 2 as red, green, blue."""
    return np.stack([scene.frame(c, slice, time, position) for c in range(3)], axis=-1)


def write_mm_tif_folder(
    folder: "os.PathLike[str] | str",
    *,
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
    seed: int = 0,
) -> list[Path]:
    """Write one position of a Micro-Manager 1.4 "separate image files" acquisition.

    Files ``img_<time:09d>_<channel>_<slice:03d>.tif`` (one frame each, with a
    ``MicroManagerMetadata`` tag) and, with ``metadata_txt``, Micro-Manager's
    ``metadata.txt``: a JSON object with the acquisition ``Summary``
    (PixelType, BitDepth, Width, Height, ChNames, Channels, Slices, Frames...)
    and one ``FrameKey-<time>-<channel>-<slice>`` entry per image.
    ``drop``: (channel, slice, time) images not written (an acquisition
    stopped early). ``rgb`` writes 8-bit RGB images (PixelType RGB32).
    ``nbr_positions``: how many stage positions the summary lists (Positions,
    InitialPositionList), as in each folder of a multi-position acquisition.
    Returns the image files written, in acquisition order.
    """
    if rgb:
        dtype = "uint8"
    acquisition = _MMAcquisition(
        "img", tuple(channels), slices, times, max(position + 1, nbr_positions), height, width,
        np.dtype(dtype).name, seed)
    _check_acquisition(acquisition)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = _mm_summary(acquisition)
    if nbr_positions == 1:
        summary.update(Positions=1, InitialPositionList=[_mm_position(acquisition, position)])
    if rgb:
        summary.update(PixelType="RGB32", BitDepth=8, IJType=4)
    scene = FluorescenceScene(height, width, dtype, nbr_slices=slices, seed=seed)
    entries: dict[str, Any] = {"Summary": summary}
    written = []
    for time in range(times):
        for slice in range(slices):
            for channel, channel_name in enumerate(channels):
                if (channel, slice, time) in drop:
                    continue
                path = folder / f"img_{time:09d}_{channel_name}_{slice:03d}.tif"
                metadata = _mm_page_metadata(acquisition, (channel, slice, time, position), path.name)
                if rgb:
                    metadata.update(PixelType="RGB32", BitDepth=8)
                pixels = (rgb_frame(scene, slice, time, position) if rgb
                          else scene.frame(channel, slice, time, position))
                tags = _page_tags(metadata)
                if rgb:
                    tags["photometric"] = "rgb"
                tifffile.imwrite(path, pixels, **tags)
                entries[f"FrameKey-{time}-{channel}-{slice}"] = metadata
                written.append(path)
    if metadata_txt:
        (folder / "metadata.txt").write_text(json.dumps(entries, indent=2), encoding="utf-8")
    return written


def write_mm_position_folders(
    folder: "os.PathLike[str] | str",
    *,
    positions: Collection[int] = (0, 1),
    nbr_positions: Optional[int] = None,
    **options: Any,
) -> dict[int, list[Path]]:
    """Write a multi-position Micro-Manager 1.4 "separate image files" acquisition.

    One folder ``Pos<p>`` per position in ``positions`` under ``folder``, each
    as :func:`write_mm_tif_folder` writes it, with a summary listing
    ``nbr_positions`` positions (default: up to the highest written, so a
    missing folder can be left out). ``options`` go to
    :func:`write_mm_tif_folder`. Returns each position's files.
    """
    count = nbr_positions if nbr_positions is not None else max(positions) + 1
    return {position: write_mm_tif_folder(Path(folder) / f"Pos{position}", position=position,
                                          nbr_positions=count, **options)
            for position in positions}


def write_imagej_hyperstack(
    path: "os.PathLike[str] | str",
    *,
    channels: int = 2,
    slices: int = 3,
    times: int = 2,
    positions: int = 1,
    height: int = 64,
    width: int = 64,
    dtype: str = "uint16",
    pages: Optional[int] = None,
    seed: int = 0,
) -> Path:
    """Write an ImageJ hyperstack: pages channel fastest, then slice, (position,) then time.

    With one position and every page, tifffile's own ImageJ writer makes it
    (``imagej=True``, axes TZCYX). ``positions`` > 1 (the original imagingDB's
    ``positions=`` key, which ImageJ lacks) or ``pages`` < the full count (an
    acquisition stopped early, still declaring its intended sizes) are written
    page by page under the same kind of ImageDescription.
    """
    path = Path(path)
    scene = FluorescenceScene(height, width, dtype, nbr_slices=slices, seed=seed)
    total = channels * slices * positions * times
    count = total if pages is None else pages
    order = [(c, z, t, p) for t in range(times) for p in range(positions)
             for z in range(slices) for c in range(channels)][:count]
    frames = (scene.frame(*index) for index in order)
    if positions == 1 and count == total:
        tifffile.imwrite(path, data=frames, shape=(times, slices, channels, height, width),
                         dtype=dtype, imagej=True, metadata={"axes": "TZCYX"})
        return path
    description = (f"ImageJ=1.54f\nimages={total}\nchannels={channels}\nslices={slices}\n"
                   f"frames={times}\n" + (f"positions={positions}\n" if positions > 1 else "")
                   + "hyperstack=true\nmode=composite\nloop=false")
    with tifffile.TiffWriter(path) as writer:
        for number, pixels in enumerate(frames):
            writer.write(pixels, contiguous=False, metadata=None,
                         description=description if number == 0 else None)
    return path


def write_tiff_stack(
    path: "os.PathLike[str] | str",
    *,
    slices: int = 5,
    height: int = 64,
    width: int = 64,
    dtype: str = "uint16",
    rgb: bool = False,
    seed: int = 0,
) -> Path:
    """Write a plain multi-page TIFF z-stack (tifffile's JSON shape description, no ImageJ keys).

    ``rgb`` makes 8-bit RGB pages (photometric RGB).
    """
    path = Path(path)
    if rgb:
        dtype = "uint8"
    scene = FluorescenceScene(height, width, dtype, nbr_slices=slices, seed=seed)
    if rgb:
        frames = (rgb_frame(scene, z, 0, 0) for z in range(slices))
        shape: tuple[int, ...] = (slices, height, width, 3)
    else:
        frames = (scene.frame(0, z, 0, 0) for z in range(slices))
        shape = (slices, height, width)
    tifffile.imwrite(path, data=frames, shape=shape, dtype=dtype,
                     photometric="rgb" if rgb else "minisblack")
    return path


# --------------------------------------------------------------------------
# Fiji, Bio-Formats and tifffile files (no Micro-Manager)
# --------------------------------------------------------------------------
#
# Each writer reproduces what its software writes, read from that software's
# code and compared tag by tag with files it wrote (../shared/realdata/NEUBIAS,
# bioformats-samples; tests/test_sample_writers.py keeps the comparison):
#
# - ImageJ/Fiji (ij/io/FileSaver.getDescriptionString, ij/io/TiffEncoder):
#   big-endian; the header "ImageJ=<version>\nimages=\nchannels=\nslices=\n
#   frames=\nhyperstack=true\nmode=\nunit=\nspacing=\nfinterval=\nloop=\nmin=\n
#   max=" (each key only when it applies; non-ASCII escaped as \uXXXX);
#   ResolutionUnit none with X/YResolution = 1 / pixel size in ``unit``;
#   IJMetadata with its byte counts: a header (4 + 8 per type), then Info
#   (UTF-16), one entry per image's label (0 bytes for an empty one), the
#   Ranges doubles, one 768-byte LUT per channel.
# - Bio-Formats (loci/formats/out/OMETiffWriter): the OME-XML, with its warning
#   comment after the XML declaration, in page 0's ImageDescription (later
#   pages: an empty one); one TiffData per plane (FirstC/T/Z, IFD, PlaneCount=1,
#   a UUID naming the file); the root UUID is the file's own; pages in
#   DimensionOrder, Images one after the other; a multi-file set has a file per
#   Image, each with the whole OME-XML; RowsPerStrip 1, X/YResolution 1/1, a
#   Software tag.

_OME_2016_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
_BIOFORMATS_WARNING = (
    "<!-- Warning: this comment is an OME-XML metadata block, which contains crucial "
    "dimensional parameters and other important metadata. Please edit cautiously (if at all), "
    "and back up the original data before doing so. For more information, see the OME-TIFF "
    "web site: https://docs.openmicroscopy.org/latest/ome-model/ome-tiff/. -->")
_NO_RESOLUTION_UNIT = 1  # TIFF ResolutionUnit "none": ImageJ's unit= says what the unit is


def imagej_escaped(text: str) -> str:
    """``text`` as ImageJ writes a description value: non-ASCII and backslash as \\uXXXX."""
    return "".join(char if 0x20 <= ord(char) < 0x7F and char != "\\" else f"\\u{ord(char):04X}"
                   for char in text)


def _fiji_luts(channels: int) -> list[np.ndarray]:
    """Fiji's default composite LUTs (red, green, blue, grey... ramps), (3, 256) uint8 each."""
    ramp = np.arange(256, dtype=np.uint8)
    colours = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1), (0, 1, 1), (1, 0, 1), (1, 1, 0)]
    return [np.stack([ramp * c for c in colours[channel % len(colours)]]).astype(np.uint8)
            for channel in range(channels)]


def write_fiji_hyperstack(
    path: "os.PathLike[str] | str",
    *,
    channels: int = 2,
    slices: int = 3,
    times: int = 1,
    height: int = 32,
    width: int = 32,
    dtype: str = "uint16",
    version: str = "1.53f",
    unit: Optional[str] = "µm",
    pixel_size: Optional[float] = 0.0941,
    spacing: Optional[float] = 0.4,
    finterval: Optional[float] = None,
    info: Optional[str] = None,
    labels: Optional[Sequence[str]] = None,
    display_range: Optional[tuple[float, float]] = None,
    seed: int = 0,
) -> Path:
    """Write a stack as Fiji saves it (File > Save As > Tiff), with tifffile's ImageJ writer.

    ``labels``: one per image (page order: channel fastest, then slice, then
    frame), as ImageJ writes slice labels; ``info``: the Info text (Image >
    Show Info); ``display_range``: ImageJ's min= and max= (always written for
    16-bit images: by default the camera's range). Composite images get Fiji's
    display Ranges and LUTs. A stack with one of channels/slices/times over 1
    is a plain ImageJ stack, more make a hyperstack. tifffile writes the
    header only on page 0 (ImageJ on every page), always a ``hyperstack=``
    line, a Compression tag, and X/YResolution 1/1 for an uncalibrated image
    (ImageJ none); the rest is ImageJ's structure.
    """
    path = Path(path)
    scene = FluorescenceScene(height, width, dtype, nbr_slices=slices, seed=seed)
    frames = (scene.frame(c, z, t, 0) for t in range(times) for z in range(slices)
              for c in range(channels))
    hyperstack = sum(size > 1 for size in (channels, slices, times)) > 1
    metadata: dict[str, Any] = {"axes": "TZCYX", "ImageJ": version, "hyperstack": hyperstack}
    if channels > 1:
        metadata["mode"] = "composite"
    if unit is not None:
        metadata["unit"] = imagej_escaped(unit)
    if spacing is not None and spacing != 1.0:
        metadata["spacing"] = spacing
    if finterval is not None:
        metadata["finterval"] = finterval
    metadata["loop"] = False
    levels = _levels(dtype)
    if display_range is None and dtype == "uint16":
        display_range = (float(levels.offset), float(levels.offset + levels.peak[1]))
    if display_range is not None:
        metadata.update(min=float(display_range[0]), max=float(display_range[1]))
    if channels > 1:  # FileSaver saves display ranges and LUTs of composite images only
        metadata["Ranges"] = [float(value) for value in display_range or (0, 255)] * channels
        metadata["LUTs"] = _fiji_luts(channels)
    if info is not None:
        metadata["Info"] = info
    if labels is not None:
        metadata["Labels"] = list(labels)
    resolution = (1 / pixel_size, 1 / pixel_size) if pixel_size and unit is not None else None
    tifffile.imwrite(path, data=frames, shape=(times, slices, channels, height, width),
                     dtype=dtype, imagej=True, byteorder=">", software=False, subfiletype=0,
                     resolution=resolution, resolutionunit=_NO_RESOLUTION_UNIT if resolution else None,
                     metadata=metadata)
    return path


def write_fiji_image_sequence(
    folder: "os.PathLike[str] | str",
    name: str = "c_elegans_em_z",
    *,
    count: int = 5,
    start: int = 0,
    digits: int = 4,
    height: int = 32,
    width: int = 32,
    dtype: str = "uint8",
    version: str = "1.54f",
    labels: Optional[Sequence[str]] = None,
    skip: Collection[int] = (),
    seed: int = 0,
) -> list[Path]:
    """Write a folder as Fiji's File > Save As > Image Sequence does (ij/plugin/StackWriter).

    One single-image TIFF per slice named ``<name><number>.tif``, numbers from
    ``start`` in ``digits`` digits; each file as ``FileSaver.saveAsTiff`` saves
    one image: the description "ImageJ=<version>\\nunit=" (the stack's
    unit, empty when uncalibrated; min/max for 16-bit), X/YResolution of a
    1-unit pixel, ResolutionUnit none, big-endian, and the slice's label in
    IJMetadata when it has one. ``skip``: slice numbers not written (gaps).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scene = FluorescenceScene(height, width, dtype, nbr_slices=count, seed=seed)
    written = []
    for slice in range(count):
        if slice in skip:
            continue
        description = f"ImageJ={version}\nunit=\n"
        if dtype == "uint16":
            levels = _levels(dtype)
            description += f"min={float(levels.offset)}\nmax={float(levels.offset + levels.peak[1])}\n"
        label = labels[slice] if labels is not None else None
        extratags = tifffile.imagej_metadata_tag({"Labels": [label]}, ">") if label else ()
        path = folder / f"{name}{start + slice:0{digits}d}.tif"
        tifffile.imwrite(path, scene.frame(0, slice, 0, 0), byteorder=">", software=False,
                         subfiletype=0, description=description, metadata=None,
                         resolution=((1000000, 1000000), (1000000, 1000000)),
                         resolutionunit=_NO_RESOLUTION_UNIT, extratags=extratags)
        written.append(path)
    return written


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


def write_tifffile_stack(
    path: "os.PathLike[str] | str",
    *,
    axes: Optional[str] = "TZCYX",
    shape: Sequence[int] = (2, 3, 2),
    height: int = 16,
    width: int = 12,
    dtype: str = "uint16",
    seed: int = 0,
) -> Path:
    """Write a stack as ``tifffile.imwrite(path, array, metadata={'axes': axes})`` does.

    ``shape``: the sizes of the axes before YX, slowest first (tifffile's
    C order: the last is fastest). tifffile's shaped description
    ``{"shape": [...], "axes": "..."}`` declares them; ``axes`` None leaves the
    axes out, as ``tifffile.imwrite(path, array)`` does.
    """
    path = Path(path)
    letters = axes[:-2] if axes else "Q" * len(shape)
    scene = FluorescenceScene(height, width, dtype, nbr_slices=max(shape, default=1), seed=seed)

    def frame(index: tuple[int, ...]) -> np.ndarray:
        at = dict(zip(letters, index))
        return scene.frame(at.get("C", 0), at.get("Z", at.get("Q", 0)), at.get("T", 0), 0)

    frames = (frame(index) for index in np.ndindex(*shape))
    tifffile.imwrite(path, data=frames, shape=(*shape, height, width), dtype=dtype,
                     metadata={"axes": axes} if axes else {}, photometric="minisblack")
    return path
