"""Loaded by every Python process of `make test-at` (PYTHONPATH): Python's sleep without clock_nanosleep.

`make test-at` shifts the wall clock with libfaketime but leaves the monotonic clock alone
(FAKETIME_DONT_FAKE_MONOTONIC=1): with a faked monotonic clock, Python 3.11's timed waits (Event.wait,
Lock.acquire(timeout=...)) never return under libfaketime 0.9.10. Left alone, the monotonic clock is right, but
libfaketime then answers Python's absolute clock_nanosleep(CLOCK_MONOTONIC) with EINVAL, so time.sleep fails. A
timed wait on an Event sleeps just as long and works. See docs/testing.md.
"""

import threading
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    threading.Event().wait(seconds)


time.sleep = _sleep
