"""A cross-process lock beside an SQLite store that leaves no file behind.

Why: two processes opening a new store at once must not both run Alembic's DDL (SQLite
runs it outside one transaction). A lock file orders them, but a ``<store>.lock`` left
beside every store is litter a user must not have to clean up (issue 20). So the holder
removes the file before releasing it, and a waiter that wakes on a file that is no longer
the one at the path (removed and perhaps re-created by a third process) starts over:
exactly one holder at a time, and nothing left once the last one leaves. A process killed
while holding it leaves the file; the next opener locks and removes it (a lock file holds
no state, only the OS lock, which dies with its process).

POSIX: ``fcntl.flock``; Windows: ``msvcrt.locking`` on the file's first byte, where a file
still open elsewhere cannot be removed: the last one out removes it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
try:  # Windows
    import msvcrt
except ImportError:
    msvcrt = None  # type: ignore[assignment]


def _lock(fh: IO[str]) -> None:
    if fcntl is not None:
        fcntl.flock(fh, fcntl.LOCK_EX)
        return
    while True:  # pragma: no cover - Windows: LK_LOCK gives up after 10 s, so retry
        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
            return
        except OSError:
            time.sleep(0.05)


def _unlock(fh: IO[str]) -> None:
    if fcntl is not None:
        fcntl.flock(fh, fcntl.LOCK_UN)
    else:  # pragma: no cover - Windows
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)


def _same_file(fh: IO[str], path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fh.fileno())
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


@contextmanager
def exclusive_beside(path: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` for the block; remove it after.

    A directory that cannot be written (a read-only share) has nothing to serialise
    with: the block runs unlocked, as before.
    """
    if fcntl is None and msvcrt is None:  # pragma: no cover
        yield
        return
    lock_path = f"{path}.lock"
    while True:
        try:
            fh = open(lock_path, "a")  # noqa: SIM115 - held for the block
        except OSError:
            yield
            return
        try:
            _lock(fh)
        except OSError:
            fh.close()
            yield
            return
        if _same_file(fh, lock_path):
            break
        fh.close()  # the holder before us removed it: lock the one at the path now
    try:
        yield
    finally:
        try:
            os.unlink(lock_path)  # while still locked: a waiter sees it gone and starts over
        except OSError:
            pass  # Windows: another opener holds it open; the last one removes it
        try:
            _unlock(fh)
        finally:
            fh.close()


__all__ = ["exclusive_beside"]
