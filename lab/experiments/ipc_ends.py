"""The ends of an ipc trial: payloads, the send and receive loops, their checks, the child mains.

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

import itertools
import os
import random
import signal
import struct
import sys
import threading
import time
from array import array

from lab.experiments import TrialCheckFailed

HEADER = struct.Struct("<IIQ")  # items in the frame, producer, global index of its first item
TRAILER = struct.Struct("<Q")  # the global index of the first item again, at the frame's very end
FRAME_OVERHEAD = HEADER.size + TRAILER.size  # a byte frame's bytes beyond its items
END = None  # a producer's end of stream on the pickling channels
STOP = False  # from the consumer that saw the last END to each other consumer: stop now
SMALL_ITEM_BYTES = 8  # what a byte channel carries per item at size_bytes 0
POOL_SEED = 4_2024
POOL_MAX_DISTINCT = 7  # distinct item contents in the cycle (fewer when items are large)
POOL_BYTES = 16 << 20  # memory a producer (and a consumer) may spend on prebuilt frames
RETAIN_BYTES = 0  # frames kept for after the clock: none, every frame is checked in the loop

# Message modes: the codec and whether frames hold one item or a batch.
INT, INT_BATCH, OBJECT, OBJECT_BATCH, BYTES = range(5)


def message_mode(codec, batch):
    if codec == "bytes":
        return BYTES
    if codec == "int":
        return INT if batch == 1 else INT_BATCH
    return OBJECT if batch == 1 else OBJECT_BATCH


def pool_count(codec, batch, item_bytes):
    """How many distinct item contents the producers cycle through (bounded by POOL_BYTES)."""
    if codec == "int":
        return 1
    per_slot = item_bytes * (batch if codec == "bytes" else 1)  # byte frames are built whole
    return max(1, min(POOL_MAX_DISTINCT, POOL_BYTES // max(1, per_slot)))


def item_pool(item_bytes, count):
    """The distinct item contents, the same in every process."""
    return [random.Random(POOL_SEED + j).randbytes(item_bytes) for j in range(count)]


def frame_bytes(cfg):
    """Bytes a byte channel moves per full frame (header included); 0 for the pickling codecs."""
    if cfg["codec"] != "bytes":
        return 0
    return cfg["block_bytes"] or FRAME_OVERHEAD + cfg["batch"] * cfg["item_bytes"]


class Payloads:
    """What one producer sends, built before the clock: prebuilt frames reused in a fixed cycle.

    Frame f of a producer carries items f*batch ...; with pool_count M the frames repeat every M
    (f*batch + i == (f % M)*batch + i modulo M), so M prebuilt frames serve the whole run and only
    a byte frame's 16-byte header is written per send."""

    def __init__(self, cfg, producer):
        self.mode = message_mode(cfg["codec"], cfg["batch"])
        self.batch = cfg["batch"]
        self.producers = cfg["producers"]
        self.producer = producer
        self.item_bytes = cfg["item_bytes"]
        self.block_bytes = cfg["block_bytes"]
        self.count = cfg["pool_count"]
        self.pool = item_pool(self.item_bytes, self.count) if self.mode != INT else []
        self.slots = []
        if self.mode == OBJECT_BATCH:
            self.slots = [self._items(j * self.batch, self.batch) for j in range(self.count)]
        elif self.mode == BYTES:
            self.slots = [self._frame(j * self.batch, self.batch) for j in range(self.count)]
        self.end = self._frame(0, 0) if self.mode == BYTES else END

    def _items(self, first, count):
        return [self.pool[(first + i) % self.count] for i in range(count)]

    def _frame(self, first, count):
        """A byte frame for items first .. first+count-1 of this producer."""
        frame = bytearray(HEADER.size)
        frame += b"".join(self._items(first, count))
        if self.block_bytes:
            frame += bytes(self.block_bytes - len(frame) - TRAILER.size)
        frame += bytes(TRAILER.size)
        _stamp(frame, count, self.producer, first * self.producers + self.producer)
        return frame

    def sender(self, items):
        """(send_all(send), frames): a function that sends `items` items (no END) and returns
        (items, frames) it handed to `send`, counted as it goes; and the frames it should send."""
        P, p, k = self.producers, self.producer, self.batch
        full, rest = divmod(items, k)
        stop = p + full * k * P  # global index of the first item after the full frames
        frames = full + (1 if rest else 0)
        cycle = itertools.cycle
        if self.mode == INT:
            def send_all(send):
                sent = 0
                for g in range(p, p + items * P, P):
                    send(g)
                    sent += 1
                return sent, sent
        elif self.mode == INT_BATCH:
            batches = [list(range(p + s * P, p + min(s + k, items) * P, P))
                       for s in range(0, items, k)]

            def send_all(send):
                sent = 0
                for frame in batches:
                    send(frame)
                    sent += 1
                return sum(map(len, batches[:sent])), sent
        elif self.mode == OBJECT:
            pool = self.pool

            def send_all(send):
                sent = 0
                for message in zip(range(p, p + items * P, P), cycle(pool)):
                    send(message)
                    sent += 1
                return sent, sent
        else:
            send_all = self._frame_sender(full, rest, stop)
        return send_all, frames

    def _frame_sender(self, full, rest, stop):
        """send_all for the batched object codec and the byte codec: `full` frames of `batch`
        items cycling through the prebuilt slots, then one of `rest` items if rest."""
        P, p, k = self.producers, self.producer, self.batch
        slots = self.slots
        if self.mode == OBJECT_BATCH:
            tail = self._items(full * k, rest)

            def send_all(send):
                sent = 0
                for message in zip(range(p, stop, k * P), itertools.cycle(slots)):
                    send(message)
                    sent += 1
                if rest:
                    send((stop, tail))
                return sent * k + rest, sent + (1 if rest else 0)
            return send_all
        tail = self._frame(full * k, rest)
        pack, pack_end = HEADER.pack_into, TRAILER.pack_into
        end_at = len(slots[0]) - TRAILER.size if slots else 0

        def send_all(send):
            sent = 0
            for g0, frame in zip(range(p, stop, k * P), itertools.cycle(slots)):
                pack(frame, 0, k, p, g0)  # the channel copies the frame before returning
                pack_end(frame, end_at, g0)
                send(frame)
                sent += 1
            if rest:
                send(tail)
            return sent * k + rest, sent + (1 if rest else 0)
        return send_all

    def ping_frame(self, i):
        """The message of ping-pong round i (one item, index i)."""
        if self.mode == INT:
            return i
        if self.mode == OBJECT:
            return (i, self.pool[i % self.count])
        frame = self.slots[i % self.count]
        _stamp(frame, 1, 0, i)
        return frame


