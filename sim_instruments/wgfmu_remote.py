"""The simulated WGFMU instrument library across a socket, for ``memprog sim serve``.

Keysight's WGFMU library is a C library on the PC that talks to the B1500A itself; it has
no LAN protocol of its own that a server could speak. So when a bench is served, the
library's *calls* cross the socket instead: :class:`RemoteWgfmuLibrary` (client side) is an
object whose attributes are ctypes function pointers with the prototypes of ``wgfmu.h``
(the driver cannot tell it from ``wgfmu.dll`` or :class:`SimWgfmuLibrary`); each call
marshals its arguments (values, input arrays, the contents of in/out pointers) as one JSON
line to :class:`WgfmuLibraryService` (server side), which runs the simulated library on
the served bench's chip and sends back the return code and every pointer's new contents.

A bench file reaches it with ``library: "tcp://127.0.0.1:PORT"`` on its wgfmu instrument
(``memprog sim serve --write-bench`` writes it).

The service trusts nothing a client sends: a call line is decoded into ctypes arguments
only after every value has the type its C prototype needs, every array and string
buffer is within the caps of :mod:`.wgfmu_codes` (checked *before* anything is
allocated) and every count fits the array it describes. A call that fails these checks,
an unknown function or a line that is not a call gets one reply line with a
``wgfmu.h`` error code and the reason (``{"rc": -1, "out": {}, "error": ...}``), is
queued for ``WGFMU_getError`` like any library error, and the connection stays open.
A line longer than :data:`LINE_CAP_BYTES` is refused by the server (``tcp_server``).
"""

from __future__ import annotations

import ctypes
import json
import socket
import threading
from ctypes import POINTER, c_char, c_char_p, c_double, c_int
from typing import Any

from memprog.core.errors import ConfigError, MemprogError, ProtocolError
from memprog.sim_instruments.wgfmu_call_checks import SIZED, arg_name, checked_cfunction
from memprog.sim_instruments.wgfmu_codes import (
    FUNCTION_NOT_SUPPORTED_ERROR,
    LIBRARY_ERROR,
    MAX_STRING_BYTES,
    PARAMETER_OUT_OF_RANGE_ERROR,
)
from memprog.sim_instruments.wgfmu_library import _FUNCTIONS, SimWgfmuLibrary

_PI, _PD, _PC, _PPC = POINTER(c_int), POINTER(c_double), POINTER(c_char), POINTER(c_char_p)

#: longest call line the server reads (bytes, LF included). The biggest legitimate call is
#: an ``addVectors``: about 44 bytes of JSON per (dTime, voltage) pair, so 16 MiB carries
#: some 380,000 vectors in one call; a driver with more sends several ``addVectors``.
LINE_CAP_BYTES = 16 << 20
#: the client sends a longer ``addVectors`` as several calls of at most this many vectors
#: (appending is all addVectors does, so the pattern is the same), each well under the cap
ADD_VECTORS_CHUNK = 100_000
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def _length(name: str, index: int, args: tuple) -> int:
    spec = SIZED.get(name, {}).get(index)
    if spec is None:
        return 1
    kind, k, _cap = spec
    if kind == "n":
        return max(int(args[k]), 0)
    ptr = args[k]
    return max(int(ptr[0]), 0) if ptr else 0


def _string_size(args: tuple, index: int) -> int:
    """A char buffer's size: the int pointer that follows it."""
    for a in args[index + 1 :]:
        if isinstance(a, ctypes._Pointer) and a._type_ is c_int:  # noqa: SLF001
            return max(int(a[0]), 0) if a else 0
    return 0


