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

from memprog.core.errors import ConfigError
from memprog.core.presets import get_preset

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
DISTURB_MIN_SAMPLES = 32  # [choice] raw disturb samples a later-writes key draws from, at least


def _quantiles_normal(mean: float, std: float, n: int = N_QUANTILES) -> np.ndarray:
    p = (np.arange(n) + 0.5) / n
    z = torch.special.ndtri(torch.as_tensor(p, dtype=torch.float64)).numpy()
    return mean + std * z


def _quantiles_uniform(lo: float, hi: float, n: int = N_QUANTILES) -> np.ndarray:
    return lo + (hi - lo) * (np.arange(n) + 0.5) / n


def _raw_imprecision(df: Any) -> tuple[np.ndarray, np.ndarray]:
    """Levels and the (L, M + 1) table of recorded ``read / target`` ratios (last column 0).

    Each level's samples, sorted, are spread over M columns (M = the largest count: a level
    with fewer samples repeats each about equally often), so one uniform index per device
    picks a recorded sample of whichever level its conductance is nearest to. Nothing is
    fitted or clipped: the tails are the recorded ones.
    """
    if "converged" in df:
        df = df[np.asarray(df["converged"]).astype(bool)]
    lv = np.asarray(df["level_us"], dtype=float)
    g = np.asarray(df["g_us"], dtype=float)
    ok = np.isfinite(lv) & np.isfinite(g) & (lv > 0)
    lv, g = lv[ok], g[ok]
    if lv.size == 0:
        raise ConfigError("imprecision", "no converged raw samples", "reads of tuned devices (memprog characterize)")
    levels = np.unique(lv)
    rows = [np.sort(g[lv == level] / level) for level in levels]
    m = max(r.size for r in rows)
    table = np.zeros((levels.size, m + 1))
    for i, r in enumerate(rows):
        table[i, :m] = r[((np.arange(m) + 0.5) * r.size / m).astype(np.int64)]
    return levels, table


