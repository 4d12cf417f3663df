"""ImageJ, Fiji and plain TIFF stacks for tests: hyperstacks, stacks and image sequences as written.

- :func:`write_imagej_hyperstack`, :func:`write_tiff_stack`: tifffile's ImageJ
  and plain stacks;
- :func:`write_fiji_hyperstack`, :func:`write_fiji_image_sequence`: what Fiji
  writes (Info, Labels, Ranges, LUTs; "Save As > Image Sequence");
- :func:`write_tifffile_stack`: tifffile's shaped stack with axes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Collection, Optional, Sequence

import numpy as np
import tifffile

from .scenes import FluorescenceScene, intensity_levels, rgb_frame

# --------------------------------------------------------------------------
# ImageJ hyperstacks, plain stacks
# --------------------------------------------------------------------------


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
    levels = intensity_levels(dtype)
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
            levels = intensity_levels(dtype)
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
