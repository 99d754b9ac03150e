"""The ipc experiment in-process on the host: every channel delivers exactly, the checks catch a
lost or corrupted message, the ring wraps correctly, bad points are refused before they run.

Small counts (10^3 messages) keep it fast; the figures are benchmarks, not tests.
"""

import json
import multiprocessing
import os
import random
import sys
import time

import pytest

from lab.experiments import SpecError, TrialCheckFailed, ipc, ipc_ends
from lab.experiments.ipc_catalog import python_refusal
from lab.experiments.ipc_ring import Ring, RingTimeout, max_message
from lab.families import ipc_budget

N = 1000
MiB = 1 << 20


def trial(variant, start_method="fork", **params):
    params.setdefault("messages", N)
    return ipc.run_trial({"experiment": "ipc", "variant": variant, "params": params,
                          "workers": None, "start_method": start_method,
                          "expect_affinity": None})


def shm_segments():
    try:
        return {name for name in os.listdir("/dev/shm") if name.startswith("psm_")}
    except FileNotFoundError:
        return set()


def assert_no_leftovers(segments_before):
    assert multiprocessing.active_children() == []
    assert shm_segments() - segments_before == set()


def assert_delivered(result, messages=N):
    check = result["check"]
    assert check["sent"] == messages
    assert check["received"] == messages
    assert check["payloads_verified"] == messages  # small counts: every payload compared
    assert result["seconds"] > 0
    assert result["cpu_seconds"] > 0
    rate = result["metrics"]["messages_per_second"]
    assert rate["unit"] == "1/s"
    assert rate["value"] == pytest.approx(messages / result["seconds"])


@pytest.mark.parametrize("size_bytes", [0, 1000])
@pytest.mark.parametrize("channel", ipc.CHANNELS)
def test_every_channel_delivers_the_exact_count(channel, size_bytes):
    if python_refusal(channel, sys.version_info[:2]):  # interpreter_queue: run in the sid image
        with pytest.raises(SpecError, match=r"needs Python 3\.14 or later.*this is Python 3"):
            trial(channel, size_bytes=size_bytes)
        return
    before = shm_segments()
    result = trial(channel, size_bytes=size_bytes)
    assert_delivered(result)
    assert result["check"]["channel"] == channel
    item_bytes = result["check"]["item_bytes"]
    assert item_bytes == (size_bytes or (8 if channel in ipc.BYTE_KINDS else 0))
    if item_bytes:
        assert result["metrics"]["bytes_per_second"]["value"] == pytest.approx(
            N * item_bytes / result["seconds"])
    else:
        assert "bytes_per_second" not in result["metrics"]
    assert result["check"]["setup_seconds"] > 0
    json.dumps(result)  # the record must travel as JSON
    assert_no_leftovers(before)


def test_the_tutorial_channels_come_first_and_the_doubles_are_not_channels():
    assert ipc.CHANNELS[:3] == ("pipe", "queue", "joinable_queue")
    assert ipc.REFERENCE_CHANNEL in ipc.CHANNELS
    for double in ("test_drop_one", "test_corrupt_one"):
        assert double in ipc.VARIANTS and double not in ipc.CHANNELS


@pytest.mark.parametrize("channel", ["pipe", "queue", "joinable_queue", "shm_ring"])
def test_seed_timing_keeps_the_tutorial_clock_and_still_checks(channel):
    result = trial(channel, timing="seed")
    assert_delivered(result)
    assert result["check"]["timing"] == "seed"
    assert result["check"]["warmup"] == 0  # the tutorial warms nothing up


@pytest.mark.parametrize("producers, consumers", [(2, 2), (4, 1)])
@pytest.mark.parametrize("channel", ["queue", "joinable_queue", "simple_queue", "manager_queue"])
def test_queues_serve_many_producers_and_consumers(channel, producers, consumers):
    result = trial(channel, messages=1001, producers=producers, consumers=consumers, batch=3,
                   size_bytes=16)
    assert_delivered(result, messages=1001)
    per_consumer = result["check"]["received_per_consumer"]
    assert len(per_consumer) == consumers and sum(per_consumer) == 1001
    assert sorted(result["check"]["seen_affinity"]) == sorted(
        [f"producer{i}" for i in range(producers)] + [f"consumer{j}" for j in range(consumers)])


