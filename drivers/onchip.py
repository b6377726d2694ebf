"""Driver of the on-chip 256x256 array controller (protocol v1, ``drivers/onchip_protocol.md``).

The controller sits on the chip's board and speaks SCPI-style text over a raw socket or a
serial line, with IEEE 488.2 definite-length blocks for bulk data. This driver gives every
command a typed method, validates every argument against the array geometry, checks the
chip's :class:`~memprog.core.limits.SafetyLimits` before anything is sent (SafetyError), and turns
every error the controller reports into an :class:`~memprog.core.errors.InstrumentError` carrying
the controller's code and message, after draining the error queue. A reply it cannot parse
is a :class:`~memprog.core.errors.ProtocolError` naming what was expected.

It talks through a :class:`~memprog.drivers.transport.Transport` only: the same driver runs
against the lab controller, the simulated one (``@memprog``) and the exact-traffic fake of
the protocol tests.

The hot paths (one-cell pulse, one-cell read) cost one message each and check their
arguments on Python scalars; a write-verify step (a pulse train then a burst of reads,
``PULS:READ?``) and a burst of reads (``READ:BURS?``) cost one message each; bulk
operations are one message per batch with numpy-encoded blocks.

The class is composed of one part per concern, each in its own module: the plumbing
(:mod:`~memprog.drivers.onchip_link`: session, error queue, limits, safe state), pulses
(:mod:`~memprog.drivers.onchip_pulses`), reads (:mod:`~memprog.drivers.onchip_reads`),
pulse-then-read bursts (:mod:`~memprog.drivers.onchip_bursts`), the analog VMM
(:mod:`~memprog.drivers.onchip_vmm`) and the on-chip 6-bit programming engine
(:mod:`~memprog.drivers.onchip_levels`). What needs several parts at once (recovery after
a fault, raw diagnostics, closing) lives here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.core.errors import ConfigError
from memprog.drivers import onchip_commands as cmd
from memprog.drivers.onchip_bursts import OnChipBursts
from memprog.drivers.onchip_levels import OnChipLevels
from memprog.drivers.onchip_pulses import OnChipPulses
from memprog.drivers.onchip_reads import OnChipReads
from memprog.drivers.onchip_vmm import OnChipVmm

_RAW_REFUSED = ("PULS", "PROG", "VMM", "READ:VOLT")  # stimulus commands: typed methods only


class OnChipController(OnChipPulses, OnChipReads, OnChipBursts, OnChipVmm, OnChipLevels):
    """The on-chip array controller.

    Args:
        transport: the connection (``VisaTransport`` in the lab and on the simulated bench).
        limits: the chip's safety limits, checked before every pulse, read and VMM.
        name: instrument name used in error messages.

    Nothing is sent until :meth:`connect`.
    """

    # ------------------------------------------------------------------ recovery
    def recover(self) -> None:
        """Bring link and controller back in step after a link fault or a controller reboot.

        The transport discards stale replies (and reopens a lost connection); the error
        queue is drained (an error of the failed exchange must not be blamed on the next
        command); the read voltage and the configured pulse, which a reboot resets to their
        power-on values, are checked and sent again.
        """
        recover = getattr(self.transport, "recover", None)
        if callable(recover):
            recover()
        self.drain_errors()
        read_v = cmd.parse_float(self._query("READ:VOLT?"), "a read voltage in V", self.name)
        if read_v != self.read_v:
            self.set_read_voltage(self.read_v)
        if self._pulse_config:
            self.configure_pulses(**self._pulse_config)

    # ------------------------------------------------------------------ raw access
    def write_raw(self, message: str) -> None:
        """Send any non-stimulus command and check the error queue (diagnostics)."""
        self._refuse_stimulus(message)
        self.transport.write(message)
        self._check(message)

    def query_raw(self, message: str) -> str:
        """Send any non-stimulus query; an ``ERR`` reply becomes InstrumentError."""
        self._refuse_stimulus(message)
        return self._query(message)

    def write_block_raw(self, header: str, values: Any, datatype: str) -> None:
        """Send ``header`` + a block of ``values`` and check the error queue (diagnostics)."""
        self._refuse_stimulus(header)
        self.transport.write_binary(header, np.asarray(values), datatype)
        self._check(header + "<block>")

    @staticmethod
    def _refuse_stimulus(message: str) -> None:
        head = message.lstrip(":").upper()
        if head.startswith(_RAW_REFUSED):
            raise ConfigError(
                "raw message",
                message[:40],
                "",
                "pulse, program, VMM and read-voltage commands go through the typed, "
                "safety-checked methods",
            )

    def close(self) -> None:
        """Leave the chip safe and close the connection."""
        try:
            self.safe_state()
        finally:
            self.transport.close()
