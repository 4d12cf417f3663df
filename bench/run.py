"""make bench: the figures of SPEC section 9, each measured in the same run as its limit.

Run from the repository root:
``python bench/run.py [--repeat N] [--only NAME...] [--layout png|ome-zarr|both]``.
Both frame layouts (one PNG object per frame, and the OME-Zarr store of
``frame_format: ome-zarr``) are measured on the same data in the same run,
each against the same limits; the table puts their rows side by side (the
``layout`` column). Data is generated once and cached under build/bench/data
(a Micro-Manager OME-TIFF of 128 frames of 1024x1024 uint16, and one of 256
frames, pixels from :class:`imagingdb.testing.SCMOSScene`: see
docs/performance.md for the camera and sample model). Every imagingdb figure
comes from the real ``imagingdb`` command run as a subprocess (or, for
``read()``, a subprocess calling the Python API), timed from outside; each
is measured ``--repeat`` times and the median is kept. The export step times
``imagingdb export --to ome-zarr|ome-tiff`` only where that command exists.
Prints a table and writes build/bench/bench.json.

Not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "bench"
DATA = BUILD / "data"
RUNS = BUILD / "runs"
BIN = Path(sys.executable).parent
IMAGINGDB = str(BIN / "imagingdb")
DATASET_ID = "BENCH-2026-01-15-10-00-00-0001"
# Bump when the generator or its parameters change, so cached files are rebuilt.
DATA_VERSION = 4
SIZE = 1024
CHANNELS = ("DAPI", "GFP")
TIMES = 8
CORES = os.cpu_count() or 1
PNG, OME_ZARR = "png", "ome-zarr"
LAYOUTS = (PNG, OME_ZARR)
#: the targets of each layout (issue 15 for ome-zarr; SPEC section 9 for png)
TARGETS = {
    PNG: {"upload": ">= 1.0", "stored": "<= 0.85", "read": ">= 0.8"},
    OME_ZARR: {"upload": ">= 2.0", "stored": "<= 0.82", "read": ">= 2.0"},
}
RSS_LIMIT_MB = 200
#: the most `upload --plan`'s estimates may differ from the upload (issue 19)
PLAN_LIMIT = 0.25
#: QC at ingest costs at most this: upload time with QC / without (issue 19)
QC_LIMIT = 1.10
#: alternating pairs the QC cost is judged on: a 10% limit on the ratio of two ~1.5 s
#: commands that each vary by ~10% on this VM needs more than 3 (3-pair runs gave 0.98-1.16)
QC_PAIRS = 7
#: 'flat when the file doubles': peak RSS of 256 frames at most this times that of 128
FLAT = 1.1


# ------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Acquisition:
    name: str
    slices: int

    @property
    def frames(self) -> int:
        return len(CHANNELS) * self.slices * TIMES

    @property
    def pixel_bytes(self) -> int:
        return self.frames * SIZE * SIZE * 2

    @property
    def folder(self) -> Path:
        return DATA / self.name

    @property
    def file(self) -> Path:
        return self.folder / f"{self.name}_MMStack_Pos0.ome.tif"


BASE = Acquisition("mm128", slices=8)  # 128 frames, 256 MB of pixels
DOUBLE = Acquisition("mm256", slices=16)  # 256 frames, 512 MB of pixels


def ensure_data(acquisition: Acquisition) -> Path:
    """Write the acquisition unless a complete copy of this DATA_VERSION is cached."""
    from imagingdb.testing import SCMOSScene, write_mm_ometiff

    stamp = acquisition.folder / "complete.json"
    wanted = {"version": DATA_VERSION, "frames": acquisition.frames, "size": SIZE}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted and acquisition.file.is_file():
        return acquisition.file
    shutil.rmtree(acquisition.folder, ignore_errors=True)
    print(f"generating {acquisition.file.relative_to(REPO)} ({acquisition.frames} frames)...",
          file=sys.stderr, flush=True)
    scene = SCMOSScene(SIZE, SIZE, nbr_slices=acquisition.slices, seed=2026)
    write_mm_ometiff(acquisition.folder, acquisition.name, channels=CHANNELS,
                     slices=acquisition.slices, times=TIMES, positions=1, height=SIZE,
                     width=SIZE, dtype="uint16", scene=scene)
    stamp.write_text(json.dumps(wanted))
    return acquisition.file


def read_pixels(path: Path) -> list:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return [page.asarray() for page in tif.pages]


# ------------------------------------------------------------------ measuring


@dataclass
class Run:
    seconds: float
    max_rss_mb: float
    stdout: str
    stderr: str = ""
    cpu_seconds: float = 0.0
    returncode: int = 0


def run(args: list[str], env: Optional[dict] = None, check: bool = True) -> Run:
    """Run a command: its wall time and CPU time (from wait4), stdout and stderr."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors,
                                env={**os.environ, **(env or {})})
        stdout = proc.stdout.read()
        proc.stdout.close()
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read().decode()
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    # No peak RSS here: the child's ru_maxrss would include the bench's (see below).
    return Run(seconds, 0.0, stdout.decode(), stderr, usage.ru_utime + usage.ru_stime,
               proc.returncode)


# Runs a command and prints its peak RSS (KB) and exit code. It is its own small
# process because Linux carries the spawning process's peak RSS over into the
# child's ru_maxrss at exec; the bench, holding hundreds of MB of frames for the
# limits, would otherwise inflate every figure (measured: 1088 MB instead of 92).
_RSS_WRAPPER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(usage.ru_maxrss, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime)\n"
)


