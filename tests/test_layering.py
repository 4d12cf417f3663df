"""The package's shape, kept: imports run one way, and no module reaches into another's
private names.

    cli, console, entry  ->  api  ->  upload, download, export, verify, gc, remove, claims
      (operations)
      ->  site, db/, storage/, codecs/, splitters/, plugins, pool... (building blocks)
      ->  acquisition, layout, ids, errors, config... (foundations)

Every import counts, including those inside functions (the lazy ones that keep start-up
fast), so a circle cannot hide behind laziness.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "imagingdb"

LAYERS = {
    0: ("errors", "ids", "layout", "acquisition", "progress", "faults", "quick_schema", "start_up",
        "hookspecs", "config", "terminal", "input_files", "calibration", "annotations", "provenance",
        "memory"),
    1: ("db", "storage", "codecs", "splitters", "parsers", "plugins", "spool", "meta_schema",
        "site", "pool", "plugin_install", "omezarr", "search", "replicas", "qc"),
    2: ("upload", "upload_rows", "upload_plan", "download", "export", "verify", "gc", "claims", "analysis",
        "remove", "edit", "sync"),
    3: ("api",),
    4: ("cli", "console", "entry", "__main__", "onefile", "pyrun", "demo"),
    5: ("testing",),  # test data and checks sit above everything they exercise...
}
#: ...but its sample-data writers use nothing of imagingdb (numpy and tifffile only), so the
#: demo (which the CLI runs) may write its acquisition with them
SUBMODULE_LAYERS = {"testing.scenes": 0, "testing.micromanager": 0}
RANK = {top: rank for rank, tops in LAYERS.items() for top in tops}
#: compiled modules (imagingdb/_qc.c): the private implementation of the one module that
#: imports them, which may name them despite the underscore
COMPILED = {"_qc": "qc"}


def _rank(module: str) -> int:
    """The layer of ``module``: its own entry in SUBMODULE_LAYERS, else its top package's."""
    return SUBMODULE_LAYERS.get(module, RANK[_top(module)])


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(module: str, level: int, name: str, is_package: bool) -> str:
    """The absolute (package-relative) module a relative import names."""
    if level == 0:
        return name.removeprefix("imagingdb").lstrip(".") if name.startswith("imagingdb") else ""
    base = module.split(".") if module else []
    if not is_package:
        base = base[:-1]
    base = base[:len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, *([name] if name else [])])


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the imagingdb modules it imports (anywhere in its code)."""
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [_resolve(name, 0, alias.name, is_package) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, node.level, node.module or "", is_package)
                if node.level == 0 and not (node.module or "").startswith("imagingdb"):
                    continue
                targets = [f"{base}.{alias.name}".lstrip(".") if f"{base}.{alias.name}".lstrip(".")
                           in modules else base for alias in node.names]
            for target in targets:
                if target in modules and target != name:
                    edges[name].add(target)
    return edges


def _top(module: str) -> str:
    return module.split(".")[0] if module else ""


def test_every_module_has_a_layer():
    assert sorted({_top(m) for m in _modules() if m} - set(RANK)) == []


def test_imports_run_one_way():
    modules = _modules()
    upward = sorted(f"{name} imports {target}"
                    for name, targets in _imports(modules).items() if name
                    for target in targets if target and _rank(target) > _rank(name))
    assert upward == []


def test_no_import_circle():
    """A package importing its own submodules (re-exports, lazily chosen codecs) is no circle."""
    edges = {name: {t for t in targets if not t.startswith(f"{name}.")}
             for name, targets in _imports(_modules()).items() if name}
    circles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_compiled_modules_are_known():
    assert {path.stem for path in PACKAGE.rglob("*.c")} == set(COMPILED)


def test_no_module_reaches_into_another_modules_private_names():
    modules = _modules()
    reaches = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}  # local name -> imagingdb module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(
                    "imagingdb")):
                base = _resolve(name, node.level, node.module or "", is_package)
                for alias in node.names:
                    target = f"{base}.{alias.name}".lstrip(".")
                    if target in modules:
                        aliases[alias.asname or alias.name] = target
                    elif COMPILED.get(target) == name:
                        pass
                    elif alias.name.startswith("_") and not alias.name.startswith("__"):
                        reaches.append(f"{name} imports {alias.name} from {base}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                reaches.append(f"{name} uses {aliases[node.value.id]}.{node.attr}")
    assert sorted(set(reaches)) == []
