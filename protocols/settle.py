"""Relaxation-aware verification: settle, re-verify, re-tune; reads averaged as noise demands.

Why: a freshly programmed state is not yet the state that stays. Part of what the last
pulses did relaxes back within seconds (short-term plasticity), so a cell accepted on
reads taken microseconds after its last pulse can leave its band when the network runs.
Every protocol therefore ends with a settle-and-re-verify pass: let bench time pass
(:meth:`CellProgrammer.wait`: the simulated clock on the simulator, a real wait in the
lab), read every accepted cell again, re-tune the ones that drifted out, settle again; the
figures a protocol reports are the ones measured after the last settle.

The settle time is the protocol's own parameter. Its default is chosen per technology from
the bench's chip (``ProgrammerInfo.technology``), never from a simulator parameter:
:data:`SETTLE_DEFAULTS_S`. An unknown technology gets no settle unless one is asked for.

Adaptive averaging (:func:`adaptive_read`): a cell gets ``min_reads`` reads; only the cells
whose sample spread says the mean is not yet known to ``sem_target_us`` get more (in
rounds, up to ``max_reads``). Quiet cells cost ``min_reads`` reads, noisy ones what they
need; nothing here assumes a noise level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from memprog.core.errors import ConfigError
from memprog.protocols.events import EventSink, NullSink, wants_trace
from memprog.protocols.programmer import BURST_INTERVAL_S, CellProgrammer, ProgrammerInfo
from memprog.protocols.results import (
    FLAG_DISTURBED,
    FLAG_DRIFTED,
    FLAG_RELAXED,
    TuneResult,
    add_flag,
)

# [choice] Filamentary oxide cells relax mostly within the first seconds after a pulse
# (short-term plasticity of TiO2 and HfO2 filaments); 5 s lets what a pulse left volatile
# happen before the accepting reads. In the lab a user who has measured the chip's own
# relaxation passes settle_s.
SETTLE_DEFAULTS_S: dict[str, float] = {
    "hfo2_1t1r": 5.0,
    "tio2_passive": 5.0,
    "tio2x_feedforward": 5.0,
}
DEFAULT_SETTLE_ROUNDS = 3


def settle_s_field(what: str = "the final re-verify") -> Any:
    """The ``settle_s`` parameter every protocol shares (one definition, one meaning)."""
    return Field(
        default=None,
        ge=0,
        description=f"settle before {what} (None: the technology's default, "
        "protocols/settle.py; 0: none)",
    )


def settle_rounds_field(default: int = DEFAULT_SETTLE_ROUNDS) -> Any:
    """The ``settle_rounds`` parameter: how often cells that drift out are re-tuned."""
    return Field(
        default=default, ge=0, le=100, description="re-tunes of cells that drift out while settling"
    )


def default_settle_s(info: ProgrammerInfo) -> float:
    """The settle time for the bench's chip technology (0 for an unknown technology)."""
    return float(SETTLE_DEFAULTS_S.get(info.technology, 0.0))


def resolve_settle_s(programmer: CellProgrammer, settle_s: float | None) -> float:
    """``settle_s`` checked (>= 0, finite), or the technology default when None."""
    if settle_s is None:
        return default_settle_s(programmer.info)
    s = float(settle_s)
    if not np.isfinite(s) or s < 0:
        raise ConfigError("settle_s", settle_s, "a finite number of seconds >= 0")
    return s


def _reads(programmer: CellProgrammer, rows: np.ndarray, cols: np.ndarray, k: int, read_v: float, burst: bool) -> np.ndarray:
    """``k`` reads of each cell, shape (k, n): one burst, or ``k`` batched reads."""
    if burst:
        return programmer.read_burst(rows, cols, k, read_v, BURST_INTERVAL_S)
    return np.stack([programmer.read(rows, cols, read_v) for _ in range(k)])