def run_with_rss(args: list[str], env: Optional[dict] = None) -> Run:
    """Like :func:`run`, and the child's own peak RSS from wait4 (measured by the kernel)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-S", "-c", _RSS_WRAPPER, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    max_rss_kb, exit_code, cpu_seconds = stdout.split()
    if exit_code != "0":
        raise RuntimeError(f"{' '.join(args)} failed ({exit_code}):\n{stderr[-3000:]}")
    return Run(seconds, int(max_rss_kb) / 1024, "", stderr, float(cpu_seconds))


def on_all_cores(function: Callable, items: list) -> tuple[float, list]:
    """Wall time of ``function`` over ``items`` with one thread per core (zlib drops the GIL)."""
    with cf.ThreadPoolExecutor(CORES) as pool:
        list(pool.map(function, items[:CORES]))  # warm up the threads
        start = time.perf_counter()
        results = list(pool.map(function, items))
        return time.perf_counter() - start, results


# ------------------------------------------------------------------- a site


class Site:
    """A throwaway imagingdb instance: SQLite (or a PostgreSQL URL) and a storage backend."""

    def __init__(self, name: str, database_url: Optional[str] = None,
                 storage: Optional[dict] = None, env: Optional[dict] = None,
                 frame_format: str = PNG):
        self.layout = frame_format
        self.folder = RUNS / name
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.root = self.folder / "storage"
        self.env = env or {}
        database: dict[str, Any] = {"url": database_url or f"sqlite:///{self.folder / 'db.sqlite'}"}
        if database_url and "postgresql" in database_url:
            database["password_env"] = "BENCH_PG_PASSWORD"
        import yaml

        self.config = self.folder / "site.yaml"
        self.config.write_text(yaml.safe_dump({
            "database": database,
            "storage": storage or {"backend": "local", "root": str(self.root)},
        }))
        upload: dict[str, Any] = {
            "upload_type": "frames", "frames_format": "ome_tiff", "microscope": "bench scope"}
        if frame_format != PNG:
            upload["frame_format"] = frame_format  # png: today's config, the default layout
        (self.folder / "upload.yaml").write_text(yaml.safe_dump(upload))

        (self.folder / "upload-noqc.yaml").write_text(yaml.safe_dump({**upload, "qc": False}))

    def cli(self, *args: str) -> list[str]:
        return [IMAGINGDB, "--site-config", str(self.config), *args]

    def upload_args(self, source: Path, config: str = "upload.yaml") -> list[str]:
        csv_file = self.folder / "upload.csv"
        csv_file.write_text(f"dataset_id,file_name,description\n{DATASET_ID},{source},bench\n")
        return self.cli("upload", "--csv", str(csv_file), "--config", str(self.folder / config))

    def reset(self) -> None:
        """Forget every dataset: a fresh database file and an empty storage folder."""
        (self.folder / "db.sqlite").unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            (self.folder / f"db.sqlite{suffix}").unlink(missing_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def frames_folder(self) -> Path:
        return self.root / "raw_frames" / DATASET_ID

    def stored_files(self) -> list[Path]:
        """Every object of the dataset: its PNGs, or its store's chunks and zarr.json documents."""
        return sorted(p for p in self.frames_folder().rglob("*") if p.is_file())

    def stored_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.stored_files())


# --------------------------------------------------------------- the figures


@dataclass
class Figure:
    name: str
    value: Optional[float]
    unit: str
    limit: Optional[float] = None
    limit_name: str = ""
    ratio: Optional[float] = None
    target: str = ""
    ok: Optional[bool] = None
    note: str = ""
    samples: list = field(default_factory=list)
    #: the frame layout measured (png, ome-zarr); "" for figures of neither
    layout: str = ""


def _at_most(value: float, target: str) -> bool:
    return value <= float(target.split()[-1])


