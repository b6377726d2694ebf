"""Ctrl-C while ``memprog`` is still loading its commands: one line and exit 130, not a
traceback from inside an import (review leftover). Backend: none (nothing is opened)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

# a child process that interrupts itself exactly while memprog.cli imports its command
# modules (when the finder is asked for memprog.cli.tune), as a Ctrl-C at that moment would
CHILD = r"""
import os, signal, sys
class Ctrl_C:
    def find_spec(self, name, path=None, target=None):
        if name == "memprog.cli.tune":
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Ctrl_C())
import memprog.cli
print("not interrupted")
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="os.kill(SIGINT) on itself is POSIX; the handler is portable")
def test_ctrl_c_while_loading_is_one_line_and_130():
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert r.stdout == ""
    assert r.stderr.strip() == "memprog: interrupted while starting; nothing was sent or stored"


def test_the_commands_get_ctrl_c_back_once_loaded():
    import memprog.cli as cli

    assert signal.getsignal(signal.SIGINT) is not cli._interrupted_while_starting


# a child whose command module fails to import: Ctrl-C must be Python's again afterwards
FAILED_IMPORT = r"""
import signal, sys
class Broken:
    def find_spec(self, name, path=None, target=None):
        if name == "memprog.cli.tune":
            raise ImportError("broken on purpose")
        return None
sys.meta_path.insert(0, Broken())
try:
    import memprog.cli
except ImportError:
    pass
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""

# a child started with SIGINT ignored (a background job): loading keeps it ignored
IGNORED = r"""
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
import memprog.cli
print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
"""


@pytest.mark.slow
@pytest.mark.parametrize("child", [FAILED_IMPORT, IGNORED], ids=["failed-import", "ignored"])
def test_the_start_handler_never_outlives_the_start(child):
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"
