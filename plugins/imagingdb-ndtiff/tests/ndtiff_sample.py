"""Real Micro-Manager 2-style NDTiff datasets, written with ndtiff's own writer.

ndtiff 3.1.0's writer re-opens the stack file it is writing to read its header
back; while that header still sits in Python's write buffer (a first image
under ~8 KB) ``put_image`` fails with "Endian type not specified correctly",
and so does opening a dataset before ``finish()``. Images of 64x64 uint16 (8 KB)
reach the file at once, so these datasets use them. The writer takes no uint8
arrays ("unknown pixel type"), so the datasets are 16-bit. And ``finish()`` leaves
files open (a reader of each file written, and one inside the stack writer):
``finish`` below closes them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Collection, Optional, Sequence

import numpy as np
from ndtiff import NDTiffDataset

from imagingdb.testing import FluorescenceScene

SIZE = 64  # pixels a side: see the module docstring


def finish(dataset: NDTiffDataset) -> None:
    """Finish writing and close every file ndtiff's writer left open (see the module docstring)."""
    if dataset.current_writer is not None:
        dataset.current_writer.reader.close()
    dataset.finish()
    dataset.close()


def mm2_summary(channels: Sequence[str], slices: int, times: int, positions: int) -> dict:
    """The summary metadata Micro-Manager 2's acquisition engine writes (a subset)."""
    return {
        "MicroManagerVersion": "2.0.3 20240614", "MetadataVersion": "12.0.0",
        "Prefix": "acq", "ChNames": list(channels), "PixelType": "GRAY16", "BitDepth": 16,
        "Width": SIZE, "Height": SIZE, "PixelSize_um": 0.325, "z-step_um": 0.5,
        "IntendedDimensions": {"channel": len(channels), "z": slices, "time": times,
                               "position": positions},
        "AxisOrder": ["position", "time", "z", "channel"],
        "StagePositions": [{"Label": f"Pos{p}"} for p in range(positions)],
        "UserName": "imagingdb", "ComputerName": "scope-2",
    }


def write_ndtiff(root: Path, *, channels: Sequence[str] = ("DAPI", "GFP"), slices: int = 3,
                 times: int = 2, positions: int = 1, drop: Collection[tuple] = (),
                 string_channels: bool = True, sizes_as_1_4: bool = False,
                 seed: int = 0) -> tuple[Path, dict]:
    """Write an acquisition; return its folder and {(c, z, t, p): pixels} of what was written.

    ``drop``: (c, z, t, p) images never written (an acquisition stopped early).
    Channels are NDTiff 3.2 string axes (``string_channels``) or numbers.
    ``sizes_as_1_4``: the summary gives its sizes only as Micro-Manager's
    1.4-style Channels, Slices, Frames and Positions (no IntendedDimensions).
    """
    scene = FluorescenceScene(SIZE, SIZE, "uint16", nbr_slices=slices, seed=seed)
    summary = mm2_summary(channels, slices, times, positions)
    if sizes_as_1_4:
        del summary["IntendedDimensions"]
        summary.update(Channels=len(channels), Slices=slices, Frames=times, Positions=positions)
    dataset = NDTiffDataset(str(root), name="acq", writable=True, summary_metadata=summary)
    written = {}
    for p in range(positions):
        for t in range(times):
            for z in range(slices):
                for c, channel in enumerate(channels):
                    if (c, z, t, p) in drop:
                        continue
                    axes = {"channel": channel if string_channels else c, "z": z, "time": t}
                    if positions > 1:
                        axes["position"] = p
                    pixels = scene.frame(c, z, t, p)
                    dataset.put_image(axes, pixels, {
                        "Channel": channel, "Camera": "Prime95B", "Exposure-ms": 20.0 * (c + 1),
                        "ZPosition_um_Intended": 0.5 * z, "TimeReceivedByCore": f"t{t}",
                        "PositionName": f"Pos{p}", "ImageNumber": len(written)})
                    written[c, z, t, p] = pixels
    finish(dataset)
    return Path(dataset.path), written


def stage_position_2_0(label: str, x: float = 0.0, y: float = 0.0) -> dict:
    """A StagePositions entry as Micro-Manager 2.0 writes it: ``label`` in lower case, beside
    its grid place and stages (../shared/realdata/micro-manager/alpha_2.0_singleplane_manual)."""
    return {"gridRow": 0, "gridCol": 0, "label": label, "properties": {},
            "defaultXYStage": "XY", "defaultZStage": "Z",
            "subpositions": [{"stageName": "XY", "numAxes": 2, "x": x, "y": y, "z": 0},
                             {"stageName": "Z", "numAxes": 1, "x": 0.0, "y": 0, "z": 0}]}


