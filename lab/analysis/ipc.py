"""IPC runs in pandas: per point medians of messages/s, bytes/s and latency; the tutorial's table;
the headline ratios (shared-memory ring against Queue, best channel against raw os.pipe)."""

import math

import pandas as pd

from lab.analysis.trials import measured, point_stats
from lab.experiments.ipc import TUTORIAL_CHANNELS as TUTORIAL

DISPLAY = {  # the channel as the tutorial (or the docs) would write it
    "pipe": "Pipe()", "queue": "Queue()", "joinable_queue": "JoinableQueue()",
    "pipe_oneway": "Pipe(duplex=False)", "simple_queue": "SimpleQueue()",
    "pipe_bytes": "Pipe().send_bytes()", "manager_queue": "Manager().Queue()",
    "unix_socket": "socketpair(AF_UNIX)", "shm_ring": "shared-memory ring",
    "os_pipe": "os.pipe() (reference)",
}
METRICS = ("messages_per_second", "bytes_per_second", "p50_us", "p99_us")


def summary(trials):
    """One row per point: seconds stats, parameters, and each metric's median, min and max."""
    trials = trials[trials["experiment"] == "ipc"]
    stats = point_stats(trials)
    good = measured(trials)
    for metric in METRICS:
        column = f"metric.{metric}"
        if column not in good.columns:
            stats[metric] = math.nan
            continue
        grouped = good.groupby("point_id")[column]
        stats = stats.join(grouped.median().rename(metric), on="point_id")
        stats = stats.join(grouped.min().rename(f"{metric}_min"), on="point_id")
        stats = stats.join(grouped.max().rename(f"{metric}_max"), on="point_id")
    stats["channel"] = stats["variant"].map(lambda v: DISPLAY.get(v, v))
    stats["tutorial"] = stats["variant"].isin(TUTORIAL)
    stats["ends"] = [f"{int(p)}:{int(c)}" for p, c in zip(stats["param.producers"],
                                                          stats["param.consumers"])]
    order = {v: i for i, v in enumerate(DISPLAY)}
    stats["channel_order"] = stats["variant"].map(lambda v: order.get(v, len(order)))
    # a channel's rows stay together, its counts in order: two counts of one channel never interleave
    keys = ["python", "cpus", "param.placement", "param.pattern", "param.size_bytes",
            "channel_order", "param.messages"]
    return stats.sort_values([k for k in keys if k in stats.columns],
                             kind="stable").reset_index(drop=True)


def streams_of_small_messages(table):
    """The tutorial's case: small ints, one by one, one producer, one consumer, handshake clock."""
    return table[(table["param.pattern"] == "stream") & (table["param.size_bytes"] == 0)
                 & (table["param.batch"] == 1) & (table["ends"] == "1:1")]


def tutorial_lines(table):
    """'Sending 100000 numbers to Pipe() took 0.41 seconds' per channel, count, CPUs, placement,
    timing: the tutorial's own sentence, from the median trial."""
    rows = table[(table["param.pattern"] == "stream") & (table["param.size_bytes"] == 0)
                 & (table["param.batch"] == 1) & (table["ends"] == "1:1")]
    lines = []
    for (cpus, placement, timing), group in rows.groupby(
            ["cpus", "param.placement", "param.timing"], sort=True):
        lines.append(f"{cpus} CPU{'s' if cpus > 1 else ''}, ends {placement}, clock {timing}:")
        for _, row in group.sort_values(["param.messages", "channel_order"]).iterrows():
            mark = "*" if row["tutorial"] else " "
            lines.append(f" {mark} Sending {int(row['param.messages'])} numbers to "
                         f"{row['channel']} took {row['median_s']:.4f} seconds "
                         f"({row['messages_per_second'] / 1e3:,.0f}k msgs/s, n={row['n']})")
    return lines