def test_messages_count_items_and_a_batch_is_one_send():
    result = trial("queue", batch=7)
    assert_delivered(result)
    assert result["check"]["frames"] == 143  # ceil(1000 / 7): the last frame holds 6
    assert result["metrics"]["sends_per_second"]["value"] == pytest.approx(
        143 / result["seconds"])


@pytest.mark.parametrize("placement", ["free", "same"])  # same: both ends share one CPU
@pytest.mark.parametrize("size_bytes", [3000, 4096 - 4 - ipc.HEADER_BYTES])  # the largest that fits
def test_ring_wraps_around_with_messages_near_its_size(size_bytes, placement):
    before = shm_segments()
    result = trial("shm_ring", ring_bytes=4096, size_bytes=size_bytes, placement=placement)
    assert_delivered(result)
    assert result["check"]["ring_bytes"] == 4096
    assert_no_leftovers(before)


def test_ring_protocol_in_one_process_wraps_without_loss_or_duplicates():
    ring = Ring.create(256)
    ring.deadline = time.monotonic() + 20  # a protocol bug fails here instead of hanging
    try:
        rng = random.Random(7)
        sent, got = [], []
        for i in range(3000):  # random sizes: records straddle the end at every offset
            message = bytes([i % 251]) * rng.randrange(0, 120)
            if ring.used_bytes() + 4 + len(message) > 256 or rng.random() < 0.3:
                while ring.used_bytes():  # one process plays both ends: drain before full
                    got.append(ring.get())
            ring.put(message)
            sent.append(message)
        while ring.used_bytes():
            got.append(ring.get())
        assert got == sent
        ring.put(b"x" * max_message(256))  # exactly the largest message fits
        assert ring.get() == b"x" * max_message(256)
        with pytest.raises(ValueError, match="does not fit"):
            ring.put(b"x" * (max_message(256) + 1))
    finally:
        ring.close()
        ring.unlink()


def test_ring_gives_up_when_the_other_end_never_comes():
    ring = Ring.create(256)
    try:
        ring.deadline = time.monotonic()  # already past
        with pytest.raises(RingTimeout):
            ring.get()  # empty forever
        ring.put(b"y" * 200)
        with pytest.raises(RingTimeout):
            ring.put(b"y" * 200)  # full forever
    finally:
        ring.close()
        ring.unlink()


def test_a_frame_larger_than_the_ring_is_refused_at_spec_time():
    with pytest.raises(SpecError, match="does not fit a ring of 4096 bytes"):
        ipc_budget.validate("shm_ring", {"size_bytes": 4096 - 4 - ipc.HEADER_BYTES + 1,
                                         "ring_bytes": 4096})
    with pytest.raises(SpecError, match="does not fit"):
        trial("shm_ring", size_bytes=1000, batch=5, ring_bytes=4096)


@pytest.mark.parametrize("channel", ["pipe", "queue", "unix_socket", "shm_ring"])
def test_pingpong_reports_round_trip_latency(channel):
    result = trial(channel, pattern="pingpong", messages=300)
    m = result["metrics"]
    assert m["min_us"]["value"] <= m["p50_us"]["value"] <= m["p99_us"]["value"]
    assert m["p99_us"]["value"] <= m["max_us"]["value"]
    assert m["min_us"]["value"] <= m["mean_us"]["value"] <= m["max_us"]["value"]
    assert m["p50_us"]["unit"] == "us" and m["min_us"]["value"] > 0
    assert result["check"]["round_trips"] == 300 and result["check"]["echoed"] == 300
    assert m["round_trips_per_second"]["value"] == pytest.approx(300 / result["seconds"])


