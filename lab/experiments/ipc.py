"""IPC: what moving messages between processes costs, channel by channel (issue 4).

The tutorial (seed/) sends 10^4 .. 10^6 ints from one process to another through Pipe(),
Queue() and JoinableQueue() and concludes that Pipe is much faster. This experiment measures that
claim and the channels beyond it, in one trial per (channel, parameters, CPUs, placement).

Variants (channels; `CHANNELS` in order, the tutorial's three first):
  pipe            Pipe() as the tutorial uses it: duplex, a socketpair on Linux; conn.send/recv
  queue           Queue(): pipe + feeder thread + locks + semaphore; bounded (queue_maxsize)
                  under the handshake clock, the tutorial's unbounded Queue() under seed
  joinable_queue  JoinableQueue() with task_done() per item and join() in the producer; bounded
                  like queue
  queue_unbounded, joinable_queue_unbounded   the same, unbounded under the handshake clock
                  (maxsize 0): the producer is paced instead by the consumer's credits, at most
                  ~16 MiB of frames ahead (lab.experiments.ipc_credits); 1:1 stream only
  pipe_oneway     Pipe(duplex=False): an os.pipe(); conn.send/recv
  simple_queue    SimpleQueue(): a locked pipe, pickling in the caller
  pipe_bytes      Pipe() with Connection.send_bytes/recv_bytes: no pickling
  manager_queue   Manager().Queue(): every put/get is a round trip to the manager process
  unix_socket     socket.socketpair(AF_UNIX, SOCK_STREAM) with 4-byte length-prefixed frames
  shm_ring        the lab's single-producer single-consumer ring over shared_memory (ipc_ring)
  thread_queue    queue.Queue() between two threads of the trial's one process (bounded like
                  queue); the ends' CPU is each thread's own (thread_time)
  interpreter_queue   concurrent.interpreters.create_queue() between two interpreters of one
                  process, each in its own thread (Python 3.14+; refused on older ones): what
                  is shareable crosses as is, the rest pickled; unbounded, paced by credits like
                  queue_unbounded; its blocking get() and put() poll every 10 ms (CPython's own
                  queue), so a ping-pong round trip costs about that; 1:1 only
  os_pipe         raw os.write/os.read of fixed-size blocks through a 1 MiB pipe buffer: the
                  reference line (what the kernel's pipe gives without Python's framing)
`CHANNELS` is the user-facing list; every channel's facts (kind, display name, send cost) are
one entry of lab.experiments.ipc_catalog. Test doubles (in VARIANTS, never in CHANNELS; stream
pattern only; `TEST_DOUBLES` maps each to the channel it imitates): `test_drop_one` (a pipe
that silently loses one message), `test_corrupt_one` (pipe_bytes that flips one payload byte),
`test_tear_one` (shm_ring that delivers one frame torn: its second half from the frame before),
`test_short_one` (a queue whose producer sends one item fewer than its share), and
`test_drop_thread`, `test_drop_interpreter` (thread_queue and interpreter_queue losing one). Their trials
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
               frames, at most 1000 (handshake timing), unbounded (timing=seed); the report
               names a bounded queue by its bound, e.g. Queue(maxsize=1000)
  timeout_s    give up on the trial after this long; default 0.9 x the spec's time_limit_s
  max_bytes, max_seconds   the trial's budget (check_budget)
  min_seconds, bytes_per_trial   what the host sized `messages` to (--messages auto, capped at
               bytes_per_trial / size_bytes): kept in the record, not used by the trial

Result: seconds (timed section), cpu_seconds (process_time of every end over the timed section,
plus the manager process's CPU for manager_queue), metrics messages_per_second (items/s),
sends_per_second, bytes_per_second (payload bytes only; absent for small ints), cpu_us_per_message;
pingpong adds round_trips_per_second, p50_us, p99_us, mean_us, min_us, max_us. `check` says what was
verified: `sent` (what the producers counted as they sent; `sent_per_producer`), `received`,
how many payloads were compared (every one), pins of the ends. Every frame is checked in the
receive loop (see lab.experiments.ipc_ends): index, both ends of a byte frame, content.

The budget (bytes, seconds, memory of a point) is judged on the host before any trial starts:
lab/families/ipc_budget.py. Importing this module starts nothing. It owns `derive` and `run_trial`; the params are
lab.experiments.ipc_params, the channels' facts lab.experiments.ipc_catalog, the orchestration
lab.experiments.ipc_run, the outcomes lab.experiments.ipc_outcomes.
"""