def adaptive_read(
    programmer: CellProgrammer,
    rows: np.ndarray,
    cols: np.ndarray,
    read_v: float | None,
    sem_target_us: float | np.ndarray,
    min_reads: int = 2,
    max_reads: int = 32,
    sink: EventSink | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean conductance of each cell, with only as many reads as its own spread needs.

    Every cell is read ``min_reads`` times; a cell whose standard error of the mean
    (sample std / sqrt(n)) exceeds ``sem_target_us`` gets more reads, doubling its count
    per round, until it meets the target or has ``max_reads``. Each round reads the cells
    that still need reads: one :meth:`CellProgrammer.read_burst` for a single cell (a
    ladder's level: the same reads, spaced as host-paced ones were, in one round trip on a
    stack that runs bursts itself), one batched ``read`` per read for a batch (as before,
    read for read). A tracing ``sink`` gets one ``read`` record
    per cell, its mean (with ``n_reads``): the measurement a decision is made on, as the
    protocols record their averaged reads and bursts.

    Returns:
        (mean_us, n_reads, std_us) per cell.
    """
    if min_reads < 1 or max_reads < min_reads:
        raise ConfigError("min_reads/max_reads", (min_reads, max_reads), "1 <= min <= max")
    n = rows.size
    target = np.broadcast_to(np.asarray(sem_target_us, float), (n,))
    s1 = np.zeros(n)
    s2 = np.zeros(n)
    cnt = np.zeros(n, dtype=np.int64)
    burst = n == 1  # one cell (a ladder's level) reads in bursts; a batch read for read
    g = _reads(programmer, rows, cols, min_reads, read_v, burst)
    s1 += g.sum(axis=0)
    s2 += (g * g).sum(axis=0)
    cnt[:] = min_reads
    while True:
        mean = s1 / cnt
        var = np.maximum(s2 / cnt - mean * mean, 0.0) * cnt / np.maximum(cnt - 1, 1)
        need = (np.sqrt(var / cnt) > target) & (cnt < max_reads)
        if not need.any() or min_reads < 2:
            break
        idx = np.flatnonzero(need)
        extra = int(min(cnt[idx].min(), max_reads - cnt[idx].max()))
        extra = max(extra, 1)
        g = _reads(programmer, rows[idx], cols[idx], extra, read_v, burst)
        s1[idx] += g.sum(axis=0)
        s2[idx] += (g * g).sum(axis=0)
        cnt[idx] += extra
    mean = s1 / cnt
    std = np.sqrt(np.maximum(s2 / cnt - mean * mean, 0.0) * cnt / np.maximum(cnt - 1, 1))
    if sink is not None and wants_trace(sink):
        sink.record_event({"event": "read", "rows": rows, "cols": cols, "g_us": mean, "n_reads": cnt})
    return mean, cnt, std


@dataclass
class SettleReport:
    """What the settle-and-re-verify pass found (per cell, in the result's order)."""

    settled_us: np.ndarray  # mean of the reads after the last settle (NaN: not checked)
    settle_reads: np.ndarray
    rounds: int  # settles done
    retuned: np.ndarray  # re-tuned at least once after a settle
    settle_s: float


def settle_and_reverify(
    programmer: CellProgrammer,
    result: TuneResult,
    retune: Callable[[np.ndarray], TuneResult],
    settle_s: float,
    rounds: int = DEFAULT_SETTLE_ROUNDS,
    read_v: float | None = None,
    sink: EventSink | None = None,
    min_reads: int = 2,
    max_reads: int = 16,
) -> SettleReport:
    """Settle, re-read the converged cells, re-tune those out of band; update ``result``.

    ``retune(idx)`` re-tunes the cells ``idx`` (indices into ``result``) without settling
    and returns their :class:`TuneResult`. After at most ``rounds`` re-tunes a last settle
    is always followed by a read, so ``result.final_us`` of the checked cells is the mean
    measured after the settle, and a cell still outside its band is no longer converged
    (flag ``drifted_out``). Cells that had not converged are left as they are.
    """
    if settle_s <= 0:
        n = len(result)
        return SettleReport(np.full(n, np.nan), np.zeros(n, np.int64), 0, np.zeros(n, bool), 0.0)
    s = sink if sink is not None else NullSink()
    n = len(result)
    settled = np.full(n, np.nan)
    sreads = np.zeros(n, dtype=np.int64)
    retuned = np.zeros(n, dtype=bool)
    check = np.flatnonzero(result.converged)
    tol = np.broadcast_to(np.asarray(result.tolerance_us, float), (n,))
    # a passive array (no access transistor) puts a fraction of every re-tune pulse on the
    # cells sharing its lines: a re-tune can move cells already verified, so the read after
    # a re-tune covers every accepted cell, not only the re-tuned ones
    recheck_all = not programmer.info.has_gate and n > 1
    k = 0
    for k in range(rounds + 1):
        if check.size == 0:
            break
        programmer.wait(settle_s)
        m, cnt, _ = adaptive_read(
            programmer, result.rows[check], result.cols[check], read_v,
            0.25 * tol[check], min_reads=min_reads, max_reads=max_reads, sink=s,
        )  # fmt: skip
        settled[check] = m
        sreads[check] += cnt
        result.reads[check] += cnt
        out = np.abs(m - result.target_us[check]) > tol[check]
        s.record_event(
            {"event": "settle", "round": k, "settle_s": settle_s, "checked": int(check.size),
             "out_of_band": int(out.sum())}
        )  # fmt: skip
        result.final_us[check] = m
        if not out.any():
            break
        bad = check[out]
        if k == rounds:
            result.converged[bad] = False
            drifted = np.zeros(n, dtype=bool)
            drifted[bad] = True
            add_flag(result.flags, drifted, FLAG_DRIFTED)
            break
        again = retune(bad)
        result.pulses[bad] += again.pulses
        result.reads[bad] += again.reads
        retuned[bad] = True
        ok = again.converged
        result.converged[bad] = ok
        result.final_us[bad] = again.final_us
        for j in np.flatnonzero(~ok):  # only the cells the re-tune gave up on
            i = bad[j]
            words = [w for w in (result.flags[i], again.flags[j], FLAG_DRIFTED) if w]
            result.flags[i] = ",".join(dict.fromkeys(",".join(words).split(",")))
        check = np.flatnonzero(result.converged) if recheck_all else bad[ok]
    add_flag(result.flags, retuned, FLAG_RELAXED)
    result.extra["settled_us"] = settled
    result.extra["settle_reads"] = sreads
    return SettleReport(settled, sreads, k + 1, retuned, settle_s)


def verify_after_disturb(
    programmer: CellProgrammer,
    result: TuneResult,
    read_v: float | None = None,
    sink: EventSink | None = None,
) -> int:
    """On a passive array, read every accepted cell once more after the whole batch.

    Why: a serial stack tunes and settles one cell at a time, and on a crossbar every later
    cell's pulses put a fraction of their voltage (V/3, V/2) on the cells already done, so a
    cell's own verified read can be stale by the time the command ends (Drolet's disturb).
    What the result reports must be what the chip holds: each accepted cell is read again
    (averaged as the settle reads), and a cell now outside its band gets that reading, loses
    ``converged`` and is flagged ``drifted_out``. A gated (1T1R) array has no such coupling:
    nothing is done there. Returns the number of cells found out of band.
    """
    n = len(result)
    if programmer.info.has_gate or n < 2:
        return 0
    s = sink if sink is not None else NullSink()
    idx = np.flatnonzero(result.converged)
    if idx.size == 0:
        return 0
    tol = np.broadcast_to(np.asarray(result.tolerance_us, float), (n,))
    m, cnt, _ = adaptive_read(
        programmer, result.rows[idx], result.cols[idx], read_v, 0.25 * tol[idx], sink=s
    )
    result.reads[idx] += cnt
    out = np.abs(m - result.target_us[idx]) > tol[idx]
    bad = idx[out]
    result.final_us[bad] = m[out]
    result.converged[bad] = False
    mask = np.zeros(n, dtype=bool)
    mask[bad] = True
    add_flag(result.flags, mask, FLAG_DRIFTED)
    s.record_event({"event": "disturb_check", "checked": int(idx.size), "out_of_band": int(bad.size)})
    return int(bad.size)


def reverify(
    programmer: CellProgrammer,
    result: TuneResult,
    retune: Callable[[np.ndarray], TuneResult],
    sink: EventSink,
    passes: int = 1,
    final_check: bool = False,
    adopt_reads: bool = False,
    whole_array: bool = False,
) -> np.ndarray:
    """Read the accepted cells again and re-tune those out of their band; update ``result``.

    Why one loop: whoever programs more cells after a cell was accepted (the array job's
    later writes, the program job's next copy and chunk) must look again before the result
    says what the chip holds, and both callers must judge, re-tune and flag a cell the same
    way. Each pass reads every cell (one bulk :meth:`CellProgrammer.read_array` when
    ``whole_array`` and the cells are over half the array), and ``retune(idx)`` re-tunes the
    converged cells now out of band (flag ``disturbed``); up to ``passes`` passes, stopping
    at the first that finds none. ``final_check``: one more read after the last re-tune only
    reports (a cell still out gets that reading and the flag ``drifted_out``), so the result
    is what the chip holds, not the re-tuned cells' own estimate; the first pass's reads and
    the drift since acceptance land in ``extra`` (``reverify_us``, ``drift_us``: the
    disturb samples of the variability database) and the re-tuned cells in
    ``extra["retuned"]``. ``adopt_reads``: every converged cell takes the pass's reading as
    its ``final_us``. A ``reverify`` event reports each pass (with ``final_check`` every pass,
    else only a pass that found cells out of band). Returns the re-tuned cells (bool per cell).
    """
    n = len(result)
    info = programmer.info
    retuned = np.zeros(n, dtype=bool)
    if final_check:
        result.extra["reverify_us"] = np.full(n, np.nan)
        result.extra["drift_us"] = np.full(n, np.nan)
    for k in range(passes + 1 if final_check else passes):
        if whole_array and n > 0.5 * info.rows * info.cols:
            g = programmer.read_array()[result.rows, result.cols]
        else:
            g = programmer.read(result.rows, result.cols)
        result.reads = result.reads + 1
        if whole_array and wants_trace(sink):  # a whole-array read: recorded for the cells
            sink.record_event({"event": "read", "rows": result.rows, "cols": result.cols, "g_us": g})
        if final_check and k == 0:
            result.extra["reverify_us"] = g.copy()
            result.extra["drift_us"] = g - result.final_us
        out = result.converged & (np.abs(g - result.target_us) > result.tolerance_us)
        if adopt_reads:
            result.final_us = np.where(result.converged, g, result.final_us)
        if final_check and k == passes:
            if out.any():  # out of band on the chip after the last re-tune: say so
                result.final_us[out] = g[out]
                add_flag(result.flags, out, FLAG_DRIFTED)
            sink.record_event({"event": "reverify_final", "out_of_band": int(out.sum())})
            break
        if final_check or out.any():  # a disturb report logs every pass; else only finds
            sink.record_event({"event": "reverify", "pass": k, "out_of_band": int(out.sum())})
        if not out.any():
            break
        idx = np.flatnonzero(out)
        again = retune(idx)
        result.final_us[idx] = again.final_us
        result.pulses[idx] += again.pulses
        result.reads[idx] += again.reads
        result.converged[idx] = again.converged
        retuned[idx] = True
        for j, i in enumerate(idx):
            result.flags[i] = ",".join(w for w in (str(again.flags[j]), FLAG_DISTURBED) if w)
    if final_check:
        result.extra["retuned"] = retuned
    return retuned


def retention_check(
    programmer: CellProgrammer,
    rows: np.ndarray,
    cols: np.ndarray,
    targets_us: np.ndarray,
    tolerance_us: np.ndarray | float,
    delays_s: list[float],
    read_v: float | None = None,
    whole_array: bool = False,
    converged: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """Re-read the cells at each delay (seconds since the call) and report who stayed.

    The delays are cumulative from the start of the call (``10,3600`` reads after 10 s and
    after 1 h), each reached with :meth:`CellProgrammer.wait`. ``whole_array`` reads the
    array in one bulk read (large maps on row-parallel stacks).

    Returns:
        One dict per delay: ``delay_s``, ``cells``, ``within`` (count), ``fraction_within``,
        ``max_abs_error_us``, ``mean_error_us``; with ``converged`` (the cells the protocol
        accepted) also ``converged`` and ``fraction_within_converged``: of the cells that
        were programmed, how many are still in their band (stuck cells never were).
    """
    d = sorted(float(x) for x in delays_s)
    if not d or d[0] <= 0 or not np.all(np.isfinite(d)):
        raise ConfigError("retention_s", delays_s, "positive delays in seconds, e.g. 10,3600")
    tol = np.broadcast_to(np.asarray(tolerance_us, float), rows.shape)
    out, elapsed = [], 0.0
    for delay in d:
        programmer.wait(delay - elapsed)
        elapsed = delay
        if whole_array:
            g = programmer.read_array(read_v)[rows, cols]
        else:
            g = programmer.read(rows, cols, read_v)
        err = g - targets_us
        within = np.abs(err) <= tol
        out.append(
            {
                "delay_s": delay,
                "cells": int(rows.size),
                "within": int(within.sum()),
                "fraction_within": float(within.mean()) if rows.size else 0.0,
                "max_abs_error_us": float(np.abs(err).max()) if rows.size else 0.0,
                "mean_error_us": float(err.mean()) if rows.size else 0.0,
            }
        )
        if converged is not None:
            cv = np.asarray(converged, dtype=bool)
            out[-1]["converged"] = int(cv.sum())
            out[-1]["fraction_within_converged"] = float(within[cv].mean()) if cv.any() else 0.0
    return out


__all__ = [
    "SETTLE_DEFAULTS_S",
    "DEFAULT_SETTLE_ROUNDS",
    "FLAG_RELAXED",
    "FLAG_DRIFTED",
    "default_settle_s",
    "resolve_settle_s",
    "adaptive_read",
    "settle_and_reverify",
    "verify_after_disturb",
    "reverify",
    "SettleReport",
    "retention_check",
]
