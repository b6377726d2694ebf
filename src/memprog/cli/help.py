"""``memprog COMMAND --help`` reads like a manual page: whole sentences, and an example.

Why here and not in each docstring: typer (0.29) keeps every single line break of a
command's docstring in the help it prints, and rich then wraps those lines again at the
terminal width, so a docstring wrapped at 90 columns prints as "... lies within" / "--
tolerance-us of the level ..." at 80 columns, a phrase cut in two. :func:`tidy` joins each
docstring paragraph into one line (rich wraps it once, at the terminal's width) and drops
reStructuredText's double backquotes, which mean nothing on a terminal.

Every command ends its help with an example that runs as written on the simulated benches
(:data:`EXAMPLES`; ``tests/cli/test_help.py`` checks that every command has one). The
examples avoid square brackets (typer's rich markup would read them as style tags) and
fit an 80-column terminal on one line.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

#: one runnable example per command (key: the command path, as typed after ``memprog``)
EXAMPLES: dict[str, str] = {
    "version": "memprog version --json",
    "levels": "memprog levels --levels 64 --start-us 100 --out ladder.png",
    "tune": "memprog tune --rows 0:8 --cols 0:8 --target-us 200 --png maps.png",
    "characterize": "memprog characterize --bench sim_k4200_707b --devices 4 --levels 4",
    "insitu": "memprog insitu --dataset digits --epochs 2 --out insitu.pt",
    "train": "memprog train --dataset halfmoons --hardware-aware --out halfmoons.pt",
    "evaluate": "memprog evaluate halfmoons.pt --transfers 300 --png evaluation.png",
    "program": "memprog program --example digits --bench sim_onchip --out digits_run",
    "dashboard": "memprog dashboard --port 8050   (then open http://127.0.0.1:8050)",
    "sim demo": "memprog sim demo --cells 4 --pulses 20 --out demo.png",
    "sim chips": "memprog sim chips --json",
    "sim reset": "memprog sim reset HFO2-1T1R-SIM-01",
    "sim serve": "memprog sim serve sim_onchip --write-bench served.yaml",
    "db summary": "memprog db summary",
    "db runs": "memprog db runs --limit 10",
    "db export": "memprog db export RUN_ID --out cells.csv",
    "db export-variability": "memprog db export-variability --out variability.parquet",
    "db import-variability": "memprog db import-variability variability.parquet",
    "db upgrade": "memprog db upgrade --db sqlite:///memprog.sqlite",
    "db reap": "memprog db reap",
    "db variability": "memprog db variability --chip-id TIO2-XBAR-SIM-01",
    "db chips": "memprog db chips --chip HFO2-1T1R-SIM-01",
    "bench check": "memprog bench check benches/lab_onchip.yaml --connect",
    "sim calibrate": "memprog sim calibrate --chip HFO2-1T1R-SIM-01 --write-bench twin.yaml",
}


def manual_text(doc: str | None) -> str | None:
    """``doc`` with each paragraph on one line and no double backquotes."""
    if not doc:
        return doc

    paras = re.split(r"\n\s*\n", inspect.cleandoc(doc))
    return "\n\n".join(" ".join(p.split()).replace("``", "") for p in paras)


def _commands(typer_app: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = [
        (f"{prefix}{ci.name or ci.callback.__name__}", ci) for ci in typer_app.registered_commands
    ]
    for gi in typer_app.registered_groups:
        out += _commands(gi.typer_instance, f"{prefix}{gi.name} ")
    return out


def tidy(typer_app: Any) -> None:
    """Give every registered command its one-line paragraphs and its example, last.

    A docstring paragraph starting "Example:" is moved to the end (typer would print it
    before the options); :data:`EXAMPLES` gives the example of the others.
    """
    for path, info in _commands(typer_app):
        doc = manual_text(info.help or (info.callback.__doc__ if info.callback else None)) or ""
        paras = doc.split("\n\n")
        own = [p for p in paras if p.startswith("Example:")]
        info.help = "\n\n".join(p for p in paras if not p.startswith("Example:")) or None
        example = EXAMPLES.get(path) or (own[0].removeprefix("Example:").strip() if own else None)
        if example and not info.epilog:
            info.epilog = f"Example:\n  {example}"


__all__ = ["EXAMPLES", "manual_text", "tidy"]
