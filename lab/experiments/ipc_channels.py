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
import socket
import struct

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

LENGTH = struct.Struct("<I")  # the unix socket's length prefix


def base_kind(kind):
    """The machinery a kind is built on: itself, what a test double imitates, or what the
    catalog says (queue_unbounded: queue)."""
    return facts(TEST_DOUBLES.get(kind, kind)).base


class Channel:
    """One channel instance, created in the trial's parent before any end starts."""

    def __init__(self, kind, context, queue_maxsize=0, ring_bytes=None, pipe_buffer_bytes=None):
        self.kind = kind
        self.base = base = base_kind(kind)
        self.manager = None
        self.ring = None
        self.pipe_buffer_bytes = None
        self._sockets = ()
        self.credits = None  # (reader, writer) of the credit pipe of an unbounded queue
        if facts(kind).credits and facts(kind).ends != "processes":
            self.credits = tuple(map(Fd, os.pipe()))  # one process: the fds cross as numbers
        elif facts(kind).credits:
            self.credits = context.Pipe(duplex=False)  # the consumer's acknowledgements
        if base in ("pipe", "pipe_bytes"):
            self.a, self.b = context.Pipe(duplex=True)  # on Linux: a socketpair
        elif base in ("pipe_oneway", "os_pipe"):
            reader, writer = context.Pipe(duplex=False)  # an os.pipe()
            self.a, self.b = writer, reader
            if base == "os_pipe" and pipe_buffer_bytes:
                self.pipe_buffer_bytes = _grow_pipe(writer.fileno(), pipe_buffer_bytes)
        elif base == "unix_socket":
            self.a, self.b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sockets = (self.a, self.b)
        elif base == "queue":
            self.a = self.b = context.Queue(queue_maxsize)
        elif base == "joinable_queue":
            self.a = self.b = context.JoinableQueue(queue_maxsize)
        elif base == "simple_queue":
            self.a = self.b = context.SimpleQueue()  # bounded by its pipe: put blocks when full
        elif base == "manager_queue":
            self.manager = context.Manager()
            self.a = self.b = self.manager.Queue(queue_maxsize)
        elif base == "thread_queue":
            import queue
            self.a = self.b = queue.Queue(queue_maxsize)  # both ends are threads of this process
        elif base == "interpreter_queue":
            from concurrent import interpreters  # Python 3.14+ (the trial refuses older ones)
            self.a = self.b = interpreters.create_queue()  # unbounded: paced by credits
        elif base == "shm_ring":
            from lab.experiments.ipc_ring import Ring  # shared_memory only where it is used
            self.ring = Ring.create(ring_bytes)
            self.a = self.b = ("ring", self.ring.name, ring_bytes)
        else:
            raise ValueError(f"unknown channel {kind!r}")

    @property
    def helper_pid(self):
        """The pid of a process in the middle of the channel (the manager's server), or None."""
        process = getattr(self.manager, "_process", None)
        return process.pid if process is not None else None

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
        for action in self._closers():
            try:
                action()
            except Exception as error:  # keep freeing the rest; report the first failure
                errors.append(error)
        if errors:
            raise errors[0]

    def _closers(self):
        if self.ring is not None:
            yield self.ring.close
            yield self.ring.unlink
        if self.manager is not None:
            yield self.manager.shutdown
        if self.base in ("queue", "joinable_queue"):
            yield self.a.close
            yield self.a.join_thread  # a parent that put (timing=seed) flushes its feeder
        elif self.base == "simple_queue":
            yield self.a.close
        elif self.base in ("pipe", "pipe_bytes", "pipe_oneway", "os_pipe"):
            yield self.a.close
            yield self.b.close
        for sock in self._sockets:
            yield sock.close
        for end in self.credits or ():
            yield end.close


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


