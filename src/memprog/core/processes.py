"""Whether a process still lives on this host, portably (POSIX and the lab's Windows PCs).

Ground floor because both the store (is a ``running`` run still running?) and the simulator
(is a stored chip still in use?) ask it.
"""

from __future__ import annotations

import ctypes
import os
import sys


def process_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists on this host (this process counts as alive).

    POSIX: signal 0 (nothing is sent). Windows, where ``os.kill`` would terminate the
    process instead: ``OpenProcess`` + ``GetExitCodeProcess``.
    """
    if not pid:
        return False
    if int(pid) == os.getpid():
        return True
    if sys.platform == "win32":  # pragma: no cover - the lab's B1500 PCs; CI is Linux
        return _windows_process_alive(int(pid))
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # exists under another user (EPERM), or cannot be judged: leave it be
    return True


def _windows_process_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    k32 = ctypes.WinDLL("kernel32", use_last_error=True)
    handle = k32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: it exists
    try:
        code = ctypes.c_ulong()
        return bool(k32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259
    finally:
        k32.CloseHandle(handle)  # 259 above: STILL_ACTIVE
