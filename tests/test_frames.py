"""Tests of the PNG frame codec (imagingdb.codecs.png)."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import png
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from imagingdb.codecs.png import (
    decode_png,
    decode_png_into,
    encode_png,
    frame_dtype_check,
    pixel_sha256,
)

FILTERS = ("none", "sub", "up")
STRATEGIES = ("auto", "isal", "default", "filtered", "huffman", "rle")
# PNG colour type for a given number of samples per pixel
COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}


def random_frame(shape, dtype, seed=0) -> np.ndarray:
    """Full-range random samples (so filters wrap around) with 0 and max included."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    frame.flat[0] = 0
    frame.flat[-1] = np.iinfo(dtype).max
    return frame


def pypng_pixels(data: bytes) -> np.ndarray:
    """Decode with pypng alone, reshaped like decode_png's result."""
    width, height, rows, info = png.Reader(bytes=data).read()
    samples = np.array([np.asarray(row) for row in rows])
    planes = info["planes"]
    return samples.reshape((height, width) if planes == 1 else (height, width, planes))


# ------------------------------------------------- reference PNG filtering
# A deliberately slow, byte-at-a-time implementation of the PNG filters
# straight from the PNG specification (section 9.2), to write test files
# with every filter type (pypng's writer only writes filter type 0).


def paeth_predictor(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    if pb <= pc:
        return b
    return c


def reference_filter(scanlines: list, bpp: int, filter_types: list) -> bytes:
    filtered = bytearray()
    prior = bytes(len(scanlines[0]))
    for line, filter_type in zip(scanlines, filter_types):
        filtered.append(filter_type)
        for i, x in enumerate(line):
            a = line[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            predictor = (0, a, b, (a + b) // 2, paeth_predictor(a, b, c))[filter_type]
            filtered.append((x - predictor) % 256)
        prior = line
    return bytes(filtered)


def reference_png(pixels: np.ndarray, filter_types: list) -> bytes:
    """A PNG of ``pixels`` (any channel count) whose rows use ``filter_types``."""
    height, width = pixels.shape[:2]
    channels = pixels.shape[2] if pixels.ndim == 3 else 1
    big_endian = pixels.astype(pixels.dtype.newbyteorder(">"))
    scanlines = [row.tobytes() for row in big_endian]
    idat = zlib.compress(reference_filter(scanlines, channels * pixels.itemsize, filter_types))
    ihdr = struct.pack(">IIBBBBB", width, height, 8 * pixels.itemsize, COLOR_TYPES[channels], 0, 0, 0)
    out = io.BytesIO()
    png.write_chunks(out, [(b"IHDR", ihdr), (b"IDAT", idat), (b"IEND", b"")])
    return out.getvalue()


# ------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 3)], ids=["gray", "rgb"])
def test_round_trip_is_exact(dtype, shape):
    frame = random_frame(shape, dtype)
    decoded = decode_png(encode_png(frame))
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, frame)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_round_trip_keeps_zero_and_maximum_values(dtype):
    frame = np.zeros((8, 8), dtype)
    frame[::2, ::2] = frame[1::2, 1::2] = np.iinfo(dtype).max  # checkerboard: extreme filter deltas
    np.testing.assert_array_equal(decode_png(encode_png(frame)), frame)


@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (17, 1), (3, 7), (1, 1, 3), (3, 7, 3)])
@pytest.mark.parametrize("png_filter", FILTERS)
def test_round_trip_handles_odd_sizes(shape, png_filter):
    frame = random_frame(shape, np.uint16)
    np.testing.assert_array_equal(decode_png(encode_png(frame, png_filter=png_filter)), frame)


@pytest.mark.parametrize("level", [0, 1, 9])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("png_filter", FILTERS)
def test_every_filter_strategy_and_level_round_trips(png_filter, strategy, level):
    frame = random_frame((19, 23, 3), np.uint16)
    data = encode_png(frame, level=level, strategy=strategy, png_filter=png_filter)
    np.testing.assert_array_equal(decode_png(data), frame)


