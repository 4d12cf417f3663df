"""Fuzz every registered splitter with mutated Micro-Manager OME-TIFF files.

A reader given a damaged file must end in an ImagingDBError (SplitterError,
InputError) whose message names the file, or read it; never another
exception (a traceback for the user), a hang, or frames that disagree with
the dimensions it announced.

Mutations aim at the structure a reader trusts: bit flips, random byte runs
and extreme values in the TIFF header, the IFDs and tag values, the
Micro-Manager header and JSON metadata, and truncations near those places.
Each case is rebuilt from (seed, case number), so a failure is reproduced
with ``--seed S --case N``.

    python -m tests.fuzz_readers --count 2000 --seed 7     # make fuzz FUZZ_COUNT=2000
    python -m tests.fuzz_readers --seed 7 --case 1234 --keep /tmp/fuzz-cases

The process limits its own address space (``--memory-mb``), so a reader that
believes a corrupt size and allocates gigabytes fails as a MemoryError here
instead of taking the machine down.
"""

from __future__ import annotations

import argparse
import logging
import random
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

EXTREMES = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


class CaseTimeout(Exception):
    """A reader took longer than the per-case limit: a hang."""


@dataclass(frozen=True)
class Region:
    """A part of a seed file worth damaging."""

    what: str
    start: int
    length: int


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    regions: tuple[Region, ...]


@dataclass
class Failure:
    case: int
    mutation: str
    splitter: str
    source: str
    problem: str


# ------------------------------------------------------------------ seed files


def make_seeds(folder: Path) -> list[Seed]:
    """Small real acquisitions from imagingdb.testing, with and without Micro-Manager's header."""
    from imagingdb.testing import write_mm_ometiff

    seeds = []
    for name, kwargs in (
        ("mm-header-uint16", dict(dtype="uint16", file_header=True)),
        ("no-header-uint8", dict(dtype="uint8", file_header=False)),
    ):
        [path] = write_mm_ometiff(folder / name, name, channels=("DAPI", "GFP"), slices=2,
                                  times=1, positions=1, height=12, width=10, seed=3, **kwargs)
        data = path.read_bytes()
        seeds.append(Seed(name, data, tuple(tiff_regions(path, data))))
    return seeds


def tiff_regions(path: Path, data: bytes) -> list[Region]:
    """Header, Micro-Manager header, every IFD, every tag entry and out-of-line value."""
    import tifffile

    regions = [Region("tiff header", 0, 8), Region("micro-manager header", 8, 32)]
    with tifffile.TiffFile(path) as tif:
        entry = tif.tiff.tagsize
        for number, page in enumerate(tif.pages):
            count = len(page.tags)
            regions.append(Region(f"IFD of page {number}", page.offset, 2 + count * entry + 4))
            for tag in page.tags:
                regions.append(Region(f"page {number} {tag.name} entry", tag.offset, entry))
                if tag.valueoffset != tag.offset + 4 + (entry - 8):  # stored out of line
                    length = min(tag.valuebytecount, 4096)
                    regions.append(Region(f"page {number} {tag.name} value", tag.valueoffset,
                                          length))
    return [r for r in regions if r.length > 0 and r.start + r.length <= len(data)]


# ------------------------------------------------------------------- mutations


def damage(seed: Seed, rng: random.Random) -> tuple[bytes, str]:
    """The seed with one to three mutations, and what they were."""
    data, done = seed.data, []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        data, what = mutate(seed, data, rng)
        done.append(what)
    return data, "; ".join(done)


