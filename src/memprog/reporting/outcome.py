"""What a run achieved, computed once: one vocabulary, one rule, one function.

Why one module: the CLI's human text, every ``--json`` document, the program job's
``report.json``, the stored run summary and the dashboard used to count "within
tolerance", "converged" and "stuck" each their own way, so one run showed three sets of
numbers, and the exit code followed yet another rule. Everything that shows a count now
calls :func:`cell_outcome` (per-cell categories) and, for a program job,
:func:`program_outcome` (pairs and accuracy) — on the run's final per-cell rows, which the
store holds too, so the dashboard recomputes the very same numbers from the store.

Vocabulary (the flag words of :mod:`memprog.protocols.results`): each cell gets exactly one
primary category, so the counts add up to the cells:

* ``within_tolerance`` — a working cell whose final read is within its tolerance;
* ``stuck`` — unresponsive (flag ``stuck``, or ``skipped``: known stuck, not pulsed). The
  chip's fault, reported, never a failure of the job;
* a working cell outside its tolerance, by its most telling flag: ``drifted_out``,
  ``at_voltage_cap``, ``no_model``, ``noisy``, ``retry_budget``, ``limit_cycle``,
  ``pulse_budget``; else ``not_converged`` (gave up without saying why) or
  ``out_of_tolerance`` (accepted, then read outside its band).

Exit rule (:data:`EXIT_RULE`): ``tune``/``levels`` exit 0 when every working cell (level)
is within tolerance — stuck cells are reported, not failed; ``program`` exits 0 when the
pair (the copies of one conductance, together) of every live weight is within tolerance
and, with a test set, the chip's accuracy is within the job's accuracy tolerance of
software; otherwise 1. A pair with a stuck copy is the stuck cell's, like a stuck cell in
``tune``: its twin is aimed at ``2·G`` minus what the stuck copy holds, and when that pair
still ends outside its band (the stuck cell's reading moves more than the band, or the
twin would have to leave the chip's range) it is counted as ``pairs_stuck_limited``,
reported, not failed. A pair whose copies all work and that ends outside its band fails.
``pairs_dead`` counts both pairs of a dead weight, in band or not, so it overlaps
``pairs_within_tolerance``; ``pairs_by_outcome`` gives each pair exactly one category and
adds up to ``pairs`` (within tolerance, failed, stuck-limited, dead weight's pair outside).

This module imports only numpy and the protocols' result types (never the CLI), so a job,
the store and the dashboard can all use it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from memprog.core.errors import ConfigError, SafetyError
from memprog.core.signals import EXIT_BAD_INPUT, EXIT_CELLS_FAILED, EXIT_INSTRUMENT, EXIT_OK
from memprog.protocols.results import (
    FLAG_AT_CAP,
    FLAG_BUDGET,
    FLAG_DISTURBED,
    FLAG_DRIFTED,
    FLAG_LIMIT_CYCLE,
    FLAG_NO_MODEL,
    FLAG_NOISY,
    FLAG_RELAXED,
    FLAG_RETRIES,
    FLAG_SKIPPED,
    FLAG_STUCK,
    FLAG_WORDS,
)

WITHIN = "within_tolerance"
STUCK = FLAG_STUCK
NOT_CONVERGED = "not_converged"
OUT_OF_TOLERANCE = "out_of_tolerance"

# a working cell outside its tolerance is put in the first of these it carries (the most
# telling reason first); one without any is not_converged or out_of_tolerance
FAILURE_FLAGS: tuple[str, ...] = (
    FLAG_DRIFTED,
    FLAG_AT_CAP,
    FLAG_NO_MODEL,
    FLAG_NOISY,
    FLAG_RETRIES,
    FLAG_LIMIT_CYCLE,
    FLAG_BUDGET,
)
CATEGORIES: tuple[str, ...] = (WITHIN, STUCK, *FAILURE_FLAGS, NOT_CONVERGED, OUT_OF_TOLERANCE)
# flags that describe what happened to a cell that is fine: re-tuned after a disturb or a
# relaxation (the others say why a cell failed, or that it cannot be programmed)
BENIGN_FLAGS: tuple[str, ...] = (FLAG_DISTURBED, FLAG_RELAXED)

EXIT_RULE = {
    "tune": "0 when every working cell is within tolerance (stuck cells reported, not failed); else 1",
    "levels": "0 when every level is within tolerance; else 1",
    "program": "0 when the pair (copies together) of every live weight is within tolerance and, "
    "with a test set, chip accuracy is within the accuracy tolerance of software; else 1 "
    "(a pair held back by a stuck copy is reported as stuck-limited, not failed)",
}

# ---------------------------------------------------------------- colours (one table)
# One colour per flag word and per category, used by the matplotlib PNGs and served to the
# dashboard's JavaScript (``palette()``). Failures are saturated warm/purple hues, each its
# own; the two benign flags are pale cool ones; no failure shares a colour with a benign
# flag or with "within tolerance".
FLAG_COLOURS: dict[str, str] = {
    FLAG_STUCK: "#d50000",  # red
    FLAG_SKIPPED: "#8e0000",  # dark red: known stuck, not pulsed
    FLAG_DRIFTED: "#ff6d00",  # orange
    FLAG_AT_CAP: "#aa00ff",  # purple
    FLAG_BUDGET: "#c51162",  # crimson-pink
    FLAG_LIMIT_CYCLE: "#6200ea",  # indigo-violet
    FLAG_NOISY: "#ffab00",  # amber
    FLAG_RETRIES: "#795548",  # brown
    FLAG_NO_MODEL: "#212121",  # near black
    FLAG_DISTURBED: "#80deea",  # pale cyan (benign: re-tuned)
    FLAG_RELAXED: "#b3e5fc",  # pale blue (benign: relaxed, re-tuned)
}
CATEGORY_COLOURS: dict[str, str] = {
    WITHIN: "#2e7d32",  # green
    **{w: FLAG_COLOURS[w] for w in (STUCK, *FAILURE_FLAGS)},
    NOT_CONVERGED: "#f50057",  # pink
    OUT_OF_TOLERANCE: "#ffd600",  # yellow
}
# error maps (achieved - target): matplotlib's "coolwarm", negative blue, positive red;
# these stops are that colormap sampled at 0, 1/8, ..., 1 (tests check they still match)
ERROR_CMAP = "coolwarm"
ERROR_COLOURSCALE: list[tuple[float, str]] = [
    (0.0, "#3b4cc0"),
    (0.125, "#6282ea"),
    (0.25, "#8db0fe"),
    (0.375, "#b9d0f9"),
    (0.5, "#dddcdc"),
    (0.625, "#f5c4ac"),
    (0.75, "#f4987a"),
    (0.875, "#dd5f4b"),
    (1.0, "#b40426"),
]
# drawn bottom to top: benign first, failures on top
FLAG_DRAW_ORDER: tuple[str, ...] = (
    FLAG_RELAXED, FLAG_DISTURBED, FLAG_AT_CAP, FLAG_NOISY, FLAG_NO_MODEL, FLAG_RETRIES,
    FLAG_LIMIT_CYCLE, FLAG_BUDGET, FLAG_DRIFTED, FLAG_SKIPPED, FLAG_STUCK,
)  # fmt: skip


def flag_colour(word: str) -> str:
    """The flag's colour; an unknown word (a newer protocol's) gets the not-converged one,
    never a benign colour."""
    return FLAG_COLOURS.get(word, CATEGORY_COLOURS[NOT_CONVERGED])


def flag_layers(flags: Any) -> list[tuple[str, str, np.ndarray]]:
    """(word, colour, mask) per flag word present, in drawing order (failures last, on top):
    what the PNGs overlay on the achieved map, as the dashboard does."""
    f = np.asarray(flags, dtype=object).reshape(-1)
    codes, sets = _words(f, f.size)
    present = set().union(*sets) if sets else set()
    words = [w for w in FLAG_DRAW_ORDER if w in present] + sorted(present - set(FLAG_DRAW_ORDER))
    out = []
    for w in words:
        has = np.array([w in s for s in sets], dtype=bool)
        out.append((w, flag_colour(w), has[codes]))
    return out


def palette() -> dict[str, Any]:
    """The colour tables as JSON (what the dashboard's pages use)."""
    return {
        "flags": dict(FLAG_COLOURS),
        "categories": dict(CATEGORY_COLOURS),
        "benign_flags": list(BENIGN_FLAGS),
        "flag_order": list(FLAG_DRAW_ORDER),
        "error_colorscale": [[t, c] for t, c in ERROR_COLOURSCALE],
        "error_cmap": ERROR_CMAP,
    }


# ---------------------------------------------------------------- per-cell categories
def _words(flags: Any, n: int) -> tuple[np.ndarray, list[set[str]]]:
    """(codes, word sets): each distinct flag string split once (65,536 cells carry a few)."""
    if flags is None:
        return np.zeros(n, dtype=np.int64), [set()]
    # one vectorised pass: a missing value (None, NaN from a store) reads as "no flag"
    uniq, codes = np.unique(np.asarray(flags, dtype=object).reshape(n).astype(str), return_inverse=True)
    missing = {"", "None", "nan"}
    return codes.reshape(n), [
        {w for w in u.split(",") if w} if u not in missing else set() for u in uniq.tolist()
    ]


def categorize(flags: Any, converged: Any, within: Any) -> np.ndarray:
    """Each cell's primary category (an index into :data:`CATEGORIES`)."""
    within = np.asarray(within, dtype=bool).reshape(-1)
    n = within.size
    conv = np.asarray(converged, dtype=bool).reshape(n) if converged is not None else np.ones(n, bool)
    codes, sets = _words(flags, n)
    is_stuck = np.array([bool(s & {FLAG_STUCK, FLAG_SKIPPED}) for s in sets], dtype=bool)[codes]
    reason = np.full(len(sets), -1, dtype=np.int64)
    for k, s in enumerate(sets):
        for w in FAILURE_FLAGS:
            if w in s:
                reason[k] = CATEGORIES.index(w)
                break
    reason = reason[codes]
    cat = np.where(conv, CATEGORIES.index(OUT_OF_TOLERANCE), CATEGORIES.index(NOT_CONVERGED))
    cat = np.where(reason >= 0, reason, cat)
    cat = np.where(within, CATEGORIES.index(WITHIN), cat)
    return np.where(is_stuck, CATEGORIES.index(STUCK), cat).astype(np.int64)


def flag_census(flags: Any, n: int) -> dict[str, int]:
    """How many cells carry each flag word (a cell may carry several)."""
    out: Counter[str] = Counter()
    if flags is None or n == 0:
        return {}
    codes, sets = _words(flags, n)
    counts = np.bincount(codes, minlength=len(sets))
    for s, k in zip(sets, counts.tolist(), strict=True):
        for w in s:
            out[w] += k
    order = {w: i for i, w in enumerate(FLAG_WORDS)}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))


