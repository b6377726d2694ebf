"""The simulated WGFMU library's pattern layer: patterns, measure events, sequences (offline).

Why a module of its own: building waveforms is the part of ``wgfmu.h`` that needs no
instrument -- ``clear``, ``createPattern``, ``addVector(s)``, ``setVector``,
``setMeasureEvent``, ``getPatternForceValueSize``, ``exportAscii`` work without a session
-- and it holds the library's largest state (every vector of every pattern), so its size
caps live here: the patterns held at once hold at most :data:`.wgfmu_codes.MAX_VECTORS`
vectors in all. :meth:`WgfmuPatterns._timeline` turns a channel's sequence into the
absolute breakpoints and measure events that :mod:`.wgfmu_execution` plays on the chip.
Times snap to the 10 ns grid of the B1530A.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memprog.sim_instruments.wgfmu_codes import (
    CONTEXT_ERROR,
    DATA_AVERAGED,
    DATA_RAW,
    DT_MAX_S,
    ERROR,
    GRID_S,
    LIBRARY_ERROR,
    MAX_SEQUENCE_ENTRIES,
    MAX_VECTORS,
    PARAMETER_OUT_OF_RANGE_ERROR,
    PATTERN_ALREADY_EXISTS_ERROR,
    PATTERN_NOT_FOUND_ERROR,
    V_ABS_MAX,
    CallFailed,
)
from memprog.sim_instruments.wgfmu_session import WgfmuSession


@dataclass
class HeldEvent:
    """A measure event as ``setMeasureEvent`` left it in a pattern (times on the 10 ns grid)."""

    name: str
    time_s: float
    points: int
    interval_s: float
    averaging_s: float
    raw: bool


@dataclass
class HeldPattern:
    """A pattern the library holds: breakpoints (time from its start, voltage) and events."""

    times: list[float]
    volts: list[float]
    events: dict[str, HeldEvent] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.times[-1]


def _grid(t: float) -> float:
    """``t`` on the B1530A's 10 ns time grid."""
    return round(t / GRID_S) * GRID_S


def interp_right(x: float, xp: np.ndarray, fp: np.ndarray) -> float:
    """Piecewise-linear value at ``x``; at a jump (two points at one time) the later value."""
    k = int(np.searchsorted(xp, x, side="right"))
    if k <= 0:
        return float(fp[0])
    if k >= xp.size:
        return float(fp[-1])
    x0, x1 = xp[k - 1], xp[k]
    if x1 <= x0:
        return float(fp[k])
    return float(fp[k - 1] + (fp[k] - fp[k - 1]) * (x - x0) / (x1 - x0))


