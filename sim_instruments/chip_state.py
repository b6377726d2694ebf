"""Non-volatile simulated chips: each chip's mutable state lives in a memory-mapped file.

Why: a memristor chip keeps its conductances when the process that programmed it ends. A
simulator that kept them in process memory let a killed-and-resumed job report complete
while the chip it reopened was a fresh one. So a bench's chip (:class:`SimBench`) maps its
mutable arrays (conductance, relaxation, programming times, disturb counters, RTN state,
defect codes, clock and pulse/read counters) onto a per-chip file with a shared mapping:
every write lands in the OS page cache at once, so the state outlives the process, kill -9
included, with no flush on any hot path (the arrays are ordinary numpy arrays over the
mapping).

What is *not* stored: the device-to-device parameters (bounds, thresholds, kinetics, RTN
dwell times) and the noise pool, which are drawn again from the seed on every open exactly
as on the first (same seed, same draws), so the file holds only what changes.

Noise after a reopen: a chip opened *fresh* (no state file yet) is bit for bit the chip
``SimChip(rows, cols, technology, seed)`` builds. A *reopened* chip draws its noise from
``SeedSequence([seed, 0x5EED, open_count])``, ``open_count`` being stored in the file and
incremented on each reopen: the noise never repeats an earlier session's and is the same
for the same history, whether the last session closed cleanly or was killed.

The file name is the key: chip id, technology, size, seed and a hash of everything that
shapes the chip (device parameters including ``sim_params``, effects, bias and read
schemes), so a different chip never reuses another's state. A header holds the format
version and the layout; a mismatched or corrupt file is refused with a ConfigError naming
the file and ``memprog sim reset``.

One process at a time: the file is locked while open (``flock`` on POSIX, ``msvcrt`` on
Windows: the lock dies with the process, so a killed owner never blocks), and a second
process is refused with "simulated chip ID is in use by pid N". Inside one process the
chip object is shared by every bench that names it, as two clients share a lab.

Where: ``$MEMPROG_SIM_STATE_DIR``, else ``sim_chips`` in the user data directory
(platformdirs). ``MEMPROG_SIM_VOLATILE=1`` or :func:`volatile_chips` give in-memory chips
that vanish with the process (throw-away chips: Monte Carlo over fresh seeds, benchmarks).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import json
import mmap
import os
import stat
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from memprog.core.device_params import DeviceParams, Effects
from memprog.core.errors import ConfigError, InstrumentError
from memprog.core.presets import get_preset
from memprog.core.processes import process_alive
from memprog.sim_instruments.chip import STATE_ARRAYS, SimChip

# the file lock: flock on POSIX, msvcrt's byte-range lock on Windows (the lab's PCs)
if sys.platform == "win32":  # pragma: no cover - CI is Linux
    import msvcrt
else:
    import fcntl

FORMAT_VERSION = 1
MAGIC = b"MEMPROG-SIMCHIP\n"  # 16 bytes
HEADER_BYTES = 4096
_JSON_AT, _JSON_END = 16, 3072
_F64_AT, _N_F64 = 3072, 8  # 0: clock_s
_I64_AT, _N_I64 = 3136, 16
# int64 slots
PULSES, READS, OPENS, OWNER_PID, READY, CREATED_NS, LAST_OPEN_NS, LAST_CLOSE_NS = range(8)
_ALIGN = 64
SUFFIX = ".chip"
# the per-cell arrays stored are the chip's STATE_ARRAYS (chip.py: the chip knows what changes)
_LOCK_OFFSET = (1 << 31) - 2  # Windows: the byte locked, beyond any chip's data (4096² < 1 GB)


# ------------------------------------------------------------------------------ location, mode
def state_dir() -> Path:
    """Where chip state files live: ``$MEMPROG_SIM_STATE_DIR`` or the user data directory."""
    env = os.environ.get("MEMPROG_SIM_STATE_DIR", "").strip()
    if env:
        folder = Path(env).expanduser()
    else:
        folder = Path(platformdirs.user_data_dir("memprog")) / "sim_chips"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            "MEMPROG_SIM_STATE_DIR" if env else "simulated chip folder", str(folder),
            "a folder (or a path where one can be made)", "it is a file",
        )
    return folder


_VOLATILE = {"depth": 0}


def persistent() -> bool:
    """Whether benches get non-volatile chips now (not inside :func:`volatile_chips`, and
    ``MEMPROG_SIM_VOLATILE`` unset or 0)."""
    env = os.environ.get("MEMPROG_SIM_VOLATILE", "").strip()
    return _VOLATILE["depth"] == 0 and env in ("", "0")


@contextlib.contextmanager
def volatile_chips() -> Iterator[None]:
    """Benches opened inside get throw-away, in-memory chips (fresh from their seed, never
    stored): programmatic fresh chips such as K transfers onto K new seeds."""
    _VOLATILE["depth"] += 1
    try:
        yield
    finally:
        _VOLATILE["depth"] -= 1


# ------------------------------------------------------------------------------ identity
def params_digest(
    params: DeviceParams, effects: Effects, bias_scheme: str, read_scheme: str, chip_id: str = ""
) -> str:
    """Hash of everything that shapes a chip besides technology, size and seed (and of the
    full id, which the file name may shorten)."""
    doc = {
        "chip_id": chip_id,
        "params": params.model_dump(mode="json"),
        "effects": effects.model_dump(mode="json"),
        "bias_scheme": bias_scheme,
        "read_scheme": read_scheme,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in text)[:80] or "chip"


def chip_file_prefix(chip_id: str) -> str:
    """How every state file of chip ``chip_id`` begins (``memprog sim reset`` of a corrupt file)."""
    return _safe(chip_id) + "_"


def state_file_name(chip_id: str, technology: str, rows: int, cols: int, seed: int, digest: str) -> str:
    return f"{_safe(chip_id)}_{_safe(technology)}_{rows}x{cols}_seed{seed}_{digest[:12]}{SUFFIX}"


def _layout(n: int) -> tuple[list[tuple[str, str, tuple[int, ...], int]], int]:
    """(name, dtype, shape, offset) of each state array and the file's total size."""
    out, at = [], HEADER_BYTES
    for name, dt, k in STATE_ARRAYS:
        shape = (n,) if k == 1 else (k, n)
        out.append((name, dt, shape, at))
        at += -(-np.dtype(dt).itemsize * k * n // _ALIGN) * _ALIGN
    return out, at


def state_file_bytes(rows: int, cols: int) -> int:
    """Size on disk of a rows x cols chip's state file."""
    return _layout(rows * cols)[1]


# ------------------------------------------------------------------------------ errors
class ChipInUseError(InstrumentError):
    """Another process holds the simulated chip (like a locked instrument)."""

    def __init__(self, chip_id: str, pid: int, path: Path) -> None:
        self.instrument, self.code, self.command = f"simulated chip {chip_id}", 0, ""
        self.pid, self.path = pid, path
        who = f"pid {pid}" if pid > 0 else "another process"
        self.message = (
            f"simulated chip {chip_id} is in use by {who} (state file {path}); "
            "let that run finish or stop it, then open the bench again"
        )
        Exception.__init__(self, self.message)


def _refuse(path: Path, problem: str, chip_id: str) -> ConfigError:
    return ConfigError(
        "simulated chip state file",
        str(path),
        f"a memprog chip state of format {FORMAT_VERSION} for this chip",
        f"{problem}; run `memprog sim reset {chip_id}` (or delete the file) to start from a fresh chip",
    )


# ------------------------------------------------------------------------------ locking
def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - the lab's Windows PCs; CI is Linux
        os.lseek(fd, _LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    try:
        if sys.platform == "win32":  # pragma: no cover
            os.lseek(fd, _LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        pass


def _reserve(fd: int, total: int, path: Path) -> None:
    """Allocate the file's blocks now: a write into a mapped hole on a full disk would kill
    the process (SIGBUS) in the middle of a run instead of refusing it here."""
    if not hasattr(os, "posix_fallocate"):  # pragma: no cover - Windows, macOS
        return
    try:
        os.posix_fallocate(fd, 0, total)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return  # the file system cannot reserve: the file stays sparse
        raise ConfigError(
            "MEMPROG_SIM_STATE_DIR", str(path.parent), f"room for a {total} byte chip state",
            f"{path.name}: {exc.strerror or exc}",
        ) from exc


def _read_header(fd: int) -> tuple[bytes, dict[str, Any] | None, np.ndarray]:
    """Magic, the JSON identity (None if unreadable) and the int64 slots, by plain reads."""
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, HEADER_BYTES)
    raw = raw.ljust(HEADER_BYTES, b"\0")
    ident = None
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        ident = json.loads(raw[_JSON_AT:_JSON_END].rstrip(b"\0").decode())
    return raw[:16], ident if isinstance(ident, dict) else None, np.frombuffer(raw, "<i8", _N_I64, _I64_AT).copy()


def _cleanup(fd: int, mm: mmap.mmap) -> None:
    """Release a state file (explicit close or garbage collection): unlock first, since the
    mapping holds a duplicate of the descriptor that would otherwise keep the lock."""
    _unlock(fd)
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(BufferError, ValueError):
        mm.close()  # refused while arrays still view it; the GC closes it with them


class ChipStateFile:
    """One open, locked, mapped chip state file."""

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity
        self.chip_id = identity["chip_id"]
        self.users = 1
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        except OSError as exc:
            raise ConfigError(
                "MEMPROG_SIM_STATE_DIR", str(path.parent), "a folder where simulated chips can be stored",
                f"cannot open {path.name}: {exc.strerror or exc}",
            ) from exc
        try:
            if not _try_lock(fd):
                _, _, slots = _read_header(fd)
                raise ChipInUseError(self.chip_id, int(slots[OWNER_PID]), path)
            self.fresh = self._check(fd)
            layout, total = _layout(identity["rows"] * identity["cols"])
            if self.fresh:
                os.ftruncate(fd, 0)
                os.ftruncate(fd, total)
                _reserve(fd, total, path)
            self.mm = mmap.mmap(fd, total, access=mmap.ACCESS_WRITE)
        except BaseException:
            _unlock(fd)
            os.close(fd)
            raise
        self.fd = fd
        self._finalizer = weakref.finalize(self, _cleanup, fd, self.mm)
        self.f64 = np.frombuffer(self.mm, "<f8", _N_F64, _F64_AT)
        self.i64 = np.frombuffer(self.mm, "<i8", _N_I64, _I64_AT)
        # the chip's clock and pulse/read counters, as memoryviews (Python scalars per item)
        raw = memoryview(self.mm)
        self.clock_view = raw[_F64_AT : _F64_AT + 8].cast("d")
        self.count_view = raw[_I64_AT + 8 * PULSES : _I64_AT + 8 * (READS + 1)].cast("q")
        raw.release()
        self.arrays = {
            name: np.frombuffer(self.mm, dt, int(np.prod(shape)), off).reshape(shape)
            for name, dt, shape, off in layout
        }
        if self.fresh:
            body = json.dumps({**identity, "layout": [list(x) for x in layout], "bytes": total}).encode()
            self.mm[_JSON_AT : _JSON_AT + len(body)] = body
            self.mm[:16] = MAGIC
            self.i64[CREATED_NS] = time.time_ns()
        else:
            self.i64[OPENS] += 1
        self.i64[OWNER_PID] = os.getpid()
        self.i64[LAST_OPEN_NS] = time.time_ns()

    def _check(self, fd: int) -> bool:
        """True when the file holds no chip yet (new, or killed while being created);
        ConfigError when it holds something else than this chip's state."""
        size = os.fstat(fd).st_size
        if size == 0:
            return True
        magic, ident, slots = _read_header(fd)
        if magic == b"\0" * 16 or (magic == MAGIC and slots[READY] == 0):
            return True
        cid = self.chip_id
        if magic != MAGIC or ident is None:
            raise _refuse(self.path, "the file is not a memprog chip state (corrupt header)", cid)
        if ident.get("format") != FORMAT_VERSION:
            raise _refuse(self.path, f"it was written in format {ident.get('format')!r}", cid)
        for key in ("chip_id", "technology", "rows", "cols", "seed", "params_sha256"):
            if ident.get(key) != self.identity[key]:
                raise _refuse(
                    self.path, f"it holds {key}={ident.get(key)!r}, this chip has {self.identity[key]!r}", cid
                )
        total = _layout(self.identity["rows"] * self.identity["cols"])[1]
        if size != total or ident.get("bytes") != total:
            raise _refuse(self.path, f"it is {size} bytes, a chip of this size takes {total}", cid)
        return False

    @property
    def open_count(self) -> int:
        """How many times the file was reopened (0 for a fresh one): seeds the chip's noise."""
        return int(self.i64[OPENS])

    def mark_ready(self) -> None:
        self.i64[READY] = 1

    def close(self) -> None:
        """Unlock and unmap; the state stays in the file."""
        if not self._finalizer.alive:
            return
        self.i64[OWNER_PID] = 0
        self.i64[LAST_CLOSE_NS] = time.time_ns()
        self.f64 = self.i64 = None  # type: ignore[assignment]
        for view in (self.clock_view, self.count_view):
            view.release()
        self.arrays = {}
        self._finalizer()


# ------------------------------------------------------------------------------ opening chips
_OPEN: dict[str, weakref.ref] = {}
_OPEN_LOCK = threading.RLock()


def open_chip(
    rows: int,
    cols: int,
    technology: str | DeviceParams,
    seed: int,
    chip_id: str,
    *,
    technology_name: str | None = None,
    effects: Effects | None = None,
    bias_scheme: str = "v3",
    read_scheme: str = "ground",
) -> SimChip:
    """The chip ``chip_id`` with its stored state (a fresh one the first time).

    Volatile mode (:func:`persistent` false) returns a plain in-memory chip. Within one
    process every caller naming the same chip shares one object; release each with
    :func:`release_chip`. Raises :class:`ChipInUseError` when another process holds it.
    """

    def build() -> SimChip:
        return SimChip(
            rows, cols, technology, seed=seed, effects=effects,
            bias_scheme=bias_scheme, read_scheme=read_scheme,  # type: ignore[arg-type]
        )

    if not persistent():
        return build()
    params = get_preset(technology) if isinstance(technology, str) else technology
    if not isinstance(params, DeviceParams):
        raise ConfigError("technology", technology, "a preset name or DeviceParams")
    if len(chip_id) > 1000:  # the state file's header records it
        raise ConfigError("chip.id", f"{chip_id[:40]}... ({len(chip_id)} characters)", "at most 1000 characters")
    tech = technology_name or (technology if isinstance(technology, str) else "custom")
    digest = params_digest(params, effects or Effects(), bias_scheme, read_scheme, chip_id)
    path = state_dir() / state_file_name(chip_id, tech, int(rows), int(cols), int(seed), digest)
    identity = {
        "format": FORMAT_VERSION, "chip_id": chip_id, "technology": tech, "rows": int(rows),
        "cols": int(cols), "seed": int(seed), "params_sha256": digest,
        "bias_scheme": bias_scheme, "read_scheme": read_scheme,
    }
    key = str(path.resolve())
    with _OPEN_LOCK:
        ref = _OPEN.get(key)
        chip = ref() if ref is not None else None
        if chip is not None and chip._state_file is not None:
            chip._state_file.users += 1
            return chip
        try:
            state = ChipStateFile(path, identity)
        except ChipInUseError as exc:
            if exc.pid != os.getpid():
                raise
            gc.collect()  # an unreachable chip of this process not yet collected holds the lock
            state = ChipStateFile(path, identity)
        try:
            chip = build()
            chip._bind_state(state, reopened=not state.fresh)
            state.mark_ready()
        except BaseException:
            state.close()
            raise
        _OPEN[key] = weakref.ref(chip)
        return chip


def release_chip(chip: SimChip) -> None:
    """One user less; the last one unmaps the file (the chip keeps working, in memory)."""
    state = getattr(chip, "_state_file", None)
    if state is None:
        return
    with _OPEN_LOCK:
        state.users -= 1
        if state.users > 0:
            return
        chip._unbind_state()
        _OPEN.pop(str(state.path.resolve()), None)
        state.close()


# ------------------------------------------------------------------------------ listing, reset
def list_chips(folder: Path | None = None) -> list[dict[str, Any]]:
    """Every chip state file in ``folder`` (default :func:`state_dir`), read without locking."""
    folder = state_dir() if folder is None else folder
    out: list[dict[str, Any]] = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            out.append(_describe(path, process_alive))
        except (OSError, ValueError, KeyError, TypeError, MemoryError) as exc:
            # one unreadable entry (a dangling link, a folder, a damaged header) is listed as
            # such; it never hides the other chips or stops `sim reset --all`
            out.append({"file": str(path), "chip_id": None, "size_bytes": None,
                        "problem": f"unreadable ({type(exc).__name__}); remove the file by hand"})
    return out


def _describe(path: Path, process_alive: Any) -> dict[str, Any]:
    """One chip state file, read without locking; refuses what is not a plain file."""
    st = os.stat(path)  # follows a link: a dangling one raises here
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block an open, a folder cannot be read
        return {"file": str(path), "chip_id": None, "size_bytes": None, "problem": "not a regular file"}
    row: dict[str, Any] = {"file": str(path), "size_bytes": st.st_size}
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        magic, ident, slots = _read_header(fd)
        if magic != MAGIC or ident is None or ident.get("format") != FORMAT_VERSION:
            return {**row, "chip_id": None, "problem": "not a chip state of this format (reset it)"}
        rows, cols = int(ident["rows"]), int(ident["cols"])
        if not (0 < rows <= 4096 and 0 < cols <= 4096):
            return {**row, "chip_id": None, "problem": "a header naming an impossible size (reset it)"}
        n = rows * cols
        mean_g = None
        if slots[READY] and st.st_size >= HEADER_BYTES + 8 * n:
            os.lseek(fd, HEADER_BYTES, os.SEEK_SET)
            g = np.frombuffer(os.read(fd, 8 * n), "<f8")
            mean_g = float(g.mean()) if g.size == n and np.isfinite(g).all() else None
        f64 = np.frombuffer(os.pread(fd, 8, _F64_AT) if hasattr(os, "pread") else _pread(fd, 8, _F64_AT), "<f8")
    finally:
        os.close(fd)
    pid = int(slots[OWNER_PID])
    pid = pid if pid and process_alive(pid) else None
    last = max(int(slots[LAST_OPEN_NS]), int(slots[LAST_CLOSE_NS]))
    return {
        **row,
        "chip_id": str(ident["chip_id"]),
        "technology": ident["technology"],
        "rows": rows,
        "cols": cols,
        "seed": ident["seed"],
        "last_used_unix_s": time.time() if pid else (last / 1e9 if last else None),
        "in_use_by_pid": pid,
        "pulses": int(slots[PULSES]),
        "reads": int(slots[READS]),
        "opens": int(slots[OPENS]) + 1,
        "clock_s": float(f64[0]),
        "mean_conductance_us": mean_g,
    }


def _pread(fd: int, n: int, at: int) -> bytes:  # pragma: no cover - Windows has no os.pread
    os.lseek(fd, at, os.SEEK_SET)
    return os.read(fd, n)


def reset_chip_file(path: Path) -> None:
    """Delete one chip state (the chip is fresh at its next open); refused while in use."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        if not _try_lock(fd):
            _, ident, slots = _read_header(fd)
            raise ChipInUseError((ident or {}).get("chip_id", path.stem), int(slots[OWNER_PID]), path)
        if sys.platform != "win32":  # unlinked under the lock: no process can open it meanwhile
            try:
                path.unlink()
            finally:
                _unlock(fd)
        else:  # pragma: no cover
            _unlock(fd)
    finally:
        os.close(fd)
    if sys.platform == "win32":  # pragma: no cover - an open file cannot be deleted there
        path.unlink()


__all__ = [
    "ChipInUseError",
    "ChipStateFile",
    "chip_file_prefix",
    "list_chips",
    "open_chip",
    "persistent",
    "release_chip",
    "reset_chip_file",
    "state_dir",
    "state_file_bytes",
    "volatile_chips",
]
