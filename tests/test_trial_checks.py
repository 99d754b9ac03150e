"""Every number true: the checks inside a trial fire on the broken input they exist for.

Each check is proven by a deliberately broken variant (a test double) whose trial must fail,
or by feeding the check a broken input directly; where the old check would have let the input
through, the test says so. Small work and counts keep it fast; no test asserts a duration.
"""

import json
import math
import multiprocessing
import os
import platform
import struct
import time

import pytest

from lab import sysinfo
from lab.experiments import SpecError, TrialCheckFailed, ipc, ipc_ends, scaling
from lab.experiments import scaling_clock, scaling_processes, scaling_task
from lab.experiments.__main__ import run as run_container_trial
from lab.experiments.ipc_channels import TEST_DOUBLES as IPC_TEST_DOUBLES
from lab.experiments.ipc_channels import Channel
from lab.experiments.ipc_ring import refusal
from lab.families import ipc_budget

KiB = 1 << 10


def scaling_trial(variant, work=400_000, workers=2, start_method="fork"):
    return scaling.run_trial({"experiment": "scaling", "variant": variant,
                              "params": {"work": work}, "workers": workers,
                              "start_method": start_method, "expect_affinity": None})


def ipc_trial(variant, **params):
    params.setdefault("messages", 1000)
    return ipc.run_trial({"experiment": "ipc", "variant": variant, "params": params,
                          "workers": None, "start_method": "fork", "expect_affinity": None})


def old_float_check_passes(total, iterations):
    """The check scaling had before: the whole sum within rel_tol=1e-6 of n x one iteration."""
    return math.isclose(total, iterations * scaling.UNIT_VALUE, rel_tol=1e-6, abs_tol=1e-9)


# ---------------------------------------------------------------------------------------------
# 1. scaling: an exact checksum per chunk


@pytest.mark.parametrize("unit", [scaling.UNIT_VALUE, 0.1, 1 / 3, 0.75, 3.0, 2 ** -10,
                                  1 + 2 ** -52, math.ldexp(0b1011 << 49 | 1 << 3, -55)])
def test_exact_sum_is_what_adding_one_by_one_gives(unit):
    total = 0.0
    for n in range(1, 5001):  # every count through the first binades, ties to even included
        total += unit
        assert scaling.float_bits(scaling.exact_sum(n, unit)) == scaling.float_bits(total), n
    for _ in range(5001, 300_001):
        total += unit
    assert scaling.exact_sum(300_000, unit) == total


def test_the_work_sums_to_exact_sum_of_its_iterations():
    for iterations in (0, 1, 7, 123_457):
        assert scaling.spin(iterations)["result"] == scaling.exact_sum(iterations)


@pytest.mark.parametrize("variant", ["serial", "strong", "weak", "process", "seed"])
def test_every_variant_passes_its_exact_per_chunk_check(variant):
    result = scaling_trial(variant)
    check = result["check"]
    assert check["chunks"] == {"serial": 1, "seed": 6}.get(variant, 2)
    assert check["iterations"] == (800_000 if variant == "weak" else 400_000)
    assert "bit for bit" in check["checksum"]
    json.dumps(result)


