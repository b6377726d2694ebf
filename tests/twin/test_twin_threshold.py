"""The passive TiO2 twin's threshold and overdrive exponent, told apart.

The pulse law's threshold and its overdrive exponent are told apart only by steps just
above the threshold; on a passive array those steps sit under the kicks a selected cell
takes below its threshold (its half-select disturb). With the 7-amplitude grid alone
(two points in that region on the SET side), and with the kicks' rectified mean read as
steps, the fit traded one for the other: over 16 draws of 16 cells the exponent's SD was
0.083 (correlation with the SET threshold's error -0.87), and a draw could come back
with an exponent of 2.27 and every threshold 5 % low. The characterisation now pulses 8
more amplitudes per polarity from the ramp start to 1.4x it, at the ramp's width (what a
ramp spends first), and the law carries the measured kick below the threshold. Expected
values are the hidden chip's own cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memprog.bench.direct import DirectChipProgrammer
from memprog.core.device_params import DeviceParams
from memprog.core.presets import get_preset
from memprog.protocols.characterize import CharacterizeParams, characterize
from memprog.sim_instruments import SimChip
from memprog.twin.response import fit_response

P = get_preset("tio2_passive")
SIDE = 16


class _Samples:
    """Keeps the response samples a characterisation streams (what the run store keeps)."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def record_event(self, event: dict) -> None:
        if event.get("event") == "samples" and event["table"] == "response":
            self.parts.append(pd.DataFrame(event["columns"]))


def fitted_vs_cells(hidden: dict, seed: int, fine: int | None = None) -> dict[str, float]:
    """Characterise 16 cells of a hidden chip (the response procedure only), fit the law;
    the fitted thresholds' error against the sampled cells' own mean, and the exponent."""
    chip = SimChip(SIDE, SIDE, DeviceParams(**{**P.model_dump(), **hidden}), seed=seed)
    sink = _Samples()
    p = CharacterizeParams(
        devices=16, levels=2, repeats=1, disturb_cells=0, rtn_reads=2, denoise_pulses=0,
        noise_reads=0, telegraph_reads=0, relax_delays_s=[], response_fine_amplitudes=fine, seed=seed,
    )  # fmt: skip
    characterize(DirectChipProgrammer(chip), p, sink=sink)
    resp = pd.concat(sink.parts, ignore_index=True)
    cells = resp[["row", "col"]].drop_duplicates().to_numpy()
    idx = cells[:, 0] * SIDE + cells[:, 1]
    fit, _ = fit_response(resp, P.width_ref_s, False, (0.6, 2.0))
    return {
        "set": fit["v_set_threshold_v"].value / float(np.mean(chip.v_set_th[idx])) - 1,
        "reset": fit["v_reset_threshold_v"].value / float(np.mean(chip.v_reset_th[idx])) - 1,
        "alpha": fit["overdrive_exponent"].value,
        "points": float(resp["point"].nunique()),
    }


# hidden chips and draws on which the old fit (the 7-amplitude grid, the median of the
# cells, no kick in the law) traded the exponent for the thresholds (run against it): the
# exponent 2.20 / 2.27 with the SET thresholds -2.6 % / -5.1 % and the RESET -3.3 % / -5.2 %
# off the sampled cells' own mean (seed 300); 2.16, SET -1.8 % (seed 302)
CASES = [
    (dict(set_kappa=0.7, reset_kappa=1.3), 300),
    (dict(set_kappa=1.5, reset_kappa=1.5, stuck_hrs_fraction=0.03), 300),
    (dict(set_kappa=1.5, reset_kappa=1.5, stuck_hrs_fraction=0.03), 302),
]


@pytest.mark.slow
@pytest.mark.parametrize("hidden, seed", CASES)
def test_threshold_and_exponent_are_told_apart(hidden, seed):
    """16 cells: the exponent within 0.1 of the chip's (2.0), and both thresholds within
    1.5 % of the sampled cells' own mean (a write-verify moves ~4.5 % per 1 %)."""
    got = fitted_vs_cells(hidden, seed)
    assert abs(got["alpha"] - 2.0) < 0.1, got
    assert abs(got["set"]) < 0.015 and abs(got["reset"]) < 0.015, got