class Bench:
    def __init__(self, repeat: int, layouts: tuple[str, ...] = LAYOUTS):
        self.repeat = repeat
        self.layouts = layouts
        self.figures: list[Figure] = []
        self.peak_rss: dict[tuple[str, str], float] = {}
        self.sites: dict[str, Site] = {}
        self._pixels: Optional[list] = None
        self._streams: Optional[list] = None

    def add(self, figure: Figure, layout: str = "") -> None:
        """Keep and print ``figure``, of the frame layout ``layout`` if it is one layout's."""
        if layout:
            figure.layout = layout
        self.figures.append(figure)
        print(f"  {format_row(figure)}", file=sys.stderr, flush=True)

    def pixels(self) -> list:
        """The base acquisition's frames, for the limits (read once, kept)."""
        if self._pixels is None:
            self._pixels = read_pixels(ensure_data(BASE))
        return self._pixels

    # -- upload, size, RSS --------------------------------------------------

    def upload_local(self, acquisition: Acquisition, frame_format: str = PNG) -> Site:
        """Upload runs, each followed by a run of the limit: both see the same machine load."""
        source = ensure_data(acquisition)
        suffix = "" if frame_format == PNG else f"-{frame_format}"
        site = Site(f"upload-{acquisition.name}{suffix}", frame_format=frame_format)
        pixels = self.pixels() if acquisition is BASE else None
        codec = _blosc_encode_and_hash if frame_format == OME_ZARR and pixels else None
        runs, limits, codec_limits = [], [], []
        for _ in range(self.repeat):
            site.reset()
            runs.append(run_with_rss(site.upload_args(source)))
            if pixels is not None:
                limits.append(on_all_cores(lambda a: zlib.compress(a, 1), pixels))
                if codec is not None:
                    codec_limits.append(on_all_cores(codec, pixels)[0])
        rss = max(r.max_rss_mb for r in runs)
        mb = acquisition.pixel_bytes / 1e6
        targets = TARGETS[frame_format]

        def add(figure: Figure) -> None:
            self.add(figure, frame_format)

        if acquisition is BASE:
            seconds = [r.seconds for r in runs]
            limit_seconds = [t for t, _ in limits]
            zlib_bytes = sum(len(c) for c in limits[0][1])
            stored = site.stored_bytes()
            cpu = statistics.median(r.cpu_seconds for r in runs)
            add(paired("upload, local + SQLite", mb, seconds, limit_seconds,
                       f"zlib -1 on {CORES} cores", targets["upload"],
                       note=f"whole command: {statistics.median(seconds):.2f} s wall, "
                            f"{cpu:.2f} s CPU; {acquisition.frames} frames, {mb:.0f} MB"))
            pipeline = [mb / _summary_rate(r.stderr) for r in runs]
            add(paired("  same, first frame to commit", mb, pipeline, limit_seconds,
                       f"zlib -1 on {CORES} cores", "",
                       note="rate in the upload's own summary line "
                            "(no start-up, no metadata pass)"))
            if codec_limits:
                add(paired("  upload vs its own codec", mb, pipeline, codec_limits,
                           f"blosc+sha256 on {CORES} cores", "",
                           note="first frame to commit against Blosc zstd-1 encode + sha256 of "
                                "every frame in memory: what the layout's codec alone allows"))
            note = f"raw/stored = {acquisition.pixel_bytes / stored:.2f}"
            if frame_format == OME_ZARR:
                documents = sum(p.stat().st_size for p in site.stored_files()
                                if p.name == "zarr.json")
                note += f"; chunks + {documents / 1e3:.0f} KB of zarr.json"
            add(Figure("stored bytes", stored / 1e6, "MB", zlib_bytes / 1e6,
                       "zlib -1 output", stored / zlib_bytes, targets["stored"],
                       _at_most(stored / zlib_bytes, targets["stored"]), note=note))
            self.sites[frame_format] = site
        add(Figure(f"peak RSS, upload {acquisition.frames} frames", rss, "MB",
                   target=f"<= {RSS_LIMIT_MB}", ok=rss <= RSS_LIMIT_MB,
                   samples=[r.max_rss_mb for r in runs],
                   note=f"{mb:.0f} MB file; highest of {len(runs)} run(s)"))
        self.peak_rss[frame_format, acquisition.name] = rss
        if (frame_format, BASE.name) in self.peak_rss and (frame_format, DOUBLE.name) in self.peak_rss:
            small = self.peak_rss[frame_format, BASE.name]
            large = self.peak_rss[frame_format, DOUBLE.name]
            add(Figure("peak RSS growth, file x2", large - small, "MB", small, "RSS at x1",
                       large / small, "flat", large / small <= FLAT,
                       note=f"ratio RSS(x2) / RSS(x1); flat = at most {FLAT}"))
        return site

    # -- QC at ingest ----------------------------------------------------------

    def qc(self, acquisition: Acquisition, frame_format: str = PNG) -> None:
        """Upload throughput with QC (the default) against the same upload with ``qc: false``,
        runs alternating (on, off, off, on...) so both see the same machine load; the cost is
        the median of the pairs' time ratios (with / without), at most QC_LIMIT for the whole
        command; the same ratio of the first-frame-to-commit rate and of the CPU seconds
        (less sensitive to other load on the machine) are shown beside it."""
        source = ensure_data(acquisition)
        suffix = "" if frame_format == PNG else f"-{frame_format}"
        site = Site(f"qc-{acquisition.name}{suffix}", frame_format=frame_format)
        mb = acquisition.pixel_bytes / 1e6
        on: list[Run] = []
        off: list[Run] = []
        for number in range(max(self.repeat, QC_PAIRS)):
            order = ((on, "upload.yaml"), (off, "upload-noqc.yaml"))
            for runs, config in order if number % 2 == 0 else order[::-1]:
                site.reset()
                runs.append(run(site.upload_args(source, config)))
        for label, seconds_of in (("whole command", lambda r: r.seconds),
                                  ("first frame to commit", lambda r: mb / _summary_rate(r.stderr)),
                                  ("CPU time", lambda r: r.cpu_seconds)):
            with_qc = [seconds_of(r) for r in on]
            without = [seconds_of(r) for r in off]
            ratios = [a / b for a, b in zip(with_qc, without)]
            ratio = statistics.median(ratios)
            name = {"whole command": "upload with QC", "first frame to commit":
                    "  same, first frame to commit", "CPU time": "  same, CPU seconds"}[label]
            if label == "CPU time":  # seconds of CPU per MB, shown as MB per CPU second
                name = "  same, MB per CPU second"
            # the limit is on the upload's figure (the whole command, as "upload, local +
            # SQLite"); the pipeline's and the CPU's ratios are shown beside it
            limited = label == "whole command"
            self.add(Figure(name, mb / statistics.median(with_qc), "MB/s",
                            mb / statistics.median(without), "the same with qc: false", ratio,
                            f"<= {QC_LIMIT}" if limited else "",
                            ratio <= QC_LIMIT if limited else None,
                            note=f"{label}; ratio = time with QC / without, median of "
                                 f"{len(ratios)} alternating pairs; {acquisition.frames} frames",
                            samples=[round(r, 3) for r in ratios]), frame_format)

    # -- read() --------------------------------------------------------------

    def inflate_streams(self) -> list:
        """(zlib stream, raw size) of each base frame's PNG: the read limit's work, for both
        layouts. From the png upload's objects; encoded here (the same codec, default settings)
        when png is not measured."""
        if self._streams is None:
            site = self.sites.get(PNG)
            if site is not None:
                pngs = [p.read_bytes() for p in site.stored_files()]
            else:
                from imagingdb.codecs import frame_codec

                codec = frame_codec(PNG)
                pngs = [bytes(codec.encode(p)) for p in self.pixels()]
            self._streams = list(zip((idat_of(d) for d in pngs), (png_raw_size(d) for d in pngs)))
        return self._streams

    def read(self, site: Site, acquisition: Acquisition) -> None:
        script = (
            "import sys, time, imagingdb, numpy as np\n"
            "db = imagingdb.connect(sys.argv[1]); ds = db.dataset(sys.argv[2])\n"
            # 'imported': first import what read() imports on its first call (the read
            # module, the layout's codec and its libraries: numcodecs, isal), as a
            # program that had read before would have.
            "if sys.argv[3:] == ['imported']:\n"
            "    import imagingdb.download; from imagingdb.codecs import frame_codec\n"
            "    frame_codec(ds.frame_format)\n"
            "start = time.perf_counter(); array = ds.read(); seconds = time.perf_counter() - start\n"
            "assert array.shape[-2:] == (1024, 1024) and array.any()\n"
            "empty = np.empty(array.shape, array.dtype); start = time.perf_counter(); empty[...] = 0\n"
            "print(seconds, time.perf_counter() - start)\n"
        )
        streams = self.inflate_streams()
        chunks = None
        if site.layout == OME_ZARR:
            chunks = [p.read_bytes() for p in site.stored_files() if p.name != "zarr.json"]
            decoder = _blosc_decoder()
        seconds, imported, limit_seconds, codec_seconds, faults = [], [], [], [], []
        for _ in range(self.repeat):
            read_seconds, fault_seconds = map(float, run(
                [sys.executable, "-c", script, str(site.config), DATASET_ID]).stdout.split())
            seconds.append(read_seconds)
            faults.append(fault_seconds)
            imported.append(float(run([sys.executable, "-c", script, str(site.config),
                                       DATASET_ID, "imported"]).stdout.split()[0]))
            limit_seconds.append(on_all_cores(
                lambda item: zlib.decompress(item[0], bufsize=item[1]), streams)[0])
            if chunks is not None:
                codec_seconds.append(on_all_cores(decoder, chunks)[0])
        mb = acquisition.pixel_bytes / 1e6
        figure = paired("read() whole dataset", mb, seconds,
                        limit_seconds, f"zlib inflate on {CORES} cores", TARGETS[site.layout]["read"],
                        note="ds.read() in a fresh process, imports before the call excluded (those "
                             "read() makes on its first call included); touching its new "
                             f"256 MB array costs ~{statistics.median(faults):.2f} s here (timed on a "
                             "second array; see docs/performance.md)")
        self.add(figure, site.layout)
        figure = paired("  read(), modules imported first", mb, imported, limit_seconds,
                        f"zlib inflate on {CORES} cores", "",
                        note="the same after importing what read()'s first call imports "
                             "(imagingdb.download, the codec and its library): a diagnosis")
        self.add(figure, site.layout)
        if codec_seconds:
            figure = paired("  read() vs its own codec", mb, seconds, codec_seconds,
                            f"blosc decode on {CORES} cores", "",
                            note="ds.read() against Blosc decoding every chunk in memory "
                                 "(chunks already read, fresh output buffers)")
            self.add(figure, site.layout)

    # -- export --------------------------------------------------------------

    def export(self, site: Site, acquisition: Acquisition) -> None:
        """`imagingdb export --id ID --to ome-zarr|ome-tiff DEST`, whole command, vs a limit.

        Limits, run after each export: for ome-zarr, the upload's (zlib -1 on every core:
        the export compresses every frame again, or copies chunks); for ome-tiff, tifffile
        writing the same frames uncompressed into one file from memory, on one core.
        """
        targets = (("ome-zarr", "export.zarr"), ("ome-tiff", "export.ome.tif"))
        if not _has_export():
            for to, _dest in targets:
                self.add(Figure(f"export --to {to}", None, "", note="n/a (export missing)",
                                layout=site.layout))
            return
        mb = acquisition.pixel_bytes / 1e6
        pixels = self.pixels()
        for to, name in targets:
            dest = site.folder / name
            seconds, limit_seconds, rss, size = [], [], [], 0
            for _ in range(self.repeat):
                _remove(dest)
                result = run_with_rss(site.cli("export", "--id", DATASET_ID, "--to", to, str(dest)))
                seconds.append(result.seconds)
                rss.append(result.max_rss_mb)
                size = _size_of(dest)
                _remove(dest)
                if to == "ome-zarr":
                    limit_seconds.append(on_all_cores(lambda a: zlib.compress(a, 1), pixels)[0])
                else:
                    limit_seconds.append(_tiff_write_seconds(pixels, site.folder / "limit.tif"))
            limit_name = (f"zlib -1 on {CORES} cores" if to == "ome-zarr"
                          else "tifffile write, 1 core")
            figure = paired(f"export --to {to}", mb, seconds, limit_seconds, limit_name, "",
                            note=f"whole command; {size / 1e6:.0f} MB written; "
                                 f"peak RSS {max(rss):.0f} MB")
            self.add(figure, site.layout)

    # -- download ------------------------------------------------------------

    def download(self, site: Site, label: str = "download, local", compare_copy: bool = True) -> None:
        """`download` minus `download --no-download` (same start-up and queries), vs `cp -r`.

        The net figure is a difference of two ~0.5 s commands that each vary by
        ~0.1 s with the machine, for ~0.1 s of copying: so at least 15 runs of
        each, interleaved, and the difference of their medians.
        """
        def timed(args: list[str], dest: Path) -> float:
            shutil.rmtree(dest, ignore_errors=True)
            seconds = run(args, env=site.env).seconds
            shutil.rmtree(dest, ignore_errors=True)
            return seconds

        def download(dest: Path, *flags: str) -> float:
            return timed(site.cli("download", "--id", DATASET_ID, "--dest", str(dest), *flags), dest)

        full, meta, copies = [], [], []
        for _ in range(max(self.repeat, 15)):
            full.append(download(site.folder / "dl-full"))
            meta.append(download(site.folder / "dl-meta", "--no-download"))
            if compare_copy:
                copies.append(timed(["cp", "-r", str(site.frames_folder()),
                                     str(site.folder / "cp")], site.folder / "cp"))
        net = max(statistics.median(full) - statistics.median(meta), 1e-3)
        note = (f"net of start-up: {statistics.median(full):.2f} s - "
                f"{statistics.median(meta):.2f} s (--no-download), medians of {len(full)} runs")
        if not compare_copy:
            self.add(Figure(label, net, "s", note=note, samples=[round(f - m, 3) for f, m in
                                                                 zip(full, meta)],
                            layout=site.layout))
            return
        stored = site.stored_bytes()
        copy = statistics.median(copies)
        # SPEC's target is png's; the ome-zarr row is a figure against the same limit.
        target = ">= 1.0" if site.layout == PNG else ""
        what = "PNG" if site.layout == PNG else "chunks and zarr.json"
        self.add(Figure(label, stored / 1e6 / net, "MB/s", stored / 1e6 / copy,
                        "cp -r of the objects", copy / net, target,
                        copy / net >= 1.0 if target else None,
                        note=f"{note}; cp -r {copy:.3f} s; {stored / 1e6:.0f} MB of {what}",
                        samples=[round(f - m, 3) for f, m in zip(full, meta)],
                        layout=site.layout))

    # -- start-up ------------------------------------------------------------

    def startup(self) -> None:
        """Wall time (the target) and CPU time (steadier on a shared machine) of short commands."""
        def measure(name: str, args: list[str], limit: Optional[float]) -> float:
            runs = [run(args) for _ in range(max(self.repeat, 5))]
            seconds = statistics.median(r.seconds for r in runs)
            cpu = statistics.median(r.cpu_seconds for r in runs)
            self.add(Figure(name, seconds, "s", target=f"< {limit}" if limit else "",
                            ok=None if limit is None else seconds < limit,
                            samples=[round(r.seconds, 3) for r in runs],
                            note=f"CPU {cpu:.2f} s; fastest run {min(r.seconds for r in runs):.2f} s"))
            return seconds

        # Yardsticks of the machine's state: SPEC section 9 says SQLAlchemy's import
        # alone costs about 0.2 s on this machine kind when it is not shared.
        measure("yardstick: python -c pass", [sys.executable, "-c", "pass"], None)
        measure("imagingdb --help", [IMAGINGDB, "--help"], 0.3)
        site = Site("query")
        register_datasets(site, 1000)
        args = site.cli("query", "--format", "json")
        count = len(json.loads(run(args).stdout))
        # The query must import SQLAlchemy (the design says so), so what imagingdb
        # adds is measured against that import, run by run, interleaved.
        queries, imports = [], []
        for _ in range(max(self.repeat, 9)):
            queries.append(run(args).seconds)
            imports.append(run([sys.executable, "-c", "import sqlalchemy"]).seconds)
        self.add(Figure("yardstick: import sqlalchemy", statistics.median(imports), "s",
                        samples=[round(t, 3) for t in imports]))
        seconds, over = statistics.median(queries), statistics.median(
            q - i for q, i in zip(queries, imports))
        self.add(Figure(f"query --format json ({count} datasets)", seconds, "s", target="< 0.4",
                        ok=seconds < 0.4, samples=[round(t, 3) for t in queries],
                        note=f"{over:.2f} s over the SQLAlchemy import (median of paired runs)"))

    # -- codec settings: one core, for docs/performance.md's tuning table ---

    def codec(self, acquisition: Acquisition) -> None:
        # 32 frames, both channels (pages go channel fastest), every other slice and time.
        pixels = [p for i, p in enumerate(read_pixels(ensure_data(acquisition))) if i % 8 in (0, 5)]
        mb = sum(p.nbytes for p in pixels) / 1e6

        def one_core(encode: Callable, items: Optional[list] = None) -> tuple[float, int]:
            best, size = float("inf"), 0
            for _ in range(3):
                start = time.thread_time()
                size = sum(len(encode(p)) for p in (pixels if items is None else items))
                best = min(best, time.thread_time() - start)
            return mb / best, size

        zlib_rate, zlib_size = one_core(lambda p: zlib.compress(p, 1))
        self.add(Figure("codec: zlib -1 (the limit)", zlib_rate, "MB/s", note="one core, CPU time"))
        if PNG in self.layouts:
            self.png_codec(pixels, one_core, zlib_rate, zlib_size)
        if OME_ZARR in self.layouts:
            self.ome_zarr_codec(pixels, one_core, zlib_rate, zlib_size)

    def png_codec(self, pixels: list, one_core: Callable, zlib_rate: float, zlib_size: int) -> None:
        from imagingdb.codecs.png import encode_png

        settings = [("up", "auto", 3), ("up", "isal", 3), ("up", "isal", 2), ("up", "isal", 1),
                    ("up", "rle", 1), ("up", "huffman", 1), ("sub", "isal", 3), ("none", "isal", 3),
                    ("up", "default", 1), ("up", "default", 6)]
        one_core(encode_png)  # warm-up: the first setting timed would otherwise pay ~10% more
        for png_filter, strategy, level in settings:
            options = {"png_filter": png_filter, "strategy": strategy, "level": level}
            rate, size = one_core(lambda p, options=options: encode_png(p, **options))
            default = " (default)" if (png_filter, strategy, level) == ("up", "auto", 3) else ""
            self.add(Figure(f"codec: {png_filter} + {strategy}, level {level}{default}", rate, "MB/s",
                            zlib_rate, "zlib -1, one core", rate / zlib_rate,
                            note=f"size {size / zlib_size:.3f} of zlib -1", layout=PNG))
        from imagingdb.codecs import png as frames

        deflate, frames._zlib = frames._zlib, zlib  # the same codec on the standard library's zlib
        try:
            rate, size = one_core(lambda p: encode_png(p, strategy="rle", level=1))
        finally:
            frames._zlib = deflate
        self.add(Figure("codec: up + rle, stdlib zlib", rate, "MB/s", zlib_rate,
                        "zlib -1, one core", rate / zlib_rate,
                        note=f"size {size / zlib_size:.3f} of zlib -1; without zlib-ng", layout=PNG))

    def ome_zarr_codec(self, pixels: list, one_core: Callable, zlib_rate: float,
                       zlib_size: int) -> None:
        """The chunk codecs numcodecs offers, one core each: encode, size, decode vs zlib -1's."""
        import numcodecs
        from numcodecs import Blosc, Zstd
        from numcodecs import blosc as blosc_module

        from imagingdb.codecs.blosc import BloscCodec

        streams = [zlib.compress(p, 1) for p in pixels]
        inflate_rate, _ = one_core(lambda c: zlib.decompress(c), streams)
        self.add(Figure("codec: zlib -1 inflate", inflate_rate, "MB/s",
                        note="one core, CPU time: the decode speeds' yardstick", layout=OME_ZARR))
        shuffles = {"shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
        settings: list[tuple[str, Any]] = [
            ("blosc zstd 1 shuffle (default)", None)]
        for cname, levels in (("zstd", (1, 3, 5)), ("lz4", (1, 5))):
            for level in levels:
                for shuffle in ("shuffle", "bitshuffle"):
                    if (cname, level, shuffle) != ("zstd", 1, "shuffle"):
                        settings.append((f"blosc {cname} {level} {shuffle}", Blosc(
                            cname=cname, clevel=level, shuffle=shuffles[shuffle], blocksize=0)))
        settings += [("zstd 1, raw bytes", Zstd(level=1)), ("zstd 3, raw bytes", Zstd(level=3))]
        # One core: Blosc called from the main thread would use its global thread pool.
        threads, blosc_module.use_threads = blosc_module.use_threads, False
        try:
            for name, codec in settings:
                encode = BloscCodec().encode if codec is None else codec.encode
                decoder = _blosc() if codec is None else codec
                one_core(encode)  # warm-up
                rate, size = one_core(encode)
                chunks = [bytes(encode(p)) for p in pixels]
                decode_rate, _ = one_core(lambda c, d=decoder: memoryview(d.decode(c)).cast("B"),
                                          chunks)
                self.add(Figure(f"codec: {name}", rate, "MB/s", zlib_rate, "zlib -1, one core",
                                rate / zlib_rate, layout=OME_ZARR,
                                note=f"size {size / zlib_size:.3f} of zlib -1; decode "
                                     f"{decode_rate:.0f} MB/s = {decode_rate / inflate_rate:.1f}x "
                                     f"zlib inflate; numcodecs {numcodecs.__version__}"))
        finally:
            blosc_module.use_threads = threads

    # -- upload --plan: its estimates against the real upload ----------------

    def plan(self, acquisition: Acquisition, frame_format: str) -> None:
        """`upload --plan`'s estimates (time, stored bytes, objects) against the upload that
        follows it on a fresh site, run by run; PLAN_LIMIT is the most either may differ."""
        source = ensure_data(acquisition)
        site = Site(f"plan-{frame_format}", frame_format=frame_format)
        estimates, uploads = [], []
        for _ in range(self.repeat):
            site.reset()
            estimated = json.loads(run(site.upload_args(source) + ["--plan", "--format", "json"]).stdout)
            real = run(site.upload_args(source))
            estimates.append({**estimated["rows"][0], "seconds": estimated["totals"]["seconds"],
                              "startup": estimated["totals"]["startup_seconds"]})
            uploads.append((real.seconds, mb_of(acquisition) / _summary_rate(real.stderr)))
        stored, objects = site.stored_bytes(), len(site.stored_files())
        seconds = statistics.median(e["seconds"] for e in estimates)
        wall = statistics.median(u[0] for u in uploads)
        work = statistics.median(u[1] for u in uploads)
        ratios = [e["seconds"] / u[0] for e, u in zip(estimates, uploads)]
        ratio = statistics.median(ratios)
        self.add(Figure("plan: estimated upload time", seconds, "s", wall, "the upload's wall time",
                        ratio, f"±{PLAN_LIMIT:.0%}", abs(ratio - 1) <= PLAN_LIMIT,
                        samples=[round(r, 3) for r in ratios],
                        note=f"upload: {wall:.2f} s whole command, {work:.2f} s first frame to "
                             f"commit; estimate: start-up {estimates[0]['startup']} s + "
                             f"{estimates[0]['seconds_parts']}"), frame_format)
        bytes_estimate = statistics.median(e["stored_bytes"] for e in estimates)
        ratio = bytes_estimate / stored
        self.add(Figure("plan: estimated stored bytes", bytes_estimate / 1e6, "MB", stored / 1e6,
                        "stored by the upload", ratio, f"±{PLAN_LIMIT:.0%}",
                        abs(ratio - 1) <= PLAN_LIMIT,
                        note=f"from {estimates[0]['sample_frames']} sampled frames"), frame_format)
        count = estimates[0]["stored_objects"]
        self.add(Figure("plan: estimated objects", count, "", objects, "stored by the upload",
                        count / objects, "= 1.00", count == objects), frame_format)

    # -- other backends: figures only ---------------------------------------

    def postgres(self, acquisition: Acquisition) -> None:
        sys.path.insert(0, str(REPO))
        from tests.servers import PostgresServer

        source = ensure_data(acquisition)
        with PostgresServer() as server:
            url = server.create_database("bench")
            site = Site("postgres", database_url=url, env={"BENCH_PG_PASSWORD": server.password})
            seconds = run(site.upload_args(source), env=site.env).seconds
            mb = acquisition.pixel_bytes / 1e6
            self.add(Figure("upload, local + PostgreSQL", mb / seconds, "MB/s",
                            note="figure only", samples=[seconds], layout=PNG))
            self.download(site, "download, local + PostgreSQL", compare_copy=False)

    def s3(self, acquisition: Acquisition) -> None:
        import importlib.util

        if importlib.util.find_spec("imagingdb.storage.s3") is None:
            self.add(Figure("upload/download, S3 (moto)", None, "",
                            note="not available (no s3 backend yet)"))
            return
        sys.path.insert(0, str(REPO))
        from tests.servers import MotoS3Server

        source = ensure_data(acquisition)
        env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_DEFAULT_REGION": "us-east-1"}
        os.environ.update(env)
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        with MotoS3Server() as server:
            import boto3

            boto3.client("s3", endpoint_url=server.endpoint_url).create_bucket(Bucket="bench")
            site = Site("s3", storage={"backend": "s3", "bucket": "bench",
                                       "endpoint_url": server.endpoint_url}, env=env)
            estimated = json.loads(run(site.upload_args(source) + ["--plan", "--format", "json"],
                                       env=env).stdout)["totals"]
            seconds = run(site.upload_args(source), env=env).seconds
            mb = acquisition.pixel_bytes / 1e6
            self.add(Figure("upload, S3 (moto) + SQLite", mb / seconds, "MB/s",
                            note="figure only; moto on loopback", samples=[seconds], layout=PNG))
            self.add(Figure("plan: estimated upload time, S3", estimated["seconds"], "s", seconds,
                            "the upload's wall time", estimated["seconds"] / seconds,
                            note=f"figure only; requests {estimated['requests']}, cost "
                                 f"{estimated['cost']} {estimated['currency']}"), PNG)
            self.download(site, "download, S3 (moto) + SQLite", compare_copy=False)


def _blosc() -> Any:
    """numcodecs' Blosc with the ome-zarr layout's settings (imagingdb.codecs.blosc's)."""
    from numcodecs import Blosc

    from imagingdb.codecs.blosc import CLEVEL, CNAME

    return Blosc(cname=CNAME, clevel=CLEVEL, shuffle=Blosc.SHUFFLE, blocksize=0)


@functools.lru_cache(maxsize=None)
def _layout_codec() -> Any:
    """imagingdb's ome-zarr codec (thread-safe: Blosc's contextual API off the main thread)."""
    from imagingdb.codecs.blosc import BloscCodec

    return BloscCodec()


def _blosc_encode_and_hash(pixels: Any) -> None:
    """The ome-zarr layout's work on one frame, in memory: its chunk and its sha256."""
    import hashlib

    _layout_codec().encode(pixels)
    hashlib.sha256(pixels).digest()


def _blosc_decoder() -> Callable:
    return _blosc().decode


def _has_export() -> bool:
    """True if this imagingdb has the export command (written in parallel on another branch)."""
    return run([IMAGINGDB, "export", "--help"], check=False).returncode == 0


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _tiff_write_seconds(pixels: list, path: Path) -> float:
    """tifffile writing the frames, uncompressed, into one (non-OME) TIFF: the ome-tiff limit."""
    import tifffile

    start = time.perf_counter()
    with tifffile.TiffWriter(path) as tif:
        for frame in pixels:
            tif.write(frame, contiguous=True)
    seconds = time.perf_counter() - start
    path.unlink()
    return seconds


def register_datasets(site: Site, count: int) -> None:
    """``count`` frame datasets straight into the database (an upload each would take hours)."""
    from datetime import datetime, timedelta

    import sqlalchemy as sa

    import imagingdb
    from imagingdb import db as dbq

    with imagingdb.connect(site.config) as database:
        database.init()
        start = datetime(2024, 1, 1, 9, 0, 0)
        with database.site.connection(write=True) as conn:
            for n in range(count):
                when = start + timedelta(hours=7 * n)
                pk = conn.execute(sa.insert(dbq.data_set).values(
                    dataset_serial=f"ML-{when:%Y-%m-%d-%H-%M-%S}-{n % 10000:04d}",
                    description=f"timelapse {n} of HEK293 cells, 2 channels",
                    microscope=f"scope{n % 4}", frames=True, date_time=when,
                ).returning(dbq.data_set.c.id)).scalar_one()
                conn.execute(sa.insert(dbq.frames_global).values(
                    storage_dir=f"raw_frames/x{n}", nbr_frames=128, im_width=1024,
                    im_height=1024, nbr_slices=8, nbr_channels=2, nbr_timepoints=8,
                    nbr_positions=1, im_colors=1, bit_depth="uint16",
                    metadata_json={"Prefix": f"run{n}"}, dataset_id=pk))


def _summary_rate(stderr: str) -> float:
    """MB/s from the upload's summary line: 'Uploaded ID: N frame(s), X MB in S s (F frames/s, R MB/s)'."""
    import re

    match = re.search(r"^Uploaded .*, ([\d.]+) ([KMG]?B)/s\)$", stderr, re.M)
    if match is None:
        raise RuntimeError(f"no summary line in the upload's output:\n{stderr[-2000:]}")
    scale = {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}[match.group(2)]
    return float(match.group(1)) * scale


def mb_of(acquisition: Acquisition) -> float:
    return acquisition.pixel_bytes / 1e6


def paired(name: str, mb: float, seconds: list[float], limit_seconds: list[float],
           limit_name: str, target: str, note: str = "") -> Figure:
    """A throughput figure from runs paired with runs of its limit (run i next to limit i).

    The ratio is the median of the pairs' ratios: on a shared machine the
    load drifts, and a run is best compared with the limit measured beside it.
    """
    ratios = [limit / value for value, limit in zip(seconds, limit_seconds)]
    ratio = statistics.median(ratios)
    wanted = float(target.split()[-1]) if target else None
    return Figure(name, mb / statistics.median(seconds), "MB/s",
                  mb / statistics.median(limit_seconds), limit_name, ratio, target,
                  None if wanted is None else ratio >= wanted, note,
                  samples=[round(r, 3) for r in ratios])


# ----------------------------------------------------------------- PNG parts


def idat_of(data: bytes) -> bytes:
    """The concatenated IDAT bodies of a PNG (its zlib stream)."""
    position, parts = 8, []
    while position < len(data):
        length, tag = struct.unpack_from(">I4s", data, position)
        if tag == b"IDAT":
            parts.append(data[position + 8:position + 8 + length])
        position += 12 + length
    return b"".join(parts)


def png_raw_size(data: bytes) -> int:
    width, height, depth, color = struct.unpack_from(">IIBB", data, 16)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    return height * (width * channels * depth // 8 + 1)


# ----------------------------------------------------------------- reporting


def fmt(value: Optional[float], unit: str) -> str:
    if value is None:
        return "-"
    digits = 2 if unit == "s" or value < 10 else 0
    return f"{value:.{digits}f} {unit}".strip()


def format_row(f: Figure) -> str:
    verdict = "" if f.ok is None else ("ok" if f.ok else "MISSED")
    ratio = "-" if f.ratio is None else f"{f.ratio:.2f}"
    limit = "-" if f.limit is None else f"{fmt(f.limit, f.unit)} ({f.limit_name})"
    return (f"{f.name:<38} {f.layout:<8} {fmt(f.value, f.unit):>11}  {limit:<36} {ratio:>5}  "
            f"{f.target:<8} {verdict:<6} {f.note}")


def side_by_side(figures: list[Figure]) -> list[Figure]:
    """The figures grouped by name, in the order each name first came: every layout's row of
    a figure one under the other (the order they were measured in is bench.json's)."""
    order: dict[str, int] = {}
    for figure in figures:
        order.setdefault(figure.name, len(order))
    return sorted(figures, key=lambda figure: order[figure.name])


def report(bench: Bench, started: float) -> None:
    header = (f"{'figure':<38} {'layout':<8} {'value':>11}  {'limit':<36} {'ratio':>5}  "
              f"{'target':<8} {'':<6} notes")
    print(header)
    print("-" * len(header))
    for figure in side_by_side(bench.figures):
        print(format_row(figure))
    machine = (f"{platform.machine()}, {CORES} cores, Python {platform.python_version()}, "
               f"median of {bench.repeat} run(s), {time.time() - started:.0f} s")
    print(f"\n{machine}")
    out = BUILD / "bench.json"
    out.write_text(json.dumps({
        "machine": machine,
        "layouts": list(bench.layouts),
        "figures": [figure.__dict__ for figure in bench.figures],
    }, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


STEPS = ("upload", "read", "download", "rss", "export", "startup", "codec", "plan", "qc",
         "postgres",
         "s3")


def _reason(exc: Exception) -> str:
    """Why a figure was not measured, on one line: the command's own error when it failed."""
    text = str(exc)
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    if errors:
        return errors[-1][:200]
    return " ".join(f"{type(exc).__name__}: {text}".split())[:200]


def compile_bytecode() -> None:
    """Write imagingdb's bytecode, as installing a package does.

    An editable install compiles on first import, unless the environment sets
    PYTHONDONTWRITEBYTECODE (some CI and agent shells do): then every run
    would compile imagingdb's ~30 modules again (~0.1 s), which no installed
    copy pays. compileall writes the .pyc files whatever that variable says.
    """
    import compileall

    for folder in (REPO / "imagingdb", *sorted((REPO / "plugins").glob("*/imagingdb_*"))):
        compileall.compile_dir(folder, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median kept)")
    parser.add_argument("--only", nargs="*", choices=STEPS, help="measure only these")
    parser.add_argument("--layout", choices=(*LAYOUTS, "both"), default="both",
                        help="the frame layouts measured (default: both, side by side)")
    options = parser.parse_args()
    steps = set(options.only or STEPS)
    layouts = LAYOUTS if options.layout == "both" else (options.layout,)
    started = time.time()
    compile_bytecode()
    bench = Bench(options.repeat, layouts)
    if steps & {"upload", "read", "download", "rss", "export"}:
        # png first: the read limit inflates the streams of its objects.
        sites = [bench.upload_local(BASE, layout) for layout in layouts]
        if "read" in steps:
            for site in sites:
                bench.read(site, BASE)
        if "download" in steps:
            for site in sites:
                try:
                    bench.download(site)
                except RuntimeError as exc:  # a layout this imagingdb cannot download yet
                    bench.add(Figure("download, local", None, "", note=f"not measured: {_reason(exc)}",
                                     layout=site.layout))
        if "export" in steps:
            for site in sites:
                bench.export(site, BASE)
        if "rss" in steps:
            for layout in layouts:
                bench.upload_local(DOUBLE, layout)
    if "qc" in steps:
        for layout in layouts:
            bench.qc(BASE, layout)
    if "startup" in steps:
        bench.startup()
    if "codec" in steps:
        bench.codec(BASE)
    if "plan" in steps:
        for layout in layouts:
            bench.plan(BASE, layout)
    for step, measure in (("postgres", bench.postgres), ("s3", bench.s3)):
        if step in steps:
            try:
                measure(BASE)
            except Exception as exc:  # noqa: BLE001 - figures only: say why, keep the table
                bench.add(Figure(f"{step}: not measured", None, "", note=_reason(exc)))
    report(bench, started)


if __name__ == "__main__":
    main()
