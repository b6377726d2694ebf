"""The non-idealities of a weight transfer, as tensors: :class:`VariabilityModel`.

Why a model of our own between the database and the layers: training and Monte Carlo
evaluation sample the same four effects millions of times, so they need them as a handful of
tensors on the training device, not as pandas tables or database queries. The model is built
from a :class:`memprog.store.VariabilityDB` (our own characterisation runs: the loop from
instrument to training closes), from a technology preset's published figures when there is no
database, or from plain tables (tests, other labs' data); the DB adapter is a few lines.

The four effects of a transfer (Drolet et al., seed 001), per device, with ``G`` the target:
  1. tuning imprecision: ``G * (1 + (sigma_pct(G) * eps + offset_pct) / 100)`` with
     ``sigma_pct(G) = slope * G + intercept`` (the fitted line of std % against level) and
     ``offset_pct ~ N(offset_mean_pct, offset_std_pct)`` (tuned up from the off state);
  2. disturb by the programming of later devices (V/3 half-select): a raw recorded sample
     drawn from the samples with the device's number of later writes (not a fitted law: the
     recorded distributions are not normal);
  3. stuck devices: with probability ``stuck_hrs_fraction`` / ``stuck_lrs_fraction`` the
     device is replaced by a value drawn from the HRS / LRS stuck-conductance samples.

A draw (:class:`Draw`) holds the random parts that do not depend on the weights, so training
can draw many batches' worth in one call and apply one per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from memprog.errors import ConfigError

# Published transfer figures per technology preset, each with its source. The simulator's
# presets describe the device physics; what write-verify on that physics yields (tuning
# imprecision, stuck fractions, disturb after k later writes) is what the characterisation
# measures — until it has, these published figures stand in.
_PUBLISHED: dict[str, dict[str, Any]] = {
    "tio2_passive": {
        "g_range_us": (100.0, 400.0),  # [Drolet] working range 100-400 µS
        "slope_pct_per_us": -6.24e-4,  # [Drolet code] sigma% = -6.24e-4 G + 0.691
        "intercept_pct": 0.691,  # [Drolet code]
        "offset_mean_pct": -0.589,  # [Drolet code, Fig 2d] tuned up from the off state
        "offset_std_pct": 0.339,  # [Drolet code]
        # disturb after k later writes: Drolet's V/3 table (k = 1, 5, 13, 29: mean -0.63,
        # -3.4, -8.0, -11.2 µS; std 8.2, 13.4, 16.5, 22.6 µS) as power laws in k, fitted by
        # least squares in log-log (mean -0.710 k**0.879, std 8.19 k**0.293), capped at 60 µS
        "disturb_mean_k1_us": -0.710,  # [Drolet table] log-log fit
        "disturb_mean_k_exponent": 0.879,  # [Drolet table]
        "disturb_std_k1_us": 8.19,  # [Drolet table]
        "disturb_std_k_exponent": 0.293,  # [Drolet table]
        "disturb_cap_us": 60.0,  # [Drolet] changes beyond 60 µS left out of the database
        "max_later_writes": 63,  # [Drolet] an 8x8 crossbar: at most 63 later writes
        "source": "Drolet et al. (seed 001) and presets.tio2_passive",
    },
}

N_QUANTILES = 1024  # samples that stand for a parametric distribution (its quantiles)


def _quantiles_normal(mean: float, std: float, n: int = N_QUANTILES) -> np.ndarray:
    p = (np.arange(n) + 0.5) / n
    z = torch.special.ndtri(torch.as_tensor(p, dtype=torch.float64)).numpy()
    return mean + std * z


def _quantiles_uniform(lo: float, hi: float, n: int = N_QUANTILES) -> np.ndarray:
    return lo + (hi - lo) * (np.arange(n) + 0.5) / n


@dataclass
class Draw:
    """The weight-independent random part of ``n`` transfers of one layer's devices.

    Every tensor has shape ``(n, *device_shape)``. A target ``G`` becomes
    ``disturb_us + G * (G * rel_a + rel_b1)``: for a working device ``rel_a = sigma-slope * eps``,
    ``rel_b1 = 1 + intercept * eps + offset`` (fractions, not %), ``disturb_us`` the sampled
    disturb; for a stuck device ``rel_a = rel_b1 = 0`` and ``disturb_us`` is the stuck value.
    """

    rel_a: torch.Tensor
    rel_b1: torch.Tensor
    disturb_us: torch.Tensor
    stuck: torch.Tensor

    def __getitem__(self, i: Any) -> Draw:
        return Draw(self.rel_a[i], self.rel_b1[i], self.disturb_us[i], self.stuck[i])


@dataclass
class VariabilityModel:
    """Tuning imprecision, offset, disturb samples and stuck devices, ready to sample.

    Attributes:
        g_min_us, g_max_us: the working range weights are mapped into.
        slope_pct_per_us, intercept_pct: the imprecision line, std % = slope * G + intercept.
        offset_mean_pct, offset_std_pct: the relative offset of a tuned device, N(mean, std) %.
        disturb_us: (K+1, M) raw disturb samples, row k = devices with k later writes
            (padded; only the first ``disturb_counts[k]`` entries of a row are samples).
        disturb_counts: (K+1,) samples per row, every row >= 1 (see :meth:`from_tables`).
        stuck_hrs_fraction, stuck_lrs_fraction: probability a device is stuck HRS / LRS.
        stuck_hrs_us, stuck_lrs_us: 1-D conductance samples of stuck devices.
        source: where the figures come from ("db:<masked url>", "preset:<name>", ...).
        notes: what the adapter had to fill in (missing disturb keys, ...), for the report.
    """

    g_min_us: float
    g_max_us: float
    slope_pct_per_us: float
    intercept_pct: float
    offset_mean_pct: float
    offset_std_pct: float
    disturb_us: torch.Tensor
    disturb_counts: torch.Tensor
    stuck_hrs_fraction: float
    stuck_lrs_fraction: float
    stuck_hrs_us: torch.Tensor
    stuck_lrs_us: torch.Tensor
    source: str = "tables"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("g_min_us", "g_max_us", "slope_pct_per_us", "intercept_pct",
                     "offset_mean_pct", "offset_std_pct", "stuck_hrs_fraction", "stuck_lrs_fraction"):
            v = float(getattr(self, name))
            if not math.isfinite(v):
                raise ConfigError(name, v, "a finite number")
            setattr(self, name, v)
        if not (0 <= self.g_min_us < self.g_max_us):
            raise ConfigError("g_max_us", self.g_max_us, f"> g_min_us={self.g_min_us} >= 0")
        lo = self.slope_pct_per_us * self.g_min_us + self.intercept_pct
        hi = self.slope_pct_per_us * self.g_max_us + self.intercept_pct
        if min(lo, hi) < 0:
            raise ConfigError(
                "imprecision line", f"std% = {self.slope_pct_per_us:g}*G + {self.intercept_pct:g}",
                f">= 0 over the working range {self.g_min_us:g}-{self.g_max_us:g} µS (gives {lo:.3g}..{hi:.3g})",
            )
        if self.offset_std_pct < 0:
            raise ConfigError("offset_std_pct", self.offset_std_pct, ">= 0")
        for name in ("stuck_hrs_fraction", "stuck_lrs_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "0 <= fraction < 1")
        if self.stuck_hrs_fraction + self.stuck_lrs_fraction >= 1:
            raise ConfigError("stuck fractions", self.stuck_hrs_fraction + self.stuck_lrs_fraction, "< 1 in total")
        d = torch.as_tensor(self.disturb_us, dtype=torch.float32)
        c = torch.as_tensor(self.disturb_counts, dtype=torch.int64)
        if d.ndim != 2 or c.shape != (d.shape[0],) or d.shape[0] < 1:
            raise ConfigError("disturb_us", f"shape {tuple(d.shape)}", "(K+1, M) with counts of shape (K+1,)")
        if bool((c < 1).any()) or bool((c > d.shape[1]).any()):
            raise ConfigError("disturb_counts", c.tolist(), f"1..{d.shape[1]} samples per row")
        if not bool(torch.isfinite(d).all()):
            raise ConfigError("disturb_us", "non-finite samples", "finite µS")
        self.disturb_us, self.disturb_counts = d, c
        for name, frac in (("stuck_hrs_us", self.stuck_hrs_fraction), ("stuck_lrs_us", self.stuck_lrs_fraction)):
            t = torch.as_tensor(getattr(self, name), dtype=torch.float32).reshape(-1)
            if t.numel() == 0:
                if frac > 0:
                    raise ConfigError(name, "no samples", f"samples for a stuck fraction of {frac}")
                t = torch.zeros(1)
            if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
                raise ConfigError(name, "negative or non-finite samples", "finite conductances >= 0 µS")
            setattr(self, name, t)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_tables(
        cls,
        *,
        g_range_us: tuple[float, float],
        imprecision_fit: dict[str, float],
        disturb: Any,
        stuck_fractions: dict[str, float],
        stuck: Any,
        source: str = "tables",
    ) -> VariabilityModel:
        """Build from the tables a :class:`~memprog.store.VariabilityDB` returns (pandas).

        Args:
            g_range_us: the working range.
            imprecision_fit: ``slope_pct_per_us``, ``intercept_pct``, ``offset_mean_pct``,
                ``offset_std_pct``.
            disturb: raw samples, columns ``later_writes`` (int >= 0) and ``delta_us``.
            stuck_fractions: ``{"hrs": f, "lrs": f}``.
            stuck: stuck-device samples, columns ``kind`` ("hrs"/"lrs") and ``g_us``.

        Disturb keys without samples take the samples of the nearest recorded key below
        (above when there is none below); 0 later writes without samples means no disturb
        (the last device programmed, Drolet). Each filled key is listed in ``notes``.
        """
        notes: list[str] = []
        lw = np.asarray(disturb["later_writes"], dtype=np.int64)
        dv = np.asarray(disturb["delta_us"], dtype=float)
        if lw.size == 0:
            raise ConfigError("disturb", "no samples", "raw disturb samples (later_writes, delta_us)")
        if (lw < 0).any():
            raise ConfigError("disturb.later_writes", int(lw.min()), ">= 0")
        kmax = int(lw.max())
        rows: list[np.ndarray] = []
        present = [np.sort(dv[lw == k]) for k in range(kmax + 1)]
        have = [k for k in range(kmax + 1) if present[k].size]
        filled = []
        for k in range(kmax + 1):
            if present[k].size:
                rows.append(present[k])
            elif k == 0:
                rows.append(np.zeros(1))
            else:
                below = [h for h in have if h < k]
                src = below[-1] if below else min(have)
                rows.append(present[src])
                filled.append(k)
        if filled:
            notes.append(f"disturb: {len(filled)} later_writes keys without samples take the nearest recorded key")
        m = max(r.size for r in rows)
        table = np.zeros((kmax + 1, m))
        for k, r in enumerate(rows):
            table[k, : r.size] = r
        kinds = np.asarray(stuck["kind"]) if len(stuck) else np.array([], dtype=object)
        g = np.asarray(stuck["g_us"], dtype=float) if len(stuck) else np.array([])
        return cls(
            g_min_us=float(g_range_us[0]),
            g_max_us=float(g_range_us[1]),
            slope_pct_per_us=imprecision_fit["slope_pct_per_us"],
            intercept_pct=imprecision_fit["intercept_pct"],
            offset_mean_pct=imprecision_fit["offset_mean_pct"],
            offset_std_pct=imprecision_fit["offset_std_pct"],
            disturb_us=torch.as_tensor(table, dtype=torch.float32),
            disturb_counts=torch.as_tensor([r.size for r in rows]),
            stuck_hrs_fraction=float(stuck_fractions.get("hrs", 0.0)),
            stuck_lrs_fraction=float(stuck_fractions.get("lrs", 0.0)),
            stuck_hrs_us=torch.as_tensor(g[kinds == "hrs"], dtype=torch.float32),
            stuck_lrs_us=torch.as_tensor(g[kinds == "lrs"], dtype=torch.float32),
            source=source,
            notes=notes,
        )

    @classmethod
    def from_db(cls, db: Any) -> VariabilityModel:
        """Build from a :class:`memprog.store.VariabilityDB` (our own characterisation runs).

        An empty table raises the DB's ``MissingDataError`` naming the ``memprog
        characterize`` run that fills it.
        """
        url = getattr(db, "url", None) or getattr(getattr(db, "store", None), "url", None) or "?"
        try:
            from memprog.store import mask_url

            shown = mask_url(url) if url != "?" else url
        except ImportError:  # pragma: no cover - store not merged yet
            shown = url
        return cls.from_tables(
            g_range_us=tuple(db.g_range_us()),
            imprecision_fit=db.imprecision_fit(),
            disturb=db.disturb(),
            stuck_fractions=db.stuck_fractions(),
            stuck=db.stuck(),
            source=f"db:{shown}",
        )

    @classmethod
    def from_preset(cls, name: str) -> VariabilityModel:
        """Build from a technology preset and the published transfer figures of its source.

        Disturb samples after k later writes: the quantiles of a normal law following the
        source's own table (power laws in k fitted to Drolet's k = 1, 5, 13, 29), capped at
        its 60 µS. Why not the simulator's per-pulse law: how many pulses, of which size, a
        later write brings depends on the bench and the protocol; the table is what was
        measured. Stuck devices: the preset's fractions and distributions (HRS uniform, LRS
        normal), as quantiles.
        """
        from memprog.sim_instruments.presets import get_preset

        p = get_preset(name)
        pub = _PUBLISHED.get(name)
        if pub is None:
            raise ConfigError(
                "preset", name,
                f"one with published transfer figures ({sorted(_PUBLISHED)}); for another "
                "technology run `memprog characterize` and train with --db",
            )
        kmax, n_q = pub["max_later_writes"], 256
        rows = [np.zeros(n_q)]
        cap = pub["disturb_cap_us"]
        for k in range(1, kmax + 1):
            mean = pub["disturb_mean_k1_us"] * k ** pub["disturb_mean_k_exponent"]
            std = pub["disturb_std_k1_us"] * k ** pub["disturb_std_k_exponent"]
            rows.append(np.clip(_quantiles_normal(mean, std, n_q), -cap, cap))
        lrs = _quantiles_normal(p.stuck_lrs_mean_us, p.stuck_lrs_std_us)
        lrs = lrs[lrs >= 0]
        return cls(
            g_min_us=pub["g_range_us"][0],
            g_max_us=pub["g_range_us"][1],
            slope_pct_per_us=pub["slope_pct_per_us"],
            intercept_pct=pub["intercept_pct"],
            offset_mean_pct=pub["offset_mean_pct"],
            offset_std_pct=pub["offset_std_pct"],
            disturb_us=torch.as_tensor(np.stack(rows), dtype=torch.float32),
            disturb_counts=torch.full((kmax + 1,), n_q),
            stuck_hrs_fraction=p.stuck_hrs_fraction,
            stuck_lrs_fraction=p.stuck_lrs_fraction,
            stuck_hrs_us=torch.as_tensor(_quantiles_uniform(*p.stuck_hrs_range_us), dtype=torch.float32),
            stuck_lrs_us=torch.as_tensor(lrs, dtype=torch.float32),
            source=f"preset:{name}",
        )

    # ------------------------------------------------------------------ sampling
    @property
    def max_later_writes(self) -> int:
        """The largest number of later writes with recorded samples; beyond it, that row is used."""
        return int(self.disturb_us.shape[0] - 1)

    def to(self, device: str | torch.device) -> VariabilityModel:
        """A copy whose tensors live on ``device``."""
        kw = {f: getattr(self, f) for f in self.__dataclass_fields__}
        for f in ("disturb_us", "disturb_counts", "stuck_hrs_us", "stuck_lrs_us"):
            kw[f] = kw[f].to(device)
        kw["notes"] = list(self.notes)
        return VariabilityModel(**kw)

    def summary(self) -> dict[str, Any]:
        """The figures as plain numbers (for JSON reports)."""
        return {
            "source": self.source,
            "g_range_us": [self.g_min_us, self.g_max_us],
            "imprecision_std_pct": f"{self.slope_pct_per_us:g}*G + {self.intercept_pct:g}",
            "offset_pct": [self.offset_mean_pct, self.offset_std_pct],
            "disturb_max_later_writes": self.max_later_writes,
            "disturb_samples": int(self.disturb_counts.sum()),
            "stuck_hrs_fraction": self.stuck_hrs_fraction,
            "stuck_lrs_fraction": self.stuck_lrs_fraction,
            "notes": list(self.notes),
        }

    def draw(
        self, n: int, later_writes: torch.Tensor, generator: torch.Generator | None = None
    ) -> Draw:
        """Draw the random part of ``n`` transfers of devices with these ``later_writes``.

        Args:
            n: transfers (or training batches).
            later_writes: int tensor, one entry per device (any shape), on the model's device.
                Beyond the largest recorded number of later writes, that row's samples are used.
            generator: the torch generator (seeded by the caller for reproducibility).
        """
        dev = self.disturb_us.device
        shape = (int(n), *later_writes.shape)
        k = later_writes.clamp(max=self.max_later_writes)
        normal = torch.randn((2, *shape), generator=generator, device=dev)
        # one uniform per device decides both: u < f_h + f_l -> stuck (and which stuck
        # sample); otherwise (u - f) / (1 - f), itself uniform on [0, 1), picks the disturb sample
        u = torch.rand(shape, generator=generator, device=dev)
        rel_a = normal[0] * (self.slope_pct_per_us / 100.0)
        rel_b1 = normal[0].mul_(self.intercept_pct / 100.0)
        rel_b1 += normal[1].mul_(self.offset_std_pct / 100.0)
        rel_b1 += 1.0 + self.offset_mean_pct / 100.0
        f_h, f_l = self.stuck_hrs_fraction, self.stuck_lrs_fraction
        f = f_h + f_l
        counts = self.disturb_counts[k]
        m = self.disturb_us.shape[1]
        v = (u - f).mul_(1.0 / (1.0 - f)) if f > 0 else u
        idx = torch.minimum((v * counts).long(), counts - 1).clamp_(min=0)
        disturb = self.disturb_us.view(-1)[idx.add_(k * m)]
        stuck = u < f
        if f > 0:
            where = stuck.nonzero(as_tuple=True)  # few: stuck values only where needed
            us = u[where]
            hrs = us < f_h
            nh, nl = self.stuck_hrs_us.numel(), self.stuck_lrs_us.numel()
            ih = (us * (nh / max(f_h, 1e-30))).long().clamp_(0, nh - 1)
            il = ((us - f_h) * (nl / max(f_l, 1e-30))).long().clamp_(0, nl - 1)
            disturb[where] = torch.where(hrs, self.stuck_hrs_us[ih], self.stuck_lrs_us[il])
            rel_a[where] = 0.0
            rel_b1[where] = 0.0
        return Draw(rel_a, rel_b1, disturb, stuck)

    @staticmethod
    def apply(g_us: torch.Tensor, d: Draw) -> torch.Tensor:
        """Conductances after the transfer: imprecision, disturb, stuck substitution."""
        return torch.addcmul(d.disturb_us, g_us, torch.addcmul(d.rel_b1, g_us, d.rel_a))

    def sample(
        self, g_us: torch.Tensor, later_writes: torch.Tensor, n: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` transferred copies of the conductances ``g_us`` (shape ``(n, *g_us.shape)``)."""
        return self.apply(g_us, self.draw(n, later_writes.expand(g_us.shape), generator))
