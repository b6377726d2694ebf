"""Technology presets, each parameter with its source.

Sources (see ``../shared/seeds`` and DESIGN.md section 5):
  [Drolet]  seed 001 and the public code of its authors (3it-inpaqt/Hardware-Aware-Article)
  [Li]      seed 002, Li et al., Nat. Commun. 9, 2385 (2018)
  [Rao]     seed 000, Rao et al., Nature 615, 823 (2023)
  [Diao]    seed 003, Diao et al., Nanoscale Horiz. (2025)
  [aihwkit] the PulsedDevice family's typical d2d/c2c spreads (20-30 %)
  [choice]  not in the sources: a documented memprog assumption, exposed as a parameter

Calibration choices for what the sources do not give (also in docs/physics.md):
  * RTN: one large fluctuator (present after programming with probability p, log-normal
    peak-to-peak around a few µS) and one small one (<= 0.4 µS) per cell; dwell times
    log-uniform in [10 µs, 3 ms]. Sub-threshold pulses (0.4-0.8 V_th) remove the large one
    with probability 0.7 each and nudge G by N(0, 0.3 µS): Rao's denoise, reproduced.
  * Relaxation (short-term plasticity), HfO2 and TiO2-x: each switching pulse leaves a
    volatile part of its own step, -2 % +- 3 % of dG, that relaxes with tau = 1 s on top of
    whatever earlier pulses left unrelaxed. Why the step and not G: the part of the filament a pulse has
    just moved is the part that can move back; a pulse that moves G by 0.1 µS cannot leave
    a 4 µS relaxation behind (the earlier model, N(0, 0.1 % of G) redrawn at every switching
    pulse, did; ``relax_rel_std`` still selects it). A coarse step of several mS relaxes by
    tens of µS, so a level accepted within milliseconds of it moves after a settle.
    TiO2 (tio2_passive) has a measurement instead: seed 001's tuned states settle 0.589 %
    below target whatever the level, with a spread (0.339 %) no larger than where the
    acceptance lands them. A step-sized relaxation cannot do that (it grows with the climb:
    +0.09 % at 100 µS, -0.72 % at 400 µS, spread 0.60 %); a fraction of G redrawn at each
    switching pulse does. Its mean is fitted to the offset; its level-independence and
    spread then come out as seed 001's (benchmarks/bench_seed001.py).
  * Read noise is the reading instrument's current noise at the 0.2 V read, written in µS
    ([instrument]: I_rms / 0.2 V), never a value chosen from the level spacing.
  * The device's own read spread once settled: where a seed measured it (Drolet Fig. 2c,
    TiO2: 0.63 % of G at 100 µS falling to 0.44 % at 400 µS, the instrument's share ten
    times smaller), ``settled_spread_*`` holds that measured spread; the chip adds as white
    flicker only what the small RTN fluctuator and the instrument do not already carry. The
    large fluctuator comes on top: seed 001 measured tuned devices, and the ten-reads-in-a-
    1 %-band acceptance passes states that carry one only rarely.
  * Disturb: each sub-threshold pulse >= disturb_v_min_v on a cell adds a shift whose
    cumulative mean and std after n such pulses are mean*n**0.88 and std*n**0.3 (scaled
    by (|V|/disturb_ref_v)**2), the accumulated shift capped at +-60 µS. Fitted to Drolet's
    V/3 table through the seed-001 bench itself, with the unselected cells that really switch
    (0.8 V under the RESET ramp's end) left in: the statistical model carries only the rest
    (benchmarks/fit_seed001_disturb.py); the V/2 rate follows from the same (|V|/ref)**2 law.
    Each cell's change is counted from its settled value (the stabilised reads whose offset
    the imprecision table already holds), so the settle is in the offset, not again in the
    disturb.
"""

from __future__ import annotations

from memprog.core.device_params import DeviceParams
from memprog.core.errors import ConfigError

