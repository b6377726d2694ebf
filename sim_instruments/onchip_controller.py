"""Simulated on-chip 256x256 array controller, speaking protocol v1 (drivers/onchip_protocol.md).

The controller is the firmware of an integrated 1T1R chip (Rao 2023 style): per-column
drivers and sense amplifiers, so a whole row is pulsed or read in parallel; an on-chip
6-bit write-verify engine; an analog vector-matrix multiply. Here that firmware is Python
acting on the bench's :class:`~memprog.sim_instruments.chip.SimChip`:

* the static surface (``*IDN?``, ``*OPT?``, ``SYST:PROT?``) comes from ``onchip.yaml``;
* every other command is parsed here, validated like the firmware would (address range,
  the chip's breakdown-safe voltage limits, block sizes), and either acts on the chip or
  queues a numbered error (``SYST:ERR?``); a failing query also answers ``ERR <code>,"<msg>"``
  so a client never waits for a timeout;
* the chip clock advances by each operation's real duration: pulse widths, one
  ``read_time_s`` per row read, the bytes on the link at ``link_bytes_per_s`` (the backend
  adds the per-message latency).

Bulk data are IEEE 488.2 definite-length blocks, decoded and encoded with numpy in one
step (no per-value Python work), so a 65,536-value read costs a few milliseconds.

The firmware is one class assembled from its command families, one module each:
:mod:`.onchip_scpi` (parsing and blocks), :mod:`.onchip_checks` (limits and time),
:mod:`.onchip_pulses`, :mod:`.onchip_reads` (reads and VMM) and
:mod:`.onchip_programming` (the 6-bit write-verify engine). This module holds the command
table, the VISA seam, the error queue and the power-on state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from memprog.core.errors import MemprogError
from memprog.core.validation import MemprogModel
from memprog.sim_instruments.base import SimulatedInstrument, StaticSurface, register
from memprog.sim_instruments.onchip_checks import READ_V_MAX
from memprog.sim_instruments.onchip_programming import ProgrammingCommands
from memprog.sim_instruments.onchip_pulses import PulseCommands
from memprog.sim_instruments.onchip_scpi import (
    CommandError,
    expand_header,
    parse_number,
    split_fields,
)

if TYPE_CHECKING:  # pragma: no cover
    from memprog.core.bench_config import InstrumentConfig
    from memprog.sim_instruments.sim_bench import SimBench

ERROR_QUEUE_DEPTH = 16
AMPLITUDE_MARGIN = 0.9  # firmware refuses pulses above this fraction of the breakdown voltage
GATE_HEADROOM_V = 0.5  # firmware gate limit above the gate voltage of full compliance
WAIT_MAX_S = 10.0  # longest single SYST:WAIT?, s


class OnChipSimOptions(MemprogModel):
    """Simulator-only knobs, from the bench file's ``instruments.<name>.options``."""

    link_bytes_per_s: float | None = Field(
        default=None, gt=0, description="link throughput; default 1e7 B/s socket, 92,160 B/s serial"
    )
    sim_faults: dict | None = Field(default=None, description="fault injection (faults.FaultPlan)")


