"""A burst of reads of the simulated chip computed as arrays, bit for bit the per-read result.

Why a module of its own: a verify loop asks for hundreds of averaged reads per level
(``READ:BURS?``, ``PULS:READ?``; the instrument's burst of up to 64 reads of a few cells),
and reading them one :meth:`~.chip_noise.ReadNoise._observed_g` call at a time cost about
14 µs of Python per read: over half the wall of Alibart's ladder on the on-chip bench
(829 reads per level). Here the burst's read times, relaxation, telegraph (RTN) state
evolution and white noise are one array operation each over (reads, cells).

Bit identity with reading one read at a time (issue 25), so no figure of the chip moves:

* the random draws are the same stream in the same order. Each per-read call takes
  ``random((2, n), float32)`` (the fluctuators' flip draws: one 32-bit word each, value
  ``(word >> 8) * 2**-24``) and then ``integers(0, POOL_SIZE - n)`` (the noise pool window:
  one word through Lemire's bounded multiply, a second word on the rare rejection). So the
  whole burst's words are taken in one ``integers(0, 2**32, dtype=uint32)`` call and cut the
  same way; a rejection (probability ``(2**32 mod (POOL_SIZE - n)) / 2**32``, about 1e-6
  for one cell) shifts the later reads by one word and is handled where it falls;
* the clock advances by the same float additions in the same order (one read time, then
  the rest of the interval), so every read sees the same time;
* every arithmetic step is the per-read expression, broadcast over the reads; the RTN
  state of read j is the state before the burst XOR every flip up to j (a cumulative XOR).

Where those premises do not hold the caller keeps the per-read path: a cell named twice in
the burst (the per-read path lets the last copy's state win between reads), a burst too
large for one array (more than :data:`BURST_CELLS_MAX` cell-reads), or more cells than the
noise pool serves. Should a numpy release change how ``random``/``integers`` consume their
words, the burst would still be exact in distribution (uniform flips from raw words, an
unbiased bounded integer); only the identity with the per-read path would go, and
``tests/sim_instruments/test_chip_burst.py`` compares the two byte for byte.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from memprog.sim_instruments.chip_cells import BLOCK_CELLS, Sel, count_cells

if TYPE_CHECKING:  # pragma: no cover
    from memprog.sim_instruments.chip_noise import ReadNoise

#: largest burst (reads x cells) computed as one array: the (reads, 2, cells) temporaries
#: stay cache-sized, as a block of a whole-array read does (chip_cells.BLOCK_CELLS)
BURST_CELLS_MAX = BLOCK_CELLS
_WORD = 1 << 32
_EXACT_EXCL = 1 << 21  # bounds whose word products stay exact in float64 (< 2**53)
_UNIT_F32 = np.float32(1.0 / (1 << 24))  # numpy's float32 uniform: (word >> 8) * 2**-24


def burst_vectorisable(sel: Sel, reads: int, n_cells: int, pool_size: int) -> bool:
    """Whether :func:`observed_burst` reproduces the per-read path for this burst."""
    n = count_cells(sel, n_cells)
    if n == 0 or reads * n > BURST_CELLS_MAX or n > pool_size // 2:
        return False
    return type(sel) is slice or np.unique(sel).size == n


def burst_draws(
    rng: np.random.Generator, reads: int, n: int, rtn: bool, noisy: bool, pool_size: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The draws of ``reads`` successive per-read calls on ``n`` cells, from ``rng``'s stream.

    Returns the flip draws (reads, 2, n) float32 (None without RTN) and the noise pool
    window starts (reads,) int64 (None without noise), exactly as ``reads`` rounds of
    ``rng.random((2, n), float32)`` then ``rng.integers(0, pool_size - n)`` give them, and
    leaves ``rng`` where those rounds would.
    """
    a = 2 * n if rtn else 0  # words of one read's flips
    b = 1 if noisy else 0  # words of one read's window start (without rejection)
    per = a + b
    if per == 0:
        return None, None
    words = rng.integers(0, _WORD, size=reads * per, dtype=np.uint32)
    starts = None
    if noisy:
        excl = pool_size - n  # Lemire: m = word * excl, rejected while m mod 2**32 < threshold
        threshold = _WORD % excl
        w = words[a::per]
        # m mod 2**32 is the uint32 product (it wraps); m // 2**32 is w * (excl / 2**32)
        # truncated, exact in float64 while w * excl < 2**53 (the noise pool: 2**52)
        if int((w * np.uint32(excl)).min()) >= threshold:  # no rejection: the usual case
            if excl <= _EXACT_EXCL:
                starts = (w * (excl / _WORD)).astype(np.int64)
            else:
                starts = ((w.astype(np.uint64) * np.uint64(excl)) >> np.uint64(32)).astype(np.int64)
    if starts is not None or not noisy:
        flips = None
        if rtn:
            flips = (words.reshape(reads, per)[:, :a] >> 8).astype(np.float32)
            flips *= _UNIT_F32
            flips = flips.reshape(reads, 2, n)
        return flips, starts
    return _draws_with_rejection(rng, words, reads, n, a, per, pool_size)


