"""Install and uninstall third-party plugins in the plugins folder.

``imagingdb plugins install`` runs pip twice. First pip resolves the request
(``--dry-run --report``) with what imagingdb already runs on -- the packages of
its Python environment, or those bundled in the single-file executable -- and
what the plugins folder holds, all counted as installed. Then exactly the
missing distributions go into the plugins folder (``--target --no-deps``). So a
plugin never brings a second numpy next to imagingdb's, and one that needs
another version of a package imagingdb runs on is refused before anything is
written.

pip is the wheel the single-file executable carries (``make zipapp`` bundles it
with a setuptools wheel, offered to pip so a plugin's source folder builds with
no network), else the environment's own. Uninstalling removes the files a
distribution's ``RECORD`` lists, and nothing outside the plugins folder; the
dependencies it brought that nothing else installed needs are named, and removed
too when asked.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from .errors import InputError, WorkError
from .plugins import ENTRY_POINT_GROUP, plugins_dir

#: folder, beside the bundled packages, holding the pip and setuptools wheels of the zipapp
BUNDLED_WHEELS_DIR = "imagingdb-bundled-wheels"

# Runs pip as ``python -m pip`` would, with extra folders on sys.path first: pip then
# counts the distributions found there as installed.
_RUN_PIP = ("import runpy, sys; sys.path[0:0] = {paths!r}; "
            "runpy.run_module('pip', run_name='__main__', alter_sys=True)")


@dataclass(frozen=True)
class PipOptions:
    """Where pip may look for packages (the options of ``imagingdb plugins install``)."""

    find_links: Sequence[str] = ()
    index_url: Optional[str] = None
    no_index: bool = False
    no_build_isolation: bool = False

    def args(self) -> list[str]:
        args = [f"--find-links={link}" for link in self.find_links]
        if self.index_url:
            args.append(f"--index-url={self.index_url}")
        if self.no_index:
            args.append("--no-index")
        if self.no_build_isolation:
            args.append("--no-build-isolation")
        return args


@dataclass(frozen=True)
class Distribution:
    """A distribution in the plugins folder, and whether it is an imagingdb plugin."""

    name: str
    version: str
    is_plugin: bool


def canonical_name(name: str) -> str:
    """The PEP 503 form of a project name, to compare names as pip does."""
    return re.sub(r"[-_.]+", "-", name).lower()


def bundled_wheels() -> Optional[Path]:
    """The wheels folder of the single-file executable, or None in a normal install."""
    folder = Path(__file__).resolve().parent.parent / BUNDLED_WHEELS_DIR
    return folder if folder.is_dir() else None


def install(requirements: Sequence[str], options: PipOptions = PipOptions(),
            folder: Optional[Path] = None) -> list[Distribution]:
    """Install ``requirements`` (names, paths, wheels) and what they need into the plugins folder.

    Returns what was installed; an empty list when everything was there already.
    """
    folder = (folder or plugins_dir()).expanduser().absolute()
    wanted = _resolve(requirements, options, folder)
    if not wanted:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    for item in wanted:  # an upgrade: pip --target would leave the old dist-info behind
        for info, old in _distributions(folder, item["metadata"]["name"]):
            _remove(info, old, folder)
    specs = [_install_spec(item) for item in wanted]
    _run_pip(["install", "--quiet", "--target", str(folder), "--no-deps", "--upgrade",
              *_bundled_find_links(), *options.args(), *specs], folder,
             failure=WorkError("pip could not install into the plugins folder "
                               f"{folder} (its messages are above)"))
    names = {canonical_name(item["metadata"]["name"]) for item in wanted}
    return [dist for dist in installed(folder) if canonical_name(dist.name) in names]


@dataclass(frozen=True)
class UninstallReport:
    """What ``imagingdb plugins uninstall`` removed, and what the removed ones needed."""

    removed: list[Distribution]
    #: their dependencies in the plugins folder that nothing installed needs any more:
    #: removed too with ``with_unused_dependencies``, else left where they are
    unused: list[Distribution]
    unused_removed: bool
    #: their dependencies that other distributions still need, each with those (by name)
    shared: list[tuple[Distribution, list[str]]]


def uninstall(names: Sequence[str], with_unused_dependencies: bool = False,
              folder: Optional[Path] = None) -> UninstallReport:
    """Remove the distributions ``names`` from the plugins folder (all there, or an
    InputError and nothing removed), and say which of their dependencies it leaves."""
    folder = (folder or plugins_dir()).expanduser().absolute()
    versions: dict[str, list[tuple[Path, object]]] = {}  # an interrupted upgrade leaves two
    for info, dist in _metadata_folders(folder).items():
        versions.setdefault(canonical_name(dist.metadata["Name"] or ""), []).append((info, dist))
    present = {key: found[-1] for key, found in versions.items()}
    for name in names:
        if canonical_name(name) not in present:
            there = ", ".join(d.name for d in installed(folder)) or "nothing"
            raise InputError(f"no distribution {name!r} in the plugins folder {folder} "
                             f"(installed there: {there})")
    targets = {canonical_name(name) for name in names}
    # A plugin among the dependencies was wanted for itself too: it stays, and what it
    # needs is its own business, not these ones' dependencies.
    plugin_keys = {key for key, (_, dist) in present.items() if _describe(dist).is_plugin}
    asked = [need for key in targets for need in _requirements(present[key][1])]
    dependencies = _reachable(asked, present, through=set(present) - plugin_keys) - targets
    staying = [key for key in present if key not in targets | dependencies]
    others = [need for key in staying for need in _requirements(present[key][1])]
    kept = _reachable(others + _base_requirements(folder), present)
    unused = sorted(dependencies - kept)
    users = {key: sorted(present[user][1].metadata["Name"] for user in present
                         if user not in targets and user not in unused and user != key
                         and key in {name for name, _ in _requirements(present[user][1])})
             for key in dependencies & kept}
    shared = [(_describe(present[key][1]), users[key] or ["imagingdb's own environment"])
              for key in sorted(users)]
    report = UninstallReport(removed=[_describe(present[key][1]) for key in sorted(targets)],
                             unused=[_describe(present[key][1]) for key in unused],
                             unused_removed=with_unused_dependencies, shared=shared)
    for key in sorted(targets) + (unused if with_unused_dependencies else []):
        for info, dist in versions[key]:
            _remove(info, dist, folder)
    return report


#: a requirement's name and the extras it asks of it, e.g. ``dask[array]>=2022``
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def _requirements(dist, extras: frozenset = frozenset()) -> list[tuple[str, frozenset]]:
    """What ``dist`` requires, ``extras`` of it asked for: (canonical name, the extras asked
    of it) each. A requirement of an extra not asked for is left out (tifffile's optional
    ones are no need); other markers count as met (counting too much only keeps one)."""
    found = []
    for requirement in dist.requires or ():
        spec, _, marker = requirement.partition(";")
        match = _REQUIREMENT.match(spec)
        if match is None:
            continue
        if "extra" in marker and not {canonical_name(e) for e in _EXTRA_MARKER.findall(marker)} & extras:
            continue
        of_it = frozenset(canonical_name(e) for e in (match[2] or "").split(",") if e.strip())
        found.append((canonical_name(match[1]), of_it))
    return found


def _reachable(asked: list[tuple[str, frozenset]], present: dict,
               through: Optional[set[str]] = None) -> set[str]:
    """The distributions of the plugins folder that the requirements ``asked`` need,
    transitively, extras followed (only through the distributions ``through``, if given)."""
    extras: dict[str, frozenset] = {}
    todo = list(asked)
    while todo:
        name, of_it = todo.pop()
        if name not in present or (through is not None and name not in through):
            continue
        before = extras.get(name)
        if before is not None and of_it <= before:
            continue
        extras[name] = (before or frozenset()) | of_it
        todo.extend(_requirements(present[name][1], extras[name]))
    return set(extras)


def _base_requirements(folder: Path) -> list[tuple[str, frozenset]]:
    """What each distribution imagingdb runs on (not the plugins folder's) requires."""
    from importlib.metadata import distributions

    paths = [p for p in sys.path if Path(p or ".").absolute() != folder]
    return [need for dist in distributions(path=paths) for need in _requirements(dist)]


def installed(folder: Optional[Path] = None) -> list[Distribution]:
    """Every distribution in the plugins folder, by name."""
    folder = (folder or plugins_dir()).expanduser().absolute()
    found = [_describe(dist) for dist in _metadata_folders(folder).values()]
    return sorted(found, key=lambda d: canonical_name(d.name))


def _resolve(requirements: Sequence[str], options: PipOptions, folder: Path) -> list[dict]:
    """What pip would install for ``requirements``, given what is installed already."""
    with tempfile.TemporaryDirectory(prefix="imagingdb-pip-") as tmp:
        report = Path(tmp) / "report.json"
        _run_pip(["install", "--quiet", "--dry-run", "--report", str(report),
                  *_bundled_find_links(), *options.args(), *requirements], folder,
                 failure=InputError(f"pip could not resolve {' '.join(requirements)} "
                                    "(its messages are above)"))
        wanted = json.loads(report.read_text(encoding="utf-8"))["install"]
    base = _base_versions(folder)
    for item in wanted:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        have = base.get(canonical_name(name))
        if have is not None:
            raise InputError(
                f"{name} {version} would replace {name} {have}, which imagingdb itself runs on; "
                + ("it is installed in imagingdb's environment already"
                   if item.get("requested") else
                   f"a plugin that needs another {name} cannot go into the plugins folder"))
    return wanted


def _base_versions(folder: Path) -> dict[str, str]:
    """Canonical name -> version of every distribution imagingdb runs on (not the plugins')."""
    from importlib.metadata import distributions

    paths = [p for p in sys.path if Path(p or ".").absolute() != folder]
    return {canonical_name(d.metadata["Name"]): d.version for d in distributions(path=paths)
            if d.metadata["Name"]}


def _install_spec(item: dict) -> str:
    """A requirement pip installs without resolving: the exact file or version chosen."""
    name = item["metadata"]["name"]
    if item.get("is_direct"):
        return f"{name} @ {item['download_info']['url']}"
    return f"{name}=={item['metadata']['version']}"


def _bundled_find_links() -> list[str]:
    wheels = bundled_wheels()
    return [f"--find-links={wheels}"] if wheels else []


def _pip_command(folder: Path) -> list[str]:
    wheels = bundled_wheels()
    if wheels is not None:
        pip_wheels = sorted(wheels.glob("pip-*.whl"))
        if not pip_wheels:
            raise WorkError(f"the bundled pip wheel is missing from {wheels}")
        # Isolated like the executable itself: its own packages, not the machine's.
        paths = [str(pip_wheels[-1]), str(wheels.parent), str(folder)]
        return [sys.executable, "-I", "-S", "-c", _RUN_PIP.format(paths=paths)]
    if importlib.util.find_spec("pip") is None:
        raise InputError(f"pip is not installed for {sys.executable}: install it "
                         f"({sys.executable} -m ensurepip) to install plugins")
    return [sys.executable, "-c", _RUN_PIP.format(paths=[str(folder)])]


def _run_pip(args: list[str], folder: Path, failure: Exception) -> None:
    done = subprocess.run([*_pip_command(folder), *args, "--disable-pip-version-check",
                           "--no-input", "--root-user-action=ignore"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # pip's messages (quiet: warnings and errors) go to stderr: stdout is for imagingdb's
    # machine-readable output.
    sys.stderr.write(done.stdout.decode(errors="replace"))
    if done.returncode != 0:
        raise failure


def _metadata_folders(folder: Path) -> dict:
    """Each ``.dist-info`` folder in ``folder`` -> its importlib.metadata Distribution."""
    if not folder.is_dir():
        return {}
    from importlib.metadata import Distribution as MetadataDistribution

    return {info: MetadataDistribution.at(info) for info in sorted(folder.glob("*.dist-info"))
            if info.is_dir()}


def _distributions(folder: Path, name: str) -> list[tuple[Path, object]]:
    """(metadata folder, Distribution) of every version of ``name`` in ``folder``."""
    wanted = canonical_name(name)
    return [(info, dist) for info, dist in _metadata_folders(folder).items()
            if canonical_name(dist.metadata["Name"] or "") == wanted]


def _describe(dist) -> Distribution:
    is_plugin = any(ep.group == ENTRY_POINT_GROUP for ep in dist.entry_points)
    return Distribution(dist.metadata["Name"], dist.version, is_plugin)


def _remove(info: Path, dist, folder: Path) -> None:
    """Delete the files ``dist``'s RECORD lists (only inside ``folder``), then its metadata."""
    root = folder.resolve()
    if dist.files is None:
        raise WorkError(f"{dist.metadata['Name']} has no RECORD in {info}: "
                        "remove its files from the plugins folder by hand")
    doomed = set()
    for record in dist.files:
        path = Path(dist.locate_file(record)).resolve()
        outside = [part for part in Path(record).parts if part != ".."]
        if not path.is_relative_to(root) and outside[:1] == ["bin"] and len(outside) == 2:
            # a console script (../../bin/NAME: beside a prefix's lib/pythonX.Y/site-packages),
            # which pip --target moved into the folder's bin/
            path = root / "bin" / outside[1]
        if path.is_relative_to(root) and path != root:
            doomed.add(path)
            doomed.update(_byte_code_of(path))
    for path in sorted(doomed, reverse=True):
        if path.is_file() or path.is_symlink():
            path.unlink()
    shutil.rmtree(info, ignore_errors=True)
    _remove_empty_folders({path.parent for path in doomed}, root)


def _byte_code_of(path: Path) -> Iterable[Path]:
    """The .pyc files Python wrote for ``path`` after pip had installed it."""
    if path.suffix != ".py":
        return []
    return path.parent.joinpath("__pycache__").glob(f"{path.stem}.*.pyc")


def _remove_empty_folders(folders: set[Path], root: Path) -> None:
    # Deepest first, so a package folder empties before its parent is looked at.
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        while folder != root and folder.is_relative_to(root):
            try:
                os.rmdir(folder)
            except OSError:  # not empty (another distribution's files) or gone already
                break
            folder = folder.parent
