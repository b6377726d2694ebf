"""A digital twin of one chip: the simulator's physics fitted to that chip's stored samples.

Why: a lab that rehearses a job on the shipped preset rehearses it on somebody else's
chip. ``memprog characterize`` stores what this chip answered; :func:`calibrate` fits the
technology preset's fields (named as :class:`DeviceParams` names them) from those samples
alone (:mod:`memprog.twin.fits`, :mod:`memprog.twin.response`) and :func:`twin_bench` writes a simulated bench whose chip
is the twin, usable wherever a bench is (tune, program, evaluate --on-bench, sim serve).

What the data cannot determine keeps the preset's value and is listed as such, with the
characterisation that would determine it. Nothing here reads a bench's ``sim_params``, a
preset's value as a result, or the simulator.
"""

from __future__ import annotations

import copy
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memprog.core.bench_config import PLACEHOLDER_RE, SIM_LIBRARY, BenchConfig, resolve_bench_path
from memprog.core.device_params import DeviceParams
from memprog.core.errors import ConfigError
from memprog.core.presets import get_preset
from memprog.core.strict_yaml import dump_yaml, load_yaml_file
from memprog.protocols.characterize_twin import GATE_LOW_FRAC
from memprog.store import MissingDataError
from memprog.twin.fits import (
    TELEGRAPH_DETECT_SD,
    Fit,
    NotConverged,
    fit_census,
    fit_read_noise,
    fit_relax,
    fit_telegraph,
)
from memprog.twin.response import fit_response

# what to run when a measurement is missing (the field keeps the preset's value)
RUN_HINT = {
    "stuck": "memprog characterize (its census)",
    "response": "memprog characterize --devices 64 --response-repeats 3 (its response procedure)",
    "noise": "memprog characterize --devices 64 (its noise procedure)",
    "relax": "memprog characterize --devices 64 (its relax procedure)",
}
# [choice] fewest census cells a defect fraction is fitted from: with 32 cells and none
# found, a fraction is known only to be under ~9 % (95 %), already a wide bound for
# fractions of a few %; a probe station's one or four devices say nothing about them
MIN_CENSUS_CELLS = 32
# the advice where a probe station saw too few devices: --devices cannot reach more
PROBE_HINT = ("characterise more devices, moving the probes (one run each), "
              "and pool the runs with --run")  # fmt: skip
# fields no procedure measures: why each keeps the preset's value
NOT_MEASURED = {
    "width_ref_s": "a convention (kappa is quoted at this width), not a property",
    "compliance_rel_std": "not separable from the c2c spread in saturating gated SET pulses",
    "rtn_small_amp_us": "below the white read noise at the read rates used",
    "rtn_dwell_min_s": "faster than the read spacing: a fluctuator that fast reads as white noise",
    "denoise_v_low_frac": "needs a denoise sweep (not measured)",
    "denoise_v_high_frac": "needs a denoise sweep (not measured)",
    "denoise_removal_probability": "needs a denoise sweep (not measured)",
    "denoise_shift_std_us": "needs a denoise sweep (not measured)",
    "disturb_std_us": "the V/3 disturb law needs the bench-iterated fit (benchmarks/fit_seed001_disturb.py)",
    "disturb_mean_us": "as disturb_std_us",
    "v_breakdown_v": "destructive: never measured",
    "breakdown_g_us": "destructive: never measured",
}
TEMPLATES = {"hfo2_1t1r": "sim_onchip", "tio2_passive": "sim_k4200_707b", "tio2x_feedforward": "sim_onchip_tio2x"}


