"""Ctrl-C and SIGTERM: stop with one line and an exit code of their own, temporaries removed.

click turns Ctrl-C into ``Aborted!`` and exit 1, which the README gives to "done, with input
problems"; SIGTERM (``docker stop``, systemd, a CI timeout) kills Python without running a
single ``finally``, so temporary files stayed. Both signals raise ``Interrupted`` here
instead: it unwinds the run like any exception (``atomic.replacing``, the output staging
folder and the store's temporary folder remove themselves; the state is saved only after the
outputs), and the command group prints one line and exits 128 + the signal number, as a
shell does: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: Exit codes of an interrupted run (128 + the signal number, the shell's convention).
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM
NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}


class Interrupted(BaseException):
    """A signal asked the run to stop (a ``BaseException``, so no ``except Exception`` keeps it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def line(self) -> str:
        return (
            f"calo-balance: interrupted by {NAMES.get(signal.Signals(self.signum), str(self.signum))}: stopped; "
            f"temporary files removed, the earlier outputs and state kept (exit {self.exit_code})"
        )


def _raise(signum: int, frame: FrameType | None) -> None:
    # Further signals while the run unwinds are ignored: the first one already stops it, and a
    # second Ctrl-C must not cut the clean-up short.
    for sig in NAMES:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


@contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``Interrupted`` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # A signal ignored from the start stays ignored (``nohup``, a shell's background job).
    previous = {sig: signal.signal(sig, _raise) for sig in NAMES if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
