"""Independent readers the tests compare imagingdb against."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import png
import tifffile

MM_TAG = 51123  # MicroManagerMetadata

#: how many random trials each trial test runs (the suite's default is small: run more by hand)
TRIALS_ENV = "IMAGINGDB_TRIALS"
#: the base seed of the trials (default: a new one each run, printed by each trial)
TRIAL_SEED_ENV = "IMAGINGDB_TRIAL_SEED"
_BASE_SEED = int(os.environ.get(TRIAL_SEED_ENV) or random.SystemRandom().randrange(1 << 32))


def source_frames(folder: Path) -> dict[tuple[int, int, int, int], np.ndarray]:
    """(c, z, t, p) -> pixels of every page of every OME-TIFF in ``folder``, read with tifffile."""
    frames = {}
    for path in sorted(Path(folder).glob("*.ome.tif")):
        with tifffile.TiffFile(path) as tif:
            for page in tif.pages:
                meta = page.tags[MM_TAG].value
                if isinstance(meta, (str, bytes)):
                    meta = json.loads(meta)
                key = (meta["ChannelIndex"], meta["SliceIndex"], meta["FrameIndex"],
                       meta["PositionIndex"])
                frames[key] = page.asarray()
    return frames


def read_png_with_pypng(path: Path) -> np.ndarray:
    """Decode a PNG with pypng, independently of imagingdb's codec."""
    width, height, rows, info = png.Reader(filename=str(path)).read()
    dtype = np.uint16 if info["bitdepth"] == 16 else np.uint8
    array = np.vstack([np.asarray(row, dtype=dtype) for row in rows])
    planes = info["planes"]
    return array.reshape(height, width, planes) if planes > 1 else array.reshape(height, width)


def imagingdb_command() -> list[str]:
    """The installed `imagingdb` command, to run as a real subprocess."""
    script = Path(sys.executable).parent / "imagingdb"
    return [str(script)] if script.exists() else [sys.executable, "-m", "imagingdb"]


def assert_refused(result, site, before, *, code=2, contains=()):
    """The command was refused with one Error: line (holding each of ``contains``), exit
    ``code``, nothing else on stderr but the upload's count, and the site unchanged."""
    assert result.exit_code == code, result.stderr
    assert len(result.errors) == 1, result.stderr
    for text in contains:
        assert text in result.errors[0], result.errors[0]
    other_lines = [line for line in result.stderr.splitlines()
                   if not line.startswith("Error:") and not line.endswith("dataset(s) uploaded")]
    assert other_lines == [], result.stderr
    assert site.snapshot() == before


def trials(default: int) -> range:
    """The trials a random-trial test runs: ``IMAGINGDB_TRIALS`` of them, else ``default``."""
    return range(int(os.environ.get(TRIALS_ENV) or default))


def trial_random(name: str, trial: int) -> random.Random:
    """The random source of one trial, its seed printed (pytest shows it when the trial fails;
    ``IMAGINGDB_TRIAL_SEED=<base>`` and the trial number replay it)."""
    seed = _BASE_SEED + trial
    print(f"{name} trial {trial}: seed {seed} ({TRIAL_SEED_ENV}={_BASE_SEED})")
    # A text seed is hashed (SHA-512): neighbouring integer seeds would start Mersenne
    # Twister in similar states, and the trials would draw alike.
    return random.Random(f"{name}:{seed}")
