"""Quality control at ingest: what is cheap to measure on a frame's pixels while it is stored.

Per frame (the ``frames`` row's ``qc_*`` columns), over every pixel (every sample of an
RGB frame):

- ``qc_min``, ``qc_max``: the smallest and largest value; equal: a *blank* frame;
- ``qc_mean``: the mean; for integer pixels the exact sum divided by the count, correctly
  rounded (numpy's float64 mean gives the same for 8- and 16-bit frames);
- ``qc_saturated``: the fraction of pixels >= the saturation level ``2**bits - 1``, bits
  being the camera's when the source declares it (Micro-Manager's ``BitDepth`` in its
  summary or first image's metadata, OME's ``SignificantBits``), else the dtype's; NULL for
  float pixels;
- ``qc_focus``: the variance (population, ddof 0) of the 4-neighbour discrete Laplacian
  ``4 p[y, x] - p[y-1, x] - p[y+1, x] - p[y, x-1] - p[y, x+1]`` over the interior pixels
  (1 <= y < H-1, 1 <= x < W-1; each colour of an RGB frame on its own, pooled); higher is
  sharper. For 8- and 16-bit pixels it is the exact value, correctly rounded (see
  :func:`focus`); NULL for a frame narrower or lower than 3 pixels.

Float pixels (deconvolved or ratio images, where NaN marks "no value") are measured over
their finite values: NaN and +-Inf are left out of every figure (of the focus, each
Laplacian value that touches one), so that no figure is NaN and ``show --format json``
stays JSON. A frame without a finite value has NULL figures and counts as blank. In a
thumbnail, NaN is black and +-Inf the display range's ends.

Per dataset (``qc_summary``): frames measured, frames with more than 1% saturated pixels,
blank frames, positions whose every frame is blank, the focus range, and per position the
same figures (``detail``). Per position and channel (``thumbnail``): the maximum over the
slices and time points, max-pooled (blocks of ``f x f`` pixels, ``f`` the smallest integer
that brings the long side to <= 128), shown 8-bit between its 0.5th and 99.5th
percentiles, as PNG. Pooling by maximum commutes with the projection's maximum, so each
stored frame adds its pooled frame (a few KB) to its position's running maximum: the
stack is never held.

The upload computes a frame's figures in the worker that encodes it, on the array it
holds already (:func:`measure`: a 2-D 8- or 16-bit frame in one pass by the optional C
kernel ``imagingdb._qc`` when it is built, else with numpy, the same values; docs/qc.md
"Cost"); ``qc: false`` in the upload config skips all of it. A file kept whole
(upload_type: file) is not read, so has no QC.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional

if TYPE_CHECKING:
    import numpy as np

try:  # the one-pass kernel (imagingdb/_qc.c), optional: without it, numpy does the same
    from . import _qc as _kernel
except ImportError:  # pragma: no cover - installed where no C compiler was found
    _kernel = None

#: a frame counts as saturated in the summary above this fraction of saturated pixels
SATURATED_FRACTION = 0.01
#: a thumbnail's long side, at most
THUMBNAIL_SIZE = 128
#: the percentiles of a thumbnail's projection shown as 0 and 255
DISPLAY_PERCENTILES = (0.5, 99.5)
#: frames named in the summary's list of saturated frames, at most
LISTED_FRAMES = 20
#: the qc_summary columns ``query --where qc.KEY...`` selects on
SUMMARY_KEYS = ("frames", "saturated_frames", "blank_frames", "blank_positions",
                "focus_min", "focus_max", "saturation_level")


# ------------------------------------------------------------------ the level


def declared_bits(meta: Optional[Mapping[str, Any]]) -> Optional[int]:
    """The camera's bit depth a source's metadata declares (BitDepth, SignificantBits)."""
    if not isinstance(meta, Mapping):
        return None
    for key in ("BitDepth", "SignificantBits"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def saturation_bits(dtype: str, *metas: Optional[Mapping[str, Any]]) -> Optional[int]:
    """The bits at which ``dtype`` pixels saturate: the first declared in ``metas`` that the
    dtype can hold, else the dtype's; None for floats."""
    import numpy as np

    kind = np.dtype(dtype)
    if kind.kind not in "ui":
        return None
    width = kind.itemsize * 8 - (kind.kind == "i")
    for meta in metas:
        bits = declared_bits(meta)
        if bits is not None and bits <= width:
            return bits
    return width


