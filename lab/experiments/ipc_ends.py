"""The ends of an ipc trial: the send loops, ping-pong and the child mains (payloads and frames in
ipc_codec, the receive loops and count checks in ipc_receive; their names are importable here).

Standard library only; runs in the trial's child processes (and in the parent, which is the
producer under timing=seed). Every function a child runs is module-level, so spawn and forkserver
can import it.

Items and messages. The trial moves `messages` items from the producers to the consumers; one
send carries a frame of `batch` items (the last frame of a producer may carry fewer). Item `s`
of producer `p` (of P) has the global index g = s * P + p: with one producer the indices are the
tutorial's 0, 1, 2 ... A frame is, by codec:

  int     (pickling channels, size_bytes 0): the int g itself; a batch is a list of the ints
  object  (pickling channels, size_bytes > 0): (g, item) or (g0, [items]): items are bytes
  bytes   (byte channels): 16-byte header (count uint32, producer uint32, g0 uint64), then
          `count` items of `item_bytes` each (8 at size_bytes 0), then an 8-byte trailer
          holding g0 again; os_pipe pads every block to one fixed size before the trailer

An item's content is one of a few pseudo-random byte strings, `pool[s % pool_count]`, built
before the clock from a fixed seed, so a receiver can rebuild what it must get. The end of a
producer's stream is `END` (None, or a bytes header with count 0).

Checks, all in the receive loop, on every frame. The frame's index must be the next one expected
from that producer (no gaps, no duplicates, in order; with several consumers each checks order
and the parent checks that the union is exact). A byte frame must have the right length, end
with the index it starts with (a frame torn between two writes does not) and hold, item for
item, the content prebuilt for it: one memcmp (bytes.startswith) against `Expected.bodies`,
exact, and over 10x cheaper than a crc32 of the frame would be. Object items and int batches are
compared whole too. Producers count what they send; the parent compares that with the point's
share and with what the consumers received. A mismatch raises TrialCheckFailed.
"""

import os
import signal
import sys
import threading
import time
from array import array

from lab.experiments import TrialCheckFailed

# The codec and the receive side live apart; their names stay importable from here.
from lab.experiments.ipc_codec import (  # noqa: F401, E402
    END, FRAME_OVERHEAD, HEADER, POOL_BYTES, POOL_MAX_DISTINCT, POOL_SEED, RETAIN_BYTES,
    SMALL_ITEM_BYTES, STOP, TRAILER, Expected, Payloads, frame_bytes, frame_index, is_end,
    item_pool, message_mode, pool_count)
from lab.experiments.ipc_receive import (  # noqa: F401, E402
    _content_message, _gap_message, check_counts, check_sent, check_union, receive_stream)


def ping(port, payloads, first, rounds, samples):
    """Ping-pong rounds first .. first+rounds-1; appends round-trip nanoseconds to `samples`.
    Every echo must equal what was sent, byte for byte (header and trailer included)."""
    send, recv, task_done = port.send, port.recv, port.task_done
    frame = payloads.ping_frame
    ns = time.perf_counter_ns
    for i in range(first, first + rounds):
        out = frame(i)
        start = ns()
        send(out)
        back = recv()
        stop = ns()
        if task_done is not None:
            task_done()
        if samples is not None:
            samples.append(stop - start)
        if back != out:
            g, count = frame_index(payloads.mode, back)
            raise TrialCheckFailed(f"round {i} came back as item {g} ({count} items)"
                                   if g != i else f"round {i}: " + _content_message(g, count))


def pong(port, cfg, timed_from):
    """Echo every message until END; returns (rounds echoed, process_time at round timed_from)."""
    send, recv, task_done = port.send, port.recv, port.task_done
    mode = message_mode(cfg["codec"], cfg["batch"])
    expected = 0
    clock = cpu_clock(cfg)
    cpu_start = clock()
    while True:
        message = recv()
        if task_done is not None:
            task_done()
        if is_end(mode, message):
            return expected, cpu_start
        g, _ = frame_index(mode, message)
        if g != expected:
            raise TrialCheckFailed(_gap_message(0, g, expected, 1))
        if expected == timed_from:
            cpu_start = clock()
        expected += 1
        send(message)


