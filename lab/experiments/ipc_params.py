"""The ipc trial's params: what a point may ask, the defaults and limits, and `normalize`, which
refuses in one line what a channel does not offer; also what follows from the params alone (the
queue's bound, the credit window, where each end is pinned). Standard library only.

The params themselves are described in lab.experiments.ipc's docstring.
"""

from lab.experiments import SpecError, choice_param, number_param, whole_param
from lab.experiments.ipc_catalog import (BOUNDED_KINDS, BYTE_KINDS, CHANNELS,  # noqa: F401
                                         QUEUE_KINDS, facts)
from lab.experiments.ipc_channels import TEST_DOUBLES, base_kind
from lab.experiments.ipc_ends import FRAME_OVERHEAD, SMALL_ITEM_BYTES

VARIANTS = CHANNELS + tuple(TEST_DOUBLES)
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
    "bytes_per_trial": None,  # the host capped a sized count at this / size_bytes: kept, not used
}


# ---------------------------------------------------------------------------------------------
# Params


def _whole(params, key, low, high):
    return whole_param("ipc", key, params[key], low, high)


def _positive(params, key):
    return number_param("ipc", key, params[key], above_low=True)


def _choice(params, key, choices):
    return choice_param("ipc", key, params[key], choices)


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
    for key in ("min_seconds", "bytes_per_trial"):
        if p[key] is not None:
            _positive(p, key)
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
    if facts(variant).ends != "processes" and p["timing"] == "seed":
        raise SpecError(f"ipc channel {variant} runs the handshake clock only (timing=seed is the "
                        f"tutorial's programs: processes)")
    on_own = facts(variant).credits and not facts(variant).built_on  # pingpong is its own
    if facts(variant).credits and (many or (p["pattern"] != "stream" and not on_own)
                                   or p["timing"] != "handshake"
                                   or p["queue_maxsize"] is not None):
        raise SpecError(f"ipc channel {variant} is the handshake clock's unbounded queue: 1:1 "
                        f"streams, no queue_maxsize (seed's queue is already unbounded; "
                        f"ping-pong never fills a bound)")
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


def _queue_maxsize(p, item):
    if p["queue_maxsize"] is not None:
        return p["queue_maxsize"]
    per_frame = p["batch"] * (item + 40)  # pickled item plus object overhead, roughly
    return max(2, min(QUEUE_MAXSIZE_CAP, QUEUE_BUFFER_BYTES // per_frame))


def queue_bound(variant, p):
    """The maxsize a point's queue runs with: None where the channel takes no bound, 0 where
    it is unbounded (timing=seed: the tutorial's Queue(); the credit-paced queues), else the
    bound (handshake: what holds about QUEUE_BUFFER_BYTES of frames, at most 1000)."""
    base = base_kind(variant)
    if base not in BOUNDED_KINDS:
        return None
    if facts(variant).credits or (p["timing"] == "seed" and p["queue_maxsize"] is None):
        return 0
    return _queue_maxsize(p, max(_item_bytes(base, p["size_bytes"]), SMALL_ITEM_BYTES))


def credit_window(variant, p):
    """(window, every) of a credit-paced queue (lab.experiments.ipc_credits): the bounded
    queue's memory budget in frames, without its cap; None for every other channel."""
    if not facts(variant).credits:
        return None
    from lab.experiments.ipc_credits import window_sizes
    item = max(_item_bytes(base_kind(variant), p["size_bytes"]), SMALL_ITEM_BYTES)
    return window_sizes(QUEUE_BUFFER_BYTES // (p["batch"] * (item + 40)))
