"""make bench: the figures of SPEC section 9, each measured in the same run as its limit.

Run from the repository root: ``python bench/run.py [--repeat N] [--only NAME...]``.
Data is generated once and cached under build/bench/data (a Micro-Manager
OME-TIFF of 128 frames of 1024x1024 uint16, and one of 256 frames, pixels
from :class:`imagingdb.testing.SCMOSScene`: see docs/performance.md for the
camera and sample model). Every imagingdb figure comes from the real
``imagingdb`` command run as a subprocess (or, for ``read()``, a subprocess
calling the Python API), timed from outside; each is measured ``--repeat``
times and the median is kept. Prints a table and writes build/bench/bench.json.

Not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
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
    return Run(seconds, 0.0, stdout.decode(), stderr, usage.ru_utime + usage.ru_stime)


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
                 storage: Optional[dict] = None, env: Optional[dict] = None):
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
        (self.folder / "upload.yaml").write_text(yaml.safe_dump({
            "upload_type": "frames", "frames_format": "ome_tiff", "microscope": "bench scope",
        }))

    def cli(self, *args: str) -> list[str]:
        return [IMAGINGDB, "--site-config", str(self.config), *args]

    def upload_args(self, source: Path) -> list[str]:
        csv_file = self.folder / "upload.csv"
        csv_file.write_text(f"dataset_id,file_name,description\n{DATASET_ID},{source},bench\n")
        return self.cli("upload", "--csv", str(csv_file), "--config", str(self.folder / "upload.yaml"))

    def reset(self) -> None:
        """Forget every dataset: a fresh database file and an empty storage folder."""
        (self.folder / "db.sqlite").unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            (self.folder / f"db.sqlite{suffix}").unlink(missing_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def frames_folder(self) -> Path:
        return self.root / "raw_frames" / DATASET_ID


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


class Bench:
    def __init__(self, repeat: int):
        self.repeat = repeat
        self.figures: list[Figure] = []
        self.peak_rss: dict[str, float] = {}

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        print(f"  {format_row(figure)}", file=sys.stderr, flush=True)

    # -- upload, size, RSS --------------------------------------------------

    def upload_local(self, acquisition: Acquisition) -> Site:
        """Upload runs, each followed by a run of the limit: both see the same machine load."""
        source = ensure_data(acquisition)
        site = Site(f"upload-{acquisition.name}")
        pixels = read_pixels(source) if acquisition is BASE else None
        runs, limits = [], []
        for _ in range(self.repeat):
            site.reset()
            runs.append(run_with_rss(site.upload_args(source)))
            if pixels is not None:
                limits.append(on_all_cores(lambda a: zlib.compress(a, 1), pixels))
        del pixels
        rss = max(r.max_rss_mb for r in runs)
        mb = acquisition.pixel_bytes / 1e6
        if acquisition is BASE:
            seconds = [r.seconds for r in runs]
            limit_seconds = [t for t, _ in limits]
            zlib_bytes = sum(len(c) for c in limits[0][1])
            stored = sum(p.stat().st_size for p in site.frames_folder().iterdir())
            cpu = statistics.median(r.cpu_seconds for r in runs)
            self.add(paired("upload, local + SQLite", mb, seconds, limit_seconds,
                            f"zlib -1 on {CORES} cores", ">= 1.0",
                            note=f"whole command: {statistics.median(seconds):.2f} s wall, "
                                 f"{cpu:.2f} s CPU; {acquisition.frames} frames, {mb:.0f} MB"))
            pipeline = [mb / _summary_rate(r.stderr) for r in runs]
            self.add(paired("  same, first frame to commit", mb, pipeline, limit_seconds,
                            f"zlib -1 on {CORES} cores", "",
                            note="rate in the upload's own summary line "
                                 "(no start-up, no metadata pass)"))
            self.add(Figure("stored bytes", stored / 1e6, "MB", zlib_bytes / 1e6,
                            "zlib -1 output", stored / zlib_bytes, "<= 0.85",
                            stored / zlib_bytes <= 0.85,
                            note=f"raw/stored = {acquisition.pixel_bytes / stored:.2f}"))
        self.add(Figure(f"peak RSS, upload {acquisition.frames} frames", rss, "MB",
                        target="<= 200", ok=rss <= 200, samples=[r.max_rss_mb for r in runs],
                        note=f"{mb:.0f} MB file; highest of {len(runs)} run(s)"))
        self.peak_rss[acquisition.name] = rss
        if len(self.peak_rss) == 2:
            small, large = self.peak_rss[BASE.name], self.peak_rss[DOUBLE.name]
            self.add(Figure("peak RSS growth, file x2", large - small, "MB", small, "RSS at x1",
                            large / small, "flat", large / small <= 1.1,
                            note="ratio RSS(x2) / RSS(x1); flat = at most 1.1"))
        return site

    # -- read() --------------------------------------------------------------

    def read(self, site: Site, acquisition: Acquisition) -> None:
        script = (
            "import sys, time, imagingdb, numpy as np\n"
            "db = imagingdb.connect(sys.argv[1]); ds = db.dataset(sys.argv[2])\n"
            "start = time.perf_counter(); array = ds.read(); seconds = time.perf_counter() - start\n"
            "assert array.shape[-2:] == (1024, 1024) and array.any()\n"
            "empty = np.empty(array.shape, array.dtype); start = time.perf_counter(); empty[...] = 0\n"
            "print(seconds, time.perf_counter() - start)\n"
        )
        pngs = [p.read_bytes() for p in sorted(site.frames_folder().iterdir())]
        streams = list(zip((idat_of(data) for data in pngs), (png_raw_size(d) for d in pngs)))
        seconds, limit_seconds, faults = [], [], []
        for _ in range(self.repeat):
            read_seconds, fault_seconds = map(float, run(
                [sys.executable, "-c", script, str(site.config), DATASET_ID]).stdout.split())
            seconds.append(read_seconds)
            faults.append(fault_seconds)
            limit_seconds.append(on_all_cores(
                lambda item: zlib.decompress(item[0], bufsize=item[1]), streams)[0])
        self.add(paired("read() whole dataset", acquisition.pixel_bytes / 1e6, seconds,
                        limit_seconds, f"zlib inflate on {CORES} cores", ">= 0.8",
                        note="ds.read() in a fresh process, imports excluded; touching its new "
                             f"256 MB array costs ~{statistics.median(faults):.2f} s here (timed on a "
                             "second array; see docs/performance.md)"))

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
                                                                 zip(full, meta)]))
            return
        stored = sum(p.stat().st_size for p in site.frames_folder().iterdir())
        copy = statistics.median(copies)
        self.add(Figure(label, stored / 1e6 / net, "MB/s", stored / 1e6 / copy,
                        "cp -r of the objects", copy / net, ">= 1.0", copy / net >= 1.0,
                        note=f"{note}; cp -r {copy:.3f} s; {stored / 1e6:.0f} MB of PNG",
                        samples=[round(f - m, 3) for f, m in zip(full, meta)]))

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
        from imagingdb.codecs.png import encode_png

        # 32 frames, both channels (pages go channel fastest), every other slice and time.
        pixels = [p for i, p in enumerate(read_pixels(ensure_data(acquisition))) if i % 8 in (0, 5)]
        mb = sum(p.nbytes for p in pixels) / 1e6

        def one_core(encode: Callable) -> tuple[float, int]:
            best, size = float("inf"), 0
            for _ in range(3):
                start = time.thread_time()
                size = sum(len(encode(p)) for p in pixels)
                best = min(best, time.thread_time() - start)
            return mb / best, size

        zlib_rate, zlib_size = one_core(lambda p: zlib.compress(p, 1))
        self.add(Figure("codec: zlib -1 (the limit)", zlib_rate, "MB/s", note="one core, CPU time"))
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
                            note=f"size {size / zlib_size:.3f} of zlib -1"))
        from imagingdb.codecs import png as frames

        deflate, frames._zlib = frames._zlib, zlib  # the same codec on the standard library's zlib
        try:
            rate, size = one_core(lambda p: encode_png(p, strategy="rle", level=1))
        finally:
            frames._zlib = deflate
        self.add(Figure("codec: up + rle, stdlib zlib", rate, "MB/s", zlib_rate,
                        "zlib -1, one core", rate / zlib_rate,
                        note=f"size {size / zlib_size:.3f} of zlib -1; without zlib-ng"))

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
                            note="figure only", samples=[seconds]))
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
            seconds = run(site.upload_args(source), env=env).seconds
            mb = acquisition.pixel_bytes / 1e6
            self.add(Figure("upload, S3 (moto) + SQLite", mb / seconds, "MB/s",
                            note="figure only; moto on loopback", samples=[seconds]))
            self.download(site, "download, S3 (moto) + SQLite", compare_copy=False)


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
    return (f"{f.name:<36} {fmt(f.value, f.unit):>11}  {limit:<36} {ratio:>5}  "
            f"{f.target:<8} {verdict:<6} {f.note}")


def report(bench: Bench, started: float) -> None:
    header = (f"{'figure':<36} {'value':>11}  {'limit':<36} {'ratio':>5}  {'target':<8} "
              f"{'':<6} notes")
    print(header)
    print("-" * len(header))
    for figure in bench.figures:
        print(format_row(figure))
    machine = (f"{platform.machine()}, {CORES} cores, Python {platform.python_version()}, "
               f"median of {bench.repeat} run(s), {time.time() - started:.0f} s")
    print(f"\n{machine}")
    out = BUILD / "bench.json"
    out.write_text(json.dumps({
        "machine": machine,
        "figures": [figure.__dict__ for figure in bench.figures],
    }, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


STEPS = ("upload", "read", "download", "rss", "startup", "codec", "postgres", "s3")


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
    options = parser.parse_args()
    steps = set(options.only or STEPS)
    started = time.time()
    compile_bytecode()
    bench = Bench(options.repeat)
    if steps & {"upload", "read", "download", "rss"}:
        site = bench.upload_local(BASE)
        if "read" in steps:
            bench.read(site, BASE)
        if "download" in steps:
            bench.download(site)
        if "rss" in steps:
            bench.upload_local(DOUBLE)
    if "startup" in steps:
        bench.startup()
    if "codec" in steps:
        bench.codec(BASE)
    for step, measure in (("postgres", bench.postgres), ("s3", bench.s3)):
        if step in steps:
            try:
                measure(BASE)
            except Exception as exc:  # noqa: BLE001 - figures only: say why, keep the table
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:120]
                bench.add(Figure(f"{step}: not measured", None, "", note=reason))
    report(bench, started)


if __name__ == "__main__":
    main()