def process_cpu_seconds(pid):
    """CPU seconds (user + system) of another process from /proc, or None where unreadable."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------------------------
# Child processes


def _die_with_parent(parent_pid):
    """Ask Linux to kill this child when its parent dies, so a killed trial leaves no orphans.

    `parent_pid` is the trial's pid where it is this child's parent (fork, spawn), None under
    forkserver (the parent is the fork server, which exits with the trial)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, ImportError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before prctl took effect (the trial may be pid 1: compare)


def run_end(role, cpu, barrier, body, cfg, *args):
    """Common frame of every end, wherever it runs (a process, a thread, an interpreter): pin
    (a thread pins itself alone: Linux's affinity is per thread), run `body`; returns its report,
    or on any failure a report saying what failed (the parent decides what it means)."""
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        report = body(cfg, *args)
        report["role"] = role
        report["affinity"] = sorted(os.sched_getaffinity(0))
        return report
    except BaseException as error:
        if barrier is not None:
            try:
                barrier.abort()  # release the other ends instead of leaving them waiting
            except Exception:
                pass
        text = (f"{role}: {error}" if isinstance(error, TrialCheckFailed)
                else f"{role}: {type(error).__name__}: {error}")
        return {"role": role, "error": text,
                "check_failed": isinstance(error, TrialCheckFailed),
                "secondary": isinstance(error, threading.BrokenBarrierError)}


def in_process_main(results, role, cpu, barrier, body, cfg, *args):
    """An end in a thread or an interpreter of the trial's process: report once, nothing else
    (no orphan guard: it dies with the process)."""
    results.put(run_end(role, cpu, barrier, body, cfg, *args))


def _child(role, cpu, barrier, results, body, cfg, *args):
    """Common frame of every child process: no orphans, run the end, report once, exit 1 on
    error."""
    _die_with_parent(cfg.get("parent_pid"))
    report = run_end(role, cpu, barrier, body, cfg, *args)
    results.put(report)
    if report.get("error"):
        results.close()
        results.join_thread()
        sys.exit(1)


def cpu_clock(cfg):
    """The CPU clock of one end: the process's, or the thread's where ends share a process."""
    return time.thread_time if cfg.get("ends", "processes") != "processes" else time.process_time


def process_main(results, role, cpu, barrier, body, cfg, *args):
    """An end in a child process (lab.experiments.ipc_places.Processes)."""
    _child(role, cpu, barrier, results, body, cfg, *args)


def seed_reader_main(cfg, cpu, end, results, finished):
    _child("consumer0", cpu, None, results, _seed_reader, cfg, end, finished)


def items_to_send(cfg, index):
    """Producer `index`'s share of the timed stream (one item short for test_short_one's
    first producer: its trial must fail on the producers' own count)."""
    share = cfg["shares"][index]
    return share - 1 if cfg["variant"] == "test_short_one" and index == 0 else share


def producer(cfg, index, end, barrier):
    clock = cpu_clock(cfg)
    timeout = cfg["timeout_s"]
    port = end.open(cfg)
    payloads = Payloads(cfg, index)
    send_warm, _ = payloads.sender(cfg["warmup_shares"][index])
    send_all, _ = payloads.sender(items_to_send(cfg, index))
    send, stop = port.send, payloads.end
    helper_pid = cfg.get("helper_pid") if index == 0 else None
    barrier.wait(timeout)  # every end is up and attached
    send_warm(send)
    send(stop)
    barrier.wait(timeout)  # every consumer has drained the warm-up
    helper_start = process_cpu_seconds(helper_pid)
    cpu_start = clock()
    t0 = time.perf_counter()
    items, frames = send_all(send)
    send(stop)
    t_sent = time.perf_counter()
    t_join = None
    if port.join is not None:  # JoinableQueue: wait until every item is task_done()
        port.join()
        t_join = time.perf_counter()
    barrier.wait(timeout)  # the consumers are done (a Queue's feeder has flushed by now)
    cpu = clock() - cpu_start
    helper_end = process_cpu_seconds(helper_pid)
    port.close()
    return {"t0": t0, "t_sent": t_sent, "t_join": t_join, "cpu_seconds": cpu,
            "items": items, "frames": frames,
            "helper_cpu_seconds": (helper_end - helper_start
                                   if helper_start is not None and helper_end is not None
                                   else None)}