def _stamp(frame, count, producer, g0):
    """Write a byte frame's header and its trailer (the index again, at the very end)."""
    HEADER.pack_into(frame, 0, count, producer, g0)
    TRAILER.pack_into(frame, len(frame) - TRAILER.size, g0)


def frame_index(mode, message):
    """(global index of the first item, item count) of a data message."""
    if mode == INT:
        return message, 1
    if mode == INT_BATCH:
        return message[0], len(message)
    if mode == OBJECT:
        return message[0], 1
    if mode == OBJECT_BATCH:
        return message[0], len(message[1])
    count, _, first = HEADER.unpack_from(message)
    return first, count


def is_end(mode, message):
    if mode == BYTES:
        return HEADER.unpack_from(message)[0] == 0
    return message is END


class Expected:
    """What every frame must hold, rebuilt by a consumer before the clock from the same seed as
    the producers' Payloads: `pool` (item contents), `slots` (the batched object codec's item
    lists) and `bodies` (the byte codec's item bytes of each prebuilt frame, header and trailer
    left out). Frame f of any producer holds slot f % count (a last, shorter frame a prefix)."""

    def __init__(self, cfg):
        mode = message_mode(cfg["codec"], cfg["batch"])
        k, self.count = cfg["batch"], cfg["pool_count"]
        self.pool = item_pool(cfg["item_bytes"], self.count) if mode != INT else []
        self.slots = self.bodies = []
        if mode == OBJECT_BATCH:
            self.slots = [self._items(j * k, k) for j in range(self.count)]
        elif mode == BYTES:
            self.bodies = [b"".join(self._items(j * k, k)) for j in range(self.count)]

    def _items(self, first, count):
        return [self.pool[(first + i) % self.count] for i in range(count)]


