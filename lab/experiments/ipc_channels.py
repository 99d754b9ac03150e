"""The channels of the ipc experiment: made by the trial's parent, opened by each end in its own
process.

Standard library only. `Channel(kind, ...)` owns the OS resources of one one-way channel (or one
duplex connection) and frees them in `close()`. `Channel.ends()` gives the producer's and the
consumer's `End`: small picklable objects that cross into the child processes (as Process
arguments, so they work under fork, spawn and forkserver) and there `End.open(cfg)` turns them into
a `Port`: plain callables `send`, `recv` (and `task_done`, `join` for JoinableQueue) that the
send and receive loops call directly, with no wrapper of the lab's in between where the channel
offers the call itself.

What travels is decided by the message codec (lab.experiments.ipc_ends): the pickling channels
take Python objects, the byte channels (`BYTE_KINDS`) take bytes-like frames and return bytes.
A byte channel's `send` must have copied the frame out before it returns (the producer reuses
its frame buffers); each of them does (a write, a socket send, a copy into the ring).
"""

import os

from lab.experiments import ipc_credits
# The kinds of machinery; lab.experiments.ipc_catalog holds every channel's facts.
from lab.experiments.ipc_catalog import (BYTE_KINDS, DUPLEX_KINDS, PICKLE_KINDS,  # noqa: F401
                                         QUEUE_KINDS, facts)

# Deliberately broken channels for the checks' own tests: the channel they imitate. Their
# trials must fail; ipc.CHANNELS (the user-facing list) never holds them.
TEST_DOUBLES = {"test_drop_one": "pipe", "test_corrupt_one": "pipe_bytes",
                "test_tear_one": "shm_ring", "test_short_one": "queue",
                "test_drop_thread": "thread_queue", "test_drop_interpreter": "interpreter_queue"}
DROPPING = ("test_drop_one", "test_drop_thread", "test_drop_interpreter")  # lose one message


def base_kind(kind):
    """The machinery a kind is built on: itself, what a test double imitates, or what the
    catalog says (queue_unbounded: queue)."""
    return facts(TEST_DOUBLES.get(kind, kind)).base


class Channel:
    """One channel instance, created in the trial's parent before any end starts: its kind's
    machinery (the catalog entry's) makes it, and frees it in `close()`."""

    def __init__(self, kind, context, queue_maxsize=0, ring_bytes=None, pipe_buffer_bytes=None):
        self.kind = kind
        self.base = base = base_kind(kind)
        machinery = facts(base).machinery
        if machinery is None:
            raise ValueError(f"unknown channel {kind!r}")
        self.credits = None  # (reader, writer) of the credit pipe of an unbounded queue
        if facts(kind).credits and facts(kind).ends != "processes":
            self.credits = tuple(map(Fd, os.pipe()))  # one process: the fds cross as numbers
        elif facts(kind).credits:
            self.credits = context.Pipe(duplex=False)  # the consumer's acknowledgements
        made = machinery.make(context, queue_maxsize, ring_bytes, pipe_buffer_bytes)
        self.a, self.b = made.a, made.b
        self.helper_pid = made.helper_pid  # a process in the middle (a Manager's server)
        self.pipe_buffer_bytes = made.pipe_buffer_bytes
        self._made_closers = made.closers

    def ends(self):
        """(producer's End, consumer's End) for a one-way stream.

        On the queue kinds the consumer may also send (the stop markers of many consumers)."""
        back = self.a if self.base in QUEUE_KINDS else None
        reader, writer = self.credits or (None, None)
        return (End(self.kind, tx=self.a, rx=None, credits=reader),
                End(self.kind, tx=back, rx=self.b, credits=writer))

    def close(self):
        """Free what the channel holds in this process (after every end has finished)."""
        errors = []
        for action in self._made_closers + tuple(end.close for end in self.credits or ()):
            try:
                action()
            except Exception as error:  # keep freeing the rest; report the first failure
                errors.append(error)
        if errors:
            raise errors[0]


