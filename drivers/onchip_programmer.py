"""The on-chip controller stack: a CellProgrammer whose rows travel as single messages.

``open_bench`` calls :func:`build_stack` for benches whose ``programmer.stack`` is
``"onchip"``. The programmer is a thin layer over
:class:`~memprog.drivers.onchip.OnChipController`: requested cells are grouped by row (a
row's cells are pulsed in parallel, with per-cell amplitudes and gate voltages), reads use
the controller's bulk forms (one row, a cell selection, the whole array) so a read of cells
spread over many rows costs two messages, and :meth:`read_array` is the one-message
``READ:ARR?``. A write-verify step on cells of one row (a pulse train, then a burst of
reads: :meth:`pulse_read`) is the one-message ``PULS:READ?`` and a burst of reads
(:meth:`read_burst`) the one-message ``READ:BURS?``; other selections fall back to the
interface's separate pulses and reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field

from memprog.core.errors import ConfigError, InstrumentError, ProtocolError
from memprog.core.validation import MemprogModel
from memprog.drivers.onchip import OnChipController
from memprog.drivers.onchip_commands import BURST_INTERVAL_MAX_S, BURST_READS_MAX, TRAIN_MAX
from memprog.drivers.stack_options import programmer_options
from memprog.drivers.transport import LinkError
from memprog.protocols.programmer import (
    CellProgrammer,
    ProgrammerInfo,
    check_count,
    check_interval_s,
)

#: controller error codes that mean "not executed, try again" (protocol v1: 210 busy)
TRANSIENT_CODES = frozenset({210})

READ_TERMINATION = "\n"
WRITE_TERMINATION = "\n"
CHUNK_SIZE = 1 << 20  # read a 256 KB whole-array block in one VISA call


class OnChipStackOptions(MemprogModel):
    """``programmer.options`` of an on-chip bench."""

    instrument: str | None = Field(
        default=None, description="instrument name; default: the bench's onchip one"
    )
    retries: int = Field(
        default=4, ge=0, le=20, description="recoveries per operation after a link fault"
    )


class OnChipProgrammer(CellProgrammer):
    """CellProgrammer on the on-chip array controller (row-parallel 1T1R array).

    Args:
        controller: a connected :class:`OnChipController`.
        clock: returns the bench clock in seconds, or None when there is none to report
            (the stack context's ``sim_clock_s``: the simulated clock on a simulated
            bench, None in the lab, where wall time is the bench time).
    """

    #: the controller integrates the column currents of row voltages (``VMM:INP``/``VMM?``)
    supports_vmm = True

    def __init__(
        self,
        controller: OnChipController,
        clock: Callable[[], float | None] | None = None,
        retries: int = 4,
    ) -> None:
        controller._require_connected()
        self.controller = controller
        self._clock = clock
        self.retries = retries
        #: what the link did to this run: faults seen, operations retried, recoveries,
        #: pulse batches whose acknowledgement was lost (applied or not: the next read says)
        self.link_stats = {"faults": 0, "retried": 0, "recoveries": 0, "pulses_unconfirmed": 0}
        self.limits = controller.limits
        self.info = ProgrammerInfo(
            rows=controller.rows,
            cols=controller.cols,
            parallel="row",
            has_gate=controller.cell_type == "1T1R",
            g_range_us=controller.g_range_us,
            read_v=controller.read_v,
            technology=controller.technology,
        )

    @property
    def bench_time_s(self) -> float | None:
        """Bench clock (s) for protocols' run reports; None when the bench has none."""
        return None if self._clock is None else self._clock()

    def pulse(
        self,
        rows: object,
        cols: object,
        amplitude_v: object,
        width_s: float,
        gate_v: object | None = None,
    ) -> None:
        """One pulse per named cell; each row's cells in one parallel row operation.

        A batch the controller refused as busy is sent again; a batch whose acknowledgement
        the link lost is not (it may have been applied: a write-verify protocol's next read
        decides), it is counted in :attr:`link_stats`.
        """
        self._robust(self.controller.pulse_cells, (rows, cols, amplitude_v, width_s, gate_v), False)

    def read(self, rows: object, cols: object, read_v: float | None = None) -> np.ndarray:
        """Conductance (µS) of each named cell, in the order given, in one or two messages."""
        return self._robust(self.controller.read_cells, (rows, cols, read_v), True)

    def read_burst(
        self,
        rows: object,
        cols: object,
        reads: int,
        read_v: float | None = None,
        interval_s: float = 0.0,
    ) -> np.ndarray:
        """Successive reads (µS, (reads, cells)): one ``READ:BURS?`` per 64 reads.

        Cells of one row (at most 16) read at the configured read voltage go as
        ``READ:BURS?``; anything else as separate reads (the interface's default).
        """
        n = check_count("reads", reads)
        iv = check_interval_s(interval_s)
        fit = self._one_row(rows, cols, read_v, iv)
        if fit is None:
            return super().read_burst(rows, cols, n, read_v, iv)
        row, c = fit
        parts = []
        for k in range(0, n, BURST_READS_MAX):
            m = min(BURST_READS_MAX, n - k)
            parts.append(self._robust(self.controller.read_burst, (row, c, m, iv), True))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def pulse_read(
        self,
        rows: object,
        cols: object,
        amplitude_v: object,
        width_s: object,
        gate_v: object | None = None,
        reads: int = 1,
        read_v: float | None = None,
        interval_s: float = 0.0,
    ) -> np.ndarray:
        """Pulse train then read burst in one ``PULS:READ?`` (cells of one row, <= 16).

        Other selections, or more pulses or reads than one message carries, go through the
        interface's default (separate pulses and reads). A train whose acknowledgement the
        link lost is not repeated (it may have been applied): the cells are read again.
        """
        n = check_count("reads", reads)
        iv = check_interval_s(interval_s)
        fit = self._one_row(rows, cols, read_v, iv)
        if fit is None or np.size(width_s) > TRAIN_MAX or n > BURST_READS_MAX:
            return super().pulse_read(rows, cols, amplitude_v, width_s, gate_v, n, read_v, iv)
        row, c = fit
        args = (row, c, amplitude_v, width_s, gate_v, n, iv)
        g = self._robust(self.controller.pulse_read, args, False)
        if g is None:  # acknowledgement lost: read what is there
            g = self.read_burst(rows, cols, n, read_v, iv)
        return g

    def _one_row(
        self, rows: object, cols: object, read_v: float | None, interval_s: float
    ) -> tuple[int, np.ndarray] | None:
        """(row, columns) when a burst command can carry the cells, else None."""
        if not self.controller.has_bursts:  # firmware before protocol 1.1
            return None
        if read_v is not None and float(read_v) != self.controller.read_v:
            return None
        if interval_s > BURST_INTERVAL_MAX_S:
            return None
        return self.controller.row_cells(rows, cols)

    def read_array(self, read_v: float | None = None) -> np.ndarray:
        """Whole conductance map (µS) in one ``READ:ARR?`` message."""
        return self._robust(self.controller.read_array, (read_v,), True)

    def vmm(self, input_v: object) -> np.ndarray:
        """The controller's analog VMM (``VMM:INP`` + ``VMM?``): row voltages in, column
        currents (A) out; see :meth:`OnChipController.vmm`."""
        return self.controller.vmm(input_v)

    # ------------------------------------------------------------------ link faults
    def _robust(self, fn: Callable[..., Any], args: tuple, idempotent: bool) -> Any:
        """Run one operation through link faults: recover, then retry what may be retried.

        Reads are repeated (they change nothing). Pulses are repeated only when the
        controller said it did not execute them (a transient error code); after a lost or
        garbled acknowledgement the pulse is not repeated. Anything else (a refused
        parameter, a safety refusal) is raised at once.
        """
        for attempt in range(self.retries + 1):
            try:
                return fn(*args)
            except (LinkError, ProtocolError, InstrumentError) as exc:
                not_executed = (
                    isinstance(exc, InstrumentError)
                    and not isinstance(exc, LinkError)
                    and exc.code in TRANSIENT_CODES
                )
                link = isinstance(exc, LinkError | ProtocolError)
                if not (link or not_executed) or attempt == self.retries:
                    raise
                self.link_stats["faults"] += 1
                self._recover()
                if link and not idempotent:
                    self.link_stats["pulses_unconfirmed"] += 1
                    return None
                self.link_stats["retried"] += 1
        return None  # pragma: no cover - the loop returns or raises

    def _recover(self) -> None:
        last: Exception | None = None
        for _ in range(self.retries + 1):
            try:
                self.controller.recover()
                self.link_stats["recoveries"] += 1
                return
            except (LinkError, ProtocolError, InstrumentError) as exc:
                last = exc
        assert last is not None
        raise last

    def wait(self, seconds: float) -> None:
        """Let bench time pass: the controller's own wait (``SYST:WAIT?``), chip idle.

        Through link faults like a read: a wait cut short is waited again in full, so a
        settle may come out longer, never shorter."""
        self._robust(self.controller.wait, (seconds,), True)

    def close(self) -> None:
        """Every line and gate of the chip to 0 V."""
        self.controller.safe_state()


