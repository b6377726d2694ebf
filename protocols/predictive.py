"""Predictive write-verify: a response model per cell, learned online from its own pulses.

Why: a write-verify loop without a model (Alibart's ramp) pays for its ignorance in pulses:
every cell climbs its amplitude ramp step by step to find its own threshold, and a dead
cell is pulsed until a cap-count runs out. When a cell's response is known, one pulse lands
it; the physics says what has to be known. A pulse moves G toward a bound (the SET side's
top, set by the 1T1R gate compliance, or G_min) by a fraction ``1 - exp(-s)`` of the room
left, and near threshold ``s = a·(V/V_th - 1)²``: the device-to-device spread of ``V_th``
(a few %) is what makes the same pulse move neighbouring cells by factors of several. So
each cell keeps one number per polarity, its threshold estimate, seeded by the technology's
prior and refined by every pulse it receives (the step it made, inverted through the law).

The sequence (one lock-step batch, numpy arrays + a done mask, no per-cell Python loop):

1. **Coarse** (1T1R, ``ProgrammerInfo.has_gate``): cells above their coarse aim get one
   strong RESET, then every cell one strong SET whose gate sets the compliance at the aim:
   a saturating pulse lands on the compliance whatever the cell's threshold. The gate to
   compliance map is the technology's prior, refitted on a pilot slice of the batch before
   the rest is pulsed (learned per batch, from reads). High targets are aimed below target
   and approached with SET steps, low ones above and approached with RESET steps: each
   side where the room ``top - G`` or ``G - G_min`` is smallest against the step left, so
   the fine pulses stay well above threshold where the threshold's spread matters least.
2. **Stuck cells** are flagged after ``stuck_pulses`` strong pulses that should each have
   moved them by most of their distance and did not (see ``stuck_pulses``), never looped.
3. **Relaxation** (short-term plasticity: part of each step relaxes back over ~a second):
   the coarse steps are large, so the batch waits ``observe_s`` twice and reads at each
   end; the two increments give the batch's relaxation time (their ratio) and each cell's
   pending relaxation, which the fine steps then aim through (they aim at the state that
   stays, not the one read).
4. **Fine steps**: each cell out of its aim band gets the pulse its model predicts lands
   it (the first one per polarity only part of the way: an unlearned model's overshoot
   costs a pulse of the other polarity), then one read; the model learns from the step.
   A cell is accepted on the mean of its reads since its last pulse (lock-step rounds are
   milliseconds apart, so they see different telegraph-noise states); a cell whose band
   is only a few RTN amplitudes wide first gets one of Rao's sub-threshold denoise pulses.
5. **One settle per batch**, re-verifying only the cells whose prediction is not trusted
   to stay in band. The settle is waited in parts with a read after each (seconds apart:
   independent noise) and each cell's lasting state is fitted through its relaxation;
   cells out of band are re-tuned with the model they already learned (usually one
   pulse) and checked after the next settle (at most ``settle_rounds``). Why not
   :func:`~.settle.settle_and_reverify` itself: it reads back to back and compares raw
   reads with the band, which on HfO2 is neither averaged over the telegraph noise nor
   corrected for the relaxation still running; its parameters, flags and technology
   defaults are the ones used here.

A protocol never reads a simulator parameter: everything above is learned through reads,
or taken from :class:`PredictiveParams` (priors a user or :func:`predictive_defaults` passes
in), or from the store's characterisation (:func:`priors_from_characterisation`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator

from memprog.core.errors import ConfigError
from memprog.core.limits import SafetyLimits
from memprog.core.validation import MemprogModel
from memprog.protocols.common import (
    Clock,
    Progress,
    check_amplitudes,
    check_cells,
    check_read_v,
    check_targets,
)
from memprog.protocols.events import EventSink, NullSink, sink_or_null, wants_bulk
from memprog.protocols.predictive_model import PROTOCOL, Learned, Retarget, Run
from memprog.protocols.predictive_settle import settle_batch
from memprog.protocols.programmer import CellProgrammer, ProgrammerInfo
from memprog.protocols.results import TuneResult
from memprog.protocols.settle import resolve_settle_s, settle_rounds_field


class PredictiveParams(MemprogModel):
    """Settings and priors of the predictive protocol. Defaults: HfO2 1T1R (Li 2018, Rao 2023).

    Every prior is where learning starts, not what it ends with: each cell's thresholds and
    the batch's gate map, relaxation time and drift are refitted from reads.
    """

    # [choice] the map's acceptance band (the array job's: 1 % of target, >= 3 µS, the
    # as-programmed RTN being a few µS peak to peak)
    tolerance_rel: float = Field(default=0.01, gt=0, lt=1, description="band half-width / target")
    tolerance_min_us: float = Field(default=3.0, ge=0, description="floor of the band (µS)")
    # [choice] a cell is accepted when its predicted lasting state is within this share of
    # its band: the rest is left for what no model predicts (the c2c of the relaxation of
    # the last step, RTN in the accepting read)
    aim_frac: float = Field(default=0.5, gt=0, le=1, description="aim band / band")
    # [choice] hard bound on pulses per cell (documented bound of the issue): a working
    # cell needs <= 2 coarse + ~3 fine + 1-2 re-tune pulses; 24 leaves room for the
    # slowest without letting one cell dominate the bench time
    max_pulses: int = Field(default=24, ge=2, le=10_000, description="pulse bound per cell")
    # [choice] k = 2: a strong pulse (far above threshold, >= 1 µs) moves any working cell
    # by most of its room (the worst 3-sigma device still has s ~ 2, 85 % of the room);
    # only a cycle-to-cycle draw several sigma down stalls one, and two independent such
    # draws in a row do not happen on a 65,536-cell array. A pulse only counts when it
    # should have moved the cell (a SET with its top far above G, a RESET with G far above
    # G_min): a cell already at its compliance proves nothing.
    stuck_pulses: int = Field(default=2, ge=1, le=100, description="unmoved strong pulses => stuck")
    stuck_move_rel: float = Field(
        default=0.1, gt=0, lt=1, description="moving less than this of the distance = unmoved"
    )
    # --- coarse (1T1R) -------------------------------------------------------------------
    coarse: bool = Field(default=True, description="1T1R: gate-compliance coarse placement")
    # [choice] coarse only beyond 5 % of target: the fine steps close a few % in one or two
    # pulses, while a coarse step of several mS leaves tens of µS of relaxation behind
    coarse_min_rel: float = Field(default=0.05, ge=0, le=10, description="coarse only beyond this")
    # [choice] ... and beyond 4 bands: a cell a band or two out (a re-tune after a settle,
    # a low target whose 3 µS band floor is more than 5 % of it) is closed by a fine step or
    # two, while a coarse RESET-SET round trip moves it by its whole state and leaves +-3 %
    # of that to relax (a band, at the floor), which a re-tune without a settle of its own
    # carries out of band again (measured: the program job's settle rounds re-tuning the
    # same few low-target cells round after round)
    coarse_min_bands: float = Field(
        default=4.0, ge=0, le=1000, description="coarse only beyond this many bands too"
    )
    # [choice] far above the SET/RESET thresholds (0.9/1.0 V) and 1 µs wide: saturating
    # (s >> 1) on every device, so the cell lands on the compliance, not on its threshold
    coarse_set_v: float = Field(default=2.0, gt=0, le=20, description="coarse SET amplitude")
    coarse_reset_v: float = Field(default=2.0, gt=0, le=20, description="coarse RESET magnitude")
    coarse_width_s: float = Field(default=1e-6, gt=0, le=1.0, description="coarse pulse width")
    # [Li 2018] the gate range 0.6-2.0 V spans the SET compliance over the chip's range:
    # the prior of the gate map (refitted on the pilot slice)
    gate_v_min: float = Field(default=0.6, gt=0, le=10, description="gate of the range's low end")
    gate_v_max: float = Field(default=2.0, gt=0, le=10, description="gate of the range's high end")
    # [choice] the compliance lands within ~2 % (Li's update variation) and a coarse step
    # relaxes by -2 % +- 3 % of itself: aiming 6 % short leaves < 1 % of cells on the far side
    coarse_margin_rel: float = Field(default=0.06, ge=0, lt=0.5, description="coarse aim offset")
    # [choice] targets above this share of the range are approached from below (SET room
    # top - G is the smaller one there), those under it from above (RESET room G - G_min)
    approach_split: float = Field(default=0.5, gt=0, lt=1, description="SET/RESET approach split")
    # [choice] 1 in 16 of the far cells (by target, then spread over rows and columns:
    # protocols/predictive_gate.py) pulsed first to refit the gate map: a 16,000-cell batch
    # gives ~1,000 pilot cells, far more than the two-parameter line needs
    pilot_every: int = Field(
        default=16, ge=0, le=10_000, description="every k-th cell in the gate-map pilot (0: none)"
    )
    # [choice] the confirming strong SET of a cell that did not move goes this far above
    # the map's gate: a few times what the map's error at the low end and a transistor's
    # threshold spread (tens of mV) can be, so a working cell the map aimed below its
    # onset moves (by ~0.1 V x the ~3,400 µS/V of the HfO2 gate range) and is not flagged
    # stuck; a dead cell gets no more pulses for it
    confirm_gate_margin_v: float = Field(
        default=0.1, ge=0, le=2, description="confirming SET: gate above the map's (V)"
    )
    # --- relaxation ----------------------------------------------------------------------
    # [choice] filament relaxation happens within ~1 s (short-term plasticity of HfO2); two
    # waits of 0.75 s see most of it and their ratio gives its time constant
    observe_s: float = Field(
        default=0.75, ge=0, le=600, description="each of the two waits (0: off)"
    )
    # [choice] prior of the relaxation time (until the batch's waits measure it)
    relax_tau_s: float = Field(default=1.0, gt=0, le=3600, description="relaxation time prior")
    # [choice] the batch's decay time and relaxation share are fitted from at least this many
    # coarse-placed cells (fewer keep the priors): 16 where the priors are the technology's;
    # a caller whose priors were measured on a large batch of the same chip asks for more
    # (the program job's re-tunes: on 60-70 cells the fit gave 14.6 s and a share of -0.2)
    relax_fit_min_cells: int = Field(
        default=16, ge=1, le=10_000_000, description="cells to fit the relaxation from"
    )
    # [choice] what limits the reads the relaxation is fitted from: the as-programmed RTN
    # (a few µS p-p on HfO2, Rao), so one read is good to ~1 µS
    read_noise_us: float = Field(default=1.0, gt=0, le=1000, description="read error prior (µS)")
    # [choice] a relaxation extrapolated from two waits is good to ~15 % of itself (the
    # batch's decay time is one number; the reads that fit it carry RTN)
    model_error_rel: float = Field(default=0.15, ge=0, le=1, description="extrapolation error")
    # [choice] prior of the random part of a step's relaxation, as a share of the step
    # (refitted from the coarse steps the batch observed)
    relax_spread_rel: float = Field(default=0.03, ge=0, le=1, description="relaxation spread prior")
    # [choice] 3.3 standard deviations: one cell in 2,000 beyond its band (one-sided), what
    # a >= 99.9 % within-band target allows
    trust_sigmas: float = Field(
        default=4.0, gt=0, le=10, description="sigmas to trust a prediction"
    )
    # [choice] after the settle a re-verified cell's estimate (its reads, seconds apart,
    # and its prediction) must sit this many of its standard errors inside its band: 3
    # (0.13 % one-sided at the very edge; cells land well inside, so far fewer)
    settle_sigmas: float = Field(default=3.0, ge=0, le=10, description="sigmas after the settle")
    # [choice] the settle is waited in this many parts with a read after each: reads
    # seconds apart see independent states of the telegraph noise, so k reads and the
    # prediction average it down by sqrt(k + 1) at no cost in bench time
    settle_reads: int = Field(default=6, ge=1, le=100, description="reads spread over the settle")
    # [choice] the batch's read error counts as this many reads' worth of evidence against a
    # cell's own spread (k - 2 degrees of freedom after its fit): 2, so a cell needs a few
    # quiet reads before it is believed quieter than the batch
    read_sd_prior_weight: float = Field(
        default=2.0, gt=0, le=1000, description="prior dof of read sd"
    )
    # --- fine steps ----------------------------------------------------------------------
    # [choice] HfO2 SET/RESET thresholds ~0.9/1.0 V (the bench file's own description);
    # a = s at twice the threshold: 1 moves a cell by 63 % of its room at 2 V_th, 100 ns
    set_vth_v: float = Field(default=0.9, gt=0, le=10, description="SET threshold prior")
    reset_vth_v: float = Field(default=1.0, gt=0, le=10, description="RESET threshold prior")
    set_gain: float = Field(default=1.0, gt=0, le=1000, description="SET s at 2 V_th (prior)")
    reset_gain: float = Field(default=1.0, gt=0, le=1000, description="RESET s at 2 V_th (prior)")
    fine_width_s: float = Field(default=100e-9, gt=0, le=1.0, description="fine pulse width")
    # [choice] fine pulses stay below 1.8x the threshold: the model's law holds near
    # threshold and a mis-learned cell cannot be thrown across its range
    fine_set_max_v: float = Field(default=1.6, gt=0, le=20, description="fine SET amplitude cap")
    fine_reset_max_v: float = Field(default=1.8, gt=0, le=20, description="fine RESET cap")
    # [choice] a first pulse on an unlearned polarity aims this share of the way: its gain
    # is uncertain by ~x2 (5 % threshold spread near threshold), and an overshoot costs a
    # pulse of the other polarity while an undershoot only a learned one
    first_aim: float = Field(default=0.6, gt=0, le=1, description="first-pulse aim share")
    # [Rao 2023] sub-threshold pulses remove the large telegraph fluctuator: one per
    # accepted cell whose band is narrower than this many read errors (HfO2: targets below
    # ~800 µS, where a 1 % band is a few RTN amplitudes); 0: off. Counted in ``pulses``
    # (and in ``denoise_pulses``): every pulse a cell gets is lab time
    denoise_below_sigmas: float = Field(
        default=6.0, ge=0, le=1000, description="denoise when band < k read sd"
    )
    denoise_frac: float = Field(
        default=0.6, gt=0, lt=1, description="denoise amplitude / learned V_th"
    )
    denoise_width_s: float = Field(default=1e-6, gt=0, le=1.0, description="denoise pulse width")
    # [choice] lock-step rounds of the fine loop (a round pulses or re-reads the cells still
    # open): max_pulses x a few reads each; cells still open after them are flagged
    # retry_budget, never left unflagged
    max_iterations: int = Field(default=200, ge=1, le=100_000, description="fine lock-step rounds")
    # [choice] a cell whose band is no wider than its telegraph noise is read again (rounds
    # are milliseconds apart, the noise's dwell times shorter) up to this many times
    # before it is accepted or pulsed: sqrt(6) brings a 1.3 µS RTN to 0.5 µS
    max_reads: int = Field(default=6, ge=1, le=1000, description="reads to settle a decision")
    # --- settle --------------------------------------------------------------------------
    # [choice] None: twice the relaxation time the batch measured (the coarse relaxation is
    # already compensated; what remains is the small part of the fine steps) or, without a
    # measurement, the technology's default (protocols/settle.py)
    settle_s: float | None = Field(default=None, ge=0, description="final settle (None: see doc)")
    settle_taus: float = Field(
        default=1.5, gt=0, le=100, description="settle_s=None: relaxation times"
    )
    settle_rounds: int = settle_rounds_field()
    read_v: float | None = Field(default=None, description="read voltage; None: the stack's")
    batch_size: int | None = Field(
        default=None, ge=1, description="cells in lock-step; None: all (row stacks), 1 (serial)"
    )

    @model_validator(mode="after")
    def _order(self) -> PredictiveParams:
        if self.gate_v_min >= self.gate_v_max:
            raise ConfigError("gate_v_min", self.gate_v_min, f"< gate_v_max ({self.gate_v_max})")
        if self.set_vth_v >= self.fine_set_max_v:
            raise ConfigError(
                "set_vth_v", self.set_vth_v, f"< fine_set_max_v ({self.fine_set_max_v})"
            )
        if self.reset_vth_v >= self.fine_reset_max_v:
            raise ConfigError(
                "reset_vth_v", self.reset_vth_v, f"< fine_reset_max_v ({self.fine_reset_max_v})"
            )
        return self

    def band_us(self, targets_us: np.ndarray) -> np.ndarray:
        """Half-width of each cell's tolerance band (µS)."""
        return np.maximum(self.tolerance_rel * np.asarray(targets_us, float), self.tolerance_min_us)


