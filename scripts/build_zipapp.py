"""Build the single-file executable: ``make zipapp`` -> ``dist/imagingdb``.

The project and the exact versions pinned in ``requirements/zipapp.lock`` are
installed with ``pip --target --no-deps`` (nothing is resolved, so builds are
reproducible), the pip and setuptools wheels of ``requirements/zipapp-tools.lock``
are added whole (``imagingdb plugins install`` runs pip from them), files no
command needs are pruned, and shiv packs the result. The zipapp runs with the
machine's ``python3`` of the same minor version and platform as the build
(numpy is compiled), isolated from that Python's own packages: its shebang runs
``python3 -I -S``.

Builds are cached in ``build/zipapp-cache/<key>/``, the key a hash of every
input (sources, locks, this script, the Python and shiv versions): the test
suite and ``make zipapp`` share one build while nothing changed.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Optional

from imagingdb.onefile import BUILT_FOR
from imagingdb.plugin_install import BUNDLED_WHEELS_DIR

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "zipapp-cache"
LOCK = ROOT / "requirements" / "zipapp.lock"
TOOLS_LOCK = ROOT / "requirements" / "zipapp-tools.lock"
# -I: no PYTHON* variables, no user site-packages; -S: no system site-packages (nor
# their .pth files): the executable depends on nothing but the standard library.
SHEBANG = "/usr/bin/env -S python3 -I -S"
ENTRY_POINT = "imagingdb.onefile:main"
PRUNE = (
    "bin",  # the dependencies' console scripts
    "**/__pycache__",
    "**/*.pyi",  # type stubs
    "**/tests",  # test suites (numpy, jsonschema)
    "numpy/f2py",  # Fortran wrapper generator
    "numpy/distutils",
    "numpy/_pyinstaller",
    "*.dist-info/direct_url.json",  # where the build found the project: a temporary folder
)
# Extension modules built with their debug information (numcodecs' Blosc, zstd, lz4:
# 36 MB with it, 3.4 MB without). `strip --strip-debug` removes only that: the code, and
# the symbols Python looks up, stay as built. Where no `strip` is found, they go in whole.
STRIP_DEBUG = ("numcodecs/*.so", "imagingdb/*.so")
# botocore ships a model for every AWS service; the S3 backend needs S3, and the
# credential chain (assume-role, SSO, console login profiles) the other four.
BOTOCORE_SERVICES = {"s3", "sts", "sso", "sso-oidc", "signin"}
# What the project's wheel is built from (imagingdb/schema.sql and config.example.yaml are
# symlinks: copied as files).
PROJECT_FILES = ("pyproject.toml", "setup.py", "README.md", "imagingdb")
# What decides the executable's behaviour (README.md only feeds its metadata).
SOURCES = ("pyproject.toml", "setup.py", "imagingdb", "requirements", "scripts/build_zipapp.py")


def build_key() -> str:
    """A hash of every input of a build: equal keys, equal executables."""
    digest = hashlib.sha256(f"{sys.version_info[:2]} {platform.machine()} {sys.platform} "
                            f"shiv {version('shiv')} {compiler()}".encode())
    for name in SOURCES:
        path = ROOT / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            # an extension built in place by the editable install is an output, not an input
            if (file.is_file() and "__pycache__" not in file.parts
                    and file.suffix not in (".so", ".pyd")):
                digest.update(file.relative_to(ROOT).as_posix().encode() + b"\0")
                digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def compiler() -> str:
    """What compiles the QC kernel (imagingdb/_qc.c): the C compiler's version and flags."""
    import sysconfig

    command = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    try:
        found = subprocess.run([*command, "--version"], capture_output=True, text=True,
                               timeout=30).stdout.splitlines()[:1]
    except (OSError, subprocess.SubprocessError):
        found = ["no C compiler"]
    return f"{' '.join(found)} {os.environ.get('CFLAGS', '')}"


def cached_build(cache: Path = CACHE) -> Path:
    """The executable for the current inputs, built unless the cache has it."""
    key = build_key()
    built = cache / key / "imagingdb"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers: one builds, the others wait
        if not built.exists():
            for stale in cache.iterdir():
                if stale.is_dir():
                    shutil.rmtree(stale)
            started = time.monotonic()
            build(built, cache / key / "staging")
            print(f"built {built} ({built.stat().st_size / 1e6:.1f} MB) "
                  f"in {time.monotonic() - started:.0f} s")
    return built


