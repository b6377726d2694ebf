"""WGFMU waveforms as data: patterns, measure events and the pulse/read builders (no I/O).

The B1530A plays *patterns*: a start voltage and a list of vectors (time step, voltage),
the output ramping linearly from one vector to the next, on a 10 ns time grid. A
*measure event* samples the channel while a pattern plays. A channel's *sequence* is a
list of (pattern, loop count). :class:`memprog.drivers.wgfmu.WGFMU` sends these objects
through the library; everything here is pure so the waveforms of a write pulse, a read
window or a whole pulse train can be checked (and plotted) without an instrument.

Conventions:

* ``width_s`` of a pulse is its full width at half maximum: a trapezoid with edges of
  ``edge_s`` has a plateau of ``width_s - edge_s``. This is how pulse generators (and the
  4225-PMU) specify widths, so a 200 ns pulse here is a 200 ns pulse on the other stacks.
* Every time is checked to lie on the 10 ns grid (within 0.1 ps) rather than rounded: a
  200 ns pulse that silently became 190 ns would be a silent change of the experiment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from memprog.core.errors import ConfigError
from memprog.drivers import wgfmu_constants as wc

_GRID_TOL_S = 1e-13


def on_grid(name: str, t_s: float, minimum_s: float = 0.0) -> float:
    """``t_s`` checked to be a multiple of 10 ns and >= ``minimum_s`` (ConfigError if not)."""
    t = float(t_s)
    if not np.isfinite(t) or t < minimum_s - _GRID_TOL_S:
        raise ConfigError(name, t, f">= {minimum_s:g} s")
    n = round(t / wc.TIME_RESOLUTION_S)
    if abs(n * wc.TIME_RESOLUTION_S - t) > _GRID_TOL_S:
        raise ConfigError(name, t, "a multiple of 10 ns (the WGFMU sequencer grid)")
    return n * wc.TIME_RESOLUTION_S


@dataclass(frozen=True)
class MeasureEvent:
    """A sampling measurement inside a pattern (``WGFMU_setMeasureEvent``).

    Attributes:
        name: event name (unique within its pattern).
        time_s: start of the first sample, from the pattern's start.
        points: number of sampling points.
        interval_s: time between sampling points.
        averaging_s: averaging time of each point (0 = one instantaneous sample).
        raw: ``False`` (``WGFMU_MEASURE_EVENT_DATA_AVERAGED``): the event returns one
            value, the mean of its points; ``True`` (``..._RAW``): one value per point.
    """

    name: str
    time_s: float
    points: int = 1
    interval_s: float = 10e-9
    averaging_s: float = 0.0
    raw: bool = False

    def __post_init__(self) -> None:
        on_grid(f"{self.name}.time_s", self.time_s)
        if not isinstance(self.points, int | np.integer) or self.points < 1:
            raise ConfigError(f"{self.name}.points", self.points, "an integer >= 1")
        if (
            not wc.MEASURE_INTERVAL_MIN_S - _GRID_TOL_S
            <= self.interval_s
            <= wc.MEASURE_INTERVAL_MAX_S
        ):
            raise ConfigError(f"{self.name}.interval_s", self.interval_s, "[10 ns, 1.34217728 s]")
        on_grid(f"{self.name}.interval_s", self.interval_s)
        if self.averaging_s != 0:
            if not 10e-9 - _GRID_TOL_S <= self.averaging_s <= wc.AVERAGING_TIME_MAX_S:
                raise ConfigError(
                    f"{self.name}.averaging_s", self.averaging_s, "0 or [10 ns, 20.97152 ms]"
                )
            on_grid(f"{self.name}.averaging_s", self.averaging_s)
        if self.points > 1 and self.averaging_s > self.interval_s + _GRID_TOL_S:
            raise ConfigError(
                f"{self.name}.averaging_s",
                self.averaging_s,
                f"<= interval_s ({self.interval_s:g} s)",
            )

    @property
    def end_s(self) -> float:
        """When the last sample's averaging window closes."""
        return self.time_s + (self.points - 1) * self.interval_s + self.averaging_s

    @property
    def values(self) -> int:
        """How many values the event returns (1 when averaged, ``points`` when raw)."""
        return self.points if self.raw else 1

    @property
    def data_mode(self) -> int:
        """The library constant of the event's data mode."""
        return wc.MEASURE_EVENT_DATA_RAW if self.raw else wc.MEASURE_EVENT_DATA_AVERAGED


