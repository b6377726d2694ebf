"""Where a fleet's chip workers run: in this process (``local``) or as Ray actors (``ray``).

Why two engines behind one small interface (:meth:`start`, :meth:`call_each`, :meth:`call`,
:meth:`stop`): the fleet job must give the same answer on a laptop without Ray and on a
cluster; only the place the workers live changes. ``local`` needs nothing beyond memprog
and runs the chips one after another; ``ray`` runs one :class:`BenchActor` per chip in
parallel, pinned to the host its bench is wired to.

Ray's semantics are the reason it was chosen: an actor holds state (the open VISA
sessions), ``max_restarts`` restarts a dead actor by re-running its constructor (the bench
is reopened), and actor methods are at-most-once by default (``max_task_retries=0``): a
method that pulses is never repeated blindly. When a call fails because its actor died,
:meth:`RayEngine.call_each` says so (:class:`WorkerLost`) and the fleet job decides what to
do (call :meth:`ChipWorker.program` again, which resumes from the store reading first).

Loopback only: a Ray that memprog starts for a job binds 127.0.0.1
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes a Linux node use the loopback address; the
dashboard is not started), and ``RAY_AUTH_MODE=disabled`` unless the user set it. A lab's
multi-host cluster is the user's (``--ray-address``) and uses its hosts' addresses, as Ray
documents.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memprog.core.errors import ClusterError, ConfigError
from memprog.fleet.chips import ChipSpec
from memprog.fleet.worker import BenchActor, ChipWorker

ENGINES = ("local", "ray")
# [choice] restarts of one bench's actor in one job: a bench that dies three times has a
# fault a restart will not fix (a crashing driver, a cable): the job stops and says so
MAX_RESTARTS = 3
# [choice] what one chip's actor may hold besides its chip state: measured here with Ray 2.60,
# an actor with memprog imported (torch not) and a 256x256 chip open holds 226 MB resident
# (benchmarks/bench_fleet.py), of which 16 MB is the chip; 300 MiB leaves a third for growth
ACTOR_BASE_BYTES = 300 * 2**20
STATE_BYTES_PER_CELL = 128  # [measured] bench_chip.py: 125 MB at 1024x1024 (~120 B/cell)
ENV_PASSED = ("MEMPROG_SIM_STATE_DIR", "MEMPROG_SIM_VOLATILE", "MEMPROG_HOME")


@dataclass
class WorkerLost:
    """A call whose worker died (a killed actor); the actor is being restarted."""

    index: int
    reason: str


def loopback_environment() -> None:
    """Make a Ray started from this process bind loopback only (see the module docstring)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # a SETTINGS frame with no settings


