"""Real Micro-Manager 2-style NDTiff datasets, written with ndtiff's own writer.

ndtiff 3.1.0's writer re-opens the stack file it is writing to read its header
back; while that header still sits in Python's write buffer (a first image
under ~8 KB) ``put_image`` fails with "Endian type not specified correctly",
and so does opening a dataset before ``finish()``. Images of 64x64 uint16 (8 KB)
reach the file at once, so these datasets use them. The writer takes no uint8
arrays ("unknown pixel type"), so the datasets are 16-bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Collection, Sequence

from ndtiff import NDTiffDataset

from imagingdb.sample import FluorescenceScene

SIZE = 64  # pixels a side: see the module docstring


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
                 string_channels: bool = True, seed: int = 0) -> tuple[Path, dict]:
    """Write an acquisition; return its folder and {(c, z, t, p): pixels} of what was written.

    ``drop``: (c, z, t, p) images never written (an acquisition stopped early).
    Channels are NDTiff 3.2 string axes (``string_channels``) or numbers.
    """
    scene = FluorescenceScene(SIZE, SIZE, "uint16", nbr_slices=slices, seed=seed)
    dataset = NDTiffDataset(str(root), name="acq", writable=True,
                            summary_metadata=mm2_summary(channels, slices, times, positions))
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
    dataset.finish()
    return Path(dataset.path), written
