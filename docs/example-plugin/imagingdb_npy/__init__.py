"""imagingdb-npy: an example plugin adding a splitter, a filename parser and a command.

imagingdb imports this module when it starts (its entry point is in the
``imagingdb`` group), so only light imports here: numpy is imported inside
the splitter, when a ``.npy`` file is actually opened.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pluggy

from imagingdb.acquisition import Acquisition, Dimensions, Frame, FrameIndex, SplitOptions, Splitter
from imagingdb.errors import SplitterError

hookimpl = pluggy.HookimplMarker("imagingdb")


# ------------------------------------------------------------------ the splitter


class NpyStackSplitter(Splitter):
    """A .npy file of shape (slices, height, width) as a z-stack (``frames_format: npy_stack``)."""

    name = "npy_stack"

    def open(self, source, options: SplitOptions) -> "NpyStack":
        return NpyStack(Path(source), options)


class NpyStack(Acquisition):
    def __init__(self, source: Path, options: SplitOptions):
        import numpy as np

        try:
            # mmap_mode: frames are read from disk one at a time, never the whole file
            self._stack = np.load(source, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise SplitterError(f"{source}: not a readable .npy file ({exc})") from None
        if self._stack.ndim != 3 or self._stack.dtype.name not in ("uint8", "uint16"):
            raise SplitterError(f"{source}: expected a (slices, height, width) uint8 or uint16 "
                                f"array, found {self._stack.shape} {self._stack.dtype}")
        slices, height, width = self._stack.shape
        self.channel_names = ["channel0"]
        self.dims = Dimensions(nbr_channels=1, nbr_slices=slices, nbr_timepoints=1,
                               nbr_positions=1, im_height=height, im_width=width,
                               bit_depth=self._stack.dtype.name)
        # options.name_metadata runs the upload config's filename_parser, if any
        self.global_meta = {**options.name_metadata(source), "file_origin": str(source)}

    def iter_frames(self, pixels: bool = True) -> Iterator[Frame]:
        import numpy as np

        for z in range(self.dims.nbr_slices):
            yield Frame(
                index=FrameIndex(channel=0, slice=z, time=0, position=0),
                channel_name="channel0",
                metadata={"slice": z},
                pixels=np.ascontiguousarray(self._stack[z]) if pixels else None,
                origin=f"slice {z}",
            )

    def close(self) -> None:
        self._stack = None  # drops the memory map


@hookimpl
def register_splitters(register):
    register("npy_stack", NpyStackSplitter)


# ------------------------------------------------------------ the filename parser

WELL_SITE = re.compile(r"^(?P<well>[A-P]\d{2})_s(?P<site>\d+)\.npy$")


def parse_well_site(file_name: str) -> dict:
    """``B03_s2.npy`` -> {"well": "B03", "site": 2}; a ValueError names the pattern."""
    name = Path(file_name).name
    match = WELL_SITE.match(name)
    if match is None:
        raise ValueError(f"{name!r} does not match '<well A01-P99>_s<site>.npy' (e.g. B03_s2.npy)")
    return {"well": match["well"], "site": int(match["site"])}


@hookimpl
def register_filename_parsers(register):
    register("parse_well_site", parse_well_site)


# ------------------------------------------------------------------- the command


@hookimpl
def register_commands(cli):
    import typer

    @cli.command(name="npy-info")
    def npy_info(path: Path = typer.Argument(..., help="A .npy file.")) -> None:
        """Print a .npy file's shape and pixel type (from the imagingdb-npy plugin)."""
        import numpy as np

        stack = np.load(path, mmap_mode="r")
        print(f"{path.name}: shape {stack.shape}, dtype {stack.dtype}")
