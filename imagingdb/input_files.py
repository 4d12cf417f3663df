"""Reading the text files a user names (site and upload configs, ``meta_schema``, login files,
Micro-Manager's ``metadata.txt``) with bounded work, whatever they hold.

- only a regular file is read: a device (``/dev/zero``), a FIFO or a folder is refused
  before a byte is read, and the file is opened non-blocking and checked again, so one
  swapped in between cannot make the read wait;
- at most ``limit`` bytes are read: a larger file is refused, not read to its end;
- YAML is parsed with duplicate keys, keys that are lists or mappings, nesting deeper than
  :data:`MAX_DEPTH` and aliases that expand to more than :data:`MAX_NODES` nodes (a "billion
  laughs" bomb) or into themselves all refused, from the composed document, before a Python
  object is built; anything a document does that PyYAML itself refuses is a YAML error,
  and so is a value Python cannot make (``2020-13-45`` as a date, ``!!float abc``).

Every refusal is an :class:`~imagingdb.errors.InputError` naming the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from .errors import InputError

#: bytes of a config, meta_schema or login file: far more than any real one holds
CONFIG_LIMIT = 4 * 2**20
#: levels of nesting in a YAML document, counting through aliases
MAX_DEPTH = 100
#: nodes of a YAML document once its aliases are expanded
MAX_NODES = 200_000


def read_text(path: Path, what: str, limit: int = CONFIG_LIMIT) -> str:
    """The text (UTF-8, a BOM dropped) of the regular file ``path``, of at most ``limit`` bytes."""
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read {what} {path}: not UTF-8 text ({exc.reason} at byte "
                         f"{exc.start})") from None


def read_bytes(path: Path, what: str, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (not a FIFO or device), of at most ``limit``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"{what} {path} not found") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        status = os.fstat(fd)
        _require_regular(status.st_mode, path, what)
        with open(fd, "rb", closefd=False) as handle:
            # read(n) allocates n bytes first: ask for the file's size (and one byte to see
            # whether it grew since), not the limit, for a small file's sake
            wanted = min(limit + 1, status.st_size + 1)
            data = handle.read(wanted)
            if len(data) == wanted <= limit:
                data += handle.read(limit + 1 - wanted)
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InputError(f"{what} {path} is larger than {_size(limit)}, more than a {what} "
                         "can need; check that it is the file you meant")
    return data


def require_regular_file(path: Path, what: str) -> None:
    """Refuse ``path`` unless it is a regular file (or a link to one), before it is opened:
    for a file read by another reader (the upload CSV), whose end must come."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{what} {path} not found") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    _require_regular(mode, path, what)


def _require_regular(mode: int, path: Path, what: str) -> None:
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise InputError(f"{what} {path} is {kind}, not a regular file")


def _size(limit: int) -> str:
    return f"{limit // 2**30} GiB" if limit >= 2**30 else f"{limit // 2**20} MiB"


def load_yaml(path: Path, what: str) -> Any:
    """The YAML (or JSON) document in ``path``, read with :func:`read_text`'s bounds and
    parsed with the limits above; None for an empty document."""
    import yaml

    text = read_text(path, what)
    loader = _bounded_loader()(text)
    loader.name = str(path)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, path)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"{path}: invalid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML: {exc}") from None
    except RecursionError:  # a safety net: the depth limit stops nesting long before this
        raise InputError(f"{path}: invalid YAML: nested too deeply") from None
    except (ValueError, TypeError, ArithmeticError) as exc:  # what construct_object cannot place
        raise InputError(f"{path}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _bounded_loader():
    """A SafeLoader that refuses duplicate and unhashable keys and deep nesting as it composes."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent, index):
            if self._depth >= MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise InputError(f"{self.name}: YAML nested more than {MAX_DEPTH} levels deep "
                                 f"at line {mark.line + 1}")
            self._depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_object(self, node, deep=False):
            # PyYAML's constructors let Python's own errors through: 2020-13-45 as a date,
            # !!float abc, an integer of 5000 digits, !!map given a list
            try:
                return super().construct_object(node, deep=deep)
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise InputError(f"{self.name}: invalid YAML at line {node.start_mark.line + 1}: "
                                 f"{exc}") from None

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            mark = key_node.start_mark
            if not isinstance(key_node, yaml.ScalarNode):
                raise InputError(f"{loader.name}: a key at line {mark.line + 1} is a list or "
                                 "mapping; keys must be plain names")
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise InputError(f"{loader.name}: duplicate key {key!r} at line {mark.line + 1}")
            seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    BoundedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                  construct_mapping)
    return BoundedLoader


def _children(node: Any) -> list:
    value = node.value
    if isinstance(value, list):  # a sequence's items, or a mapping's (key, value) pairs
        return [part for item in value
                for part in (item if isinstance(item, tuple) else (item,))]
    return []


def _check_expansion(root: Any, path: Path) -> None:
    """Refuse a document whose aliases make it larger than MAX_NODES nodes, deeper than
    MAX_DEPTH levels, or contain itself. Each node is visited once (its expanded size and
    depth memoised), without recursion, so a bomb costs no more than its own text."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the path from the root to the node being expanded
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            depth[key] = 1 + max((depth[id(child)] for child in children), default=0)
            if size[key] > MAX_NODES:
                raise InputError(f"{path}: its YAML aliases expand to more than {MAX_NODES} "
                                 "values (an alias bomb?)")
            if depth[key] > MAX_DEPTH:
                raise InputError(f"{path}: YAML nested more than {MAX_DEPTH} levels deep "
                                 "once its aliases are expanded")
            continue
        if key in size:
            continue
        if key in open_nodes:
            mark = node.start_mark
            raise InputError(f"{path}: the YAML value anchored at line {mark.line + 1} "
                             "contains an alias to itself")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
