"""Micro-benchmark of the PNG frame codec; run: python tests/bench_codec.py

Times, on one core (best of a few runs), encode_png for each setting on
1024x1024 fluorescence-like frames (uint16, and the same scene as uint8),
with throughput in MB/s of raw pixels and output size relative to
zlib.compress(raw, 1); then decode_png against pypng's reader. Not collected
by pytest (no test_ functions).
"""

from __future__ import annotations

import io
import time
import zlib

import numpy as np
import png

from imagingdb.codecs.png import decode_png, encode_png

SIZE = 1024
FILTERS = ("none", "sub", "up")
STRATEGIES = ("default", "filtered", "huffman", "rle")


def fluorescence_frame(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """Smooth uneven background, ~120 gaussian cells, Poisson shot noise and read noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    expected = 300 + 120 * x + 80 * np.sin(3 * y + 1) * np.cos(2 * x)
    for _ in range(120):
        cy, cx = rng.uniform(0, size, 2)
        sigma, amplitude = rng.uniform(4, 14), rng.uniform(400, 3000)
        r = int(4 * sigma)  # the blob is negligible beyond 4 sigma
        y0, y1 = max(0, int(cy) - r), min(size, int(cy) + r)
        x0, x1 = max(0, int(cx) - r), min(size, int(cx) + r)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        expected[y0:y1, x0:x1] += amplitude * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    counts = rng.poisson(expected) + rng.normal(0, 3, expected.shape)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def best_seconds(function, repeats: int = 5) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)


def pypng_encode(frame: np.ndarray) -> bytes:
    out = io.BytesIO()
    writer = png.Writer(frame.shape[1], frame.shape[0], greyscale=True,
                        bitdepth=8 * frame.itemsize, compression=1)
    writer.write(out, frame)
    return out.getvalue()


def bench_encode(label: str, frame: np.ndarray) -> None:
    raw = frame.tobytes()
    baseline = len(zlib.compress(raw, 1))
    settings = [("zlib level 1, raw", lambda: zlib.compress(raw, 1)),
                ("pypng writer, level 1", lambda: pypng_encode(frame))]
    for png_filter in FILTERS:
        for strategy in STRATEGIES:
            settings.append((f"{png_filter:<4} + {strategy}, level 1",
                             lambda f=png_filter, s=strategy: encode_png(frame, png_filter=f, strategy=s)))
    settings.append(("up   + default, level 6", lambda: encode_png(frame, level=6, strategy="default")))
    print(f"\nencode {label} {frame.shape} ({len(raw) / 1e6:.1f} MB)")
    print(f"  {'setting':<26} {'MB/s':>6} {'size/zlib1':>10} {'ratio':>6}")
    for name, encode in settings:
        seconds = best_seconds(encode)
        size = len(encode())
        print(f"  {name:<26} {len(raw) / seconds / 1e6:6.0f} {size / baseline:10.3f} {len(raw) / size:6.2f}")


def bench_decode(label: str, frame: np.ndarray) -> None:
    print(f"\ndecode {label}")
    for png_filter in ("up", "sub"):
        data = encode_png(frame, png_filter=png_filter)
        assert np.array_equal(decode_png(data), frame)
        ours = best_seconds(lambda data=data: decode_png(data))
        theirs = best_seconds(lambda data=data: np.array(list(png.Reader(bytes=data).read()[2])),
                              repeats=2)
        print(f"  {png_filter:<4} decode_png {frame.nbytes / ours / 1e6:6.0f} MB/s"
              f"   pypng {frame.nbytes / theirs / 1e6:6.1f} MB/s")


def main() -> None:
    frame16 = fluorescence_frame()
    frame8 = (frame16 // 16).astype(np.uint8)  # same scene from an 8-bit camera
    print(f"uint16 frame: min {frame16.min()}, median {int(np.median(frame16))}, max {frame16.max()}")
    bench_encode("uint16", frame16)
    bench_encode("uint8", frame8)
    bench_decode("uint16", frame16)
    bench_decode("uint8", frame8)


if __name__ == "__main__":
    main()
