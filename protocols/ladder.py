"""The level ladder: one cell programmed through many equally spaced levels, each verified.

This is the headline experiment of the precision papers: Rao 2023 Fig. 1g (2,048 levels,
50 to 4,144 µS, 2 µS apart, every reading within 1 µS) and Diao 2025 (512 states in a
window of ratio 1.19). The cell is taken to each level in turn with the chosen protocol,
then read ``verify_reads`` times; a level counts as within tolerance only when every one of
those verification reads is within ``tolerance_us`` of the level.

Protocols: ``denoise`` (:class:`~memprog.protocols.denoise.DenoiseTuner`, learning the cell
as it goes), ``denoise-off`` (the same loop without denoising, the control experiment),
``alibart`` (:func:`~memprog.protocols.alibart.tune_alibart` per level) and ``feedforward``
(characterise once, then feed the equal-step schedule forward, one scheduled pulse per
level plus corrections).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from memprog.core.errors import ConfigError
from memprog.protocols import registry
from memprog.protocols.alibart import AlibartParams, tune_alibart
from memprog.protocols.common import Clock, Progress, check_cells, check_targets
from memprog.protocols.denoise import DenoiseTuner
from memprog.protocols.denoise_params import DenoiseParams
from memprog.protocols.events import EventSink, EventsOnly, NullSink, sink_or_null, wants_trace
from memprog.protocols.feedforward import FeedforwardParams, FeedforwardTuner, linearity_r2
from memprog.protocols.ladder_settle import MovementSink, check_validation, final_check
from memprog.protocols.programmer import BURST_INTERVAL_S, CellProgrammer, check_interval_s
from memprog.protocols.registry import ProtocolSpec
from memprog.protocols.settle import adaptive_read, resolve_settle_s

LadderProtocol = Literal["denoise", "denoise-off", "alibart", "feedforward"]
# the ladder's control experiment: a registered protocol with one setting changed
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {"denoise-off": ("denoise", {"denoise": False})}
PROTOCOLS: tuple[str, ...] = (*registry.names(ladder=True), *VARIANTS)


@dataclass
class LadderResult:
    """Per-level outcome of a ladder run (arrays of one entry per level)."""

    protocol: str
    row: int
    col: int
    levels_us: np.ndarray
    final_us: np.ndarray  # the protocol's accepting estimate
    verify_mean_us: np.ndarray  # mean of the verification reads
    verify_max_err_us: np.ndarray  # largest |verification read - level|
    pulses: np.ndarray  # programming pulses (denoise pulses included)
    denoise_pulses: np.ndarray
    reads: np.ndarray  # protocol reads + verification reads
    converged: np.ndarray
    tolerance_us: float
    verify_reads: int
    setup_pulses: int = 0  # characterisation / approach pulses before the first level
    wall_s: float = 0.0
    bench_time_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    criterion: str = "every-read"  # or "mean": the verification mean within the tolerance
    settle_s: float = 0.0  # bench time waited before each level's verification
    settle_retunes: np.ndarray | None = None  # re-tunes after a settle, per level
    settle_waits_s: np.ndarray | None = None  # settles waited per level (a settle rule's)
    validate_max_err_us: np.ndarray | None = None  # after validate_wait_s more (NaN: not)
    validate_mean_us: np.ndarray | None = None
    validate_wait_s: float = 0.0
    final_check: dict[str, float] | None = None  # the last level after final_wait_s more

    @property
    def within(self) -> np.ndarray:
        """Levels that count: every verification read (or their mean) within the tolerance."""
        if self.criterion == "mean":
            return np.abs(self.verify_mean_us - self.levels_us) <= self.tolerance_us
        return self.verify_max_err_us <= self.tolerance_us

    def summary(self) -> dict[str, Any]:
        """The headline numbers (JSON-ready)."""
        n = int(self.levels_us.size)
        return {
            "protocol": self.protocol,
            "cell": [self.row, self.col],
            "levels_attempted": n,
            "levels_within_tolerance": int(self.within.sum()),
            "levels_converged": int(self.converged.sum()),
            "tolerance_us": self.tolerance_us,
            "verify_reads": self.verify_reads,
            "max_error_us": float(self.verify_max_err_us.max()) if n else 0.0,
            "pulses": int(self.pulses.sum()) + int(self.setup_pulses),
            "pulses_per_level": float(self.pulses.mean()) if n else 0.0,
            "denoise_pulses_per_level": float(self.denoise_pulses.mean()) if n else 0.0,
            "setup_pulses": int(self.setup_pulses),
            "reads": int(self.reads.sum()),
            "linearity_r2": linearity_r2(self.levels_us, self.verify_mean_us) if n > 1 else 1.0,
            "first_level_us": float(self.levels_us[0]) if n else None,
            "last_level_us": float(self.levels_us[-1]) if n else None,
            "wall_s": float(self.wall_s),
            "bench_time_s": None if self.bench_time_s is None else float(self.bench_time_s),
            "criterion": self.criterion,
            "settle_s": float(self.settle_s),
            "settle_retunes": 0 if self.settle_retunes is None else int(self.settle_retunes.sum()),
            "verify_reads_mean": float(self.extra.get("verify_reads", np.array([self.verify_reads])).mean()),
            **self._validation_summary(),
        }

    def _validation_summary(self) -> dict[str, Any]:
        """Per-level settles and the validation (only for a run that asked for them)."""
        out: dict[str, Any] = {}
        if self.settle_waits_s is not None:
            w = self.settle_waits_s
            out.update({"settle_rule": True, "settle_wait_total_s": float(w.sum()),
                        "settle_wait_mean_s": float(w.mean()) if w.size else 0.0,
                        "settle_wait_max_s": float(w.max()) if w.size else 0.0})  # fmt: skip
        v = self.validate_max_err_us
        if v is not None and np.isfinite(v).any():
            done = np.isfinite(v)
            out.update({
                "validate_wait_s": self.validate_wait_s, "validated_levels": int(done.sum()),
                "validated_within": int((v[done] <= self.tolerance_us).sum()),
                "validated_within_before": int(self.within[done].sum()),
                "validated_max_error_us": float(v[done].max()),
                # what the levels moved between their verification and the validation
                "validated_drift_us_max": float(np.abs(self.validate_mean_us[done] - self.verify_mean_us[done]).max()),  # type: ignore[index]
            })  # fmt: skip
        if self.final_check is not None:
            out["final_check"] = self.final_check
        return out

    def to_frame(self) -> Any:
        """One row per level."""
        import pandas as pd  # deferred: pandas is heavy (~0.5 s) and only tables need it

        return pd.DataFrame(
            {
                "level": np.arange(self.levels_us.size),
                "target_us": self.levels_us,
                "final_us": self.final_us,
                "verify_mean_us": self.verify_mean_us,
                "verify_max_err_us": self.verify_max_err_us,
                "within": self.within,
                "pulses": self.pulses,
                "denoise_pulses": self.denoise_pulses,
                "reads": self.reads,
                "converged": self.converged,
            }
        )


def ladder_levels(start_us: float, step_us: float, n_levels: int) -> np.ndarray:
    """``n_levels`` levels from ``start_us`` in steps of ``step_us`` (ConfigError if not > 0)."""
    if not np.isfinite(step_us) or step_us <= 0:
        raise ConfigError("step_us", step_us, "> 0 µS")
    if isinstance(n_levels, bool) or int(n_levels) != n_levels or n_levels < 1:
        raise ConfigError("levels", n_levels, "an integer >= 1")
    if not np.isfinite(start_us) or start_us <= 0:
        raise ConfigError("start_us", start_us, "> 0 µS")
    return start_us + step_us * np.arange(int(n_levels))


def run_ladder(
    programmer: CellProgrammer,
    row: int,
    col: int,
    levels_us: object,
    protocol: str = "denoise",
    params: AlibartParams | DenoiseParams | FeedforwardParams | None = None,
    verify_reads: int = 5,
    tolerance_us: float = 1.0,
    sink: EventSink | None = None,
    progress: bool = False,
    settle_s: float | None = None,
    settle_rounds: int = 3,
    criterion: str = "every-read",
    max_verify_reads: int = 64,
    verify_interval_s: float = BURST_INTERVAL_S,
    settle_rule: Callable[[float], float] | None = None,
    validate_every: int = 0,
    validate_wait_s: float | None = None,
    final_wait_s: float = 0.0,
) -> LadderResult:
    """Program one cell through every level in turn and verify each (see module docstring).

    Relaxation-aware: after a level is programmed the bench waits ``settle_s`` (None: the
    technology's default, :mod:`~memprog.protocols.settle`), then verifies; a level that
    left its tolerance is re-tuned and settled again (at most ``settle_rounds`` times), so
    the figures are the ones measured after the settle. ``criterion``: ``"every-read"``
    (Rao: every one of ``verify_reads`` reads within the tolerance) or ``"mean"`` (the
    states are distinguishable: the verification mean within the tolerance, with reads
    added, only where a level's spread needs them, until the mean's standard error is a
    quarter of the tolerance or ``max_verify_reads``). ``verify_interval_s``: least time
    between the starts of the verification reads (stacks that run the burst themselves).

    ``settle_rule`` (instead of ``settle_s``): the settle of each level (and of each
    re-tune) from what that level moved the cell, summed ``|dG|`` between the tuner's own
    reads (:mod:`~memprog.protocols.ladder_settle`; e.g. a measured relaxation,
    :mod:`~memprog.protocols.settle_choice`). ``validate_every`` > 0: every such level (and
    the last) waits ``validate_wait_s`` more (None: the technology's default settle) and is
    read again, never re-tuned: whether the settle was long enough, as a lab would check.
    ``final_wait_s`` > 0: the last level is read again after that much more.

    Raises:
        ConfigError: unknown protocol, bad cell, a level outside the chip's range, a
            tolerance or verify count that is not positive; before any pulse.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError("protocol", protocol, f"one of {list(PROTOCOLS)}")
    base, variant = VARIANTS.get(protocol, (protocol, {}))
    spec = registry.get(base, ladder=True)
    if not np.isfinite(tolerance_us) or tolerance_us <= 0:
        raise ConfigError("tolerance_us", tolerance_us, "> 0 µS")
    if isinstance(verify_reads, bool) or int(verify_reads) != verify_reads or verify_reads < 1:
        raise ConfigError("verify_reads", verify_reads, "an integer >= 1")
    if criterion not in ("every-read", "mean"):
        raise ConfigError("criterion", criterion, "'every-read' or 'mean'")
    if isinstance(settle_rounds, bool) or int(settle_rounds) != settle_rounds or settle_rounds < 0:
        raise ConfigError("settle_rounds", settle_rounds, "an integer >= 0")
    verify_interval_s = check_interval_s(verify_interval_s)
    r, c = check_cells(programmer, [row], [col])
    lv = check_targets(programmer, levels_us, np.size(levels_us))
    settle = resolve_settle_s(programmer, settle_s)
    check_validation(validate_every, validate_wait_s, final_wait_s, settle_s, settle_rule)
    v_wait = resolve_settle_s(programmer, validate_wait_s)
    s = sink_or_null(sink)
    runner = _make_runner(programmer, spec, variant, params, tolerance_us)
    clock = Clock(programmer)
    n = lv.size
    final = np.full(n, np.nan)
    vmean = np.full(n, np.nan)
    vmax = np.full(n, np.nan)
    pulses = np.zeros(n, dtype=np.int64)
    dn = np.zeros(n, dtype=np.int64)
    reads = np.zeros(n, dtype=np.int64)
    conv = np.zeros(n, dtype=bool)
    n_verify = np.zeros(n, dtype=np.int64)
    retunes = np.zeros(n, dtype=np.int64)
    s.record_event(
        {"event": "ladder_start", "protocol": protocol, "row": row, "col": col, "levels": n}
    )
    inner: Any = s if isinstance(s, NullSink) else EventsOnly(s)
    moved = None
    if settle_rule is not None:  # the rule needs the tuner's reads: traced, forwarded as asked
        inner = moved = MovementSink(inner)
        waits = np.zeros(n)
        settle = 0.0
    v_err = np.full(n, np.nan) if validate_every else None
    v_mean = np.full(n, np.nan) if validate_every else None
    setup = runner.setup(r, c, lv, inner)
    bar = Progress(progress, n, f"ladder ({protocol})")
    read_v = programmer.info.read_v
    try:
        for k in range(n):
            # the previous level's verification mean is where the cell starts
            start = vmean[k - 1 : k] if k else None
            if moved is not None:
                moved.start(None if start is None else float(start[0]))
            res = runner.level(r, c, lv, k, inner, start)
            for attempt in range(settle_rounds + 1):
                final[k] = res.final_us[0]
                pulses[k] += res.pulses[0] + int(res.extra.get("denoise_pulses", [0])[0])
                dn[k] += int(res.extra.get("denoise_pulses", [0])[0])
                conv[k] = bool(res.converged[0])
                reads[k] += res.reads[0]
                if moved is not None:
                    settle = float(settle_rule(moved.movement_us))  # type: ignore[misc]
                    waits[k] += settle
                if settle > 0:
                    programmer.wait(settle)
                m_k, n_k, e_k = _verify(
                    programmer, r, c, read_v, lv[k], verify_reads, criterion, tolerance_us,
                    max_verify_reads, verify_interval_s, s,
                )  # fmt: skip
                reads[k] += n_k
                n_verify[k] += n_k
                vmean[k], vmax[k] = m_k, e_k
                ok = (abs(m_k - lv[k]) if criterion == "mean" else e_k) <= tolerance_us
                if ok or (settle <= 0 and moved is None) or attempt == settle_rounds:
                    break
                retunes[k] += 1
                if moved is not None:
                    moved.start(m_k)
                res = runner.retune(r, c, lv, k, inner, np.array([m_k]))
            if v_err is not None and (k % validate_every == 0 or k == n - 1):
                programmer.wait(v_wait)
                v_mean[k], n_v, v_err[k] = _verify(  # type: ignore[index]
                    programmer, r, c, read_v, lv[k], verify_reads, "every-read", tolerance_us,
                    max_verify_reads, verify_interval_s, s,
                )  # fmt: skip
                reads[k] += n_v
            if not isinstance(s, NullSink):
                s.record_result(
                    {
                        "protocol": protocol,
                        "level": k,
                        "row": row,
                        "col": col,
                        "target_us": float(lv[k]),
                        "final_us": float(final[k]),
                        "verify_max_err_us": float(vmax[k]),
                        "pulses": int(pulses[k]),
                        "reads": int(reads[k]),
                        "converged": bool(conv[k]),
                    }
                )
            bar.update(1)
    finally:
        bar.close()
    bench_s = clock.bench_s  # the ladder's own bench time: the final check comes after it
    last = None
    if final_wait_s > 0:
        last = final_check(programmer, r, c, read_v, lv[-1], verify_reads, final_wait_s, verify_interval_s)
    out = LadderResult(
        protocol=protocol,
        row=int(row),
        col=int(col),
        levels_us=lv,
        final_us=final,
        verify_mean_us=vmean,
        verify_max_err_us=vmax,
        pulses=pulses,
        denoise_pulses=dn,
        reads=reads,
        converged=conv,
        tolerance_us=float(tolerance_us),
        verify_reads=int(verify_reads),
        setup_pulses=setup,
        wall_s=clock.wall_s,
        bench_time_s=bench_s,
        extra={"verify_reads": n_verify},
        criterion=criterion,
        settle_s=settle if settle_rule is None else float(waits.mean()),
        settle_retunes=retunes,
        settle_waits_s=waits if settle_rule is not None else None,
        validate_max_err_us=v_err,
        validate_mean_us=v_mean,
        validate_wait_s=v_wait if validate_every else 0.0,
        final_check=last,
    )
    s.record_event({"event": "ladder_end", "summary": out.summary()})
    return out


def _verify(
    programmer: CellProgrammer,
    r: np.ndarray,
    c: np.ndarray,
    read_v: float,
    level: float,
    verify_reads: int,
    criterion: str,
    tolerance_us: float,
    max_reads: int,
    interval_s: float = BURST_INTERVAL_S,
    sink: EventSink | None = None,
) -> tuple[float, int, float]:
    """(mean, reads, largest |read - level|) of one level's verification.

    ``every-read``: one burst of ``verify_reads`` reads (:meth:`CellProgrammer.read_burst`,
    reads at least ``interval_s`` apart, so they sample the telegraph noise as separate
    host-paced reads did).
    """
    if criterion == "mean":
        m, cnt, _ = adaptive_read(
            programmer, r, c, read_v, 0.25 * tolerance_us,
            min_reads=max(2, verify_reads), max_reads=max(max_reads, verify_reads, 2), sink=sink,
        )  # fmt: skip
        return float(m[0]), int(cnt[0]), float("nan")
    v = programmer.read_burst(r, c, verify_reads, read_v, interval_s)[:, 0]
    if sink is not None and wants_trace(sink):
        sink.record_event(
            {"event": "read", "rows": r, "cols": c, "g_us": np.array([v.mean()]),
             "n_reads": np.array([verify_reads]), "ptp_us": np.array([np.ptp(v)])}
        )  # fmt: skip
    return float(v.mean()), verify_reads, float(np.abs(v - level).max())


class _Runner:
    def setup(self, r: np.ndarray, c: np.ndarray, lv: np.ndarray, sink: EventSink) -> int:
        return 0

    def retune(
        self, r: np.ndarray, c: np.ndarray, lv: np.ndarray, k: int, sink: EventSink, start: Any
    ) -> Any:
        """Bring the cell back to level ``k`` after it drifted while settling."""
        return self.level(r, c, lv, k, sink, start)

    def level(
        self, r: np.ndarray, c: np.ndarray, lv: np.ndarray, k: int, sink: EventSink, start: Any
    ) -> Any:
        """Take the cell to level ``k``; ``start``: its conductance if known (else None)."""
        raise NotImplementedError


class _DenoiseRunner(_Runner):
    def __init__(self, prog: CellProgrammer, params: DenoiseParams) -> None:
        self.tuner = DenoiseTuner(prog, params)

    def level(self, r, c, lv, k, sink, start):  # noqa: D102
        return self.tuner.tune_level(r, c, lv[k : k + 1], sink, start_us=start)


class _AlibartRunner(_Runner):
    def __init__(self, prog: CellProgrammer, params: AlibartParams) -> None:
        # the ladder settles and re-verifies each level itself
        self.prog, self.params = prog, params.model_copy(update={"settle_s": 0.0})

    def level(self, r, c, lv, k, sink, start):  # noqa: D102
        return tune_alibart(self.prog, r, c, lv[k : k + 1], params=self.params, sink=sink)


class _FeedforwardRunner(_Runner):
    def __init__(self, prog: CellProgrammer, params: FeedforwardParams) -> None:
        self.tuner = FeedforwardTuner(prog, params)
        self.prog = prog

    def setup(self, r, c, lv, sink):  # noqa: D102
        ch = self.tuner.characterise(r, c, sink=sink)
        # approach the first level (from the HRS the characterisation ends in)
        res = self.tuner.tune(r, c, lv[:1], sink=sink, settle=False)
        self._first = res
        self.schedule_ok = bool(np.all(np.isfinite(ch.schedule(lv))))
        return int(ch.pulses[0])

    def retune(self, r, c, lv, k, sink, start):  # noqa: D102
        return self.tuner.tune(r, c, lv[k : k + 1], sink=sink, settle=False)

    def level(self, r, c, lv, k, sink, start):  # noqa: D102
        if k == 0:
            return self._first
        # feed the scheduled pulse (computed from the previous level), then verify/correct
        return self.tuner.tune(r, c, lv[k : k + 1], sink=sink, feed_us=lv[k - 1 : k], settle=False)


def _alibart_ladder(prog: CellProgrammer, tolerance_us: float) -> AlibartParams:
    """Drolet's ramps, capped by the bench's limits, at half the ladder's tolerance."""
    lim = prog.limits
    return AlibartParams(
        tolerance_us=0.5 * tolerance_us,
        reads_in_band=3,
        set_max_v=min(2.0, lim.set_v_max),
        reset_max_v=min(2.4, lim.reset_v_max),
    )


# The ladder's own default settings (they aim at half the ladder's verification
# tolerance) and the runner driving each protocol's tuner level by level, by protocol name.
LADDER_DEFAULTS: dict[str, Callable[[CellProgrammer, float], Any]] = {
    "denoise": lambda prog, tol: DenoiseParams(),
    "alibart": _alibart_ladder,
    "feedforward": lambda prog, tol: FeedforwardParams(tolerance_us=min(0.6 * tol, 0.05)),
}
RUNNERS: dict[str, Callable[[CellProgrammer, Any], _Runner]] = {
    "denoise": _DenoiseRunner,
    "alibart": _AlibartRunner,
    "feedforward": _FeedforwardRunner,
}


def _make_runner(
    prog: CellProgrammer, spec: ProtocolSpec, variant: dict[str, Any], params: Any,
    tolerance_us: float,
) -> _Runner:
    """The level runner: ``params`` when they are the protocol's settings, else the ladder's
    defaults; a variant's settings (``denoise-off``) applied last."""
    p = params if isinstance(params, spec.settings) else LADDER_DEFAULTS[spec.name](prog, tolerance_us)
    if variant:
        p = p.model_copy(update=variant)
    return RUNNERS[spec.name](prog, p)


__all__ = ["LadderResult", "run_ladder", "ladder_levels", "PROTOCOLS"]
