"""The run store's own error, and the one-line cause every store message ends with.

Why a module of its own: the engine (opening a URL), the store's reads and writes and the
sink's background commits all report failures the same way: which database (password
masked), what was being done, and the driver's cause in one line with every secret of the
URL scrubbed from it. Keeping that in one place keeps a password out of every message.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from memprog.core.errors import MemprogError
from memprog.store.urls import mask_url, scrub


def one_line(exc: BaseException | str) -> str:
    """The cause of ``exc`` on one line (a DBAPI error's own message, not SQLAlchemy's wrapper)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class StoreError(MemprogError):
    """The database failed while a run was being stored (disk full, read-only, server gone).

    The message says which database (password masked) and the cause, in one line.
    """

    def __init__(self, url: str, action: str, cause: BaseException | str) -> None:
        self.url = mask_url(url)  # an exception never carries a password, not even in .url
        self.action = action
        self.cause = scrub(one_line(cause), url)
        super().__init__(f"run store {mask_url(url)}: {action} failed: {self.cause}")


__all__ = ["StoreError", "one_line"]