class WgfmuPatterns(WgfmuSession):
    """Pattern and sequence functions of ``wgfmu.h`` (the offline half of the library)."""

    patterns: dict[str, HeldPattern]
    sequences: dict[int, list[tuple[str, int]]]
    _held: int

    def _pattern(self, raw: bytes | None) -> tuple[str, HeldPattern]:
        name = self._name(raw)
        p = self.patterns.get(name)
        if p is None:
            raise CallFailed(PATTERN_NOT_FOUND_ERROR, f"pattern {name!r} not found")
        return name, p

    # ================================================================== patterns (offline)
    def _clear(self) -> None:
        self.patterns.clear()
        self._held = 0
        self.sequences.clear()
        self.errors.clear()
        self.summary.clear()
        self.results.clear()
        self.expected.clear()

    def _room(self, n: int) -> None:
        """Refuse ``n`` more vectors when the patterns would hold more than MAX_VECTORS."""
        held = self._held  # kept by every call that adds vectors (a sum would cost O(patterns))
        if held + n > MAX_VECTORS:
            raise CallFailed(
                PARAMETER_OUT_OF_RANGE_ERROR,
                f"{n} more vectors: the patterns would hold {held + n}, at most {MAX_VECTORS} "
                "(simulator limit; WGFMU_clear frees them)",
            )

    def _createPattern(self, raw: bytes | None, v0: float) -> None:
        name = self._name(raw)
        if name in self.patterns:
            raise CallFailed(PATTERN_ALREADY_EXISTS_ERROR, f"pattern {name!r} already exists")
        self._room(1)
        self.patterns[name] = HeldPattern([0.0], [self._volt(v0)])
        self._held += 1

    def _add(self, p: HeldPattern, dt: float, v: float) -> None:
        if not np.isfinite(dt) or dt < GRID_S * 0.999 or dt > DT_MAX_S:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"dTime {dt} outside [1e-08, {DT_MAX_S}] s")
        self._room(1)
        v = self._volt(v)  # before anything is appended: times and volts stay the same length
        p.times.append(_grid(p.times[-1] + _grid(dt)))
        p.volts.append(v)
        self._held += 1

    def _addVector(self, raw: bytes | None, dt: float, v: float) -> None:
        _, p = self._pattern(raw)
        self._add(p, dt, v)

    def _addVectors(self, raw: bytes | None, dts: Any, vs: Any, size: int) -> None:
        _, p = self._pattern(raw)
        if not 1 <= size <= MAX_VECTORS or not dts or not vs:
            raise CallFailed(
                PARAMETER_OUT_OF_RANGE_ERROR, f"size {size} outside [1, {MAX_VECTORS}] (or a NULL array)"
            )
        self._room(size)
        d = np.ctypeslib.as_array(dts, shape=(size,)).astype(float)
        v = np.ctypeslib.as_array(vs, shape=(size,)).astype(float)
        if not np.all(np.isfinite(d)) or d.min() < GRID_S * 0.999 or d.max() > DT_MAX_S:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"a dTime outside [1e-08, {DT_MAX_S}] s")
        if not np.all(np.isfinite(v)) or np.abs(v).max() > V_ABS_MAX:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, "a voltage outside [-10, 10] V")
        steps = np.round(d / GRID_S)
        t = p.times[-1] + np.cumsum(steps) * GRID_S
        p.times.extend(np.round(t / GRID_S) * GRID_S)
        p.volts.extend(v.tolist())
        self._held += size

    def _setVector(self, raw: bytes | None, t: float, v: float) -> None:
        _, p = self._pattern(raw)
        if not np.isfinite(t) or t < 0:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"time {t} < 0")
        t = _grid(t)
        v = self._volt(v)
        times = np.asarray(p.times)
        hit = np.flatnonzero(np.abs(times - t) < GRID_S / 2)
        if hit.size:
            p.volts[int(hit[0])] = v
        else:
            k = int(np.searchsorted(times, t))
            self._room(1)
            p.times.insert(k, t)
            p.volts.insert(k, v)
            self._held += 1

    def _setMeasureEvent(
        self,
        raw: bytes | None,
        ev: bytes | None,
        t: float,
        points: int,
        interval: float,
        avg: float,
        rdata: int,
    ) -> None:
        _, p = self._pattern(raw)
        name = self._name(ev, "event")
        if name in p.events:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"event {name!r} already set in this pattern")
        if not np.isfinite(t) or t < 0:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"event time {t} < 0")
        if not 1 <= points <= MAX_VECTORS:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"points {points} outside [1, {MAX_VECTORS}]")
        if not 10e-9 * 0.999 <= interval <= 1.34217728:
            raise CallFailed(
                PARAMETER_OUT_OF_RANGE_ERROR, f"interval {interval} outside [10 ns, 1.34217728 s]"
            )
        if avg != 0 and not 10e-9 * 0.999 <= avg <= 0.02097152:
            raise CallFailed(
                PARAMETER_OUT_OF_RANGE_ERROR,
                f"averaging time {avg} outside 0 or [10 ns, 20.97152 ms]",
            )
        if points > 1 and avg > interval * 1.0001:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"averaging time {avg} > interval {interval}")
        if rdata not in (DATA_AVERAGED, DATA_RAW):
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"rawData {rdata}")
        p.events[name] = HeldEvent(
            name, _grid(t), int(points), _grid(interval), _grid(avg), rdata == DATA_RAW
        )

    def _getPatternForceValueSize(self, raw: bytes | None, size: Any) -> None:
        _, p = self._pattern(raw)
        self._out(size, len(p.times), "size")

    # ================================================================== sequences
    def _addSequence(self, ch: int, raw: bytes | None, loops: float) -> None:
        self._channel(ch)
        name, _ = self._pattern(raw)
        if not np.isfinite(loops) or loops < 1 or loops != int(loops) or loops > 1e12:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"loopCount {loops} (an integer 1 to 1e12)")
        self.sequences.setdefault(ch, []).append((name, int(loops)))
        self.results.pop(ch, None)

    def _addSequences(self, ch: int, names: Any, loops: Any, size: int) -> None:
        if not 1 <= size <= MAX_SEQUENCE_ENTRIES or not names or not loops:
            raise CallFailed(
                PARAMETER_OUT_OF_RANGE_ERROR,
                f"size {size} outside [1, {MAX_SEQUENCE_ENTRIES}] (or a NULL array)",
            )
        for i in range(size):
            self._addSequence(ch, names[i], float(loops[i]))

    def _timeline(self, ch: int) -> tuple[np.ndarray, np.ndarray, list[tuple[float, HeldEvent]]]:
        """Absolute breakpoints (t, v) of a channel's sequence and its events (start, event)."""
        ts: list[np.ndarray] = []
        vs: list[np.ndarray] = []
        events: list[tuple[float, HeldEvent]] = []
        t0 = 0.0
        total = points = 0
        for name, loops in self.sequences.get(ch, []):
            p = self.patterns.get(name)
            if p is None:
                raise CallFailed(
                    PATTERN_NOT_FOUND_ERROR,
                    f"pattern {name!r} of channel {ch}'s sequence was cleared",
                )
            pt, pv = np.asarray(p.times), np.asarray(p.volts)
            total += loops * pt.size
            if total > MAX_VECTORS:
                raise CallFailed(
                    LIBRARY_ERROR,
                    f"more than {MAX_VECTORS} vectors in one execution (simulator limit)",
                )
            points += loops * sum(e.points for e in p.events.values())
            if points > MAX_VECTORS:
                raise CallFailed(
                    LIBRARY_ERROR,
                    f"more than {MAX_VECTORS} measured points in one execution (simulator limit)",
                )
            dur = p.duration
            for e in p.events.values():
                if e.time_s + (e.points - 1) * e.interval_s + e.averaging_s > dur + GRID_S / 2:
                    raise CallFailed(
                        PARAMETER_OUT_OF_RANGE_ERROR,
                        f"event {e.name!r} ends after pattern {name!r} ({dur:g} s)",
                    )
            offs = t0 + dur * np.arange(loops)
            ts.append((offs[:, None] + pt[None, :]).ravel())
            vs.append(np.tile(pv, loops))
            for e in sorted(p.events.values(), key=lambda x: x.time_s):
                events.extend((float(o), e) for o in offs)
            t0 += loops * dur
        if not ts:
            return np.zeros(0), np.zeros(0), []
        events.sort(key=lambda x: x[0] + x[1].time_s)
        return np.concatenate(ts), np.concatenate(vs), events

    def _getForceValueSize(self, ch: int, size: Any) -> None:
        self._channel(ch)
        t, _, _ = self._timeline(ch)
        self._out(size, float(t.size), "size")

    def _getInterpolatedForceValue(self, ch: int, time: float, value: Any) -> None:
        self._channel(ch)
        t, v, _ = self._timeline(ch)
        if t.size == 0:
            raise CallFailed(CONTEXT_ERROR, f"channel {ch} has no sequence")
        if not 0 <= time <= t[-1]:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"time {time} outside [0, {t[-1]:g}] s")
        self._out(value, float(interp_right(time, t, v)), "forceValue")

    def _getMeasureTimeSize(self, ch: int, size: Any) -> None:
        self._channel(ch)
        _, _, events = self._timeline(ch)
        self._out(size, sum(e.points if e.raw else 1 for _, e in events), "size")

    def _exportAscii(self, raw: bytes | None) -> None:
        path = Path(self._name(raw, "file"))
        if not path.suffix:
            path = path.with_suffix(".csv")
        lines = ["pattern,time_s,voltage_v"]
        for name, p in self.patterns.items():
            lines += [f"{name},{t:.9g},{v:.6g}" for t, v in zip(p.times, p.volts, strict=True)]
        lines.append("pattern,event,time_s,points,interval_s,averaging_s,raw")
        for name, p in self.patterns.items():
            lines += [
                f"{name},{e.name},{e.time_s:.9g},{e.points},{e.interval_s:.9g},{e.averaging_s:.9g},{int(e.raw)}"
                for e in p.events.values()
            ]
        lines.append("channel,pattern,loops")
        for ch, seq in self.sequences.items():
            lines += [f"{ch},{name},{loops}" for name, loops in seq]
        try:
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        except OSError as exc:
            raise CallFailed(ERROR, f"cannot write {path}: {exc}") from None