@register("onchip")
class SimOnChipController(PulseCommands, ProgrammingCommands, SimulatedInstrument):
    """The firmware of the on-chip controller, answering protocol v1 on the bench's chip."""

    write_termination = "\n"
    read_termination = "\n"
    latency_s = 50e-6

    def __init__(self, name: str, config: InstrumentConfig, bench: SimBench) -> None:
        super().__init__(name, config, bench)
        self.options = OnChipSimOptions(**config.options)
        default_rate = 92_160.0 if config.resource.upper().startswith("ASRL") else 1e7
        self.link_bytes_per_s = self.options.link_bytes_per_s or default_rate
        self.static = StaticSurface("onchip.yaml", "ONCHIP256")
        chip = self.chip
        p = chip.params
        self.rows, self.cols = chip.rows, chip.cols
        self.amplitude_max_v = round(AMPLITUDE_MARGIN * p.v_breakdown_v, 3)
        self.gate_max_v = p.gate_v_max_v + GATE_HEADROOM_V
        self.width_range_s = (p.width_min_s, p.width_max_s)
        self._row_cols = np.arange(self.cols)
        self._all_rc = np.divmod(np.arange(self.rows * self.cols), self.cols)
        self._errors: deque[tuple[int, str]] = deque()
        self.power_cycles = 0
        self.aborts = 0
        self._table: dict[str, Callable[[str], str | bytes | None]] = {}
        for template, fn in self._commands().items():
            for spelling in expand_header(template):
                self._table[spelling] = fn
        self.reset()

    # ------------------------------------------------------------------ command table
    def _commands(self) -> dict[str, Callable[[str], str | bytes | None]]:
        return {
            "*RST": self._rst,
            "*CLS": self._cls,
            "*OPC?": self._opc,
            "*STB?": lambda a: str(self.status_byte()),
            "SYSTem:ERRor?": self._err_next,
            "SYSTem:ERRor:NEXT?": self._err_next,
            "SYSTem:ERRor:COUNt?": lambda a: str(len(self._errors)),
            "ARRay:SIZE?": lambda a: f"{self.rows},{self.cols}",
            "ARRay:TYPE?": lambda a: "1T1R" if self.chip.params.cell_type == "1t1r" else "0T1R",
            "ARRay:TECHnology?": lambda a: self.chip.technology,
            "ARRay:CONDuctance?": self._conductance_range,
            "ARRay:LIMits?": self._limits,
            "PULSe:SET:AMPLitude": lambda a: self._set_amplitude(a, "set"),
            "PULSe:SET:AMPLitude?": lambda a: f"{self.set_v:.6G}",
            "PULSe:RESet:AMPLitude": lambda a: self._set_amplitude(a, "reset"),
            "PULSe:RESet:AMPLitude?": lambda a: f"{self.reset_v:.6G}",
            "PULSe:WIDTh": self._set_width,
            "PULSe:WIDTh?": lambda a: f"{self.width_s:.6G}",
            "PULSe:GATE": self._set_gate,
            "PULSe:GATE?": lambda a: f"{self.gate_v:.6G}",
            "PULSe:SET": lambda a: self._pulse_configured(a, +1),
            "PULSe:RESet": lambda a: self._pulse_configured(a, -1),
            "PULSe:ROW?": self._pulse_row,
            "PULSe:ROWS": self._pulse_rows,
            "PULSe:READ?": self._pulse_read,
            "READ:BURSt?": self._read_burst,
            "READ:VOLTage": self._set_read_v,
            "READ:VOLTage?": lambda a: f"{self.read_v:.6G}",
            "READ:CELL?": self._read_cell,
            "READ:ROW?": self._read_row,
            "READ:ARRay?": self._read_array,
            "READ:SELect": self._select,
            "READ:SELect?": self._read_selection,
            "VMM:INPut": self._vmm_input,
            "VMM?": self._vmm,
            "PROGram:RANGe": self._prog_range,
            "PROGram:RANGe?": lambda a: f"{self.prog_range_s[0]:.6G},{self.prog_range_s[1]:.6G}",
            "PROGram:PULSe": self._prog_pulse,
            "PROGram:PULSe?": lambda a: ",".join(f"{x:.6G}" for x in self.prog_pulse),
            "PROGram:MAP": self._prog_map_load,
            "PROGram:STARt": self._prog_start,
            "PROGram:STATus?": self._prog_status,
            "PROGram:RESult?": self._prog_result,
            "PROGram:DATA?": self._prog_data,
            "ABORt": self._abort,
            "SYSTem:WAIT?": self._wait,
        }

    # ------------------------------------------------------------------ VISA seam
    def handle(self, message: str) -> str | bytes | None:
        """Execute one message; the reply (text or block) or None for a command."""
        head, _, args = message.partition(" ")
        key = head.upper()
        if key.startswith(":"):
            key = key[1:]
        fn = self._table.get(key)
        try:
            if fn is None:
                reply = self.static.match(message)
                if reply is None:
                    raise CommandError(-113, f"Undefined header; {head[:40]}")
            else:
                reply = fn(args)
        except CommandError as exc:
            self._push_error(exc.code, exc.message)
            reply = f'ERR {exc.code},"{exc.message}"' if key.endswith("?") else None
        except MemprogError as exc:  # the chip refused something the firmware let through
            text = f"Execution error; {exc}".replace('"', "'").replace("\n", " ")
            self._push_error(-200, text)
            reply = f'ERR -200,"{text}"' if key.endswith("?") else None
        n_bytes = len(message) + (len(reply) if reply is not None else 0)
        self._advance(n_bytes / self.link_bytes_per_s)
        return reply

    def status_byte(self) -> int:
        """IEEE 488.2 status byte: bit 2 (EAV) while the error queue holds an error."""
        return 4 if self._errors else 0

    def can_refuse(self, message: str) -> bool:
        """The error queue and the identity are always answered, even when busy."""
        head = message.partition(" ")[0].upper().lstrip(":")
        return not head.startswith(("SYST:ERR", "SYSTEM:ERR", "*IDN", "*CLS"))

    def transient_error(self, message: str) -> str | None:
        """Fault injection: refuse ``message`` with error 210 (busy); nothing is executed."""
        text = "Controller busy; command not executed"
        self._push_error(210, text)
        head = message.partition(" ")[0]
        return f'ERR 210,"{text}"' if head.endswith("?") else None

    def power_cycle(self) -> None:
        """Fault injection: the firmware reboots (power-on settings, empty error queue)."""
        self.reset()
        self._errors.clear()
        self.power_cycles += 1

    def reset(self) -> None:
        """Power-on configuration (``*RST``); the error queue is kept, as SCPI requires."""
        p = self.chip.params
        self.set_v, self.reset_v, self.width_s = 1.5, 1.5, 1e-6
        self.gate_v = p.gate_v_max_v
        self.read_v = p.read_v
        self.selection: np.ndarray | None = None
        self.vmm_input: np.ndarray | None = None
        self.prog_range_s = (50e-6, 4144e-6)  # Rao 2023: 50-4,144 µS
        self.prog_pulse = (1.45, 100e-9, 2.0, 1e-6)  # set V, set width, reset |V|, reset width
        self.prog_map: np.ndarray | None = None
        self.prog_state = "IDLE"
        self.prog_summary: tuple[int, int, int, int, int, float] | None = None
        self.prog_data: np.ndarray | None = None
        self.safe = True  # ABOR was the last array operation (for tests and the soak)

    # ------------------------------------------------------------------ common commands
    def _rst(self, args: str) -> None:
        split_fields(args, ())
        self.reset()

    def _cls(self, args: str) -> None:
        split_fields(args, ())
        self._errors.clear()

    def _opc(self, args: str) -> str:
        """Operation complete: every operation has finished (programming too, see PROG:STAR)."""
        split_fields(args, ())
        return "1"

    def _push_error(self, code: int, message: str) -> None:
        if len(self._errors) >= ERROR_QUEUE_DEPTH:
            self._errors[-1] = (-350, "Queue overflow")
            return
        self._errors.append((code, message))

    def _err_next(self, args: str) -> str:
        split_fields(args, ())
        if not self._errors:
            return '0,"No error"'
        code, msg = self._errors.popleft()
        return f'{code},"{msg}"'

    def _conductance_range(self, args: str) -> str:
        p = self.chip.params
        return f"{p.g_min_us * 1e-6:.6G},{p.g_max_us * 1e-6:.6G}"

    def _limits(self, args: str) -> str:
        w0, w1 = self.width_range_s
        return (
            f"{self.amplitude_max_v:.6G},{self.gate_max_v:.6G},{READ_V_MAX:.6G},{w0:.6G},{w1:.6G}"
        )

    def _wait(self, args: str) -> str:
        """``SYST:WAIT? <s>``: idle (lines at 0 V) for ``s`` seconds of chip time, answer 1."""
        (tok,) = split_fields(args, ("seconds",))
        s = parse_number(tok, "seconds")
        if not 0 < s <= WAIT_MAX_S:
            raise CommandError(-222, f"Data out of range; wait {s:g} s, allowed (0, {WAIT_MAX_S:g}]")
        self._advance(s)
        return "1"

    def _abort(self, args: str) -> None:
        """Safe state: stop any on-chip operation; every line and gate back to 0 V.

        Pulses and reads of this controller only energise lines for their own duration and
        programming finishes within its message, so nothing is left to stop here.
        """
        split_fields(args, ())
        self.safe = True
        self.aborts += 1