class Fd:
    """A file descriptor of this process that crosses into a thread or an interpreter as a
    number: `fileno()` and `close()`, as a one-way Connection offers them."""

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def pingpong_ends(channels):
    """(pinger's End, ponger's End) over `channels`: one duplex channel, or two one-way ones
    (there and back) for the other kinds."""
    if len(channels) == 1:
        (channel,) = channels
        return (End(channel.kind, tx=channel.a, rx=channel.a),
                End(channel.kind, tx=channel.b, rx=channel.b))
    there, back = channels
    return (End(there.kind, tx=there.a, rx=back.b),
            End(there.kind, tx=back.a, rx=there.b))


class Port:
    """An opened end: call `send(message)` and `recv()`; `task_done`/`join` or None."""

    def __init__(self, send, recv, task_done=None, join=None, closers=()):
        self.send = send
        self.recv = recv
        self.task_done = task_done
        self.join = join
        self._closers = list(closers)

    def close(self):
        for close in self._closers:
            close()
        self._closers = []


class End:
    """One end of a channel, picklable: `tx` is what it sends on, `rx` what it receives from;
    `credits` the producer's read end or the consumer's write end of an unbounded queue's
    credit pipe (lab.experiments.ipc_credits), else None."""

    def __init__(self, kind, tx, rx, credits=None):
        self.kind = kind
        self.tx = tx
        self.rx = rx
        self.credits = credits

    def open(self, cfg):
        """The callables of this end, in the calling process. `cfg` is the trial's derived
        configuration (block size of os_pipe, deadline of the ring, the test doubles' target)."""
        machinery = facts(base_kind(self.kind)).machinery
        if machinery is None:
            raise ValueError(f"unknown channel {self.kind!r}")
        send, recv, task_done, join, closers = machinery.open(self.tx, self.rx, cfg)
        if self.credits is not None:
            window, every = cfg["credit_window"], cfg["credit_every"]
            if self.rx is None:  # the producer
                send = ipc_credits.credited_sender(send, self.credits.fileno(), window, every,
                                                   cfg.get("deadline"))
            else:
                recv = ipc_credits.crediting_receiver(recv, self.credits.fileno(), every)
        if send is not None and self.kind in DROPPING:
            send = _dropping(send, cfg["broken_message"])
        if send is not None and self.kind == "test_corrupt_one":
            send = _corrupting(send, cfg["broken_message"])
        if send is not None and self.kind == "test_tear_one":
            send = _tearing(send, cfg["broken_message"])
        return Port(send, recv, task_done, join, list(closers))


def _dropping(send, target):
    """Test double: silently lose the `target`-th data message (1-based), pass everything else."""
    seen = 0

    def send_dropping(message):
        nonlocal seen
        if message is not None and message is not False:
            seen += 1
            if seen == target:
                return
        send(message)
    return send_dropping


def _corrupting(send, target):
    """Test double: flip the last item byte (not the header or the trailer) of the `target`-th
    data frame (a frame whose item count, its first four bytes, is not zero)."""
    from lab.experiments.ipc_ends import TRAILER
    seen = 0

    def send_corrupting(frame):
        nonlocal seen
        if any(frame[:4]):
            seen += 1
            if seen == target:
                frame = bytearray(frame)
                frame[-TRAILER.size - 1] ^= 0xFF
        send(frame)
    return send_corrupting


def _tearing(send, target):
    """Test double: deliver the `target`-th data frame torn, as a reader racing the writer
    would see it: its first half new, its second half the frame sent before it."""
    seen = 0
    previous = b""

    def send_tearing(frame):
        nonlocal seen, previous
        if any(frame[:4]):
            seen += 1
            if seen == target:
                half = len(frame) // 2
                frame = bytes(frame[:half]) + previous[half:]
            previous = bytes(frame)
        send(frame)
    return send_tearing