def within_tolerance(final_us: Any, target_us: Any, tolerance_us: Any) -> np.ndarray:
    """|final - target| <= tolerance (NaN reading: not within) — the one definition."""
    f = np.asarray(final_us, dtype=float)
    t = np.asarray(target_us, dtype=float)
    tol = np.broadcast_to(np.asarray(tolerance_us, dtype=float), f.shape)
    with np.errstate(invalid="ignore"):
        return np.abs(f - t) <= tol * (1 + 1e-9)


def cell_outcome(
    flags: Any,
    converged: Any,
    within: Any,
    *,
    kind: str = "tune",
    reads_verified: bool = False,
) -> dict[str, Any]:
    """The counts of one run's cells and the tune/levels exit decision.

    Args:
        flags: per-cell flag strings (None: no flags, e.g. a ladder).
        converged: per-cell acceptance by the protocol (None: not recorded).
        within: per-cell final read within tolerance (see :func:`within_tolerance`).
        kind: ``tune`` (also ``array``) or ``levels`` — names the rule in the output.
        reads_verified: every cell's final read was taken after the settle (the program
            job reads every cell itself). Otherwise (``tune``) a working cell the protocol
            did not accept counts by why it stopped, not as within tolerance: its final
            read is the last one before it gave up (a pulse budget, a noisy cell), never
            checked after the settle, and a relaxing cell read in band then may not be in
            band now. Those cells are counted in ``unverified_in_band``.

    Returns a JSON-ready dict: ``cells``, ``categories`` (adding up to ``cells``),
    ``converged``, ``within_tolerance`` (every cell whose final read is in band, stuck ones
    included), ``stuck``, ``working``, ``working_within_tolerance``, ``failed`` (working,
    outside), ``flags`` (census), ``exit_code``, ``ok``, ``rule``.
    """
    w = np.asarray(within, dtype=bool).reshape(-1)
    n = int(w.size)
    unverified = np.zeros(n, dtype=bool)
    if kind != "levels" and not reads_verified and converged is not None:
        unverified = w & ~np.asarray(converged, dtype=bool).reshape(n)
    cat = categorize(flags, converged, w & ~unverified)
    counts = np.bincount(cat, minlength=len(CATEGORIES))
    categories = {c: int(k) for c, k in zip(CATEGORIES, counts.tolist(), strict=True)}
    stuck = categories[STUCK]
    conv = int(np.asarray(converged, dtype=bool).sum()) if converged is not None else None
    failed = n - stuck - categories[WITHIN]
    rule_kind = "levels" if kind == "levels" else "tune"
    # a ladder's "cells" are its levels (one cell programmed n times): say so by name too
    named = {"levels": n} if kind == "levels" else {}
    return {
        "cells": n,
        **named,
        "categories": categories,
        "converged": conv,
        "within_tolerance": int(w.sum()),
        "unverified_in_band": int((unverified & (cat != CATEGORIES.index(STUCK))).sum()),
        "stuck": stuck,
        "working": n - stuck,
        "working_within_tolerance": categories[WITHIN],
        "failed": failed,
        "flags": flag_census(flags, n),
        "ok": failed == 0,
        "exit_code": exit_code_for_cells(failed),
        "rule": EXIT_RULE[rule_kind],
    }


