"""A function that does not scale: every call holds one lock (an flock on a file in /tmp, which
all of a trial's processes share) for its whole work, so N workers take turns.

    invoke scale --target examples/own_code/one_at_a_time.py:crunch --cpus 1,2
"""

import fcntl


def crunch(n):
    """crunch.py's work, done while holding the trial's one lock."""
    with open("/tmp/one-at-a-time.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = 0
        x = 12345
        for _ in range(n):
            done += (x * x + 1) % 97 > 0
        return done
