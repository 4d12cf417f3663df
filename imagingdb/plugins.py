"""The plugin manager: built-ins and third-party plugins registered the same way.

Built-in splitters, parsers and storage backends live in the modules listed in
:data:`DEFAULT_PLUGINS` and are registered through the very hooks third-party
plugins use, so the plugin path is always exercised. Third-party plugins are
found through the ``imagingdb`` entry-point group, in the Python environment
or in the plugins folder (``$IMAGINGDB_PLUGINS_DIR``, default
``$IMAGINGDB_HOME/plugins``, where ``imagingdb plugins install`` puts them).
``IMAGINGDB_LOAD_PLUGINS`` (a comma list of entry-point or package names)
restricts which third-party plugins load; set it empty to load none.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pluggy

from . import hookspecs
from .errors import InputError

ENTRY_POINT_GROUP = "imagingdb"
LOAD_PLUGINS_ENV = "IMAGINGDB_LOAD_PLUGINS"
PLUGINS_DIR_ENV = "IMAGINGDB_PLUGINS_DIR"

DEFAULT_PLUGINS = (
    "imagingdb.splitters.ome_tiff",
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
    name: str
    error: str


pm = pluggy.PluginManager("imagingdb")
pm.add_hookspecs(hookspecs)

_lock = threading.Lock()
_loaded = False
_sources: dict[str, str] = {}  # pluggy plugin name -> "package version"
broken_plugins: list[BrokenPlugin] = []
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
    from importlib.metadata import entry_points

    allowed = _allowed()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else ep.name
        if allowed is not None and ep.name not in allowed and dist_name not in allowed:
            continue
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not break unrelated commands
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            broken_plugins.append(BrokenPlugin(ep.name, message))
            print(f"Warning: plugin {ep.name!r} failed to load and is skipped ({message})",
                  file=sys.stderr)
            continue
        pm.register(plugin, name=ep.name)
        version = dist.version if dist is not None else "?"
        _sources[ep.name] = f"{dist_name} {version}"


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
    # Call each implementation on its own so every name is attributed to its plugin.
    for impl in reversed(hook.get_hookimpls()):
        source = _sources.get(impl.plugin_name, impl.plugin_name)

        def register(name: str, obj: Any, _source: str = source) -> None:
            if not isinstance(name, str) or not name:
                raise InputError(f"plugin {_source} registered a {kind} without a name")
            if name in found:
                raise InputError(
                    f"{kind.replace('_', ' ')} {name!r} is registered twice: by "
                    f"{found[name].plugin} and by {_source}"
                )
            found[name] = Registered(kind, name, obj, _source)

        impl.function(register=register)
    return found


def get(kind: str, name: str) -> Registered:
    """The registered ``kind`` called ``name``, or an InputError listing the available ones."""
    entries = registry(kind)
    if name not in entries:
        available = ", ".join(sorted(entries)) or "none"
        raise InputError(f"unknown {kind.replace('_', ' ')} {name!r}; available: {available}")
    return entries[name]


def register_commands(cli: Any) -> None:
    load_plugins()
    pm.hook.register_commands(cli=cli)


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
        _registries.clear()
        _loaded = False


def splitter_factory(name: str) -> Callable[[], Any]:
    return get("splitter", name).obj