# Technology priors (what a technology's published description says; a user's own
# characterisation replaces them: priors_from_characterisation).
TECHNOLOGY_PRIORS: dict[str, dict[str, Any]] = {
    # [Drolet] seed 001's ramps start at 0.8 V SET / 1.1 V RESET (200 ns), i.e. just above
    # the thresholds; its crossbar is passive (no gate, no coarse step) and serial.
    # [choice] gains 1 as HfO2; the band is seed 001's 1 % (no floor beyond the SMU's noise)
    "tio2_passive": dict(
        set_vth_v=0.8,
        reset_vth_v=1.1,
        fine_width_s=200e-9,
        fine_set_max_v=2.0,
        fine_reset_max_v=2.4,
        tolerance_min_us=0.0,
        observe_s=0.0,
        read_noise_us=0.5,
        # [Drolet] a settled TiO2 state reads with a 0.44-0.63 % spread against a 1 % band,
        # and each switching pulse leaves a new one: accept wider inside the band, read
        # more before deciding (seed 001 took 10 reads in band), allow more pulses
        aim_frac=0.7,
        max_reads=10,
        max_pulses=60,
        # [choice] the band is about two settled read spreads wide: a 3-sigma proof after
        # the settle would reject nearly every cell, 2 sigma accepts 97.7 % at the edge
        settle_sigmas=2.0,
        # [Drolet] ... and to prove 2 sigma inside a 1 % band with reads of 0.44-0.63 % sd
        # the settle's estimate needs a standard error under ~0.3 %: 6 reads (and the fit's
        # relaxation term) give ~0.3-0.4 %, so a cell sitting on its target failed the proof
        # and was re-tuned (more pulses, more V/3 disturb on its neighbours) up to
        # drifted_out; 16 give ~0.2 %. The reads are spread over the settle that is waited
        # anyway and at 0.2 V disturb nothing (below the 0.25 V disturb onset). Measured
        # (6 random 64-level maps, one tune of 64 cells each): 360 -> 380 of 384
        # converged, bench time 3,113 -> 2,728 s, pulses per cell 6.6 -> 6.4; converged
        # cells tuned one by one are within band in truth at their own end (173/174 ->
        # 177/178 on 3 maps)
        settle_reads=16,
        # [Drolet] no Rao denoise on this chip: its read spread is the settled state's own
        # flicker (0.44-0.63 % of G), not a telegraph fluctuator a sub-threshold pulse can
        # remove, and seed 001's V/3 table shows what a sub-threshold pulse does to a TiO2
        # state: a random shift of ~4 µS std at 0.45 V, growing as V², i.e. ~5 µS at the
        # denoise pulse's 0.6 V_th ~ 0.5 V: several bands (1 % = 1-4 µS) per "denoise".
        # Measured (3 random 64-level 8x8 maps, 4200+707B bench): with it 50-55 of 64
        # converged at 24-26 pulses per cell, cells chasing their own kicks into the
        # pulse bound; without it 60-63 at 6.3-6.6
        denoise_below_sigmas=0.0,
    ),
    # [Diao] TiO2-x: 0.8/0.9 V thresholds [choice], narrow window; [choice] gains of a base
    # pulse ~1/512 of the window (Diao's 512 states): small, so the fine cap goes higher
    "tio2x_feedforward": dict(
        set_vth_v=0.8,
        reset_vth_v=0.9,
        set_gain=0.2,
        reset_gain=0.2,
        fine_width_s=1e-6,
        fine_set_max_v=2.0,
        fine_reset_max_v=2.0,
        tolerance_min_us=0.0,
        read_noise_us=0.1,
    ),
    "hfo2_1t1r": {},
}