@dataclass
class TwinResult:
    """The fitted fields, the ones kept at the preset (and why), diagnostics."""

    chip_id: str
    technology: str
    fitted: dict[str, Fit]
    kept: dict[str, str]
    diagnostics: dict[str, float] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)

    def sim_params(self) -> dict[str, Any]:
        """``chip.sim_params`` of the twin: every fitted field (plain floats / lists)."""
        return {k: (list(f.value) if isinstance(f.value, tuple) else round(float(f.value), 9)) for k, f in self.fitted.items()}

    def to_doc(self) -> dict[str, Any]:
        preset = get_preset(self.technology)
        return {
            "chip_id": self.chip_id,
            "technology": self.technology,
            "runs": self.runs,
            "fitted": {
                k: {"value": f.value, "std": f.std, "source": f.source, "preset": getattr(preset, k)}
                for k, f in sorted(self.fitted.items())
            },
            "kept_preset": {k: {"value": getattr(preset, k), "why": why} for k, why in sorted(self.kept.items())},
            "diagnostics": self.diagnostics,
        }


def known_chips(store: Any) -> list[str]:
    """Chip ids with characterize runs in the store."""
    runs = store.list_runs(kind="characterize")
    return sorted({str(c) for c in runs["chip_id"].dropna()})


def chosen_runs(store: Any, chip_id: str, asked: list[str] | None) -> list[str] | None:
    """The characterize runs a twin is fitted from: ``asked`` (each must be one of the chip's
    characterize runs), else the chip's latest complete run, else (none complete) None: the
    chip's interrupted runs, as the variability tables take them.

    Why one run by default, not every run of the chip: two characterisations are two
    sessions of a chip that may have changed between them (cycled, aged, re-formed), and a
    run cut short holds only the first procedures, some only in part; pooled, a fit mixes
    chip states and partial samples (a store with a second characterisation, or a Ctrl-C'd
    one, used to be refused by the fit). ``--run`` pools on purpose."""
    runs = store.list_runs(kind="characterize", chip_id=chip_id)
    if asked:
        mine = set(runs["run_id"])
        for r in asked:
            if r not in mine:
                raise ConfigError("--run", r, f"a characterize run of chip {chip_id}: one of {sorted(mine)}" if mine else f"a characterize run of chip {chip_id} (it has none)")
        return list(dict.fromkeys(asked))
    done = runs[runs["status"] == "complete"]
    return [str(done["run_id"].iloc[0])] if len(done) else None  # list_runs: newest first


