"""Shared pieces of the fleet tests: a small on-chip bench (96x96: the shipped digits
network needs two of them, so a fleet job is a few seconds), the digits network and its test
set, and what a chip of a fleet holds, read back through a bench of its own."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import yaml

from memprog.bench.assembly import open_bench
from memprog.examples import example
from memprog.jobs.weights import Network, load_program_input

ROOT = Path(__file__).resolve().parents[2]


def small_onchip_bench(folder: Path, size: int = 96) -> Path:
    """The shipped simulated on-chip bench with a ``size`` x ``size`` array."""
    d = yaml.safe_load((ROOT / "benches" / "sim_onchip.yaml").read_text())
    d["chip"]["rows"] = d["chip"]["cols"] = size
    p = folder / f"onchip{size}.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def digits() -> tuple[Network, tuple[np.ndarray, np.ndarray]]:
    w, t = example("digits")
    net = load_program_input(w)
    z = np.load(t)
    return net, (z["x"], z["y"])


def held_by_chip(spec_text: str, folder: Path, rows: np.ndarray, cols: np.ndarray, reads: int = 4) -> np.ndarray:
    """What the chip of a fleet spec holds now: the mean of ``reads`` reads of each cell,
    through a bench of its own (the chip's state file, as another process would find it)."""
    p = folder / "reopen.yaml"
    p.write_text(spec_text)
    with open_bench(p) as b:
        g = np.mean([b.programmer.read(rows, cols) for _ in range(reads)], axis=0)
    return np.asarray(g, dtype=float)


def kill_chip0_worker_mid_run(job, store, db_file: Path, kind: str, timeout_s: float = 120) -> tuple[dict, int | None]:
    """Run ``job()`` in a thread; as soon as chip 0's run of ``kind`` holds some but not all
    of its cells, kill -9 its worker (the pid its ``worker`` event names: a
    ``ray::BenchActor``). Returns ({"report": ..., or "error": ...}, cells stored at the kill,
    None when the chip finished first)."""
    out: dict = {}

    def run() -> None:
        try:
            out["report"] = job()
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            out["error"] = exc

    th = threading.Thread(target=run)
    th.start()
    killed = None
    deadline = time.monotonic() + timeout_s
    while th.is_alive() and killed is None and time.monotonic() < deadline:
        if db_file.exists():
            for rid in store.list_runs(kind=kind)["run_id"]:
                run_ = store.get_run(rid)
                if (run_.get("params") or {}).get("chip_index") != 0:
                    continue
                ev = [e for e in store.events(rid) if e.get("event") == "worker"]
                if ev and 0 < run_["cells_done"] < run_["cells_total"]:
                    os.kill(int(ev[0]["pid"]), signal.SIGKILL)
                    killed = run_["cells_done"]
                    break
        time.sleep(0.01)
    th.join(timeout=300)
    return out, killed
