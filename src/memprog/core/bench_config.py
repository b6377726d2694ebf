"""The bench file: one YAML document describing a lab bench (or its simulated twin).

It names the instruments (kind, VISA resource, VISA library), the wiring between them and
the chip, the chip itself (technology, size, safety limits) and which CellProgrammer stack
drives it. The same file is read by :func:`memprog.open_bench` and by the simulator
backend (``PATH@memprog``), so a simulated bench is wired exactly as the lab one.

``visa_library: "@memprog"`` means "the simulator of this very bench file"; ``"@py"`` or
``"@ivi"`` (or a path to a VISA library) means real instruments.

A bench file names code that will run: a ``visa_library`` path and a WGFMU ``library``
path are shared libraries that are loaded (and whose load-time code runs) when the bench
is opened. Treat a bench file like a script. memprog validates the whole file (and each
stack's preconditions) first and loads such a library last. The YAML is read without
anchors or aliases and with a size cap (:mod:`memprog.core.strict_yaml`).
"""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from memprog.core.device_params import DeviceParams
from memprog.core.errors import ConfigError
from memprog.core.limits import SafetyLimits
from memprog.core.presets import PRESETS, get_preset
from memprog.core.strict_yaml import load_yaml_file
from memprog.core.validation import MemprogModel

InstrumentKind = Literal["onchip", "k4200", "k707b", "b1500", "wgfmu"]
StackKind = Literal["onchip", "k4200_707b", "b1500_wgfmu"]
SIM_LIBRARY = "@memprog"
# the instrument kinds each stack drives (drivers/*_programmer.py build_stack)
STACK_INSTRUMENTS: dict[str, set[str]] = {
    "onchip": {"onchip"},
    "k4200_707b": {"k4200", "k707b"},
    "b1500_wgfmu": {"b1500", "wgfmu"},
}
# [choice] disturb interlock default: 0.8 x the lowest switching threshold, i.e. 4 sigma of
# the thresholds' 5 % cell-to-cell spread below the mean, so no unselected cell switches
UNSELECTED_MARGIN = 0.8
# [choice] the largest array a bench file may describe (rows and cols); also bounds every
# conductance map and weight file memprog reads (``memprog.core.array_files``)
MAX_CHIP_SIDE = 4096
#: a lab template's "edit me" marker inside a resource or library path, e.g.
#: TCPIP0::<INSTRUMENT-IP>::5025::SOCKET (no VISA resource name holds angle brackets)
PLACEHOLDER_RE = re.compile(r"<[^<>]*>")


class InstrumentConfig(MemprogModel):
    """One instrument of the bench."""

    kind: InstrumentKind
    resource: str = Field(min_length=1, description="VISA resource string")
    visa_library: str = Field(default=SIM_LIBRARY, description="@memprog (simulator), @py, @ivi or a path")
    library: str | None = Field(default=None, description="vendor library (WGFMU): a path, or @memprog")
    timeout_ms: int = Field(default=5000, gt=0, le=600_000)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_placeholder(self) -> InstrumentConfig:
        """Refuse a lab template's ``<...>`` placeholder before anything connects.

        Why: a template that shipped a real-looking address would, run unedited, talk to
        whatever answers there; a placeholder that validation refuses offline makes the
        edit unavoidable and names the field (the file is added by ``load_bench_config``).
        """
        for fld in ("resource", "library"):
            value = getattr(self, fld)
            if value is not None and PLACEHOLDER_RE.search(value):
                raise ConfigError(
                    fld,
                    value,
                    "your instrument's own address (replace the "
                    f"{PLACEHOLDER_RE.search(value).group(0)} placeholder)",
                    "this is a lab template: edit it before connecting "
                    "(memprog bench check FILE checks it without connecting)",
                )
        return self

    @property
    def simulated(self) -> bool:
        """True when this instrument is served by memprog's simulator."""
        return self.visa_library == SIM_LIBRARY


