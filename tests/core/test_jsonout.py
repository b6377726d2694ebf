"""The one JSON encoder: what the dashboard, the store and every ``--json`` write."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from memprog.core.jsonout import dumps, sanitize
from memprog.dashboard.records import clean


def test_times_in_utc_and_missing_times_as_null() -> None:
    naive = datetime(2026, 12, 5, 21, 0, 0)
    paris = datetime(2026, 12, 5, 22, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    doc = {"naive": naive, "paris": paris, "stamp": pd.Timestamp(naive), "missing": pd.NaT}
    out = sanitize(doc, utc=True)
    assert out == {
        "naive": "2026-12-05T21:00:00+00:00",
        "paris": "2026-12-05T21:00:00+00:00",
        "stamp": "2026-12-05T21:00:00+00:00",
        "missing": None,
    }
    # without utc a naive time stays as written; a missing one is still null, never "NaT"
    assert sanitize(doc)["naive"] == "2026-12-05T21:00:00" and sanitize(doc)["missing"] is None


def test_the_dashboard_encodes_through_the_one_encoder() -> None:
    doc = {"g": np.array([1.5, np.nan, np.inf]), "n": np.int64(3), "t": datetime(2026, 1, 2), "odd": object}
    out = clean(doc)
    assert out["g"] == [1.5, None, None] and out["n"] == 3 and out["t"] == "2026-01-02T00:00:00+00:00"
    assert out["odd"] == str(object)  # a page renders whatever a run stored, as text
    assert json.loads(dumps(out)) == out  # strict: no NaN anywhere
