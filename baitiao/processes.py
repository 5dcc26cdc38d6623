"""Child processes that do not outlive the command that started them.

``baitiao simulate`` and the test harness start real worker processes; if the
parent is killed (a timeout, Ctrl-C twice, SIGKILL), orphaned workers would go
on consuming from the bus and steal the next run's messages. On Linux the child
asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for ``subprocess.Popen``: SIGTERM this child when its parent exits."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not fatal: the parent still stops its children on a normal exit