def build(output: Path, staging: Path) -> None:
    """Build the executable at ``output``; ``staging`` is a scratch folder, emptied first."""
    shutil.rmtree(staging, ignore_errors=True)
    site_packages = staging / "site-packages"
    install(site_packages)
    print(f"pruned {prune(site_packages)} file(s) no command needs")
    print(f"stripped debug information: {strip_debug_info(site_packages) / 1e6:.1f} MB less")
    partial = staging / output.name
    subprocess.run(
        [sys.executable, "-m", "shiv", "--site-packages", str(site_packages), "--reproducible",
         "--entry-point", ENTRY_POINT, "--python", SHEBANG, "--output-file", str(partial)],
        check=True,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(partial, output)  # never a half-written executable at the final path
    shutil.rmtree(staging)


def pip(*args: str, env: Optional[dict[str, str]] = None) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"],
                   check=True, env=env)


def install(site_packages: Path) -> None:
    pip("install", "--target", str(site_packages), "--no-deps", "--only-binary=:all:",
        "--no-compile", "--requirement", str(LOCK))
    with tempfile.TemporaryDirectory() as tmp:
        # A copy, so setuptools' in-tree build/ never leaks stale files into the wheel.
        source = Path(tmp) / "imagingdb"
        source.mkdir()
        for name in PROJECT_FILES:
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, source / name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
            else:
                shutil.copy(path, source / name)
        # the QC kernel's debug information and build ID otherwise name the temporary folder
        flags = f"{os.environ.get('CFLAGS', '')} -ffile-prefix-map={tmp}=/imagingdb".strip()
        pip("install", "--target", str(site_packages), "--no-deps", "--no-build-isolation",
            "--no-compile", "--upgrade", str(source), env={**os.environ, "CFLAGS": flags})
    pip("download", "--dest", str(site_packages / BUNDLED_WHEELS_DIR), "--no-deps",
        "--only-binary=:all:", "--requirement", str(TOOLS_LOCK))
    record_interpreter(site_packages / "imagingdb" / BUILT_FOR)


def record_interpreter(path: Path) -> None:
    """What the executable needs to run (imagingdb/onefile.py checks it at start): this
    Python's minor version and platform, for which the compiled packages were installed."""
    import json
    import os

    path.write_text(json.dumps({
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "platform": sys.platform, "machine": os.uname().machine}) + "\n")


def prune(site_packages: Path) -> int:
    """Drop what no command imports; returns how many files went.

    Every start reads the archive's table of contents twice (zipimport, then
    shiv's bootstrap), so each file left out makes every run faster.
    """
    doomed = [path for pattern in PRUNE for path in site_packages.glob(pattern)]
    data = site_packages / "botocore" / "data"
    doomed += [path for path in data.iterdir() if path.is_dir() and path.name not in BOTOCORE_SERVICES]
    removed = 0
    for path in doomed:
        if path.is_dir():
            removed += sum(1 for p in path.rglob("*") if p.is_file())
            shutil.rmtree(path)
        elif path.exists():
            removed += 1
            path.unlink()
    for record in site_packages.glob("*.dist-info/RECORD"):
        _keep_only_present(record, site_packages)
    return removed


def strip_debug_info(site_packages: Path) -> int:
    """Strip the debug information of the STRIP_DEBUG modules, keeping their RECORD lines true;
    returns the bytes saved (0 without a `strip` command)."""
    tool = shutil.which("strip")
    if tool is None:
        print("no `strip` command: extension modules keep their debug information")
        return 0
    saved, renamed = 0, {}
    for pattern in STRIP_DEBUG:
        for path in site_packages.glob(pattern):
            before = path.stat().st_size
            subprocess.run([tool, "--strip-debug", str(path)], check=True)
            saved += before - path.stat().st_size
            renamed[path.relative_to(site_packages).as_posix()] = path
    for record in site_packages.glob("*.dist-info/RECORD"):
        lines = record.read_text(encoding="utf-8").splitlines()
        fixed = [_record_line(name, renamed[name]) if (name := line.rsplit(",", 2)[0]) in renamed
                 else line for line in lines]
        if fixed != lines:
            record.write_text("\n".join(fixed) + "\n", encoding="utf-8")
    return saved


def _record_line(name: str, path: Path) -> str:
    """A wheel RECORD line for the file at ``path``: name, urlsafe-base64 sha256, size."""
    import base64

    data = path.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _keep_only_present(record: Path, site_packages: Path) -> None:
    """Drop the RECORD lines of files pruned or outside site-packages (the scripts, whose
    first line names the building machine's Python): the same inputs, the same bytes."""
    lines = record.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines
            if not line.startswith("../") and (site_packages / line.rsplit(",", 2)[0]).exists()]
    record.write_text("\n".join(kept) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "dist" / "imagingdb")
    args = parser.parse_args()
    built = cached_build()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial = args.output.with_name(args.output.name + ".partial")
    shutil.copy2(built, partial)
    partial.replace(args.output)
    print(f"{args.output}: {args.output.stat().st_size / 1e6:.1f} MB, build {built.parent.name}")


if __name__ == "__main__":
    main()