@pytest.mark.parametrize("timing", ["handshake", "seed"])
def test_a_channel_that_drops_one_message_fails_the_trial(timing):
    with pytest.raises(TrialCheckFailed, match="items were lost"):
        trial("test_drop_one", timing=timing)
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("params", [{}, {"size_bytes": 100, "batch": 10}, {"timing": "seed"}])
def test_a_channel_that_corrupts_one_payload_fails_the_trial(params):
    with pytest.raises(TrialCheckFailed, match="differs from what was sent"):
        trial("test_corrupt_one", **params)
    assert multiprocessing.active_children() == []


def test_the_checks_of_many_consumers_catch_a_duplicate_and_a_gap():
    shares, P = [3, 3], 2  # producer 0: indices 0, 2, 4; producer 1: 1, 3, 5
    ipc_ends.check_union([[0, 1, 1, 1, 4, 1], [2, 1, 3, 1, 5, 1]], shares, P)
    with pytest.raises(TrialCheckFailed, match="out of order or duplicated"):
        ipc_ends.check_union([[0, 1, 1, 1, 4, 1, 2, 1], [2, 1, 3, 1, 5, 1]], shares, P)
    with pytest.raises(TrialCheckFailed, match="items were lost"):
        ipc_ends.check_union([[0, 1, 1, 1, 4, 1], [3, 1, 5, 1]], shares, P)


def test_same_placement_pins_every_end_to_one_cpu():
    result = trial("pipe", placement="same")
    cpu = result["check"]["affinity"][0]
    assert result["check"]["seen_affinity"] == {"producer0": [cpu], "consumer0": [cpu]}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="split needs 2 CPUs")
@pytest.mark.parametrize("timing", ["handshake", "seed"])
def test_split_placement_pins_the_ends_to_different_cpus(timing):
    affinity = os.sched_getaffinity(0)
    result = trial("shm_ring", placement="split", timing=timing)
    assert_delivered(result)
    seen = result["check"]["seen_affinity"]
    assert len(seen["producer0"]) == 1 and len(seen["consumer0"]) == 1
    assert seen["producer0"] != seen["consumer0"]
    assert os.sched_getaffinity(0) == affinity  # seed pins the parent, then restores it


def test_split_on_one_cpu_is_refused():
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})
    try:
        with pytest.raises(SpecError, match="split needs at least 2 CPUs"):
            trial("pipe", placement="split")
    finally:
        os.sched_setaffinity(0, affinity)
    with pytest.raises(SpecError, match="split needs at least 2 CPUs"):
        ipc_budget.validate("pipe", {"placement": "split"}, cpus=1)
    assert ipc_budget.validate("pipe", {"placement": "split"}, cpus=2)["placement"] == "split"


@pytest.mark.parametrize("variant, params, fragment", [
    ("pipe", {"messages": 0}, "messages=0 is outside"),
    ("pipe", {"messages": -5}, "messages=-5 is outside"),
    ("pipe", {"messages": "10"}, "must be a whole number"),
    ("pipe", {"messages": 2.5}, "must be a whole number"),
    ("pipe", {"size_bytes": -1}, "size_bytes=-1 is outside"),
    ("pipe_bytes", {"size_bytes": MiB + 1}, "size_bytes=1048577 is outside"),
    ("pipe", {"batch": 0}, "batch=0 is outside"),
    ("pipe", {"speed": "fast"}, "unknown ipc params speed"),
    ("pipe", {"placement": "near"}, "placement='near' is not one of"),
    ("pipe", {"pattern": "burst"}, "pattern='burst' is not one of"),
    ("pipe", {"timing": "wall"}, "timing='wall' is not one of"),
    ("pipe", {"producers": 2, "consumers": 2}, "needs a queue channel"),
    ("shm_ring", {"producers": 4}, "needs a queue channel"),
    ("queue", {"messages": 3, "producers": 4}, "cannot feed 4 producers"),
    ("pipe", {"pattern": "pingpong", "batch": 2}, "pingpong is one pinger"),
    ("queue", {"timing": "seed", "producers": 2}, "1:1 stream"),
    ("test_drop_one", {"pattern": "pingpong"}, "stream pattern only"),
    ("pipe_bytes", {"size_bytes": MiB, "batch": 100}, "over the 64.0 MiB a send may carry"),
    ("carrier_pigeon", {}, "unknown ipc channel 'carrier_pigeon'"),
])
def test_bad_params_are_refused_in_one_line(variant, params, fragment):
    with pytest.raises(SpecError) as refused:
        ipc_budget.validate(variant, params)
    assert fragment in str(refused.value)
    assert "\n" not in str(refused.value)
    with pytest.raises(SpecError):
        trial(variant, **{"messages": N, **params})


