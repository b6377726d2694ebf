"""``memprog sim serve`` of a twin bench, for the twin tests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def served_twin(bench: Path, served: Path) -> Iterator[dict]:
    """Serve ``bench`` on free loopback ports, write its lab-style bench to ``served``;
    yields the server's JSON document (its resources); stopped on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from memprog.cli import main; main()", "sim", "serve", str(bench),
         "--port", "0", "--json", "--write-bench", str(served), "--timeout-ms", "3000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, proc.communicate(timeout=10)[1]
        yield json.loads(line)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
