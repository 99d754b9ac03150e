"""The tutorial's own table (Pipe, Queue, JoinableQueue at 10^4, 10^5, 10^6 messages) prints,
charts and reports for any combination of counts, channels, CPUs, placements and clocks: built
here from synthetic records, no engine needed."""

import itertools

import pytest

from lab.analysis import ipc
from lab.analysis.trials import trials_frame
from lab.present.ipc_report import ipc_section

CHANNELS = ("pipe", "queue", "joinable_queue")
RATE = {"pipe": 250_000, "queue": 150_000, "joinable_queue": 120_000}  # messages/s


def records(counts=(10_000, 100_000, 1_000_000), cpus=(2,), placements=("free",),
            timings=("seed",), channels=CHANNELS, repeats=3):
    out = []
    for channel, count, cpu, placement, timing, repeat in itertools.product(
            channels, counts, cpus, placements, timings, range(repeats)):
        params = {"messages": count, "size_bytes": 0, "batch": 1, "producers": 1,
                  "consumers": 1, "placement": placement, "pattern": "stream", "timing": timing}
        seconds = count / RATE[channel] * (1 + 0.01 * repeat)
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
    table = ipc.summary(trials_frame(records()))
    notes = ipc.headlines(table)
    pipe_vs_queue = [n for n in notes if "Pipe() is faster than Queue()" in n]
    assert len(pipe_vs_queue) == 3  # one per message count, each naming its count
    for count in ("10,000 messages", "100,000 messages", "1,000,000 messages"):
        assert sum(count in n for n in pipe_vs_queue) == 1
    assert all("1.67x" in n for n in pipe_vs_queue)  # 250k / 150k


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