TIO2_PASSIVE = DeviceParams(
    cell_type="passive",  # [Drolet] wire-bonded passive 8x8 TiO2 crossbar
    g_min_us=80.0,  # [Drolet] code window HRS 10 kOhm..; working range 100-400 µS
    g_max_us=500.0,  # [Drolet] code LRS 2 kOhm = 500 µS
    g_bounds_d2d=0.08,  # [choice] within aihwkit's 20-30 % band for steps, smaller for bounds
    v_set_threshold_v=0.8,  # [Drolet] SET ramp starts at 0.8 V
    v_reset_threshold_v=1.1,  # [Drolet] RESET ramp starts at -1.1 V
    v_threshold_d2d=0.05,  # [choice] 5 % threshold spread
    set_kappa=1.0,  # [choice] ~1 µS steps 40 mV above threshold -> 10-100 pulses to 1 % [Alibart]
    reset_kappa=1.0,  # [choice] symmetric with SET
    kappa_d2d=0.25,  # [aihwkit] dw_min_dtod ~0.2-0.3
    overdrive_exponent=2.0,  # [choice] VTEAM-like (V/Vth-1)**alpha
    width_ref_s=200e-9,  # [Drolet] 200 ns pulses
    width_exponent=0.5,  # [choice] square-root width dependence
    c2c_rel_std=0.3,  # [aihwkit] dw_min_std 0.3
    stuck_hrs_fraction=0.005,  # [Drolet] 0.5 % HRS-stuck
    stuck_hrs_range_us=(10.0, 100.0),  # [Drolet] U(10, 100) µS
    stuck_lrs_fraction=0.005,  # [Drolet] 0.5 % LRS-stuck
    stuck_lrs_mean_us=573.0,  # [Drolet] N(573, 99) µS
    stuck_lrs_std_us=99.0,  # [Drolet]
    unresponsive_fraction=0.0,  # [Drolet] failures are HRS/LRS-stuck (above)
    read_noise_abs_us=0.1,  # [instrument] 20 nA rms at 0.2 V: a 10 µs SMU read on the 100 µA range [Drolet]
    read_noise_rel=5e-4,  # [Drolet] instrument read spread ~10x below the 0.44-0.63 % tuning std
    settled_spread_rel=6.91e-3,  # [Drolet] Fig. 2c fit: std of a settled device's reads 0.691 % ...
    settled_spread_rel_per_us=-6.24e-6,  # [Drolet] ... -6.24e-4 %/µS (0.63 % at 100, 0.44 % at 400 µS)
    read_time_s=10e-6,  # [Drolet] 0.2 V, 10 µs reads
    read_v=0.2,  # [Drolet]
    rtn_large_probability=0.2,  # [choice]
    rtn_large_amp_us=1.0,  # [choice]
    rtn_large_amp_log_std=0.5,  # [choice]
    rtn_small_amp_us=0.3,  # [choice]
    rtn_dwell_min_s=10e-6,  # [choice]
    rtn_dwell_max_s=3e-3,  # [choice]
    denoise_v_low_frac=0.4,  # [choice]
    denoise_v_high_frac=0.8,  # [choice]
    denoise_removal_probability=0.7,  # [choice]
    denoise_shift_std_us=0.3,  # [choice]
    # relaxation [Drolet] Fig. 2d: a tuned state settles below where it was accepted by a
    # level-independent share of G with no spread beyond the acceptance's own, so on TiO2
    # the volatile part is a fraction of G (the G model), not of the last step
    relax_rel_mean=0.0071,  # [Drolet] fitted: bench_seed001 then gives the -0.589 % mean offset
    relax_rel_std=0.001,  # [Drolet] the offset's 0.339 % spread is the acceptance's own: <= 0.1 %
    relax_tau_s=1.0,  # [choice] seconds: a settle of a few s lets it finish
    relax_step_mean=0.0,  # the G model above instead of the step model
    relax_step_std=0.0,
    disturb_v_min_v=0.25,  # [choice] 0.2 V reads never disturb
    disturb_ref_v=0.45,  # [choice] a typical V/3 level of 1.35 V pulses
    # [Drolet] the V/3 table (mean/std at k = 1, 5, 13, 29 later writes): growth exponents
    # from the table's shape (log-log least squares), the two amplitudes fitted by
    # benchmarks/fit_seed001_disturb.py through the seed-001 bench itself (16 arrays, seed
    # 001's ramps and its per-tuning drift records counted from each cell's settled value,
    # iterated until the pulses it logs and the fit agree; the mean of the last three
    # rounds), on top of the real switching of unselected cells: what really switches is
    # not counted twice
    disturb_std_us=4.01,  # [Drolet] fit: std of the first disturbing pulse at disturb_ref_v
    disturb_mean_us=-0.0367,  # [Drolet] fit: mean of the first disturbing pulse
    disturb_std_exponent=0.293,  # [Drolet] std 8.2 -> 22.6 µS over k = 1 -> 29
    disturb_mean_exponent=0.879,  # [Drolet] mean -0.63 -> -11.2 µS over k = 1 -> 29
    disturb_cap_us=60.0,  # [Drolet] drift samples capped at +-60 µS
    v_breakdown_v=3.0,  # [choice] above the 2.4 V RESET maximum [Drolet]
    breakdown_g_us=2000.0,  # [Drolet] dead arrays: shorted cells at 136-724 Ohm
)

