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
"""

from __future__ import annotations

import ctypes
import json
import socket
import threading
from ctypes import CFUNCTYPE, POINTER, c_char, c_char_p, c_double, c_int
from typing import Any

from memprog.errors import ConfigError

from .wgfmu_library import _FUNCTIONS, LIBRARY_ERROR, SimWgfmuLibrary

_PI, _PD, _PC, _PPC = POINTER(c_int), POINTER(c_double), POINTER(c_char), POINTER(c_char_p)

#: pointer arguments that are arrays: function -> {arg index: ("n", index of the int count)
#: or ("size", index of the int pointer holding the count)}
_ARRAYS: dict[str, dict[int, tuple[str, int]]] = {
    "WGFMU_getChannelIds": {0: ("size", 1)},
    "WGFMU_getMeasureValues": {3: ("size", 2), 4: ("size", 2)},
    "WGFMU_addVectors": {1: ("n", 3), 2: ("n", 3)},
    "WGFMU_addSequences": {1: ("n", 3), 2: ("n", 3)},
}


def _length(name: str, index: int, args: tuple) -> int:
    spec = _ARRAYS.get(name, {}).get(index)
    if spec is None:
        return 1
    kind, k = spec
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
        for name, (argtypes, _impl) in _FUNCTIONS.items():
            fn = CFUNCTYPE(c_int, *argtypes)(self._caller(name, argtypes))
            setattr(self, name, fn)

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._sock.close()

    def _caller(self, name: str, argtypes: tuple) -> Any:
        def call(*args: Any) -> int:
            try:
                return self._call(name, argtypes, args)
            except Exception:  # noqa: BLE001 - a C library never raises
                return LIBRARY_ERROR

        return call

    def _call(self, name: str, argtypes: tuple, args: tuple) -> int:
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
            if t is _PC:
                data = out.encode("latin-1")
                ctypes.memmove(a, data, len(data))
            else:
                for j, v in enumerate(out):
                    a[j] = v
        return int(reply["rc"])


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
        msg = json.loads(line)
        name = msg["f"]
        argtypes = _FUNCTIONS[name][0]
        args: list[Any] = []
        keep: dict[int, Any] = {}
        for i, (t, w) in enumerate(zip(argtypes, msg["a"], strict=True)):
            if w is None:
                args.append(None)
            elif t is _PC:
                buf = ctypes.create_string_buffer(max(int(w["c"]), 1))
                keep[i] = (buf, int(w["c"]))
                args.append(ctypes.cast(buf, _PC))
            elif t is _PPC:
                arr = (c_char_p * max(len(w["s"]), 1))(*[None if s is None else s.encode("latin-1") for s in w["s"]])
                args.append(ctypes.cast(arr, _PPC))
            elif t in (_PI, _PD):
                ctype = c_int if t is _PI else c_double
                arr = (ctype * max(len(w["p"]), 1))(*w["p"])
                keep[i] = (arr, len(w["p"]))
                args.append(ctypes.cast(arr, t))
            elif t is c_char_p:
                text = w["b"]
                if name == "WGFMU_openSession":
                    text = self.address  # the served socket stands for the mainframe's address
                args.append(text.encode("latin-1"))
            else:
                args.append(w)
        with self.lock:
            rc = int(getattr(self.lib, name)(*args))
        out: dict[str, Any] = {}
        for i, (obj, n) in keep.items():
            if argtypes[i] is _PC:
                out[str(i)] = obj.raw[:n].decode("latin-1")
            else:
                out[str(i)] = list(obj[:n])
        return json.dumps({"rc": rc, "out": out}).encode() + b"\n"


__all__ = ["RemoteWgfmuLibrary", "WgfmuLibraryService"]
