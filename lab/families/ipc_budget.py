"""What an ipc point will cost, judged on the host before any trial starts.

Estimates (bytes moved, seconds, memory) for --dry-run and the progress line, and the trial
budget that refuses a point (e.g. 10^6 x 1 MiB) before anything runs. The send costs are in
each channel's entry of lab.experiments.ipc_catalog (where all of a channel's facts live, so
adding a channel is one place); the rest is host-side only.
"""

import math

from lab.experiments import SpecError
from lab.experiments.ipc import (HEADER_BYTES, GiB, _item_bytes, _size, credit_window,
                                 normalize, queue_bound)
from lab.experiments.ipc_catalog import BYTE_KINDS, facts
from lab.experiments.ipc_channels import TEST_DOUBLES, base_kind
from lab.experiments.ipc_ends import POOL_BYTES, RETAIN_BYTES, SMALL_ITEM_BYTES


MAX_MEMORY_BYTES = GiB  # a trial's processes together; the container's limit is 1 GiB


class BudgetExceeded(SpecError):
    """The point would move more bytes, take longer or hold more memory than a trial may."""


_BATCH_ITEM_US = 0.15  # pickling one more small item in a batch
_PICKLE_BYTES_PER_S = 1.0e9
_RAW_BYTES_PER_S = 2.0e9
_ROUND_TRIP_WAKE_US = 20.0  # two kernel wake-ups per ping-pong round
_START_SECONDS = {"fork": 0.01, "forkserver": 0.05, "spawn": 0.15,  # an end's start, by place
                  "threads": 0.001, "interpreters": 0.05}


def estimate(params, variant=None, start_method="fork"):
    """What a trial with `params` moves and roughly how long it takes; no side effects.

    Returns dict(bytes_total: payload bytes moved including the warm-up (pingpong: both ways;
    a small int counts as 8), seconds_estimate: rough whole-trial seconds, memory_bytes: rough
    peak memory of the trial's processes). Without a variant the slowest ordinary queue's
    costs are assumed."""
    p = normalize(variant, params)
    channel = TEST_DOUBLES.get(variant, variant) if variant else "joinable_queue"
    base = base_kind(channel)
    item = max(_item_bytes(base, p["size_bytes"]), SMALL_ITEM_BYTES)
    items = p["messages"] + p["warmup"]
    ways = 2 if p["pattern"] == "pingpong" else 1
    bytes_total = items * item * ways
    frames = math.ceil(items / p["batch"])
    send_us = send_cost(channel)
    rate = _RAW_BYTES_PER_S if base in BYTE_KINDS else _PICKLE_BYTES_PER_S
    if p["pattern"] == "pingpong":
        round_trip_us = facts(channel).round_trip_us  # the catalog's, where it is not the sum
        if round_trip_us is None:
            round_trip_us = 2 * send_us + _ROUND_TRIP_WAKE_US
        seconds = items * round_trip_us * 1e-6
    else:
        seconds = frames * send_us * 1e-6
        if base not in BYTE_KINDS:
            seconds += (items - frames) * _BATCH_ITEM_US * 1e-6
    seconds += bytes_total / rate
    processes = p["producers"] + p["consumers"] + facts(base).helpers
    start_method = {"processes": start_method or "fork"}.get(facts(base).ends, facts(base).ends)
    seconds += processes * _START_SECONDS.get(start_method, 0.15)
    return {"bytes_total": bytes_total, "seconds_estimate": seconds,
            "memory_bytes": _memory_estimate(channel, p, item)}


def send_cost(channel):
    """Rough microseconds of one small send (the catalog's entry; a channel without one: the
    catalog's default, never a KeyError)."""
    return facts(channel).send_us


def _memory_estimate(channel, p, item):
    base = base_kind(channel)
    frame = p["batch"] * item + HEADER_BYTES
    total = p["messages"] * item
    # prebuilt frames: each producer sends them, each consumer compares every frame against them
    memory = min(POOL_BYTES, frame * 7) * (p["producers"] + p["consumers"])
    memory += min(total, RETAIN_BYTES) * p["consumers"]  # kept for a check after the clock
    if base not in BYTE_KINDS and p["size_bytes"] == 0 and p["batch"] > 1:
        memory += p["messages"] * 40  # prebuilt lists of ints
    bound, credits = queue_bound(channel, p), credit_window(channel, p)
    if credits:  # the unbounded queue holds at most its credit window
        memory += credits[0] * frame
    elif bound == 0:  # the tutorial's unbounded queue may hold every frame
        memory += math.ceil(p["messages"] / p["batch"]) * (frame + 100)
    elif bound:
        memory += bound * frame
    if base == "shm_ring":
        memory += p["ring_bytes"] * (2 if p["pattern"] == "pingpong" else 1)
    if p["consumers"] > 1:
        memory += math.ceil(p["messages"] / p["batch"]) * 16  # index records
    return memory


