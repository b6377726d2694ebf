"""The protocol registry: every write-verify protocol by name, with what a caller needs to run it.

Why one registry: five callers (``memprog tune``, the array job, the level ladder, the
program job, the robustness table) each used to pick a protocol with their own
``if protocol == "alibart": … elif …`` and to guess what its settings accept (a job asking
whether a settings class has a field). A protocol is now described once — its settings
class, the settings suited to a stack, a tuner bound to one chip, how a re-tune after a
settle or a re-verify differs from a tune, and what it can do — and every caller looks it
up by name (:func:`get`; an unknown name is a ConfigError listing the known ones).

It lives in ``protocols/`` because it knows only protocols and the CellProgrammer
interface: the jobs and the CLI above it consult it; it imports no caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from memprog.core.errors import ConfigError
from memprog.core.limits import SafetyLimits
from memprog.core.validation import MemprogModel
from memprog.protocols.alibart import (
    RETUNE_COARSE_REL,
    AlibartParams,
    alibart_defaults,
    tune_alibart,
)
from memprog.protocols.denoise import DenoiseTuner
from memprog.protocols.denoise_params import DenoiseParams
from memprog.protocols.events import EventSink
from memprog.protocols.feedforward import FeedforwardParams, FeedforwardTuner
from memprog.protocols.predictive import PredictiveParams, predictive_defaults, tune_predictive
from memprog.protocols.programmer import CellProgrammer, ProgrammerInfo
from memprog.protocols.results import TuneResult


class Tuner(Protocol):
    """A protocol bound to one chip: ``tune`` cells to per-cell targets (one row per cell)."""

    def tune(
        self,
        rows: object,
        cols: object,
        targets_us: object,
        sink: EventSink | None = None,
        progress: bool = False,
    ) -> TuneResult:
        """Tune each named cell to its target."""
        ...


@dataclass(frozen=True)
class FunctionTuner:
    """A stateless protocol (a ``tune_x(programmer, rows, cols, targets, params=…)``
    function) bound to a chip and its settings, so every protocol is called the same way."""

    function: Callable[..., TuneResult]
    programmer: CellProgrammer
    params: MemprogModel

    def tune(
        self,
        rows: object,
        cols: object,
        targets_us: object,
        sink: EventSink | None = None,
        progress: bool = False,
    ) -> TuneResult:
        """Tune each named cell to its target with the bound settings."""
        return self.function(
            self.programmer, rows, cols, targets_us, params=self.params, sink=sink, progress=progress
        )

    def tune_retargeting(
        self,
        rows: object,
        cols: object,
        targets_us: object,
        retarget: Callable[..., Any],
        sink: EventSink | None = None,
    ) -> TuneResult:
        """:meth:`tune` with a caller's ``retarget`` hook (a protocol whose spec has
        ``retargets``: see :func:`memprog.protocols.predictive.tune_predictive`)."""
        return self.function(
            self.programmer, rows, cols, targets_us, params=self.params, sink=sink, retarget=retarget
        )


@dataclass(frozen=True)
class ProtocolSpec:
    """One protocol: its settings, its tuner, its re-tune rule and its capabilities.

    Attributes:
        name: the name users type (``--protocol``).
        settings: its settings class (a :class:`MemprogModel`).
        stack_defaults: settings suited to a stack (its ProgrammerInfo, optionally capped
            by its SafetyLimits).
        make_tuner: a tuner bound to a chip and settings. A stateful one (denoise keeps
            each cell's calibration, feedforward its characterisation) should be made once
            per job and reused.
        retune_update: the settings changes of a re-tune after a settle or re-verify (no
            settle of its own: the caller settles; Alibart by its fine ramp: a coarse gate
            step would leave a large volatile part behind again); empty: re-tunes as it
            tunes.
        holds_band: its settings hold cells to the caller's acceptance band (or a tighter
            one) and it settles and re-verifies every batch itself, so a caller holding
            cells to that band needs no verification read of its own.
        caller_band: its band and pulse bound are the caller's (a job's ``tolerance_rel``,
            ``tolerance_min_us``, ``max_pulses``): it aims inside the band it is given.
            Otherwise its own defaults keep their band (Alibart's is tighter than a map's,
            so cells do not stop right at its edge; denoise's is absolute).
        final_on_gated: on a gated (1T1R) array its result is final: it settled and
            verified each batch after the relaxation it measured, and the access transistor
            keeps later writes off cells already done, so a disturb re-verify would only
            re-read what it just measured.
        maps: it takes a conductance map (``memprog tune --map``, the array job).
        ladder: it can run the level ladder (:func:`~memprog.protocols.ladder.run_ladder`).
        verify_at_end: it has an end-of-batch disturb check (``verify_at_end``) that a
            caller re-verifying every cell itself turns off.
        user_fields: the command line's settings (``--tolerance-rel``, ``--max-pulses``,
            ``--settle-s``) that reach its settings (:meth:`with_user`).
        summary: one line for help texts.
        retargets: its tuner has ``tune_retargeting``: a caller's hook may change targets
            once the batch's stuck cells are known, inside the batch (the program job
            re-aims a stuck copy's twin there).
    """

    name: str
    settings: type[MemprogModel]
    stack_defaults: Callable[[ProgrammerInfo, SafetyLimits | None], MemprogModel]
    make_tuner: Callable[[CellProgrammer, MemprogModel], Tuner]
    retune_update: Callable[[MemprogModel], dict[str, Any]]
    holds_band: bool
    caller_band: bool
    final_on_gated: bool
    maps: bool
    ladder: bool
    verify_at_end: bool
    user_fields: tuple[str, ...]
    summary: str
    retargets: bool = False

    @property
    def max_pulses(self) -> int:
        """The protocol's own per-cell pulse budget (its settings' default)."""
        return int(self.settings.model_fields["max_pulses"].default)

    def defaults(
        self, info: ProgrammerInfo, limits: SafetyLimits | None = None, **overrides: Any
    ) -> MemprogModel:
        """Settings for the stack, with ``overrides`` (``None`` values ignored) applied last
        and validated with the rest (ConfigError naming a field the settings do not have)."""
        return self.override(self.stack_defaults(info, limits), **overrides)

    def override(self, params: MemprogModel, **overrides: Any) -> MemprogModel:
        """``params`` with the non-``None`` ``overrides`` applied, validated as a whole."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return params
        unknown = sorted(set(given) - set(self.settings.model_fields))
        if unknown:
            raise ConfigError("overrides", unknown[0], f"a {self.settings.__name__} field")
        return self.settings(**{**params.model_dump(), **given})

    def with_user(self, params: MemprogModel, **user: Any) -> MemprogModel:
        """``params`` with the command line's settings this protocol takes (:attr:`user_fields`)."""
        return self.override(params, **{k: v for k, v in user.items() if k in self.user_fields})

    def tuner(self, programmer: CellProgrammer, params: MemprogModel | None = None) -> Tuner:
        """A tuner on ``programmer`` (settings: ``params``, else the stack's defaults)."""
        p = params if params is not None else self.defaults(programmer.info, programmer.limits)
        return self.make_tuner(programmer, p)

    def retune_params(self, params: MemprogModel) -> MemprogModel:
        """The settings of a re-tune after a settle or a re-verify (see :attr:`retune_update`)."""
        upd = self.retune_update(params)
        return params.model_copy(update=upd) if upd else params

    def retuner(self, tuner: Tuner, programmer: CellProgrammer, params: MemprogModel) -> Tuner:
        """The tuner of re-tunes: ``tuner`` itself when a re-tune is a tune (a stateful tuner
        keeps what it learned about each cell), else one with :meth:`retune_params`."""
        if not self.retune_update(params):
            return tuner
        return self.make_tuner(programmer, self.retune_params(params))