def test_budget_refuses_a_million_one_mib_messages_at_planning_time():
    with pytest.raises(ipc_budget.BudgetExceeded) as refused:
        ipc_budget.check_budget({"messages": 10 ** 6, "size_bytes": MiB}, "shm_ring")
    message = str(refused.value)
    assert "max_bytes" in message and "977.5 GiB" in message and "\n" not in message
    assert isinstance(refused.value, SpecError)
    with pytest.raises(ipc_budget.BudgetExceeded, match="max_seconds"):
        ipc_budget.check_budget({"messages": 10 ** 7}, "manager_queue")
    with pytest.raises(ipc_budget.BudgetExceeded, match="max_bytes"):
        ipc_budget.check_budget({"messages": 1000, "size_bytes": 1000}, "pipe", max_bytes=10 ** 5)
    # The README's figures fit: 10^5 small messages, 10^5 x 64 KiB.
    ipc_budget.check_budget({"messages": 10 ** 5}, "manager_queue")
    fits = ipc_budget.check_budget({"messages": 10 ** 5, "size_bytes": 64 << 10}, "os_pipe")
    assert fits["bytes_total"] == (10 ** 5 + 1000) * (64 << 10)  # the warm-up moves bytes too


def test_estimate_grows_with_the_work_and_has_no_side_effects():
    small = ipc_budget.estimate({"messages": 10 ** 4}, "queue")
    large = ipc_budget.estimate({"messages": 10 ** 6}, "queue")
    assert set(small) >= {"bytes_total", "seconds_estimate", "memory_bytes"}
    assert large["seconds_estimate"] > small["seconds_estimate"] > 0
    assert large["bytes_total"] > small["bytes_total"] > 0
    assert ipc_budget.estimate({"messages": 10 ** 4, "pattern": "pingpong"}, "pipe")["bytes_total"] == \
        2 * ipc_budget.estimate({"messages": 10 ** 4}, "pipe")["bytes_total"]
    # Without a channel the planner still gets a (conservative) answer.
    assert ipc_budget.estimate({"messages": 10 ** 4})["seconds_estimate"] >= small["seconds_estimate"]
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
@pytest.mark.parametrize("channel, params", [("pipe", {}), ("shm_ring", {"size_bytes": 100}),
                                             ("queue", {"producers": 2, "consumers": 2})])
def test_spawn_and_forkserver_work_too(start_method, channel, params):
    before = shm_segments()
    result = trial(channel, start_method=start_method, **params)
    assert_delivered(result)
    assert result["check"]["start_method"] == start_method
    assert_no_leftovers(before)


def test_a_failed_trial_leaves_no_processes_or_segments():
    before = shm_segments()
    with pytest.raises((TimeoutError, RuntimeError)):
        trial("shm_ring", timeout_s=0.001)  # the deadline passes before the ends meet
    assert_no_leftovers(before)