def calibrate(vdb: Any, chip_id: str) -> TwinResult:
    """Fit the twin of ``chip_id`` from the characterize runs ``vdb`` (a VariabilityDB on
    that chip) holds. Raises ConfigError for an unknown chip (naming the known ones) and
    :class:`NotConverged` for a fit that does not describe its data."""
    runs = vdb.runs()
    if runs.empty:
        chips = known_chips(vdb.store)
        if chip_id in chips:  # known, but none of its runs stored a sample (each failed early)
            raise ConfigError("--chip", chip_id, "a chip with stored characterize samples",
                              "its characterize runs stored none (see memprog runs list): run memprog characterize again")  # fmt: skip
        raise ConfigError("--chip", chip_id, f"one of {chips}" if chips else "a chip with characterize runs (the store holds none)")
    techs = sorted({str(t) for t in runs["technology"].dropna()})
    if len(techs) != 1:
        raise ConfigError("--chip", chip_id, "runs of one technology", f"its runs name {techs or 'none'}")
    tech = techs[0]
    preset = get_preset(tech)
    fitted: dict[str, Fit] = {}
    kept: dict[str, str] = dict(NOT_MEASURED)
    if preset.cell_type != "1t1r":
        kept["compliance_rel_std"] = "no gate on this technology: its SET has no compliance to spread"
    diag: dict[str, float] = {}

    def table(name: str) -> Any:
        try:
            return vdb.raw(name)
        except MissingDataError:
            return None

    # which fields each measurement answers (kept at the preset, with its hint, if missing)
    answers = {
        "stuck": ["stuck_hrs_fraction", "stuck_lrs_fraction", "unresponsive_fraction"],
        "response": ["g_min_us", "g_max_us", "g_bounds_d2d", "v_set_threshold_v", "v_reset_threshold_v",
                     "v_threshold_d2d", "set_kappa", "reset_kappa", "kappa_d2d", "overdrive_exponent",
                     "width_exponent", "c2c_rel_std"] + (["gate_v_min_v", "gate_v_max_v"] if preset.cell_type == "1t1r" else []),
        "noise": ["read_noise_abs_us", "read_noise_rel", "rtn_large_probability", "rtn_large_amp_us",
                  "rtn_large_amp_log_std", "rtn_dwell_max_s"],
        "relax": ["relax_tau_s", "relax_step_mean", "relax_step_std"],
    }  # fmt: skip
    stuck = table("stuck")
    if stuck is not None:
        # pooled runs (--run, repeatable) census the same cells again: count each cell once,
        # by its latest census, or the fractions' errors shrink as if more cells were seen
        stuck = stuck.drop_duplicates(["row", "col"], keep="last") if {"row", "col"} <= set(stuck.columns) else stuck
        if len(stuck) >= MIN_CENSUS_CELLS:
            fitted.update(fit_census(stuck))
    resp = table("response")
    if resp is not None:
        gated = preset.cell_type == "1t1r"
        window = _gate_window(vdb)
        f, d = fit_response(resp, preset.width_ref_s, gated, window)
        fitted.update(f)
        diag.update({f"response_{k}": v for k, v in d.items()})
    noise = table("noise")
    settled = preset.settled_spread_rel > 0 or preset.settled_spread_rel_per_us != 0
    if noise is not None:
        rn = fit_read_noise(noise, settled)
        fitted.update(rn)
        white = None
        if "read_noise_abs_us" in rn:
            white = float(rn["read_noise_abs_us"].value) + float(rn["read_noise_rel"].value) * float(noise["g_us"].median())  # type: ignore[arg-type]
        fitted.update(fit_telegraph(noise, white))
        rp = fitted.get("rtn_large_probability")
        limit = None if white is None else TELEGRAPH_DETECT_SD * white
        if rp is not None and rp.value == 0 and (limit is None or preset.rtn_large_amp_us < limit):
            # none found, but none could have been: the absence of a fluctuator the reads
            # cannot resolve is not a measurement of its absence
            del fitted["rtn_large_probability"]
            kept["rtn_large_probability"] = (
                "no two-level series found, and the preset's fluctuator "
                f"({preset.rtn_large_amp_us:g} µS) is below what these reads resolve"
                + ("" if limit is None else f" ({TELEGRAPH_DETECT_SD:g} x the read noise = {limit:.3g} µS)")
            )
    relax = table("relax")
    g_model = preset.relax_rel_std > 0 or preset.relax_rel_mean != 0
    if g_model:
        answers["relax"] = ["relax_tau_s", "relax_rel_mean", "relax_rel_std"]
    if settled:
        answers["noise"][:2] = ["settled_spread_rel", "settled_spread_rel_per_us"]
    if relax is not None:
        fitted.update(fit_relax(relax, g_model))
    # the census saw every cell the stack reaches: a handful means a probe station
    few_cells = stuck is not None and len(stuck) < MIN_CENSUS_CELLS
    present = {"stuck": stuck is not None, "response": resp is not None, "noise": noise is not None, "relax": relax is not None}
    for meas, names in answers.items():
        for n in names:
            if n not in fitted and n not in kept:  # (a reason given above stands)
                kept[n] = (
                    f"the stored {meas} samples do not determine it (too few cells or events): "
                    + (PROBE_HINT if few_cells else f"run more of {RUN_HINT[meas]}")
                    if present[meas]
                    else f"no {meas} samples: run {RUN_HINT[meas]}"
                )
    # the result must be a valid chip: a fitted set that breaks an order the preset keeps
    # (bounds, gate window, dwell range) is not a twin
    try:
        DeviceParams(**{**preset.model_dump(), **TwinResult(chip_id, tech, fitted, kept).sim_params()})
    except (ConfigError, ValueError) as exc:
        if os.environ.get("MEMPROG_TWIN_DEBUG"):
            raise
        raise NotConverged(f"a fitted field out of its physical range: {exc}", float("nan"), float("nan")) from None
    return TwinResult(chip_id, tech, fitted, kept, diag, [str(r) for r in runs["run_id"]])


