"""The ipc trial's receive loops and count checks: every frame verified as it arrives (index,
length, trailer, content), then what was sent, received and shared out compared exactly."""

import struct
import time
from array import array

from lab.experiments import TrialCheckFailed
from lab.experiments.ipc_codec import (END, FRAME_OVERHEAD, HEADER, INT, INT_BATCH, OBJECT, STOP,
                                      TRAILER, Expected, frame_bytes, message_mode)


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
