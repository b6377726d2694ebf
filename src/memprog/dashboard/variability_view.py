"""The variability page's data: seed 001's tables of one chip, each one that cannot be
derived named with the reason.

Why a module of its own: a chip rarely has every table (a characterisation fills some, a
run of an unexpected shape cannot be derived), and the page must still draw the others; so
each table is computed on its own and a missing one becomes a sentence (``MissingDataError``
names the command that fills it), never an error for the whole page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd

from memprog.core.errors import MemprogError

T = TypeVar("T")


def variability_of(
    make_vdb: Callable[[str | None], Any], retry: Callable[[Callable[[], T]], T], chip_id: str | None
) -> dict[str, Any]:
    """The variability tables of one chip (None: every chip) as plot-ready columns.

    Args:
        make_vdb: builds a ``VariabilityDB`` for a chip id (the dashboard's, over its
            read-only store).
        retry: calls a table's function, retrying while the store is locked by a writer.

    Returns:
        ``{"chip_id", "missing": {table: why}, <table>: columns...}``, plus
        ``disturb_by_writes`` (mean, std and count of the disturb per number of later writes).
    """
    out: dict[str, Any] = {"chip_id": chip_id, "missing": {}}
    try:
        vdb = make_vdb(chip_id)
    except MemprogError as exc:
        out["missing"]["all"] = str(exc)
        return out

    def table(name: str, fn: Callable[[], Any]) -> None:
        try:
            val = retry(fn)
        except MemprogError as exc:  # MissingDataError names the run that fills it
            out["missing"][name] = str(exc)
            return
        except (KeyError, ValueError, TypeError) as exc:  # samples of an unexpected shape
            out["missing"][name] = f"could not derive {name}: {type(exc).__name__}: {exc}"
            return
        if isinstance(val, pd.DataFrame):
            out[name] = {str(k): val[k].tolist() for k in val.columns}
        else:
            out[name] = val

    table("imprecision", vdb.imprecision)
    table("imprecision_fit", vdb.imprecision_fit)
    table("disturb", vdb.disturb)
    table("stuck", vdb.stuck)
    table("stuck_fractions", vdb.stuck_fractions)
    table("rtn", vdb.rtn)
    table("g_range_us", lambda: list(vdb.g_range_us()))
    if isinstance(out.get("disturb"), dict) and out["disturb"].get("later_writes"):
        d = pd.DataFrame(out["disturb"])
        s = d.groupby("later_writes")["delta_us"].agg(["mean", "std", "count"]).reset_index()
        out["disturb_by_writes"] = {str(k): s[k].tolist() for k in s.columns}
    return out


__all__ = ["variability_of"]
