"""Image content for test data: frames that look like fluorescence microscopy.

Uneven illumination, gaussian "cells", shot noise over a camera baseline, not
zeros, so that PNG encoding, compression and statistics behave as on real
data. Everything is deterministic for a given seed.

- :func:`fluorescence_frame`: one frame with true Poisson noise;
- :class:`FluorescenceScene`: cheap frames for a whole (channel, slice, time,
  position) grid, fast enough to stream hundreds of megabytes;
- :class:`SCMOSScene`: an sCMOS camera's frames (:class:`CameraModel`), the
  benchmark's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

# --------------------------------------------------------------------------
# Image content
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Levels:
    """Intensities (in camera ADU) of a typical acquisition for one pixel type."""

    offset: float  # camera baseline, added to every pixel
    background: float  # autofluorescence above the baseline, before vignetting
    peak: tuple[float, float]  # range of a cell's peak brightness above background
    read_noise: float  # standard deviation of the camera read noise


_LEVELS = {
    "uint16": Levels(offset=100.0, background=300.0, peak=(1500.0, 6000.0), read_noise=2.0),
    "uint8": Levels(offset=4.0, background=15.0, peak=(60.0, 160.0), read_noise=1.0),
}

# Tags separating the random streams drawn from one seed, so that e.g. the
# cells of a position do not depend on how many channels were asked for.
_STREAM_CELLS, _STREAM_CHANNEL, _STREAM_NOISE, _STREAM_FRAME = 1, 2, 3, 4
# Frames take a random window of a noise pool this much larger than a frame.
_NOISE_MARGIN = 64


def intensity_levels(dtype: str) -> Levels:
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
    levels = intensity_levels(dtype)
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
        self._levels = intensity_levels(dtype)
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


def rgb_frame(scene: FluorescenceScene, slice: int, time: int, position: int) -> np.ndarray:
    """An RGB (height, width, 3) frame: the scene's channels 0, 1 and 2 as red, green, blue."""
    return np.stack([scene.frame(c, slice, time, position) for c in range(3)], axis=-1)
