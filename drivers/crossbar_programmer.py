"""The k4200_707b stack: program a passive crossbar with a 4200A-SCS through a 707B matrix.

This is the setup of seed 001 (Drolet et al.): the 4200A-SCS pulses with its 4225-PMU
channels and reads with its SMUs; a 707B routes those terminals to the word and bit lines
of a wire-bonded passive crossbar. A cell is selected by routing:

* **write pulse** (V/3 scheme, V/2 configurable): selected word line <- ``pulse_row`` at
  V, unselected word lines <- ``bias_rows`` at V/3, unselected bit lines <- ``bias_cols``
  at 2V/3, selected bit line <- ``pulse_col`` at 0 V. Every cell off the selected one sees
  +-V/3 (V/2 scheme: the half-selected cells see V/2, the others 0). All pulsed levels come
  from synchronised PMU channels, so the bias exists only for the pulse.
* **read**: selected word line <- ``read_force`` at the read voltage (0.2 V), selected bit
  line <- ``read_sense`` at 0 V, whose current is the cell's current. With
  ``read_scheme: ground`` every other line is held at 0 V by ``read_ground``, so sneak
  currents flow into that terminal and not into the sense SMU; with ``float`` they are left
  open and sneak paths add to the reading, as on a real bench.

A reading of (almost) no current is an open circuit (a routing or wiring fault, a broken
bond), reported as :class:`OpenCircuitError` rather than as a conductance. After every
operation the matrix is opened (``matrix_release: operation``) or, with ``batch``, kept
between the cells of one call and opened at its end. Any error leaves every source at 0 V
and the matrix open.

The stack is serial (one cell per operation), so the per-cell loop here is the hardware's
own granularity; everything that can be computed once (channel names, routes, PMU levels
already set) is cached so each operation sends only what changed.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from memprog.core.crossbar_wiring import (
    CrossbarWiring,
    pmu_channel_number,
    smu_number,
    terminal_kind,
    wiring_from_bench,
)
from memprog.core.errors import ConfigError, InstrumentError, OpenCircuitError, ProtocolError
from memprog.core.limits import SafetyLimits
from memprog.core.safe_steps import run_safe_steps, try_safe_state
from memprog.core.validation import MemprogModel
from memprog.drivers import kxci_commands as kx
from memprog.drivers.keithley707b import Keithley707B, Keithley707BSettings, MatrixInterlock
from memprog.drivers.keithley4200 import Keithley4200, Keithley4200Settings
from memprog.drivers.stack_options import driver_options, programmer_options
from memprog.drivers.transport import LinkError
from memprog.protocols.programmer import CellProgrammer, ProgrammerInfo, cell_indices, pulse_batch

STACK = "k4200_707b"


class CrossbarOptions(MemprogModel):
    """``programmer.options`` of a k4200_707b bench."""

    bias_scheme: Literal["v3", "v2"] | None = Field(
        default=None, description="None: chip.bias_scheme"
    )
    read_scheme: Literal["ground", "float"] | None = Field(
        default=None, description="None: chip.read_scheme"
    )
    matrix_release: Literal["operation", "batch"] = "operation"
    read_v: float = Field(default=0.2, description="default read voltage, V")
    read_compliance_a: float | None = Field(
        default=None, gt=0, description="None: limits.current_compliance_a"
    )
    open_circuit_us: float = Field(
        default=1.0, gt=0, description="a read below this is an open circuit"
    )
    rise_s: float = Field(default=20e-9, ge=20e-9, le=33e-3, description="PMU rise time")
    fall_s: float = Field(default=20e-9, ge=20e-9, le=33e-3, description="PMU fall time")
    period_factor: float = Field(
        default=2.0, ge=1.0, le=1000, description="PMU period = factor * (width + edges)"
    )
    verify_routes: bool = Field(
        default=False, description="read back the 707B state after every route"
    )
    pmu_load_ohm: float = Field(
        default=1e6,
        ge=1.0,
        le=1e7,
        description=":PMU:LOAD sent at set-up; limits are checked on the voltage at the device",
    )
    pmu_source_range_v: Literal[10, 40] = Field(
        default=10, description=":PMU:SOURCE:RANGE sent at set-up"
    )

    @model_validator(mode="after")
    def _read_v_nonzero(self) -> CrossbarOptions:
        if self.read_v == 0:
            raise ConfigError("read_v", self.read_v, "non-zero")
        return self


class CrossbarProgrammer(CellProgrammer):
    """CellProgrammer of a passive crossbar behind a 707B, driven by a 4200A-SCS.

    Args:
        analyzer: the connected 4200A-SCS driver.
        matrix: the connected 707B driver (its interlock built from ``wiring``).
        wiring: the bench's validated wiring.
        rows, cols: chip size.
        limits: the chip's safety limits (checked before anything is sent).
        bias_scheme, read_scheme: ``"v3"``/``"v2"`` and ``"ground"``/``"float"``.
        options: stack options (release policy, read voltage, PMU edges, ...).
        technology: for ProgrammerInfo.
    """

    #: no analog VMM: the 4200 reads one cell at a time through the matrix
    supports_vmm = False

    def __init__(
        self,
        analyzer: Keithley4200,
        matrix: Keithley707B,
        wiring: CrossbarWiring,
        rows: int,
        cols: int,
        limits: SafetyLimits,
        bias_scheme: str = "v3",
        read_scheme: str = "ground",
        options: CrossbarOptions | None = None,
        technology: str = "",
    ) -> None:
        self.analyzer = analyzer
        self.matrix = matrix
        self.wiring = wiring
        self.options = options or CrossbarOptions()
        o = self.options
        self.bias_scheme = o.bias_scheme or bias_scheme
        self.read_scheme = o.read_scheme or read_scheme
        if self.bias_scheme not in ("v3", "v2"):
            raise ConfigError("bias_scheme", self.bias_scheme, "'v3' or 'v2'")
        # disturb interlock: the largest share of a write any unselected cell sees (V/3: every
        # unselected cell sees V/3; V/2: the half-selected ones see V/2). The limits the
        # protocols check against are capped accordingly, so a ramp that would cross the
        # interlock is refused before the first pulse, not halfway through a run.
        self.bias_fraction = 1 / 3 if self.bias_scheme == "v3" else 1 / 2
        self.bench_limits = limits
        cap = limits.pulse_cap_v(self.bias_fraction)
        if cap < max(limits.set_v_max, limits.reset_v_max):
            limits = limits.model_copy(
                update={
                    "set_v_max": min(limits.set_v_max, cap),
                    "reset_v_max": min(limits.reset_v_max, cap),
                }
            )
        self.limits = limits
        if self.read_scheme not in ("ground", "float"):
            raise ConfigError("read_scheme", self.read_scheme, "'ground' or 'float'")
        roles = wiring.roles
        if self.read_scheme == "ground" and roles.read_ground is None:
            raise ConfigError(
                "wiring.roles.read_ground",
                None,
                "a terminal (SMU or GNDU)",
                "read_scheme 'ground' needs one",
            )
        wiring.check_chip(rows, cols)
        limits.check_read(o.read_v)
        self.read_compliance_a = o.read_compliance_a or limits.current_compliance_a
        if self.read_compliance_a > limits.current_compliance_a:
            raise ConfigError(
                "read_compliance_a",
                self.read_compliance_a,
                f"<= {limits.current_compliance_a} A (limits)",
            )
        self.info = ProgrammerInfo(
            rows=rows,
            cols=cols,
            parallel="cell",
            has_gate=False,
            g_range_us=(limits.conductance_min_us, limits.conductance_max_us),
            read_v=o.read_v,
            technology=technology,
        )
        # bias fractions of the unselected rows / columns
        self._k_rows, self._k_cols = (1 / 3, 2 / 3) if self.bias_scheme == "v3" else (0.5, 0.5)
        # channel names, computed once: [terminal role][line index]
        w = wiring

        def chans(term: str | None, kind: str, n: int) -> list[str]:
            if term is None:
                return []
            return [w.channel(term, kind, i) for i in range(n)]  # type: ignore[arg-type]

        self._ch = {
            "pulse_row": chans(roles.pulse_row, "word", rows),
            "bias_rows": chans(roles.bias_rows, "word", rows),
            "pulse_col": chans(roles.pulse_col, "bit", cols),
            "bias_cols": chans(roles.bias_cols, "bit", cols),
            "read_force": chans(roles.read_force, "word", rows),
            "read_sense": chans(roles.read_sense, "bit", cols),
            "ground_rows": chans(roles.read_ground, "word", rows),
            "ground_cols": chans(roles.read_ground, "bit", cols),
        }
        self._pmu = {
            "pulse_row": pmu_channel_number(roles.pulse_row),
            "bias_rows": pmu_channel_number(roles.bias_rows),
            "bias_cols": pmu_channel_number(roles.bias_cols),
        }
        self._pulse_col_pmu = (
            pmu_channel_number(roles.pulse_col) if terminal_kind(roles.pulse_col) == "PMU" else None
        )
        self._force = smu_number(roles.read_force)
        self._sense = smu_number(roles.read_sense)
        self._ground_smu = (
            smu_number(roles.read_ground)
            if roles.read_ground is not None and terminal_kind(roles.read_ground) == "SMU"
            else None
        )
        self._routes: dict[tuple[str, int, int], list[str]] = {}
        self._invalidate()

    # ------------------------------------------------------------------ state caches
    def resync(self) -> None:
        """Forget every cached instrument level and route; the next operation sets up again.

        Needed only after driving the instruments directly in a way their drivers cannot
        see (e.g. raw messages); driver-level resets (``safe_state``, sweeps, user modules,
        ``pmu_init``) are noticed by themselves.
        """
        self._invalidate()

    def _ready(self) -> None:
        if not self._configured or self.analyzer.epoch != self._epoch:
            self._invalidate()
            self.setup()

    def _invalidate(self) -> None:
        self._configured = False
        self._epoch = -1
        self._trains: dict[int, tuple[float, float]] = {}
        self._times: dict[int, tuple[float, float, float, float]] = {}
        self._smu_v: dict[int, float] = {}
        self._route: tuple[str, int, int] | None = None

    def setup(self) -> None:
        """Put both instruments in the stack's working state (done lazily before the first use).

        PMU channels in standard pulse mode, RPMs on the PMU path, outputs on at a 0 V base,
        one pulse per execution; sense and ground SMUs at 0 V; matrix open.
        """
        a = self.analyzer
        self.matrix.open_all()
        a.pmu_init(0)
        terms = [
            self.wiring.roles.pulse_row,
            self.wiring.roles.bias_rows,
            self.wiring.roles.bias_cols,
        ]
        if self._pulse_col_pmu is not None:
            terms.append(self.wiring.roles.pulse_col)
        for t in terms:
            a.pmu_configure_rpm(t, 0)
        for t in terms:  # labready: the PMU corrects its 50 ohm source for this load
            a.pmu_source_range(pmu_channel_number(t), self.options.pmu_source_range_v)
            a.pmu_load(pmu_channel_number(t), self.options.pmu_load_ohm)
        a.pmu_measure_mode(1)
        a.pmu_burst_count(1)
        for t in terms:
            ch = pmu_channel_number(t)
            a.pmu_pulse_train(ch, 0.0, 0.0)
            self._trains[ch] = (0.0, 0.0)
            a.pmu_output(ch, True)
        for smu in (self._sense, self._ground_smu):
            if smu is not None:
                self._set_smu(smu, 0.0)
        self._configured = True
        self._epoch = a.epoch

    def _set_smu(self, smu: int, voltage_v: float) -> None:
        v = kx.sent_value(voltage_v)
        if self._smu_v.get(smu) != v:
            self.analyzer.source_voltage(smu, v, self.read_compliance_a)
            self._smu_v[smu] = v

    def _set_train(self, ch: int, level_v: float) -> None:
        lv = kx.sent_value(level_v)
        if self._trains.get(ch) != (0.0, lv):
            self.analyzer.pmu_pulse_train(ch, 0.0, lv)
            self._trains[ch] = (0.0, lv)

    def _set_times(self, width_s: float) -> None:
        o = self.options
        period = o.period_factor * (width_s + o.rise_s + o.fall_s)
        t = (kx.sent_value(period), kx.sent_value(width_s), o.rise_s, o.fall_s)
        chans = list(self._pmu.values())
        if self._pulse_col_pmu is not None:
            chans.append(self._pulse_col_pmu)  # a PMU holding the selected column pulses along
        for ch in chans:
            if self._times.get(ch) != t:
                self.analyzer.pmu_pulse_times(ch, *t)
                self._times[ch] = t

    # ------------------------------------------------------------------ routing
    def route_channels(self, kind: str, row: int, col: int) -> list[str]:
        """The 707B crosspoints selecting cell (row, col) for a ``"pulse"`` or a ``"read"``."""
        key = (kind, row, col)
        hit = self._routes.get(key)
        if hit is not None:
            return hit
        ch = self._ch
        if kind == "pulse":
            route = [ch["pulse_row"][row], ch["pulse_col"][col]]
            route += [c for i, c in enumerate(ch["bias_rows"]) if i != row]
            route += [c for j, c in enumerate(ch["bias_cols"]) if j != col]
        elif kind == "read":
            route = [ch["read_force"][row], ch["read_sense"][col]]
            if self.read_scheme == "ground":
                route += [c for i, c in enumerate(ch["ground_rows"]) if i != row]
                route += [c for j, c in enumerate(ch["ground_cols"]) if j != col]
        else:
            raise ConfigError("route kind", kind, "'pulse' or 'read'")
        self._routes[key] = route
        return route

    def _select(self, kind: str, row: int, col: int) -> None:
        key = (kind, row, col)
        route = self.route_channels(kind, row, col)
        if self._route == key and self.matrix.closed_cache == set(route):
            return
        self._route = None
        self.matrix.exclusive_close(route)
        if self.options.verify_routes:
            closed = self.matrix.closed_channels()
            if closed != set(route):
                raise InstrumentError(
                    self.matrix.name,
                    -1,
                    f"matrix reports {sorted(closed)} closed, expected {sorted(route)}",
                    "channel.getclose",
                )
        self._route = key

    def _release(self) -> None:
        if self._route is not None or self.matrix.closed_cache != set():
            self.matrix.open_all()
        self._route = None

    # ------------------------------------------------------------------ CellProgrammer
    def pulse(self, rows, cols, amplitude_v, width_s, gate_v=None) -> None:  # noqa: D102
        """Apply one V/3 (V/2) write pulse to each named cell, in order.

        Every amplitude, every bias level and the width are checked against the limits for
        the whole batch before the first message is sent.
        """
        self._send_pulses(*self._checked_pulse(rows, cols, amplitude_v, width_s, gate_v))

    def _send_pulses(self, r: np.ndarray, c: np.ndarray, sent_amp: np.ndarray, width: float) -> None:
        """The pulses of cells already checked by :meth:`_checked_pulse`, in order."""
        if r.size == 0:
            return
        try:
            self._ready()
            self._set_times(width)
            for k in range(r.size):
                v = float(sent_amp[k])
                self._select("pulse", int(r[k]), int(c[k]))
                self._set_train(self._pmu["pulse_row"], v)
                self._set_train(self._pmu["bias_rows"], self._k_rows * v)
                self._set_train(self._pmu["bias_cols"], self._k_cols * v)
                self.analyzer.pmu_execute()
                if self.options.matrix_release == "operation":
                    self._release()
            self._release()
        except BaseException:
            self._fail_safe()
            raise

    def _checked_pulse(
        self, rows: object, cols: object, amplitude_v: object, width_s: object, gate_v: object
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """The batch's cells, the amplitudes as sent and the width, every one checked against
        the limits (amplitude, unselected-cell bias, voltage at the device) before any is sent."""
        if gate_v is not None:
            raise ConfigError("gate_v", gate_v, "None", "a passive crossbar has no gate")
        r, c, amp, width = pulse_batch(rows, cols, amplitude_v, width_s, self.info.rows, self.info.cols)
        sent_amp = np.array([kx.sent_value(a) for a in amp]) if amp.size else amp
        scheme = "V/3" if self.bias_scheme == "v3" else "V/2"
        self.limits.check_unselected(sent_amp, self.bias_fraction, scheme)
        self.limits.check_pulse(sent_amp, kx.sent_value(width))
        # the voltage at the device: the PMU's 50 ohm source corrected for the load setting
        load = self.options.pmu_load_ohm
        self.limits.check_pulse(kx.pmu_device_voltage_max(sent_amp, load), kx.sent_value(width))
        return r, c, sent_amp, width

    def read(self, rows, cols, read_v=None) -> np.ndarray:  # noqa: D102
        """Conductance (µS) of each named cell: force ``read_v`` on its row, sense its column."""
        v = self.info.read_v if read_v is None else float(read_v)
        self.limits.check_read(kx.sent_value(v))
        r, c = cell_indices(rows, cols, self.info.rows, self.info.cols)
        return self._read_cells(r, c, v)

    def _read_cells(self, r: np.ndarray, c: np.ndarray, v: float) -> np.ndarray:
        """The reads of cells and a read voltage already checked, in order (µS)."""
        out = np.empty(r.size, dtype=float)
        if r.size == 0:
            return out
        thr = self.options.open_circuit_us
        try:
            self._ready()
            self._set_smu(self._force, v)
            for k in range(r.size):
                self._select("read", int(r[k]), int(c[k]))
                reading = self.analyzer.measure_current(self._sense)
                i_a = reading.checked(kx.ti(self._sense), self.analyzer.name)
                g = -i_a / v * 1e6
                if not g >= thr:
                    raise OpenCircuitError(
                        STACK,
                        -1,
                        f"cell ({int(r[k])}, {int(c[k])}) reads {g:.4g} µS (< {thr:g} µS): "
                        f"open circuit or misrouting between {self.wiring.roles.read_force} "
                        f"and {self.wiring.roles.read_sense}",
                        kx.ti(self._sense),
                    )
                out[k] = g
                if self.options.matrix_release == "operation":
                    self._release()
            self._release()
        except BaseException:
            self._fail_safe()
            raise
        return out

    def wait(self, seconds: float) -> None:
        """Let bench time pass with the chip unbiased: the 707B's TSP ``delay()``.

        KXCI user mode has no wait of its own; the matrix's script engine does, and with
        every crosspoint open (the state after each operation) no line of the chip is
        driven while it runs.
        """
        self._release()
        self.matrix.delay(seconds)

    # ------------------------------------------------------------------ safety
    def _fail_safe(self) -> None:
        try_safe_state(self.safe_state)

    def safe_state(self) -> None:
        """Sources to 0 V and PMU outputs off, then every crosspoint open (both tried)."""
        try:
            run_safe_steps(self.analyzer.safe_state, self.matrix.open_all)
        finally:
            self._invalidate()

    def close(self) -> None:
        """Leave the bench safe."""
        self.safe_state()


class RobustCrossbarProgrammer(CrossbarProgrammer):
    """The crossbar stack through link faults (what ``open_bench`` builds; labready).

    A read or a wait that fails on the link (timeout, lost connection, unreadable reply) or
    that an instrument refused as busy is repeated after both links are resynchronised and the
    instruments set up again (a rebooted 4200 or 707B has lost its state). A pulse batch
    is never repeated, refused or not: a serial batch may have pulsed its first cells
    before the failure, and the next verify read tells the protocol what happened. :attr:`link_stats` counts what happened.
    """

    #: simulator/instrument codes meaning "busy, not executed" (707B -300, 4200 -990)
    TRANSIENT_CODES = frozenset({-300, -990})
    retries = 8  # attempts per operation (a read, a wait) after the first
    # attempts per recovery: it sends the safe state and the whole set-up (~50 messages),
    # so at a few % of faulted messages most attempts fail; an attempt pulses nothing
    recover_attempts = 40

    def _robust(self, op: Any, idempotent: bool) -> Any:
        stats = self.__dict__.setdefault(
            "link_stats", {"faults": 0, "retried": 0, "recoveries": 0, "pulses_unconfirmed": 0}
        )
        for attempt in range(self.retries + 1):
            try:
                return op()
            except (LinkError, ProtocolError, InstrumentError) as exc:
                refused = (
                    not isinstance(exc, LinkError | OpenCircuitError | ProtocolError)
                    and exc.code in self.TRANSIENT_CODES
                )
                link = isinstance(exc, LinkError | ProtocolError)
                if not (link or refused) or attempt == self.retries:
                    raise
                stats["faults"] += 1
                self._recover_links()
                stats["recoveries"] += 1
                if not idempotent:  # a pulse batch is never sent twice: cells earlier in
                    stats["pulses_unconfirmed"] += 1  # it may have been pulsed already
                    return None
                stats["retried"] += 1
        return None  # pragma: no cover

    def _resync(self) -> None:
        for inst in (self.analyzer, self.matrix):
            recover = getattr(inst.transport, "recover", None)
            if callable(recover):
                recover()
        self.matrix.errors()  # drain what the failed exchange left queued
        self.analyzer.forget_state()  # a rebooted 4200 is in no mode

    def safe_state(self) -> None:
        """Sources to 0 V, PMU outputs off, every crosspoint open, through link faults: the
        bench must end safe, so a safe state cut short by a fault is resent in full after
        the links are back in step (at most ``recover_attempts`` times, then raised)."""
        last: Exception | None = None
        for attempt in range(self.recover_attempts):
            try:
                if attempt:
                    self._resync()
                CrossbarProgrammer.safe_state(self)
                return
            except (LinkError, ProtocolError, InstrumentError) as exc:
                last = exc
        assert last is not None
        raise last

    def _recover_links(self) -> None:
        for _ in range(self.recover_attempts):
            try:
                self._resync()
                CrossbarProgrammer.safe_state(self)  # known state: 0 V, matrix open
                # the set-up (~20 messages) again here, under the recovery's own attempts:
                # done lazily, a fault in it cost the operation one of its retries, and at a
                # few % of faulted messages the retries ran out on set-ups alone
                self.setup()
                return
            except (LinkError, ProtocolError, InstrumentError):
                continue
        raise LinkError(STACK, -1, "could not recover the links", "recover")

    def _per_cell(self) -> bool:
        # the matrix opens after every cell anyway: one attempt per cell costs no message
        # and a fault loses (or repeats) one cell's work, not the batch's; with ``batch``
        # release the route is kept across a batch, so the batch is one attempt
        return self.options.matrix_release == "operation"

    def pulse(self, rows, cols, amplitude_v, width_s, gate_v=None) -> None:
        """Pulse each named cell, through link faults; the whole batch is checked first.

        A pulse whose exchange failed is never repeated (it may have been applied): the
        next verify read tells the protocol what happened. One attempt per cell, so a fault
        costs at most one cell's pulse, never the rest of the batch's.
        """
        r, c, amp, width = self._checked_pulse(rows, cols, amplitude_v, width_s, gate_v)
        if not self._per_cell() or r.size <= 1:
            self._robust(lambda: self._send_pulses(r, c, amp, width), False)
            return
        for k in range(r.size):
            self._robust(lambda k=k: self._send_pulses(r[k : k + 1], c[k : k + 1], amp[k : k + 1], width), False)

    def read(self, rows, cols, read_v=None) -> np.ndarray:
        """Read each named cell, through link faults (a failed read is repeated, one cell
        per attempt, so a batch of many cells does not have to pass unfaulted as a whole)."""
        v = self.info.read_v if read_v is None else float(read_v)
        self.limits.check_read(kx.sent_value(v))
        r, c = cell_indices(rows, cols, self.info.rows, self.info.cols)
        if not self._per_cell() or r.size <= 1:
            return self._robust(lambda: self._read_cells(r, c, v), True)
        return np.concatenate(
            [self._robust(lambda k=k: self._read_cells(r[k : k + 1], c[k : k + 1], v), True) for k in range(r.size)]
        )

    def wait(self, seconds: float) -> None:
        """The 707B's ``delay()`` through link faults: a wait cut short by a fault is
        waited again in full (a settle may come out longer, never shorter)."""
        self._robust(lambda: CrossbarProgrammer.wait(self, seconds), True)


# ---------------------------------------------------------------------- stack builder
_DRIVER_KEYS_4200 = set(Keithley4200Settings.model_fields) | {
    "read_termination",
    "write_termination",
}
_DRIVER_KEYS_707B = set(Keithley707BSettings.model_fields) | {
    "read_termination",
    "write_termination",
}


def build_stack(ctx: Any) -> tuple[dict[str, Any], CrossbarProgrammer]:
    """Build the k4200_707b stack from an open bench context (``memprog.open_bench``)."""
    cfg = ctx.config
    chip = cfg.chip
    wiring = wiring_from_bench(cfg.wiring, chip.rows, chip.cols)
    opts = programmer_options(CrossbarOptions, cfg.programmer.options)
    for name, kind in ((wiring.analyzer, "k4200"), (wiring.matrix, "k707b")):
        inst = cfg.instruments.get(name)
        if inst is None or inst.kind != kind:
            raise ConfigError(
                "wiring." + ("analyzer" if kind == "k4200" else "matrix"),
                name,
                f"an instrument of kind {kind!r}",
            )

    a_cfg = cfg.instruments[wiring.analyzer]
    a_opts = driver_options(wiring.analyzer, a_cfg.options, _DRIVER_KEYS_4200)
    lan = "SOCKET" in a_cfg.resource.upper()
    a_term = "\0" if lan else "\n"  # KXCI over LAN: NUL-terminated; GPIB: newline
    a_opts.setdefault("link", "lan" if lan else "gpib")  # labready: no ACK over GPIB
    a_rt, a_wt = a_opts.pop("read_termination", a_term), a_opts.pop("write_termination", a_term)
    analyzer = Keithley4200(
        ctx.transport(wiring.analyzer, a_rt, a_wt),
        limits=chip.limits,
        settings=Keithley4200Settings(**{"name": wiring.analyzer, **a_opts}),
    )

    m_cfg = cfg.instruments[wiring.matrix]
    m_opts = driver_options(wiring.matrix, m_cfg.options, _DRIVER_KEYS_707B)
    m_rt, m_wt = m_opts.pop("read_termination", "\n"), m_opts.pop("write_termination", "\n")
    used_slots = sorted({g.slot for g in wiring.word_lines + wiring.bit_lines})
    m_opts.setdefault("slots", used_slots)
    matrix = Keithley707B(
        ctx.transport(wiring.matrix, m_rt, m_wt),
        interlock=MatrixInterlock.from_wiring(wiring),
        settings=Keithley707BSettings(**{"name": wiring.matrix, **m_opts}),
    )

    analyzer.connect()
    for term in wiring.rows.values():
        kind = terminal_kind(term)
        if kind == "SMU" and smu_number(term) not in analyzer.smus:
            raise ConfigError("wiring.rows", term, f"an installed SMU ({analyzer.smus})")
        if kind == "PMU" and pmu_channel_number(term) not in analyzer.pmu_channels:
            raise ConfigError(
                "wiring.rows", term, f"an installed PMU channel ({analyzer.pmu_channels})"
            )
    matrix.connect()
    programmer = RobustCrossbarProgrammer(  # labready: recovers from link faults
        analyzer,
        matrix,
        wiring,
        chip.rows,
        chip.cols,
        chip.limits,
        bias_scheme=chip.bias_scheme,
        read_scheme=chip.read_scheme,
        options=opts,
        technology=chip.technology,
    )
    programmer.setup()
    return {wiring.analyzer: analyzer, wiring.matrix: matrix}, programmer


__all__ = [
    "CrossbarOptions",
    "CrossbarProgrammer",
    "OpenCircuitError",
    "RobustCrossbarProgrammer",
    "build_stack",
]