def mutate(seed: Seed, current: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One more mutation of ``current`` (the seed, or already damaged)."""
    data = bytearray(current)
    regions = [r for r in seed.regions if r.start + r.length <= len(data)] or \
        [Region("whole file", 0, max(1, len(data)))]
    region = rng.choice(regions)
    if not data:
        return current, "nothing left to damage"
    kind = rng.choice(("bitflip", "bitflip", "bytes", "extreme", "extreme", "truncate",
                       "json", "anywhere"))
    if kind == "bitflip":
        flips = [region.start + rng.randrange(region.length) for _ in range(rng.randint(1, 4))]
        for at in flips:
            data[at] ^= 1 << rng.randrange(8)
        return bytes(data), f"bit flips at {flips} in {region.what}"
    if kind == "bytes":
        at = region.start + rng.randrange(region.length)
        run = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        data[at:at + len(run)] = run
        return bytes(data[:len(current)]), f"{len(run)} random bytes at {at} in {region.what}"
    if kind == "extreme":
        at = region.start + rng.randrange(max(1, region.length - 3))
        width = rng.choice((2, 4))
        value = rng.choice(EXTREMES) & (0xFFFF if width == 2 else 0xFFFFFFFF)
        byteorder = "<" if seed.data[:2] == b"II" else ">"
        data[at:at + width] = struct.pack(byteorder + ("H" if width == 2 else "I"), value)
        return bytes(data[:len(current)]), f"{value:#x} ({width} bytes) at {at} in {region.what}"
    if kind == "truncate":
        at = max(0, min(len(data) - 1, region.start + rng.randrange(-8, region.length + 8)))
        return bytes(data[:at]), f"truncated at {at} (in or near {region.what})"
    if kind == "json":
        return _mutate_json(regions, data, rng)
    at = rng.randrange(len(data))
    data[at] ^= 1 << rng.randrange(8)
    return bytes(data), f"bit flip at {at}"


def _mutate_json(regions: list[Region], data: bytearray, rng: random.Random
                 ) -> tuple[bytes, str]:
    """Damage the Micro-Manager JSON: a character, or a number turned huge or negative."""
    values = [r for r in regions if r.what.endswith("MicroManagerMetadata value")]
    if not values:
        return bytes(data), "no metadata left to damage"
    region = rng.choice(values)
    text = bytes(data[region.start:region.start + region.length])
    numbers = [i for i, byte in enumerate(text) if chr(byte).isdigit()]
    if numbers and rng.random() < 0.6:
        at = region.start + rng.choice(numbers)
        replacement = rng.choice((b"-", b"9", b".", b"e"))
        data[at:at + 1] = replacement
        return bytes(data), f"{replacement!r} for a digit at {at} in {region.what}"
    at = region.start + rng.randrange(region.length)
    data[at] = rng.choice(b'{}[]":,\\\x00\xff')
    return bytes(data), f"JSON byte {data[at]:#x} at {at} in {region.what}"


# ------------------------------------------------------------------ running


def splitters() -> dict[str, Callable]:
    from imagingdb import plugins

    return {name: entry.obj for name, entry in sorted(plugins.registry("splitter").items())}


def read_everything(factory: Callable, source: Path) -> None:
    """What an upload does with a source: open, a metadata pass, a pixel pass."""
    import numpy as np

    from imagingdb.acquisition import SplitOptions

    with factory().open(source, SplitOptions()) as acquisition:
        dims = acquisition.dims
        metadata_pass = sum(1 for _ in acquisition.iter_frames(pixels=False))
        shape = (dims.im_height, dims.im_width) + ((dims.im_colors,) if dims.im_colors > 1 else ())
        pixel_pass = 0
        for frame in acquisition.iter_frames(pixels=True):
            pixel_pass += 1
            if frame.pixels.shape != shape or frame.pixels.dtype != np.dtype(dims.bit_depth):
                raise AssertionError(
                    f"frame {frame.index} is {frame.pixels.dtype} {frame.pixels.shape}, but the "
                    f"acquisition announced {dims.bit_depth} {shape}")
        if pixel_pass != metadata_pass:
            raise AssertionError(f"the metadata pass gave {metadata_pass} frames, "
                                 f"the pixel pass {pixel_pass}")


def run_case(factory: Callable, source: Path, name_in_message: str,
             timeout: float) -> Optional[str]:
    """None if the reader behaved; else what it did wrong."""
    from imagingdb.errors import ImagingDBError

    def on_alarm(_signum, _frame):
        raise CaseTimeout(f"no answer within {timeout} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        read_everything(factory, source)
    except ImagingDBError as exc:
        message = str(exc)
        if name_in_message not in message:
            return f"error does not name the file: {message}"
        if "\n" in message:
            return f"error is not one line: {message!r}"
    except CaseTimeout as exc:
        return f"hang: {exc}"
    except BaseException as exc:  # noqa: BLE001 - anything else would be a traceback
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return (f"{type(exc).__name__}: {str(exc)[:300]} "
                f"(at {Path(where.filename).name}:{where.lineno})")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return None


def fuzz(count: int, seed: int, *, timeout: float = 10.0, only_case: Optional[int] = None,
         keep: Optional[Path] = None, log: Callable[[str], None] = print) -> list[Failure]:
    work = Path(tempfile.mkdtemp(prefix="imagingdb-fuzz-"))
    failures: list[Failure] = []
    try:
        seeds = make_seeds(work / "seeds")
        readers = splitters()
        cases = [only_case] if only_case is not None else range(count)
        for case in cases:
            rng = random.Random(f"{seed}:{case}")
            seed_file = rng.choice(seeds)
            data, mutation = damage(seed_file, rng)
            mutation = f"{seed_file.name}: {mutation}"
            folder = work / "cases" / f"case-{case:05d}"
            folder.mkdir(parents=True)
            path = folder / f"case-{case:05d}.ome.tif"
            path.write_bytes(data)
            for name, factory in readers.items():
                for kind, source in (("file", path), ("folder", folder)):
                    problem = run_case(factory, source, folder.name, timeout)
                    if problem is not None:
                        failures.append(Failure(case, mutation, name, kind, problem))
                        log(f"FAIL case {case} ({mutation}) splitter {name} given the "
                            f"{kind}: {problem}")
                        if keep is not None:
                            keep.mkdir(parents=True, exist_ok=True)
                            shutil.copy(path, keep / path.name)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return failures


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="cases to run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the run")
    parser.add_argument("--case", type=int, default=None, help="run only this case")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--memory-mb", type=int, default=2048,
                        help="address-space limit of this process")
    parser.add_argument("--keep", type=Path, default=None, help="copy failing files here")
    args = parser.parse_args(argv)
    limit = args.memory_mb << 20
    logging.getLogger().addHandler(logging.NullHandler())  # tifffile logs each oddity it meets
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    started = time.monotonic()
    failures = fuzz(args.count, args.seed, timeout=args.timeout, only_case=args.case,
                    keep=args.keep)
    cases = 1 if args.case is not None else args.count
    print(f"{cases} case(s) x {len(splitters())} splitter(s), seed {args.seed}: "
          f"{len(failures)} failure(s) in {time.monotonic() - started:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