def predictive_defaults(
    info: ProgrammerInfo, limits: SafetyLimits | None = None, **overrides: Any
) -> PredictiveParams:
    """Priors for the stack's technology (HfO2 when unknown), capped by the bench limits.

    ``overrides`` (any :class:`PredictiveParams` field; ``None`` values are ignored, so a
    CLI can pass its optional flags straight through: ``tolerance_rel=..., max_pulses=...,
    settle_s=...``) are applied last and validated with the rest.
    """
    upd = dict(TECHNOLOGY_PRIORS.get(info.technology, {}))
    p = PredictiveParams(**upd)
    if limits is not None:
        caps = {
            "fine_set_max_v": min(p.fine_set_max_v, limits.set_v_max),
            "fine_reset_max_v": min(p.fine_reset_max_v, limits.reset_v_max),
            "coarse_set_v": min(p.coarse_set_v, limits.set_v_max),
            "coarse_reset_v": min(p.coarse_reset_v, limits.reset_v_max),
            "fine_width_s": min(max(p.fine_width_s, limits.width_s_min), limits.width_s_max),
            "coarse_width_s": min(max(p.coarse_width_s, limits.width_s_min), limits.width_s_max),
        }
        p = PredictiveParams(**{**p.model_dump(), **caps})
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        unknown = sorted(set(given) - set(PredictiveParams.model_fields))
        if unknown:
            raise ConfigError("overrides", unknown[0], "a PredictiveParams field")
        p = PredictiveParams(**{**p.model_dump(), **given})
    return p