def display_table(table):
    """Every point in one table (headers, rows, alignment): throughput, bytes/s, latency, and
    the spread of its trials (CV, Tukey outliers)."""
    headers = ["channel", "CPUs", "ends on", "pattern", "size B", "batch", "ends", "messages", "n",
               "median s", "CV", "msgs/s", "MB/s", "p50 us", "p99 us", "outliers", "failed"]
    rows = []
    for _, row in table.iterrows():
        mbps = row["bytes_per_second"] / 1e6 if pd.notna(row["bytes_per_second"]) else math.nan
        rows.append([
            row["channel"], str(row["cpus"]), row["param.placement"], row["param.pattern"],
            str(int(row["param.size_bytes"])), str(int(row["param.batch"])), row["ends"],
            _fmt(row.get("param.messages"), "{:,.0f}"), str(row["n"]), _fmt(row["median_s"], "{:.4f}"), _fmt(row["cv"], "{:.1%}"),
            _fmt(row["messages_per_second"], "{:,.0f}"), _fmt(mbps, "{:,.0f}"),
            _fmt(row["p50_us"], "{:.1f}"), _fmt(row["p99_us"], "{:.1f}"), str(row["outliers"]),
            str(row["failed"])])
    return headers, rows, "lrll" + "r" * 13


def _fmt(value, pattern):
    return "-" if value is None or pd.isna(value) else pattern.format(value)


# What tells two points of one channel apart beyond CPUs and placement: the sentences group by it.
_GROUPS = ("python", "param.messages", "param.timing", "host")


def _groups(rows, extra=()):
    """(words, rows) per CPU count, placement and whatever else varies in `rows` (Python, count,
    clock): each group holds at most one point per channel."""
    varying = [k for k in _GROUPS if k in rows and rows[k].astype(str).nunique() > 1]
    keys = ["cpus", "param.placement", *extra,
            *(k for k in _GROUPS if k in rows and (k != "host" or k in varying))]
    for values, group in rows.groupby(keys, sort=True):
        where = dict(zip(keys, values))
        words = f"{_cpus(where['cpus'])}, ends {where['param.placement']}"
        words += "".join({"python": f", Python {where['python']}",
                          "param.messages": f", {int(where['param.messages']):,} messages",
                          "param.timing": f", clock {where['param.timing']}",
                          "host": f", host {where.get('host')}"}[k] for k in varying)
        yield words, group.drop_duplicates("variant").set_index("variant")


def headlines(table):
    """The questions of the issue answered from this run, as sentences with their ratios: one
    per CPU count, placement and (where a run has several) Python, message count and clock."""
    out = []
    for words, group in _groups(streams_of_small_messages(table)):
        rate = group["messages_per_second"]
        if {"shm_ring", "queue"} <= set(rate.index):
            out.append(f"{words}: shared-memory ring "
                       f"{rate['shm_ring'] / rate['queue']:.1f}x the messages/s of Queue() "
                       f"({rate['shm_ring']:,.0f} vs {rate['queue']:,.0f})")
        if {"pipe", "queue"} <= set(rate.index):
            faster = "faster" if rate["pipe"] > rate["queue"] else "slower"
            out.append(f"{words}: Pipe() is {faster} than Queue(), "
                       f"{rate['pipe'] / rate['queue']:.2f}x its messages/s")
    big = table[(table["param.pattern"] == "stream") & (table["param.size_bytes"] == 64 * 1024)
                & (table["ends"] == "1:1") & (table["param.batch"] == 1)]
    for words, group in _groups(big):
        rate = group["bytes_per_second"].dropna()
        if "os_pipe" in rate.index and len(rate) > 1:
            others = rate.drop("os_pipe")
            best = others.idxmax()
            out.append(f"{words}, 64 KiB: best channel {DISPLAY[best]} moves "
                       f"{others[best] / 1e9:.2f} GB/s, {others[best] / rate['os_pipe']:.0%} of "
                       f"raw os.pipe ({rate['os_pipe'] / 1e9:.2f} GB/s)")
    return out


def _cpus(count):
    return f"{count} CPU{'s' if count != 1 else ''}"
