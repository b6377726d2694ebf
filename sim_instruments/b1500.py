"""Simulated Keysight B1500A mainframe: FLEX over GPIB, SMUs, and the WGFMU hardware state.

It answers FLEX as a B1500A does (byte for byte where the format is documented) and acts on
the bench's chip through probes: the bench file's ``wiring`` (see
:mod:`memprog.core.probe_wiring`) says which B1530A channel's probe lands on which chip pad and
which SMU feeds which RSU. A pad is driven by

* its WGFMU channel, when that channel is connected and in DC, Fast IV or PG mode (state
  set by the simulated WGFMU library, :mod:`memprog.sim_instruments.wgfmu_library`);
* the SMU cabled to its RSU, when the channel is in SMU mode (the RSU passes the SMU
  through) and the SMU's output relay is closed (``CN``);
* nothing (it floats) otherwise. Floating pads are solved by Kirchhoff's law on the chip.

The simulated RSUs power up (and return after ``WGFMU_initialize``/``*RST``) in SMU mode,
so a FLEX-only client such as QCoDeS measures the probed device with the SMUs [choice:
public sources do not say which path an idle RSU selects].

FLEX surface (sources: the FLEX data and error formats as used by QCoDeS's and PyMeasure's
B1500 drivers and by public E5270B/B1500 scripts; the error codes are those of the FLEX
family, E5270B programming guide):

* ``*IDN?``, ``UNT?``/``UNT? 0`` from ``b1500.yaml`` (or the ``sim_modules`` option);
  ``*RST``, ``*OPC?`` (``1``), ``*STB?``; ``*CLS`` is *not* a FLEX command: it queues
  ``+100,"Undefined GPIB command."``, as public lab reports describe for the B1500A.
* ``ERRX?`` -> ``+0,"No Error."`` or the oldest queued error (``+code,"text"``); ``ERR?``
  -> four codes ``c1,c2,c3,c4``.
* ``CN``/``CL`` (all or listed channels), ``DZ``, ``RZ``, ``DV ch,range,V[,Icomp[,pol,
  irange]]``, ``DI ch,range,I[,Vcomp[,pol,vrange]]``, ``TV ch[,range]``, ``TI ch[,range]``
  -> ``NAI+012.345E-06`` in ``FMT 1`` (status, channel letter, data type, 12-digit value)
  or the bare value in ``FMT 2``. Status letters produced: ``N``; ``C`` (this channel at
  its compliance); ``T`` (another channel at its compliance); ``V`` (over a fixed
  measurement range, value ``199.999E+99``).
* ``MM 1,chs`` (spot) and ``MM 2,chs`` (staircase sweep from ``WV``) + ``XE``; with
  ``FMT x,1`` the sweep source value follows each step's data (data type ``v``, status
  ``W`` for intermediate steps and ``E`` for the last [FLEX source-data convention,
  unverified on hardware]).
* Accepted with their parameters checked and their settings kept (for ``*LRN?``), with no
  further effect: ``FMT``, ``AV``, ``AIT``, ``AAD``, ``AZ``, ``FL``, ``CMM``, ``RI``,
  ``RV``, ``WT``, ``WM``, ``TSC``, ``TSR``, and the MFCMU set-up ``IMP``, ``FC``, ``ACV``,
  ``DCV``, ``ADJ``, ``LMN``, ``ACT``, ``WMDCV``, ``WTDCV``, ``CORRST``, ``DCORR``.
  ``*LRN? 0`` (output switches), ``31`` (FMT/AV/MM), ``32`` (RI), ``33`` (WT/WV/WM), ``46``
  (CMM) are answered from the kept settings.
* Anything else queues error 100; bad numbers 102; a wrong number of parameters 103; bad
  values 120; a channel that holds no suitable module 121; compliance 123; range 124.
  Features memprog does not simulate (binary data formats, CMU measurements) queue 999
  ``"Not supported by the memprog simulator."`` rather than pretending.

Timing charged to the chip clock [choices]: 0.5 ms per GPIB message (latency), 100 us per
reading times the ``AV`` count, 1 ms to start an ``XE``.

Where the pieces live (each a layer of :class:`SimB1500`, bottom up): the FLEX words
(error table, number parsing, value format) in :mod:`.b1500_flex`; the hardware state
shared with the WGFMU library in :mod:`.b1500_state`; the action on the chip (who drives
which pad, currents, SMU readings) in :mod:`.b1500_probing`; the set-up commands in
:mod:`.b1500_commands`; the reading commands in :mod:`.b1500_measure`. This module builds
the mainframe from its bench entry and dispatches each FLEX command to its handler.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from memprog.core.errors import ConfigError
from memprog.core.probe_wiring import probe_wiring_from_bench
from memprog.sim_instruments.b1500_flex import (
    CMU_MODELS,
    COMMAND_RE,
    ERRORS,
    KNOWN_MODELS,
    READING_S,
    SMU_MODELS,
    WGFMU_MODELS,
    FlexError,
)
from memprog.sim_instruments.b1500_measure import B1500Measurements
from memprog.sim_instruments.b1500_state import FlexSettings, SmuState, WgfmuHardware
from memprog.sim_instruments.base import StaticSurface, register

if TYPE_CHECKING:  # pragma: no cover
    from memprog.core.bench_config import InstrumentConfig
    from memprog.sim_instruments.sim_bench import SimBench


@register("b1500")
class SimB1500(B1500Measurements):
    """Simulated B1500A with SMUs, an MFCMU and B1530A WGFMU hardware, probing the chip."""

    write_termination = "\r\n"
    read_termination = "\r\n"
    latency_s = 0.5e-3

    def __init__(self, name: str, config: InstrumentConfig, bench: SimBench) -> None:
        super().__init__(name, config, bench)
        self.static = StaticSurface("b1500.yaml", "KeysightB1500")
        opts = config.options
        models = opts.get("sim_modules")
        if models is None:
            unt = self.static.match("UNT? 0") or ""
            models = [item.split(",")[0] for item in unt.split(";") if item]
        models = [str(m) for m in models]
        if len(models) > 10:
            raise ConfigError(f"instruments.{name}.options.sim_modules", models, "at most 10 slots")
        for m in models:
            if m != "0" and m not in KNOWN_MODELS:
                raise ConfigError(
                    f"instruments.{name}.options.sim_modules",
                    m,
                    f"'0' or one of {sorted(KNOWN_MODELS)}",
                )
        self.modules = models + ["0"] * (10 - len(models))
        self.smu_channels = [s + 1 for s, m in enumerate(self.modules) if m in SMU_MODELS]
        self.cmu_channels = [s + 1 for s, m in enumerate(self.modules) if m in CMU_MODELS]
        self.wgfmu_channels = [
            (s + 1) * 100 + k
            for s, m in enumerate(self.modules)
            if m in WGFMU_MODELS
            for k in (1, 2)
        ]
        self.reading_s = float(opts.get("sim_reading_s", READING_S))
        self.wiring = None
        w = bench.config.wiring
        if w and w.get("mainframe", name) == name and "pads" in w:
            c = bench.config.chip
            self.wiring = probe_wiring_from_bench(w, c.rows, c.cols)
            for ch in list(self.wiring.pads) + list(self.wiring.rsu.values()):
                if ch not in self.wgfmu_channels:
                    raise ConfigError(
                        "wiring.pads",
                        ch,
                        f"a WGFMU channel of this mainframe {self.wgfmu_channels}",
                    )
            for smu in self.wiring.rsu:
                if smu not in self.smu_channels:
                    raise ConfigError(
                        "wiring.rsu", smu, f"an SMU channel of this mainframe {self.smu_channels}"
                    )
        self.rng = np.random.default_rng(bench.config.chip.seed + 1500)
        self.wgfmu: dict[int, WgfmuHardware] = {}
        self.readings = 0
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Power-on state: outputs off, default formats, empty error queue, RSUs on SMU."""
        self.smus = {ch: SmuState() for ch in self.smu_channels}
        self.cmu_enabled = {ch: False for ch in self.cmu_channels}
        self.set = FlexSettings()
        self.errors: deque[tuple[int, str]] = deque()
        self.reset_wgfmu()

    def reset_wgfmu(self) -> None:
        """Every WGFMU channel at 0 V, disconnected, RSU passing the SMU through."""
        self.wgfmu = {ch: WgfmuHardware() for ch in self.wgfmu_channels}

    def queue_error(self, code: int, detail: str = "") -> None:
        """Put an error in the ``ERRX?`` queue (the queue holds at most 32)."""
        if len(self.errors) < 32:
            self.errors.append((code, ERRORS.get(code, detail)))

    def status_byte(self) -> int:
        """Serial poll byte: bit 5 (32) when an error is queued [choice]."""
        return 32 if self.errors else 0

    # ------------------------------------------------------------------ FLEX parsing
    def handle(self, message: str) -> str | None:
        reply: str | None = None
        for cmd in (c.strip() for c in message.split(";")):
            if not cmd:
                continue
            try:
                r = self._command(cmd)
            except FlexError as exc:
                self.queue_error(exc.code, exc.detail)
                return reply
            if r is not None:
                reply = r
        return reply

    def _command(self, cmd: str) -> str | None:
        m = COMMAND_RE.match(cmd)
        if not m:
            raise FlexError(100, cmd)
        head = m.group(1).upper()
        raw_args = m.group(2).strip()
        args = [a.strip() for a in raw_args.split(",")] if raw_args else []
        fn = _HANDLERS.get(head)
        if fn is None:
            if head in _ACKNOWLEDGED:
                return self._acknowledge(head, args)
            raise FlexError(100, cmd)
        return fn(self, args)


