"""One chip's worker: its bench held open, the program job run on it, its VMM lent to the fleet.

Why one class for both engines: the local engine holds a :class:`ChipWorker` per chip in
this process; the Ray engine runs the very same class as an actor (:class:`BenchActor`,
so its worker process shows as ``ray::BenchActor``), pinned to the host its instruments
are wired to. Either way the bench is opened once, in the constructor, and stays open
between calls (the VISA sessions, the simulated chip's state file lock). A Ray actor that
dies is restarted by Ray, which runs the constructor again: the bench is reopened and the
chip found as it was left (a simulated chip's state is memory-mapped and outlives a killed
process; a real chip is non-volatile).

No method that pulses is ever retried blindly (the actor's tasks are at-most-once). After a
restart the fleet job calls :meth:`program` again, and :meth:`program` resumes from the
store: the cells the dead worker finished are read first and only those now outside their
band are tuned again (issue 16's resume, :func:`memprog.jobs.resume_reads.reread_kept`).
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memprog.bench.assembly import open_bench
from memprog.fleet.chips import ChipSpec
from memprog.hwaware.placement import Placement
from memprog.jobs.program import ProgramParams, run_program
from memprog.jobs.program_inference import vmm_partial
from memprog.jobs.weights import Network
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import TuneResult
from memprog.sim_instruments.chip_state import volatile_chips
from memprog.store import open_store


@dataclass
class ChipTask:
    """What one chip is asked to program (plain data: it travels to a Ray actor).

    Attributes:
        source: the network (every chip gets all of it; ``placement`` says which tiles).
        params: the program job's settings.
        placement: this chip's tiles (a network tiled over the fleet), or None: the whole
            network placed by the job (a yield study: every chip holds all of it).
        test_set: run the network on this chip (yield study) or None (tiled: the fleet runs it).
        db: the store URL every worker writes its chip's run to (None: not stored).
        run_id: this chip's run, created by the fleet job before the first pulse.
    """

    source: Network
    params: ProgramParams
    placement: dict[str, Any] | None
    test_set: tuple[np.ndarray, np.ndarray] | None
    db: str | None
    run_id: str | None


@dataclass
class ChipOutcome:
    """What a chip's worker sends back: its report's summary, the cells it holds, the plan."""

    summary: dict[str, Any]
    result: TuneResult
    plan_cells: dict[str, np.ndarray]
    scales: list[float]
    copies: int
    resumed_cells: int
    pid: int


@dataclass
class ProtocolTask:
    """A protocol job for one chip (``characterize``, ``tune --map``), as plain data.

    Why a function and not a method per protocol: the worker stays one small class for every
    job a fleet runs; ``fn`` is a module-level function bound to its settings with
    :func:`functools.partial` (picklable: it travels to a Ray actor), called as
    ``fn(programmer, sink, done)`` and returning a plain summary dict
    (:mod:`memprog.fleet.protocol_job`).

    Attributes:
        fn: the job (see above).
        db: the store URL the chip's run is in (None: not stored).
        run_id: the chip's run, created by the fleet job before the first pulse.
        resume: hand the run's stored cells to ``fn`` as ``done`` (a restarted worker of a
            job that resumes reading first); False: ``done`` is always None.
    """

    fn: Callable[..., dict[str, Any]]
    db: str | None
    run_id: str | None
    resume: bool = False


def resident_mb() -> float | None:
    """This process's resident memory (MB) where the OS says it cheaply (Linux ``/proc``);
    None elsewhere (Windows, macOS): a figure for reports, never a decision."""
    statm = Path("/proc/self/statm")
    try:
        pages = int(statm.read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6 if hasattr(os, "sysconf") else None


class ChipWorker:
    """A chip's bench, open for the worker's lifetime (see the module docstring)."""

    def __init__(self, spec: ChipSpec) -> None:
        self.spec = spec
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        path: str | Path = spec.bench
        if spec.bench_text is not None:
            self._tmp = tempfile.TemporaryDirectory(prefix="memprog-fleet-")
            path = Path(self._tmp.name) / f"{spec.name}.yaml"
            Path(path).write_text(spec.bench_text)
        if spec.volatile:
            with volatile_chips():  # a throw-away chip: fresh from its seed, never stored
                self.bench = open_bench(path)
        else:
            self.bench = open_bench(path)

    # ------------------------------------------------------------------ queries
    def info(self) -> dict[str, Any]:
        """The chip as this worker sees it, and where the worker runs (pid, host)."""
        prog = self.bench.programmer
        return {
            "index": self.spec.index,
            "name": self.spec.name,
            "chip_id": self.bench.config.chip.id,
            "technology": prog.info.technology,
            "rows": int(prog.info.rows),
            "cols": int(prog.info.cols),
            "supports_vmm": bool(isinstance(prog, CellProgrammer) and prog.supports_vmm),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "rss_mb": resident_mb(),
        }

    # ------------------------------------------------------------------ the job
    def program(self, task: ChipTask) -> ChipOutcome:
        """Program this chip's share of the network (resuming what a dead worker left)."""
        store = open_store(task.db) if task.db and task.run_id else None
        try:
            sink = None
            done = None
            placement = Placement.from_dict(task.placement) if task.placement else None
            if store is not None:
                assert task.run_id is not None
                if store.cell_count(task.run_id):
                    # a restarted worker: the dead one's finished cells are read before trusted
                    done = store.resume_result(task.run_id)
                    plan = (store.get_run(task.run_id).get("params") or {}).get("plan") or {}
                    if placement is None and plan.get("placement"):
                        placement = Placement.from_dict(plan["placement"])
                sink = store.sink(task.run_id)
                sink.record_event({"event": "worker", "pid": os.getpid(), "host": socket.gethostname(),
                                   "cells_kept": 0 if done is None else len(done)})

            def record_plan(plan: Any) -> None:
                if store is not None and task.run_id is not None:
                    params = dict(store.get_run(task.run_id).get("params") or {})
                    params["plan"] = plan.to_params()
                    store.update_run(task.run_id, params=params, cells_total=plan.n)

            try:
                report = run_program(
                    self.bench, task.source, task.params, test_set=task.test_set, sink=sink,
                    run_id=task.run_id, done=done, placement=placement, on_plan=record_plan,
                )
            finally:
                if sink is not None:
                    sink.close()  # a caught signal loses no finished cell (a kill -9 may lose 0.2 s)
        finally:
            if store is not None:
                store.close()
        summary = report.summary()
        if task.test_set is None:
            # a tiled chip holds parts of layers: its per-layer weight errors mean nothing
            # alone (the fleet's report gives them for the whole network)
            summary.pop("layers", None)
        pl = report.plan.placement
        return ChipOutcome(
            summary, report.result, report.plan.cells, list(report.plan.scales),
            1 if pl is None else pl.copies, 0 if done is None else len(done), os.getpid(),
        )

    def run_protocol(self, task: ProtocolTask) -> dict[str, Any]:
        """Run ``task.fn`` on this chip into its run; its summary, with where it ran.

        The sink is attached here, in the worker (the samples and cells go to the store
        from where the chip is); after a restart the stored cells of a resumable job are
        handed to ``fn`` to be read again before they are trusted."""
        store = open_store(task.db) if task.db and task.run_id else None
        done = None
        t_bench = float(self.bench.bench_time_s)
        try:
            sink = None
            if store is not None:
                assert task.run_id is not None
                if task.resume and store.cell_count(task.run_id):
                    done = store.resume_result(task.run_id)
                sink = store.sink(task.run_id)
                sink.record_event({"event": "worker", "pid": os.getpid(), "host": socket.gethostname(),
                                   "cells_kept": 0 if done is None else len(done)})  # fmt: skip
            summary = dict(task.fn(self.bench.programmer, sink, done))
            if sink is not None:
                sink.close()
        finally:
            if store is not None:
                store.close()
        summary.update({
            "bench_time_s": float(self.bench.bench_time_s) - t_bench, "pid": os.getpid(),
            "host": socket.gethostname(), "cells_kept_after_restart": 0 if done is None else len(done),
        })  # fmt: skip
        return summary

    def vmm(self, placement: dict[str, Any], layer: int, ext: np.ndarray, input_v: float | None = None) -> np.ndarray:
        """This chip's partial sums of ``layer`` for the inputs ``ext`` (bias column included),
        by its analog ``VMM?`` (:func:`memprog.jobs.program_inference.vmm_partial`)."""
        prog = self.bench.programmer
        pl = Placement.from_dict(placement)
        nout = pl.layer_shapes[layer][1]
        vin = float(input_v or prog.info.read_v)
        return vmm_partial(pl.tiles_of(layer), np.asarray(ext, dtype=float), nout, prog.vmm, prog.info.rows, vin)

    def close(self) -> None:
        """Leave the bench safe and closed."""
        try:
            self.bench.close()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None


class BenchActor(ChipWorker):
    """The Ray actor of one bench (the class name is what ``ray::BenchActor`` shows)."""


__all__ = ["BenchActor", "ChipOutcome", "ChipTask", "ChipWorker", "ProtocolTask"]
