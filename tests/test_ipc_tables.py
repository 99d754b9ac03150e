"""The tutorial's own table (Pipe, Queue, JoinableQueue at 10^4, 10^5, 10^6 messages) prints,
charts and reports for any combination of counts, channels, CPUs, placements and clocks: built
here from synthetic records, no engine needed."""

import itertools

import pytest

from lab.analysis import ipc
from lab.analysis.ipc_headlines import headlines
from lab.analysis.trials import trials_frame
from lab.present.ipc_report import ipc_section

CHANNELS = ("pipe", "queue", "joinable_queue")
RATE = {"pipe": 250_000, "queue": 150_000, "joinable_queue": 120_000}  # messages/s


def records(counts=(10_000, 100_000, 1_000_000), cpus=(2,), placements=("free",),
            timings=("seed",), channels=CHANNELS, repeats=3, rates=RATE, spread=None,
            extra=None):
    """Made-up trials: `rates` messages/s per channel; trial r of a point runs `spread[r]`
    times as long (default 1%, 2%, ... slower each); `extra` params for every point."""
    out = []
    for channel, count, cpu, placement, timing, repeat in itertools.product(
            channels, counts, cpus, placements, timings, range(repeats)):
        params = {"messages": count, "size_bytes": 0, "batch": 1, "producers": 1,
                  "consumers": 1, "placement": placement, "pattern": "stream", "timing": timing,
                  **(extra or {})}
        seconds = count / rates[channel] * (spread[repeat] if spread else 1 + 0.01 * repeat)
        out.append({"schema": 1, "run_id": "t", "round": repeat, "repeat": repeat + 1,
                    "point_id": f"{channel}-{count}-{cpu}-{placement}-{timing}",
                    "experiment": "ipc", "variant": channel, "limit": "cpuset", "cpus": cpu,
                    "placement": "spread", "workers": 2, "start_method": "fork",
                    "backend": "docker", "python": "3.13.5", "image": "i", "params": params,
                    "ok": True, "warmup": False, "seconds": seconds,
                    "metrics": {"messages_per_second": {"value": count / seconds, "unit": "1/s"}}})
    return out