def priors_from_characterisation(
    base: PredictiveParams, summary: dict[str, Any] | None
) -> PredictiveParams:
    """``base`` with the thresholds a characterisation measured (store: variability DB).

    ``summary`` is a characterisation summary with any of ``set_threshold_v``,
    ``reset_threshold_v`` (medians over the chip's cells) and ``relax_tau_s``; missing keys
    keep the technology prior, so the store stays optional.
    """
    if not summary:
        return base
    upd: dict[str, Any] = {}
    for key, field in (
        ("set_threshold_v", "set_vth_v"),
        ("reset_threshold_v", "reset_vth_v"),
        ("relax_tau_s", "relax_tau_s"),
    ):
        v = summary.get(key)
        if v is not None and np.isfinite(v) and v > 0:
            upd[field] = abs(float(v))
    return PredictiveParams(**{**base.model_dump(), **upd}) if upd else base


def priors_from_variability(base: PredictiveParams, db: Any) -> PredictiveParams:
    """``base`` with the read-error prior the store's RTN census measured (optional).

    ``db`` is a :class:`memprog.store.variability.VariabilityDB` (anything with
    ``rtn_stats()``): the median peak-to-peak spread of as-programmed cells (phase
    ``before``) over two is the error of one read of a two-level fluctuator. Without the
    table (or with none measured) ``base`` is returned unchanged: the store stays optional.
    """
    try:
        stats = db.rtn_stats()
    except ConfigError:  # the store's MissingDataError: nothing characterised yet
        return base
    before = stats[stats["phase"] == "before"]
    if before.empty:
        return base
    spread = float(before["median_us"].iloc[0])
    if not np.isfinite(spread) or spread <= 0:
        return base
    return PredictiveParams(**{**base.model_dump(), "read_noise_us": spread / 2})


