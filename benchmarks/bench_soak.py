"""Soak: the 256x256 64-level map programmed while 1 % of the controller's messages fail.

The on-chip bench (``benches/sim_onchip.yaml``, real driver stack) with seeded fault
injection in the simulated controller: lost, garbled and late replies, transient errors, a
link dropping mid-block, controller reboots (``sim_instruments/faults.py``). Goals (issue
14): every cell ends converged or flagged, no exception escapes, the bench ends safe (the
controller's last array command an ABOR), and the figures: faults injected, operations
retried, recoveries, cells lost (must be 0).

In-process (``@memprog``, a timeout costs nothing) by default; ``--tcp`` runs the same
through ``memprog sim serve``'s sockets and pyvisa-py (timeouts cost real time).
Run: ``python benchmarks/bench_soak.py [--json] [--rate 0.01] [--seed 1] [--tcp]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import yaml

from memprog import open_bench
from memprog.core.strict_yaml import dump_yaml
from memprog.protocols.array import ArrayParams, program_array, random_level_map

BENCHES = Path(__file__).resolve().parents[1] / "benches"
SETUP_MESSAGES = 16  # connection set-up (identify, geometry) is left unfaulted [choice]


def _bench_file(tmp: Path, rate: float, seed: int) -> Path:
    data = yaml.safe_load((BENCHES / "sim_onchip.yaml").read_text())
    data["instruments"]["controller"]["options"]["sim_faults"] = {
        "rate": rate,
        "seed": seed,
        "skip_first": SETUP_MESSAGES,
    }
    path = tmp / "soak_onchip.yaml"
    path.write_text(dump_yaml(data))
    return path


def run(rate: float, seed: int, tcp: bool, size: int) -> dict:
    m = random_level_map(256, 256, 64, seed=1)[:size, :size]
    out: dict = {"rate": rate, "seed": seed, "transport": "pyvisa-py TCP" if tcp else "@memprog"}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = None
        if tcp:
            from memprog.cli.sim_serve import served_bench
            from memprog.sim_instruments.faults import FaultPlan
            from memprog.sim_instruments.tcp_server import SimServer

            server = SimServer(
                BENCHES / "sim_onchip.yaml",
                faults=FaultPlan(rate=rate, seed=seed, skip_first=SETUP_MESSAGES, late_s=0.3),
            )
            resources = server.start()
            bench_path = tmp / "served.yaml"
            bench_path.write_text(dump_yaml(served_bench(server.config, resources, 200, server.clock_address)))
            sim = server.bench
        else:
            bench_path = _bench_file(tmp, rate, seed)
            sim = None
        t0 = time.perf_counter()
        escaped = None
        res = None
        try:
            with open_bench(bench_path) as b:
                sim = sim or b.sim_bench
                prog = b.programmer
                res = program_array(prog, m, ArrayParams())
                out["link_stats"] = dict(prog.link_stats)
                out["transport_stats"] = dict(prog.controller.transport.stats)
        except Exception as exc:  # noqa: BLE001 - the soak reports what escaped
            escaped = f"{type(exc).__name__}: {exc}"
            out["traceback"] = traceback.format_exc()
        finally:
            if server is not None:
                server.stop()
        out["wall_s"] = time.perf_counter() - t0
        ctrl = sim.instruments["controller"]
        out["faults_injected"] = ctrl.faults.summary()
        out["controller_reboots"] = ctrl.power_cycles
        out["ends_safe"] = bool(ctrl.safe and ctrl.aborts > 0)
    out["escaped"] = escaped
    wanted = int(np.isfinite(m).sum())
    if res is not None:
        settled = res.converged | (res.flags != "")
        out["cells"] = wanted
        out["converged"] = int(res.converged.sum())
        out["flagged"] = int((~res.converged & (res.flags != "")).sum())
        out["cells_lost"] = wanted - int(settled.sum())
        out["flags"] = res.summary()["flags"]
        out["bench_time_s"] = res.bench_time_s
    else:
        out["cells"], out["cells_lost"] = wanted, wanted
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rate", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tcp", action="store_true", help="through memprog sim serve + pyvisa-py")
    ap.add_argument("--size", type=int, default=256, help="top-left SIZE x SIZE of the map")
    a = ap.parse_args()
    out = run(a.rate, a.seed, a.tcp, a.size)
    if a.json:
        out.pop("traceback", None)
        print(json.dumps(out, default=str))
        return
    f = out["faults_injected"]
    ls = out.get("link_stats", {})
    print(
        f"soak {out['transport']}, {a.size}x{a.size} 64-level map, {a.rate * 100:g} % of messages faulted "
        f"(seed {a.seed}): {f['total']} faults in {f['messages']} messages "
        f"(drop {f['drop']}, garbage {f['garbage']}, timeout {f['timeout']}, error {f['error']}, "
        f"link {f['link']}, reset {f['reset']}); retried {ls.get('retried', 0)}, recoveries "
        f"{ls.get('recoveries', 0)}, unconfirmed pulse batches {ls.get('pulses_unconfirmed', 0)}; "
        f"cells {out['cells']}: converged {out.get('converged', 0)}, flagged {out.get('flagged', 0)}, "
        f"lost {out['cells_lost']}; escaped: {out['escaped'] or 'nothing'}; ends safe: {out['ends_safe']}; "
        f"wall {out['wall_s']:.2f} s"
    )
    if out.get("traceback"):
        print(out["traceback"])


if __name__ == "__main__":
    import os

    # throw-away simulated chips, fresh from their seed on every open: the figures do not
    # depend on what an earlier run left on a stored chip (sim_instruments/chip_state)
    os.environ.setdefault("MEMPROG_SIM_VOLATILE", "1")
    main()