class RemoteWgfmuLibrary:
    """Client of :class:`WgfmuLibraryService`: ``wgfmu.h``'s functions over a socket.

    Args:
        address: ``tcp://HOST:PORT`` (``memprog sim serve`` prints and writes it).
        timeout_s: socket timeout of one call.
    """

    def __init__(self, address: str, timeout_s: float = 30.0) -> None:
        if not address.startswith("tcp://") or ":" not in address[6:]:
            raise ConfigError("library", address, "tcp://HOST:PORT")
        host, port = address[6:].rsplit(":", 1)
        try:
            self._sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        except (OSError, ValueError) as exc:
            raise ConfigError("library", address, "a served WGFMU library (memprog sim serve)", str(exc)) from exc
        self._file = self._sock.makefile("rwb")
        self._lock = threading.Lock()
        self.address = address
        #: calls refused here, before anything was read from the caller's memory
        self.refused: list[str] = []
        for name, (argtypes, _impl) in _FUNCTIONS.items():
            setattr(self, name, checked_cfunction(name, argtypes, self._caller(name, argtypes), self._refuse(name)))

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._sock.close()

    def _refuse(self, name: str) -> Any:
        """A count beyond the caller's own buffer: the client must not read past it either."""

        def refuse(problem: str) -> int:
            self.refused.append(f"{name}: {problem}")
            del self.refused[:-100]
            return PARAMETER_OUT_OF_RANGE_ERROR

        return refuse

    def _caller(self, name: str, argtypes: tuple) -> Any:
        def call(*args: Any) -> int:
            try:
                return self._call(name, argtypes, args)
            except Exception:  # noqa: BLE001 - a C library never raises
                return LIBRARY_ERROR

        return call

    def _call(self, name: str, argtypes: tuple, args: tuple) -> int:
        n = args[3] if name == "WGFMU_addVectors" else 0
        if isinstance(n, int) and n > ADD_VECTORS_CHUNK and args[1] and args[2]:
            for k in range(0, n, ADD_VECTORS_CHUNK):
                part = (args[0], _offset(args[1], k), _offset(args[2], k), min(ADD_VECTORS_CHUNK, n - k))
                rc = self._call(name, argtypes, part)
                if rc != 0:
                    return rc
            return 0
        wire: list[Any] = []
        for i, (t, a) in enumerate(zip(argtypes, args, strict=True)):
            if t is _PC:
                wire.append({"c": _string_size(args, i)} if a else None)
            elif t is _PPC:
                n = _length(name, i, args)
                wire.append({"s": [a[k].decode("latin-1") if a[k] else None for k in range(n)]} if a else None)
            elif t in (_PI, _PD):
                n = _length(name, i, args)
                wire.append({"p": [a[k] for k in range(n)]} if a else None)
            elif t is c_char_p:
                wire.append(None if a is None else {"b": a.decode("latin-1")})
            else:
                wire.append(a)
        with self._lock:
            self._file.write(json.dumps({"f": name, "a": wire}).encode() + b"\n")
            self._file.flush()
            reply = json.loads(self._file.readline())
        for i, out in reply.get("out", {}).items():
            k, a = int(i), args[int(i)]
            t = argtypes[k]
            sent = wire[k]
            if not a or not isinstance(sent, dict):
                continue
            if t is _PC:  # never more than the buffer the caller described
                data = out.encode("latin-1")[: int(sent["c"])]
                ctypes.memmove(a, data, len(data))
            else:
                for j, v in enumerate(out[: len(sent["p"])]):
                    a[j] = v
        return int(reply["rc"])


def _offset(ptr: Any, k: int) -> Any:
    """``ptr + k`` for a double pointer (a chunk of the caller's array, no copy)."""
    return ctypes.cast(ctypes.addressof(ptr.contents) + k * ctypes.sizeof(c_double), _PD)