@pytest.mark.parametrize("level", [0, 3])
def test_without_the_isal_package_its_strategy_falls_back_to_zlib(monkeypatch, level):
    from imagingdb.codecs import png as frames

    frame = random_frame((40, 30), np.uint16)
    with_isal = encode_png(frame, strategy="isal", level=level)
    monkeypatch.setattr(frames, "_isal", None)
    without = encode_png(frame, strategy="isal", level=level)
    assert without == encode_png(frame, strategy="rle", level=1)  # never "stored" (level 0)
    for data in (with_isal, without):  # each decodes with and without isal
        np.testing.assert_array_equal(decode_png(data), frame)
    monkeypatch.undo()
    np.testing.assert_array_equal(decode_png(without), frame)


def test_big_endian_input_encodes_like_native():
    frame = random_frame((5, 6), np.uint16)
    assert encode_png(frame.astype(">u2")) == encode_png(frame.astype("<u2"))


def test_non_contiguous_input_encodes_like_contiguous():
    frame = random_frame((10, 12, 3), np.uint8)
    view = frame[::2, ::3]
    np.testing.assert_array_equal(decode_png(encode_png(view)), view)


def test_default_output_is_smaller_than_zlib_level_1_on_noisy_smooth_frame():
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:128, 0:128]
    frame = rng.poisson(400 + 3 * x + 2 * y).astype(np.uint16)
    assert len(encode_png(frame)) < len(zlib.compress(frame.tobytes(), 1))


# ------------------------------------------------- interoperability


@pytest.mark.parametrize("png_filter", FILTERS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(9, 11), (9, 11, 3)], ids=["gray", "rgb"])
def test_pypng_reads_identical_pixels(shape, dtype, png_filter):
    frame = random_frame(shape, dtype)
    np.testing.assert_array_equal(pypng_pixels(encode_png(frame, png_filter=png_filter)), frame)


def test_pypng_as_direct_reads_16_bit_gray_unchanged():
    frame = random_frame((4, 5), np.uint16)
    width, height, rows, info = png.Reader(bytes=encode_png(frame)).asDirect()
    assert info["bitdepth"] == 16 and info["greyscale"] and not info["alpha"]
    np.testing.assert_array_equal(np.array([np.asarray(row) for row in rows]), frame)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_reference_png_helper_agrees_with_pypng(channels, dtype):
    # guards the test helper itself: pypng must read what it writes
    frame = random_frame((6, 7) if channels == 1 else (6, 7, channels), dtype)
    np.testing.assert_array_equal(pypng_pixels(reference_png(frame, [0, 1, 2, 3, 4, 4])), frame)


@pytest.mark.parametrize("filter_type", [0, 1, 2, 3, 4], ids=["none", "sub", "up", "average", "paeth"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 3)], ids=["gray", "rgb"])
def test_decodes_every_png_filter_type(shape, dtype, filter_type):
    frame = random_frame(shape, dtype)
    np.testing.assert_array_equal(decode_png(reference_png(frame, [filter_type] * 7)), frame)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(11, 5), (11, 5, 3)], ids=["gray", "rgb"])
def test_decodes_rows_with_mixed_filter_types(shape, dtype):
    frame = random_frame(shape, dtype)
    filter_types = [4, 3, 2, 1, 0, 2, 2, 1, 3, 4, 0]  # every transition between types
    np.testing.assert_array_equal(decode_png(reference_png(frame, filter_types)), frame)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [2, 4], ids=["gray_alpha", "rgba"])
def test_decodes_alpha_images_with_alpha_as_last_channel(channels, dtype):
    frame = random_frame((6, 5, channels), dtype)
    out = io.BytesIO()
    writer = png.Writer(5, 6, greyscale=channels == 2, alpha=True, bitdepth=8 * frame.itemsize)
    writer.write(out, frame.reshape(6, -1))
    np.testing.assert_array_equal(decode_png(out.getvalue()), frame)


@pytest.mark.parametrize("channels", [2, 4], ids=["gray_alpha", "rgba"])
def test_decodes_alpha_images_with_average_and_paeth_filters(channels):
    frame = random_frame((5, 4, channels), np.uint16)
    np.testing.assert_array_equal(decode_png(reference_png(frame, [3, 4, 3, 4, 1])), frame)


def test_libpng_reads_identical_pixels():
    imagecodecs = pytest.importorskip("imagecodecs")
    frame = random_frame((21, 13, 3), np.uint16)
    np.testing.assert_array_equal(imagecodecs.png_decode(encode_png(frame)), frame)