class ChipConfig(MemprogModel):
    """The chip on the bench."""

    id: str = Field(min_length=1)
    technology: str
    rows: int = Field(ge=1, le=MAX_CHIP_SIDE)
    cols: int = Field(ge=1, le=MAX_CHIP_SIDE)
    seed: int = Field(default=0, ge=0, description="simulator only: the same seed is the same chip")
    bias_scheme: Literal["v3", "v2"] = "v3"
    read_scheme: Literal["ground", "float"] = "ground"
    limits: SafetyLimits
    sim_params: dict[str, Any] = Field(
        default_factory=dict,
        description="simulator only: technology-preset fields this chip has instead "
        "(e.g. unresponsive_fraction: 0.3 for a chip with 30 % stuck devices)",
    )
    twin_of: str | None = Field(
        default=None,
        min_length=1,
        description="simulator only: the chip this twin was fitted from (memprog sim calibrate); "
        "a command that reads the chip's measurements from the store (levels --settle-from-db) "
        "reads that chip's when the twin has none of its own, as the real job would",
    )

    @model_validator(mode="after")
    def _limits_below_breakdown(self) -> ChipConfig:
        params = PRESETS.get(self.technology)
        if params is None:
            raise ConfigError("chip.technology", self.technology, f"one of {sorted(PRESETS)}")
        if self.sim_params:
            params = self.device_params()
        self._disturb_interlock(params)
        if self.limits.conductance_max_us > params.breakdown_g_us:
            # [choice] the preset's breakdown_g_us is a hard-shorted cell: a target at or
            # above it is no state a working cell holds, so a limit above it guards nothing
            raise ConfigError(
                "chip.limits.conductance_max_us",
                self.limits.conductance_max_us,
                f"<= {params.breakdown_g_us} µS (a shorted {self.technology} cell)",
            )
        for name in ("set_v_max", "reset_v_max"):
            value = getattr(self.limits, name)
            if value >= params.v_breakdown_v:
                raise ConfigError(
                    f"chip.limits.{name}",
                    value,
                    f"< {params.v_breakdown_v} V (breakdown of {self.technology})",
                    "a safety limit at or beyond breakdown would let a pulse destroy the cell",
                )
        return self

    def device_params(self) -> Any:
        """The simulated chip's physics: the technology preset with ``sim_params`` applied.

        Unknown fields and values outside a field's range are refused (ConfigError naming
        ``chip.sim_params.<field>``), never dropped or clipped.
        """
        preset = get_preset(self.technology)
        unknown = sorted(set(self.sim_params) - set(DeviceParams.model_fields))
        if unknown:
            raise ConfigError(
                f"chip.sim_params.{unknown[0]}", self.sim_params[unknown[0]],
                "a field of the technology preset (DeviceParams)",
            )
        try:
            return DeviceParams(**{**preset.model_dump(), **self.sim_params})
        except ConfigError as exc:
            raise ConfigError(
                f"chip.sim_params: {exc.parameter}", exc.value, exc.allowed, exc.detail
            ) from exc
    def _disturb_interlock(self, params: Any) -> None:
        """Fill (or check) ``limits.unselected_v_max`` from the technology's thresholds.

        Default: ``UNSELECTED_MARGIN`` x the lower of the SET and RESET thresholds, so no
        unselected cell of a passive array switches under the V/3 or V/2 bias (the margin
        covers the thresholds' cell-to-cell spread). A larger value is refused unless
        ``allow_unselected_above_threshold`` says the user means it (seed 001's RESET ramp
        to -2.4 V puts 0.8 V, the SET threshold, on every unselected cell).
        """
        default = round(
            UNSELECTED_MARGIN * min(params.v_set_threshold_v, params.v_reset_threshold_v), 3
        )
        lim = self.limits
        if lim.unselected_v_max is None:
            object.__setattr__(self, "limits", lim.model_copy(update={"unselected_v_max": default}))
            return
        if lim.unselected_v_max > default and not lim.allow_unselected_above_threshold:
            raise ConfigError(
                "chip.limits.unselected_v_max",
                lim.unselected_v_max,
                f"<= {default} V ({UNSELECTED_MARGIN} x the lowest switching threshold of "
                f"{self.technology}), or set allow_unselected_above_threshold: true",
                "unselected cells would switch under the V/3 or V/2 bias",
            )
        if lim.unselected_v_max >= params.v_breakdown_v:
            raise ConfigError(
                "chip.limits.unselected_v_max",
                lim.unselected_v_max,
                f"< {params.v_breakdown_v} V (breakdown of {self.technology})",
            )