_HANDLERS: dict[str, Any] = {
    "*IDN?": SimB1500._idn,
    "*RST": SimB1500._rst,
    "*OPC?": SimB1500._opc,
    "*STB?": SimB1500._stb,
    "*CLS": SimB1500._cls,
    "UNT?": SimB1500._unt,
    "ERRX?": SimB1500._errx,
    "ERR?": SimB1500._err,
    "CN": SimB1500._cn,
    "CL": SimB1500._cl,
    "DZ": SimB1500._dz,
    "RZ": lambda self, args: None,
    "DV": SimB1500._dv,
    "DI": SimB1500._di,
    "TI": SimB1500._ti,
    "TV": SimB1500._tv,
    "MM": SimB1500._mm,
    "XE": SimB1500._xe,
    "WV": SimB1500._wv,
    "WT": SimB1500._wt,
    "PA": SimB1500._pa,
    "WM": SimB1500._wm,
    "FMT": SimB1500._fmt,
    "AV": SimB1500._av,
    "AZ": SimB1500._az,
    "FL": SimB1500._fl,
    "CMM": SimB1500._cmm,
    "RI": SimB1500._ri,
    "TC": SimB1500._tc,
    "TTC": SimB1500._tc,
    "*LRN?": SimB1500._lrn,
}
# commands accepted with numeric parameters and no simulated effect (settings kept)
_ACKNOWLEDGED = {
    "AIT", "AAD", "RV", "TSC", "TSR", "IMP", "FC", "ACV", "DCV", "ADJ", "LMN", "ACT",
    "WMDCV", "WTDCV", "WDCV", "CORRST", "DCORR", "CLCORR", "CORRL",
}  # fmt: skip


__all__ = ["SimB1500"]
