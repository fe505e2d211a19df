"""Start slots shared by every download worker, and the back-off between attempts.

All workers take start slots from one file (``OUT/.ratelimit``) under an
exclusive ``flock``; after a failed attempt a worker waits an exponential,
jittered delay (:func:`backoff_delay`).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path


class RateLimiter:
    """Start slots shared by every process that uses the same file.

    :meth:`acquire` reserves the next free slot under an exclusive ``flock``,
    releases the lock, and sleeps until the slot; slots are ``60 / per_minute``
    seconds apart whatever the number of workers.
    """

    def __init__(self, path: str | os.PathLike, per_minute: float) -> None:
        self.path = Path(path)
        self.interval = 60.0 / per_minute

    def reset(self) -> None:
        with open(self.path, "w", encoding="ascii") as fh:
            fh.write("0")

    def reserve(self) -> float:
        """Reserve and return the next slot (a ``time.time()`` value)."""
        import fcntl

        with open(self.path, "a+", encoding="ascii") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                try:
                    nxt = float(fh.read().strip() or 0)
                except ValueError:
                    nxt = 0.0
                now = time.time()
                # A slot far ahead can only come from a clock jump: start afresh.
                slot = now if nxt > now + 3600 else max(now, nxt)
                fh.seek(0)
                fh.truncate()
                fh.write(repr(slot + self.interval))
                fh.flush()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return slot

    def acquire(self) -> float:
        slot = self.reserve()
        wait = slot - time.time()
        if wait > 0:
            time.sleep(wait)
        return slot


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based).

    Exponential (``base * 2**(attempt-1)``, at most ``cap``) with "equal
    jitter": half of it fixed, half random, so workers that failed together do
    not retry together.
    """
    rng = rng or random
    delay = min(cap, base * 2 ** max(attempt - 1, 0))
    return delay / 2 + rng.uniform(0, delay / 2)
