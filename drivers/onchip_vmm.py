"""Analog vector-matrix multiplication on the on-chip controller (``VMM:INP`` + ``VMM?``).

Why a module of its own: the VMM drives every row at once, so its inputs are checked as
read-level voltages against the chip's limit before the block is sent, and a minibatch
of up to :data:`VMM_BATCH_MAX` vectors costs two messages.
"""

from __future__ import annotations

import numpy as np

from memprog.core.errors import ConfigError, InstrumentError, SafetyError
from memprog.drivers import onchip_commands as cmd
from memprog.drivers.onchip_link import OnChipLink

VMM_BATCH_MAX = 1024  # input vectors per VMM:INP block (protocol v1.1)


class OnChipVmm(OnChipLink):
    """The VMM method of :class:`~memprog.drivers.onchip.OnChipController`."""

    def vmm(self, input_v: object) -> np.ndarray:
        """``VMM:INP`` + ``VMM?``: row voltages in, column currents (A) out.

        ``input_v`` is one vector (rows,) — one integration — or a batch (k, rows) of up to
        :data:`VMM_BATCH_MAX` vectors sent as one block, answered by one block of k x cols
        currents (k integrations, one after the other): a minibatch costs two messages.
        Each input is a read-level voltage: |V| <= the chip's ``read_v_max``.
        """
        self._require_connected()
        v = np.asarray(input_v, dtype=float)
        single = v.ndim == 1
        if single:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] != self.rows or not 1 <= v.shape[0] <= VMM_BATCH_MAX:
            raise ConfigError(
                "input_v shape",
                np.shape(input_v),
                f"({self.rows},) or (k, {self.rows}), 1 <= k <= {VMM_BATCH_MAX}",
            )
        bad = ~np.isfinite(v) | (np.abs(v) > self.limits.read_v_max)
        if bad.any():
            raise SafetyError("input_v", float(v[bad][0]), f"|V| <= {self.limits.read_v_max} V")
        self.transport.write_binary(cmd.VMM_INPUT_HEADER, v.astype("<f4").ravel(), "f")
        n = v.shape[0] * self.cols
        try:
            i = self._query_block(cmd.VMM_QUERY, "f", n, f"a block of {n} float32 column currents")
        except InstrumentError:
            self._safe_after_error()
            raise
        i = i.astype(np.float64)
        return i if single else i.reshape(v.shape[0], self.cols)