def tune_predictive(
    programmer: CellProgrammer,
    rows: object,
    cols: object,
    targets_us: object,
    params: PredictiveParams | None = None,
    sink: EventSink | None = None,
    progress: bool = False,
    retarget: Retarget | None = None,
) -> TuneResult:
    """Tune each named cell to its target with the predictive protocol (module docstring).

    Args:
        programmer: the stack's CellProgrammer (only its interface is used).
        rows, cols: equal-length cell addresses (each cell at most once).
        targets_us: one target per cell, or one for all, inside the chip's range.
        params: settings and priors (:func:`predictive_defaults` for the stack if None).
        sink: receives ``tune_start``/``tune_end``, ``coarse_set``, ``relaxation_fit``,
            ``settle_plan``, ``settle`` and ``cell_flagged`` events and each batch's
            results once settled (a tracing sink also every ``pulse`` and ``read``).
        progress: show a tqdm bar (stderr) counting finished cells.
        retarget: a caller's hook, called once per batch after the coarse placement (1T1R)
            with (rows, cols, targets, stuck mask, last reads); it returns None or new
            (targets, band half-widths) for the batch's cells, and the cells it moved are
            coarse-placed again and finished with the rest of the batch (the program job
            re-aims a stuck cell's twin there: ``Run._retarget``). Not called without a
            coarse step. The result's ``target_us``/``tolerance_us`` are the hook's.

    Returns:
        One :class:`TuneResult` row per cell, in the order given; figures after the settle.

    Raises:
        ConfigError: bad cells, targets outside the chip's range, or pulses beyond the
            bench's safety limits; raised before any pulse.
    """
    p = params or predictive_defaults(programmer.info, programmer.limits)
    r, c = check_cells(programmer, rows, cols)
    t = check_targets(programmer, targets_us, r.size)
    check_amplitudes(programmer, p.fine_set_max_v, p.fine_reset_max_v, p.fine_width_s)
    use_coarse = p.coarse and programmer.info.has_gate
    if use_coarse:
        check_amplitudes(programmer, p.coarse_set_v, p.coarse_reset_v, p.coarse_width_s)
        if p.gate_v_max * 1.1 > programmer.limits.gate_v_max:
            raise ConfigError(
                "gate_v_max", p.gate_v_max,
                f"<= {programmer.limits.gate_v_max / 1.1:.3g} V (bench gate_v_max / 1.1)",
            )  # fmt: skip
    read_v = check_read_v(programmer, p.read_v)
    s = sink_or_null(sink)
    clock = Clock(programmer)
    s.record_event(
        {
            "event": "tune_start",
            "protocol": PROTOCOL,
            "cells": int(r.size),
            "params": p.model_dump(),
        }
    )
    learned = Learned(p, programmer.info)
    batch = p.batch_size or (1 if programmer.info.parallel == "cell" else r.size)
    bar = Progress(progress, r.size, PROTOCOL)
    parts = []
    try:
        for k in range(0, r.size, batch):
            sl = slice(k, k + batch)
            part = _tune_batch(
                programmer, r[sl], c[sl], t[sl], p, learned, read_v, s, use_coarse, retarget
            )
            _emit(s, part)
            bar.update(len(part))
            parts.append(part)
    finally:
        bar.close()
    res = TuneResult.concat(parts, PROTOCOL) if len(parts) > 1 else parts[0]
    res.wall_s = clock.wall_s
    res.bench_time_s = clock.bench_s
    res.params = p.model_dump()
    s.record_event({"event": "tune_end", "protocol": PROTOCOL, "summary": res.summary()})
    return res


