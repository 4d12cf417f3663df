"""The plugin manager: built-ins and third-party plugins registered the same way.

Built-in splitters, parsers and storage backends live in the modules listed in
:data:`DEFAULT_PLUGINS` and are registered through the very hooks third-party
plugins use, so the plugin path is always exercised. Third-party plugins are
found through the ``imagingdb`` entry-point group, in the Python environment
or in the plugins folder (``$IMAGINGDB_PLUGINS_DIR``, default
``$IMAGINGDB_HOME/plugins``: ``pip install --target`` a plugin there).
``IMAGINGDB_LOAD_PLUGINS`` (a comma list of entry-point or package names)
restricts which third-party plugins load; set it empty to load none.

A plugin that fails (its import, its registration with pluggy, or one of its
hooks raising) is skipped with a warning on stderr and listed as broken by
``imagingdb plugins``; everything else keeps working. Two plugins registering
the same name is an error naming both.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pluggy

from . import hookspecs
from .errors import InputError, UnclaimedSourceError
from .terminal import printable

ENTRY_POINT_GROUP = "imagingdb"
LOAD_PLUGINS_ENV = "IMAGINGDB_LOAD_PLUGINS"
PLUGINS_DIR_ENV = "IMAGINGDB_PLUGINS_DIR"

DEFAULT_PLUGINS = (
    "imagingdb.splitters.ome_tiff",
    "imagingdb.splitters.tif_folder",
    "imagingdb.splitters.tif_id",
    "imagingdb.splitters.image_sequence",
    "imagingdb.parsers",
    "imagingdb.storage.local",
    "imagingdb.storage.s3",
)

KINDS = {
    "splitter": "register_splitters",
    "filename_parser": "register_filename_parsers",
    "storage_backend": "register_storage_backends",
}


@dataclass(frozen=True)
class Registered:
    """One registered thing and the plugin that provided it."""

    kind: str
    name: str
    obj: Any
    plugin: str  # e.g. "imagingdb (built-in)" or "imagingdb-ndtiff 0.1.0"


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin skipped because it failed; ``imagingdb plugins`` lists it."""

    name: str  # entry-point (or module) name
    plugin: str  # "package version"
    error: str


pm = pluggy.PluginManager("imagingdb")
pm.add_hookspecs(hookspecs)

_lock = threading.Lock()
_loaded = False
_sources: dict[str, str] = {}  # pluggy plugin name -> "package version"
broken_plugins: list[BrokenPlugin] = []
#: commands plugins added to the last app built (kind "command")
commands: list[Registered] = []
_registries: dict[str, dict[str, Registered]] = {}