def result_outcome(result: Any, kind: str = "tune") -> dict[str, Any]:
    """:func:`cell_outcome` of a :class:`~memprog.protocols.results.TuneResult`."""
    w = within_tolerance(result.final_us, result.target_us, result.tolerance_us)
    return cell_outcome(result.flags, result.converged, w, kind=kind)


def ladder_outcome(result: Any) -> dict[str, Any]:
    """:func:`cell_outcome` of a ladder (one "cell" per level; its ``within`` criterion)."""
    flags = getattr(result, "flags", None)
    return cell_outcome(flags, result.converged, result.within, kind="levels")


def frame_outcome(
    cells: Any, kind: str = "tune", tolerance_us: float | None = None, reads_verified: bool = True
) -> dict[str, Any]:
    """The same counts from stored cells (a pandas DataFrame from ``Store.cells``): what the
    dashboard shows. A ladder's level counts by its ``verify_max_err_us`` (every read).
    ``reads_verified`` (program runs): the job's settle and verification stored the rows;
    False for a program run that has not finished, whose rows are still the protocol's."""
    n = len(cells)
    num = {c: _col(cells, c) for c in ("final_us", "target_us", "tolerance_us", "verify_max_err_us")}
    tol = num["tolerance_us"]
    if (tol is None or not np.isfinite(tol).any()) and tolerance_us is not None:
        tol = np.full(n, float(tolerance_us))
    if tol is None:
        tol = np.full(n, np.nan)
    if num["verify_max_err_us"] is not None and kind == "levels":
        with np.errstate(invalid="ignore"):
            w = num["verify_max_err_us"] <= tol
    else:
        f = num["final_us"] if num["final_us"] is not None else np.full(n, np.nan)
        t = num["target_us"] if num["target_us"] is not None else np.full(n, np.nan)
        w = within_tolerance(f, t, tol)
    flags = cells["flags"].to_numpy(dtype=object) if "flags" in cells.columns else None
    conv = cells["converged"].fillna(False).to_numpy(dtype=bool) if "converged" in cells.columns else None
    if kind == "program":
        return program_outcome(
            flags, conv, w, pairs=pair_columns(cells, num["final_us"], tol), reads_verified=reads_verified
        )
    return cell_outcome(flags, conv, w, kind=kind)