class WgfmuLibraryService:
    """Server side: runs :class:`SimWgfmuLibrary` calls received from remote clients.

    Args:
        bench: the served simulated bench.
        lock: the server's bench lock (one chip).
        address: the B1500A's resource on the bench; ``WGFMU_openSession`` from a client
            (which names the served socket) opens on it.
    """

    def __init__(self, bench: Any, lock: threading.Lock, address: str) -> None:
        self.lib = SimWgfmuLibrary(bench)
        self.lock = lock
        self.address = address

    def handle_line(self, line: bytes) -> bytes:
        """One reply line for one call line; never raises (a bad call gets an error reply)."""
        try:
            name, args, keep = self.decode(line)
        except MemprogError as exc:
            fn = exc.function if isinstance(exc, _CallError) else ""
            code = exc.code if isinstance(exc, _CallError) else LIBRARY_ERROR
            with self.lock:
                self.lib._record(fn or "WGFMU server", str(exc))  # noqa: SLF001 - getError shows it
            kind = "ConfigError" if isinstance(exc, ConfigError) else type(exc).__name__
            return _reply({"rc": code, "out": {}, "error": str(exc), "type": kind})
        argtypes = _FUNCTIONS[name][0]
        with self.lock:
            rc = int(getattr(self.lib, name)(*args))
        out: dict[str, Any] = {}
        for i, (obj, n) in keep.items():
            if argtypes[i] is _PC:  # the text the library wrote, up to its NUL
                raw = obj.raw[:n]
                end = raw.find(b"\0")
                out[str(i)] = (raw if end < 0 else raw[: end + 1]).decode("latin-1")
            else:
                out[str(i)] = list(obj[:n])
        return _reply({"rc": rc, "out": out})

    def line_too_long(self, cap: int) -> bytes:
        """The reply to a call line over ``cap`` bytes (the server then closes the link)."""
        text = f"call line over {cap} bytes refused (allowed: at most {cap})"
        with self.lock:
            self.lib._record("WGFMU server", text)  # noqa: SLF001
        return _reply({"rc": PARAMETER_OUT_OF_RANGE_ERROR, "out": {}, "error": text, "type": "ConfigError"})

    def decode(self, line: bytes) -> tuple[str, list[Any], dict[int, Any]]:
        """(function name, ctypes arguments, out-buffers to send back) of one call line.

        Raises ProtocolError for a line that is not a call and ConfigError (with the
        ``wgfmu.h`` code the library would return) for a call it must refuse; every
        check runs before any buffer is allocated.
        """
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ProtocolError('one JSON call line {"f": NAME, "a": [ARGS]}', _clip(line), "WGFMU server") from exc
        if not isinstance(msg, dict) or not isinstance(msg.get("f"), str) or not isinstance(msg.get("a"), list):
            raise ProtocolError('a JSON object {"f": NAME, "a": [ARGS]}', _clip(line), "WGFMU server")
        name, wire = msg["f"], msg["a"]
        if name not in _FUNCTIONS:
            raise _CallError("", FUNCTION_NOT_SUPPORTED_ERROR, "f", _clip(name), "a function of wgfmu.h")
        argtypes = _FUNCTIONS[name][0]
        if len(wire) != len(argtypes):
            raise _CallError(name, PARAMETER_OUT_OF_RANGE_ERROR, "a", f"{len(wire)} arguments", f"{len(argtypes)}")
        for i, (t, w) in enumerate(zip(argtypes, wire, strict=True)):
            _check_wire(name, i, t, w)
        _check_counts(name, argtypes, wire)
        args: list[Any] = []
        keep: dict[int, Any] = {}
        for i, (t, w) in enumerate(zip(argtypes, wire, strict=True)):
            if w is None:
                args.append(None)
            elif t is _PC:
                buf = ctypes.create_string_buffer(max(w["c"], 1))
                keep[i] = (buf, w["c"])
                args.append(buf)
            elif t is _PPC:
                arr = (c_char_p * max(len(w["s"]), 1))(*[None if x is None else x.encode("latin-1") for x in w["s"]])
                args.append(arr)
            elif t in (_PI, _PD):
                ctype = c_int if t is _PI else c_double
                arr = (ctype * max(len(w["p"]), 1))(*w["p"])
                keep[i] = (arr, len(w["p"]))
                args.append(arr)
            elif t is c_char_p:
                text = w["b"]
                if name == "WGFMU_openSession":
                    text = self.address  # the served socket stands for the mainframe's address
                args.append(text.encode("latin-1"))
            else:
                args.append(w)
        return name, args, keep


class _CallError(ConfigError):
    """A call the service refuses: carries the function and the ``wgfmu.h`` code to return."""

    def __init__(self, function: str, code: int, parameter: str, value: Any, allowed: str) -> None:
        self.function = function
        self.code = code
        where = f"{function} " if function else ""
        super().__init__(f"{where}{parameter}", value, allowed)


