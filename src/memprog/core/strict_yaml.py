"""YAML for files users write (bench files): no anchors, no aliases, a size cap.

Why: PyYAML's ``safe_load`` runs no code, but it expands aliases — nine anchors, each a
list of ten aliases of the one before, make 10⁹ nodes out of a few hundred bytes (a
"billion laughs"): a MemoryError after a minute, before any field is checked. A bench
file has no use for anchors (the shipped ones use none), so the loader refuses the first
anchor or alias it meets, with the file and the line, before composing anything beyond
it; and a bench file larger than ``MAX_YAML_BYTES`` is not read at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from memprog.core.errors import ConfigError

# [choice] 1 MiB: the shipped bench files are 1-3 KB; a bench of 4096 probed pads is ~200 KB
MAX_YAML_BYTES = 2**20


class _AliasRefused(yaml.YAMLError):
    def __init__(self, kind: str, mark: Any) -> None:
        super().__init__(kind)
        self.kind = kind
        self.line = getattr(mark, "line", -1) + 1


class _NoAliasLoader(yaml.SafeLoader):
    """A SafeLoader whose composer refuses every anchor (``&a``) and alias (``*a``)."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _AliasRefused(f"alias *{event.anchor}", event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise _AliasRefused(f"anchor &{event.anchor}", event.start_mark)
        return super().compose_node(parent, index)


def load_yaml_file(path: str | Path, what: str = "bench file") -> Any:
    """Parse a user's YAML file without anchors or aliases; ConfigError naming file and line."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(what, str(p), f"a YAML file of at most {MAX_YAML_BYTES} bytes", f"it has {size}")
        with p.open("rb") as f:
            text = f.read(MAX_YAML_BYTES + 1).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(what, str(p), "UTF-8 YAML text", str(exc)) from None
    except OSError as exc:
        raise ConfigError(what, str(p), "a readable file", str(exc)) from exc
    return load_yaml_text(text, str(p), what)


def load_yaml_text(text: str, source: str, what: str = "bench file") -> Any:
    """Parse YAML text without anchors or aliases (see :func:`load_yaml_file`)."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except _AliasRefused as exc:
        raise ConfigError(
            what, f"{source} line {exc.line}: {exc.kind}", "YAML without anchors or aliases (& and *)",
            "write each value out; aliases can expand a small file into billions of nodes",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(what, source, "valid YAML", str(exc).splitlines()[0]) from exc
    except RecursionError:
        raise ConfigError(what, source, "valid YAML", "nested too deeply") from None


__all__ = ["MAX_YAML_BYTES", "dump_yaml", "load_yaml_file", "load_yaml_text"]


class _NoAliasDumper(yaml.SafeDumper):
    """A SafeDumper that writes a value shared by two keys out twice instead of ``&id001``."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: D102
        return True


def dump_yaml(data: Any, **kwargs: Any) -> str:
    """YAML text for a file memprog writes (bench files): no anchors, so it loads back here.

    ``yaml.safe_dump`` writes an anchor and an alias when one object appears twice (the same
    options dict under two instruments); :func:`load_yaml_file` refuses those, so every
    bench file memprog writes goes through this function.
    """
    kwargs.setdefault("sort_keys", False)
    return yaml.dump(data, Dumper=_NoAliasDumper, **kwargs)
