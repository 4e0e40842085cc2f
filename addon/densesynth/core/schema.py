"""Defaults-as-schema config files: the generic part shared by the render config
(config/loader.py) and the training config (densepose_train/config.py).

A defaults file is the schema: its keys are the only keys and each default fixes its key's
kind. What is generic lives here: reading a small YAML mapping safely, merging a user's
mapping into the defaults ("did you mean" for an unknown key), setting a dotted key, and
walking dotted keys. What a value may be (the kind rules, `coerce`) and which exception a
mistake raises (`error`) belong to each caller. This module imports nothing else of the
package (the trainer uses it without the renderer).
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import yaml

# A config is a small hand-written file: anything larger or deeper is refused before parsing.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 32
MAX_CONFIG_NODES = 100_000

Coerce = Callable[[str, Any, Any, str], Any]  # (dotted key, default, value, source) -> value


class _LimitedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses deep nesting and aliases that expand a small file into
    a huge document (the 'billion laughs'), while composing, before anything is built."""

    def __init__(self, stream, path: Path, error: type[Exception]):
        super().__init__(stream)
        self._path, self._error, self._depth, self._nodes = path, error, 0, 0

    def compose_node(self, parent, index):
        self._depth += 1
        if self._depth > MAX_CONFIG_DEPTH:
            raise self._error(f"config file {self._path} nests deeper than {MAX_CONFIG_DEPTH} levels: "
                              "a config has sections of keys, not deep structures")
        try:
            if self.check_event(yaml.AliasEvent):
                # An alias re-uses a node: count what it stands for, so that aliases of aliases
                # cannot grow the document exponentially.
                event = self.peek_event()
                node = self.anchors.get(event.anchor)
                if node is not None:
                    self._count(_node_size(node))
            node = super().compose_node(parent, index)
            self._count(1)
            return node
        finally:
            self._depth -= 1

    def _count(self, nodes: int) -> None:
        self._nodes += nodes
        if self._nodes > MAX_CONFIG_NODES:
            raise self._error(f"config file {self._path} expands to more than {MAX_CONFIG_NODES} values "
                              "(YAML aliases?): write the values out, a config needs few")


def _node_size(node) -> int:
    """Values a composed node stands for (each alias counted again)."""
    stack, count = [node], 0
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_CONFIG_NODES:
            return count
        if isinstance(item, yaml.SequenceNode):
            stack.extend(item.value)
        elif isinstance(item, yaml.MappingNode):
            for key, value in item.value:
                stack.extend((key, value))
    return count


def read_yaml_mapping(path: Path, error: type[Exception], sections: str) -> dict[str, Any]:
    """The mapping in the YAML config file `path` ({} when empty); every problem raises
    `error` with one line naming the file. `sections` names a few, for the message
    ("render:, body:, ...")."""
    if not path.is_file():
        raise error(f"config file {path} does not exist: pass an existing YAML file to --config")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise error(f"config file {path} cannot be read ({exc.strerror or exc}): check the path") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise error(f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB: "
                    "pass the YAML config, not a data file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"config file {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    try:
        loader = _LimitedLoader(text, path, error)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"config file {path} is not valid YAML{where}: fix the syntax") from None
    except RecursionError:
        raise error(f"config file {path} nests too deeply: a config has sections of keys") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"config file {path} must hold a mapping of sections ({sections})")
    return data


def merge(base: dict[str, Any], user: dict[str, Any], source: str, *, coerce: Coerce, error: type[Exception],
          prefix: str = "", word_order: bool = False,
          free_mappings: Mapping[str, Callable[[str, Any], Any]] | None = None) -> None:
    """Overlay `user` on the defaults `base` in place: only known keys, sections stay sections,
    each leaf through `coerce`. `free_mappings`: dotted keys whose value is the user's own
    mapping (checked by the given function, replacing the default one)."""
    for key, value in user.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            raise error(f"config {source}: unknown key '{dotted}'{suggest(str(key), base, word_order=word_order)}")
        if free_mappings and dotted in free_mappings:
            base[key] = free_mappings[dotted](dotted, value)
        elif isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise error(f"config {source}: '{dotted}' must be a section of keys, got {value!r}")
            merge(base[key], value, source, coerce=coerce, error=error, prefix=f"{dotted}.",
                  word_order=word_order, free_mappings=free_mappings)
        else:
            base[key] = coerce(dotted, base[key], value, source)


def set_dotted(config: dict[str, Any], dotted: str, value: Any, source: str, *, coerce: Coerce) -> None:
    """Set an existing leaf (`solver.max_iter`) through `coerce`."""
    node = config
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = coerce(dotted, node[parts[-1]], value, source)


def suggest(key: str, options: Mapping[Any, Any], *, word_order: bool = False) -> str:
    """' (did you mean ...?)' for the closest option, else ' (known: ...)'. With `word_order`,
    the same words in another order ("lr_base" for "base_lr") come before spelling slips."""
    names = [str(o) for o in options]
    close: list[str] = []
    if word_order:
        words = sorted(key.lower().replace("-", "_").split("_"))
        close = [name for name in names if sorted(name.split("_")) == words]
    close = close or difflib.get_close_matches(key, names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(names)})"


def get(config: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted key (`get(cfg, "solver.max_iter")`)."""
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node


def leaves(config: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf."""
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from leaves(value, f"{dotted}.")
        else:
            yield dotted, value