def _col(cells: Any, name: str) -> np.ndarray | None:
    if name not in cells.columns:
        return None
    import pandas as pd  # deferred: pandas (~0.2 s); only a stored run's cell frame needs it

    return pd.to_numeric(cells[name], errors="coerce").to_numpy(dtype=float)


# ---------------------------------------------------------------- program: pairs, accuracy
def pair_columns(cells: Any, final_us: Any, tolerance_us: Any) -> dict[str, np.ndarray] | None:
    """The per-cell columns :func:`pair_outcome` needs, from stored cells (None if absent)."""
    need = ("layer", "i", "j", "sign", "nominal_us")
    if any(c not in cells.columns for c in need):
        return None
    out = {c: cells[c].to_numpy() for c in need}
    out["final_us"] = np.asarray(final_us, dtype=float)
    out["tolerance_us"] = np.asarray(tolerance_us, dtype=float)
    return out


def pair_outcome(
    layer: Any,
    i: Any,
    j: Any,
    sign: Any,
    nominal_us: Any,
    final_us: Any,
    tolerance_us: Any,
    stuck: Any,
) -> dict[str, Any]:
    """Pairs of a programmed network: the copies of one conductance, judged together.

    A pair (layer, input i, output j, sign) is within tolerance when the mean of its copies'
    final reads is within the pair's tolerance (its largest cell band) of the nominal
    conductance — a stuck copy's twin makes up for it, so the weight is right when the sum
    is. A weight is dead when every copy of one of its two conductances is stuck (nothing
    could fix it); its pairs are reported, not failed.

    ``pairs_dead`` is both pairs of every dead weight (``2 * weights_dead``), whether in
    band or not: a dead weight's live pair may be within tolerance and is then counted in
    ``pairs_within_tolerance`` too. Why keep that overlap: it answers "how many pairs can
    no longer carry their weight", which a partition cannot; ``pairs_by_outcome`` is the
    partition (each pair once, adding up to ``pairs``) for a reader who adds the counts.
    """
    layer = np.asarray(layer, dtype=np.int64)
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    neg = (np.asarray(sign) < 0).astype(np.int64)
    nominal = np.asarray(nominal_us, dtype=float)
    final = np.asarray(final_us, dtype=float)
    tol = np.asarray(tolerance_us, dtype=float)
    st = np.asarray(stuck, dtype=bool)
    n = layer.size
    if n == 0:
        return {"pairs": 0, "pairs_within_tolerance": 0, "pairs_failed": 0, "pairs_stuck_limited": 0, "pairs_dead": 0,
                "pairs_by_outcome": pairs_partition(0, 0, 0, 0), "weights": 0, "weights_dead": 0}  # fmt: skip
    wkey = np.stack([layer, i, j], axis=1)
    _, widx = np.unique(wkey, axis=0, return_inverse=True)
    widx = widx.reshape(-1)
    pkey = widx * 2 + neg
    _, pidx = np.unique(pkey, return_inverse=True)
    pidx = pidx.reshape(-1)
    npairs = int(pidx.max()) + 1
    cnt = np.bincount(pidx, minlength=npairs)
    live = np.bincount(pidx, weights=(~st).astype(float), minlength=npairs)
    fin = np.where(np.isfinite(final), final, np.nan)
    s = np.bincount(pidx, weights=np.nan_to_num(fin, nan=0.0), minlength=npairs)
    bad_read = np.bincount(pidx, weights=(~np.isfinite(final)).astype(float), minlength=npairs) > 0
    mean = s / np.maximum(cnt, 1)
    nom = np.zeros(npairs)
    nom[pidx] = nominal
    ptol = np.zeros(npairs)
    np.maximum.at(ptol, pidx, np.where(np.isfinite(tol), tol, 0.0))
    pair_in = (~bad_read) & (np.abs(mean - nom) <= ptol * (1 + 1e-9))
    pair_dead = live == 0
    pair_w = np.zeros(npairs, dtype=np.int64)
    pair_w[pidx] = widx
    nw = int(widx.max()) + 1
    w_dead = np.bincount(pair_w, weights=pair_dead.astype(float), minlength=nw) > 0
    of_dead_weight = w_dead[pair_w]
    # a pair with a stuck copy that its twin could not make up for is the stuck cell's
    stuck_limited = ~pair_in & ~of_dead_weight & (live < cnt)
    failed = ~pair_in & ~of_dead_weight & ~stuck_limited
    return {
        "pairs": npairs,
        "pairs_within_tolerance": int(pair_in.sum()),
        "pairs_failed": int(failed.sum()),
        "pairs_stuck_limited": int(stuck_limited.sum()),
        "pairs_dead": int(of_dead_weight.sum()),
        "pairs_by_outcome": pairs_partition(
            int(pair_in.sum()), int(failed.sum()), int(stuck_limited.sum()),
            int((of_dead_weight & ~pair_in).sum()),
        ),
        "weights": nw,
        "weights_dead": int(w_dead.sum()),
    }


