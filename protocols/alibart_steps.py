"""The Alibart loop's measured steps: an averaged read, and a pulse with the read after it.

Why a module of its own: these two calls are where the loop meets the stack, and where its
cost per step is decided. The loop's rule (pulse the cells out of band, then read every cell
still active, ``n_avg`` reads each) is the paper's; how the reads and the pulse travel is the
stack's business. A stack that runs bursts on the instrument (the on-chip controller's
``READ:BURS?`` and ``PULS:READ?``) answers a step in one round trip instead of one message per
pulse and per averaged read; elsewhere the interface's defaults send the very same pulses and
reads one by one.

Only a batch of one cell (the ladder's case, where the per-message cost dominated: 51 -> 8-10
ms per level) takes the combined calls. A batch keeps host-paced calls, read for read and in
the same order as before: the README's program job on a fresh chip ends exactly where it did
(the combined calls shift every later read in bench time, and a different but equally honest
random stream flipped one of its 8,120 pairs out of tolerance).
"""

from __future__ import annotations

import numpy as np

from memprog.protocols.programmer import BURST_INTERVAL_S, CellProgrammer


def avg_read(
    prog: CellProgrammer,
    r: np.ndarray,
    c: np.ndarray,
    act: np.ndarray,
    read_v: float,
    n_avg: np.ndarray,
) -> np.ndarray:
    """Mean of ``n_avg`` reads of each active cell.

    Why a burst when every active cell takes the same count (always so for one cell, the
    ladder's case): the reads are the same reads, spaced as host-paced ones were
    (:data:`BURST_INTERVAL_S`), but a stack that runs bursts on the instrument answers
    them in one round trip instead of ``n_avg`` (a noisy cell averages up to 64). Mixed
    counts: one batched read per round of the cells that still need one.
    """
    k = n_avg[act]
    kmax = int(k.max())
    if kmax > 1 and r.size == 1:
        return prog.read_burst(r[act], c[act], kmax, read_v, BURST_INTERVAL_S).mean(axis=0)
    g = prog.read(r[act], c[act], read_v)
    if kmax == 1:
        return g
    tot = g.astype(float).copy()
    for j in range(2, kmax + 1):
        sub = np.flatnonzero(k >= j)
        tot[sub] += prog.read(r[act[sub]], c[act[sub]], read_v)
    return tot / k


def pulse_avg_read(
    prog: CellProgrammer,
    r: np.ndarray,
    c: np.ndarray,
    idx: np.ndarray,
    signed_v: np.ndarray,
    width_s: float,
    active: np.ndarray,
    read_v: float,
    n_avg: np.ndarray,
) -> np.ndarray | None:
    """Pulse the cells ``idx``, then the next loop read of the ``active`` cells (bool mask).

    Why one call: the loop's step is "pulse, then read what it did", and a stack that runs
    the pair on the instrument (:meth:`CellProgrammer.pulse_read`, the on-chip
    controller's ``PULS:READ?``) answers it in one round trip; elsewhere the interface's
    default sends the same pulse and the same reads as separate calls. The cells see
    what they saw before: the pulses on ``idx`` (the other active cells sit the pulse
    out, amplitude 0), then ``n_avg`` reads of each active cell. With mixed read counts the
    pulse goes alone and the reads follow as :func:`avg_read`. Returns the mean read of
    each active cell, or None when no cell stays active.
    """
    nxt = np.flatnonzero(active)  # ``idx`` is a subset: a pulsed cell is still active
    if r.size != 1:  # a batch: the pulse alone, then the reads (see the module docstring)
        prog.pulse(r[idx], c[idx], signed_v, width_s)
        return avg_read(prog, r, c, nxt, read_v, n_avg) if nxt.size else None
    k = n_avg[nxt]
    if int(k.min()) != int(k.max()):
        prog.pulse(r[idx], c[idx], signed_v, width_s)
        return avg_read(prog, r, c, nxt, read_v, n_avg) if nxt.size else None
    if nxt.size == idx.size:  # every active cell is pulsed (always so for a single cell)
        amp = signed_v
    else:
        amp = np.zeros(nxt.size)
        amp[np.searchsorted(nxt, idx)] = signed_v
    g = prog.pulse_read(
        r[nxt], c[nxt], amp, width_s, reads=int(k[0]), read_v=read_v, interval_s=BURST_INTERVAL_S
    )
    return g[0] if g.shape[0] == 1 else g.mean(axis=0)


__all__ = ["avg_read", "pulse_avg_read"]
