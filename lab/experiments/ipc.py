"""IPC: what moving messages between processes costs, channel by channel (issue 4).

The tutorial (seed/) sends 10^4 .. 10^6 ints from one process to another through Pipe(),
Queue() and JoinableQueue() and concludes that Pipe is much faster. This experiment measures that
claim and the channels beyond it, in one trial per (channel, parameters, CPUs, placement).

Variants (channels; `CHANNELS` in order, the tutorial's three first):
  pipe            Pipe() as the tutorial uses it: duplex, a socketpair on Linux; conn.send/recv
  queue           Queue(): pipe + feeder thread + locks + semaphore
  joinable_queue  JoinableQueue() with task_done() per item and join() in the producer
  pipe_oneway     Pipe(duplex=False): an os.pipe(); conn.send/recv
  simple_queue    SimpleQueue(): a locked pipe, pickling in the caller
  pipe_bytes      Pipe() with Connection.send_bytes/recv_bytes: no pickling
  manager_queue   Manager().Queue(): every put/get is a round trip to the manager process
  unix_socket     socket.socketpair(AF_UNIX, SOCK_STREAM) with 4-byte length-prefixed frames
  shm_ring        the lab's single-producer single-consumer ring over shared_memory (ipc_ring)
  os_pipe         raw os.write/os.read of fixed-size blocks through a 1 MiB pipe buffer: the
                  reference line (what the kernel's pipe gives without Python's framing)
`CHANNELS` is the user-facing list. Test doubles (in VARIANTS, never in CHANNELS; stream
pattern only; `TEST_DOUBLES` maps each to the channel it imitates): `test_drop_one` (a pipe
that silently loses one message), `test_corrupt_one` (pipe_bytes that flips one payload byte),
`test_tear_one` (shm_ring that delivers one frame torn: its second half from the frame before)
and `test_short_one` (a queue whose producer sends one item fewer than its share). Their trials
must fail with TrialCheckFailed.

Params (`PARAMS` holds the defaults; None means the default):
  messages     items moved in the timed section (>= 1; >= producers). For pingpong: round trips.
  size_bytes   payload bytes per item, 0 .. 1 MiB. 0: a small int on the pickling channels, an
               8-byte item on the byte channels (pipe_bytes, unix_socket, shm_ring, os_pipe)
  batch        items per send (a frame), 1 .. 100000; the last frame of a producer may hold fewer.
               `messages` counts items, so messages_per_second is items per second
  producers, consumers   1 each; several only on the queue channels (e.g. 2:2, 4:1)
  placement    free (the scheduler decides), same (every end on the first CPU of the trial's
               affinity), split (each end on its own CPU, round-robin over the affinity, producers
               first; needs >= 2 CPUs)
  pattern      stream (throughput) or pingpong (round-trip latency, one item each way)
  timing       handshake: both ends started, attached and warmed up, then released together; the
               clock runs from the producers' first send to the consumer's receipt of the last end
               marker (JoinableQueue: or the producers' join() returning, whichever is later).
               seed: the tutorial's programs: the parent is the producer, one reader process,
               the clock from right after the reader's start() until the reader is joined
               (JoinableQueue: until join() returns); the reader's start-up is inside it, as in
               the tutorial; no warm-up; queues unbounded (the tutorial's Queue() and
               JoinableQueue()) unless queue_maxsize is given. A parent thread (started before
               the clock) drains the channel if the reader dies, so the parent cannot hang.
               1:1 stream only
  warmup       items (or round trips) sent untimed before the clock; default min(1000, messages//10)
  ring_bytes   shm_ring data bytes (a frame must fit: SpecError otherwise). shm_ring runs on x86
               only (SpecError elsewhere): see lab.experiments.ipc_ring
  queue_maxsize   bound of queue/joinable_queue/manager_queue; default: what holds ~16 MiB of
               frames (handshake timing), unbounded (timing=seed)
  timeout_s    give up on the trial after this long; default 0.9 x the spec's time_limit_s
  max_bytes, max_seconds   the trial's budget (check_budget)

Result: seconds (timed section), cpu_seconds (process_time of every end over the timed section,
plus the manager process's CPU for manager_queue), metrics messages_per_second (items/s),
sends_per_second, bytes_per_second (payload bytes only; absent for small ints), cpu_us_per_message;
pingpong adds round_trips_per_second, p50_us, p99_us, mean_us, min_us, max_us. `check` says what was
verified: `sent` (what the producers counted as they sent; `sent_per_producer`), `received`,
how many payloads were compared (every one), pins of the ends. Every frame is checked in the
receive loop (see lab.experiments.ipc_ends): index, both ends of a byte frame, content.

The budget (bytes, seconds, memory of a point) is judged on the host before any trial starts:
lab/families/ipc_budget.py. Importing this module starts nothing.
"""