def check_budget(params, variant=None, max_bytes=None, max_seconds=None,
                 start_method="fork"):
    """Refuse a point over the trial budget with BudgetExceeded (one line saying what to lower);
    otherwise return its estimate. Limits default to the params' max_bytes / max_seconds."""
    p = normalize(variant, params)
    max_bytes = max_bytes if max_bytes is not None else p["max_bytes"]
    max_seconds = max_seconds if max_seconds is not None else p["max_seconds"]
    guess = estimate(p, variant, start_method)
    what = (f"ipc {variant or 'point'}: {p['messages']} messages x "
            f"{p['size_bytes'] or 'small'}{' bytes' if p['size_bytes'] else ''}")
    if guess["bytes_total"] > max_bytes:
        raise BudgetExceeded(f"{what} moves {_size(guess['bytes_total'])}, over the trial "
                             f"budget of {_size(max_bytes)} (max_bytes); lower messages or size")
    if guess["seconds_estimate"] > max_seconds:
        raise BudgetExceeded(f"{what} would take about {guess['seconds_estimate']:.0f} s, over "
                             f"the trial budget of {max_seconds:g} s (max_seconds); lower "
                             f"messages or size")
    if guess["memory_bytes"] > MAX_MEMORY_BYTES:
        raise BudgetExceeded(f"{what} needs about {_size(guess['memory_bytes'])} of memory, over "
                             f"{_size(MAX_MEMORY_BYTES)}; lower messages, batch or size")
    return guess


def validate(variant, params, cpus=None, start_method="fork"):
    """Everything the host can check before a container starts: the channel, the params, the
    placement against `cpus` (a CPU count, if known) and the budget. Returns the normalized
    params; raises SpecError (BudgetExceeded for the budget) with a one-line reason."""
    p = normalize(variant, params)
    if cpus is not None and p["placement"] == "split" and cpus < 2:
        raise SpecError(f"ipc placement split needs at least 2 CPUs, the point has {cpus}")
    check_budget(p, variant, start_method=start_method)
    return p




def max_count(variant, params, start_method="fork"):
    """The most messages (or round trips) a point may have within the trial budget."""
    count = 10 ** 9
    while count > 1:
        try:
            check_budget({**params, "messages": count, "warmup": None}, variant,
                         start_method=start_method)
            return count
        except BudgetExceeded:
            count //= 2
    return 1


LEAST_COUNT = 1000          # a cheap channel's least count: many samples for its percentiles
LEAST_SAMPLES = 100         # ... never fewer than this (a p99 needs 100 round trips)
LEAST_COUNT_SECONDS = 0.5   # ... nor more than this long by the catalog's costs: a channel whose
                            # round trip costs 10 ms (the interpreters queue's poll) gets 100,
                            # about 1 s, not 1000 (10 s, 20 s on a busy machine)


def per_message_seconds(variant, params, start_method="fork"):
    """Seconds one more message (or round trip) adds to the point's trial, by the estimate."""
    def cost(count):
        return estimate({**params, "messages": count, "warmup": 0}, variant,
                        start_method)["seconds_estimate"]
    return max((cost(20_000) - cost(10_000)) / 10_000, 1e-9)


def least_count(variant, params, start_method="fork"):
    """The fewest messages (or round trips) an auto-sized point runs: LEAST_COUNT, or for a
    channel whose messages cost more than LEAST_COUNT_SECONDS / LEAST_COUNT each, what fills
    LEAST_COUNT_SECONDS, and at least LEAST_SAMPLES."""
    fill = math.ceil(LEAST_COUNT_SECONDS / per_message_seconds(variant, params, start_method))
    return max(LEAST_SAMPLES, min(LEAST_COUNT, fill))


def count_for(variant, params, seconds, start_method="fork"):
    """About how many messages (or round trips) make the point's timed section last `seconds`,
    by the estimate (the first guess, before its warm-up trial has measured it), at least
    least_count (sized by the channel's cost) and within the budget."""
    per_message = per_message_seconds(variant, params, start_method)
    least = least_count(variant, params, start_method)
    return int(min(max(least, seconds / per_message), max_count(variant, params, start_method)))