def _gap_message(producer, got, expected, P):
    what = "items were lost" if got > expected else "out of order or duplicated"
    return (f"expected item {expected // P} of producer {producer}, got item {got // P} "
            f"({what})")


def _content_message(g, count):
    return (f"payload of the frame at item {g} ({count} items) differs from what was sent "
            f"(a stale or corrupted frame)")


def receive_stream(port, cfg, phase, ends_counter):
    """Receive one phase of a stream until its end, checking every frame in the loop.

    Returns dict(t_end (perf_counter at the receipt of the last END, or None if another consumer
    saw it), items, frames, records (array of g0, count pairs when consumers > 1), next (the
    next global index expected from each producer))."""
    if cfg["codec"] == "bytes":
        return _receive_frames(port, cfg)
    return _receive_objects(port, cfg, phase, ends_counter)


def _receive_frames(port, cfg):
    """The byte channels' loop (one producer, one consumer): index at both ends, length and
    content of every frame. A full frame is checked in one expression (one unpack reads its
    header and trailer); END, a shorter last frame or a bad frame take `_odd_frame`."""
    recv = port.recv
    k = cfg["batch"]
    full = frame_bytes(cfg)  # every os_pipe block, END included, has this length
    unpack_full = struct.Struct(f"<IIQ{full - FRAME_OVERHEAD}xQ").unpack_from
    head = HEADER.size
    bodies = Expected(cfg).bodies
    slots = len(bodies)
    perf_counter = time.perf_counter
    nxt = frames = 0  # one producer: the next index is also the count of items received
    while True:
        message = recv()
        if len(message) == full:
            count, p, g, g_end = unpack_full(message)
        else:
            count, p, g, g_end = _unpack_short(message)
        if (count == k and g == nxt and g_end == g and not p
                and message.startswith(bodies[frames % slots], head)):
            nxt += k
            frames += 1
            continue
        if count == 0 and not p:  # the producer's END
            t_end = perf_counter()
            break
        nxt = _odd_frame(message, (count, p, g, g_end), nxt, cfg, bodies[frames % slots])
        frames += 1
    return {"t_end": t_end, "items": nxt, "frames": frames, "records": None, "next": [nxt]}


def _unpack_short(message):
    """(count, producer, g0, trailer g0) of a frame shorter than a full one (END, a last
    frame); a trailer of None where the frame is too short to hold one."""
    if len(message) < HEADER.size:
        raise TrialCheckFailed(f"frame of {len(message)} bytes, shorter than its header "
                               f"(a framing error)")
    count, p, g = HEADER.unpack_from(message)
    if len(message) < FRAME_OVERHEAD:
        return count, p, g, None
    return count, p, g, TRAILER.unpack_from(message, len(message) - TRAILER.size)[0]


def _odd_frame(message, fields, nxt, cfg, body):
    """A frame that is not a good full one: the last, shorter frame of the stream (checked in
    full; returns the next index) or a bad frame (raises TrialCheckFailed saying what)."""
    count, p, g, g_end = fields
    n, size, block = len(message), cfg["item_bytes"], cfg["block_bytes"]
    if n != (block or FRAME_OVERHEAD + count * size) or count > cfg["batch"] or p:
        raise TrialCheckFailed(f"frame of {n} bytes from producer {p} for {count} items of "
                               f"{size} bytes (a framing error)")
    if g != nxt:
        raise TrialCheckFailed(_gap_message(0, g, nxt, 1))
    if g_end != g:
        raise TrialCheckFailed(f"torn frame: starts as item {g}, ends as item {g_end}")
    if not message.startswith(body[:count * size], HEADER.size):
        raise TrialCheckFailed(_content_message(g, count))
    return g + count