def test_a_trial_runs_as_pid_1_as_in_a_container():
    """A container's trial is often pid 1: the children's orphan guard must not mistake that."""
    import shutil
    import subprocess
    import sys
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    code = ("import os, json; from lab.experiments import ipc; "
            "r = ipc.run_trial({'variant': 'pipe', 'params': {'messages': 100}, "
            "'start_method': 'fork'}); print(json.dumps([os.getpid(), r['check']['received']]))")
    done = subprocess.run(["unshare", "--pid", "--fork", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip("needs permission to make a pid namespace")
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [1, 100], done.stderr


def test_the_trial_runs_through_the_container_entry_point():
    from lab.experiments.__main__ import run
    spec = {"experiment": "ipc", "variant": "pipe", "params": {"messages": N},
            "workers": None, "start_method": "fork", "expect_affinity": None}
    result = run(spec)
    assert result["ok"] is True and result["check"]["received"] == N
    failed = run({**spec, "variant": "test_drop_one"})
    assert failed["ok"] is False and failed["error"].startswith("check failed:")


# ---------------------------------------------------------------------------------------------
# The unbounded queues: the tutorial's maxsize 0, the producer paced by the consumer's credits


def test_a_credit_paced_producer_stops_at_its_window_until_the_consumer_acknowledges():
    from lab.experiments import ipc_credits
    put = []
    reader, writer = os.pipe()
    try:
        send = ipc_credits.credited_sender(put.append, reader, window=4, every=2,
                                           deadline=time.monotonic() + 0.2)
        for item in range(4):
            send(item)  # the window: 4 messages ahead of any acknowledgement
        with pytest.raises(TimeoutError, match="credit window full"):
            send(4)  # nobody acknowledges: it waits, then gives up at the deadline
        assert put == [0, 1, 2, 3]
        recv = ipc_credits.crediting_receiver(lambda: put.pop(0), writer, every=2)
        assert [recv(), recv()] == [0, 1]  # two taken: one acknowledgement byte
        send(4)
        send(5)  # the acknowledgement gave 2 more
        assert put == [2, 3, 4, 5]
    finally:
        os.close(reader)
        os.close(writer)


@pytest.mark.parametrize("channel", ["queue_unbounded", "joinable_queue_unbounded"])
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_an_unbounded_queue_runs_through_its_credit_window_and_delivers_exactly(channel,
                                                                                 start_method):
    cfg = ipc.derive(channel, ipc.normalize(channel, {"size_bytes": 64 << 10}))
    assert cfg["queue_maxsize"] == 0 and cfg["credit_window"] == 255  # 16 MiB of 64 KiB frames
    result = trial(channel, start_method=start_method, messages=2000, size_bytes=64 << 10)
    assert_delivered(result, messages=2000)  # 2000 frames through a window of 255: 7 times over
    assert result["check"]["queue_maxsize"] == 0
    small = ipc.derive(channel, ipc.normalize(channel, {}))
    assert small["credit_window"] > 300_000  # small ints: a sized run never reaches it


@pytest.mark.parametrize("params", [{"timing": "seed"}, {"pattern": "pingpong"},
                                    {"producers": 2, "consumers": 2}, {"queue_maxsize": 10}])
def test_an_unbounded_queue_is_the_handshake_streams_alone(params):
    with pytest.raises(SpecError, match="the handshake clock's unbounded queue"):
        ipc_budget.validate("queue_unbounded", params)


def test_the_queue_is_bounded_under_the_handshake_clock_and_says_by_what():
    handshake = ipc.queue_bound("queue", ipc.normalize("queue", {}))
    assert handshake == 1000 and ipc.queue_bound("queue", ipc.normalize(
        "queue", {"size_bytes": 64 << 10})) == 255
    assert ipc.queue_bound("queue", ipc.normalize("queue", {"timing": "seed"})) == 0
    assert ipc.queue_bound("pipe", ipc.normalize("pipe", {})) is None
    from lab.experiments.ipc_catalog import display
    assert display("queue", 1000) == "Queue(maxsize=1000)"
    assert display("manager_queue", 255) == "Manager().Queue(maxsize=255)"
    assert display("queue", 0) == "Queue()" and display("pipe") == "Pipe()"


def test_every_channel_is_one_catalog_entry_and_a_missing_send_cost_is_no_key_error():
    from lab.experiments import ipc_catalog
    assert ipc.CHANNELS == tuple(ipc_catalog.CATALOG)
    for channel in ipc.VARIANTS:  # each has a cost: the estimate never fails on a channel
        assert ipc_budget.estimate({"messages": 1000}, channel)["seconds_estimate"] > 0
    assert ipc_budget.send_cost("a_channel_not_in_the_catalog") == ipc_catalog.DEFAULT_SEND_US
    bare = ipc_catalog.ChannelFacts("new_channel", "New()")  # an entry that names no cost
    assert bare.send_us == ipc_catalog.DEFAULT_SEND_US and bare.base == "new_channel"