def level_of(bits: Optional[int]) -> Optional[int]:
    return None if bits is None else 2 ** bits - 1


# ---------------------------------------------------------------- one frame


def frame_qc(pixels: "np.ndarray", level: Optional[int]) -> dict[str, Optional[float]]:
    """The frame's ``qc_*`` column values (see the module docstring)."""
    return measure(pixels, level, None)[0]


def measure(pixels: "np.ndarray", level: Optional[int],
            factor: Optional[int]) -> tuple[dict[str, Optional[float]], Optional["np.ndarray"]]:
    """The frame's ``qc_*`` values and, with a ``factor``, its :func:`pooled` pixels.

    A 2-D frame of 8- or 16-bit integers goes through the C kernel (imagingdb/_qc.c) when
    it is built: every figure in one pass, the same values as the numpy code below.
    """
    if _kernel is not None and _kernel_takes(pixels) and (level is None or level >= 0):
        return _kernel_qc(pixels, level, factor)
    small = None if factor is None else pooled(pixels, factor)
    if pixels.dtype.kind == "f":
        return _float_frame_qc(pixels), small
    return _integer_frame_qc(pixels, level), small


#: the kernel's widest row (its 64-bit row sums of squares)
_KERNEL_MAX_WIDTH = 2 ** 27


def _kernel_takes(pixels: "np.ndarray") -> bool:
    return (pixels.ndim == 2 and _exact(pixels) and pixels.dtype.isnative and pixels.size > 0
            and pixels.strides[1] == pixels.itemsize and pixels.flags.aligned
            and pixels.shape[1] < _KERNEL_MAX_WIDTH)