HFO2_1T1R = DeviceParams(
    cell_type="1t1r",  # [Li][Rao] 1T1R arrays integrated on CMOS
    g_min_us=30.0,  # [Rao] 50 µS lowest level reachable with margin
    g_max_us=4800.0,  # [Rao] 4,144 µS highest level reachable with margin
    g_bounds_d2d=0.04,  # [choice] keeps 4,144 µS reachable on >99 % of cells
    v_set_threshold_v=0.9,  # [choice] typical HfO2 SET onset
    v_reset_threshold_v=1.0,  # [choice]
    v_threshold_d2d=0.05,  # [choice]
    set_kappa=1.0,  # [choice] 1 mV above threshold moves G by << 1 µS (Rao precision)
    reset_kappa=1.0,  # [choice]
    kappa_d2d=0.2,  # [aihwkit]
    overdrive_exponent=2.0,  # [choice]
    width_ref_s=100e-9,  # [choice]
    width_exponent=0.5,  # [choice]
    c2c_rel_std=0.2,  # [Li] ~2 % update variation of a full SET; 20 % of a small step
    gate_v_min_v=0.6,  # [Li] gate-controlled SET compliance
    gate_v_max_v=2.0,  # [Li]
    compliance_rel_std=0.02,  # [Li] 2 % update variation
    stuck_hrs_fraction=0.0,  # [Li] failures reported as unresponsive (below), not HRS/LRS
    stuck_lrs_fraction=0.0,  # [Li]
    unresponsive_fraction=0.11,  # [Li] 11 % of devices unresponsive
    unresponsive_us=10.0,  # [Li] stuck near 10 µS
    read_noise_abs_us=0.05,  # [instrument] 10 nA rms at 0.2 V, on-chip sense amp; [Rao] all reads within 1 µS bound it
    read_noise_rel=1e-5,  # [instrument] sense-amp gain noise, 8 nA at 4 mS (800 µA)
    read_time_s=10e-6,  # [choice]
    read_v=0.2,  # [Rao] 0.2 V read
    rtn_large_probability=0.6,  # [choice] most as-programmed states fluctuate [Rao]
    rtn_large_amp_us=2.5,  # [choice] a few µS peak-to-peak before denoising [Rao]
    rtn_large_amp_log_std=0.5,  # [choice]
    rtn_small_amp_us=0.4,  # [choice] <= 1 µS after denoising [Rao]
    rtn_dwell_min_s=10e-6,  # [choice]
    rtn_dwell_max_s=3e-3,  # [choice]
    denoise_v_low_frac=0.4,  # [Rao] sub-threshold denoising pulses; window [choice]
    denoise_v_high_frac=0.8,  # [choice]
    denoise_removal_probability=0.7,  # [choice]
    denoise_shift_std_us=0.3,  # [choice]
    relax_rel_std=0.0,  # the step model below instead (see the module docstring)
    relax_tau_s=1.0,  # [choice] seconds: a settle of a few s lets it finish
    relax_step_mean=0.02,  # [choice] 2 % of each step relaxes back (short-term plasticity)
    relax_step_std=0.03,  # [choice] +-3 % of the step, random per pulse
    disturb_v_min_v=0.3,  # [choice] unused: 1T1R isolates unselected cells
    disturb_ref_v=0.45,  # [choice]
    disturb_std_us=0.0,  # [Li][Rao] 1T1R: the transistor isolates unselected cells
    disturb_mean_us=0.0,  # [Li][Rao]
    disturb_std_exponent=0.3,  # unused
    disturb_mean_exponent=0.88,  # unused
    v_breakdown_v=3.3,  # [choice]
    breakdown_g_us=10000.0,  # [choice] a hard short
)