import math
import multiprocessing
import os
import queue
import threading
import time

from lab.experiments import SpecError, TrialCheckFailed, split_evenly, stop_processes
from lab.experiments.ipc_channels import (BYTE_KINDS, DUPLEX_KINDS, QUEUE_KINDS,
                                          TEST_DOUBLES, base_kind)
from lab.experiments.ipc_ends import FRAME_OVERHEAD, SMALL_ITEM_BYTES

NAME = "ipc"
TUTORIAL_CHANNELS = ("pipe", "queue", "joinable_queue")
CHANNELS = TUTORIAL_CHANNELS + ("pipe_oneway", "simple_queue", "pipe_bytes", "manager_queue",
                                "unix_socket", "shm_ring", "os_pipe")
REFERENCE_CHANNEL = "os_pipe"
VARIANTS = CHANNELS + tuple(TEST_DOUBLES)
BOUNDED_KINDS = ("queue", "joinable_queue", "manager_queue")  # take queue_maxsize
PLACEMENTS = ("free", "same", "split")
PATTERNS = ("stream", "pingpong")
TIMINGS = ("handshake", "seed")

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MAX_ITEM_BYTES = MiB
MAX_FRAME_BYTES = 64 * MiB
MAX_BATCH = 100_000
MAX_ENDS = 64
MAX_MESSAGES = 10 ** 9
DEFAULT_RING_BYTES = 4 * MiB
MIN_RING_BYTES = 256
MAX_RING_BYTES = 32 * MiB  # Docker's default /dev/shm is 64 MiB; ping-pong needs two rings
QUEUE_BUFFER_BYTES = 16 * MiB
QUEUE_MAXSIZE_CAP = 1000
DEFAULT_MAX_BYTES = 8 * GiB
DEFAULT_MAX_SECONDS = 300.0
DEFAULT_TIME_LIMIT_S = 600.0  # the host's trial limit when the spec names none
HEADER_BYTES = FRAME_OVERHEAD  # a byte frame's bytes beyond its items: header and trailer
OS_PIPE_BUFFER_BYTES = MiB  # the reference pipe's buffer (F_SETPIPE_SZ; Linux's default 64 KiB)
PARAMS = {
    "messages": 100_000,
    "size_bytes": 0,
    "batch": 1,
    "producers": 1,
    "consumers": 1,
    "placement": "free",
    "pattern": "stream",
    "timing": "handshake",
    "warmup": None,  # min(1000, messages // 10)
    "ring_bytes": DEFAULT_RING_BYTES,
    "queue_maxsize": None,  # what holds about QUEUE_BUFFER_BYTES of frames, at most 1000
    "timeout_s": None,  # max(120, 10 x seconds_estimate)
    "max_bytes": DEFAULT_MAX_BYTES,
    "max_seconds": DEFAULT_MAX_SECONDS,
    "min_seconds": None,  # the host sized `messages` to this (--messages auto): kept, not used
}


# ---------------------------------------------------------------------------------------------
# Params