class ProgrammerConfig(MemprogModel):
    """Which CellProgrammer stack drives the chip, and its stack-specific options."""

    stack: StackKind
    options: dict[str, Any] = Field(default_factory=dict)


class BenchConfig(MemprogModel):
    """A whole bench file."""

    name: str = Field(min_length=1)
    description: str = ""
    chip: ChipConfig
    instruments: dict[str, InstrumentConfig]
    wiring: dict[str, Any] = Field(default_factory=dict)
    programmer: ProgrammerConfig

    @model_validator(mode="after")
    def _stack_has_its_instruments(self) -> BenchConfig:
        """Each stack drives instruments of given kinds: a bench without them is refused here,
        offline, rather than when the stack is built after a run has started."""
        have = {i.kind for i in self.instruments.values()}
        need = STACK_INSTRUMENTS[self.programmer.stack]
        missing = sorted(need - have)
        if missing:
            raise ConfigError(
                "instruments", sorted(self.instruments),
                f"an instrument of each kind the {self.programmer.stack} stack drives ({', '.join(sorted(need))})",
                f"no {', '.join(missing)}",
            )
        return self

    @model_validator(mode="after")
    def _unique_resources(self) -> BenchConfig:
        seen: dict[str, str] = {}
        for name, inst in self.instruments.items():
            if inst.kind == "wgfmu":
                continue  # the WGFMU library talks through the B1500's own address
            if inst.resource in seen:
                raise ConfigError(
                    f"instruments.{name}.resource", inst.resource, f"unique (also used by {seen[inst.resource]})"
                )
            seen[inst.resource] = name
        if self.chip.sim_params:
            real = sorted(n for n, i in self.instruments.items() if not i.simulated)
            if real:
                raise ConfigError(
                    "chip.sim_params",
                    sorted(self.chip.sim_params),
                    "empty on a bench with real instruments",
                    f"simulator-only physics; {', '.join(real)} talk to a real chip",
                )
        return self

    def instrument_of_kind(self, kind: str) -> tuple[str, InstrumentConfig]:
        """The (name, config) of the bench's instrument of ``kind``; ConfigError if absent."""
        for name, inst in self.instruments.items():
            if inst.kind == kind:
                return name, inst
        raise ConfigError("instruments", sorted(self.instruments), f"an instrument of kind {kind!r}")


def resolve_bench_path(path_or_name: str | Path) -> Path:
    """A bench file path: an existing file, or the name of a bench shipped with memprog."""
    p = Path(path_or_name)
    if p.is_file():
        return p.resolve()
    name = p.name if p.suffix in (".yaml", ".yml") else p.name + ".yaml"
    shipped = importlib.resources.files("memprog.benches").joinpath(name)
    if shipped.is_file():
        return Path(str(shipped))
    raise ConfigError("bench file", str(path_or_name), "an existing YAML file or a shipped bench name", "file not found")


def load_bench_config(path_or_name: str | Path) -> tuple[BenchConfig, Path]:
    """Read and validate a bench file; every error names the file and the field."""
    path = resolve_bench_path(path_or_name)
    data = load_yaml_file(path, "bench file")  # no anchors/aliases (alias bombs), size-capped
    if not isinstance(data, dict):
        raise ConfigError("bench file", str(path), "a YAML mapping at the top level")
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise ConfigError(f"{path.name}: key", odd[0], "field names (name, chip, instruments, programmer, ...)")
    try:
        return BenchConfig(**data), path
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc.parameter}", exc.value, exc.allowed, exc.detail) from exc
    except TypeError as exc:  # a mapping key that is not a field name (e.g. ``1: 2`` under chip:)
        raise ConfigError(f"{path.name}", str(exc), "field names as mapping keys, at every level") from None