TIO2X_FEEDFORWARD = DeviceParams(
    cell_type="1t1r",  # [Diao] single devices pulsed directly; modelled without half-select
    g_min_us=415.0,  # [Diao] HRS/LRS = 1.19: working range 420-500 µS [choice of scale]
    g_max_us=510.0,  # [Diao]
    g_bounds_d2d=0.003,  # [choice] narrow window must survive the spread
    v_set_threshold_v=0.8,  # [choice]
    v_reset_threshold_v=0.9,  # [choice]
    v_threshold_d2d=0.05,  # [choice]
    set_kappa=0.2,  # [choice] one base pulse ~ 1/512 of the window
    reset_kappa=0.2,  # [choice]
    kappa_d2d=0.2,  # [aihwkit]
    overdrive_exponent=2.0,  # [choice]
    width_ref_s=1e-6,  # [choice]
    width_exponent=0.5,  # [choice]
    c2c_rel_std=0.03,  # [Diao] near-linear, repeatable potentiation
    gate_v_min_v=0.6,  # [choice] as HfO2 (the feedforward scheme never uses the gate)
    gate_v_max_v=2.0,  # [choice]
    compliance_rel_std=0.0,  # unused: no gate-limited SET in the scheme
    stuck_hrs_fraction=0.0,  # [Diao] single selected devices (no array yield reported)
    stuck_lrs_fraction=0.0,  # [Diao]
    read_noise_abs_us=0.03,  # [instrument] 6 nA rms at 0.2 V: a ~10 µs read on a 100 µA SMU range (~100 µA flows)
    read_noise_rel=1e-5,  # [instrument] gain noise, 1 nA at 100 µA
    read_time_s=10e-6,  # [choice] as the other presets' SMU reads
    read_v=0.2,  # [choice] the field's usual 0.2 V read [Drolet][Rao]
    rtn_large_probability=0.3,  # [choice] on: no seed says it is absent
    rtn_large_amp_us=0.08,  # [Diao] bound: 512 states 0.156 µS apart were resolved -> ~half a spacing p-p
    rtn_large_amp_log_std=0.5,  # [choice] as the other oxides
    rtn_small_amp_us=0.03,  # [choice] below the read noise
    rtn_dwell_min_s=10e-6,  # [choice] as the other oxides
    rtn_dwell_max_s=3e-3,  # [choice]
    denoise_v_low_frac=0.4,  # [choice] as HfO2 [Rao]
    denoise_v_high_frac=0.8,  # [choice]
    denoise_removal_probability=0.7,  # [choice]
    denoise_shift_std_us=0.01,  # [choice] scaled to the window as HfO2's 0.3 µS to 4 mS
    relax_rel_std=0.0,  # the step model below instead (see the module docstring)
    relax_tau_s=1.0,  # [choice] as the other oxides
    relax_step_mean=0.02,  # [choice] as the other oxides: on, no seed says it is absent
    relax_step_std=0.03,  # [choice]
    disturb_v_min_v=0.3,  # unused: single devices, no half-select
    disturb_ref_v=0.45,  # unused
    disturb_std_us=0.0,  # [Diao] single devices pulsed directly: no half-select disturb
    disturb_mean_us=0.0,  # [Diao]
    disturb_std_exponent=0.3,  # unused
    disturb_mean_exponent=0.88,  # unused
    v_breakdown_v=3.0,  # [choice] as TiO2 [Drolet]
    breakdown_g_us=5000.0,  # [choice] a hard short
)

PRESETS: dict[str, DeviceParams] = {
    "tio2_passive": TIO2_PASSIVE,
    "hfo2_1t1r": HFO2_1T1R,
    "tio2x_feedforward": TIO2X_FEEDFORWARD,
}


def get_preset(name: str) -> DeviceParams:
    """Return the named technology preset, or raise ConfigError listing the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError("technology", name, f"one of {sorted(PRESETS)}") from None
