"""The b1500_wgfmu stack: tune devices on probes with a B1530A WGFMU in a B1500A.

This is the single-device tuning setup of seed 001 (Drolet et al.): 200 ns write pulses
and 0.2 V, 10 us reads from a WGFMU, whose channels reach the device through probe
needles. The bench file's ``wiring`` (:mod:`memprog.core.probe_wiring`) says which channel's
probe lands on which pad, which decides the device(s) the stack can address:

* **write** (:meth:`B1500WgfmuProgrammer.pulse`): the top-electrode channel plays a
  trapezoidal pulse (``write_edge_s`` edges, FWHM = the requested width) while the
  bottom-electrode channel holds 0 V. One ``WGFMU_execute`` per pulse.
* **read** (:meth:`B1500WgfmuProgrammer.read`): the top channel plays a read window
  (``read_v`` for ``read_time_s``) and measures its own voltage; the bottom channel holds
  0 V and measures the current; both with one averaged measure event over the settled
  window. G = -I_bottom / V_top (the current flows *into* the bottom channel). A reading
  below ``open_circuit_us`` is an open circuit (a lifted probe), reported as
  :class:`OpenCircuitError`, never as a conductance.
* **several devices sharing an electrode** (e.g. a 1x4 chip: one top pad, four bottom
  pads): pads of the unselected devices play the common pad's waveform, so those devices
  see 0 V during writes and reads. Devices whose pads have no probe cannot be addressed
  (ConfigError naming the probed ones); :meth:`read_array` returns NaN for them.
* :meth:`B1500WgfmuProgrammer.pulse_read_train` plays N pulses each followed by a read as
  one pattern (one execution), for potentiation curves and benchmarks.

Safety: amplitudes, widths and read voltages are checked against the chip's limits, and
the force range must cover them, before any library call; any error sets the WGFMU
channels to 0 V and disconnects them (``WGFMU_initialize``), then every SMU to 0 V with
its relay open. The stack is serial (one device per execution).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from memprog.core.errors import ConfigError, OpenCircuitError, ProtocolError
from memprog.core.limits import SafetyLimits
from memprog.core.probe_wiring import ProbeWiring, probe_wiring_from_bench
from memprog.core.safe_steps import run_safe_steps, try_safe_state
from memprog.core.validation import MemprogModel
from memprog.drivers import wgfmu_constants as wc
from memprog.drivers.b1500 import B1500, B1500Settings
from memprog.drivers.stack_options import driver_options, programmer_options
from memprog.drivers.transport import LinkError
from memprog.drivers.wgfmu import WGFMU, ChannelSetup, Trace, WgfmuSettings
from memprog.drivers.wgfmu_patterns import Pattern, pulse_pattern, pulse_read_train, read_pattern
from memprog.protocols.programmer import CellProgrammer, ProgrammerInfo, cell_indices, pulse_batch

STACK = "b1500_wgfmu"


class B1500WgfmuOptions(MemprogModel):
    """``programmer.options`` of a b1500_wgfmu bench."""

    read_v: float = Field(default=0.2, description="default read voltage, V")
    read_time_s: float = Field(default=10e-6, gt=0, le=20e-3, description="read window plateau")
    read_settle_s: float = Field(default=1e-6, ge=0, description="skipped start of the window")
    read_edge_s: float = Field(default=100e-9, ge=10e-9, le=1e-3, description="read ramps")
    write_edge_s: float = Field(default=10e-9, ge=10e-9, le=1e-3, description="write pulse edges")
    train_gap_s: float = Field(default=1e-6, ge=10e-9, le=1.0, description="0 V rest in trains")
    force_range: Literal["auto", "3V", "5V", "10V_negative", "10V_positive"] = "3V"
    current_range: Literal["1uA", "10uA", "100uA", "1mA", "10mA"] = "1mA"
    measure_voltage: bool = Field(default=True, description="top channel measures V (R = V/I)")
    open_circuit_us: float = Field(default=1.0, gt=0, description="a read below this is open")

    @model_validator(mode="after")
    def _window(self) -> B1500WgfmuOptions:
        if self.read_v == 0:
            raise ConfigError("read_v", self.read_v, "non-zero")
        if self.read_settle_s >= self.read_time_s:
            raise ConfigError(
                "read_settle_s", self.read_settle_s, f"< read_time_s ({self.read_time_s:g} s)"
            )
        return self


class B1500WgfmuProgrammer(CellProgrammer):
    """CellProgrammer of devices on probes, written and read by a B1530A WGFMU.

    Args:
        mainframe: the connected B1500A driver (SMUs; kept safe with the WGFMU).
        wgfmu: the connected WGFMU driver (library session open).
        wiring: the bench's validated probe wiring.
        rows, cols: chip size.
        limits: the chip's safety limits.
        options: stack options.
        technology: for ProgrammerInfo.
    """

    #: no analog VMM: the WGFMU reads one device on its probes at a time
    supports_vmm = False

    def __init__(
        self,
        mainframe: B1500,
        wgfmu: WGFMU,
        wiring: ProbeWiring,
        rows: int,
        cols: int,
        limits: SafetyLimits,
        options: B1500WgfmuOptions | None = None,
        technology: str = "",
    ) -> None:
        self.mainframe = mainframe
        self.wgfmu = wgfmu
        self.wiring = wiring
        self.limits = limits
        self.options = o = options or B1500WgfmuOptions()
        self.check_config(wiring, rows, cols, limits, o)
        self.info = ProgrammerInfo(
            rows=rows,
            cols=cols,
            parallel="cell",
            has_gate=False,
            g_range_us=(limits.conductance_min_us, limits.conductance_max_us),
            read_v=o.read_v,
            technology=technology,
            addressable=tuple(wiring.devices()),
            width_step_s=wc.TIME_RESOLUTION_S,
        )
        self.devices = wiring.devices()
        self._configured = False
        self._patterns: dict[tuple[Any, ...], dict[int, Pattern]] = {}

    @staticmethod
    def check_config(
        wiring: ProbeWiring, rows: int, cols: int, limits: SafetyLimits, options: B1500WgfmuOptions
    ) -> None:
        """The stack's preconditions that need no instrument.

        :func:`build_stack` runs them before anything is connected or loaded: a bench's
        WGFMU ``library`` path is a shared library whose load-time code runs when loaded,
        so a bench that is wrong anyway must not get that far.
        """
        wiring.check_chip(rows, cols)
        limits.check_read(options.read_v)
        lo, hi = wc.FORCE_VOLTAGE_SPAN_V[wc.FORCE_VOLTAGE_RANGES[options.force_range]]
        if -limits.reset_v_max < lo or limits.set_v_max > hi:
            raise ConfigError(
                "programmer.options.force_range",
                options.force_range,
                f"a range covering the limits [-{limits.reset_v_max}, {limits.set_v_max}] V",
            )

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        """Configure every probed channel (Fast IV; top: V measured; bottom: I measured)."""
        o = self.options
        for side in ("top", "bottom"):
            for ch in self.wiring.side_pads(side).values():
                measure = (
                    "current" if side == "bottom" else ("voltage" if o.measure_voltage else "none")
                )
                self.wgfmu.configure(
                    ch,
                    ChannelSetup(
                        operation_mode="fastiv",
                        force_range=o.force_range,
                        measure=measure,
                        current_range=o.current_range,
                    ),
                )
                self.wgfmu.connect_channel(ch)
        self._configured = True

    def _ready(self) -> None:
        if not self._configured or not self.wgfmu.connected_channels:
            self.setup()

    # ------------------------------------------------------------------ waveforms
    def _assign(
        self, row: int, col: int, sel_top: Pattern, sel_bottom: Pattern, tag: str
    ) -> dict[int, Pattern]:
        """Patterns of every probed channel for device (row, col)."""
        top_ch, bottom_ch = self.wiring.channels_of(row, col)
        seq: dict[int, Pattern] = {top_ch: sel_top, bottom_ch: sel_bottom}
        common = self.wiring.common_side
        others = self.wiring.side_pads("bottom" if common == "top" else "top")
        follow = sel_top if common == "top" else sel_bottom
        for ch in others.values():
            if ch not in seq:
                seq[ch] = follow.renamed(f"{tag}_follow")
        return seq

    def _write_patterns(
        self, row: int, col: int, amplitude_v: float, width_s: float
    ) -> dict[int, Pattern]:
        key = ("w", row, col, amplitude_v, width_s)
        hit = self._patterns.get(key)
        if hit is None:
            top = pulse_pattern("w_top", amplitude_v, width_s, self.options.write_edge_s)
            seq = self._assign(row, col, top, top.at_level("w_bottom", 0.0), "w")
            if len(self._patterns) > 4096:
                self._patterns.clear()
            self._patterns[key] = seq
            return seq
        return hit

    def _read_patterns(self, row: int, col: int, read_v: float) -> dict[int, Pattern]:
        key = ("r", row, col, read_v)
        hit = self._patterns.get(key)
        if hit is None:
            o = self.options
            rp = read_pattern("r_top", read_v, o.read_time_s, o.read_edge_s, o.read_settle_s)
            top = rp if o.measure_voltage else rp.renamed("r_top")
            bottom = rp.at_level("r_bottom", 0.0).with_events(*rp.events)
            seq = self._assign(row, col, top, bottom, "r")
            self._patterns[key] = seq
            return seq
        return hit

    def _conductance(
        self, traces: dict[int, Trace], top_ch: int, bottom_ch: int, read_v: float, where: str
    ) -> np.ndarray:
        i = traces[bottom_ch].values
        v = traces[top_ch].values if self.options.measure_voltage else np.full(i.shape, read_v)
        g = -i / v * 1e6
        thr = self.options.open_circuit_us
        bad = ~(g >= thr)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise OpenCircuitError(
                STACK,
                -1,
                f"{where} reads {g[k]:.4g} uS (I = {i[k]:.4g} A at {v[k]:.4g} V; < {thr:g} uS): "
                f"open circuit, a lifted probe, or the device is not between channels {top_ch} and {bottom_ch}",
                "WGFMU_getMeasureValues",
            )
        return g

    # ------------------------------------------------------------------ CellProgrammer
    def pulse(self, rows, cols, amplitude_v, width_s, gate_v=None) -> None:  # noqa: D102
        """One write pulse per named device, in order (checked against the limits first)."""
        if gate_v is not None:
            raise ConfigError("gate_v", gate_v, "None", "devices on probes have no gate terminal")
        r, c, amp, width = pulse_batch(rows, cols, amplitude_v, width_s, self.info.rows, self.info.cols)
        self.limits.check_pulse(amp, width)
        for rr, cc in zip(r, c, strict=True):
            self.wiring.channels_of(int(rr), int(cc))
        if r.size == 0:
            return
        try:
            self._ready()
            for k in range(r.size):
                self.wgfmu.run(self._write_patterns(int(r[k]), int(c[k]), float(amp[k]), width))
        except BaseException:
            self._fail_safe()
            raise

    def read(self, rows, cols, read_v=None) -> np.ndarray:  # noqa: D102
        """Conductance (uS) of each named device from a read window (R = V/I)."""
        v = self.info.read_v if read_v is None else float(read_v)
        self.limits.check_read(v)
        r, c = cell_indices(rows, cols, self.info.rows, self.info.cols)
        chans = [self.wiring.channels_of(int(rr), int(cc)) for rr, cc in zip(r, c, strict=True)]
        out = np.empty(r.size, dtype=float)
        if r.size == 0:
            return out
        try:
            self._ready()
            for k in range(r.size):
                traces = self.wgfmu.run(self._read_patterns(int(r[k]), int(c[k]), v))
                top_ch, bottom_ch = chans[k]
                out[k] = self._conductance(
                    traces, top_ch, bottom_ch, v, f"device ({int(r[k])}, {int(c[k])})"
                )[0]
        except BaseException:
            self._fail_safe()
            raise
        return out

    def read_array(self, read_v: float | None = None) -> np.ndarray:
        """Conductance map (uS); NaN marks devices with no probe on their pads."""
        out = np.full((self.info.rows, self.info.cols), np.nan)
        if self.devices:
            r, c = np.array(self.devices).T
            out[r, c] = self.read(r, c, read_v)
        return out

    def pulse_read_train(
        self, row: int, col: int, amplitudes_v: object, width_s: float, read_v: float | None = None
    ) -> np.ndarray:
        """Apply each amplitude in turn, reading after each pulse, in ONE execution.

        Returns the conductance (uS) read after each pulse. Every amplitude is checked
        against the limits before anything is sent.
        """
        v = self.info.read_v if read_v is None else float(read_v)
        self.limits.check_read(v)
        amps = np.atleast_1d(np.asarray(amplitudes_v, dtype=float))
        self.limits.check_pulse(amps, width_s)
        top_ch, bottom_ch = self.wiring.channels_of(int(row), int(col))
        o = self.options
        train = pulse_read_train(
            "t_top",
            amps,
            width_s,
            v,
            o.read_time_s,
            o.write_edge_s,
            o.read_edge_s,
            o.read_settle_s,
            o.train_gap_s,
        )
        top = train if o.measure_voltage else train.renamed("t_top")
        bottom = train.at_level("t_bottom", 0.0).with_events(*train.events)
        try:
            self._ready()
            traces = self.wgfmu.run(self._assign(int(row), int(col), top, bottom, "t"))
            return self._conductance(
                traces, top_ch, bottom_ch, v, f"device ({int(row)}, {int(col)})"
            )
        except BaseException:
            self._fail_safe()
            raise

    # ------------------------------------------------------------------ safety
    #: a wait cut short by a link fault is waited again in full, at most this often
    wait_retries = 8

    def wait(self, seconds: float) -> None:
        """Let bench time pass: the mainframe's FLEX ``PA`` pause (no pattern runs meanwhile).

        Through link faults (a timeout, a lost connection, an unreadable ``ERRX?`` reply):
        the link is brought back in step, the error queue drained, and the whole wait sent
        again, so a settle may come out longer, never shorter. A pause changes no output,
        so repeating it is safe; ``link_stats`` counts what happened.
        """
        stats = self.__dict__.setdefault("link_stats", {"faults": 0, "retried": 0, "recoveries": 0})
        for attempt in range(self.wait_retries + 1):
            try:
                if attempt:
                    self._recover_mainframe()
                    stats["recoveries"] += 1
                    stats["retried"] += 1
                self.mainframe.pause(seconds)
                return
            except (LinkError, ProtocolError):
                stats["faults"] += 1
                if attempt == self.wait_retries:
                    raise

    def _recover_mainframe(self) -> None:
        recover = getattr(self.mainframe.t, "recover", None)
        if callable(recover):
            recover()
        self.mainframe.read_errors()  # what the failed exchange left queued

    def _fail_safe(self) -> None:
        try_safe_state(self.safe_state)

    def safe_state(self) -> None:
        """WGFMU channels to 0 V and disconnected, then SMUs to 0 V with relays open."""
        self._configured = False
        run_safe_steps(self.wgfmu.safe_state, self.mainframe.safe_state)

    def close(self) -> None:
        """Leave the bench safe."""
        self.safe_state()


# ---------------------------------------------------------------------- stack builder
_B1500_KEYS = set(B1500Settings.model_fields) - {"name"}
_WGFMU_KEYS = set(WgfmuSettings.model_fields) - {"name"}


def build_stack(ctx: Any) -> tuple[dict[str, Any], B1500WgfmuProgrammer]:
    """Build the b1500_wgfmu stack from an open bench context (``memprog.open_bench``).

    The B1500A is connected first (its stale errors read out: the WGFMU library will not
    open a session while the mainframe's error queue holds one), then the WGFMU library
    (the simulated one for ``library: "@memprog"``, else ``wgfmu.dll`` loaded from the
    path in the bench file) opens its session to the same address.

    Order: everything that needs no instrument is checked first (wiring, options, driver
    settings, :meth:`B1500WgfmuProgrammer.check_config`), then the mainframe is connected
    and its channels checked, and only then is a WGFMU library path loaded: a shared
    library runs its own code when loaded, so it is the last thing to happen.
    """
    cfg = ctx.config
    chip = cfg.chip
    wiring = probe_wiring_from_bench(cfg.wiring, chip.rows, chip.cols)
    opts = programmer_options(B1500WgfmuOptions, cfg.programmer.options)
    for name, kind, field in (
        (wiring.mainframe, "b1500", "mainframe"),
        (wiring.wgfmu, "wgfmu", "wgfmu"),
    ):
        inst = cfg.instruments.get(name)
        if inst is None or inst.kind != kind:
            raise ConfigError(f"wiring.{field}", name, f"an instrument of kind {kind!r}")
    m_cfg = cfg.instruments[wiring.mainframe]
    w_cfg = cfg.instruments[wiring.wgfmu]
    if w_cfg.resource.strip().upper() != m_cfg.resource.strip().upper():
        raise ConfigError(
            f"instruments.{wiring.wgfmu}.resource",
            w_cfg.resource,
            f"the B1500A's address ({m_cfg.resource})",
            "the WGFMU library opens its session to the mainframe",
        )
    B1500WgfmuProgrammer.check_config(wiring, chip.rows, chip.cols, chip.limits, opts)
    if not ctx.has_library(wiring.wgfmu):
        raise ConfigError(
            f"instruments.{wiring.wgfmu}.library",
            None,
            "the path of wgfmu.dll (or '@memprog' for the simulator)",
        )
    w_opts = driver_options(wiring.wgfmu, w_cfg.options, _WGFMU_KEYS)
    w_settings = WgfmuSettings(name=wiring.wgfmu, **w_opts)
    m_opts = driver_options(wiring.mainframe, m_cfg.options, _B1500_KEYS)
    mainframe = B1500(
        ctx.transport(wiring.mainframe, "\r\n", "\r\n"),
        limits=chip.limits,
        settings=B1500Settings(name=wiring.mainframe, **m_opts),
    )
    mainframe.connect()
    installed = mainframe.wgfmu_channels
    for ch in list(wiring.pads) + list(wiring.rsu.values()):
        if ch not in installed:
            raise ConfigError("wiring.pads", ch, f"a WGFMU channel of the B1500A {installed}")
    for smu in wiring.rsu:
        if smu not in mainframe.smu_channels:
            raise ConfigError(
                "wiring.rsu", smu, f"an SMU channel of the B1500A {mainframe.smu_channels}"
            )
    lib = ctx.library(wiring.wgfmu)  # None for a path (checked above): the driver loads it
    wgfmu = WGFMU(
        lib,
        w_cfg.resource,
        library_path=None if lib is not None else w_cfg.library,
        settings=w_settings,
    )
    wgfmu.connect()  # loads a library path: last
    ctx.on_close(wgfmu)  # closed (after safe_state) with the bench
    programmer = B1500WgfmuProgrammer(
        mainframe,
        wgfmu,
        wiring,
        chip.rows,
        chip.cols,
        chip.limits,
        options=opts,
        technology=chip.technology,
    )
    programmer.setup()
    return {wiring.mainframe: mainframe, wiring.wgfmu: wgfmu}, programmer


__all__ = ["B1500WgfmuOptions", "B1500WgfmuProgrammer", "OpenCircuitError", "build_stack"]