def pairs_partition(within: int, failed: int, stuck_limited: int, dead_outside: int) -> dict[str, int]:
    """Each pair in exactly one category, so the four add up to ``pairs``: a dead weight's
    pair in band is ``within_tolerance`` (not counted again as dead)."""
    return {
        "within_tolerance": within,
        "failed": failed,
        "stuck_limited": stuck_limited,
        "dead_not_within_tolerance": dead_outside,
    }


def accuracy_outcome(
    software: float | None, chip: float | None, tolerance: float
) -> dict[str, Any] | None:
    """Chip vs software accuracy against the job's accuracy tolerance (a fraction, 0.03 = 3
    points); None without a test set."""
    if software is None or chip is None:
        return None
    drop = float(software) - float(chip)
    return {
        "software": float(software),
        "chip": float(chip),
        "drop": drop,
        "tolerance": float(tolerance),
        "ok": bool(drop <= tolerance + 1e-12),
    }


def program_outcome(
    flags: Any,
    converged: Any,
    within: Any,
    *,
    pairs: dict[str, np.ndarray] | None,
    software_accuracy: float | None = None,
    chip_accuracy: float | None = None,
    accuracy_tolerance: float = 0.03,
    reads_verified: bool = True,
) -> dict[str, Any]:
    """:func:`cell_outcome` plus the program job's pairs, accuracy and exit decision.

    Args:
        pairs: per-cell ``layer``, ``i``, ``j``, ``sign``, ``nominal_us``, ``final_us``,
            ``tolerance_us`` (see :func:`pair_columns`); None: each working cell is its own
            pair (a conductance map programmed with one copy).
    """
    # the job settles and reads every cell itself (memprog.jobs.program_settle); a run not
    # yet finished (the dashboard) holds the protocols' rows: reads_verified=False
    out = cell_outcome(flags, converged, within, kind="tune", reads_verified=reads_verified)
    if pairs is not None:
        stuck = categorize(flags, converged, within) == CATEGORIES.index(STUCK)
        p = pair_outcome(
            pairs["layer"], pairs["i"], pairs["j"], pairs["sign"], pairs["nominal_us"],
            pairs["final_us"], pairs["tolerance_us"], stuck,
        )  # fmt: skip
    else:
        p = {
            "pairs": out["cells"],
            "pairs_within_tolerance": out["working_within_tolerance"],
            "pairs_failed": out["failed"],
            "pairs_stuck_limited": 0,
            "pairs_dead": out["stuck"],
            # working_within_tolerance excludes stuck cells: the four add up to the cells
            "pairs_by_outcome": pairs_partition(out["working_within_tolerance"], out["failed"], 0, out["stuck"]),
            "weights": out["cells"],
            "weights_dead": out["stuck"],
        }
    out.update(p)
    acc = accuracy_outcome(software_accuracy, chip_accuracy, accuracy_tolerance)
    out["accuracy"] = acc
    ok = p["pairs_failed"] == 0 and (acc is None or acc["ok"])
    out["ok"] = bool(ok)
    out["exit_code"] = EXIT_OK if ok else EXIT_CELLS_FAILED
    out["rule"] = EXIT_RULE["program"]
    return out


