"""Size checks of the simulated WGFMU library's C-call surface, before any memory is touched.

Why a module of its own: a C library must trust the sizes it is given; a simulator that
does the same can be crashed by one wrong count (a segfault on ``addVectors`` with a count
beyond its arrays, a heap overflow on ``getErrorSummary`` with a size beyond its buffer),
and ``memprog sim serve`` hands these calls to any client. So every size or count argument
is checked against the buffer it describes (ctypes arrays, ``byref``, ``pointer``, ``cast``
and numpy ``data_as`` pointers carry their length; a bare address cannot be checked) and
against a cap (:data:`.wgfmu_codes.MAX_VECTORS` values, :data:`.wgfmu_codes.MAX_STRING_BYTES`
bytes, ...) before the call runs; a violation returns
``WGFMU_PARAMETER_OUT_OF_RANGE_ERROR`` with a text that names the argument, its value and
the allowed range. Both the in-process library (:mod:`.wgfmu_library`) and the served one
(:mod:`.wgfmu_remote`) wrap their functions with :func:`checked_cfunction`, so the two
check the same way.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from ctypes import CFUNCTYPE, c_int
from typing import Any

from memprog.sim_instruments.wgfmu_codes import (
    MAX_CHANNEL_IDS,
    MAX_SEQUENCE_ENTRIES,
    MAX_STRING_BYTES,
    MAX_VECTORS,
)

# ---------------------------------------------------------------- sizes of pointer arguments
#: pointer arguments that are arrays or string buffers: function -> {argument index:
#: (how its length is given, index of that argument, cap)}. "n": an int argument holds the
#: count; "size": an int pointer holds it (for a string buffer: its size in bytes, NUL
#: included). Shared with the served boundary (:mod:`.wgfmu_remote`).
SIZED: dict[str, dict[int, tuple[str, int, int]]] = {
    "WGFMU_doSelfCalibration": {1: ("size", 2, MAX_STRING_BYTES)},
    "WGFMU_doSelfTest": {1: ("size", 2, MAX_STRING_BYTES)},
    "WGFMU_getChannelIds": {0: ("size", 1, MAX_CHANNEL_IDS)},
    "WGFMU_getError": {0: ("size", 1, MAX_STRING_BYTES)},
    "WGFMU_getErrorSummary": {0: ("size", 1, MAX_STRING_BYTES)},
    "WGFMU_getWarningSummary": {0: ("size", 1, MAX_STRING_BYTES)},
    "WGFMU_addVectors": {1: ("n", 3, MAX_VECTORS), 2: ("n", 3, MAX_VECTORS)},
    "WGFMU_addSequences": {1: ("n", 3, MAX_SEQUENCE_ENTRIES), 2: ("n", 3, MAX_SEQUENCE_ENTRIES)},
    "WGFMU_getMeasureValues": {3: ("size", 2, MAX_VECTORS), 4: ("size", 2, MAX_VECTORS)},
}

#: ``wgfmu.h`` parameter names of the sized functions (for the error texts)
ARG_NAMES: dict[str, tuple[str, ...]] = {
    "WGFMU_doSelfCalibration": ("result", "detail", "size"),
    "WGFMU_doSelfTest": ("result", "detail", "size"),
    "WGFMU_getChannelIds": ("channelIds", "size"),
    "WGFMU_getError": ("error", "size"),
    "WGFMU_getErrorSummary": ("errorSummary", "size"),
    "WGFMU_getWarningSummary": ("warningSummary", "size"),
    "WGFMU_addVectors": ("patternName", "dTime", "voltage", "size"),
    "WGFMU_addSequences": ("chanId", "patternName", "loopCount", "size"),
    "WGFMU_getMeasureValues": ("chanId", "offset", "size", "time", "value"),
}


def arg_name(name: str, i: int) -> str:
    """The ``wgfmu.h`` name of argument ``i`` of ``name`` (``argument i`` if not listed)."""
    names = ARG_NAMES.get(name, ())
    return names[i] if i < len(names) else f"argument {i}"


def _capacity(arg: Any, elem: Any) -> int | None:
    """How many ``elem`` values the memory behind a pointer argument holds (None: unknown).

    ctypes arrays and instances know their size; ``byref``/``pointer``/``cast`` keep the
    object they point into; numpy's ``data_as`` keeps its array as ``_arr``. A pointer made
    from a bare address carries nothing, and only the caps protect it.
    """
    size = ctypes.sizeof(elem)
    if arg is None:
        return 0
    if isinstance(arg, ctypes.Array | ctypes._SimpleCData):  # noqa: SLF001
        return ctypes.sizeof(arg) // size
    if type(arg).__name__ == "CArgObject":  # byref(obj)
        obj = getattr(arg, "_obj", None)
        return ctypes.sizeof(obj) // size if obj is not None else None
    if isinstance(arg, ctypes._Pointer):  # noqa: SLF001
        if not arg:
            return 0
        arr = getattr(arg, "_arr", None)  # numpy ndarray.ctypes.data_as
        if arr is not None and hasattr(arr, "nbytes"):
            return int(arr.nbytes) // size
        objs = getattr(arg, "_objects", None)
        if isinstance(objs, dict) and len(objs) == 1:
            (obj,) = objs.values()
            if isinstance(obj, ctypes.Array) or (
                isinstance(obj, ctypes._SimpleCData) and not isinstance(obj, ctypes.c_void_p)  # noqa: SLF001
            ):
                return ctypes.sizeof(obj) // size
    return None


def _int_at(arg: Any) -> int | None:
    """The int an int-pointer argument points to (None: NULL or not readable here)."""
    if arg is None:
        return None
    if type(arg).__name__ == "CArgObject":
        arg = getattr(arg, "_obj", None)
    if isinstance(arg, ctypes._SimpleCData):  # noqa: SLF001
        return int(arg.value)
    if isinstance(arg, ctypes.Array | ctypes._Pointer) and (len(arg) if isinstance(arg, ctypes.Array) else bool(arg)):  # noqa: SLF001
        return int(arg[0])
    return None


def size_problem(name: str, argtypes: tuple[Any, ...], args: tuple[Any, ...]) -> str | None:
    """Why the sizes of a call are unsafe (None: safe), before anything is read or written.

    Every sized pointer's count must be 0..cap and fit the memory it describes; every
    other pointer must have room for one value.
    """
    if len(args) != len(argtypes):
        return None  # ctypes itself refuses a wrong argument count
    sized = SIZED.get(name, {})
    for i, (t, a) in enumerate(zip(argtypes, args, strict=True)):
        if not (isinstance(t, type) and issubclass(t, ctypes._Pointer)):  # noqa: SLF001
            continue
        spec = sized.get(i)
        cap_known = _capacity(a, t._type_)
        if spec is None:
            if a is not None and cap_known is not None and cap_known < 1:
                return f"{arg_name(name, i)} has room for {cap_known} values (allowed: at least 1)"
            continue
        kind, k, cap = spec
        count = args[k] if kind == "n" else _int_at(args[k])
        if kind == "n" and not isinstance(count, int):
            return None  # ctypes refuses a non-int count itself
        if count is None:
            continue  # a NULL size pointer: the function reports it
        what = ("" if kind == "n" else "*") + arg_name(name, k)
        if not 0 <= count <= cap:
            return f"{what}={count} is not allowed (allowed: 0-{cap})"
        if a is not None and cap_known is not None and count > cap_known:
            return (
                f"{what}={count} is not allowed (allowed: 0-{cap_known}, "
                f"the length of {arg_name(name, i)})"
            )
    return None


def checked_cfunction(
    name: str, argtypes: tuple[Any, ...], call: Callable[..., int], refuse: Callable[[str], int]
) -> Any:
    """A ctypes function pointer to ``call`` that checks its sizes first (:func:`size_problem`).

    Still a ``CFUNCTYPE(c_int, *argtypes)`` pointer (same argument conversion as the real
    DLL), but its Python-side arguments, which still know their buffers' lengths, are
    checked before the call: by the time ``call`` runs they are bare addresses. A call
    with unsafe sizes returns ``refuse(reason)`` and touches no memory.
    """
    proto = CFUNCTYPE(c_int, *argtypes)

    class _Checked(proto):  # type: ignore[valid-type,misc]
        _flags_ = proto._flags_
        _argtypes_ = proto._argtypes_
        _restype_ = proto._restype_

        def __call__(self, *args: Any) -> int:
            try:
                problem = size_problem(name, argtypes, args)
            except Exception:  # noqa: BLE001 - let ctypes report what it cannot convert
                problem = None
            if problem is not None:
                return refuse(problem)
            return super().__call__(*args)

    fn = _Checked(call)
    fn.__name__ = name
    return fn
