"""How each kind of ipc channel is made, opened and closed: one `Machinery` per kind, named by
its entry in lab.experiments.ipc_catalog (so a channel's every fact, its machinery included, is
that one entry). Standard library only; what a kind needs beyond multiprocessing (sockets,
shared memory, concurrent.interpreters) is imported where that kind is made or opened.

`make(context, queue_maxsize, ring_bytes, pipe_buffer_bytes)` runs in the trial's parent and
returns `Made`: the two objects the ends send on and receive from (`a`, `b`: picklable, they
cross into child processes, threads or interpreters), what frees them there, the pid of a
helper process (a Manager's) and the pipe buffer it got. `open(tx, rx, cfg)` runs in the end
and returns its plain callables (send, recv, task_done, join) and what closes them; tx or rx
None means the end does not send, or receive, on it.
"""

import os
import struct
from dataclasses import dataclass
from typing import Callable, NamedTuple

LENGTH = struct.Struct("<I")  # the unix socket's length prefix


class Made(NamedTuple):
    a: object
    b: object
    closers: tuple = ()
    helper_pid: int | None = None
    pipe_buffer_bytes: int | None = None


class Opened(NamedTuple):
    send: Callable | None
    recv: Callable | None
    task_done: Callable | None = None
    join: Callable | None = None
    closers: tuple = ()


@dataclass(frozen=True)
class Machinery:
    make: Callable
    open: Callable


def _method(tx, rx, send_name, recv_name):
    """send/recv as the channel's own bound methods: no wrapper of the lab's in between."""
    return Opened(getattr(tx, send_name) if tx is not None else None,
                  getattr(rx, recv_name) if rx is not None else None)


# --- multiprocessing connections -----------------------------------------------------------

def _make_duplex(context, queue_maxsize, ring_bytes, pipe_buffer_bytes):
    a, b = context.Pipe(duplex=True)  # on Linux: a socketpair
    return Made(a, b, (a.close, b.close))


def _make_oneway(context, queue_maxsize, ring_bytes, pipe_buffer_bytes):
    reader, writer = context.Pipe(duplex=False)  # an os.pipe()
    return Made(writer, reader, (writer.close, reader.close))


def _make_grown_pipe(context, queue_maxsize, ring_bytes, pipe_buffer_bytes):
    made = _make_oneway(context, queue_maxsize, ring_bytes, pipe_buffer_bytes)
    grown = _grow_pipe(made.a.fileno(), pipe_buffer_bytes) if pipe_buffer_bytes else None
    return made._replace(pipe_buffer_bytes=grown)


CONNECTION = Machinery(_make_duplex, lambda tx, rx, cfg: _method(tx, rx, "send", "recv"))
CONNECTION_BYTES = Machinery(_make_duplex,
                             lambda tx, rx, cfg: _method(tx, rx, "send_bytes", "recv_bytes"))
ONEWAY_CONNECTION = Machinery(_make_oneway, lambda tx, rx, cfg: _method(tx, rx, "send", "recv"))


def _open_fd(tx, rx, cfg):
    return Opened(_fd_sender(tx.fileno()) if tx is not None else None,
                  _fd_receiver(rx.fileno(), cfg["block_bytes"]) if rx is not None else None)


RAW_PIPE = Machinery(_make_grown_pipe, _open_fd)


# --- queues ----------------------------------------------------------------------------------

def _queue_made(queue, *closers):
    return Made(queue, queue, closers)


def _open_put_get(tx, rx, cfg):
    return _method(tx, rx, "put", "get")


def _open_joinable(tx, rx, cfg):
    opened = _open_put_get(tx, rx, cfg)
    return opened._replace(task_done=rx.task_done if rx is not None else None,
                           join=tx.join if tx is not None else None)


def _make_queue(context, queue_maxsize, ring_bytes, pipe_buffer_bytes):
    queue = context.Queue(queue_maxsize)
    return _queue_made(queue, queue.close, queue.join_thread)  # a putting parent flushes


def _make_joinable(context, queue_maxsize, ring_bytes, pipe_buffer_bytes):
    queue = context.JoinableQueue(queue_maxsize)
    return _queue_made(queue, queue.close, queue.join_thread)


def _make_simple(context, queue_maxsize, ring_bytes, pipe_buffer_bytes):
    queue = context.SimpleQueue()  # bounded by its pipe: put blocks when full
    return _queue_made(queue, queue.close)


def _make_manager_queue(context, queue_maxsize, ring_bytes, pipe_buffer_bytes):
    manager = context.Manager()
    process = getattr(manager, "_process", None)
    queue = manager.Queue(queue_maxsize)
    return Made(queue, queue, (manager.shutdown,), process.pid if process else None)


def _make_thread_queue(context, queue_maxsize, ring_bytes, pipe_buffer_bytes):
    import queue
    return _queue_made(queue.Queue(queue_maxsize))  # both ends are threads of this process


def _make_interpreter_queue(context, queue_maxsize, ring_bytes, pipe_buffer_bytes):
    from concurrent import interpreters  # Python 3.14+ (the trial refuses older ones)
    return _queue_made(interpreters.create_queue())  # unbounded: paced by credits


QUEUE = Machinery(_make_queue, _open_put_get)
JOINABLE_QUEUE = Machinery(_make_joinable, _open_joinable)
SIMPLE_QUEUE = Machinery(_make_simple, _open_put_get)
MANAGER_QUEUE = Machinery(_make_manager_queue, _open_put_get)
THREAD_QUEUE = Machinery(_make_thread_queue, _open_put_get)
INTERPRETER_QUEUE = Machinery(_make_interpreter_queue, _open_put_get)


# --- a socket and the ring -------------------------------------------------------------------

def _make_socket(context, queue_maxsize, ring_bytes, pipe_buffer_bytes):
    import socket
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return Made(a, b, (a.close, b.close))


def _open_socket(tx, rx, cfg):
    send = _socket_sender(tx) if tx is not None else None
    recv, closers = None, ()
    if rx is not None:
        recv, reader = _socket_receiver(rx)
        closers = (reader.close,)
    return Opened(send, recv, closers=closers)


def _make_ring(context, queue_maxsize, ring_bytes, pipe_buffer_bytes):
    from lab.experiments.ipc_ring import Ring  # shared_memory only where it is used
    ring = Ring.create(ring_bytes)
    name = ("ring", ring.name, ring_bytes)
    return Made(name, name, (ring.close, ring.unlink))


def _open_ring(tx, rx, cfg):
    from lab.experiments.ipc_ring import Ring
    deadline = cfg.get("deadline")
    send = recv = None
    closers = []
    if tx is not None:
        ring_tx = Ring.attach(tx[1], tx[2], deadline)
        closers.append(ring_tx.close)
        send = ring_tx.put
    if rx is not None:
        ring_rx = Ring.attach(rx[1], rx[2], deadline)
        closers.append(ring_rx.close)
        recv = ring_rx.get
    return Opened(send, recv, closers=tuple(closers))


UNIX_SOCKET = Machinery(_make_socket, _open_socket)
SHM_RING = Machinery(_make_ring, _open_ring)


# --- helpers -----------------------------------------------------------------------------------

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
