"""The credit window of the unbounded queues (queue_unbounded, joinable_queue_unbounded).

Standard library only. A bounded Queue(maxsize) makes its producer wait on the queue's own
semaphore at every put once the queue is full: a wake-up per message, which is what the bound
costs. The unbounded queues here are the tutorial's `Queue()` and `JoinableQueue()` (maxsize 0),
and their producer is held back another way, so that it cannot buffer a whole run into memory:
it may be at most `window` messages ahead of what the consumer has acknowledged. The consumer
writes one byte into an os.pipe (a one-way `Pipe(duplex=False)`, so it crosses spawn and
forkserver too) for every `every` messages it has taken (`window // 16`); the producer reads
that pipe only when its window is full, and then blocks until a byte comes. The window is the
bounded queue's memory budget (about 16 MiB of frames) without its cap of 1000 messages: for
small ints about 350,000 messages, so a sized run never reaches it; at 64 KiB, 255 messages.
What it costs per message: a counter and a compare in each end (a Python call around put and
get: 80-90 ns each on a 2-vCPU build machine, 1-2% of a Queue message at 100k messages/s), and
one 1-byte write per `every` messages in the consumer.
"""

import os
import select
import time

EVERY_PARTS = 16  # the consumer acknowledges every window // EVERY_PARTS messages


def window_sizes(window):
    """(window, every) for a window of `window` messages (at least 2)."""
    window = max(2, int(window))
    return window, max(1, window // EVERY_PARTS)


def credited_sender(put, ack_fd, window, every, deadline):
    """`put` that waits, before a put would take the producer more than `window` messages
    ahead of the consumer's acknowledgements, until the consumer acknowledges more."""
    outstanding = 0

    def send(message):
        nonlocal outstanding
        if outstanding >= window:
            outstanding -= every * _wait_for_credits(ack_fd, deadline)
        put(message)
        outstanding += 1
    return send


def crediting_receiver(get, ack_fd, every):
    """`get` that acknowledges every `every` messages taken (END markers included) with one
    byte on the credit pipe."""
    taken = 0
    write = os.write

    def recv():
        nonlocal taken
        message = get()
        taken += 1
        if taken == every:
            taken = 0
            write(ack_fd, b"\x01")
        return message
    return recv


def _wait_for_credits(fd, deadline):
    """Block until the consumer has acknowledged at least once more; returns how many
    acknowledgements came (bytes read). TimeoutError past the trial's deadline."""
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            got = os.read(fd, 4096)
            if not got:
                raise EOFError("credit pipe closed: the consumer is gone")
            return len(got)
        if left is not None and left <= 0:
            raise TimeoutError("the consumer acknowledged nothing before the trial's deadline "
                               "(credit window full)")
