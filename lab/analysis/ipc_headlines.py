"""The ipc headlines: Pipe against Queue, the bound's own cost, the shared-memory ring against
Queue, the best channel against raw os.pipe; each a ratio of medians with its bootstrap interval.
And where a channel's receiver polls (the interpreters queue), that its round trip is the poll.

A ratio says "faster" or "slower" only when its interval (lab.analysis.stats.ratio_interval,
nominal 95%) leaves out 1, and "level" when the interval holds 1; the sentence names the
interval, and the coverage it really has where the trials are fewer than 5 a side
(stats.ratio_interval_coverage). With one trial a side there is no interval, and the sentence
says so instead of choosing.
"""

import math
from dataclasses import dataclass

from lab.analysis import stats
from lab.analysis.ipc import streams_of_small_messages
from lab.analysis.trials import samples
from lab.experiments.ipc_catalog import facts

# What tells two points of one channel apart beyond CPUs and placement: the sentences group by it.
# A sized count (--messages auto) differs per point by design: sized points group together.
_GROUPS = ("python", "count", "param.timing", "host")


@dataclass(frozen=True)
class Ratio:
    """median(a) / median(b) with its percentile-bootstrap interval."""
    ratio: float
    low: float
    high: float
    n_a: int
    n_b: int

    @property
    def coverage(self):
        return stats.ratio_interval_coverage(self.n_a, self.n_b)

    @property
    def outcome(self):
        """'faster' (the interval lies above 1), 'slower' (below 1), 'level' (it holds 1), or
        None where there is no interval."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return None
        if self.low > 1:
            return "faster"
        if self.high < 1:
            return "slower"
        return "level"

    def interval_words(self):
        """'95% bootstrap interval 1.30-1.62x'."""
        return f"95% bootstrap interval {self.low:.2f}-{self.high:.2f}x"

    def coverage_words(self):
        """'; at 3 trials a side it covers about 90%' where it covers less than asked."""
        if not self.coverage < stats.CONFIDENCE:
            return ""
        return f"; at {min(self.n_a, self.n_b)} trials a side it covers about {self.coverage:.0%}"


def ratio_of(a, b):
    """The Ratio of two samples' medians (higher-is-better measures: a / b > 1 means a is
    faster)."""
    a = [v for v in a if v is not None and math.isfinite(v)]
    b = [v for v in b if v is not None and math.isfinite(v)]
    if not a or not b:
        return Ratio(math.nan, math.nan, math.nan, len(a), len(b))
    ratio = _median(a) / _median(b)
    low, high = stats.ratio_interval(a, b)
    return Ratio(ratio, low, high, len(a), len(b))


def _median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def sentence(a, b, ratio, measure="messages/s"):
    """'A is faster than B: 1.45x the messages/s (95% bootstrap interval 1.30-1.62x)';
    'A and B are level: 1.07x the messages/s, but the 95% bootstrap interval 0.85-1.31x holds
    1'; or, without an interval, neither."""
    outcome = ratio.outcome
    if outcome is None:
        return (f"{a} against {b}: {ratio.ratio:.2f}x the {measure}, but too few trials for an "
                f"interval (n = {ratio.n_a} and {ratio.n_b}): neither faster nor slower")
    if outcome == "level":
        return (f"{a} and {b} are level: {ratio.ratio:.2f}x the {measure}, but the "
                f"{ratio.interval_words()} holds 1{_parenthesis(ratio.coverage_words())}")
    return (f"{a} is {outcome} than {b}: {ratio.ratio:.2f}x the {measure} "
            f"({ratio.interval_words()}{ratio.coverage_words()})")


def _parenthesis(words):
    return f" ({words.removeprefix('; ')})" if words else ""


# (a, b) pairs of small-int streams, in the order the headlines say them
_PAIRS = (("pipe", "queue"), ("pipe", "queue_unbounded"),
          ("queue_unbounded", "queue"), ("joinable_queue_unbounded", "joinable_queue"),
          ("shm_ring", "queue"),
          # what talking costs inside one process: two threads, two interpreters, and processes
          ("thread_queue", "queue"), ("interpreter_queue", "queue"),
          ("thread_queue", "interpreter_queue"))