def _grow_pipe(fd, wanted):
    """Give the pipe a buffer of `wanted` bytes, or the most the system allows an unprivileged
    process (/proc/sys/fs/pipe-max-size); returns the size it has."""
    try:
        import fcntl
        set_size, get_size = fcntl.F_SETPIPE_SZ, fcntl.F_GETPIPE_SZ
    except (ImportError, AttributeError):  # not Linux
        return None
    try:
        fcntl.fcntl(fd, set_size, wanted)
    except OSError:
        try:
            with open("/proc/sys/fs/pipe-max-size") as limit:
                fcntl.fcntl(fd, set_size, min(wanted, int(limit.read())))
        except (OSError, ValueError):
            pass
    return fcntl.fcntl(fd, get_size)


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
        base = base_kind(self.kind)
        send = recv = task_done = join = None
        closers = []
        tx, rx = self.tx, self.rx
        if base in ("pipe", "pipe_oneway"):
            send = tx.send if tx is not None else None
            recv = rx.recv if rx is not None else None
        elif base == "pipe_bytes":
            send = tx.send_bytes if tx is not None else None
            recv = rx.recv_bytes if rx is not None else None
        elif base in QUEUE_KINDS or base == "interpreter_queue":
            send = tx.put if tx is not None else None
            recv = rx.get if rx is not None else None
            if base == "joinable_queue":
                task_done = rx.task_done if rx is not None else None
                join = tx.join if tx is not None else None
        elif base == "unix_socket":
            if tx is not None:
                send = _socket_sender(tx)
            if rx is not None:
                recv, reader = _socket_receiver(rx)
                closers.append(reader.close)
        elif base == "os_pipe":
            if tx is not None:
                send = _fd_sender(tx.fileno())
            if rx is not None:
                recv = _fd_receiver(rx.fileno(), cfg["block_bytes"])
        elif base == "shm_ring":
            from lab.experiments.ipc_ring import Ring
            deadline = cfg.get("deadline")
            if tx is not None:
                ring_tx = Ring.attach(tx[1], tx[2], deadline)
                closers.append(ring_tx.close)
                send = ring_tx.put
            if rx is not None:
                ring_rx = Ring.attach(rx[1], rx[2], deadline)
                closers.append(ring_rx.close)
                recv = ring_rx.get
        else:
            raise ValueError(f"unknown channel {self.kind!r}")
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
        return Port(send, recv, task_done, join, closers)


def _socket_sender(sock):
    """Length-prefixed frames on a stream socket: prefix and frame in one sendmsg, no copy."""
    sendmsg, sendall, pack = sock.sendmsg, sock.sendall, LENGTH.pack

    def send(frame):
        n = len(frame)
        prefix = pack(n)
        sent = sendmsg([prefix, frame])
        if sent != n + LENGTH.size:  # a large frame went out in part: send the rest
            if sent < LENGTH.size:
                sendall(prefix[sent:])
                sent = LENGTH.size
            sendall(memoryview(frame)[sent - LENGTH.size:])
    return send


def _socket_receiver(sock):
    """Read length-prefixed frames through a buffered reader (few recv calls per frame)."""
    reader = sock.makefile("rb", buffering=1 << 16)
    read, unpack = reader.read, LENGTH.unpack

    def recv():
        prefix = read(LENGTH.size)
        if len(prefix) != LENGTH.size:
            raise EOFError("unix socket closed mid-stream")
        n = unpack(prefix)[0]
        frame = read(n)
        if len(frame) != n:
            raise EOFError("unix socket closed mid-frame")
        return frame
    return recv, reader


def _fd_sender(fd):
    """Raw os.write of whole blocks (a blocking pipe writes all, but a signal may cut it short)."""
    write = os.write

    def send(block):
        done = write(fd, block)
        if done != len(block):
            view = memoryview(block)
            while done < len(view):
                done += write(fd, view[done:])
    return send


def _fd_receiver(fd, block_bytes):
    """Raw os.read of fixed-size blocks: one read when the pipe holds a whole block."""
    read = os.read

    def recv():
        block = read(fd, block_bytes)
        if len(block) == block_bytes:
            return block
        parts = [block]
        got = len(block)
        while got < block_bytes:
            if not parts[-1]:
                raise EOFError("pipe closed mid-block")
            part = read(fd, block_bytes - got)
            parts.append(part)
            got += len(part)
        return b"".join(parts)
    return recv


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