def _kernel_qc(pixels: "np.ndarray", level: Optional[int],
               factor: Optional[int]) -> tuple[dict[str, Optional[float]], Optional["np.ndarray"]]:
    import numpy as np

    height, width = pixels.shape
    small = None
    if factor is not None:
        small = np.empty((-(-height // factor), -(-width // factor)), pixels.dtype)
    low, high, total, saturated, lap_sum, squares = _kernel.frame_stats(
        pixels, -1 if level is None else level, factor or 1, small)
    count = pixels.size
    values: dict[str, Optional[float]] = {
        "qc_min": float(low), "qc_max": float(high), "qc_mean": total / count,
        "qc_saturated": None if level is None else saturated / count, "qc_focus": None}
    if squares is not None:
        n = (height - 2) * (width - 2)
        values["qc_focus"] = _variance(n, lap_sum, squares)
    return values, small


def _integer_frame_qc(pixels: "np.ndarray", level: Optional[int]) -> dict[str, Optional[float]]:
    import numpy as np

    count = pixels.size
    low, high = pixels.min(), pixels.max()
    exact = _exact(pixels)
    if exact:
        mean = int(pixels.sum(dtype=np.int64)) / count
    else:
        mean = float(pixels.mean(dtype=np.float64))
    if level is None:
        saturated = None
    elif high < level:
        saturated = 0.0
    else:
        saturated = int(np.count_nonzero(pixels >= level)) / count
    span = int(high) - int(low) if exact else None
    return {"qc_min": float(low), "qc_max": float(high), "qc_mean": mean,
            "qc_saturated": saturated, "qc_focus": focus(pixels, span)}


def _float_frame_qc(pixels: "np.ndarray") -> dict[str, Optional[float]]:
    """:func:`frame_qc` of float pixels: over their finite values (none: all NULL)."""
    import numpy as np

    finite = np.isfinite(pixels)
    values = pixels if finite.all() else pixels[finite]
    if values.size == 0:
        return {"qc_min": None, "qc_max": None, "qc_mean": None, "qc_saturated": None,
                "qc_focus": None}
    return {"qc_min": float(values.min()), "qc_max": float(values.max()),
            "qc_mean": float(values.mean(dtype=np.float64)), "qc_saturated": None,
            "qc_focus": focus(pixels)}


def _exact(pixels: "np.ndarray") -> bool:
    """Pixels of at most 16-bit integers: QC computes their figures exactly."""
    return pixels.dtype.kind in "ui" and pixels.dtype.itemsize <= 2


def focus(pixels: "np.ndarray", span: Optional[int] = None) -> Optional[float]:
    """The variance of the 4-neighbour Laplacian on the interior (None below 3 x 3).

    For pixels of at most 16 bits, exactly. ``span`` (max - min of the frame) bounds every
    |value| by ``4 * span``. When that is below 2**15 (a camera's usual frame), the
    Laplacian is computed in uint16 arithmetic, which wraps modulo 2**16, and read as int16:
    exact, since the true value fits; its squares are summed in float64 (BLAS), exact as
    every block of rows sums to below 2**48, and the blocks in Python ints. Otherwise it is
    computed in float32, where every value (an integer below 4 * 65535 < 2**24) is exact,
    and its squares summed in float64, exact while the partial sums stay below 2**53 --
    sure when ``count * (4 * span)**2`` is -- else everything in int64. Its sum telescopes
    to the frame's edge rows and columns, summed in int64. The variance is then the exact
    fraction, rounded once.
    Other pixels: numpy's float64 variance of the float64 Laplacian.
    """
    import numpy as np

    if pixels.shape[0] < 3 or pixels.shape[1] < 3:
        return None
    if not _exact(pixels):
        wide = pixels.astype(np.float64)
        lap = wide[1:-1, 1:-1] * 4
        lap -= wide[:-2, 1:-1]
        lap -= wide[2:, 1:-1]
        lap -= wide[1:-1, :-2]
        lap -= wide[1:-1, 2:]
        finite = lap[np.isfinite(lap)]  # a NaN or +-Inf neighbour leaves a value out
        return float(finite.var()) if finite.size else None
    if span is None:
        span = int(pixels.max()) - int(pixels.min())
    n = (pixels.shape[0] - 2) * (pixels.shape[1] - 2) * (pixels.size // (pixels.shape[0] * pixels.shape[1]))
    total = _laplacian_sum(pixels)
    if 4 * span < 2 ** 15 and pixels.dtype != np.int8:
        # int16 as uint16 is the same value modulo 2**16, all the wrapping needs
        unsigned = pixels.view(np.uint16) if pixels.dtype.kind == "i" else pixels
        squares = _laplacian_squares(unsigned, wrapped=True)
    elif n * (4 * span) ** 2 < 2 ** 53:
        squares = _laplacian_squares(pixels, wrapped=False)
    else:
        whole = pixels.astype(np.int64)  # the squares' sum fits int64 below 2**31 pixels
        lap = (4 * whole[1:-1, 1:-1] - whole[:-2, 1:-1] - whole[2:, 1:-1] - whole[1:-1, :-2]
               - whole[1:-1, 2:]).reshape(-1)
        squares = int(lap @ lap)
    return _variance(n, total, squares)


def _variance(n: int, total: int, squares: int) -> float:
    """The population variance of ``n`` integers from their exact sum and sum of squares:
    a ratio of exact integers, rounded once (Python's int / int)."""
    return (n * squares - total * total) / (n * n)


def _laplacian_sum(pixels: "np.ndarray") -> int:
    """The Laplacian's sum over the interior: each of its four differences telescopes along
    its axis to the first and last interior rows (columns) against the edge ones."""
    import numpy as np

    def total(part: "np.ndarray") -> int:
        return int(part.sum(dtype=np.int64))

    inner_cols, inner_rows = pixels[:, 1:-1], pixels[1:-1]
    return (total(inner_cols[-2]) - total(inner_cols[0]) + total(inner_cols[1])
            - total(inner_cols[-1]) + total(inner_rows[:, -2]) - total(inner_rows[:, 0])
            + total(inner_rows[:, 1]) - total(inner_rows[:, -1]))


#: elements of a block of Laplacian rows: a buffer each worker thread reuses (1 MB)
_BLOCK = 1 << 18
_buffers = threading.local()


def _laplacian_squares(pixels: "np.ndarray", wrapped: bool) -> int:
    """The Laplacian's sum of squares, exactly (see :func:`focus`; ``wrapped``: in uint16
    read as int16), a block of rows at a time in a buffer the thread keeps: no frame-sized
    temporaries, whose pages would be faulted in anew for every frame."""
    import numpy as np

    height, width = pixels.shape[:2]
    tail = pixels.shape[2:]
    row = (width - 2) * (pixels.size // (height * width))
    rows = max(1, min(height - 2, _BLOCK // row))
    kind = np.uint16 if wrapped else np.float32
    name = "wrapped" if wrapped else "float"
    buffer = getattr(_buffers, name, None)
    if buffer is None or buffer.size < rows * row:
        buffer = np.empty(rows * row, kind)
        setattr(_buffers, name, buffer)
    squares = 0
    for top in range(1, height - 1, rows):
        bottom = min(top + rows, height - 1)
        out = buffer[:(bottom - top) * row].reshape((bottom - top, width - 2) + tail)
        if wrapped:
            np.left_shift(pixels[top:bottom, 1:-1], 2, out=out, dtype=np.uint16)
        else:
            np.multiply(pixels[top:bottom, 1:-1], np.float32(4), out=out, dtype=np.float32)
        for neighbour in (pixels[top - 1:bottom - 1, 1:-1], pixels[top + 1:bottom + 1, 1:-1],
                          pixels[top:bottom, :-2], pixels[top:bottom, 2:]):
            np.subtract(out, neighbour, out=out, dtype=kind)
        if wrapped:
            # each |value| < 2**15, so a square < 2**30 and a block's sum < 2**48: exact
            # in float64 whatever the order BLAS adds in; faster than an int64 einsum
            wide = getattr(_buffers, "wide", None)
            if wide is None or wide.size < out.size:
                wide = _buffers.wide = np.empty(buffer.size, np.float64)
            wide = wide[:out.size]
            np.copyto(wide, out.reshape(-1).view(np.int16))
            squares += int(np.dot(wide, wide))
        else:
            flat = out.reshape(-1)
            squares += int(np.einsum("i,i->", flat, flat, dtype=np.float64, casting="safe"))
    return squares


def pool_factor(height: int, width: int) -> int:
    return max(1, math.ceil(max(height, width) / THUMBNAIL_SIZE))


def pooled(pixels: "np.ndarray", factor: int) -> "np.ndarray":
    """The maximum of each ``factor x factor`` block (edge blocks: what is there)."""
    if factor == 1:
        return pixels.copy()
    most = largest(pixels.dtype)
    rows = pixels[0::factor].copy()
    for k in range(1, factor):
        part = pixels[k::factor]
        most(rows[:part.shape[0]], part, out=rows[:part.shape[0]])
    small = rows[:, 0::factor].copy()
    for k in range(1, factor):
        part = rows[:, k::factor]
        most(small[:, :part.shape[1]], part, out=small[:, :part.shape[1]])
    return small


def largest(dtype: "np.dtype") -> "np.ufunc":
    """The element-wise maximum for pixels of ``dtype``: for floats ``fmax``, for which NaN
    (no value) loses to any value, so a NaN pixel never hides its block's or stack's."""
    import numpy as np

    return np.fmax if dtype.kind == "f" else np.maximum


def to_8bit(projection: "np.ndarray") -> tuple["np.ndarray", float, float]:
    """The projection shown 8-bit between its DISPLAY_PERCENTILES, and those two values.

    ``round((v - low) * 255 / (high - low))`` clipped to 0..255; when high == low, 255
    where v > low, else 0."""
    import numpy as np

    values = projection.astype(np.float64)
    finite = np.isfinite(values)
    everywhere = bool(finite.all())
    if not everywhere and not finite.any():
        return np.zeros(values.shape, np.uint8), 0.0, 0.0
    # floats: the range of the finite values; NaN black, +-Inf the ends
    low, high = (float(v) for v in np.percentile(values if everywhere else values[finite],
                                                 DISPLAY_PERCENTILES))
    if not everywhere:
        values = np.nan_to_num(values, nan=low, posinf=max(high, low + 1), neginf=low)
    if high > low:
        shown = np.clip(np.rint((values - low) * (255.0 / (high - low))), 0, 255)
    else:
        shown = np.where(values > low, 255.0, 0.0)
    return shown.astype(np.uint8), low, high


# -------------------------------------------------------------- one dataset


@dataclass
class _Position:
    frames: int = 0
    blank_frames: int = 0
    saturated_frames: int = 0
    focus_min: Optional[float] = None
    focus_max: Optional[float] = None

    def as_json(self) -> dict[str, Any]:
        return {"frames": self.frames, "blank_frames": self.blank_frames,
                "saturated_frames": self.saturated_frames, "focus_min": self.focus_min,
                "focus_max": self.focus_max}


@dataclass
class DatasetQC:
    """A dataset's summary and thumbnails, gathered as its frames are stored (one thread)."""

    bits: Optional[int]
    factor: int
    positions: dict[int, _Position] = field(default_factory=dict)
    saturated: list[dict[str, int]] = field(default_factory=list)
    projections: dict[tuple[int, int], "np.ndarray"] = field(default_factory=dict)

    @property
    def level(self) -> Optional[int]:
        return level_of(self.bits)

    def add(self, row: Mapping[str, Any], small: Optional["np.ndarray"]) -> None:
        """One stored frame: its row (with its qc_* values) and its pooled pixels."""
        position = self.positions.setdefault(row["pos_idx"], _Position())
        position.frames += 1
        if row["qc_min"] == row["qc_max"]:
            position.blank_frames += 1
        if (row["qc_saturated"] or 0) > SATURATED_FRACTION:
            position.saturated_frames += 1
            # the first LISTED_FRAMES by index, whatever order the workers finish in
            self.saturated.append({"channel": row["channel_idx"], "slice": row["slice_idx"],
                                   "time": row["time_idx"], "position": row["pos_idx"]})
            if len(self.saturated) > 2 * LISTED_FRAMES:
                self.saturated = _first_frames(self.saturated)
        value = row["qc_focus"]
        if value is not None:
            position.focus_min = value if position.focus_min is None else min(position.focus_min, value)
            position.focus_max = value if position.focus_max is None else max(position.focus_max, value)
        if small is not None:
            key = (row["pos_idx"], row["channel_idx"])
            running = self.projections.get(key)
            if running is None:
                self.projections[key] = small
            else:
                largest(running.dtype)(running, small, out=running)

    def summary_row(self) -> dict[str, Any]:
        """The qc_summary row's values (without dataset_id)."""
        spots = self.positions.values()
        focus_mins = [p.focus_min for p in spots if p.focus_min is not None]
        focus_maxes = [p.focus_max for p in spots if p.focus_max is not None]
        return {
            "frames": sum(p.frames for p in spots),
            "saturation_level": None if self.level is None else float(self.level),
            "saturated_frames": sum(p.saturated_frames for p in spots),
            "blank_frames": sum(p.blank_frames for p in spots),
            "blank_positions": sum(1 for p in spots if p.frames and p.blank_frames == p.frames),
            "focus_min": min(focus_mins, default=None),
            "focus_max": max(focus_maxes, default=None),
            "detail": {"bits": self.bits, "saturated_fraction": SATURATED_FRACTION,
                       "saturated": _first_frames(self.saturated),
                       "positions": {str(p): self.positions[p].as_json()
                                     for p in sorted(self.positions)}},
        }

    def thumbnail_rows(self) -> list[dict[str, Any]]:
        """The thumbnail rows' values (without dataset_id): 8-bit PNGs of the projections."""
        from .codecs.png import encode_png

        rows = []
        for (position, channel), projection in sorted(self.projections.items()):
            shown, low, high = to_8bit(projection)
            rows.append({"pos_idx": position, "channel_idx": channel, "display_min": low,
                         "display_max": high, "png": encode_png(shown, level=9,
                                                                strategy="default")})
        return rows


def _first_frames(frames: list[dict[str, int]]) -> list[dict[str, int]]:
    """The first LISTED_FRAMES in index order: position, time, channel, slice."""
    return sorted(frames, key=lambda f: (f["position"], f["time"], f["channel"],
                                         f["slice"]))[:LISTED_FRAMES]


# ------------------------------------------------------------------ reading


def describe(summary: Optional[Mapping[str, Any]]) -> list[str]:
    """``imagingdb show``'s QC lines, from a summary (:func:`summary_json`); None: no QC."""
    if summary is None:
        return ["none (uploaded before QC, by the original imagingDB, or with qc: false)"]
    frames = summary["frames"]
    lines = [f"{frames} frame{'s' if frames != 1 else ''} measured"
             + (f"; saturation at {summary['saturation_level']:g} ({summary['bits']} bits)"
                if summary.get("saturation_level") is not None else "")]
    percent = f"{summary.get('saturated_fraction', SATURATED_FRACTION) * 100:g}%"
    lines.append(f"{summary['saturated_frames']} frame{_s(summary['saturated_frames'])} "
                 f"saturated > {percent}")
    lines.append(f"{summary['blank_frames']} blank frame{_s(summary['blank_frames'])}")
    positions = summary.get("positions") or {}
    blank = [p for p, figures in positions.items()
             if figures["frames"] and figures["blank_frames"] == figures["frames"]]
    for p in blank:
        lines.append(f"position {p} blank")
    if summary.get("focus_min") is not None:
        lines.append(f"focus {_figure(summary['focus_min'])}..{_figure(summary['focus_max'])}")
        if len(positions) > 1:
            for p, figures in positions.items():
                if figures["focus_min"] is not None and p not in blank:
                    lines.append(f"  position {p}: focus {_figure(figures['focus_min'])}.."
                                 f"{_figure(figures['focus_max'])}")
    return lines


def _figure(value: float) -> str:
    """4 significant digits, read at a glance: 7,165 and 14,620 rather than 1.462e+04."""
    rounded = float(f"{value:.4g}")
    return f"{rounded:,.0f}" if 1 <= abs(rounded) < 1e7 else f"{rounded:.4g}"


def summary_json(row: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    """A qc_summary row as ``show --format json`` reports it; None: no QC."""
    if row is None:
        return None
    detail = row["detail"] or {}
    return {"frames": row["frames"], "saturation_level": row["saturation_level"],
            "bits": detail.get("bits"),
            "saturated_fraction": detail.get("saturated_fraction", SATURATED_FRACTION),
            "saturated_frames": row["saturated_frames"], "blank_frames": row["blank_frames"],
            "blank_positions": row["blank_positions"], "focus_min": row["focus_min"],
            "focus_max": row["focus_max"], "saturated": detail.get("saturated", []),
            "positions": detail.get("positions", {})}


def _s(count: int) -> str:
    return "" if count == 1 else "s"


# ------------------------------------------------------------ contact sheet

#: pixels between the cells of a contact sheet, and their grey
SHEET_GAP = 2
SHEET_GAP_VALUE = 64


def contact_sheet(thumbnails: list[Mapping[str, Any]]) -> tuple["np.ndarray", list[int], list[int]]:
    """The thumbnails (``position``, ``channel``, ``png``) laid out positions as rows and
    channels as columns, SHEET_GAP grey pixels apart (a missing cell stays grey); returns the
    8-bit image (RGB if any thumbnail is) and the positions and channels in their order."""
    import numpy as np

    from .codecs.png import decode_png

    cells = {(t["position"], t["channel"]): decode_png(bytes(t["png"])) for t in thumbnails}
    positions = sorted({p for p, _ in cells})
    channels = sorted({c for _, c in cells})
    height = max(a.shape[0] for a in cells.values())
    width = max(a.shape[1] for a in cells.values())
    rgb = any(a.ndim == 3 for a in cells.values())
    shape = (len(positions) * (height + SHEET_GAP) - SHEET_GAP,
             len(channels) * (width + SHEET_GAP) - SHEET_GAP) + ((3,) if rgb else ())
    sheet = np.full(shape, SHEET_GAP_VALUE, dtype=np.uint8)
    for (position, channel), cell in cells.items():
        top = positions.index(position) * (height + SHEET_GAP)
        left = channels.index(channel) * (width + SHEET_GAP)
        if rgb and cell.ndim == 2:
            cell = np.repeat(cell[:, :, None], 3, axis=2)
        sheet[top:top + cell.shape[0], left:left + cell.shape[1]] = cell
    return sheet, positions, channels