def _alibart_retune(p: Any) -> dict[str, Any]:
    return {"coarse_min_rel": max(p.coarse_min_rel, RETUNE_COARSE_REL), "settle_s": 0.0}


def _no_change(p: Any) -> dict[str, Any]:
    return {}


def _settle_off(p: Any) -> dict[str, Any]:
    return {"settle_s": 0.0}


def _plain(settings: type[MemprogModel]) -> Callable[[ProgrammerInfo, SafetyLimits | None], MemprogModel]:
    """Stack defaults of a protocol whose settings do not depend on the stack."""
    return lambda info, limits: settings()


_USER_ALL = ("tolerance_rel", "max_pulses", "settle_s")

PROTOCOLS: dict[str, ProtocolSpec] = {
    s.name: s
    for s in (
        ProtocolSpec(
            name="alibart",
            settings=AlibartParams,
            stack_defaults=alibart_defaults,
            make_tuner=lambda prog, p: FunctionTuner(tune_alibart, prog, p),
            retune_update=_alibart_retune,
            holds_band=True,
            caller_band=False,
            final_on_gated=False,
            maps=True,
            ladder=True,
            verify_at_end=True,
            user_fields=_USER_ALL,
            summary="Alibart adaptive write-verify (no device model)",
        ),
        ProtocolSpec(
            name="denoise",
            settings=DenoiseParams,
            stack_defaults=_plain(DenoiseParams),
            make_tuner=lambda prog, p: DenoiseTuner(prog, p),  # type: ignore[arg-type]
            retune_update=_no_change,
            holds_band=False,
            caller_band=False,
            final_on_gated=False,
            maps=True,
            ladder=True,
            verify_at_end=False,
            # [fact] its band is absolute (tolerance_us): --tolerance-rel is refused for it;
            # its pulse budget is per cell like the others' (--max-pulses' help names it)
            user_fields=("max_pulses", "settle_s"),
            summary="Rao's RTN-denoising high-resolution write-verify",
        ),
        ProtocolSpec(
            name="feedforward",
            settings=FeedforwardParams,
            stack_defaults=_plain(FeedforwardParams),
            make_tuner=lambda prog, p: FeedforwardTuner(prog, p),  # type: ignore[arg-type]
            retune_update=_no_change,
            holds_band=False,
            caller_band=False,
            final_on_gated=False,
            maps=False,
            ladder=True,
            verify_at_end=False,
            user_fields=("max_pulses", "settle_s"),  # (its band is absolute, as denoise's)
            summary="Diao's feedforward linear potentiation (characterise, then schedule)",
        ),
        ProtocolSpec(
            name="predictive",
            settings=PredictiveParams,
            stack_defaults=predictive_defaults,
            make_tuner=lambda prog, p: FunctionTuner(tune_predictive, prog, p),
            retune_update=_settle_off,
            holds_band=True,
            caller_band=True,
            final_on_gated=True,
            maps=True,
            ladder=False,
            verify_at_end=False,
            user_fields=_USER_ALL,
            summary="learns each cell's response: a few pulses per cell",
            retargets=True,
        ),
    )
}


def names(
    maps: bool | None = None, ladder: bool | None = None
) -> tuple[str, ...]:
    """Registered protocol names, optionally only those with (or without) a capability."""
    return tuple(
        n
        for n, s in PROTOCOLS.items()
        if (maps is None or s.maps == maps) and (ladder is None or s.ladder == ladder)
    )


def get(
    name: str, parameter: str = "protocol", maps: bool | None = None, ladder: bool | None = None
) -> ProtocolSpec:
    """The protocol called ``name``; with ``maps``/``ladder`` it must have that capability.

    Raises:
        ConfigError: unknown name, or a protocol without the capability asked for; the
            message lists the names that would do.
    """
    allowed = names(maps=maps, ladder=ladder)
    if name not in allowed:
        what = " for a --map" if maps else " for a ladder" if ladder else ""
        raise ConfigError(parameter, name, f"one of {list(allowed)}{what}")
    return PROTOCOLS[name]


__all__ = ["PROTOCOLS", "FunctionTuner", "ProtocolSpec", "Tuner", "get", "names"]
