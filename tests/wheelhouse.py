"""Wheels of distributions installed in the test environment, for pip to install offline.

``imagingdb plugins install`` is tested with ``--no-index --find-links``: the
plugin's dependencies (ndtiff, dask...) come from a folder of wheels made here
from their installed files, so the suite never needs the package index. Only
pure-Python distributions can be repacked this way (a wheel of the same
files, its RECORD written afresh); compiled ones (numpy...) are what the
zipapp or the environment already provides.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from email.parser import Parser
from importlib.metadata import distribution
from pathlib import Path
from typing import Iterable

from packaging.requirements import Requirement

# Files an installer writes into a dist-info folder; a wheel does not carry them.
INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(name: str, provided: Iterable[str]) -> list[str]:
    """Every installed distribution ``name`` needs, directly or not, except ``provided``."""
    provided = {canonical(n) for n in provided}
    seen: dict[str, str] = {}
    todo = _requirements(name)
    while todo:
        dependency = todo.pop()
        key = canonical(dependency)
        if key in seen or key in provided:
            continue
        seen[key] = distribution(dependency).metadata["Name"]
        todo += _requirements(dependency)
    return sorted(seen.values(), key=canonical)


def _requirements(name: str) -> list[str]:
    needed = [Requirement(line) for line in distribution(name).requires or []]
    return [r.name for r in needed if r.marker is None or r.marker.evaluate({"extra": ""})]


def wheel_from_installed(name: str, dest: Path) -> Path:
    """A wheel of the installed pure-Python distribution ``name``, written into ``dest``."""
    dist = distribution(name)
    info = Parser().parsestr(dist.read_text("WHEEL") or "")
    tags = info.get_all("Tag") or []
    if info.get("Root-Is-Purelib", "").lower() != "true" or not all(t.endswith("-none-any") for t in tags):
        raise ValueError(f"{name} is not a pure-Python distribution: {tags}")
    project = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    pythons = ".".join(sorted({tag.split("-")[0] for tag in tags}))
    wheel = dest / f"{project}-{dist.version}-{pythons}-none-any.whl"
    dest.mkdir(parents=True, exist_ok=True)
    info_dir = next(f.parts[0] for f in dist.files or [] if f.parts[0].endswith(".dist-info"))
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dist.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts:
                continue  # console scripts (pip makes them anew) and byte code
            if file.parts[0].endswith(".dist-info") and file.name in INSTALLER_FILES:
                continue
            data = Path(dist.locate_file(file)).read_bytes()
            archive.writestr(file.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{file.as_posix()},sha256={digest},{len(data)}")
        record_name = f"{info_dir}/RECORD"
        archive.writestr(record_name, "\n".join([*record, f"{record_name},,"]) + "\n")
    return wheel