def test_a_worker_that_skips_one_iteration_fails_its_trial():
    work = 2_000_000  # one iteration of 10^6 per chunk: below the old check's 1e-6
    skipped = scaling_task.sum_skipping_one(work // 2) + scaling_task.tutorial_sum(work // 2)
    assert old_float_check_passes(skipped, work)  # the old check would have let it through
    with pytest.raises(TrialCheckFailed, match="chunk 0 .* 999999 iterations ran, not 1000000"):
        scaling_trial("test_skip_one", work=work)
    assert multiprocessing.active_children() == []


def test_each_chunk_is_checked_alone_so_a_loss_cannot_hide_behind_an_excess():
    def chunk(iterations):
        total = scaling.exact_sum(iterations)
        return {"result": total, "pid": 1}
    scaling.check_chunks([chunk(1000), chunk(1000)], [1000, 1000])
    with pytest.raises(TrialCheckFailed, match="chunk 0"):  # the same total, split wrongly
        scaling.check_chunks([chunk(999), chunk(1001)], [1000, 1000])
    with pytest.raises(TrialCheckFailed, match="1 chunks came back, 2 were sent"):
        scaling.check_chunks([chunk(2000)], [1000, 1000])


def test_the_test_doubles_are_apart_from_the_user_variants():
    assert set(scaling.TEST_DOUBLES) <= set(scaling.VARIANTS)
    assert not set(scaling.TEST_DOUBLES) & set(scaling.USER_VARIANTS)
    assert set(scaling.USER_VARIANTS) | set(scaling.TEST_DOUBLES) == set(scaling.VARIANTS)
    assert set(IPC_TEST_DOUBLES) <= set(ipc.VARIANTS)
    assert not set(IPC_TEST_DOUBLES) & set(ipc.CHANNELS)
    assert set(ipc.CHANNELS) | set(IPC_TEST_DOUBLES) == set(ipc.VARIANTS)


# ---------------------------------------------------------------------------------------------
# 2. process: timed from the workers' own stamps


def test_the_process_section_covers_the_workers_whole_work_even_when_the_parent_is_late(
        monkeypatch):
    """A parent slow to start its clock (here: cgroup reads that take 0.5 s) must not shorten
    the section: the workers' stamps time it. The old clock started after those reads, while
    the workers already spun, and measured almost nothing."""
    read = sysinfo.cpu_counters

    def slow_cpu_counters(root="/"):
        time.sleep(0.5)
        return read(root)

    monkeypatch.setattr(sysinfo, "cpu_counters", slow_cpu_counters)
    result = scaling_trial("process", work=1_000_000)
    assert "workers' own stamps" in result["check"]["section_clock"]
    # Each worker's CPU time lies inside its own stamps, so inside the section.
    assert result["seconds"] >= result["cpu_seconds"] / 2


def test_the_section_is_the_earliest_start_to_the_latest_end():
    chunks = [{"t_start": 10.0, "t_end": 12.5}, {"t_start": 10.25, "t_end": 13.0}]
    section = scaling_clock.StampedSection(sysinfo.trial_counters(), chunks)
    assert section.start == 10.0 and section.seconds == 3.0


# ---------------------------------------------------------------------------------------------
# 3. warm-up: every pool worker


@pytest.mark.parametrize("variant, workers", [("strong", 2), ("seed", 3), ("weak", 1),
                                              ("process", 2)])
def test_every_worker_is_warmed_up(variant, workers):
    check = scaling_trial(variant, workers=workers)["check"]
    assert check["warmed_workers"] == workers and check["all_workers_warmed"] is True


def test_a_warm_up_that_misses_a_pool_worker_fails_the_trial():
    with pytest.raises(TrialCheckFailed, match="warm-up reached 2 of the 3 pool workers"):
        scaling_trial("test_cold_worker", workers=3)
    with pytest.raises(SpecError, match="at least 2 workers"):
        scaling_trial("test_cold_worker", workers=1)


def test_no_pool_worker_can_take_two_warm_up_tasks():
    """Three warm-up tasks on a pool of three where one task is instant: without the barrier
    the first worker to finish would often take another; with it, three distinct pids."""
    context = multiprocessing.get_context("fork")
    with context.Pool(3, initializer=scaling_processes._pool_worker_init,
                      initargs=(context.Barrier(3),)) as pool:
        pids = [pid for pid, _ in pool.map(
            scaling_processes._warm_task,
            [(scaling_task.tutorial_sum, n) for n in (0, 200_000, 200_000)], chunksize=1)]
    assert len(set(pids)) == 3


# ---------------------------------------------------------------------------------------------
# 4. ipc: what was sent is counted; every frame is verified


@pytest.mark.parametrize("params", [{}, {"timing": "seed"}, {"producers": 2, "consumers": 2}])
def test_a_producer_that_sends_one_item_short_fails_on_its_own_count(params):
    with pytest.raises(TrialCheckFailed, match=r"producer0 sent \d+ of its \d+ items"):
        ipc_trial("test_short_one", **params)
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("params", [{}, {"timing": "seed"}, {"producers": 2, "consumers": 1}])
def test_sent_is_what_the_producers_counted(params):
    check = ipc_trial("queue", **params)["check"]
    assert sum(check["sent_per_producer"]) == check["sent"] == check["received"] == 1000
    assert len(check["sent_per_producer"]) == params.get("producers", 1)


@pytest.mark.parametrize("channel, params", [
    ("pipe_bytes", {"size_bytes": 64 * KiB, "messages": 2000}),
    ("os_pipe", {"size_bytes": 64 * KiB, "messages": 2000}),
    ("shm_ring", {"size_bytes": 64 * KiB, "messages": 2000, "timing": "seed"}),
    ("queue", {"size_bytes": 64 * KiB, "messages": 2000}),
    ("queue", {"size_bytes": 100, "batch": 7}),
    ("simple_queue", {"batch": 7}),
])
def test_every_payload_is_verified_whatever_its_size(channel, params):
    check = ipc_trial(channel, **params)["check"]
    assert check["payloads_verified"] == check["received"] == params.get("messages", 1000)
    assert "every" in check["payload_check"] and "after the clock" not in check["payload_check"]


@pytest.mark.parametrize("params", [{}, {"size_bytes": 100, "batch": 7}, {"timing": "seed"},
                                    {"size_bytes": 64 * KiB, "messages": 2000}])
def test_a_frame_torn_mid_write_fails_the_trial(params):
    with pytest.raises(TrialCheckFailed, match="torn frame: starts as item"):
        ipc_trial("test_tear_one", **params)
    assert multiprocessing.active_children() == []


def test_a_corrupted_64_kib_frame_fails_although_the_old_sample_skipped_it():
    """Before, 2000 x 64 KiB kept one frame in four (32 MiB retained) and the corrupted one,
    the 1001st of the timed phase, was not among them."""
    old_keep_every = math.ceil(2000 * (64 * KiB + 16) / (32 << 20))
    assert old_keep_every == 4 and 1001 % old_keep_every != 0
    with pytest.raises(TrialCheckFailed, match="differs from what was sent"):
        ipc_trial("test_corrupt_one", size_bytes=64 * KiB, messages=2000)


class ListPort:
    """A consumer's port fed from a list of frames (no processes)."""

    task_done = send = None

    def __init__(self, frames):
        self.recv = iter(frames).__next__


def byte_frames(channel, **params):
    """The frames a producer of `channel` sends for `params`, then its END."""
    cfg = ipc.derive(channel, ipc.normalize(channel, {"messages": 30, **params}))
    payloads = ipc_ends.Payloads(cfg, 0)
    send_all, _ = payloads.sender(cfg["messages"])
    frames = []
    send_all(lambda frame: frames.append(bytes(frame)))
    return cfg, frames + [bytes(payloads.end)]


@pytest.mark.parametrize("channel, params", [("pipe_bytes", {"size_bytes": 4 * KiB}),
                                             ("os_pipe", {"size_bytes": 100, "batch": 4}),
                                             ("shm_ring", {})])
def test_the_receive_loop_catches_torn_stale_and_corrupted_frames(channel, params):
    cfg, frames = byte_frames(channel, **params)
    assert ipc_ends.receive_stream(ListPort(frames), cfg, 1, None)["items"] == 30
    head, middle = ipc_ends.HEADER.size, len(frames[5]) // 2
    broken = {
        "torn frame": frames[5][:middle] + frames[4][middle:],  # its end is the frame before
        # Both ends new, the middle from the frame before: only the content can tell.
        "differs from what was sent": (frames[5][:head + 4] + frames[4][head + 4:-8]
                                       + frames[5][-8:]),
        "out of order or duplicated": frames[4],  # a whole stale frame
        "framing error": frames[5][:-1],
    }
    for what, frame in broken.items():
        with pytest.raises(TrialCheckFailed, match=what):
            ipc_ends.receive_stream(ListPort(frames[:5] + [frame] + frames[6:]), cfg, 1, None)


def test_a_frame_starts_and_ends_with_its_index():
    cfg, frames = byte_frames("pipe_bytes", size_bytes=10, batch=3)
    for number, frame in enumerate(frames[:-1]):
        count, _, g0 = ipc_ends.HEADER.unpack_from(frame)
        assert g0 == 3 * number == ipc_ends.TRAILER.unpack_from(frame, len(frame) - 8)[0]
        assert len(frame) == ipc_ends.FRAME_OVERHEAD + count * 10


@pytest.mark.parametrize("channel", ["pipe", "unix_socket", "shm_ring"])
def test_pingpong_compares_every_echo(channel, monkeypatch):
    result = ipc_trial(channel, pattern="pingpong", messages=200, size_bytes=64)
    assert result["check"]["payloads_verified"] == 200
    real_pong = ipc_ends.pong

    def pong_echoing_one_changed(port, cfg, timed_from):  # the 150th echo has one byte changed
        send, echoed = port.send, 0

        def send_changed(message):
            nonlocal echoed
            echoed += 1
            send(_one_byte_changed(message) if echoed == 150 else message)
        port.send = send_changed
        return real_pong(port, cfg, timed_from)

    monkeypatch.setattr(ipc_ends, "pong", pong_echoing_one_changed)  # forked ends inherit it
    with pytest.raises(TrialCheckFailed, match="round 149: payload"):
        ipc_trial(channel, pattern="pingpong", messages=200, size_bytes=64, warmup=20)


def _one_byte_changed(message):
    """The message with one payload byte flipped (a tuple's item, or a byte frame's middle)."""
    if isinstance(message, tuple):
        g, item = message
        return g, item[:-1] + bytes([item[-1] ^ 0xFF])
    changed = bytearray(message)
    changed[len(changed) // 2] ^= 0xFF
    return bytes(changed)


# ---------------------------------------------------------------------------------------------
# 5. shm_ring: refused where stores may be reordered


@pytest.mark.parametrize("machine", ["aarch64", "arm64", "ppc64le", "riscv64"])
def test_shm_ring_is_refused_off_x86_in_one_line(machine, monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: machine)
    for refuse in (lambda: ipc.normalize("shm_ring", {}),
                   lambda: ipc_budget.validate("shm_ring", {}),
                   lambda: ipc_trial("shm_ring")):
        with pytest.raises(SpecError) as refused:
            refuse()
        assert machine in str(refused.value) and "x86" in str(refused.value)
        assert "\n" not in str(refused.value)
    ipc.normalize("pipe_bytes", {})  # the other channels still run there


@pytest.mark.parametrize("machine", ["x86_64", "AMD64", "i686"])
def test_shm_ring_runs_on_x86(machine, monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: machine)
    assert refusal() is None
    ipc.normalize("shm_ring", {})


# ---------------------------------------------------------------------------------------------
# 6. timing=seed: the tutorial's unbounded queues


@pytest.mark.parametrize("channel", ["queue", "joinable_queue"])
def test_seed_timing_uses_the_tutorials_unbounded_queue(channel):
    assert ipc_trial(channel, timing="seed")["check"]["queue_maxsize"] == 0
    handshake = ipc_trial(channel)["check"]["queue_maxsize"]
    assert 0 < handshake <= ipc.QUEUE_MAXSIZE_CAP  # the lab's own timing stays bounded
    assert ipc_trial(channel, timing="seed", queue_maxsize=50)["check"]["queue_maxsize"] == 50


def test_seed_timing_lets_the_producer_run_ahead_of_a_slow_reader():
    """Unbounded, the producer can put every item before the reader takes one, as in the
    tutorial's program; the old bound (here 1000) would have stopped it at the 1001st."""
    context = multiprocessing.get_context("fork")
    cfg = ipc.derive("queue", ipc.normalize("queue", {"messages": 2000, "timing": "seed"}))
    channel = Channel("queue", context, cfg["queue_maxsize"])
    try:
        for item in range(2000):  # no reader: a bounded queue would be Full within a second
            channel.a.put(item, timeout=1.0)
        assert channel.a.qsize() == 2000
    finally:
        channel.a.cancel_join_thread()  # nobody reads: do not wait for the feeder to flush
        channel.close()


# ---------------------------------------------------------------------------------------------
# 7. steal time


def fake_proc_stat(tmp_path, text):
    (tmp_path / "proc").mkdir(exist_ok=True)
    (tmp_path / "proc" / "stat").write_text(text)
    return str(tmp_path)


def test_steal_seconds_is_the_eighth_field_of_the_cpu_line(tmp_path):
    hz = os.sysconf("SC_CLK_TCK")
    root = fake_proc_stat(tmp_path, f"cpu  100 0 50 9000 5 0 2 {3 * hz} 0 0\n"
                                    f"cpu0 50 0 25 4500 2 0 1 {hz} 0 0\nintr 1 2\n")
    assert sysinfo.steal_seconds(root) == 3.0


@pytest.mark.parametrize("text", ["cpu  100 0 50 9000 5 0 2\n",  # no steal field (old kernel)
                                  "cpu  1 2 3 4 5 6 7 x 0 0\n", "intr 1 2\n", ""])
def test_steal_seconds_is_none_where_unreadable(tmp_path, text):
    assert sysinfo.steal_seconds(fake_proc_stat(tmp_path, text)) is None
    assert sysinfo.steal_seconds(str(tmp_path / "nowhere")) is None


def test_the_counters_around_a_trial_carry_steal(tmp_path):
    hz = os.sysconf("SC_CLK_TCK")
    before = sysinfo.trial_counters(fake_proc_stat(tmp_path, f"cpu  1 1 1 1 1 1 1 {hz} 0 0\n"))
    after = sysinfo.trial_counters(fake_proc_stat(tmp_path, f"cpu  1 1 1 1 1 1 1 {5 * hz} 0 0\n"))
    assert set(before) == set(sysinfo.COUNTER_KEYS) | {"steal_seconds"}
    assert sysinfo.counters_delta(before, after)["steal_seconds"] == 4.0


@pytest.mark.parametrize("spec", [
    {"experiment": "probe", "variant": "seen"},
    {"experiment": "scaling", "variant": "strong", "params": {"work": 20_000}, "workers": 1},
    {"experiment": "ipc", "variant": "test_drop_one", "params": {"messages": 100}},
])
def test_every_trial_result_carries_steal_seconds(spec, monkeypatch):
    readings = iter(range(100))
    monkeypatch.setattr(sysinfo, "steal_seconds", lambda root="/": 0.5 * next(readings))
    result = run_container_trial({"start_method": "fork", "expect_affinity": None, **spec})
    assert result["steal_seconds"] == 0.5  # two readings around the trial or its section
    monkeypatch.setattr(sysinfo, "steal_seconds", lambda root="/": None)
    assert run_container_trial({"start_method": "fork", "expect_affinity": None,
                                **spec})["steal_seconds"] is None


def test_float_bits_is_an_exact_integer_checksum():
    assert scaling.float_bits(1.0) == struct.unpack("<Q", struct.pack("<d", 1.0))[0]
    assert scaling.float_bits(0.1 + 0.2) != scaling.float_bits(0.3)


# ---------------------------------------------------------------------------------------------
# The same checks inside the real trial image (Python 3.13, locked down as the lab runs it)


def run_in_image(engine, image, spec):
    """The trial's exit status and its JSON result line, run as the lab runs a trial."""
    container = engine.containers.create(
        image.id, command=[json.dumps({"workers": 2, "start_method": "fork",
                                       "expect_affinity": None, **spec})],
        network_mode="none", read_only=True, tmpfs={"/tmp": "rw,size=64m"},
        cap_drop=["ALL"], security_opt=["no-new-privileges"], shm_size="256m", detach=True)
    try:
        container.start()
        status = container.wait(timeout=300)["StatusCode"]
        stdout = container.logs(stdout=True, stderr=False).decode()
        return status, json.loads(stdout.strip().splitlines()[-1])
    finally:
        container.remove(force=True)


@pytest.mark.parametrize("spec, fragment", [
    ({"experiment": "scaling", "variant": "test_skip_one", "params": {"work": 2_000_000}},
     "999999 iterations ran"),
    ({"experiment": "scaling", "variant": "test_cold_worker", "params": {"work": 100_000}},
     "warm-up reached 1 of the 2"),
    ({"experiment": "ipc", "variant": "test_tear_one",
      "params": {"messages": 2000, "size_bytes": 64 * KiB}}, "torn frame"),
    ({"experiment": "ipc", "variant": "test_short_one",
      "params": {"messages": 1000, "timing": "seed"}},
     "producer0 sent 999 of its 1000 items"),
])
def test_the_doubles_fail_inside_the_trial_image(engine, trial_image, spec, fragment):
    status, result = run_in_image(engine, trial_image, spec)
    assert status == 1 and result["ok"] is False
    assert result["error"].startswith("check failed:") and fragment in result["error"]
    assert "steal_seconds" in result


def test_a_good_trial_in_the_image_reports_its_checks_and_steal(engine, trial_image):
    status, result = run_in_image(engine, trial_image, {
        "experiment": "scaling", "variant": "process", "params": {"work": 400_000}})
    assert status == 0 and result["ok"] is True
    assert result["check"]["all_workers_warmed"] is True and result["check"]["chunks"] == 2
    assert result["steal_seconds"] is None or result["steal_seconds"] >= 0