def _whole(params, key, low, high):
    value = params[key]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"ipc param {key} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise SpecError(f"ipc param {key}={value} is outside {low} .. {high}")
    return value


def _positive(params, key):
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or value != value or value == float("inf"):
        raise SpecError(f"ipc param {key} must be a positive number, got {value!r}")
    return value


def _choice(params, key, choices):
    if params[key] not in choices:
        raise SpecError(f"ipc param {key}={params[key]!r} is not one of {', '.join(choices)}")
    return params[key]


def normalize(variant, params):
    """The params with defaults filled in, or SpecError (one line) naming what is wrong.

    `variant` None checks only what does not depend on the channel."""
    if variant is not None and variant not in VARIANTS:
        raise SpecError(f"unknown ipc channel {variant!r}; known: {', '.join(VARIANTS)}")
    if not isinstance(params, dict):
        raise SpecError(f"ipc params must be a mapping, got {type(params).__name__}")
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise SpecError(f"unknown ipc params {', '.join(unknown)}; known: {', '.join(PARAMS)}")
    p = dict(PARAMS)
    p.update({key: value for key, value in params.items() if value is not None})
    p["messages"] = _whole(p, "messages", 1, MAX_MESSAGES)
    p["size_bytes"] = _whole(p, "size_bytes", 0, MAX_ITEM_BYTES)
    p["batch"] = _whole(p, "batch", 1, MAX_BATCH)
    p["producers"] = _whole(p, "producers", 1, MAX_ENDS)
    p["consumers"] = _whole(p, "consumers", 1, MAX_ENDS)
    _choice(p, "placement", PLACEMENTS)
    _choice(p, "pattern", PATTERNS)
    _choice(p, "timing", TIMINGS)
    if p["warmup"] is None:
        p["warmup"] = min(1000, p["messages"] // 10)
    p["warmup"] = _whole(p, "warmup", 0, MAX_MESSAGES)
    p["ring_bytes"] = _whole(p, "ring_bytes", MIN_RING_BYTES, MAX_RING_BYTES)
    if p["queue_maxsize"] is not None:
        p["queue_maxsize"] = _whole(p, "queue_maxsize", 1, 10 ** 6)
    if p["timeout_s"] is not None:
        _positive(p, "timeout_s")
    _positive(p, "max_bytes")
    _positive(p, "max_seconds")
    if p["min_seconds"] is not None:
        _positive(p, "min_seconds")
    many = (p["producers"], p["consumers"]) != (1, 1)
    if p["messages"] < p["producers"]:
        raise SpecError(f"ipc: {p['messages']} messages cannot feed {p['producers']} producers")
    if p["pattern"] == "pingpong" and (many or p["batch"] != 1 or p["timing"] != "handshake"):
        raise SpecError("ipc pingpong is one pinger and one ponger, batch 1, handshake timing")
    if p["timing"] == "seed" and (many or p["pattern"] != "stream"):
        raise SpecError("ipc timing=seed is the tutorial's 1:1 stream (one producer, one "
                        "consumer, pattern stream)")
    if variant is None:
        return p
    base = base_kind(variant)
    if many and base not in QUEUE_KINDS:
        raise SpecError(f"ipc channel {variant} has one producer and one consumer; "
                        f"{p['producers']}:{p['consumers']} needs a queue channel "
                        f"({', '.join(QUEUE_KINDS)})")
    if variant in TEST_DOUBLES and p["pattern"] != "stream":
        raise SpecError(f"ipc test double {variant} runs the stream pattern only")
    item = _item_bytes(base, p["size_bytes"])
    frame = p["batch"] * max(item, SMALL_ITEM_BYTES) + (HEADER_BYTES if base in BYTE_KINDS else 0)
    if frame > MAX_FRAME_BYTES:
        raise SpecError(f"ipc: a frame of {p['batch']} items x {max(item, 1)} bytes is "
                        f"{_size(frame)}, over the {_size(MAX_FRAME_BYTES)} a send may carry")
    if base == "shm_ring":
        from lab.experiments.ipc_ring import max_message, refusal
        if refusal() is not None:
            raise SpecError(refusal())
        if frame > max_message(p["ring_bytes"]):
            raise SpecError(f"ipc shm_ring: a frame of {frame} bytes does not fit a ring of "
                            f"{p['ring_bytes']} bytes (at most {max_message(p['ring_bytes'])}); "
                            f"raise ring_bytes or lower size_bytes/batch")
    return p


def _item_bytes(base, size_bytes):
    """Payload bytes per item as carried: 0 for a small int; 8 on byte channels at size 0."""
    if size_bytes:
        return size_bytes
    return SMALL_ITEM_BYTES if base in BYTE_KINDS else 0


def _size(n):
    for unit, factor in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{int(n)} B"


def placement_pins(placement, cpus, producers, consumers):
    """{role: cpu or None}: where each end is pinned. Roles are producer0.., consumer0.."""
    roles = ([f"producer{i}" for i in range(producers)]
             + [f"consumer{j}" for j in range(consumers)])
    if placement == "free":
        return {role: None for role in roles}
    if placement == "same":
        return {role: cpus[0] for role in roles}
    if len(cpus) < 2:
        raise SpecError(f"ipc placement split needs at least 2 CPUs, the trial has "
                        f"{len(cpus)} ({', '.join(map(str, cpus))})")
    return {role: cpus[i % len(cpus)] for i, role in enumerate(roles)}


# ---------------------------------------------------------------------------------------------
# The trial



def _queue_maxsize(p, item):
    if p["queue_maxsize"] is not None:
        return p["queue_maxsize"]
    per_frame = p["batch"] * (item + 40)  # pickled item plus object overhead, roughly
    return max(2, min(QUEUE_MAXSIZE_CAP, QUEUE_BUFFER_BYTES // per_frame))


def derive(variant, p, start_method="fork", time_limit_s=None):
    """The configuration every end gets: the params plus what follows from them."""
    from lab.experiments import ipc_ends
    base = base_kind(variant)
    codec = "bytes" if base in BYTE_KINDS else ("object" if p["size_bytes"] else "int")
    item = _item_bytes(base, p["size_bytes"])
    batch = p["batch"]
    cfg = dict(p)
    cfg.update(variant=variant, channel=base, codec=codec, item_bytes=item)
    cfg["block_bytes"] = HEADER_BYTES + batch * item if base == "os_pipe" else 0
    cfg["pool_count"] = ipc_ends.pool_count(codec, batch, item)
    cfg["shares"] = split_evenly(p["messages"], p["producers"])
    cfg["warmup_shares"] = split_evenly(p["warmup"], p["producers"])
    if p["timing"] == "seed":  # the tutorial warms nothing up
        cfg["warmup"], cfg["warmup_shares"] = 0, [0] * p["producers"]
    cfg["queue_maxsize"] = _queue_maxsize(p, max(item, SMALL_ITEM_BYTES))
    if p["timing"] == "seed" and p["queue_maxsize"] is None:
        cfg["queue_maxsize"] = 0  # the tutorial's Queue() and JoinableQueue() are unbounded
    warm_frames = math.ceil(cfg["warmup_shares"][0] / batch)
    timed_frames = math.ceil(cfg["shares"][0] / batch)
    cfg["broken_message"] = warm_frames + timed_frames // 2 + 1  # a test double's victim
    if cfg["timeout_s"] is None:  # give up a little before the host would kill the trial
        cfg["timeout_s"] = max(10.0, 0.9 * float(time_limit_s or DEFAULT_TIME_LIMIT_S))
    cfg["helper_pid"] = None
    cfg["deadline"] = None
    # The children's parent, for their orphan guard (under forkserver it is the fork server).
    cfg["parent_pid"] = os.getpid() if start_method != "forkserver" else None
    return cfg


def run_trial(spec):
    """Run one ipc trial (see the module docstring); returns the result dict."""
    variant = spec.get("variant")
    if variant not in VARIANTS:
        raise SpecError(f"unknown ipc channel {variant!r}; known: {', '.join(VARIANTS)}")
    context = multiprocessing.get_context(spec.get("start_method") or None)
    method = context.get_start_method()
    cpus = sorted(os.sched_getaffinity(0))
    p = normalize(variant, spec.get("params") or {})
    pins = placement_pins(p["placement"], cpus, p["producers"], p["consumers"])
    cfg = derive(variant, p, method, spec.get("time_limit_s"))
    setup_start = time.perf_counter()
    if p["timing"] == "seed":
        outcome = _run_seed(cfg, context, pins)
    else:
        outcome = _run_ends(cfg, context, pins)
    outcome["check"].update({
        "channel": variant, "start_method": method, "placement": p["placement"],
        "affinity": cpus, "pins": pins, "split_smt_siblings": _smt_siblings(pins),
        "codec": cfg["codec"], "item_bytes": cfg["item_bytes"], "batch": p["batch"],
        "producers": p["producers"], "consumers": p["consumers"], "warmup": cfg["warmup"],
        "queue_maxsize": cfg["queue_maxsize"] if cfg["channel"] in BOUNDED_KINDS else None,
        "ring_bytes": p["ring_bytes"] if cfg["channel"] == "shm_ring" else None,
        "pipe_buffer_bytes": cfg.get("pipe_buffer_bytes"),
        "timing": p["timing"], "pattern": p["pattern"],
    })
    # Channel, processes, handshake and warm-up: before the clock, reported apart, never in it.
    outcome["check"]["setup_seconds"] = outcome.pop("_t_start") - setup_start
    return outcome


def _open_channels(cfg, context):
    """The trial's channel; ping-pong on a one-way kind gets a second one for the way back."""
    from lab.experiments.ipc_channels import Channel
    count = 2 if cfg["pattern"] == "pingpong" and cfg["channel"] not in DUPLEX_KINDS else 1
    return [Channel(cfg["variant"], context, cfg["queue_maxsize"], cfg["ring_bytes"],
                    OS_PIPE_BUFFER_BYTES) for _ in range(count)]


def _close_all(channels):
    for channel in channels:
        try:
            channel.close()
        except Exception:  # cleanup goes on; the trial's own outcome or error stands
            pass


def _run_ends(cfg, context, pins):
    """Handshake timing: every end in its own process, released together by a barrier."""
    from lab.experiments import ipc_ends
    from lab.experiments.ipc_channels import pingpong_ends
    P, C = cfg["producers"], cfg["consumers"]
    channels, processes = [], {}
    results = context.Queue()
    finished = False
    try:
        channels = _open_channels(cfg, context)
        if cfg["pattern"] == "pingpong":
            producer_end, consumer_end = pingpong_ends(channels)
        else:
            producer_end, consumer_end = channels[0].ends()
        cfg["helper_pid"] = channels[0].helper_pid
        cfg["pipe_buffer_bytes"] = channels[0].pipe_buffer_bytes
        if cfg["helper_pid"] is not None and cfg["placement"] == "same":
            os.sched_setaffinity(cfg["helper_pid"], {pins["producer0"]})
        cfg["deadline"] = time.monotonic() + cfg["timeout_s"]
        barrier = context.Barrier(P + C)
        ends_counter = context.Array("i", 2) if C > 1 else None
        if cfg["pattern"] == "pingpong":
            targets = [("producer0", ipc_ends.pinger_main,
                        (cfg, pins["producer0"], producer_end, barrier, results)),
                       ("consumer0", ipc_ends.ponger_main,
                        (cfg, pins["consumer0"], consumer_end, barrier, results))]
        else:
            targets = [(f"producer{i}", ipc_ends.producer_main,
                        (cfg, i, pins[f"producer{i}"], producer_end, barrier, results,
                         ends_counter)) for i in range(P)]
            targets += [(f"consumer{j}", ipc_ends.consumer_main,
                         (cfg, j, pins[f"consumer{j}"], consumer_end, barrier, results,
                          ends_counter)) for j in range(C)]
        for role, target, args in targets:
            process = context.Process(target=target, args=args, name=f"ipc-{role}",
                                      daemon=True)
            process.start()
            processes[role] = process
        reports = _collect(processes, results, cfg["deadline"], cfg["timeout_s"])
        finished = True
    finally:
        stop_processes(processes.values(), graceful=finished)
        results.close()
        _close_all(channels)
    if cfg["pattern"] == "pingpong":
        return _pingpong_outcome(cfg, reports)
    return _stream_outcome(cfg, reports)


def _collect(processes, results, deadline, timeout_s):
    """Wait for one report per process; a failure anywhere ends the wait (after a short grace
    for the reports it causes elsewhere) and is raised: TrialCheckFailed for a wrong answer."""
    reports, failures, dead_since = {}, [], {}
    grace_until = None
    while len(reports) + len(failures) < len(processes):
        now = time.monotonic()
        if any(f["check_failed"] for f in failures):
            break  # the root cause is known: a wrong answer
        if failures and grace_until is None:
            grace_until = now + 0.5  # a crash may be the echo of a failed check elsewhere
        if grace_until is not None and now > grace_until:
            break
        if now > deadline:
            waiting = sorted(set(processes) - set(reports))
            raise TimeoutError(f"ipc trial did not finish within timeout_s={timeout_s:g}: "
                               f"no report from {', '.join(waiting)}")
        try:
            report = results.get(timeout=0.1)
        except queue.Empty:
            heard = set(reports) | {f["role"] for f in failures}
            for role, process in processes.items():
                if role in heard or process.exitcode is None:
                    continue
                dead_since.setdefault(role, now)
                if now - dead_since[role] > 1.0:  # its report would have arrived by now
                    failures.append({"role": role, "check_failed": False, "secondary": False,
                                     "error": f"{role} exited with code {process.exitcode} "
                                              f"without a report"})
            continue
        if report.get("error"):
            failures.append(report)
        else:
            reports[report["role"]] = report
    if failures:
        _raise_failure(failures)
    return reports


def _raise_failure(failures):
    """The root cause: a failed check first, then an error that is not a broken barrier."""
    primary = (next((f for f in failures if f["check_failed"]), None)
               or next((f for f in failures if not f["secondary"]), failures[0]))
    if primary["check_failed"]:
        raise TrialCheckFailed(primary["error"])
    raise RuntimeError(primary["error"])


def _run_seed(cfg, context, pins):
    """The tutorial's timing: the parent produces, the clock runs from right after the reader's
    start() until it is joined (JoinableQueue: until join() returns)."""
    from lab.experiments import ipc_ends
    channels = []
    reader = watchdog = port = None
    results = context.Queue()
    finished = context.RawValue("b", 0)
    stop_read, stop_write = os.pipe()
    affinity = os.sched_getaffinity(0)
    completed = False
    try:
        channels = _open_channels(cfg, context)
        producer_end, consumer_end = channels[0].ends()
        cfg["helper_pid"] = channels[0].helper_pid
        cfg["pipe_buffer_bytes"] = channels[0].pipe_buffer_bytes
        cfg["deadline"] = time.monotonic() + cfg["timeout_s"]
        port = producer_end.open(cfg)
        payloads = ipc_ends.Payloads(cfg, 0)
        send_all, _ = payloads.sender(ipc_ends.items_to_send(cfg, 0))
        send = port.send
        if pins["producer0"] is not None:
            os.sched_setaffinity(0, {pins["producer0"]})
        if cfg["helper_pid"] is not None and cfg["placement"] == "same":
            os.sched_setaffinity(cfg["helper_pid"], {pins["producer0"]})
        process = context.Process(target=ipc_ends.seed_reader_main, name="ipc-consumer0",
                                  args=(cfg, pins["consumer0"], consumer_end, results, finished),
                                  daemon=True)
        process.start()
        reader = process
        watchdog = threading.Thread(target=ipc_ends.seed_watchdog, daemon=True,
                                    args=(reader, consumer_end, cfg, finished, stop_read))
        watchdog.start()
        producer_affinity = sorted(os.sched_getaffinity(0))
        cpu_start = time.process_time()
        t0 = time.perf_counter()
        sent, frames = send_all(send)
        if port.join is not None:
            port.join()
        else:
            send(payloads.end)
            report = _seed_report(results, reader, cfg)
            reader.join(max(0.0, cfg["deadline"] - time.monotonic()))
        t1 = time.perf_counter()
        cpu = time.process_time() - cpu_start
        if port.join is not None:  # the reader still waits for its end marker
            send(payloads.end)
            report = _seed_report(results, reader, cfg)
        completed = True
    finally:
        os.write(stop_write, b"x")
        if watchdog is not None:
            watchdog.join(2.0)
        os.sched_setaffinity(0, affinity)
        stop_processes([reader] if reader is not None else [], graceful=completed)
        if port is not None:
            port.close()
        results.close()
        _close_all(channels)
        os.close(stop_read)
        os.close(stop_write)
    _check_delivery(cfg, [sent], [frames], [report])
    seconds = t1 - t0
    check = _payload_check(cfg, [report])
    check.update({"sent": sent, "sent_per_producer": [sent], "received": report["items"],
                  "frames": frames,
                  "seen_affinity": {"producer0": producer_affinity,
                                    "consumer0": report["affinity"]}})
    return {"seconds": seconds, "cpu_seconds": cpu + report["cpu_seconds"],
            "metrics": _stream_metrics(cfg, seconds, frames, cpu + report["cpu_seconds"]),
            "check": check, "_t_start": t0}


def _seed_report(results, reader, cfg):
    return _collect({"consumer0": reader}, results, cfg["deadline"],
                    cfg["timeout_s"])["consumer0"]


def _payload_check(cfg, consumer_reports):
    verified = sum(r["verified_items"] for r in consumer_reports)
    if cfg["codec"] == "int" and cfg["batch"] == 1:
        how = "every item's index compared in the loop (the int is the payload)"
    elif cfg["codec"] == "bytes":
        how = "every frame's index at both ends and its content compared in the loop"
    else:
        how = "every frame's index and content compared in the loop"
    return {"payload_check": how, "payloads_verified": verified}


def _check_delivery(cfg, sent, frames_sent, consumers):
    """What the producers counted as sent must be their shares, and what the consumers received
    must be exactly that: per producer, and frame for frame."""
    from lab.experiments.ipc_ends import check_counts, check_sent, check_union
    check_sent(sent, cfg["shares"])
    if len(consumers) == 1:
        check_counts(consumers[0], sent, cfg["producers"])
    else:
        check_union([r["records"] for r in consumers], sent, cfg["producers"])
    received = sum(r["items"] for r in consumers)
    frames_received = sum(r["frames"] for r in consumers)
    if received != sum(sent) or frames_received != sum(frames_sent):
        raise TrialCheckFailed(f"sent {sum(sent)} items in {sum(frames_sent)} frames, received "
                               f"{received} in {frames_received}")


def _stream_outcome(cfg, reports):
    P, C = cfg["producers"], cfg["consumers"]
    producers = [reports[f"producer{i}"] for i in range(P)]
    consumers = [reports[f"consumer{j}"] for j in range(C)]
    t_start = min(r["t0"] for r in producers)
    last = [r["t_end"] for r in consumers if r["t_end"] is not None]
    if len(last) != 1:
        raise TrialCheckFailed(f"{len(last)} consumers saw the last end of stream, expected one")
    t_end = last[0]
    if cfg["channel"] == "joinable_queue":
        t_end = max([t_end] + [r["t_join"] for r in producers])
    seconds = t_end - t_start
    if not seconds > 0:
        raise RuntimeError(f"timed section of {seconds} s: the clocks disagree")
    sent_per_producer = [r["items"] for r in producers]
    _check_delivery(cfg, sent_per_producer, [r["frames"] for r in producers], consumers)
    sent = sum(sent_per_producer)
    received = sum(r["items"] for r in consumers)
    frames = sum(r["frames"] for r in producers)
    helper = producers[0].get("helper_cpu_seconds")
    cpu = sum(r["cpu_seconds"] for r in producers + consumers) + (helper or 0.0)
    check = _payload_check(cfg, consumers)
    check.update({"sent": sent, "sent_per_producer": sent_per_producer, "received": received,
                  "frames": frames, "received_per_consumer": [r["items"] for r in consumers],
                  "helper_cpu_seconds": helper,
                  "seen_affinity": {role: r["affinity"] for role, r in reports.items()}})
    return {"seconds": seconds, "cpu_seconds": cpu,
            "metrics": _stream_metrics(cfg, seconds, frames, cpu), "check": check,
            "_t_start": t_start}


def _metric(value, unit):
    return {"value": value, "unit": unit}


def _stream_metrics(cfg, seconds, frames, cpu):
    n = cfg["messages"]
    metrics = {"messages_per_second": _metric(n / seconds, "1/s"),
               "sends_per_second": _metric(frames / seconds, "1/s"),
               "cpu_us_per_message": _metric(cpu / n * 1e6, "us")}
    if cfg["item_bytes"]:
        metrics["bytes_per_second"] = _metric(n * cfg["item_bytes"] / seconds, "B/s")
    return metrics


def _pingpong_outcome(cfg, reports):
    pinger, ponger = reports["producer0"], reports["consumer0"]
    samples = sorted(pinger["samples_ns"])
    n = len(samples)
    if n != cfg["messages"]:
        raise TrialCheckFailed(f"{n} round trips timed, expected {cfg['messages']}")
    seconds = pinger["t_end"] - pinger["t0"]
    cpu = pinger["cpu_seconds"] + ponger["cpu_seconds"]
    middle = n // 2
    p50 = samples[middle] if n % 2 else (samples[middle - 1] + samples[middle]) / 2
    p99 = samples[max(0, math.ceil(0.99 * n) - 1)]  # nearest rank
    metrics = {"round_trips_per_second": _metric(n / seconds, "1/s"),
               "messages_per_second": _metric(2 * n / seconds, "1/s"),
               "p50_us": _metric(p50 / 1e3, "us"), "p99_us": _metric(p99 / 1e3, "us"),
               "mean_us": _metric(sum(samples) / n / 1e3, "us"),
               "min_us": _metric(samples[0] / 1e3, "us"),
               "max_us": _metric(samples[-1] / 1e3, "us"),
               "cpu_us_per_message": _metric(cpu / (2 * n) * 1e6, "us")}
    if cfg["item_bytes"]:
        metrics["bytes_per_second"] = _metric(2 * n * cfg["item_bytes"] / seconds, "B/s")
    check = _payload_check(cfg, [pinger])
    check.update({"round_trips": n, "echoed": ponger["items"],
                  "seen_affinity": {role: r["affinity"] for role, r in reports.items()}})
    return {"seconds": seconds, "cpu_seconds": cpu, "metrics": metrics, "check": check,
            "_t_start": pinger["t0"]}


def _smt_siblings(pins):
    """For split placement: whether producer0's and consumer0's CPUs are SMT siblings (None if
    not split or the topology is unreadable)."""
    a, b = pins.get("producer0"), pins.get("consumer0")
    if a is None or b is None or a == b:
        return None
    try:
        with open(f"/sys/devices/system/cpu/cpu{a}/topology/thread_siblings_list") as f:
            text = f.read().strip()
    except OSError:
        return None
    siblings = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        siblings.update(range(int(low), int(high or low) + 1))
    return b in siblings