def report_outcome(report: Any, accuracy_tolerance: float = 0.03) -> dict[str, Any]:
    """:func:`program_outcome` of a :class:`~memprog.jobs.program.ProgramReport`."""
    r = report.result
    w = within_tolerance(r.final_us, r.target_us, r.tolerance_us)
    cols = ("layer", "i", "j", "sign", "nominal_us")
    pairs = None
    if all(c in r.extra for c in cols):
        pairs = {c: r.extra[c] for c in cols}
        pairs["final_us"] = r.final_us
        pairs["tolerance_us"] = r.tolerance_us
    return program_outcome(
        r.flags, r.converged, w, pairs=pairs,
        software_accuracy=report.software_accuracy, chip_accuracy=report.chip_accuracy,
        accuracy_tolerance=accuracy_tolerance,
    )  # fmt: skip


def exit_code_for_error(exc: BaseException) -> int:
    """The exit code of a command that ended on ``exc``: 2 bad input, 3 everything else.

    Why one rule: every command (and the shared run lifecycle, :mod:`memprog.cli.runs`)
    must give a script the same answer for the same failure. Bad input (a ConfigError, or a
    SafetyError: a value the chip's limits refuse) is the caller's to fix and was refused
    before or without harm; an instrument, protocol or storage failure (the store's
    StoreError is a MemprogError, not a ConfigError) is the bench's or the database's.
    """
    return EXIT_BAD_INPUT if isinstance(exc, ConfigError | SafetyError) else EXIT_INSTRUMENT