def _receive_objects(port, cfg, phase, ends_counter):
    """The pickling channels' loop: index of every message, content of every item."""
    recv, task_done, put = port.recv, port.task_done, port.send
    mode = message_mode(cfg["codec"], cfg["batch"])
    P, C, k = cfg["producers"], cfg["consumers"], cfg["batch"]
    strict = C == 1  # a single consumer sees every producer's items contiguously
    expected_items = Expected(cfg)
    pool, slots, distinct = expected_items.pool, expected_items.slots, expected_items.count
    per_slot = P * k  # global indices per frame: frame of g is g // per_slot
    perf_counter = time.perf_counter
    nxt = list(range(P))  # next global index expected from each producer
    records = None if strict else array("q")
    items = frames = ends = 0
    t_end = None
    while True:
        message = recv()
        if task_done is not None:
            task_done()
        if message is END:
            t = perf_counter()
            if strict:
                ends += 1
                if ends < P:
                    continue
                t_end = t
                break
            with ends_counter.get_lock():
                ends_counter[phase] += 1
                last = ends_counter[phase] == P
            if not last:
                continue
            t_end = t
            for _ in range(C - 1):
                put(STOP)
            break
        if message is STOP:
            break
        if mode == INT:
            g, count, intact = message, 1, True  # the int is the whole payload
        elif mode == OBJECT:
            g, count = message[0], 1
            intact = message[1] == pool[(g // P) % distinct]
        elif mode == INT_BATCH:
            g, count = message[0], len(message)
            intact = count <= k and message == list(range(g, g + count * P, P))
        else:
            g, batch = message
            count = len(batch)
            slot = slots[(g // per_slot) % distinct]
            intact = batch == (slot if count == k else slot[:count]) and count <= k
        p = g % P
        expected = nxt[p]
        if g != expected and (strict or g < expected):
            raise TrialCheckFailed(_gap_message(p, g, expected, P))
        if not intact:
            raise TrialCheckFailed(_content_message(g, count))
        nxt[p] = g + count * P
        items += count
        frames += 1
        if records is not None:
            records.append(g)
            records.append(count)
    return {"t_end": t_end, "items": items, "frames": frames, "records": records, "next": nxt}


def check_sent(sent, shares):
    """Each producer must have sent (counted as it sent) exactly its share of the point."""
    for p, (got, share) in enumerate(zip(sent, shares)):
        if got != share:
            raise TrialCheckFailed(f"producer{p} sent {got} of its {share} items")


def check_counts(received, shares, P, phase="the stream"):
    """A single consumer must have received exactly each producer's share, nothing more."""
    for p, share in enumerate(shares):
        got = (received["next"][p] - p) // P
        if got != share:
            raise TrialCheckFailed(f"received {got} of the {share} items producer {p} sent in "
                                   f"{phase}")


def check_union(records_per_consumer, shares, P):
    """Several consumers: together they must hold every item of every producer exactly once."""
    frames = [[] for _ in shares]
    for records in records_per_consumer:
        for j in range(0, len(records), 2):
            g, count = records[j], records[j + 1]
            frames[g % P].append((g, count))
    for p, share in enumerate(shares):
        expected = p
        for g, count in sorted(frames[p]):
            if g != expected:
                raise TrialCheckFailed("consumers together: "
                                       + _gap_message(p, g, expected, P))
            expected = g + count * P
        if (expected - p) // P != share:
            raise TrialCheckFailed(f"consumers together received {(expected - p) // P} of the "
                                   f"{share} items producer {p} sent")


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
    cpu_start = time.process_time()
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
            cpu_start = time.process_time()
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


def _child(role, cpu, barrier, results, body, cfg, *args):
    """Common frame of every child: no orphans, pin, run `body`, report once, exit 1 on error."""
    _die_with_parent(cfg.get("parent_pid"))
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        report = body(cfg, *args)
        report["role"] = role
        report["affinity"] = sorted(os.sched_getaffinity(0))
        results.put(report)
    except BaseException as error:  # report every failure, the parent decides what it means
        if barrier is not None:
            try:
                barrier.abort()  # release the other ends instead of leaving them waiting
            except Exception:
                pass
        text = (f"{role}: {error}" if isinstance(error, TrialCheckFailed)
                else f"{role}: {type(error).__name__}: {error}")
        results.put({"role": role, "error": text,
                     "check_failed": isinstance(error, TrialCheckFailed),
                     "secondary": isinstance(error, threading.BrokenBarrierError)})
        results.close()
        results.join_thread()
        sys.exit(1)


def producer_main(cfg, index, cpu, end, barrier, results, ends_counter):
    _child(f"producer{index}", cpu, barrier, results, _producer, cfg, index, end, barrier)


def consumer_main(cfg, index, cpu, end, barrier, results, ends_counter):
    _child(f"consumer{index}", cpu, barrier, results, _consumer, cfg, index, end, barrier,
           ends_counter)


def pinger_main(cfg, cpu, end, barrier, results):
    _child("producer0", cpu, barrier, results, _pinger, cfg, end, barrier)


def ponger_main(cfg, cpu, end, barrier, results):
    _child("consumer0", cpu, barrier, results, _ponger, cfg, end, barrier)


def seed_reader_main(cfg, cpu, end, results, finished):
    _child("consumer0", cpu, None, results, _seed_reader, cfg, end, finished)


def items_to_send(cfg, index):
    """Producer `index`'s share of the timed stream (one item short for test_short_one's
    first producer: its trial must fail on the producers' own count)."""
    share = cfg["shares"][index]
    return share - 1 if cfg["variant"] == "test_short_one" and index == 0 else share


def _producer(cfg, index, end, barrier):
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
    cpu_start = time.process_time()
    t0 = time.perf_counter()
    items, frames = send_all(send)
    send(stop)
    t_sent = time.perf_counter()
    t_join = None
    if port.join is not None:  # JoinableQueue: wait until every item is task_done()
        port.join()
        t_join = time.perf_counter()
    barrier.wait(timeout)  # the consumers are done (a Queue's feeder has flushed by now)
    cpu = time.process_time() - cpu_start
    helper_end = process_cpu_seconds(helper_pid)
    port.close()
    return {"t0": t0, "t_sent": t_sent, "t_join": t_join, "cpu_seconds": cpu,
            "items": items, "frames": frames,
            "helper_cpu_seconds": (helper_end - helper_start
                                   if helper_start is not None and helper_end is not None
                                   else None)}


def _consumer(cfg, index, end, barrier, ends_counter):
    timeout = cfg["timeout_s"]
    port = end.open(cfg)
    P = cfg["producers"]
    barrier.wait(timeout)
    warm = receive_stream(port, cfg, 0, ends_counter)
    if cfg["consumers"] == 1:
        check_counts(warm, cfg["warmup_shares"], P, "the warm-up")
    barrier.wait(timeout)
    cpu_start = time.process_time()
    got = receive_stream(port, cfg, 1, ends_counter)
    cpu = time.process_time() - cpu_start
    barrier.wait(timeout)
    port.close()
    # The parent compares the counts with what each producer counted as sent.
    return {"t_end": got["t_end"], "cpu_seconds": cpu, "items": got["items"],
            "frames": got["frames"], "records": got["records"], "next": got["next"],
            "verified_items": got["items"]}


def _pinger(cfg, end, barrier):
    timeout = cfg["timeout_s"]
    port = end.open(cfg)
    payloads = Payloads(cfg, 0)
    warm, rounds = cfg["warmup"], cfg["messages"]
    samples = array("q")
    barrier.wait(timeout)
    ping(port, payloads, 0, warm, None)
    cpu_start = time.process_time()
    t0 = time.perf_counter()
    ping(port, payloads, warm, rounds, samples)
    t_end = time.perf_counter()
    cpu = time.process_time() - cpu_start
    port.send(payloads.end)
    barrier.wait(timeout)
    port.close()
    return {"t0": t0, "t_end": t_end, "cpu_seconds": cpu, "samples_ns": samples,
            "items": rounds, "frames": rounds, "verified_items": rounds}


def _ponger(cfg, end, barrier):
    timeout = cfg["timeout_s"]
    port = end.open(cfg)
    barrier.wait(timeout)
    echoed, cpu_start = pong(port, cfg, cfg["warmup"])
    cpu = time.process_time() - cpu_start
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
