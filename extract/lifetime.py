"""Child processes that die with their parent, and SIGTERM handled as Ctrl-C.

A SIGKILL gives the killed process no chance to stop its children: the kernel's parent-death
signal (Linux ``prctl(PR_SET_PDEATHSIG)``) kills each child when its parent goes, so a
preempted job leaves nothing behind. The signal fires when the *thread* that started the child
exits: start children from a thread that lives as long as they are needed (the main thread).
"""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt: cleanups still run."""


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent dies (no-op where unsupported).

    Args:
        parent: the parent's pid as the caller knows it; if the parent is already gone (this
            process was re-parented before the call), exit at once.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return
    if getattr(libc, "prctl", None) is None or libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # not Linux: children are then stopped by the orderly shutdown only
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def raise_on_sigterm() -> None:
    """From now on a SIGTERM raises ``Terminated`` in the main thread."""

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