@dataclass
class Draw:
    """The weight-independent random part of ``n`` transfers of one layer's devices.

    Every tensor has shape ``(n, *device_shape)``. Fitted imprecision: a target ``G`` becomes
    ``disturb_us + G * (G * rel_a + rel_b1)``: for a working device ``rel_a = sigma-slope * eps``,
    ``rel_b1 = 1 + intercept * eps + offset`` (fractions, not %), ``disturb_us`` the sampled
    disturb; for a stuck device ``rel_a = rel_b1 = 0`` and ``disturb_us`` is the stuck value.
    Raw imprecision (``imp_index`` set, ``rel_a``/``rel_b1`` unused): ``G`` becomes
    ``disturb_us + G * factor`` with ``factor`` the recorded ``read / target`` ratio at column
    ``imp_index`` of the level nearest ``G`` (column ``M``, a 0, for a stuck device): the level
    depends on the weights, so it is looked up when the draw is applied.
    """

    rel_a: torch.Tensor | None
    rel_b1: torch.Tensor | None
    disturb_us: torch.Tensor
    stuck: torch.Tensor
    imp_index: torch.Tensor | None = None
    # flat (row-major) positions of the stuck devices, ascending, when the draw knows them
    # (:meth:`VariabilityModel.draw`): callers build masks from these few, not from ``stuck``
    stuck_index: torch.Tensor | None = None

    def __getitem__(self, i: Any) -> Draw:
        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[i]

        return Draw(pick(self.rel_a), pick(self.rel_b1), self.disturb_us[i], self.stuck[i], pick(self.imp_index))


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
        imp_levels_us: (L,) target levels of the raw imprecision samples, ascending, or None:
            then the fitted line and offset above are sampled instead.
        imp_factors: (L, M + 1) per level, the recorded ``read / target`` ratios of tuned
            devices (each level's samples spread evenly over the M columns), last column 0
            (what a stuck device's index points at).
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
    imp_levels_us: torch.Tensor | None = None
    imp_factors: torch.Tensor | None = None

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
        if (self.imp_levels_us is None) != (self.imp_factors is None):
            raise ConfigError("imp_levels_us/imp_factors", "one given", "both or neither")
        if self.imp_levels_us is not None:
            lv = torch.as_tensor(self.imp_levels_us, dtype=torch.float32).reshape(-1)
            fac = torch.as_tensor(self.imp_factors, dtype=torch.float32)
            if fac.ndim != 2 or fac.shape[0] != lv.numel() or fac.shape[1] < 2:
                raise ConfigError("imp_factors", f"shape {tuple(fac.shape)}", f"({lv.numel()}, M + 1) with M >= 1")
            if lv.numel() > 1 and not bool((lv[1:] > lv[:-1]).all()):
                raise ConfigError("imp_levels_us", lv.tolist(), "strictly ascending levels")
            if not (bool(torch.isfinite(fac).all()) and bool((fac >= 0).all())):
                raise ConfigError("imp_factors", "negative or non-finite ratios", "finite ratios >= 0")
            self.imp_levels_us, self.imp_factors = lv, fac
        # nearest level of a conductance: bucketize against the midpoints between levels
        self._imp_mid = None if self.imp_levels_us is None else 0.5 * (self.imp_levels_us[1:] + self.imp_levels_us[:-1])
        self._imp_grid: tuple[float, float, int] | None = None
        self._imp_flat = None if self.imp_factors is None else self.imp_factors.reshape(-1)  # gather table
        cpu = self._imp_flat is not None and self._imp_flat.device.type == "cpu"
        self._imp_flat_np = self._imp_flat.numpy() if cpu else None  # the same memory, for numpy_transfer
        lv = self.imp_levels_us
        if lv is not None and lv.numel() > 1:
            step = float(lv[-1] - lv[0]) / (lv.numel() - 1)
            even = torch.linspace(float(lv[0]), float(lv[-1]), lv.numel())
            if bool(torch.allclose(lv.cpu(), even, rtol=0, atol=1e-4 * step)):
                self._imp_grid = (float(lv[0]), 1.0 / step, int(lv.numel() - 1))
        elif lv is not None:
            self._imp_grid = (float(lv[0]), 0.0, 0)  # one level: every G takes it
        if self._imp_grid is not None:
            # nearest level = round(G * a + b), one fused op per transfer (the cost of a
            # training step, issue 24); tensors so addcmul takes them without a host copy
            lo, inv_step, top = self._imp_grid
            dev = lv.device
            self._imp_ab = (torch.tensor(inv_step, device=dev), torch.tensor(-lo * inv_step, device=dev))
            # within the working range the rounded level stays in 0..top without a clamp when
            # the levels reach to within half a step of both ends of the range
            margin = 1e-4 * (self.g_max_us - self.g_min_us)
            self._imp_ab_np = (np.float32(inv_step), np.float32(-lo * inv_step))
            self._imp_range_inside = top == 0 or (
                (self.g_min_us - margin - lo) * inv_step > -0.49 and (self.g_max_us + margin - lo) * inv_step < top + 0.49
            )

    @property
    def imprecision(self) -> str:
        """``"raw"`` (recorded samples per level) or ``"fitted"`` (the line and offset laws)."""
        return "fitted" if self.imp_levels_us is None else "raw"

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
        imprecision_raw: Any = None,
        disturb_min_samples: int = DISTURB_MIN_SAMPLES,
    ) -> VariabilityModel:
        """Build from the tables a :class:`~memprog.store.VariabilityDB` returns (pandas).

        Args:
            g_range_us: the working range.
            imprecision_fit: ``slope_pct_per_us``, ``intercept_pct``, ``offset_mean_pct``,
                ``offset_std_pct``.
            disturb: raw samples, columns ``later_writes`` (int >= 0) and ``delta_us``.
            stuck_fractions: ``{"hrs": f, "lrs": f}``.
            stuck: stuck-device samples, columns ``kind`` ("hrs"/"lrs") and ``g_us``.
            imprecision_raw: raw reads of tuned devices, columns ``level_us`` and ``g_us``
                (``converged`` honoured when present): sampled as recorded, per level, in
                place of the fitted line (None: the fit is sampled).
            disturb_min_samples: a later-writes key with fewer raw samples pools those of
                its nearest keys up to this many (1: every key alone).

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
        # one characterisation array of N cells records N - k samples after k later writes:
        # the last keys hold a handful (k = 63 of 64: one), and sampling one recorded value
        # every time is no spread at all. Such a key pools the raw samples of its nearest
        # keys (both sides, nearest first) until it has disturb_min_samples: still recorded
        # values, tails included, from writes of nearly the same count.
        pooled = 0
        if disturb_min_samples > 1:
            for k in range(1, kmax + 1):
                if present[k].size >= disturb_min_samples:
                    continue
                parts = [present[k]] if present[k].size else []
                n, d = present[k].size, 1
                while n < disturb_min_samples and (k - d >= 1 or k + d <= kmax):
                    for j in (k - d, k + d):
                        if 1 <= j <= kmax and present[j].size:
                            parts.append(present[j])
                            n += present[j].size
                    d += 1
                if parts and n > present[k].size:
                    rows[k] = np.sort(np.concatenate(parts))
                    pooled += 1
        if pooled:
            notes.append(
                f"disturb: {pooled} later_writes keys with fewer than {disturb_min_samples} samples "
                "pool the samples of their nearest keys"
            )
        m = max(r.size for r in rows)
        table = np.zeros((kmax + 1, m))
        for k, r in enumerate(rows):
            table[k, : r.size] = r
        kinds = np.asarray(stuck["kind"]) if len(stuck) else np.array([], dtype=object)
        g = np.asarray(stuck["g_us"], dtype=float) if len(stuck) else np.array([])
        levels, factors = (None, None) if imprecision_raw is None else _raw_imprecision(imprecision_raw)
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
            imp_levels_us=None if levels is None else torch.as_tensor(levels, dtype=torch.float32),
            imp_factors=None if factors is None else torch.as_tensor(factors, dtype=torch.float32),
        )

    @classmethod
    def from_db(cls, db: Any, *, imprecision: str = "raw") -> VariabilityModel:
        """Build from a :class:`memprog.store.VariabilityDB` (our own characterisation runs).

        Args:
            imprecision: ``"raw"`` (default): each transferred device takes a recorded
                ``read / target`` ratio of the nearest characterised level, tails as recorded;
                ``"fitted"``: the fitted line std%(G) and the normal offset law.

        Disturb is always the raw samples by number of later writes; stuck fractions and
        stuck conductances as the census found them (:meth:`with_stuck` replaces them by a
        stated hyperparameter). An empty table raises the DB's ``MissingDataError`` naming
        the ``memprog characterize`` run that fills it.
        """
        if imprecision not in ("raw", "fitted"):
            raise ConfigError("imprecision", imprecision, "'raw' or 'fitted'")
        # deferred: the store pulls in sqlalchemy and pandas; a model from a preset needs neither
        from memprog.store import mask_url

        raw_reads = getattr(db, "imprecision_raw", None) if imprecision == "raw" else None
        url = getattr(db, "url", None) or getattr(getattr(db, "store", None), "url", None) or "?"
        shown = mask_url(url) if url != "?" else url
        model = cls.from_tables(
            g_range_us=tuple(db.g_range_us()),
            imprecision_fit=db.imprecision_fit(),
            disturb=db.disturb(),
            stuck_fractions=db.stuck_fractions(),
            stuck=db.stuck(),
            source=f"db:{shown}",
            imprecision_raw=raw_reads() if raw_reads is not None else None,
        )
        if imprecision == "raw" and raw_reads is None:
            model.notes.append("imprecision: the database offers no raw reads; the fitted line is sampled")
        return model

    def with_stuck(self, hrs_fraction: float, lrs_fraction: float, preset: str = "tio2_passive") -> VariabilityModel:
        """A copy whose stuck fractions are these (a stated hyperparameter, e.g. seed 001's
        0.5 % + 0.5 %) instead of the census's.

        Why: a census of a few dozen cells finds 0 stuck devices more often than not, yet
        training through a few stuck devices is what makes a network robust to them. The
        stuck conductances stay the measured ones where the census found some of that kind;
        otherwise the preset's stuck distributions stand in (listed in ``notes``).
        """
        kw = {f: getattr(self, f) for f in self.__dataclass_fields__}
        kw["notes"] = list(self.notes)
        kw["stuck_hrs_fraction"], kw["stuck_lrs_fraction"] = float(hrs_fraction), float(lrs_fraction)
        p = get_preset(preset)
        for kind, frac in (("hrs", hrs_fraction), ("lrs", lrs_fraction)):
            have = getattr(self, f"stuck_{kind}_us")
            was = getattr(self, f"stuck_{kind}_fraction")
            if frac > 0 and was == 0:
                if kind == "hrs":
                    q = _quantiles_uniform(*p.stuck_hrs_range_us)
                else:
                    q = _quantiles_normal(p.stuck_lrs_mean_us, p.stuck_lrs_std_us)
                    q = q[q >= 0]
                kw[f"stuck_{kind}_us"] = torch.as_tensor(q, dtype=torch.float32, device=have.device)
                kw["notes"].append(f"stuck {kind.upper()} conductances: preset {preset} (none measured)")
        kw["source"] = f"{self.source}+stuck({hrs_fraction:g},{lrs_fraction:g})"
        return VariabilityModel(**kw)

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
        for f in ("disturb_us", "disturb_counts", "stuck_hrs_us", "stuck_lrs_us", "imp_levels_us", "imp_factors"):
            if kw[f] is not None:
                kw[f] = kw[f].to(device)
        kw["notes"] = list(self.notes)
        return VariabilityModel(**kw)

    def summary(self) -> dict[str, Any]:
        """The figures as plain numbers (for JSON reports)."""
        return {
            "source": self.source,
            "g_range_us": [self.g_min_us, self.g_max_us],
            "imprecision": self.imprecision,
            "imprecision_levels": 0 if self.imp_levels_us is None else int(self.imp_levels_us.numel()),
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
        raw = self.imp_factors is not None
        # one uniform per device decides both: u < f_h + f_l -> stuck (and which stuck
        # sample); otherwise (u - f) / (1 - f), itself uniform on [0, 1), picks the disturb sample
        u = torch.rand(shape, generator=generator, device=dev)
        m_imp = 0 if self.imp_factors is None else self.imp_factors.shape[1] - 1
        # raw imprecision index: from the fractional part of the disturb pick (independent of
        # it for a continuous uniform) while float32's 24 bits resolve every (disturb, read)
        # pair; a second uniform otherwise. Why: drawing uniforms is most of a draw's cost.
        one_uniform = raw and int(self.disturb_counts.max()) * m_imp <= (1 << 20)
        imp = None
        if raw:
            if not one_uniform:
                imp = torch.rand(shape, generator=generator, device=dev).mul_(m_imp).clamp_(max=m_imp - 1).int()
            rel_a = rel_b1 = None
        else:
            normal = torch.randn((2, *shape), generator=generator, device=dev)
            rel_a = normal[0] * (self.slope_pct_per_us / 100.0)
            rel_b1 = normal[0].mul_(self.intercept_pct / 100.0)
            rel_b1 += normal[1].mul_(self.offset_std_pct / 100.0)
            rel_b1 += 1.0 + self.offset_mean_pct / 100.0
        f_h, f_l = self.stuck_hrs_fraction, self.stuck_lrs_fraction
        f = f_h + f_l
        # per device (not per transfer): its row's sample count, the row's flat offset and the
        # affine map u -> (u - f) / (1 - f) * count as one multiply-add; floats (exact below
        # 2**24) so the per-transfer index stays float until one cast. Why so few passes: each
        # full-size op costs a training step as much as a plain layer's arithmetic (issue 24)
        cnt = self.disturb_counts[k].to(u.dtype)
        base = (k * self.disturb_us.shape[1]).int()
        x = torch.addcmul(cnt * (-f / (1.0 - f)), u, cnt * (1.0 / (1.0 - f))) if f > 0 else u * cnt
        pos = x.floor().clamp_(min=torch.zeros_like(cnt), max=cnt - 1)  # one pass for both bounds
        if one_uniform:
            # stuck devices (x < 0) get a negative fraction here; their index is replaced below
            imp = x.sub_(pos).mul_(m_imp).clamp_(max=m_imp - 1).int()
        # index_select: several times faster than advanced indexing on large index tensors;
        # int32 indices: a float -> int64 cast costs as much as drawing the uniforms
        disturb = self.disturb_us.view(-1).index_select(0, pos.int().add_(base).view(-1)).view(shape)
        stuck = u < f
        where = None
        if f > 0:
            where = stuck.view(-1).nonzero().squeeze(1)  # few: stuck values only where needed
            us = u.view(-1).index_select(0, where)
            hrs = us < f_h
            nh, nl = self.stuck_hrs_us.numel(), self.stuck_lrs_us.numel()
            ih = (us * (nh / max(f_h, 1e-30))).long().clamp_(0, nh - 1)
            il = ((us - f_h) * (nl / max(f_l, 1e-30))).long().clamp_(0, nl - 1)
            disturb.view(-1).index_copy_(0, where, torch.where(hrs, self.stuck_hrs_us[ih], self.stuck_lrs_us[il]))
            if raw:
                imp.view(-1).index_fill_(0, where, m_imp)  # the 0 column: a stuck device keeps only its stuck value
            else:
                rel_a.view(-1).index_fill_(0, where, 0.0)
                rel_b1.view(-1).index_fill_(0, where, 0.0)
        return Draw(rel_a, rel_b1, disturb, stuck, imp, where)

    def apply(self, g_us: torch.Tensor, d: Draw, *, in_range: bool = False) -> torch.Tensor:
        """Conductances after the transfer: imprecision, disturb, stuck substitution.

        ``in_range``: the caller guarantees ``g_us`` lies in this model's working range
        (training's own mapping), so the nearest-level lookup may skip its clamp when the
        characterised levels span that range.
        """
        if d.imp_index is None:
            return torch.addcmul(d.disturb_us, g_us, torch.addcmul(d.rel_b1, g_us, d.rel_a))
        assert self.imp_factors is not None and self._imp_mid is not None
        if self._imp_grid is not None:  # equidistant levels (as characterised): one affine map
            a, b = self._imp_ab
            level = torch.addcmul(b, g_us, a).round_()
            if not (in_range and self._imp_range_inside):
                level.clamp_(0, self._imp_grid[2])
            level = level.int()
        else:  # bucketize is ~100x slower on the CPU: only for uneven levels
            level = torch.bucketize(g_us, self._imp_mid, out_int32=True)  # nearest characterised level
        # int32 throughout (the draw's indices are int32): mixed widths take a slow path
        idx = torch.add(d.imp_index, level, alpha=self.imp_factors.shape[1])
        factor = self._imp_flat.index_select(0, idx.view(-1)).view(idx.shape)
        return torch.addcmul(d.disturb_us, g_us, factor)

    @property
    def numpy_apply(self) -> bool:
        """Whether a fused group's numpy path serves this model (raw imprecision on equidistant
        levels, CPU: :mod:`memprog.hwaware.numpy_transfer`, the same lookup as :meth:`apply`)."""
        return self._imp_grid is not None and self._imp_flat_np is not None

    def sample(
        self, g_us: torch.Tensor, later_writes: torch.Tensor, n: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` transferred copies of the conductances ``g_us`` (shape ``(n, *g_us.shape)``)."""
        return self.apply(g_us, self.draw(n, later_writes.expand(g_us.shape), generator))