@dataclass(frozen=True)
class Pattern:
    """A named waveform: start voltage plus vectors (time step, end voltage of the step).

    Attributes:
        name: pattern name (unique within one library setup).
        initial_v: voltage at the pattern's time 0.
        dt_s: time steps (each a multiple of 10 ns, >= 10 ns).
        v: voltage reached at the end of each step (linear ramp within the step).
        events: measure events sampled while the pattern plays.
    """

    name: str
    initial_v: float
    dt_s: np.ndarray
    v: np.ndarray
    events: tuple[MeasureEvent, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        dt = np.asarray(self.dt_s, dtype=float).ravel()
        v = np.asarray(self.v, dtype=float).ravel()
        if dt.shape != v.shape or dt.size == 0:
            raise ConfigError(
                f"{self.name}.vectors", (dt.size, v.size), "equal, non-zero numbers of dt_s and v"
            )
        if not np.all(np.isfinite(v)) or not np.isfinite(self.initial_v):
            raise ConfigError(f"{self.name}.v", v.tolist(), "finite voltages")
        steps = np.round(dt / wc.TIME_RESOLUTION_S)
        if np.any(steps < 1) or np.any(np.abs(steps * wc.TIME_RESOLUTION_S - dt) > _GRID_TOL_S):
            bad = dt[(steps < 1) | (np.abs(steps * wc.TIME_RESOLUTION_S - dt) > _GRID_TOL_S)][0]
            raise ConfigError(f"{self.name}.dt_s", float(bad), "multiples of 10 ns, >= 10 ns")
        object.__setattr__(self, "dt_s", steps * wc.TIME_RESOLUTION_S)
        object.__setattr__(self, "v", v)
        names = [e.name for e in self.events]
        if len(set(names)) != len(names):
            raise ConfigError(f"{self.name}.events", names, "unique event names")
        for e in self.events:
            if e.end_s > self.duration_s + _GRID_TOL_S:
                raise ConfigError(
                    f"{self.name}.{e.name}",
                    e.end_s,
                    f"<= the pattern's duration ({self.duration_s:g} s)",
                )

    @property
    def duration_s(self) -> float:
        """Length of the pattern."""
        return float(self.dt_s.sum())

    @property
    def times_s(self) -> np.ndarray:
        """Absolute breakpoint times, starting with 0."""
        return np.concatenate([[0.0], np.cumsum(self.dt_s)])

    @property
    def voltages_v(self) -> np.ndarray:
        """Voltage at each breakpoint, starting with ``initial_v``."""
        return np.concatenate([[self.initial_v], self.v])

    @property
    def peak_v(self) -> tuple[float, float]:
        """Lowest and highest voltage the pattern outputs."""
        vv = self.voltages_v
        return float(vv.min()), float(vv.max())

    def level_at(self, t_s: object) -> np.ndarray:
        """Programmed voltage at times ``t_s`` (linear interpolation, like the sequencer)."""
        return np.interp(np.asarray(t_s, float), self.times_s, self.voltages_v)

    def renamed(self, name: str, keep_events: bool = False) -> Pattern:
        """The same waveform under another name (events dropped unless ``keep_events``)."""
        return Pattern(name, self.initial_v, self.dt_s, self.v, self.events if keep_events else ())

    def at_level(self, name: str, level_v: float = 0.0) -> Pattern:
        """A pattern with the same time grid holding ``level_v`` (e.g. a grounded electrode)."""
        return Pattern(name, level_v, self.dt_s, np.full(self.v.shape, float(level_v)))

    def with_events(self, *events: MeasureEvent) -> Pattern:
        """This pattern with ``events`` measured while it plays."""
        return Pattern(self.name, self.initial_v, self.dt_s, self.v, tuple(events))


def pulse_pattern(
    name: str,
    amplitude_v: float,
    width_s: float,
    edge_s: float = 10e-9,
    lead_s: float = 0.0,
    tail_s: float = 0.0,
) -> Pattern:
    """One trapezoidal pulse of ``amplitude_v`` and FWHM ``width_s``, from and back to 0 V.

    ``lead_s``/``tail_s`` add 0 V time before and after (e.g. to let a read settle).
    """
    w = on_grid("width_s", width_s, 20e-9)
    e = on_grid("edge_s", edge_s, 10e-9)
    if w - e < 10e-9 - _GRID_TOL_S:
        raise ConfigError("width_s", width_s, f">= edge_s + 10 ns ({e + 10e-9:g} s)")
    dts: list[float] = []
    vs: list[float] = []
    if lead_s:
        dts.append(on_grid("lead_s", lead_s, 10e-9))
        vs.append(0.0)
    dts += [e, w - e, e]
    vs += [float(amplitude_v), float(amplitude_v), 0.0]
    if tail_s:
        dts.append(on_grid("tail_s", tail_s, 10e-9))
        vs.append(0.0)
    return Pattern(name, 0.0, np.array(dts), np.array(vs))


def read_pattern(
    name: str,
    read_v: float,
    read_s: float = 10e-6,
    edge_s: float = 100e-9,
    settle_s: float = 1e-6,
    event: str = "read",
) -> Pattern:
    """A read window: ramp to ``read_v``, hold ``read_s``, ramp back; one averaged sample.

    The measure event starts ``settle_s`` into the plateau and averages until its end, so
    the value is the mean current (or voltage) of a settled ``read_s`` window.
    """
    r = on_grid("read_s", read_s, 20e-9)
    e = on_grid("edge_s", edge_s, 10e-9)
    s = on_grid("settle_s", settle_s)
    avg = r - s
    if avg < 10e-9 - _GRID_TOL_S or avg > wc.AVERAGING_TIME_MAX_S:
        raise ConfigError("read_s - settle_s", avg, "[10 ns, 20.97152 ms] (the averaging window)")
    ev = MeasureEvent(event, e + s, 1, max(avg, 10e-9), avg, raw=False)
    return Pattern(name, 0.0, np.array([e, r, e]), np.array([read_v, read_v, 0.0]), (ev,))


def pulse_read_train(
    name: str,
    amplitudes_v: Sequence[float] | np.ndarray,
    width_s: float,
    read_v: float,
    read_s: float = 10e-6,
    pulse_edge_s: float = 10e-9,
    read_edge_s: float = 100e-9,
    settle_s: float = 1e-6,
    gap_s: float = 1e-6,
) -> Pattern:
    """Pulse, read, pulse, read, ... as one pattern (one measure event per read window).

    Events are named ``read0``, ``read1``, ... in order, so the k-th measured value is the
    read after the k-th pulse. Between a pulse and its read the output rests ``gap_s`` at
    0 V. One execution of this pattern replaces 2 x N separate executions.
    """
    amps = np.atleast_1d(np.asarray(amplitudes_v, dtype=float))
    if amps.ndim != 1 or amps.size == 0:
        raise ConfigError("amplitudes_v", amps.shape, "a non-empty 1-D list of amplitudes")
    pulse = pulse_pattern("p", 0.0, width_s, pulse_edge_s)
    read = read_pattern("r", read_v, read_s, read_edge_s, settle_s)
    gap = on_grid("gap_s", gap_s, 10e-9)
    n = amps.size
    # one period: gap, pulse (3 vectors), gap, read (3 vectors)
    per_dt = np.concatenate([[gap], pulse.dt_s, [gap], read.dt_s])
    per_v = np.concatenate([[0.0], [1.0, 1.0, 0.0], [0.0], read.v])
    is_pulse = np.array([False, True, True, False, False, False, False, False])
    dts = np.tile(per_dt, n)
    vs = np.tile(per_v, n)
    mask = np.tile(is_pulse, n)
    vs[mask] = np.repeat(amps, 2)
    period = float(per_dt.sum())
    t_read0 = gap + pulse.duration_s + gap
    ev0 = read.events[0]
    events = tuple(
        MeasureEvent(
            f"read{k}", k * period + t_read0 + ev0.time_s, 1, ev0.interval_s, ev0.averaging_s
        )
        for k in range(n)
    )
    return Pattern(name, 0.0, dts, vs, events)


__all__ = [
    "MeasureEvent",
    "Pattern",
    "on_grid",
    "pulse_pattern",
    "read_pattern",
    "pulse_read_train",
]