def _gate_window(vdb: Any) -> tuple[float, float]:
    """The gate window the characterisation's own protocol assumed (a start for the fit)."""
    try:
        g = vdb.raw("response")["gate_v"].dropna()
    except Exception:  # noqa: BLE001 - no gates: the usual window
        return 0.6, 2.0
    if g.empty:
        return 0.6, 2.0
    hi = float(g.max())
    lo = hi - (hi - float(g.min())) / (1.0 - GATE_LOW_FRAC)  # the grid's span of the window
    return max(lo, 0.05), hi


# a GPIB primary address for a lab template's <GPIB-ADDRESS> (the B1500A's factory default)
SIM_GPIB_ADDRESS = 17


def _placeholder_value(m: Any) -> str:
    """What a lab template's unfilled placeholder becomes on the simulator: loopback for
    an address of the network, a GPIB primary address (the simulator answers any) else."""
    return "127.0.0.1" if "IP" in m.group(0).upper() else str(SIM_GPIB_ADDRESS)


def twin_seed(chip_id: str) -> int:
    """The twin's default chip seed: a hash of its chip's id, far above a fleet's numbering."""
    return 1_000_000 + zlib.crc32(f"{chip_id}-twin".encode()) % 1_000_000_000


def twin_bench(result: TwinResult, template: str | Path | None, seed: int | None = None) -> dict[str, Any]:
    """The twin's bench file (a dict): the template's instruments, all on ``@memprog``, and
    the twin as its chip (id ``<CHIP>-twin``, a seed of its own, ``sim_params`` fitted)."""
    name = template or TEMPLATES.get(result.technology, "sim_onchip")
    path = resolve_bench_path(name)
    data = copy.deepcopy(load_yaml_file(path, "bench template"))
    if not isinstance(data, dict) or "chip" not in data or "instruments" not in data:
        raise ConfigError("--bench", str(name), "a bench file (chip, instruments, programmer)")
    chip = data["chip"]
    if chip.get("technology") != result.technology:
        raise ConfigError("--bench", str(name), f"a bench of technology {result.technology}", f"its chip is {chip.get('technology')}")
    for inst in data["instruments"].values():
        inst["visa_library"] = SIM_LIBRARY
        if "library" in inst:
            # an instrument library (the WGFMU's wgfmu.dll) opens its own session to the
            # real instrument: a twin always gets the simulated one
            inst["library"] = SIM_LIBRARY
        v = inst.get("resource")
        if isinstance(v, str) and PLACEHOLDER_RE.search(v):
            inst["resource"] = PLACEHOLDER_RE.sub(_placeholder_value, v)
    chip["id"] = f"{result.chip_id}-twin"
    chip["twin_of"] = result.chip_id  # (its measurements stand for the twin's: levels --settle-from-db)
    # a seed of its own, derived from the chip's id: the template's seed + 1 was the next
    # chip of a fleet (fleets number their chips' seeds up from the bench's), so a twin
    # could draw exactly what another real chip of the fleet draws
    chip["seed"] = int(seed if seed is not None else twin_seed(result.chip_id))
    chip["sim_params"] = result.sim_params()
    data["name"] = f"twin-{result.chip_id}"
    data["description"] = (
        f"Digital twin of chip {result.chip_id} ({result.technology}), fitted by memprog sim calibrate "
        f"from characterize runs {', '.join(result.runs)}; instruments of {path.name} on the simulator."
    )
    BenchConfig(**data)  # a twin bench must load like any other
    return data


def write_twin_bench(data: dict[str, Any], out: Path) -> None:
    """Write the bench file (YAML), with a header saying what it is."""
    text = "# memprog sim calibrate: a simulated bench whose chip is a fitted twin (docs/twin.md)\n"
    text += dump_yaml(data, sort_keys=False, allow_unicode=True)
    out.write_text(text, encoding="utf-8")


__all__ = ["TwinResult", "calibrate", "chosen_runs", "twin_bench", "write_twin_bench", "known_chips", "NotConverged"]