def plugins_dir() -> Path:
    env = os.environ.get(PLUGINS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    from .config import imagingdb_home

    return imagingdb_home() / "plugins"


def _allowed() -> Optional[set[str]]:
    value = os.environ.get(LOAD_PLUGINS_ENV)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def load_plugins() -> None:
    """Register built-ins, then third-party entry points; safe to call many times."""
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        from . import __version__

        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            pm.register(module, name=module_name)
            _sources[module_name] = f"imagingdb {__version__} (built-in)"
        _load_entry_points()


def _load_entry_points() -> None:
    folder = plugins_dir()
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.append(str(folder))
    declared = _declared_entry_points(sys.path)
    if declared is None:  # somewhere only importlib.metadata can look (a zip, an egg)
        declared = _importlib_entry_points()
    allowed = _allowed()
    for ep in declared:
        source = f"{ep.dist_name} {ep.dist_version}"
        if allowed is not None and ep.name not in allowed and ep.dist_name not in allowed:
            continue
        if pm.has_plugin(ep.name):
            _skip(ep.name, source, f"entry point name {ep.name!r} is already used by "
                                   f"{_sources.get(ep.name, ep.name)}")
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must not break unrelated commands
            _skip(ep.name, source, f"{type(exc).__name__}: {exc}")
            continue
        _sources[ep.name] = source


@dataclass(frozen=True)
class _EntryPoint:
    """One ``imagingdb`` entry point: ``name = module[:attribute]`` of a distribution."""

    name: str
    value: str
    dist_name: str
    dist_version: str

    def load(self) -> Any:
        """The object named, as importlib.metadata's EntryPoint.load finds it (extras ignored)."""
        module_name, _, attribute = self.value.split("[", 1)[0].partition(":")
        found = importlib.import_module(module_name.strip())
        for part in attribute.strip().split(".") if attribute.strip() else ():
            found = getattr(found, part)
        return found


def _declared_entry_points(paths: list[str]) -> Optional[list[_EntryPoint]]:
    """The ``imagingdb`` entry points of the distributions installed in the folders ``paths``.

    Read from their .dist-info/.egg-info folders as importlib.metadata would
    (the first distribution of a name on the path wins), without importing
    it: importlib.metadata and the email parser it reads metadata with cost
    ~0.07 s of every start that loads plugins (upload, download, read), most
    of that start's plugin work. None when a path entry is not a folder (a
    zip, an egg): then only importlib.metadata can tell.
    """
    section = f"[{ENTRY_POINT_GROUP}]"
    seen: set[str] = set()
    found: list[_EntryPoint] = []
    for entry in paths:
        try:
            with os.scandir(entry or ".") as items:
                infos = [item for item in items if item.name.endswith((".dist-info", ".egg-info"))]
        except FileNotFoundError:
            continue
        except OSError:  # a zip file or an unreadable folder
            return None
        for info in infos:
            if not info.is_dir():
                return None  # an .egg-info file: importlib.metadata reads those
            stem = info.name.rsplit(".", 1)[0]  # name-version[-pyX.Y]
            name = _normalized(stem.partition("-")[0])
            if name in seen:
                continue  # shadowed by a distribution earlier on the path
            seen.add(name)
            try:
                with open(os.path.join(info.path, "entry_points.txt"), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:  # no entry points
                continue
            if section in text:
                dist_name, version = _name_and_version(info.path)
                found += [_EntryPoint(ep_name, value, dist_name or name, version)
                          for ep_name, value in _group_entries(text, ENTRY_POINT_GROUP)]
    return found


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _group_entries(text: str, group: str) -> list[tuple[str, str]]:
    """(name, value) of each ``name = value`` line in the entry_points.txt section ``group``."""
    entries, current = [], None
    for line in map(str.strip, text.splitlines()):
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == group and "=" in line:
            name, value = line.split("=", 1)
            entries.append((name.strip(), value.strip()))
    return entries


def _name_and_version(info: str) -> tuple[str, str]:
    """Name and Version from a distribution's METADATA (or PKG-INFO) headers."""
    fields: dict[str, str] = {}
    for file_name in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(info, file_name), encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        break  # the headers end at the first blank line
                    key, _, value = line.partition(":")
                    fields.setdefault(key.strip().lower(), value.strip())
            break
        except OSError:
            continue
    return fields.get("name", ""), fields.get("version", "?")


def _importlib_entry_points() -> list[_EntryPoint]:
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        found.append(_EntryPoint(ep.name, ep.value,
                                 dist.metadata["Name"] if dist is not None else ep.name,
                                 dist.version if dist is not None else "?"))
    return found


def _skip(name: str, source: str, error: str) -> None:
    """Record a plugin that failed and warn once; it is left out of every registry."""
    error = " ".join(error.split())[:300]
    broken_plugins.append(BrokenPlugin(name, source, error))
    print(printable(f"Warning: plugin {name!r} ({source}) is broken and skipped: {error}"),
          file=sys.stderr)
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin, name=name)
        _registries.clear()


def registry(kind: str) -> dict[str, Registered]:
    """Every ``kind`` ("splitter", "filename_parser", "storage_backend") by name."""
    load_plugins()
    with _lock:
        if kind not in _registries:
            _registries[kind] = _collect(kind)
        return _registries[kind]


def _collect(kind: str) -> dict[str, Registered]:
    found: dict[str, Registered] = {}
    hook = getattr(pm.hook, KINDS[kind])
    # Call each implementation on its own so every name is attributed to its plugin,
    # and a plugin whose hook fails is skipped whole.
    for impl in hook.get_hookimpls():  # registration order: built-ins first
        source = _sources.get(impl.plugin_name, impl.plugin_name)
        mine: dict[str, Registered] = {}

        def register(name: str, obj: Any, _source: str = source,
                     _mine: dict[str, Registered] = mine) -> None:
            if not isinstance(name, str) or not name:
                raise InputError(f"plugin {_source} registered a {kind} without a name")
            earlier = found.get(name) or _mine.get(name)
            if earlier is not None:
                raise InputError(
                    f"{kind.replace('_', ' ')} {name!r} is registered twice: by "
                    f"{earlier.plugin} and by {_source}"
                )
            _mine[name] = Registered(kind, name, obj, _source)

        try:
            impl.function(register=register)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - one plugin's bug must not break the others
            _skip(impl.plugin_name, source, f"{KINDS[kind]} failed: {type(exc).__name__}: {exc}")
            continue
        found.update(mine)
    return found


def get(kind: str, name: str) -> Registered:
    """The registered ``kind`` called ``name``, or an InputError listing the available ones."""
    entries = registry(kind)
    if name not in entries:
        available = ", ".join(sorted(entries)) or "none"
        raise InputError(f"unknown {kind.replace('_', ' ')} {name!r}; available: {available}")
    return entries[name]


def register_commands(cli: Any) -> None:
    """Let every plugin add commands to ``cli``; remember which plugin added which."""
    load_plugins()
    added: list[Registered] = []
    for impl in pm.hook.register_commands.get_hookimpls():
        source = _sources.get(impl.plugin_name, impl.plugin_name)
        before = _command_names(cli)
        try:
            impl.function(cli=cli)
        except Exception as exc:  # noqa: BLE001 - the other commands must keep working
            _skip(impl.plugin_name, source, f"register_commands failed: {type(exc).__name__}: {exc}")
            continue
        added += [Registered("command", name, None, source)
                  for name in _command_names(cli) if name not in before]
    commands[:] = added


def _command_names(cli: Any) -> list[str]:
    """Names of the commands and command groups registered on a typer app."""
    names = []
    for info in [*cli.registered_commands, *cli.registered_groups]:
        name = info.name
        if name is None:
            callback = info.callback if hasattr(info, "callback") else None
            if callback is None and getattr(info, "typer_instance", None) is not None:
                callback = info.typer_instance.registered_callback
                name = getattr(info.typer_instance.info, "name", None)
            if name is None and callback is not None:
                name = callback.__name__.replace("_", "-")
        names.append(name or "?")
    return names


def plugin_sources() -> dict[str, str]:
    load_plugins()
    return dict(_sources)


def reset_for_tests() -> None:
    """Forget everything loaded (tests that install or break plugins call this)."""
    global _loaded
    with _lock:
        for name, plugin in list(pm.list_name_plugin()):
            pm.unregister(plugin, name=name)
        _sources.clear()
        broken_plugins.clear()
        commands.clear()
        _registries.clear()
        _warned.clear()
        _loaded = False


def splitter_factory(name: str) -> Callable[[], Any]:
    return get("splitter", name).obj


def claims(source: Path) -> list[Any]:
    """Every :class:`~imagingdb.acquisition.SourceClaim` made on ``source``, most certain first.

    Only claims for a registered splitter count. A plugin whose ``claim_source``
    raises is skipped (as broken) and the others are still asked.
    """
    splitters = registry("splitter")
    found = []
    for impl in pm.hook.claim_source.get_hookimpls():
        try:
            claim = impl.function(source=source)
        except Exception as exc:  # noqa: BLE001 - one plugin's bug must not stop the upload
            # This source only: the plugin's splitters stay usable for every other one.
            _warn_once(impl.plugin_name, f"claim_source failed on {source} and is ignored: "
                                         f"{type(exc).__name__}: {exc}")
            continue
        if claim is not None and claim.format in splitters:
            found.append(claim)
    return sorted(found, key=lambda claim: -claim.certainty)


_warned: set[str] = set()


def _warn_once(plugin_name: str, message: str) -> None:
    """One Warning: line per plugin and process for a hook that fails but need not stop it."""
    if plugin_name in _warned:
        return
    _warned.add(plugin_name)
    source = _sources.get(plugin_name, plugin_name)
    text = " ".join(message.split())[:300]
    print(printable(f"Warning: plugin {plugin_name!r} ({source}): {text}"), file=sys.stderr)


def choose_format(source: Path, explicit: Optional[str] = None) -> Any:
    """The SourceClaim of the splitter that will read ``source``.

    Without ``explicit`` (``frames_format: auto``): the most certain claim; an
    InputError when no splitter claims the source, or when two formats claim
    it equally. With ``explicit``: that format, unless another one claims the
    source as its own (CERTAIN) and ``explicit`` does not; then an InputError
    naming the format that reads it, since splitting a file against what it
    declares would put frames in the wrong place.
    """
    from .acquisition import CERTAIN, SourceClaim

    made = claims(source)
    if explicit is not None:
        get("splitter", explicit)  # an unknown name lists the available ones
        mine = [claim for claim in made if claim.format == explicit]
        best = made[0] if made else None
        if (best is not None and best.format != explicit and best.certainty == CERTAIN
                and not (mine and mine[0].certainty == CERTAIN)):
            raise InputError(
                f"{source} is a {best.kind}, which frames_format {explicit} would not read as "
                f"it was recorded; use frames_format: {best.format} (or leave frames_format "
                "out to choose automatically)")
        return mine[0] if mine else SourceClaim(explicit, "", 0)
    if not made:
        formats = tuple(sorted(registry("splitter")))
        raise UnclaimedSourceError(
            f"{source}: no splitter recognises it (formats: {', '.join(formats)}); set "
            "frames_format in the upload config, or upload it whole with upload_type: file",
            formats)
    rivals = [claim for claim in made if claim.certainty == made[0].certainty
              and claim.format != made[0].format]
    if rivals:
        names = " or ".join(f"{claim.format} ({claim.kind})" for claim in [made[0], *rivals])
        raise InputError(f"{source} could be read as {names}; set frames_format in the upload "
                         "config to say which")
    return made[0]