def consumer(cfg, index, end, barrier, ends_counter):
    clock = cpu_clock(cfg)
    timeout = cfg["timeout_s"]
    port = end.open(cfg)
    P = cfg["producers"]
    barrier.wait(timeout)
    warm = receive_stream(port, cfg, 0, ends_counter)
    if cfg["consumers"] == 1:
        check_counts(warm, cfg["warmup_shares"], P, "the warm-up")
    barrier.wait(timeout)
    cpu_start = clock()
    got = receive_stream(port, cfg, 1, ends_counter)
    cpu = clock() - cpu_start
    barrier.wait(timeout)
    port.close()
    # The parent compares the counts with what each producer counted as sent.
    return {"t_end": got["t_end"], "cpu_seconds": cpu, "items": got["items"],
            "frames": got["frames"], "records": got["records"], "next": got["next"],
            "verified_items": got["items"]}


def pinger(cfg, end, barrier):
    clock = cpu_clock(cfg)
    timeout = cfg["timeout_s"]
    port = end.open(cfg)
    payloads = Payloads(cfg, 0)
    warm, rounds = cfg["warmup"], cfg["messages"]
    samples = array("q")
    barrier.wait(timeout)
    ping(port, payloads, 0, warm, None)
    cpu_start = clock()
    t0 = time.perf_counter()
    ping(port, payloads, warm, rounds, samples)
    t_end = time.perf_counter()
    cpu = clock() - cpu_start
    port.send(payloads.end)
    barrier.wait(timeout)
    port.close()
    return {"t0": t0, "t_end": t_end, "cpu_seconds": cpu, "samples_ns": samples,
            "items": rounds, "frames": rounds, "verified_items": rounds}


def ponger(cfg, end, barrier):
    clock = cpu_clock(cfg)
    timeout = cfg["timeout_s"]
    port = end.open(cfg)
    barrier.wait(timeout)
    echoed, cpu_start = pong(port, cfg, cfg["warmup"])
    cpu = clock() - cpu_start
    barrier.wait(timeout)
    port.close()
    expected = cfg["warmup"] + cfg["messages"]
    if echoed != expected:
        raise TrialCheckFailed(f"echoed {echoed} of {expected} rounds")
    return {"cpu_seconds": cpu, "items": cfg["messages"], "frames": cfg["messages"]}


def _seed_reader(cfg, end, finished):
    """The tutorial's reader: no handshake, receive until the end marker, then exit. The parent
    (the producer) checks the counts against what it counted as sent."""
    port = end.open(cfg)
    got = receive_stream(port, cfg, 1, None)
    finished.value = 1  # the producer's watchdog must not drain: everything arrived
    port.close()
    return {"t_end": got["t_end"], "cpu_seconds": time.process_time(), "items": got["items"],
            "frames": got["frames"], "records": None, "next": got["next"],
            "verified_items": got["items"]}


def seed_watchdog(reader, end, cfg, finished, stop_fd):
    """Parent-side thread under timing=seed: if the reader dies before the end of the stream,
    become the reader (drain until END, acknowledging JoinableQueue items) so the parent, which
    is the producer and may be blocked on a full channel, can finish and report the failure."""
    from multiprocessing.connection import wait
    ready = wait([reader.sentinel, stop_fd])
    if stop_fd in ready or finished.value:
        return
    port = end.open(cfg)
    mode = message_mode(cfg["codec"], cfg["batch"])
    try:
        while True:
            message = port.recv()
            if port.task_done is not None:
                port.task_done()
            if is_end(mode, message):
                return
    except Exception:  # the parent is closing the channel: nothing left to unblock
        return
    finally:
        port.close()
