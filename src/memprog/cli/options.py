"""Bounded command-line options: every number finite and in range, every choice known,
every output path writable, checked while the options are parsed.

Why at the option level (typer callbacks) and not in each command body: a bad value must
end in one stderr line naming the option, the value and the allowed range, with exit 2,
*before* a run is created in the store and before a bench opens — and before any code
sizes an array from it (``--settle-s 1e300`` once became a list of 10^300 waits,
``--levels 1000000000`` 7.45 GiB, ``--rows 99999999999999999999`` an OverflowError).
Click calls the callbacks as it parses, so no command body runs with an unchecked value.

Usage::

    settle_s: Annotated[float | None, typer.Option("--settle-s", callback=SETTLE_S)] = None

Each bound below is a choice, and its comment says why. Chip-specific limits (the
chip's rows, its conductance window) are still checked by the bench before any pulse;
these bounds only keep a value from being absurd enough to exhaust memory or time.
"""

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

import typer

from memprog.cli.common import fail
from memprog.core.errors import ConfigError

# ----------------------------------------------------------------------------- the bounds
# cells per side: 65,536 is 16x the largest crossbar published (4,096 x 4,096)
MAX_INDEX = 65_535
# cells in one grid / map / chunk: a 4,096 x 4,096 array (16.7 M cells)
MAX_CELLS = 1 << 24
# conductances: 1 S = 10^6 µS; no memristor conducts a siemens
MAX_G_US = 1e6
# a settle longer than a day is not a settle; it would also be a day of bench time per batch
MAX_SETTLE_S = 86_400.0
# retention delays: 30 days. The command holds the bench (and its run 'running') for the
# whole delay, and the simulated bench steps its clock (~4 s of CPU per 10^6 s simulated);
# longer retention studies re-read the cells from a new run
MAX_RETENTION_S = 30 * 86_400.0
# at most 64 retention checkpoints (each re-reads every cell)
MAX_DELAYS = 64
# ladder levels: 2^20 (8 MiB of level values); the finest published ladders have 2,048
# (Rao 2023) and a 10^6 µS window at 1 µS steps holds 10^6; the bench then checks its window
MAX_LEVELS = 1 << 20
# pulses per cell: a million pulses of any width wear a device out
MAX_PULSES = 1_000_000
# reads after each tune / level: 10,000 reads is minutes per cell already
MAX_READS = 10_000
# seeds: numpy's legacy RandomState and torch both take 0 .. 2^32 - 1
MAX_SEED = 2**32 - 1
# voltages: |V| <= 20; every bench's own safety limits are far tighter and still apply
MAX_ABS_V = 20.0
# pulse widths: up to one second (a DC stress, not a pulse, beyond)
MAX_WIDTH_S = 1.0
# learning rates: above 100 every update saturates the conductance window
MAX_LR = 100.0
# Monte Carlo transfers / simulated chips: a million
MAX_TRANSFERS = 1_000_000
# torch CPU threads
MAX_THREADS = 1024
# characterize --devices: 4,096 devices, a 64 x 64 array; each costs minutes of tuning
MAX_DEVICES = 4096
# train --epochs: 100,000 passes; the shipped networks converge in well under 1,000
MAX_EPOCHS = 100_000
# db runs --limit: a million rows is more than any lab stores
MAX_LIMIT = 1_000_000
# sim serve: a 'timeout' fault's reply comes at most a minute late (test clients time out)
MAX_LATE_S = 60.0
# a VISA timeout of an hour is a hang, not a timeout
MAX_TIMEOUT_MS = 3_600_000
FAULT_KINDS = ("drop", "garbage", "timeout", "error", "link", "reset")


# ----------------------------------------------------------------------------- plumbing
def refuse(parameter: str, value: Any, allowed: str, detail: str = "") -> NoReturn:
    """One stderr line (``error: --x=V is not allowed (allowed: ...)``) and exit 2."""
    raise fail(ConfigError(parameter, value, allowed, detail))


def _name(param: Any) -> str:
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return max(opts, key=len) if opts else f"--{param.name.replace('_', '-')}"


