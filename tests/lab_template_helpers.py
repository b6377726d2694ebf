"""Lab templates as a lab would edit them: their ``<...>`` placeholders filled in.

The shipped ``lab_*.yaml`` templates are refused until edited (tests/bench/test_lab_templates.py);
tests that check what an edited template does use this copy.
"""

from __future__ import annotations

from pathlib import Path

BENCHES = Path(__file__).resolve().parents[1] / "benches"
#: what a lab writes in place of each placeholder (loopback: nothing real is reached)
FILLED = {"<INSTRUMENT-IP>": "127.0.0.1", "<GPIB-ADDRESS>": "17"}


def edited_text(name: str) -> str:
    """The template's YAML with every placeholder filled."""
    text = (BENCHES / f"{name}.yaml").read_text()
    for placeholder, value in FILLED.items():
        text = text.replace(placeholder, value)
    assert "<" not in "".join(line.split("#")[0] for line in text.splitlines())
    return text


def edited_template(name: str, directory: Path) -> Path:
    """Write the edited template as ``directory/NAME.yaml`` and return its path."""
    path = directory / f"{name}.yaml"
    path.write_text(edited_text(name))
    return path
