"""Bounded reading of small structured files: training configs and checkpoint JSON.

These files come from other people's disks, so every reader here bounds what a file can cost
before any Python object is built from it:

* **size**: the file is refused above ``max_bytes`` (checked on ``stat`` and again while
  reading, so a growing file or a device cannot stream forever);
* **text**: UTF-8 only (a byte-order mark is skipped); anything else is refused naming the
  first bad byte and its offset;
* **nesting**: deeper than ``max_depth`` levels is refused (parsers recurse once per level,
  so 100,000 nested brackets would otherwise end in ``RecursionError``);
* **YAML aliases**: a document whose anchors and aliases would expand to more than
  ``max_nodes`` values (a "billion laughs") or that contains itself (a recursive anchor) is
  refused while it is still a graph of parser nodes, before it is turned into objects;
  ordinary anchors (one section reused a few times) are accepted.

Each refusal raises ``error(message)`` (the caller's one-line error class, e.g.
``TrainingError``) with a message that names the file and says what was expected.
:func:`check_plain` applies the depth, size and cycle rules to objects built in Python.

This module imports nothing from the package: every stage may use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_NODES", "read_text", "loads_json", "loads_yaml", "loads_toml",
           "load_structured", "check_plain"]

#: Nesting levels a config or checkpoint file may use (ours use fewer than 8).
MAX_DEPTH = 64
#: Values (mappings, lists and scalars, aliases counted as expanded) one document may hold.
MAX_NODES = 200_000

ErrorFactory = Callable[[str], Exception]


def read_text(path: str | Path, *, max_bytes: int, error: ErrorFactory,
              what: str = "file") -> str:
    """The UTF-8 text of ``path``, at most ``max_bytes`` bytes.

    Parameters
    ----------
    path : path
    max_bytes : int
        Largest accepted size in bytes.
    error : callable
        Builds the exception raised (one-line message).
    what : str
        What the file is, for messages (``"training config"``).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise error(f"{p}: {size} bytes; a {what} is at most {max_bytes} bytes")
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)  # +1: a file that grew (or a device) is still caught
    except OSError as err:
        raise error(f"{p}: cannot read the {what} ({err.strerror or err})") from None
    if len(data) > max_bytes:
        raise error(f"{p}: more than {max_bytes} bytes; a {what} is at most {max_bytes} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise error(f"{p}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
                    f"save the {what} as UTF-8") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def loads_json(text: str, where: str, *, error: ErrorFactory, max_depth: int = MAX_DEPTH,
               max_nodes: int = MAX_NODES) -> Any:
    """Parse JSON text, refusing more than ``max_depth`` levels or ``max_nodes`` values."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise error(f"{where}: nested deeper than {max_depth} levels") from None
    except ValueError as err:  # JSONDecodeError, and integers longer than Python converts
        raise error(f"{where}: not valid JSON ({_first_line(err)})") from None
    check_plain(value, where, error=error, max_depth=max_depth, max_nodes=max_nodes)
    return value


def loads_toml(text: str, where: str, *, error: ErrorFactory, max_depth: int = MAX_DEPTH,
               max_nodes: int = MAX_NODES) -> Any:
    """Parse TOML text with the same limits as :func:`loads_json`."""
    import tomllib

    try:
        value = tomllib.loads(text)
    except RecursionError:
        raise error(f"{where}: nested deeper than {max_depth} levels") from None
    except (tomllib.TOMLDecodeError, ValueError) as err:
        raise error(f"{where}: not valid TOML ({_first_line(err)})") from None
    check_plain(value, where, error=error, max_depth=max_depth, max_nodes=max_nodes)
    return value


def _yaml_loader(where: str, error: ErrorFactory, max_depth: int, max_nodes: int) -> type:
    """A ``yaml.SafeLoader`` that checks the node graph before constructing anything."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            # The composer recurses once per nesting level: stop it before Python's limit.
            self._depth += 1
            try:
                if self._depth > max_depth:
                    mark = self.peek_event().start_mark
                    raise error(f"{where}: nested deeper than {max_depth} levels (line "
                                f"{mark.line + 1})")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def get_single_node(self) -> Any:
            node = super().get_single_node()
            if node is not None:
                _check_node_graph(node, where, error, max_depth, max_nodes)
            return node

    return BoundedLoader