@pytest.mark.parametrize("filter_name", ["NONE", "SUB", "UP", "AVG", "PAETH", "ALL"])
def test_decodes_libpng_output_with_each_filter(filter_name):
    imagecodecs = pytest.importorskip("imagecodecs")
    frame = random_frame((21, 13), np.uint16)
    data = imagecodecs.png_encode(frame, filter=getattr(imagecodecs.PNG.FILTER, filter_name))
    np.testing.assert_array_equal(decode_png(data), frame)


# ------------------------------------------------- pypng fallback


def test_palette_image_decodes_to_rgb_via_pypng():
    palette = [(0, 0, 0), (255, 0, 0), (0, 128, 255), (7, 8, 9)]
    indices = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], np.uint8)
    out = io.BytesIO()
    png.Writer(4, 2, palette=palette, bitdepth=2).write(out, indices)
    np.testing.assert_array_equal(decode_png(out.getvalue()), np.array(palette, np.uint8)[indices])


def test_palette_image_with_transparency_decodes_to_rgba():
    palette = [(0, 0, 0, 0), (255, 0, 0, 128)]
    indices = np.array([[0, 1], [1, 1]], np.uint8)
    out = io.BytesIO()
    png.Writer(2, 2, palette=palette, bitdepth=8).write(out, indices)
    np.testing.assert_array_equal(decode_png(out.getvalue()), np.array(palette, np.uint8)[indices])


def test_interlaced_rgb_with_suggested_palette_decodes_as_rgb():
    frame = random_frame((5, 4, 3), np.uint8)
    out = io.BytesIO()
    png.Writer(4, 5, greyscale=False, interlace=True).write(out, frame.reshape(5, -1))
    chunks = list(png.Reader(bytes=out.getvalue()).chunks())
    chunks.insert(1, (b"PLTE", bytes(range(6))))  # optional for RGB: a hint for 8-bit displays
    with_palette = io.BytesIO()
    png.write_chunks(with_palette, chunks)
    np.testing.assert_array_equal(decode_png(with_palette.getvalue()), frame)


@pytest.mark.parametrize("bit_depth", [1, 2, 4])
def test_low_bit_depth_gray_decodes_to_stored_sample_values(bit_depth):
    frame = random_frame((5, 11), np.uint8) % (1 << bit_depth)
    out = io.BytesIO()
    png.Writer(11, 5, greyscale=True, bitdepth=bit_depth).write(out, frame)
    decoded = decode_png(out.getvalue())
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, frame)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_interlaced_image_decodes_via_pypng(dtype):
    frame = random_frame((13, 10, 3), dtype)
    out = io.BytesIO()
    png.Writer(10, 13, greyscale=False, bitdepth=8 * frame.itemsize, interlace=True).write(
        out, frame.reshape(13, -1))
    decoded = decode_png(out.getvalue())
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, frame)


# ------------------------------------------------- decode_png_into


def test_decode_png_into_fills_a_view_of_a_bigger_array():
    frame = random_frame((6, 9), np.uint16)
    big = np.zeros((2, 3, 2, 4, 6, 9), np.uint16)  # (P, T, C, Z, Y, X)
    decode_png_into(encode_png(frame), big[1, 2, 0, 3])
    np.testing.assert_array_equal(big[1, 2, 0, 3], frame)
    big[1, 2, 0, 3] = 0
    assert not big.any()  # nothing else was touched


def test_decode_png_into_fills_a_non_contiguous_view():
    frame = random_frame((6, 9, 3), np.uint8)
    big = np.zeros((6, 18, 3), np.uint8)
    decode_png_into(encode_png(frame), big[:, ::2])
    np.testing.assert_array_equal(big[:, ::2], frame)
    assert not big[:, 1::2].any()


def test_decode_png_into_fills_from_the_pypng_fallback():
    frame = random_frame((7, 5, 3), np.uint8)
    out = io.BytesIO()
    png.Writer(5, 7, greyscale=False, interlace=True).write(out, frame.reshape(7, -1))
    target = np.zeros((2, 7, 5, 3), np.uint8)
    decode_png_into(out.getvalue(), target[1])
    np.testing.assert_array_equal(target[1], frame)


