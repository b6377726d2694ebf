"""The simulated WGFMU library's readout layer: measured values and the DC-mode functions.

Why a module of its own: these are the functions that hand numbers back to the caller --
the values ``execute`` measured (an ``AVERAGED`` event returns one value, the mean of its
points, timed at the middle of the event; a ``RAW`` event returns one value per point [the
WGFMU user's guide's description of the two data modes]) and the DC mode's force/measure
calls, which sample the chip through the same path as a measure event
(:meth:`.wgfmu_execution.WgfmuExecution._sample`). Out-arrays are filled only after their
sizes were checked (:mod:`.wgfmu_call_checks`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.core.probe_wiring import parse_pad
from memprog.sim_instruments.b1500_state import OP_DC
from memprog.sim_instruments.wgfmu_codes import (
    CONTEXT_ERROR,
    FORCE_RANGES,
    PARAMETER_OUT_OF_RANGE_ERROR,
    RESULT_NOT_READY_ERROR,
    CallFailed,
)
from memprog.sim_instruments.wgfmu_execution import WgfmuExecution


class WgfmuReadout(WgfmuExecution):
    """Data retrieval and DC-mode functions of ``wgfmu.h`` (the top layer of the library)."""

    # ================================================================== data retrieval
    def _getMeasureValueSize(self, ch: int, measured: Any, total: Any) -> None:
        self._channel(ch)
        n_total = self.expected.get(ch, 0)
        res = self.results.get(ch)
        self._out(measured, 0 if res is None else res[0].size, "measuredSize")
        self._out(total, n_total, "totalSize")
        self._advance("io")

    def _getMeasureValues(self, ch: int, offset: int, size: Any, times: Any, values: Any) -> None:
        self._channel(ch)
        res = self.results.get(ch)
        if res is None:
            raise CallFailed(RESULT_NOT_READY_ERROR, f"channel {ch} has no measured values")
        t, v = res
        if not size or not times or not values:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, "NULL pointer")
        want = int(size[0])
        if offset < 0 or offset > t.size or want < 0:
            raise CallFailed(
                PARAMETER_OUT_OF_RANGE_ERROR, f"offset {offset} / size {want} outside [0, {t.size}]"
            )
        n = min(want, t.size - offset)
        if n:
            np.ctypeslib.as_array(times, shape=(n,))[:] = t[offset : offset + n]
            np.ctypeslib.as_array(values, shape=(n,))[:] = v[offset : offset + n]
        size[0] = n
        self._advance("io")

    def _getMeasureValue(self, ch: int, index: int, time: Any, value: Any) -> None:
        self._channel(ch)
        res = self.results.get(ch)
        if res is None:
            raise CallFailed(RESULT_NOT_READY_ERROR, f"channel {ch} has no measured values")
        if not 0 <= index < res[0].size:
            raise CallFailed(
                PARAMETER_OUT_OF_RANGE_ERROR, f"index {index} outside [0, {res[0].size - 1}]"
            )
        self._out(time, float(res[0][index]), "measureTime")
        self._out(value, float(res[1][index]), "measureValue")
        self._advance("io")

    def _getCompletedMeasureEventSize(self, ch: int, measured: Any, total: Any) -> None:
        self._channel(ch)
        _, _, events = self._timeline(ch)
        done = len(events) if ch in self.results else 0
        self._out(measured, done, "measuredSize")
        self._out(total, len(events), "totalSize")

    # ================================================================== DC mode
    def _dc_ready(self, ch: int) -> None:
        mf = self._session()
        self._channel(ch)
        self._apply_setups([ch])
        if mf.wgfmu[ch].mode != OP_DC:
            raise CallFailed(CONTEXT_ERROR, f"channel {ch} is not in DC mode (setOperationMode)")
        if not mf.wgfmu[ch].connected:
            raise CallFailed(CONTEXT_ERROR, f"channel {ch} is not connected (WGFMU_connect)")

    def _dcforceVoltage(self, ch: int, v: float) -> None:
        self._dc_ready(ch)
        mf = self._session()
        lo, hi = FORCE_RANGES[mf.wgfmu[ch].force_range]
        v = self._volt(v)
        if not lo <= v <= hi:
            raise CallFailed(
                PARAMETER_OUT_OF_RANGE_ERROR,
                f"voltage {v} outside the force range [{lo:g}, {hi:g}] V",
            )
        mf.wgfmu[ch].level_v = v
        self._advance("io")

    def _dc_value(self, ch: int, averaging_s: float) -> float:
        mf = self._session()
        row_v, col_v = mf.line_voltages()
        mf.stress(row_v, col_v, max(averaging_s, 10e-9))
        hw = mf.wgfmu[ch]
        waves = {ch: (np.zeros(0), np.zeros(0))}
        played: list[tuple[bool, int, int]] = []
        if mf.wiring is not None and ch in mf.wiring.pads:
            side, idx = parse_pad(mf.wiring.pads[ch])
            played.append((side == "top", idx, ch))
            waves[ch] = (np.array([0.0]), np.array([hw.level_v]))
        return self._sample(mf, waves, played, row_v, col_v, ch, 0.0, averaging_s)

    def _dcmeasureValue(self, ch: int, value: Any) -> None:
        self._dc_ready(ch)
        self._out(value, self._dc_value(ch, 10e-9), "value")
        self._advance("io")

    def _dcmeasureAveragedValue(self, ch: int, count: int, interval: int, value: Any) -> None:
        self._dc_ready(ch)
        if not 1 <= count <= 65535 or not 1 <= interval <= 65535:
            raise CallFailed(
                PARAMETER_OUT_OF_RANGE_ERROR,
                f"count {count} / interval {interval} outside [1, 65535]",
            )
        self._out(value, self._dc_value(ch, count * interval * 5e-9), "value")
        self._advance("io")
