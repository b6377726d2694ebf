"""The long fuzzing run: the CI fuzzers of issue 21 with a budget a hundred times larger.

The suite runs the property-based fuzzers (``tests/drivers/test_fuzz_instruments.py``: builders and
parsers of FLEX, KXCI, TSP, the on-chip controller protocol and IEEE 488.2 blocks;
``tests/sim_instruments/test_fuzz_sockets.py``: every simulated instrument's ``handle(message)``, the
served WGFMU call handler, the message framer and a live socket) with a small budget
(``tests/fuzz_support.DEFAULT_EXAMPLES`` examples per property, about 15 s in all). Before a
release, or after touching a parser or a simulated instrument, run them longer::

    python benchmarks/fuzz_long.py                   # 10,000 examples per property
    python benchmarks/fuzz_long.py --examples 50000  # longer still
    python benchmarks/fuzz_long.py -k sockets        # only the socket fuzzers

(the same as ``MEMPROG_FUZZ_EXAMPLES=10000 python -m pytest tests/test_fuzz_*.py``). A
failure prints Hypothesis's smallest failing input: turn it into a plain regression test
next to the fix. Expect some minutes per 10,000 examples on a laptop; a run that stops
making progress on one example is itself a finding (an unbounded loop or allocation on
hostile input), as the 4200A's unbounded ``smu_read`` count and PMU burst count were.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ["tests/drivers/test_fuzz_instruments.py", "tests/sim_instruments/test_fuzz_sockets.py"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=10_000, help="examples per property")
    ap.add_argument("-k", default="", help="pytest -k expression (e.g. sockets, parsers, wgfmu)")
    args = ap.parse_args(argv)
    if args.examples < 1:
        print(f"error: --examples={args.examples} is not allowed (allowed: >= 1)", file=sys.stderr)
        return 2
    env = dict(os.environ, MEMPROG_FUZZ_EXAMPLES=str(args.examples))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FILES]
    if args.k:
        cmd += ["-k", args.k]
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