def exit_code_for_cells(failed_cells: int) -> int:
    """The exit code of a run that finished: 1 when a cell the job was asked for failed, else 0."""
    return EXIT_CELLS_FAILED if failed_cells else EXIT_OK


def describe(o: dict[str, Any]) -> str:
    """One line of the counts, for the human text (the same numbers as the JSON)."""
    cats = o["categories"]
    bad = ", ".join(f"{k} {v}" for k, v in cats.items() if v and k not in (WITHIN, STUCK))
    text = (
        f"{o['working_within_tolerance']} of {o['working']} working cells within tolerance, "
        f"{o['stuck']} stuck (reported, not failed)"
        + (f"; outside: {bad}" if bad else "")
        + (f" ({o['unverified_in_band']} of them last read in band before the protocol gave up: "
           "not verified after the settle)" if o.get("unverified_in_band") else "")
        + (f"; converged {o['converged']} of {o['cells']}" if o.get("converged") is not None else "")
    )
    if "pairs" in o:
        dead_in = o["pairs_dead"] - o.get("pairs_by_outcome", {}).get("dead_not_within_tolerance", o["pairs_dead"])
        text += (
            f"\n  pairs (the copies of one conductance): {o['pairs_within_tolerance']} of {o['pairs']} "
            f"within tolerance, {o['pairs_failed']} failed, "
            + (f"{o['pairs_stuck_limited']} held back by a stuck copy (reported, not failed), "
               if o.get("pairs_stuck_limited") else "")
            + f"{o['pairs_dead']} in {o['weights_dead']} dead weights of {o['weights']} "
            "(every copy of one of the weight's two conductances stuck: reported, not failed"
            + (f"; overlaps the counts before it: {dead_in} of these pairs are within tolerance" if dead_in else "")
            + ")"
        )
    return text


__all__ = [
    "CATEGORIES",
    "CATEGORY_COLOURS",
    "ERROR_CMAP",
    "ERROR_COLOURSCALE",
    "EXIT_RULE",
    "FLAG_COLOURS",
    "accuracy_outcome",
    "categorize",
    "cell_outcome",
    "describe",
    "exit_code_for_cells",
    "exit_code_for_error",
    "flag_colour",
    "frame_outcome",
    "ladder_outcome",
    "pair_outcome",
    "pairs_partition",
    "palette",
    "program_outcome",
    "report_outcome",
    "result_outcome",
    "within_tolerance",
]
