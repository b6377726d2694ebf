"""memprog: program memristor chips to precise conductances.

Heavy pieces (torch training, the bench opener) are imported lazily so that
``import memprog`` stays fast for lab scripts that only need a driver.
"""

from __future__ import annotations

from typing import Any

from memprog.core.errors import ConfigError, InstrumentError, ProtocolError, SafetyError

__version__ = "0.1.0"


def open_bench(path: str, **kwargs: Any):  # noqa: ANN201 - returns memprog.bench.assembly.Bench
    """Open the bench described by a YAML bench file (see :mod:`memprog.bench.assembly`)."""
    # every room imports this root package first, so it imports no room at module level
    # deferred: opening a bench pulls in the drivers, the simulator and pyvisa (~0.2 s)
    from memprog.bench.assembly import open_bench as _open

    return _open(path, **kwargs)


__all__ = ["ConfigError", "InstrumentError", "ProtocolError", "SafetyError", "open_bench"]