def test_decode_png_into_rejects_wrong_shape_naming_both():
    data = encode_png(random_frame((6, 9), np.uint16))
    with pytest.raises(ValueError, match=r"\(6, 9\).*\(9, 6\)"):
        decode_png_into(data, np.zeros((9, 6), np.uint16))


def test_decode_png_into_rejects_wrong_dtype_naming_both():
    data = encode_png(random_frame((6, 9), np.uint16))
    with pytest.raises(ValueError, match=r"uint16.*uint8"):
        decode_png_into(data, np.zeros((6, 9), np.uint8))


# ------------------------------------------------- unsupported input


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_frames_raise_with_conversion_advice(dtype):
    with pytest.raises(ValueError, match=r"cannot be stored as PNG frames.*uint16.*upload_type: file"):
        encode_png(np.zeros((4, 4), dtype))


@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.uint32])
def test_integer_frames_other_than_uint8_uint16_raise_with_advice(dtype):
    with pytest.raises(ValueError, match=rf"{np.dtype(dtype)}.*uint16.*upload_type: file"):
        encode_png(np.zeros((4, 4), dtype))


def test_bool_frames_raise_with_advice():
    with pytest.raises(ValueError, match=r"bool.*uint8.*upload_type: file"):
        encode_png(np.zeros((4, 4), bool))


@pytest.mark.parametrize("shape", [(4,), (4, 4, 4), (4, 4, 1), (2, 4, 4, 3), (0, 4), (4, 0, 3)])
def test_unsupported_shapes_raise(shape):
    with pytest.raises(ValueError, match=r"2D \(height, width\).*got shape"):
        encode_png(np.zeros(shape, np.uint16))


def test_non_array_input_raises():
    with pytest.raises(ValueError, match="numpy array"):
        encode_png([[1, 2], [3, 4]])


@pytest.mark.parametrize("frame", [np.zeros((2, 2), np.float32), np.zeros((2, 2, 4), np.uint8)],
                         ids=["float32", "rgba"])
def test_frame_dtype_check_raises_the_same_error_as_encode(frame):
    with pytest.raises(ValueError) as from_check:
        frame_dtype_check(frame)
    with pytest.raises(ValueError) as from_encode:
        encode_png(frame)
    assert str(from_check.value) == str(from_encode.value)


@pytest.mark.parametrize("frame", [np.zeros((1, 1), np.uint8), np.zeros((2, 3, 3), ">u2")])
def test_frame_dtype_check_accepts_supported_frames(frame):
    frame_dtype_check(frame)


@pytest.mark.parametrize("option", [{"strategy": "fast"}, {"png_filter": "paeth"}, {"level": 10}])
def test_unknown_encode_options_raise(option):
    with pytest.raises(ValueError, match=next(iter(option))):
        encode_png(np.zeros((2, 2), np.uint8), **option)


# ------------------------------------------------- corrupt data


def test_decode_rejects_data_that_is_not_png():
    with pytest.raises(ValueError, match="signature"):
        decode_png(b"GIF89a" + bytes(100))


def test_decode_rejects_a_corrupted_byte():
    data = bytearray(encode_png(random_frame((8, 8), np.uint8)))
    data[60] ^= 0xFF  # inside the IDAT chunk
    with pytest.raises(ValueError, match="CRC"):
        decode_png(bytes(data))


def test_decode_rejects_truncated_data():
    data = encode_png(random_frame((8, 8), np.uint8))
    with pytest.raises(ValueError, match="truncated"):
        decode_png(data[:-20])


# ------------------------------------------------- checksums


def test_pixel_sha256_hashes_little_endian_c_order_bytes():
    frame = np.array([[1, 256]], np.uint16)
    assert pixel_sha256(frame) == hashlib.sha256(b"\x01\x00\x00\x01").hexdigest()


@pytest.mark.parametrize("variant", ["native", "big_endian", "fortran_order", "strided_view"])
def test_pixel_sha256_depends_only_on_pixel_values(variant):
    base = random_frame((12, 10), np.uint16)
    frame = {"native": base, "big_endian": base.astype(">u2"),
             "fortran_order": np.asfortranarray(base),
             "strided_view": np.repeat(base, 2, axis=1)[:, ::2]}[variant]
    assert pixel_sha256(frame) == hashlib.sha256(base.astype("<u2").tobytes()).hexdigest()