def build_stack(ctx: Any) -> tuple[dict[str, OnChipController], OnChipProgrammer]:
    """Connect the bench's on-chip controller and wrap it in an :class:`OnChipProgrammer`.

    Every configuration problem is a one-line ConfigError naming the bench file and field.
    """
    cfg = ctx.config
    where = ctx.bench_path.name
    try:
        opts = programmer_options(OnChipStackOptions, cfg.programmer.options)
        if opts.instrument is None:
            name, inst = cfg.instrument_of_kind("onchip")
        else:
            name = opts.instrument
            inst = cfg.instruments.get(name)
            if inst is None or inst.kind != "onchip":
                raise ConfigError(
                    "programmer.options.instrument",
                    name,
                    "the name of an instrument of kind 'onchip'",
                )
        transport = ctx.transport(name, READ_TERMINATION, WRITE_TERMINATION)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.parameter}", exc.value, exc.allowed, exc.detail) from exc
    resource = getattr(transport, "resource", None)
    if resource is not None and getattr(resource, "chunk_size", CHUNK_SIZE) < CHUNK_SIZE:
        resource.chunk_size = CHUNK_SIZE
    controller = OnChipController(transport, cfg.chip.limits, name=name)
    controller.confirm_safe = True  # the bench's safe state is confirmed, over link faults
    try:
        controller.connect()
    except ConfigError as exc:
        raise ConfigError(
            f"{where}: instruments.{name}: {exc.parameter}", exc.value, exc.allowed, exc.detail
        ) from exc
    if (controller.rows, controller.cols) != (cfg.chip.rows, cfg.chip.cols):
        raise ConfigError(
            f"{where}: chip.rows/cols",
            (cfg.chip.rows, cfg.chip.cols),
            f"the controller's array ({controller.rows}, {controller.cols})",
        )
    return {name: controller}, OnChipProgrammer(
        controller, clock=ctx.sim_clock_s, retries=opts.retries
    )