def _draws_with_rejection(
    rng: np.random.Generator,
    words: np.ndarray,
    reads: int,
    n: int,
    a: int,
    per: int,
    pool_size: int,
) -> tuple[np.ndarray | None, np.ndarray]:
    """:func:`burst_draws` where a window start's word was rejected (about once per million
    reads of one cell): that read takes the next word (and so on), every later read's draws
    come that many words later, and the words they now need follow ``words`` in ``rng``'s
    stream."""
    excl = pool_size - n
    threshold = _WORD % excl
    shift = np.zeros(reads, dtype=np.int64)  # words rejected before each read's draws
    starts = np.empty(reads, dtype=np.int64)
    j = s = 0
    while j < reads:
        pos = np.arange(j, reads, dtype=np.int64) * per + (a + s)
        m = words[pos].astype(np.uint64) * np.uint64(excl)
        bad = (m & np.uint64(_WORD - 1)) < threshold
        k = int(np.argmax(bad)) if bad.any() else reads - j
        starts[j : j + k] = (m[:k] >> np.uint64(32)).astype(np.int64)
        shift[j : j + k] = s
        if j + k == reads:
            break
        shift[j + k] = s  # the rejected read's flips came before its start words
        w = int(pos[k])
        while True:
            w += 1
            s += 1
            words = _words_up_to(words, rng, w + 1)
            mk = int(words[w]) * excl
            if mk % _WORD >= threshold:
                break
        starts[j + k] = mk >> 32
        j += k + 1
        words = _words_up_to(words, rng, reads * per + s)
    flips = None
    if a:
        idx = (np.arange(reads, dtype=np.int64) * per + shift)[:, None] + np.arange(a)
        flips = ((words[idx] >> 8).astype(np.float32) * _UNIT_F32).reshape(reads, 2, n)
    return flips, starts


def _words_up_to(words: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """``words`` continued from ``rng``'s stream to ``size`` words (unchanged if it has them)."""
    if words.size >= size:
        return words
    more = rng.integers(0, _WORD, size=size - words.size, dtype=np.uint32)
    return np.concatenate((words, more))


def read_times(
    t0_s: float, reads: int, step_s: float, read_time_s: float
) -> tuple[list[float], float]:
    """Start time of each read and the clock after the burst, by the per-read path's float
    additions in its order (one read time, then the rest of the interval)."""
    rest = step_s - read_time_s
    t = t0_s
    starts = []
    for j in range(reads):
        if j:
            t += rest
        starts.append(t)
        t += read_time_s
    return starts, t


def observed_burst(chip: ReadNoise, sel: Sel, reads: int, step_s: float) -> np.ndarray:
    """``reads`` reads of the cells ``sel`` (reads, cells) µS, starts ``step_s`` apart; the
    chip's RTN state, RNG and clock end where the per-read path leaves them.

    Each line is :meth:`~.chip_noise.ReadNoise._observed_block`'s arithmetic with a leading
    reads axis (a float32 cast by assignment is the same rounding as ``astype``)."""
    p, fx = chip.params, chip.effects
    n = count_cells(sel, chip.n_cells)
    flips, starts = burst_draws(
        chip._rng, reads, n, fx.rtn, fx.read_noise or chip._spreads, chip._pool.size
    )
    t_list, end_s = read_times(chip._clk[0], reads, step_s, p.read_time_s)
    t = np.array(t_list)
    tc = t[:, None]
    if chip._relaxes:
        age = tc - chip._t_prog_s[sel]
        age *= -1.0 / p.relax_tau_s
        rel = np.expm1(age)
        np.negative(rel, out=rel)
        rel *= chip._relax_us[sel]
        g = chip._g[sel] + rel
    else:
        g = np.repeat((chip._g[sel] + 0.0)[None, :], reads, axis=0)
    if flips is not None:
        dt = np.empty((reads, 1, n), dtype=np.float32)
        dt[0, 0] = t[0] - chip._rtn_t_s[sel]
        if reads > 1:
            dt[1:] = (t[1:] - t[:-1])[:, None, None]
        np.negative(dt, out=dt)
        x = dt * chip._rtn_rate2[:, sel]  # (reads, 2, n)
        np.expm1(x, out=x)
        x *= np.float32(-0.5)
        st = np.logical_xor.accumulate(flips < x, axis=0)
        st ^= chip._rtn_state[:, sel]
        chip._rtn_state[:, sel] = st[-1]
        chip._rtn_t_s[sel] = t[-1]
        half = st.astype(np.float32)
        half -= 0.5
        half *= chip._rtn_amp_us[:, sel]
        g += half[:, 0] + half[:, 1]
    if starts is not None:
        z = chip._pool[starts[:, None] + np.arange(n)] if n > 1 else chip._pool[starts][:, None]
        if fx.read_noise:
            sd = np.abs(g)
            sd *= p.read_noise_rel
            sd += p.read_noise_abs_us
        else:
            sd = np.zeros(g.shape)
        if chip._spreads:
            sd = np.sqrt(sd * sd + chip._flicker_var(g, sd))
        sd *= z
        g += sd
    chip._clk[0] = end_s
    return g