def _tune_batch(
    prog: CellProgrammer,
    r: np.ndarray,
    c: np.ndarray,
    t: np.ndarray,
    p: PredictiveParams,
    learned: Learned,
    read_v: float,
    sink: EventSink,
    use_coarse: bool,
    retarget: Retarget | None = None,
) -> TuneResult:
    run = Run(prog, r, c, t, p, learned, read_v, sink, retarget=retarget)
    run.read(np.arange(r.size))
    run.run(coarse=use_coarse, observe=use_coarse and p.observe_s > 0)
    settle = p.settle_s
    if settle is None and use_coarse and p.observe_s > 0:
        settle = p.settle_taus * learned.tau_s
    settle = resolve_settle_s(prog, settle)
    extra: dict[str, np.ndarray] = {}
    if settle > 0:
        extra = settle_batch(run, settle, p, learned)
    learned.learn_thresholds(run.st)
    part = run.result()
    part.extra.update(extra)
    return part


def _emit(sink: EventSink, res: TuneResult) -> None:
    """Stream the results of one settled batch (bulk sinks: one TuneResult)."""
    if isinstance(sink, NullSink):
        return
    if wants_bulk(sink):
        sink.record_results(res)  # type: ignore[attr-defined]
        return
    for i in range(len(res)):
        row = res.row_dict(i)
        sink.record_result(row)
        if not res.converged[i]:
            sink.record_event(
                {
                    "event": "cell_flagged",
                    "row": row["row"],
                    "col": row["col"],
                    "flags": row["flags"],
                }
            )


__all__ = [
    "PredictiveParams",
    "TECHNOLOGY_PRIORS",
    "predictive_defaults",
    "priors_from_characterisation",
    "priors_from_variability",
    "tune_predictive",
]
