"""Shipped examples: a small trained network and its test set (package data).

``digits_64_54_10.pt`` is a 64-54-10 sigmoid/softmax network (Li 2018's layer sizes) trained
on scikit-learn's 8x8 digits, saved in the ``memprog.weights/1`` format (Contract B);
``digits_test.npz`` holds the held-out 20 % (``x`` scaled to [0, 1], ``y`` labels).
``_build.py`` rebuilds both (needs scikit-learn; not imported at run time).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from memprog.core.errors import ConfigError

EXAMPLES = {"digits": ("digits_64_54_10.pt", "digits_test.npz")}


def example_path(name: str) -> Path:
    """Path of a shipped example file."""
    p = resources.files(__name__) / name
    if not p.is_file():
        raise ConfigError("example", name, f"one of {[f for pair in EXAMPLES.values() for f in pair]}")
    return Path(str(p))


def example(name: str = "digits") -> tuple[Path, Path]:
    """(weights, test set) of a shipped example."""
    if name not in EXAMPLES:
        raise ConfigError("example", name, f"one of {sorted(EXAMPLES)}")
    w, t = EXAMPLES[name]
    return example_path(w), example_path(t)