def _check_node_graph(root: Any, where: str, error: ErrorFactory, max_depth: int,
                      max_nodes: int) -> None:
    """Refuse a composed YAML graph that is cyclic, too deep or too large once expanded.

    Aliases make the graph a DAG whose expansion can be exponential in its size: sizes and
    heights are computed once per node (memoised by identity), iteratively, so neither the
    expansion nor the walk itself can exhaust memory or the stack.
    """
    import yaml

    def kids(node: Any) -> list:
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return []

    size: dict[int, int] = {}
    height: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            children = kids(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            height[key] = 1 + max((height[id(c)] for c in children), default=0)
            visiting.discard(key)
            if size[key] > max_nodes:
                raise error(f"{where}: its anchors and aliases expand to more than {max_nodes} "
                            "values (a YAML alias bomb?); write the values out instead")
            if height[key] > max_depth:
                raise error(f"{where}: nested deeper than {max_depth} levels once its aliases "
                            "are expanded")
            continue
        if key in size:
            continue
        if key in visiting:  # reached again below itself: a recursive anchor
            mark = node.start_mark
            raise error(f"{where}: a YAML anchor refers to itself (line {mark.line + 1}); "
                        "a config must be a tree, write the values out")
        visiting.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in kids(node))


def loads_yaml(text: str, where: str, *, error: ErrorFactory, max_depth: int = MAX_DEPTH,
               max_nodes: int = MAX_NODES) -> Any:
    """Parse YAML text (safe tags only) with bounded depth and bounded alias expansion."""
    import yaml

    loader = _yaml_loader(where, error, max_depth, max_nodes)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise error(f"{where}: not valid YAML ({_first_line(err)})") from None
    except RecursionError:  # not expected after the composer's depth check; still one line
        raise error(f"{where}: nested deeper than {max_depth} levels") from None


#: Parser of each accepted file suffix.
_PARSERS = {".json": loads_json, ".yaml": loads_yaml, ".yml": loads_yaml, ".toml": loads_toml}


def load_structured(path: str | Path, *, max_bytes: int, error: ErrorFactory,
                    what: str = "file", max_depth: int = MAX_DEPTH,
                    max_nodes: int = MAX_NODES) -> Any:
    """Read a ``.json``, ``.yaml``/``.yml`` or ``.toml`` file within all the limits above."""
    p = Path(path)
    parse = _PARSERS.get(p.suffix.lower())
    if parse is None:
        raise error(f"{p}: expected a .yaml, .toml or .json {what}")
    text = read_text(p, max_bytes=max_bytes, error=error, what=what)
    return parse(text, str(p), error=error, max_depth=max_depth, max_nodes=max_nodes)


def check_plain(value: Any, where: str, *, error: ErrorFactory, max_depth: int = MAX_DEPTH,
                max_nodes: int = MAX_NODES) -> None:
    """Refuse nested dicts/lists that contain themselves, nest too deep or hold too many values.

    Shared sub-objects are counted each time they appear (as JSON would write them), so a
    structure built to expand exponentially is refused after ``max_nodes`` values.
    """
    count = 0
    ancestors: set[int] = set()

    def walk(v: Any, depth: int) -> None:
        nonlocal count
        count += 1
        if count > max_nodes:
            raise error(f"{where}: more than {max_nodes} values (shared parts counted each "
                        "time they appear); a config holds settings, not data")
        if not isinstance(v, dict | list | tuple):
            return
        if id(v) in ancestors:
            raise error(f"{where}: contains itself (a recursive reference); expected a tree "
                        "of settings")
        if depth >= max_depth:
            raise error(f"{where}: nested deeper than {max_depth} levels")
        ancestors.add(id(v))
        for child in (v.values() if isinstance(v, dict) else v):
            walk(child, depth + 1)
        ancestors.discard(id(v))

    walk(value, 0)
