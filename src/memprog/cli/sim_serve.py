"""``memprog sim serve``: serve a simulated bench on loopback sockets (see ``tcp_server``).

A thin command over :class:`memprog.sim_instruments.tcp_server.SimServer`: it prints each
served instrument's resource string (one ``NAME RESOURCE`` line each, or one JSON document
with ``--json``), can write a lab-style bench file (``visa_library: "@py"``) pointing at
those sockets (a file already there only with ``--force``: cli/outputs.py), and serves
until it is stopped (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from memprog.cli import options as O
from memprog.cli.common import JsonOpt, fail
from memprog.cli.outputs import ForceOpt, refuse_existing
from memprog.core.bench_config import UNSELECTED_MARGIN
from memprog.core.errors import ConfigError, MemprogError
from memprog.core.jsonout import dumps
from memprog.core.strict_yaml import dump_yaml
from memprog.sim_instruments.faults import FaultPlan
from memprog.sim_instruments.tcp_server import SimServer


def served_bench(
    config: Any, resources: dict[str, str], timeout_ms: int | None = None, clock: str | None = None
) -> dict:
    """The bench file (as a dict) that reaches ``resources`` through pyvisa-py (``@py``).

    ``clock`` (the server's ``clock_address``) goes into each served instrument's
    ``options.sim_clock``, so the bench reports the served chip's clock as bench time, as
    it does in-process (wall time is not bench time: the served chip does not sleep).
    """
    data = config.model_dump(mode="json", exclude_none=True)
    data["name"] = f"{config.name}-served"
    # the chip's physics (a twin's fitted sim_params) live in the server; the client bench
    # talks to its instruments as a lab bench does, and a lab bench refuses simulator physics
    chip = data.get("chip", {})
    if chip.pop("sim_params", None):
        # the unselected-cell limit the bench derived from the twin's fitted thresholds goes
        # with them: the client derives its own from the technology (the server still holds
        # the twin's); kept, it could exceed the technology's and the client refuse the file
        p = config.chip.device_params()
        derived = round(UNSELECTED_MARGIN * min(p.v_set_threshold_v, p.v_reset_threshold_v), 3)
        lim = chip.get("limits", {})
        if lim.get("unselected_v_max") == derived:
            lim.pop("unselected_v_max")
    for name, res in resources.items():
        inst = data["instruments"][name]
        if inst["kind"] == "wgfmu":  # the library's calls are served; its session opens on
            inst["library"] = res  # the mainframe's served socket
            inst["visa_library"] = "@py"
            b1500 = [n for n, i in data["instruments"].items() if i["kind"] == "b1500" and n in resources]
            if b1500:
                inst["resource"] = resources[b1500[0]]
            if clock is not None:
                inst.setdefault("options", {})["sim_clock"] = clock
            continue
        inst["resource"] = res
        inst["visa_library"] = "@py"
        inst["options"] = {k: v for k, v in inst.get("options", {}).items() if not k.startswith("sim_")}
        if clock is not None:
            inst["options"]["sim_clock"] = clock
        if timeout_ms is not None:
            inst["timeout_ms"] = timeout_ms
    data["instruments"] = {n: i for n, i in data["instruments"].items() if n in resources}
    return data


def _check_writable(path: Path) -> None:
    """Refuse a ``--write-bench`` path that cannot be written, before any server starts."""
    parent = path.parent
    if path.is_dir():
        raise ConfigError("--write-bench", str(path), "a file path, not a directory")
    if not parent.is_dir():
        raise ConfigError("--write-bench", str(path), "a file in an existing directory", f"no directory {parent}")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError("--write-bench", str(path), "a writable file path", "permission denied")


def register(sim_app: typer.Typer) -> None:
    """Add ``serve`` to the ``memprog sim`` group."""

    @sim_app.command("serve")
    def serve_cmd(
        bench: Annotated[str, typer.Argument(help="Bench file or shipped bench name.")],
        port: Annotated[
            int, typer.Option("--port", callback=O.PORT, help="First port; the others follow. 0: free ports.")
        ] = 0,
        fault_rate: Annotated[
            float, typer.Option("--fault-rate", callback=O.float_in(0.0, 0.5), help="Fraction of messages faulted (0-0.5).")
        ] = 0.0,
        fault_seed: Annotated[int, typer.Option("--fault-seed", callback=O.SEED, help="Fault sequence seed.")] = 0,
        fault_kinds: Annotated[
            str,
            typer.Option("--fault-kinds", callback=O.fault_kinds(), help="Comma list: drop,garbage,timeout,error,link,reset."),
        ] = "drop,garbage,timeout,error,link,reset",
        late_s: Annotated[
            float, typer.Option("--late-s", callback=O.float_in(0.0, O.MAX_LATE_S, "s", lo_open=True), help="How late a 'timeout' fault's reply comes (s).")
        ] = 0.3,
        write_bench: Annotated[
            Path | None,
            typer.Option("--write-bench", callback=O.out_file(), help="Write a lab-style bench file (@py) for these ports."),
        ] = None,
        timeout_ms: Annotated[
            int | None, typer.Option("--timeout-ms", callback=O.int_in(1, O.MAX_TIMEOUT_MS, "ms"), help="VISA timeout (ms) written into --write-bench (default: the bench file's own).")
        ] = None,
        force: ForceOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Serve each simulated instrument of BENCH on 127.0.0.1 in its real LAN protocol."""
        try:
            if write_bench is not None:  # checked before anything listens
                _check_writable(write_bench)
                # the README's rule (cli/outputs.py): an existing file is replaced only with
                # --force, so a second server never rewrites the first one's bench file
                refuse_existing(write_bench, force, "--write-bench")
            plan = None
            if fault_rate > 0:
                kinds = [k.strip() for k in fault_kinds.split(",") if k.strip()]
                plan = FaultPlan(rate=fault_rate, seed=fault_seed, kinds=kinds, late_s=late_s)
            server = SimServer(bench, port=port, faults=plan)
            resources = server.start()
        except MemprogError as exc:
            raise fail(exc) from exc
        if write_bench is not None:
            try:
                write_bench.write_text(
                    "# written by memprog sim serve: the served bench through pyvisa-py\n"
                    + dump_yaml(
                        served_bench(server.config, resources, timeout_ms, server.clock_address),
                        sort_keys=False,
                    )
                )
            except OSError as exc:
                server.stop()
                raise fail(ConfigError("--write-bench", str(write_bench), "a writable file", str(exc))) from exc
        if as_json:
            doc = {"bench": str(server.path), "resources": resources}
            if write_bench is not None:
                doc["bench_file"] = str(write_bench)
            typer.echo(dumps(doc))
        else:
            for name, res in resources.items():
                typer.echo(f"{name} {res}")
            if write_bench is not None:
                typer.echo(f"bench file: {write_bench}")
        typer.echo("memprog: serving on 127.0.0.1; stop with Ctrl-C", err=True)
        stop = threading.Event()

        def _stop(signum: int, frame: Any) -> None:
            stop.set()

        previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop.wait(0.2):
                pass
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            server.stop()
            faults = server.fault_summary()
            if any(f["total"] for f in faults.values()):
                typer.echo(f"memprog: faults injected {dumps(faults)}", err=True)
            typer.echo("memprog: stopped serving", err=True)


__all__ = ["register", "served_bench"]