def loopback_ray(ray: Any) -> None:
    """Keep a Ray started from this process on loopback even when Ray was imported before
    :func:`loopback_environment` ran (a notebook, a test): Ray reads
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, at import, into ``ray_constants``."""
    loopback_environment()
    consts = getattr(getattr(ray, "_private", None), "ray_constants", None)
    if consts is not None and hasattr(consts, "ENABLE_RAY_CLUSTER"):
        consts.ENABLE_RAY_CLUSTER = False


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A TCP connect to HOST:PORT before Ray tries (Ray waits long and says little)."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.rpartition(":")
    if host.startswith("ray://"):
        host = host[len("ray://") :]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("--ray-address", address, "HOST:PORT (a Ray head node's GCS address, e.g. 127.0.0.1:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
            # a Ray head's GCS speaks gRPC (HTTP/2): to the client preface it answers with a
            # SETTINGS frame (type 4). Anything else listening there (a web server, a typo'd
            # port) would leave ray.init waiting for ever, deaf to Ctrl-C
            sock.settimeout(timeout_s)
            sock.sendall(HTTP2_PREFACE + EMPTY_SETTINGS)
            head = sock.recv(9)
    except OSError as exc:
        raise ClusterError(address, f"cannot be reached ({exc.strerror or exc})") from None
    if len(head) < 9 or head[3] != 0x04:
        raise ClusterError(address, "answers, but not as a Ray cluster (no gRPC there; `ray start --head` prints the address to give)")


def actor_bytes(rows: int, cols: int) -> int:
    """Memory one simulated chip's actor asks Ray for (base + chip state)."""
    return ACTOR_BASE_BYTES + STATE_BYTES_PER_CELL * rows * cols


class LocalEngine:
    """Every chip's worker in this process, called one after another."""

    name = "local"

    def __init__(self) -> None:
        self.workers: list[ChipWorker] = []

    def start(self, specs: list[ChipSpec], rows: int = 0, cols: int = 0) -> None:
        try:
            for s in specs:
                self.workers.append(ChipWorker(s))
        except BaseException:
            self.stop()
            raise

    def call_each(
        self, method: str, args: dict[int, tuple[Any, ...]], on_result: Callable[[int, Any], None] | None = None
    ) -> dict[int, Any]:
        """Call ``method`` of the chosen workers, one after another (``on_result(index,
        answer)`` as each ends: a progress bar moves chip by chip)."""
        out: dict[int, Any] = {}
        for i, a in args.items():
            out[i] = getattr(self.workers[i], method)(*a)
            if on_result is not None:
                on_result(i, out[i])
        return out

    def wait_alive(self, index: int, timeout_s: float = 120.0) -> None:
        """A local worker never dies on its own (this process would die with it)."""

    def call(self, index: int, method: str, *args: Any) -> Any:
        return getattr(self.workers[index], method)(*args)

    def stop(self) -> None:
        for w in self.workers:
            try:
                w.close()
            except Exception:  # noqa: BLE001 - every other bench must still be closed
                pass
        self.workers.clear()

    def describe(self) -> dict[str, Any]:
        return {"engine": "local", "address": None}


class RayEngine:
    """One :class:`BenchActor` per chip on a Ray cluster (started for the job, or ``address``)."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.actors: list[Any] = []
        self._started_here = False
        self._ray: Any = None

    def _init(self) -> Any:
        loopback_environment()  # before Ray is imported: it reads the node address settings then
        try:
            # deferred: Ray is optional (memprog[fleet]) and takes seconds to import
            import ray
        except ImportError:
            raise ConfigError(
                "--engine", "ray", "local, or ray with Ray installed (pip install 'memprog[fleet]')"
            ) from None
        self._ray = ray
        if self.address is not None:
            check_reachable(self.address)
        if ray.is_initialized():
            return ray
        if self.address is None:
            loopback_ray(ray)
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        try:
            if self.address is None:
                ray.init(num_cpus=self.num_cpus, object_store_memory=256 * 2**20, **kwargs)
            else:
                ray.init(address=self.address, **kwargs)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            raise ClusterError(self.address or "local", str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        self._started_here = True
        return ray

    def _options(self, spec: ChipSpec, memory: int) -> dict[str, Any]:
        env = {k: os.environ[k] for k in ENV_PASSED if k in os.environ}
        opts: dict[str, Any] = {
            "max_restarts": MAX_RESTARTS,
            "max_task_retries": 0,  # at-most-once: a pulsing method is never repeated blindly
            "num_cpus": 0,  # a bench's actor mostly waits on its instruments; memory bounds a fleet
            "memory": memory,
            "runtime_env": {"env_vars": env} if env else None,
        }
        if spec.resource:
            opts["resources"] = {spec.resource: 1}
        if spec.label:
            opts["label_selector"] = dict(spec.label)
        return {k: v for k, v in opts.items() if v is not None}

    def check_fits(self, specs: list[ChipSpec], rows: int, cols: int) -> None:
        """Refuse a fleet the cluster cannot hold, before an actor is created."""
        ray = self._ray
        res = ray.cluster_resources()
        missing = sorted({s.resource for s in specs if s.resource and s.resource not in res})
        if missing:
            have = sorted(k for k in res if not k.startswith("node:") and k not in ("CPU", "GPU", "memory", "object_store_memory"))
            raise ConfigError("fleet resource", missing, f"resources the cluster's nodes advertise: {have or 'none besides CPU and memory'}")
        labels = [dict(n.get("Labels") or {}) for n in ray.nodes() if n.get("Alive")]
        for s in specs:
            if s.label and not any(all(lab.get(k) == v for k, v in s.label.items()) for lab in labels):
                raise ConfigError("fleet label", s.label, f"labels of the cluster's nodes: {labels}")
        need = actor_bytes(rows, cols)
        fit = int(res.get("memory", 0) // need)
        if len(specs) > fit:
            raise ConfigError(
                "chips", len(specs), f"<= {fit} (what the cluster's {res.get('memory', 0) / 2**30:.1f} GiB hold "
                f"at {need / 2**20:.0f} MiB per {rows}x{cols} chip's actor)",
            )

    def start(self, specs: list[ChipSpec], rows: int = 0, cols: int = 0) -> None:
        ray = self._init()
        self.check_fits(specs, rows, cols)
        cls = ray.remote(BenchActor)
        mem = actor_bytes(rows, cols)
        self.actors = [cls.options(**self._options(s, mem)).remote(s) for s in specs]

    def _is_lost(self, exc: BaseException) -> bool:
        ex = self._ray.exceptions
        return isinstance(exc, ex.RayActorError | ex.ActorUnavailableError)

    def call_each(
        self, method: str, args: dict[int, tuple[Any, ...]], on_result: Callable[[int, Any], None] | None = None
    ) -> dict[int, Any]:
        """Call ``method`` of the chosen actors in parallel; a dead actor's answer is a
        :class:`WorkerLost`; any other failure is raised (the first, in chip order) once
        every call has ended (no chip is left mid-job by another chip's error).
        ``on_result(index, answer)`` is called as each call ends, in the order they end."""
        ray = self._ray
        refs = {i: getattr(self.actors[i], method).remote(*a) for i, a in args.items()}
        index = {r: i for i, r in refs.items()}
        out: dict[int, Any] = {}
        errors: dict[int, BaseException] = {}
        waiting = list(refs.values())
        while waiting:
            (done,), waiting = ray.wait(waiting, num_returns=1)
            i = index[done]
            try:
                out[i] = ray.get(done)
            except ray.exceptions.RayTaskError as exc:
                errors[i] = exc.as_instanceof_cause()
                continue
            except Exception as exc:  # noqa: BLE001 - sorted below
                if not self._is_lost(exc):
                    raise
                out[i] = WorkerLost(i, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            if on_result is not None:
                on_result(i, out[i])
        if errors:
            raise errors[min(errors)]
        return {i: out[i] for i in refs if i in out}

    def call(self, index: int, method: str, *args: Any) -> Any:
        return self._ray.get(getattr(self.actors[index], method).remote(*args))

    def wait_alive(self, index: int, timeout_s: float = 120.0) -> None:
        """Wait until a restarted actor answers again (its constructor reopened the bench)."""
        t0 = time.monotonic()
        while True:
            try:
                self._ray.get(self.actors[index].info.remote(), timeout=30)
                return
            except Exception as exc:  # noqa: BLE001
                if not self._is_lost(exc) and not isinstance(exc, self._ray.exceptions.GetTimeoutError):
                    raise
                if time.monotonic() - t0 > timeout_s:
                    raise ClusterError(self.address or "local", f"the actor of chip {index} did not come back ({exc})") from None
                time.sleep(0.5)

    def stop(self) -> None:
        ray = self._ray
        if ray is None:
            return
        for a in self.actors:
            try:
                ray.get(a.close.remote(), timeout=60)
            except Exception:  # noqa: BLE001 - every other bench must still be closed
                pass
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self.actors.clear()
        if self._started_here:
            ray.shutdown()
            self._started_here = False

    def describe(self) -> dict[str, Any]:
        nodes = []
        if self._ray is not None and self._ray.is_initialized():
            nodes = [n.get("NodeManagerAddress") for n in self._ray.nodes() if n.get("Alive")]
        return {"engine": "ray", "address": self.address, "nodes": nodes}


def make_engine(name: str, address: str | None = None, num_cpus: int | None = None) -> LocalEngine | RayEngine:
    """The engine called ``name`` (``local`` or ``ray``)."""
    if name not in ENGINES:
        raise ConfigError("--engine", name, f"one of {list(ENGINES)}")
    if name == "local":
        if address is not None:
            raise ConfigError("--ray-address", address, "only with --engine ray")
        return LocalEngine()
    return RayEngine(address, num_cpus)


__all__ = ["ENGINES", "LocalEngine", "RayEngine", "WorkerLost", "check_reachable", "loopback_environment", "loopback_ray", "make_engine"]