def headlines(table, trials=None):
    """The questions of the issue answered from this run, as sentences with their ratios and
    intervals: one per CPU count, placement and (where a run has several) Python, given message
    count and clock. `trials`: the run's trials (without them, no interval: no outcome)."""
    values = samples(trials, "metric.messages_per_second") if trials is not None else {}
    byte_values = (samples(trials, "metric.bytes_per_second")
                   if trials is not None and "metric.bytes_per_second" in trials else {})
    out = []
    for words, group in _groups(streams_of_small_messages(table)):
        for a, b in _PAIRS:
            if {a, b} <= set(group.index):
                ratio = ratio_of(values.get(group.at[a, "point_id"], []),
                                 values.get(group.at[b, "point_id"], []))
                out.append(f"{words}: " + sentence(group.at[a, "channel"],
                                                   group.at[b, "channel"], ratio))
    big = table[(table["param.pattern"] == "stream") & (table["param.size_bytes"] == 64 * 1024)
                & (table["ends"] == "1:1") & (table["param.batch"] == 1)]
    for words, group in _groups(big):
        rate = group["bytes_per_second"].dropna()
        # the best channel between processes: os.pipe is the kernel's way between processes;
        # threads pass a reference and interpreters copy within one process, no kernel between
        between = [c for c in rate.index if c != "os_pipe" and facts(c).ends == "processes"]
        if "os_pipe" in rate.index and between:
            others = rate[between]
            best = others.idxmax()
            ratio = ratio_of(byte_values.get(group.at[best, "point_id"], []),
                             byte_values.get(group.at["os_pipe", "point_id"], []))
            out.append(f"{words}, 64 KiB: the best channel, {group.at[best, 'channel']}, moves "
                       f"{others[best] / 1e9:.2f} GB/s, raw os.pipe {rate['os_pipe'] / 1e9:.2f}"
                       f" GB/s: " + sentence(group.at[best, "channel"], "raw os.pipe", ratio,
                                             "bytes/s"))
    return out + polled_round_trips(table)


def polled_round_trips(table):
    """A sentence per ping-pong point of a channel whose receiver polls (a round_trip_us in its
    catalog entry: the interpreters queue's get() sleeps 10 ms a try): its round trip is the
    poll's period, CPython's, not what moving the item costs."""
    if "param.pattern" not in table or "p50_us" not in table:
        return []
    out = []
    for _, row in table[table["param.pattern"] == "pingpong"].iterrows():
        poll_us = facts(row["variant"]).round_trip_us
        if poll_us is None or not row["p50_us"] == row["p50_us"]:
            continue
        out.append(f"{row['channel']}, {_cpus(row['cpus'])}: a ping-pong round trip takes "
                   f"{row['p50_us'] / 1000:.1f} ms (p50), about the {poll_us / 1000:g} ms "
                   f"its blocking get() sleeps between polls: CPython's poll, not the cost of "
                   f"moving the item")
    return out


def _groups(rows):
    """(words, rows by variant) per CPU count, placement and whatever else varies in `rows`
    (Python, a given count, clock, host): each group holds at most one point per channel."""
    if rows.empty:
        return
    rows = rows.copy()
    sized = (rows["param.min_seconds"].notna() if "param.min_seconds" in rows
             else rows["param.messages"].isna())
    rows["count"] = rows["param.messages"].astype(float)
    rows.loc[sized, "count"] = math.inf  # sized: one group, after the given counts
    varying = [k for k in _GROUPS if k in rows and rows[k].astype(str).nunique() > 1]
    keys = ["cpus", "param.placement",
            *(k for k in _GROUPS if k in rows and (k != "host" or k in varying))]
    for values, group in rows.groupby(keys, sort=True):
        where = dict(zip(keys, values))
        words = f"{_cpus(where['cpus'])}, ends {where['param.placement']}"
        words += "".join({"python": f", Python {where['python']}",
                          "count": _count_words(where["count"]),
                          "param.timing": f", clock {where['param.timing']}",
                          "host": f", host {where.get('host')}"}[k] for k in varying)
        yield words, group.drop_duplicates("variant").set_index("variant")


def _count_words(count):
    return ", sized counts" if math.isinf(count) else f", {int(count):,} messages"


def _cpus(count):
    return f"{count} CPU{'s' if count != 1 else ''}"