def _callback(check: Callable[[str, Any, Any], Any]) -> Callable[..., Any]:
    def callback(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None or ctx.resilient_parsing:  # not given / shell completion
            return value
        return check(_name(param), value, ctx)

    return callback


def _fmt(x: float) -> str:
    return f"{x:g}"


# ----------------------------------------------------------------------------- numbers
def int_in(lo: int, hi: int, unit: str = "") -> Callable[..., Any]:
    """An integer option in [lo, hi]."""

    def check(name: str, value: Any, _ctx: Any) -> Any:
        if not lo <= int(value) <= hi:
            refuse(name, value, f"{lo} to {hi}{' ' + unit if unit else ''}")
        return value

    return _callback(check)


def float_in(
    lo: float, hi: float, unit: str = "", *, lo_open: bool = False, hi_open: bool = False, why: str = ""
) -> Callable[..., Any]:
    """A finite float option in [lo, hi] (``lo_open``/``hi_open``: that end excluded;
    ``why`` is said with the range)."""
    left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
    allowed = f"a finite number in {left}{_fmt(lo)}, {_fmt(hi)}{right}{' ' + unit if unit else ''}"
    allowed += f" ({why})" if why else ""

    def check(name: str, value: Any, _ctx: Any) -> Any:
        v = float(value)
        ok = math.isfinite(v) and (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi)
        if not ok:
            refuse(name, value, allowed)
        return value

    return _callback(check)


def choice(*allowed: str) -> Callable[..., Any]:
    """A string option that must be one of ``allowed``."""

    def check(name: str, value: Any, _ctx: Any) -> Any:
        if value not in allowed:
            refuse(name, value, " | ".join(allowed))
        return value

    return _callback(check)


def choice_of(allowed: Callable[[], Iterable[str]]) -> Callable[..., Any]:
    """Like :func:`choice`, the allowed values read when the option is given (a module
    that knows them is not imported at start-up)."""

    def check(name: str, value: Any, _ctx: Any) -> Any:
        known = tuple(allowed())
        if value not in known:
            refuse(name, value, " | ".join(known))
        return value

    return _callback(check)


def float_list(lo: float, hi: float, max_items: int, unit: str = "", *, lo_open: bool = False) -> Callable[..., Any]:
    """A comma list of finite floats in [lo, hi] (``lo_open``: lo excluded), at most
    ``max_items`` of them (the text stays a string; the command parses it)."""
    left = "(" if lo_open else "["
    allowed = f"at most {max_items} comma-separated finite numbers in {left}{_fmt(lo)}, {_fmt(hi)}] {unit}".rstrip()

    def check(name: str, value: Any, _ctx: Any) -> Any:
        parts = [p.strip() for p in str(value).split(",") if p.strip()]
        if not parts or len(parts) > max_items:
            refuse(name, value, allowed)
        for p in parts:
            try:
                v = float(p)
            except ValueError:
                refuse(name, value, allowed, f"{p!r} is not a number")
            if not (math.isfinite(v) and (lo < v if lo_open else lo <= v) and v <= hi):
                refuse(name, value, allowed, f"{p} is outside")
        return value

    return _callback(check)


def _count_indices(text: str) -> int | None:
    """How many indices ``3 | 0,2,5 | 0:8`` names, or None when one is out of bounds or
    malformed (ranges are counted, never expanded)."""
    n = 0
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if ":" in part:
                a, b = (int(x) for x in part.split(":", 1))
                if not (0 <= a < b <= MAX_INDEX + 1):
                    return None
                n += b - a
            else:
                if not 0 <= int(part) <= MAX_INDEX:
                    return None
                n += 1
        except ValueError:
            return None
    return n or None


def index_list(partner: str | None = None) -> Callable[..., Any]:
    """Indices ``3 | 0,2,5 | 0:8`` each in [0, MAX_INDEX]; with ``partner`` (the other axis'
    parameter name) the grid both name stays within MAX_CELLS cells."""
    allowed = f"indices like 3, 0,2,5 or 0:8 (end excluded), each 0 to {MAX_INDEX}"

    def check(name: str, value: Any, ctx: Any) -> Any:
        n = _count_indices(str(value))
        if n is None:
            refuse(name, value, allowed)
        other = ctx.params.get(partner) if partner else None
        m = _count_indices(str(other)) if other is not None else None
        if m is not None and n * m > MAX_CELLS:
            refuse(name, value, f"a grid of at most {MAX_CELLS} cells", f"{n} x {m} cells with --{partner}")
        return value

    return _callback(check)


def fault_kinds(allowed: Iterable[str] = FAULT_KINDS) -> Callable[..., Any]:
    """A comma list of known fault kinds (checked whatever the rate: a typo at rate 0 would
    go unnoticed until the rate is raised)."""
    known = tuple(allowed)

    def check(name: str, value: Any, _ctx: Any) -> Any:
        kinds = [k.strip() for k in str(value).split(",") if k.strip()]
        bad = [k for k in kinds if k not in known]
        if not kinds or bad:
            refuse(name, value, "a comma list of " + ", ".join(known), f"unknown {', '.join(bad)}" if bad else "")
        return value

    return _callback(check)


# ----------------------------------------------------------------------------- paths
def _writable_dir(d: Path) -> bool:
    return d.is_dir() and os.access(d, os.W_OK | os.X_OK)


def out_file(*suffixes: str) -> Callable[..., Any]:
    """A file the command will write: not a folder, its folder exists and is writable, its
    suffix one of ``suffixes`` (when given). Checked before the work, so a typo does not
    cost a whole tuning run (and leave it marked failed)."""

    def check(name: str, value: Any, _ctx: Any) -> Any:
        p = Path(value)
        kinds = " or ".join(suffixes)
        if suffixes and p.suffix.lower() not in suffixes:
            refuse(name, str(p), f"a {kinds} file")
        if p.is_dir():
            refuse(name, str(p), f"a {kinds + ' ' if kinds else ''}file", "it is a folder")
        parent = p.parent if str(p.parent) else Path(".")
        if not _writable_dir(parent):
            why = "no such folder" if not parent.exists() else "not a writable folder"
            refuse(name, str(p), "a file in an existing, writable folder", f"{parent}: {why}")
        if p.exists() and not os.access(p, os.W_OK):
            refuse(name, str(p), "a writable file", "it is read-only")
        return value

    return _callback(check)


def out_dir() -> Callable[..., Any]:
    """A folder the command will write into: an existing writable folder, or a new one whose
    parent exists and is writable (not a file)."""

    def check(name: str, value: Any, _ctx: Any) -> Any:
        p = Path(value)
        if p.exists():
            if not p.is_dir():
                refuse(name, str(p), "a folder (existing or new)", "it is a file")
            if not _writable_dir(p):
                refuse(name, str(p), "a writable folder", "it is read-only")
            return value
        parent = p.parent if str(p.parent) else Path(".")
        if not _writable_dir(parent):
            why = "no such folder" if not parent.exists() else "not a writable folder"
            refuse(name, str(p), "a new folder inside an existing, writable one", f"{parent}: {why}")
        return value

    return _callback(check)


# ----------------------------------------------------------------------------- shared ones
SEED = int_in(0, MAX_SEED)
PORT = int_in(0, 65535)
ROW = int_in(0, MAX_INDEX)
SETTLE_S = float_in(0.0, MAX_SETTLE_S, "s")
G_US = float_in(0.0, MAX_G_US, "µS", lo_open=True)
TOLERANCE_US = float_in(0.0, MAX_G_US, "µS", lo_open=True)
TOLERANCE_REL = float_in(0.0, 1.0, lo_open=True)
FRACTION = float_in(0.0, 1.0)
LEVELS = int_in(1, MAX_LEVELS)
PULSES = int_in(1, MAX_PULSES)
READS = int_in(1, MAX_READS)
RETENTION_S = float_list(0.0, MAX_RETENTION_S, MAX_DELAYS, "s", lo_open=True)
TARGETS_US = float_list(0.0, MAX_G_US, MAX_CELLS, "µS", lo_open=True)
LEARNING_RATE = float_in(0.0, MAX_LR, lo_open=True)
WIDTH_S = float_in(0.0, MAX_WIDTH_S, "s", lo_open=True)


__all__ = [
    "FAULT_KINDS", "MAX_CELLS", "MAX_INDEX", "choice", "choice_of", "fault_kinds", "float_in", "float_list",
    "index_list", "int_in", "out_dir", "out_file", "refuse",
]  # fmt: skip