import math
import multiprocessing
import os
import platform
import sys
import time

from lab.experiments import SpecError, split_evenly
from lab.experiments.ipc_catalog import (BOUNDED_KINDS, BYTE_KINDS, CHANNELS,  # noqa: F401
                                         REFERENCE_CHANNEL, TUTORIAL_CHANNELS, facts,
                                         python_refusal)
from lab.experiments import ipc_run
from lab.experiments.ipc_channels import TEST_DOUBLES, base_kind  # noqa: F401
from lab.experiments.ipc_outcomes import smt_siblings
from lab.experiments.ipc_params import (  # noqa: F401 (the trial's names, kept importable here)
    DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS, DEFAULT_RING_BYTES, DEFAULT_TIME_LIMIT_S, GiB,
    HEADER_BYTES, KiB, MAX_BATCH, MAX_ENDS, MAX_FRAME_BYTES, MAX_ITEM_BYTES, MAX_MESSAGES,
    MAX_RING_BYTES, MIN_RING_BYTES, MiB, OS_PIPE_BUFFER_BYTES, PARAMS, PATTERNS, PLACEMENTS,
    QUEUE_BUFFER_BYTES, QUEUE_MAXSIZE_CAP, SMALL_ITEM_BYTES, TIMINGS, VARIANTS, _item_bytes,
    _queue_maxsize, _size, credit_window, normalize, placement_pins, queue_bound)

NAME = "ipc"


def derive(variant, p, start_method="fork", time_limit_s=None):
    """The configuration every end gets: the params plus what follows from them."""
    from lab.experiments import ipc_ends
    base = base_kind(variant)
    codec = "bytes" if base in BYTE_KINDS else ("object" if p["size_bytes"] else "int")
    item = _item_bytes(base, p["size_bytes"])
    batch = p["batch"]
    cfg = dict(p)
    cfg.update(variant=variant, channel=base, codec=codec, item_bytes=item,
               ends=facts(base).ends)
    cfg["block_bytes"] = HEADER_BYTES + batch * item if base == "os_pipe" else 0
    cfg["pool_count"] = ipc_ends.pool_count(codec, batch, item)
    cfg["shares"] = split_evenly(p["messages"], p["producers"])
    cfg["warmup_shares"] = split_evenly(p["warmup"], p["producers"])
    if p["timing"] == "seed":  # the tutorial warms nothing up
        cfg["warmup"], cfg["warmup_shares"] = 0, [0] * p["producers"]
    cfg["queue_maxsize"] = queue_bound(variant, p) or 0  # 0: unbounded
    cfg["credit_window"], cfg["credit_every"] = credit_window(variant, p) or (None, None)
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
    refused = python_refusal(base_kind(variant), sys.version_info[:2])
    if refused:
        raise SpecError(f"ipc channel {refused}; this is Python {platform.python_version()}")
    context = multiprocessing.get_context(spec.get("start_method") or None)
    method = context.get_start_method()
    cpus = sorted(os.sched_getaffinity(0))
    p = normalize(variant, spec.get("params") or {})
    pins = placement_pins(p["placement"], cpus, p["producers"], p["consumers"])
    cfg = derive(variant, p, method, spec.get("time_limit_s"))
    setup_start = time.perf_counter()
    if p["timing"] == "seed":
        outcome = ipc_run.run_seed(cfg, context, pins)
    else:
        outcome = ipc_run.run_ends(cfg, context, pins)
    outcome["check"].update({
        "channel": variant, "start_method": method, "placement": p["placement"],
        "affinity": cpus, "pins": pins, "split_smt_siblings": smt_siblings(pins),
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
