"""Which chips a fleet job drives: N simulated chips from one bench, or a fleet file of real benches.

Why a value per chip (:class:`ChipSpec`): a chip's bench is opened where its instruments
are wired — in this process (local engine) or in a Ray actor on the host that owns them —
so everything a worker needs to open it travels as plain data: the bench file's text (a
simulated chip: the bench with its chip's id and seed) or the bench's name or path as that
host sees it (a real bench), and the Ray resource or node label that pins it there.

Simulated fleets: chip ``k`` of ``--chips N`` is the bench's chip with seed ``seed + k``
and id ``<id>-seed<seed+k>`` (the same naming as ``evaluate --on-bench``'s fresh chips), so
the chips are distinct, each keeps its own state file, and the same command finds the same
chips again.

Fleet file (``--fleet F.yaml``)::

    benches:
      - name: probe-a                    # how reports name it (unique)
        bench: /lab/benches/probe_a.yaml # a shipped bench name or a path on that host
        resource: probe_a                # a Ray custom resource only that host advertises
      - name: probe-b
        bench: /lab/benches/probe_b.yaml
        label: {host: lab-pc-2}          # or a Ray node label (key: value)
    store: postgresql+psycopg://USER@DB-HOST/memprog   # optional: where every actor writes
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError
from memprog.core.strict_yaml import dump_yaml, load_yaml_file, load_yaml_text
from memprog.core.validation import MemprogModel, config_error_from

MAX_CHIPS = 1024  # [choice] a lab fleet is tens of chips; a typo of 10**6 is refused at once


@dataclass
class ChipSpec:
    """One chip of a fleet, as plain data a worker opens anywhere.

    Attributes:
        index: position in the fleet (reports and tiles use it).
        name: how reports name it.
        chip_id: the chip's id (the store's ``chip_id``).
        bench: the bench name or path as the worker's host sees it (real benches), or the
            name of the bench a simulated chip was derived from.
        bench_text: the bench file's text for a simulated chip (None: open ``bench``).
        resource: a Ray custom resource that pins the worker to its host.
        label: Ray node labels the worker's host must carry.
        volatile: a throw-away simulated chip (fresh from its seed, never stored).
    """

    index: int
    name: str
    chip_id: str
    bench: str
    bench_text: str | None = None
    resource: str | None = None
    label: dict[str, str] = field(default_factory=dict)
    volatile: bool = False
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """What the fleet run records about the chip (no bench text)."""
        return {
            "index": self.index, "name": self.name, "chip_id": self.chip_id, "bench": self.bench,
            "seed": self.seed, "resource": self.resource, "label": dict(self.label) or None,
        }


def simulated_chips(bench: str | Path, n_chips: int, *, first_seed: int | None = None, volatile: bool = False) -> list[ChipSpec]:
    """``n_chips`` distinct simulated chips of one simulated bench (see the module docstring)."""
    if not 1 <= int(n_chips) <= MAX_CHIPS:
        raise ConfigError("--chips", n_chips, f"1 to {MAX_CHIPS}")
    cfg, path = load_bench_config(bench)
    if not all(i.simulated for i in cfg.instruments.values()):
        raise ConfigError(
            "--chips", n_chips, "a simulated bench (real chips are listed in a fleet file: --fleet F.yaml)",
            f"bench {bench} has real instruments",
        )
    data = load_yaml_text(path.read_text(), str(path))
    base = int(cfg.chip.seed if first_seed is None else first_seed)
    specs = []
    for k in range(int(n_chips)):
        seed = base + k
        d = dict(data)
        d["chip"] = dict(data["chip"], seed=seed, id=f"{cfg.chip.id}-seed{seed}")
        specs.append(
            ChipSpec(k, f"chip{k}", d["chip"]["id"], str(bench), dump_yaml(d, sort_keys=False), volatile=volatile, seed=seed)
        )
    return specs


class FleetBench(MemprogModel):
    """One bench of a fleet file."""

    name: str = Field(min_length=1, max_length=64)
    bench: str = Field(min_length=1, description="a shipped bench name or a path on the bench's host")
    resource: str | None = Field(default=None, min_length=1, description="Ray custom resource of its host")
    label: dict[str, str] = Field(default_factory=dict, description="Ray node labels of its host")


class FleetFile(MemprogModel):
    """A fleet file: the benches and, optionally, the store every actor writes to."""

    benches: list[FleetBench] = Field(min_length=1, max_length=MAX_CHIPS)
    store: str | None = None

    @field_validator("benches")
    @classmethod
    def _unique_names(cls, v: list[FleetBench]) -> list[FleetBench]:
        names = [b.name for b in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"bench names must be unique; repeated: {dup}")
        return v


def load_fleet(path: str | Path) -> tuple[FleetFile, list[ChipSpec]]:
    """Read and check a fleet file; one :class:`ChipSpec` per bench.

    A bench is pinned by ``resource`` or ``label``; a fleet of more than one bench with
    neither is refused (two actors could land on one host that owns only one bench).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError("--fleet", str(path), "an existing fleet file (YAML)", "no such file")
    raw = load_yaml_file(p, what="fleet file")
    try:
        fleet = FleetFile.model_validate(raw)
    except ValidationError as exc:
        raise config_error_from(exc, f"fleet file {p}") from None
    if len(fleet.benches) > 1:
        loose = [b.name for b in fleet.benches if not b.resource and not b.label]
        if loose:
            raise ConfigError(
                "--fleet", str(p), "every bench pinned to its host by `resource` or `label`",
                f"not pinned: {loose}",
            )
    specs = [
        ChipSpec(k, b.name, b.name, b.bench, None, b.resource, dict(b.label)) for k, b in enumerate(fleet.benches)
    ]
    return fleet, specs


__all__ = ["ChipSpec", "FleetFile", "FleetBench", "MAX_CHIPS", "load_fleet", "simulated_chips"]