def test_pixel_sha256_of_uint8_rgb_is_sha256_of_tobytes():
    frame = random_frame((5, 4, 3), np.uint8)
    assert pixel_sha256(frame) == hashlib.sha256(frame.tobytes()).hexdigest()


# ------------------------------------------------- property


@st.composite
def frames(draw):
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    shape = (draw(st.integers(1, 64)), draw(st.integers(1, 64))) + draw(st.sampled_from([(), (3,)]))
    maximum = int(np.iinfo(dtype).max)
    if draw(st.booleans()):  # hypothesis-chosen values, incl. constant and all-max frames
        return draw(arrays(dtype, shape, elements=st.integers(0, maximum)))
    return random_frame(shape, dtype, seed=draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=60, deadline=None)
@given(frames())
def test_any_frame_round_trips_bit_exact_with_every_filter(frame):
    for png_filter in FILTERS:
        decoded = decode_png(encode_png(frame, png_filter=png_filter))
        assert decoded.dtype == frame.dtype
        np.testing.assert_array_equal(decoded, frame)


@st.composite
def edge_frames(draw):
    """Frames made only of edge values (0, 1, mid, max-1, max), in any byte order and layout."""
    dtype = np.dtype(draw(st.sampled_from(["u1", "<u2", ">u2"])))
    shape = (draw(st.sampled_from([1, 2, 3, 17])), draw(st.sampled_from([1, 2, 3, 31])))
    shape += draw(st.sampled_from([(), (3,)]))
    top = int(np.iinfo(dtype).max)
    edges = st.sampled_from([0, 1, top // 2, top // 2 + 1, top - 1, top])
    frame = draw(arrays(dtype, shape, elements=edges))
    layout = draw(st.sampled_from(["c", "fortran", "strided"]))
    if layout == "fortran":
        return np.asfortranarray(frame)
    if layout == "strided":
        return np.repeat(frame, 2, axis=1)[:, ::2]
    return frame


@settings(max_examples=80, deadline=None)
@given(edge_frames())
def test_edge_value_frames_come_back_bit_exact_with_the_same_checksum(frame):
    data = encode_png(frame)
    assert encode_png(frame) == data  # deterministic: a re-upload stores the same bytes
    decoded = decode_png(data)
    np.testing.assert_array_equal(decoded, frame)
    np.testing.assert_array_equal(pypng_pixels(data), frame)  # an independent decoder agrees
    assert pixel_sha256(decoded) == pixel_sha256(frame)
    bigger = np.zeros((2,) + frame.shape, decoded.dtype)
    decode_png_into(data, bigger[1])
    np.testing.assert_array_equal(bigger[1], frame)


@settings(max_examples=150, deadline=None)
@given(frames(), st.data())
def test_any_single_bit_flip_in_a_stored_frame_is_detected(frame, data):
    """What verify relies on: a flipped bit fails a CRC-checked decode or changes the checksum."""
    stored = bytearray(encode_png(frame))
    bit = data.draw(st.integers(0, len(stored) * 8 - 1))
    stored[bit // 8] ^= 1 << (bit % 8)
    try:
        decoded = decode_png(bytes(stored), check_crc=True)
    except ValueError:
        return
    assert decoded.shape != frame.shape or pixel_sha256(decoded) != pixel_sha256(frame)


def test_auto_deflates_16_bit_frames_with_isal_and_the_rest_with_rle():
    from imagingdb.codecs.png import _choose, _filter_rows

    def filtered(frame):
        rows = np.ascontiguousarray(frame, frame.dtype.newbyteorder(">")).view(np.uint8)
        rows = rows.reshape(frame.shape[0], -1)
        out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
        _filter_rows(rows, frame.itemsize, "up", out)
        return out

    camera = random_frame((64, 64), np.uint16)
    assert _choose(2, filtered(camera), 3) == ("isal", 3)
    assert _choose(1, filtered(random_frame((64, 64), np.uint8)), 3) == ("rle", 3)
    sparse = np.zeros((64, 64), np.uint16)
    sparse[::9, ::7] = camera[::9, ::7]  # background-subtracted: mostly zeros
    assert _choose(2, filtered(sparse), 0) == ("rle", 1)  # never "stored"
    for frame, strategy in ((camera, "isal"), (sparse, "rle")):
        assert encode_png(frame) == encode_png(frame, strategy=strategy, level=3)