def _reply(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode() + b"\n"


def _clip(x: Any, n: int = 80) -> Any:
    """A value short enough for an error text (a client's value can be megabytes long)."""
    if isinstance(x, bytes | str) and len(x) > n:
        return x[:n] + (b"..." if isinstance(x, bytes) else "...")
    return x


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    """A JSON number a C double can hold (a 400-digit int cannot: ctypes would raise)."""
    return isinstance(x, float) or (_is_int(x) and abs(x) <= 1e308)


def _check_wire(name: str, i: int, t: Any, w: Any) -> None:
    """Refuse argument ``i`` unless it has the wire form of its C type (and is within caps)."""
    spec = SIZED.get(name, {}).get(i)
    cap = spec[2] if spec else 1

    def bad(value: Any, allowed: str) -> _CallError:
        return _CallError(name, PARAMETER_OUT_OF_RANGE_ERROR, arg_name(name, i), _clip(value), allowed)

    if t is c_int:
        if not _is_int(w) or not INT_MIN <= w <= INT_MAX:
            raise bad(w, f"an int in [{INT_MIN}, {INT_MAX}]")
    elif t is c_double:
        if not _is_num(w):
            raise bad(w, "a number")
    elif w is None:
        return  # a NULL pointer: the library reports it where it matters
    elif t is c_char_p:
        if not (isinstance(w, dict) and isinstance(w.get("b"), str)) or len(w["b"]) > MAX_STRING_BYTES:
            raise bad(w, f'{{"b": a string of at most {MAX_STRING_BYTES} characters}} or null')
        if any(ord(c) > 255 for c in w["b"]):
            raise bad(w["b"], "latin-1 characters")
    elif t is _PC:
        c = w.get("c") if isinstance(w, dict) else None
        if not _is_int(c) or not 0 <= c <= MAX_STRING_BYTES:
            raise bad(w, f'{{"c": a buffer size in [0, {MAX_STRING_BYTES}]}} or null')
    elif t is _PPC:
        v = w.get("s") if isinstance(w, dict) else None
        if not isinstance(v, list) or len(v) > cap or not all(x is None or isinstance(x, str) for x in v):
            raise bad(w, f'{{"s": a list of at most {cap} strings}} or null')
        if any(len(x) > MAX_STRING_BYTES or any(ord(c) > 255 for c in x) for x in v if x is not None):
            raise bad(w, f"latin-1 strings of at most {MAX_STRING_BYTES} characters")
    elif t in (_PI, _PD):
        v = w.get("p") if isinstance(w, dict) else None
        ok = _is_int if t is _PI else _is_num
        if not isinstance(v, list) or not 1 <= len(v) <= max(cap, 1) or not all(ok(x) for x in v):
            kind = "ints" if t is _PI else "numbers"
            raise bad(w, f'{{"p": a list of 1 to {max(cap, 1)} {kind}}} or null')
        if t is _PI and not all(INT_MIN <= x <= INT_MAX for x in v):
            raise bad(w, f"ints in [{INT_MIN}, {INT_MAX}]")
    else:  # pragma: no cover - every prototype type is listed above
        raise bad(w, "a supported argument type")


def _check_counts(name: str, argtypes: tuple, wire: list[Any]) -> None:
    """Every count must fit the array (or string buffer) it describes, as sent."""
    for i, (kind, k, cap) in SIZED.get(name, {}).items():
        w = wire[i]
        if w is None:
            continue
        if kind == "n":
            count = wire[k]
        else:
            ptr = wire[k]
            if ptr is None:
                continue
            count = ptr["p"][0]
        held = w["c"] if argtypes[i] is _PC else len(w["s"] if argtypes[i] is _PPC else w["p"])
        if not 0 <= count <= min(cap, held):
            what = ("" if kind == "n" else "*") + arg_name(name, k)
            raise _CallError(
                name, PARAMETER_OUT_OF_RANGE_ERROR, what, count,
                f"0-{min(cap, held)}, the length of {arg_name(name, i)} as sent",
            )


__all__ = ["RemoteWgfmuLibrary", "WgfmuLibraryService", "LINE_CAP_BYTES"]