CASES = {
    "the tutorial's three at its three counts": {},
    "two CPU counts and two placements": {"cpus": (1, 2), "placements": ("free", "split")},
    "both clocks": {"timings": ("seed", "handshake")},
    "one count, Pipe alone": {"counts": (100_000,), "channels": ("pipe",)},
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_tutorial_table_prints_charts_and_reports(case, tmp_path):
    table = ipc.summary(trials_frame(records(**CASES[case])))
    lines = ipc.tutorial_lines(table)
    said = []
    section = ipc_section(trials_frame(records(**CASES[case])), table, tmp_path, said.append)
    charts = {path.stem for path in tmp_path.glob("*.png")}
    several_counts = table["param.messages"].nunique() > 1
    assert ("ipc_tutorial" in charts) == several_counts
    assert ("ipc_channels" in charts) == ("handshake" in set(table["param.timing"]))
    assert any(kind == "text" and "Sending" in content for kind, content, _ in section.blocks)
    for _, row in table.iterrows():  # every point has its tutorial sentence
        assert any(f"Sending {int(row['param.messages'])} numbers to {row['channel']} took"
                   in line for line in lines)


def test_headlines_compare_pipe_and_queue_per_count_when_a_run_has_several():
    trials = trials_frame(records())
    notes = headlines(ipc.summary(trials), trials)
    pipe_vs_queue = [n for n in notes if "Pipe() is faster than Queue():" in n]
    assert len(pipe_vs_queue) == 3  # one per message count, each naming its count
    for count in ("10,000 messages", "100,000 messages", "1,000,000 messages"):
        assert sum(count in n for n in pipe_vs_queue) == 1
    assert all("1.67x" in n for n in pipe_vs_queue)  # 250k / 150k
    assert all("95% bootstrap interval" in n and "at 3 trials a side it covers about 90%" in n
               for n in pipe_vs_queue)  # the interval, and what it really covers at n = 3


def _pipe_against_queue(pipe_spread, queue_spread, pipe_rate=200_000, queue_rate=150_000):
    """The Pipe-vs-Queue headline of made-up trials: 5 a side, handshake clock, one count."""
    def made(channel, rate, spread):
        return records(counts=(100_000,), timings=("handshake",), channels=(channel,),
                       repeats=len(spread), rates={channel: rate}, spread=spread)
    trials = trials_frame(made("pipe", pipe_rate, pipe_spread)
                          + made("queue", queue_rate, queue_spread))
    (note,) = [n for n in headlines(ipc.summary(trials), trials) if "Pipe()" in n]
    return note


TIGHT = (1.0, 1.01, 0.99, 1.02, 0.98)  # trials within 2% of each other


def test_pipe_is_faster_only_when_the_interval_lies_above_one():
    note = _pipe_against_queue(TIGHT, TIGHT)
    assert "Pipe() is faster than Queue(maxsize=1000): 1.33x the messages/s" in note
    low, high = _interval(note)
    assert 1 < low <= 1.33 <= high


def test_pipe_is_slower_only_when_the_interval_lies_below_one():
    note = _pipe_against_queue(TIGHT, TIGHT, pipe_rate=100_000)
    assert "Pipe() is slower than Queue(maxsize=1000): 0.67x the messages/s" in note
    assert _interval(note)[1] < 1


def test_a_faster_median_within_the_noise_is_level_not_faster():
    """Pipe's median is 1.07x Queue's, but the trials scatter by 2x: the interval holds 1, so
    the headline says level, where the medians alone would have said faster."""
    wide = (1.0, 0.5, 1.6, 0.6, 1.9)
    note = _pipe_against_queue(wide, wide, pipe_rate=160_000)
    assert "Pipe() and Queue(maxsize=1000) are level: 1.07x the messages/s" in note
    low, high = _interval(note)
    assert low < 1 < high and "holds 1" in note
    assert "faster" not in note and "slower" not in note


def test_one_trial_a_side_gives_no_interval_and_no_verdict():
    note = _pipe_against_queue((1.0,), (1.0,))
    assert "too few trials for an interval" in note and "neither faster nor slower" in note


def _interval(note):
    import re
    low, high = re.search(r"95% bootstrap interval ([\d.]+)-([\d.]+)x", note).groups()
    return float(low), float(high)


def test_the_bounded_queue_is_named_by_its_bound_and_the_seed_queue_is_not():
    """Handshake: Queue(maxsize=1000) in the table, the sentences, the headlines and
    summary.csv's channel column; seed: the tutorial's unbounded Queue(); the credit-paced
    unbounded queue beside it: Queue() + credits."""
    rates = {**RATE, "queue_unbounded": 180_000}
    trials = trials_frame(records(counts=(100_000,), timings=("handshake",),
                                  channels=("pipe", "queue", "queue_unbounded"), rates=rates)
                          + records(counts=(100_000,), channels=("pipe", "queue")))  # seed
    table = ipc.summary(trials)
    names = {(row["variant"], row["param.timing"]): (row["channel"], row["queue_maxsize"])
             for _, row in table.iterrows()}
    assert names[("queue", "handshake")] == ("Queue(maxsize=1000)", 1000)
    assert names[("queue", "seed")] == ("Queue()", 0)
    assert names[("queue_unbounded", "handshake")] == ("Queue() + credits", 0)
    lines = ipc.tutorial_lines(table)
    assert any("numbers to Queue(maxsize=1000) took" in line for line in lines)
    assert any("numbers to Queue() took" in line for line in lines)
    headers, rows, _ = ipc.display_table(table)
    assert {"Queue(maxsize=1000)", "Queue()", "Queue() + credits"} <= {r[0] for r in rows}
    notes = headlines(table, trials)
    assert any("Pipe() is faster than Queue(maxsize=1000)" in n for n in notes)
    assert any("Queue() + credits is faster than Queue(maxsize=1000)" in n for n in notes)
    seed = [n for n in notes if "clock seed" in n]
    assert seed and all("Queue() + credits" not in n and "maxsize" not in n for n in seed)


def test_a_chart_legend_names_the_range_of_bounds_a_channel_ran_with():
    trials = trials_frame(records(counts=(1000,), timings=("handshake",), channels=("queue",))
                          + [dict(r, point_id=r["point_id"] + "-64k",
                                  params={**r["params"], "size_bytes": 65536})
                             for r in records(counts=(1000,), timings=("handshake",),
                                              channels=("queue",))])
    table = ipc.summary(trials)
    assert set(table["channel"]) == {"Queue(maxsize=1000)", "Queue(maxsize=255)"}
    assert ipc.channel_label(table) == "Queue(maxsize=255..1000)"


def test_sized_counts_meet_in_one_headline():
    """--messages auto sizes every point its own count: the headlines still compare them."""
    trials = trials_frame(records(counts=(31_000,), channels=("pipe",), timings=("handshake",),
                                  extra={"min_seconds": 0.2})
                          + records(counts=(18_500,), channels=("queue",),
                                    timings=("handshake",), extra={"min_seconds": 0.2}))
    notes = headlines(ipc.summary(trials), trials)
    assert [n.split(":")[0] for n in notes if "Pipe()" in n] == ["2 CPUs, ends free"]


def test_two_runs_that_sized_their_own_counts_compare_point_for_point():
    """--messages auto gives every run its own counts: compare meets them as `auto`, on
    messages per second, while given counts (the tutorial's) stay apart."""
    from lab.families.ipc import IpcFamily

    def sized(count, channel="pipe"):
        out = records(counts=(count,), channels=(channel,))
        for record in out:
            record["params"]["min_seconds"] = 0.2
        return out
    family = IpcFamily()
    a = family.compare_trials(trials_frame(sized(31_000) + records(counts=(10_000,))))
    b = family.compare_trials(trials_frame(sized(29_500) + records(counts=(10_000,))))
    assert set(a["param.messages"].astype(str)) == {"auto", "10000"}
    assert set(a["param.messages"].astype(str)) == set(b["param.messages"].astype(str))
    assert family.compare_measure(a)[0] == "metric.messages_per_second"


def test_a_sized_point_held_short_by_the_byte_budget_is_told_to_raise_it():
    from lab.families.ipc import IpcFamily
    row = {"param.bytes_per_trial": 256 << 20, "param.size_bytes": 65536,
           "param.messages": 4096, "median_s": 0.05, "param.min_seconds": 0.2}
    advice = IpcFamily().too_short_advice(row, 0.2)
    assert advice == ("its sized count was capped at --bytes-per-trial 256MiB / 64KiB: raise "
                      "--bytes-per-trial to at least 1GiB")
    given = IpcFamily().too_short_advice({**row, "param.bytes_per_trial": None}, 0.2)
    assert given == "use --messages auto or a count of at least 16,384"


def test_a_point_of_another_table_is_named_by_its_bound_too():
    """compare and the warnings label points from trials.point_stats, without the summary's
    queue_maxsize: the name comes from the params."""
    from lab.analysis.trials import point_stats
    from lab.families.ipc import IpcFamily
    trials = trials_frame(records(counts=(1000,), timings=("handshake", "seed"),
                                  channels=("queue",)))
    labels = {row["param.timing"]: IpcFamily().row_label(row)
              for _, row in point_stats(trials).iterrows()}
    assert labels["handshake"].startswith("Queue(maxsize=1000)")
    assert labels["seed"].startswith("Queue()")


def _with_bytes(found, size=64 * 1024):
    for record in found:
        rate = record["metrics"]["messages_per_second"]["value"]
        record["metrics"]["bytes_per_second"] = {"value": rate * size, "unit": "B/s"}
    return found


def test_threads_and_interpreters_are_set_against_the_process_queue_not_raw_os_pipe():
    """Threads (a reference) and interpreters (a copy) of one process move a 64 KiB item with
    no kernel between: the 'best channel against raw os.pipe' headline takes the best channel
    between processes, and
    the in-process channels get their own sentences against Queue."""
    rates = {"pipe": 20_000, "os_pipe": 30_000, "thread_queue": 300_000,
             "interpreter_queue": 90_000, "queue": 15_000}
    found = _with_bytes(records(counts=(10_000,), timings=("handshake",),
                                channels=tuple(rates), rates=rates,
                                extra={"size_bytes": 64 * 1024}))
    said = headlines(ipc.summary(trials_frame(found)), trials_frame(found))
    best = [s for s in said if "the best channel" in s]
    assert len(best) == 1 and "the best channel, Pipe()," in best[0], said
    small = records(counts=(10_000,), timings=("handshake",), channels=tuple(rates), rates=rates)
    said = headlines(ipc.summary(trials_frame(small)), trials_frame(small))
    assert any(s.endswith(")") and "queue.Queue(maxsize=" in s and "is faster than Queue(" in s
               for s in said), said
    assert any("interpreters.create_queue() is faster than Queue(" in s for s in said), said