def write_labelled_positions(root: Path, labels: Sequence[str], *,
                             declared: Optional[Sequence["str | dict"]] = None,
                             intended: Optional[int] = None, channels: Sequence[str] = ("DAPI",),
                             seed: int = 0) -> tuple[Path, dict]:
    """An acquisition whose positions are NDTiff 3.2 string axes, written in the order of ``labels``.

    Like NDStorage's test_data/v3/labeled_positions_1 (AcqEngJ events
    ``{'axes': {'position': 'Pos2'}}``, ...): position labels, no position number.
    ``declared``: the summary's StagePositions (Micro-Manager's position list),
    or none: a label becomes ``{"Label": label, ...}``, an entry (e.g.
    :func:`stage_position_2_0`) is written as it is. ``intended``: the
    position count of IntendedDimensions (0: none declared), by default one
    per declared or written label. Returns the folder and {(channel, label): pixels}.
    """
    scene = FluorescenceScene(SIZE, SIZE, "uint16", seed=seed)
    summary = mm2_summary(channels, 1, 1, len(declared or labels) if intended is None else intended)
    del summary["StagePositions"]
    if declared is not None:
        summary["StagePositions"] = [{"Label": entry, "DefaultXYStage": "XY"}
                                     if isinstance(entry, str) else entry for entry in declared]
    dataset = NDTiffDataset(str(root), name="labelled", writable=True, summary_metadata=summary)
    written = {}
    for number, label in enumerate(labels):
        for c, channel in enumerate(channels):
            pixels = scene.frame(c, 0, 0, number)
            dataset.put_image({"channel": channel, "position": label}, pixels,
                              {"Channel": channel, "PositionName": label, "ImageNumber": len(written)})
            written[channel, label] = pixels
    finish(dataset)
    return Path(dataset.path), written


def explore_summary(channels: Sequence[str], overlap: int) -> dict:
    """The summary an Explore/Magellan (AcqEngJ) tiled acquisition writes (a subset)."""
    return {"TiledImageStorage": True, "GridPixelOverlapX": overlap, "GridPixelOverlapY": overlap,
            "PixelType": "GRAY16", "PixelSize_um": 0.65, "ChNames": list(channels),
            "Core-XYStage": "XY", "Core-Focus": "Z", "AffineTransform": "1.0_0.0_0.0_1.0"}


def write_tiled_pyramid(parent: Path, tiles: Sequence[tuple[int, int]], *,
                        channels: Sequence[str] = ("DAPI", "GFP"), slices: int = 2,
                        factors: Sequence[int] = (2, 4), size: int = 4 * SIZE, seed: int = 0,
                        extra_axes: Optional[dict] = None) -> tuple[Path, dict]:
    """A multi-resolution NDTiff 3 dataset of row/column tiles, as Explore and Magellan save them.

    ``<name>/Full resolution/`` and one ``<name>/Downsampled_x<factor>/`` per
    factor, each an NDTiff written by ndtiff's own writer, beside a
    ``display_settings.txt`` (the layout of NDStorage's ndtiffv3.0_stitched_test).
    Tiles are written in the order given, each with every channel and slice;
    ``extra_axes`` are added to every image's axes (to build datasets imagingdb
    must refuse). A downsampled level holds, at tile (row // f, column // f),
    every f-th pixel of the full-resolution tile there: a stand-in for the
    mosaic Explore computes, which imagingdb does not store. ``size`` must keep
    the smallest level at 64x64 or more (see the module docstring). Returns the
    dataset folder and {(channel, z, row, column): full-resolution pixels}.
    """
    root = parent / "explore"
    root.mkdir(parents=True)
    (root / "display_settings.txt").write_text("{}", encoding="utf-8")
    scene = FluorescenceScene(size, size, "uint16", nbr_slices=slices, seed=seed)
    written = {}
    for number, (row, column) in enumerate(tiles):
        for z in range(slices):
            for c, channel in enumerate(channels):
                written[channel, z, row, column] = scene.frame(c, z, 0, number)
    _write_level(root, "Full resolution", channels, {
        (channel, z, row, column): pixels for (channel, z, row, column), pixels in written.items()},
        extra_axes)
    for factor in factors:
        level = {}
        for (channel, z, row, column), pixels in written.items():
            level.setdefault((channel, z, row // factor, column // factor),
                             np.ascontiguousarray(pixels[::factor, ::factor]))
        _write_level(root, f"Downsampled_x{factor}", channels, level, extra_axes)
    return root, written


def _write_level(root: Path, folder: str, channels: Sequence[str], images: dict,
                 extra_axes: Optional[dict]) -> None:
    # ndtiff's writer makes a numbered folder of its own: write there, then move it into place.
    staging = root / f".staging-{len(list(root.iterdir()))}"
    dataset = NDTiffDataset(str(staging), name="explore", writable=True,
                            summary_metadata=explore_summary(channels, overlap=8))
    for (channel, z, row, column), pixels in images.items():
        axes = {"channel": channel, "z": z, "row": row, "column": column, **(extra_axes or {})}
        dataset.put_image(axes, pixels, {"Channel": channel, "GridRowIndex": row,
                                         "GridColumnIndex": column, "ZPosition_um_Intended": 2.0 * z})
    finish(dataset)
    Path(dataset.path).rename(root / folder)
    shutil.rmtree(staging)


def write_axes(root: Path, coordinates: Sequence[dict], summary: Optional[dict] = None) -> Path:
    """A dataset with one image at each of ``coordinates`` (any axes ndtiff's writer takes)."""
    scene = FluorescenceScene(SIZE, SIZE, "uint16", seed=5)
    dataset = NDTiffDataset(str(root), name="axes", writable=True,
                            summary_metadata=summary or mm2_summary(["DAPI"], 1, 1, 1))
    for number, axes in enumerate(coordinates):
        dataset.put_image(dict(axes), scene.frame(0, 0, 0, number), {"ImageNumber": number})
    finish(dataset)
    return Path(dataset.path)
