"""The ome-zarr codec: a frame's chunk is what zarr-python itself writes for it, every frame
comes back bit for bit, and a damaged chunk never decodes to a frame unnoticed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from imagingdb.codecs import frame_codec, pixel_sha256
from imagingdb.codecs.blosc import zarr_codecs

DTYPES = ["uint8", "uint16", ">u2", "int16", "uint32", "float32", ">f4", "float64"]


@pytest.mark.parametrize("dtype", ["uint16", "uint8", "int8", "float32", "int64"])
def test_a_chunk_is_byte_for_byte_what_zarr_python_writes(tmp_path, dtype):
    import zarr

    from imagingdb.testing import SCMOSScene

    frame = (SCMOSScene(64, 96, seed=3).frame(0, 0, 0, 0) // 300).astype(dtype)
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=(1, 1, 1, 64, 96),
                              chunks=(1, 1, 1, 64, 96), dtype=dtype, fill_value=0,
                              serializer=zarr_codecs(frame.dtype)[0],
                              compressors=[zarr_codecs(frame.dtype)[1]],
                              dimension_names=["t", "c", "z", "y", "x"])
    array[0, 0, 0] = frame
    written = (tmp_path / "a.zarr" / "c" / "0" / "0" / "0" / "0" / "0").read_bytes()
    assert bytes(frame_codec("ome-zarr").encode(frame)) == written


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_pixel_type_round_trips_into_a_native_slot(dtype):
    rng = np.random.default_rng(0)
    pixels = (rng.random((17, 23)) * 200).astype(dtype)
    codec = frame_codec("ome-zarr")
    out = np.empty(pixels.shape, np.dtype(dtype).newbyteorder("="))
    codec.decode_into(codec.encode(pixels), out)
    np.testing.assert_array_equal(out, pixels)
    assert pixel_sha256(out) == pixel_sha256(pixels)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(st.sampled_from([np.uint8, np.uint16, np.float32]),
                  hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40)))
def test_any_frame_round_trips_bit_exact(pixels):
    codec = frame_codec("ome-zarr")
    out = np.empty_like(pixels)
    codec.decode_into(codec.encode(pixels), out)
    assert out.tobytes() == pixels.tobytes()


def test_a_chunk_of_another_shape_or_a_cut_chunk_is_refused():
    codec = frame_codec("ome-zarr")
    data = codec.encode(np.arange(600, dtype="uint16").reshape(20, 30))
    with pytest.raises(ValueError, match="holds 1200 bytes of pixels"):
        codec.decode_into(data, np.empty((30, 30), "uint16"))
    with pytest.raises(ValueError, match="header says"):
        codec.decode_into(data[:-3], np.empty((20, 30), "uint16"))
    with pytest.raises(ValueError, match="not a Blosc chunk"):
        codec.decode_into(b"\x02\x01", np.empty((20, 30), "uint16"))


def test_a_changed_byte_is_refused_or_changes_the_pixels_never_anything_worse():
    """Decoding damaged bytes raises ValueError/RuntimeError or gives other pixels (which
    the recorded sha256 catches); a change that gives the same pixels back is harmless."""
    from imagingdb.testing import SCMOSScene

    frame = SCMOSScene(32, 32, seed=1).frame(1, 0, 0, 0)
    codec = frame_codec("ome-zarr")
    data = bytes(codec.encode(frame))
    noticed = 0
    for offset in range(len(data)):
        damaged = bytearray(data)
        damaged[offset] ^= 0x5A
        out = np.empty_like(frame)
        try:
            codec.decode_into(bytes(damaged), out)
        except (ValueError, RuntimeError):
            noticed += 1
            continue
        noticed += pixel_sha256(out) != pixel_sha256(frame)
    assert noticed >= 0.95 * len(data)


@pytest.mark.parametrize("dtype, shape, words", [
    ("uint8", (4, 4, 3), "RGB frames"), ("bool", (4, 4), "bool pixels"),
    ("complex64", (4, 4), "complex64 pixels"), ("uint16", (4, 0), "height and width >= 1"),
    ("uint16", (2, 4, 4), "2D (height, width)")])
def test_what_ome_zarr_cannot_hold_is_refused_with_a_way_out(dtype, shape, words):
    reason = frame_codec("ome-zarr").refusal(dtype, shape)
    assert reason is not None and words in reason


def test_png_refuses_floats_that_ome_zarr_stores():
    assert frame_codec("png").refusal("float32", (4, 4)) is not None
    assert frame_codec("ome-zarr").refusal("float32", (4, 4)) is None
