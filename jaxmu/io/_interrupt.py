"""Holding back Ctrl-C while a write that must not be cut short finishes."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Runs the ``with`` block with a first Ctrl-C (SIGINT) held back until it ends.

    A SIGINT that arrives inside the block is recorded; when the block ends the previous
    handler is restored, and if it ended normally :class:`KeyboardInterrupt` is raised then
    (if it raised, that exception propagates instead), so a checkpoint save and its clean-up
    finish (no temporary directory is left by an interrupt). A second SIGINT inside the
    block calls the previous handler at once (Ctrl-C twice stops a hung write). Outside the
    main thread, or when SIGINT is not handled by Python's default handler (e.g. ignored),
    the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield
        return
    received: list[int] = []

    def hold(signum, frame):
        if received:  # the second one: give up waiting
            previous(signum, frame)
        received.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
