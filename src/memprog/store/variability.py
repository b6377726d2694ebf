"""The variability database: seed 001's tables derived from our own characterisation runs.

Why derived, not stored: the raw samples of every ``memprog characterize`` run are kept
(``sample_batches``), and the tables hardware-aware training samples from are computed
from them on demand, as Drolet built them:

* tuning imprecision: for each target level, the standard deviation of the reads taken
  after each tune (as % of the target; per tune, then the RMS over the tunes) and the mean
  offset of the tuned state; a line
  std%(G) = slope * G + intercept fitted through the levels; the offset distribution
  (mean and std over every tune, in % of its target);
* disturb: raw samples, the conductance change of a programmed cell keyed by the number
  of cells written after it (Drolet samples raw data: the distributions are not normal);
  stuck or unconverged cells are left out, as in the seed;
* stuck devices: the conductances of the HRS- and LRS-stuck devices found by the census;
* RTN: the read spread of each cell before and after denoising.

An empty table raises :class:`MissingDataError` naming the command that fills it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from memprog.core.errors import ConfigError
from memprog.store.engine import open_store
from memprog.store.runs import Store
from memprog.store.urls import mask_url

# Every raw table a characterize run stores: seed 001's (imprecision, disturb, stuck, rtn,
# range) and the digital twin's (response, noise, relax: what `memprog sim calibrate` fits
# from), so an export carries what a twin needs to a machine that calibrates it there
RAW_TABLES = ("imprecision", "disturb", "stuck", "rtn", "range", "response", "noise", "relax")


class MissingDataError(ConfigError):
    """The store holds no characterisation samples of the kind asked for."""

    def __init__(self, table: str, where: str) -> None:
        super().__init__(
            f"variability table {table!r}",
            where,
            "",
            "no samples; fill it with `memprog characterize --bench BENCH --db URL` "
            "(the sim_k4200_707b bench for the simulated TiO2 crossbar)",
        )
        self.table = table


def _open_reader(url: str | None) -> Store:
    """The store at ``url`` read-only; a store file that does not exist yet reads as an empty
    store (in memory: a reader creates no file), so the tables say which command fills them."""
    try:
        return open_store(url, read_only=True)
    except ConfigError as exc:
        if getattr(exc, "detail", "") != "no such file":
            raise
    store = open_store("sqlite://")
    if url is not None:
        store.url = url
    return store


class VariabilityDB:
    """Derived variability tables of the characterisation runs in a store (pandas out).

    Args:
        url: the store's URL (None: the default store).
        chip_id: only runs on this chip.
        technology: only runs on chips of this technology.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        chip_id: str | None = None,
        technology: str | None = None,
        store: Store | None = None,
        run_ids: list[str] | None = None,
    ) -> None:
        self._own = store is None
        # a reader: read-only URI, no migration, no journal-mode switch (the file never changes)
        self.store = store if store is not None else _open_reader(url)
        self.url = self.store.url if store is not None or url is None else url
        self.chip_id = chip_id
        self.technology = technology
        self.run_ids = None if run_ids is None else list(run_ids)
        self._cache: dict[str, pd.DataFrame] = {}

    # ------------------------------------------------------------------ raw samples
    def runs(self) -> pd.DataFrame:
        """The characterisation runs the tables come from (complete or interrupted ones,
        or exactly ``run_ids`` when given)."""
        df = self.store.list_runs(kind="characterize", chip_id=self.chip_id)
        if self.technology is not None:
            df = df[df["technology"] == self.technology]
        if self.run_ids is not None:
            return df[df["run_id"].isin(self.run_ids)].reset_index(drop=True)
        return df[df["status"].isin(["complete", "interrupted"])].reset_index(drop=True)

    def raw(self, table: str) -> pd.DataFrame:
        """Every raw sample of ``table`` from :meth:`runs` (with ``run_id`` and ``chip_id``)."""
        if table not in self._cache:
            runs = self.runs()
            df = self.store.samples(table, list(runs["run_id"])) if len(runs) else pd.DataFrame()
            if not df.empty:
                df = df.merge(runs[["run_id", "chip_id"]], on="run_id", how="left")
            self._cache[table] = df
        df = self._cache[table]
        if df.empty:
            raise MissingDataError(table, self._where())
        return df

    def _where(self) -> str:
        parts = [mask_url(self.url)]
        if self.chip_id:
            parts.append(f"chip {self.chip_id}")
        if self.technology:
            parts.append(f"technology {self.technology}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ imprecision
    def imprecision(self) -> pd.DataFrame:
        """By target level: level_us, std_pct, mean_offset_pct, n_samples (reads), n_tunes."""
        df = self.raw("imprecision")
        df = df[df["converged"].astype(bool)] if "converged" in df else df
        if df.empty:
            raise MissingDataError("imprecision", self._where())
        err_pct = 100.0 * (df["g_us"] - df["level_us"]) / df["level_us"]
        d = df.assign(err_pct=err_pct)
        # the spread of each tune's own reads (Drolet Fig. 2b/c), pooled over the tunes of a
        # level as the RMS of their std; where each tune landed is the offset, kept apart
        per_tune = d.groupby(["run_id", "level_us", "device", "repeat"])["err_pct"].agg(["var", "size"])
        per_tune = per_tune[per_tune["size"] > 1].reset_index()
        g = d.groupby("level_us")
        # a level whose tunes were read once each has no per-tune spread: the spread of all
        # its reads stands in (it holds where each tune landed too, so it errs high)
        pooled = g["err_pct"].std(ddof=1)
        own = np.sqrt(per_tune.groupby("level_us")["var"].mean()).reindex(pooled.index)
        out = pd.DataFrame(
            {
                "std_pct": own.fillna(pooled),
                "mean_offset_pct": g["err_pct"].mean(),
                "n_samples": g["err_pct"].size(),
                "n_tunes": g[["run_id", "device", "repeat"]].apply(lambda x: len(x.drop_duplicates())),
            }
        ).reset_index()
        return out

    def imprecision_raw(self) -> pd.DataFrame:
        """Every read of a converged tune: level_us, g_us, device, repeat, run_id (what
        hardware-aware training samples from, as recorded: no fit, no clipping)."""
        df = self.raw("imprecision")
        df = df[df["converged"].astype(bool)] if "converged" in df else df
        if df.empty:
            raise MissingDataError("imprecision", self._where())
        cols = ["level_us", "g_us"] + [c for c in ("device", "repeat", "run_id", "chip_id") if c in df]
        return df[cols].reset_index(drop=True)

    def imprecision_offsets(self) -> pd.DataFrame:
        """One row per tune: level_us, device, repeat, offset_pct (mean of its reads vs target)."""
        df = self.raw("imprecision")
        df = df[df["converged"].astype(bool)] if "converged" in df else df
        g = df.groupby(["run_id", "level_us", "device", "repeat"])["g_us"].mean().reset_index()
        g["offset_pct"] = 100.0 * (g["g_us"] - g["level_us"]) / g["level_us"]
        return g.drop(columns=["g_us"])

    def imprecision_fit(self) -> dict[str, float]:
        """std%(G) = slope * G + intercept (least squares over the levels) and the offset
        distribution: {"slope_pct_per_us", "intercept_pct", "offset_mean_pct", "offset_std_pct"}."""
        t = self.imprecision()
        if len(t) >= 2:
            slope, intercept = np.polyfit(t["level_us"], t["std_pct"], 1)
        else:
            slope, intercept = 0.0, float(t["std_pct"].iloc[0])
        off = self.imprecision_offsets()["offset_pct"]
        return {
            "slope_pct_per_us": float(slope),
            "intercept_pct": float(intercept),
            "offset_mean_pct": float(off.mean()),
            "offset_std_pct": float(off.std(ddof=1)) if len(off) > 1 else 0.0,
        }

    # ------------------------------------------------------------------ disturb
    def disturb(self) -> pd.DataFrame:
        """Raw samples: later_writes (int), delta_us (float), and row, col, target_us, run_id."""
        df = self.raw("disturb")
        if "converged" in df:
            df = df[df["converged"].astype(bool)]
        if df.empty:
            raise MissingDataError("disturb", self._where())
        df = df.assign(later_writes=df["later_writes"].astype(int))
        cols = ["later_writes", "delta_us"] + [
            c for c in ("row", "col", "target_us", "run_id", "chip_id") if c in df
        ]
        return df[cols].reset_index(drop=True)

    def disturb_table(self) -> pd.DataFrame:
        """By number of later writes: mean_us, std_us, n (the seed's V/3 table)."""
        g = self.disturb().groupby("later_writes")["delta_us"]
        return pd.DataFrame({"mean_us": g.mean(), "std_us": g.std(ddof=1), "n": g.size()}).reset_index()

    # ------------------------------------------------------------------ stuck
    def stuck(self) -> pd.DataFrame:
        """Stuck devices: kind (``hrs``/``lrs``), g_us, row, col, chip_id."""
        df = self.raw("stuck")
        s = df[df["kind"].isin(["hrs", "lrs"])]
        return s[["kind", "g_us", "row", "col", "chip_id"]].reset_index(drop=True)

    def stuck_fractions(self) -> dict[str, float]:
        """{"hrs": fraction, "lrs": fraction, "cells": cells examined}."""
        df = self.raw("stuck")
        n = len(df)
        return {
            "hrs": float((df["kind"] == "hrs").sum() / n),
            "lrs": float((df["kind"] == "lrs").sum() / n),
            "cells": n,
        }

    # ------------------------------------------------------------------ RTN
    def rtn(self) -> pd.DataFrame:
        """Read spread of each examined cell: phase (``before``/``after`` denoising),
        spread_us (peak-to-peak of its reads), row, col, target_us."""
        df = self.raw("rtn")
        cols = ["phase", "spread_us", "row", "col"] + [c for c in ("target_us", "run_id") if c in df]
        return df[cols].reset_index(drop=True)

    def rtn_stats(self) -> pd.DataFrame:
        """By phase: mean, median, p90 and max spread (µS), n."""
        g = self.rtn().groupby("phase")["spread_us"]
        return pd.DataFrame(
            {
                "mean_us": g.mean(),
                "median_us": g.median(),
                "p90_us": g.quantile(0.9),
                "max_us": g.max(),
                "n": g.size(),
            }
        ).reset_index()

    # ------------------------------------------------------------------ range
    def g_range_us(self) -> tuple[float, float]:
        """The working range (µS) the characterisation used for its levels and targets."""
        df = self.raw("range")
        return float(df["g_lo_us"].median()), float(df["g_hi_us"].median())

    def summary(self) -> dict[str, Any]:
        """What each table holds (sample counts; missing tables as 0)."""
        out: dict[str, Any] = {"characterize_runs": int(len(self.runs()))}
        for t in RAW_TABLES:
            try:
                out[t] = int(len(self.raw(t)))
            except MissingDataError:
                out[t] = 0
        return out

    # ------------------------------------------------------------------ exchange
    def export_parquet(self, path: str | Path) -> dict[str, int]:
        """Write every raw sample table to one Parquet file (column ``table``); row counts."""
        frames, counts = [], {}
        for t in RAW_TABLES:
            try:
                df = self.raw(t)
            except MissingDataError:
                continue
            counts[t] = int(len(df))
            frames.append(df.assign(table=t))
        if not frames:
            raise MissingDataError("any", self._where())
        runs = self.runs()
        out = pd.concat(frames, ignore_index=True)
        out = out.merge(
            runs[["run_id", "technology"]].rename(columns={"technology": "run_technology"}),
            on="run_id",
            how="left",
        )
        out.to_parquet(path, index=False)
        return counts

    def close(self) -> None:
        """Release the store (when this object opened it)."""
        if self._own:
            self.store.close()


def import_variability(url: str | None, path: str | Path, *, bench: str = "imported") -> dict[str, Any]:
    """Load a Parquet file written by :meth:`VariabilityDB.export_parquet` into a store.

    Each source run becomes a ``characterize`` run (status ``complete``) in the target
    store, so :class:`VariabilityDB` there sees the same tables. Returns the new run ids
    and the row counts.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError("path", str(p), "an existing Parquet file from `memprog db export-variability`")
    try:
        df = pd.read_parquet(p)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input
        raise ConfigError("path", str(p), "a Parquet file from `memprog db export-variability`", " ".join(str(exc).split())) from None
    need = {"table", "run_id"}
    if not need <= set(df.columns):
        raise ConfigError("path", str(p), "a variability export (columns table, run_id, ...)", f"missing {sorted(need - set(df.columns))}")
    store = open_store(url)
    new_ids: dict[str, str] = {}
    counts: dict[str, int] = {}
    try:
        for src, part in df.groupby("run_id", sort=False):
            chip = part["chip_id"].dropna().iloc[0] if "chip_id" in part and part["chip_id"].notna().any() else None
            tech = (
                part["run_technology"].dropna().iloc[0]
                if "run_technology" in part and part["run_technology"].notna().any()
                else None
            )
            rid = store.start_run(kind="characterize", bench=bench, chip_id=chip, technology=tech, params={"imported_from": str(src), "file": str(p)})
            sink = store.sink(rid)
            for t, rows in part.groupby("table", sort=False):
                keep = rows.drop(columns=[c for c in ("table", "run_id", "chip_id", "run_technology") if c in rows])
                keep = keep.dropna(axis=1, how="all")
                sink.record_event({"event": "samples", "table": str(t), "columns": {c: keep[c].to_numpy() for c in keep.columns}})
                counts[str(t)] = counts.get(str(t), 0) + len(rows)
            sink.flush()
            store.finish_run(rid, "complete", {"imported_from": str(src)})
            new_ids[str(src)] = rid
    finally:
        store.close()
    return {"runs": new_ids, "rows": counts}


__all__ = ["MissingDataError", "RAW_TABLES", "VariabilityDB", "import_variability"]
