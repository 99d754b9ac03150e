"""IPC runs in pandas: per point medians of messages/s, bytes/s and latency; the tutorial's table;
the channel's name with its bound. The headline ratios are lab.analysis.ipc_headlines."""

import math

import pandas as pd

from lab.analysis.trials import measured, point_stats
from lab.experiments.ipc import TUTORIAL_CHANNELS as TUTORIAL
from lab.experiments.ipc import normalize, queue_bound
from lab.experiments.ipc_catalog import CATALOG, display

# the channel as the tutorial (or the docs) would write it; a bounded queue by its bound too
DISPLAY = {name: facts.display for name, facts in CATALOG.items()}
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
    stats = stats.join(_bounds(trials), on="point_id")
    stats["channel"] = [channel_name(row) for _, row in stats.iterrows()]
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


def _bounds(trials):
    """queue_maxsize per point as its trials recorded it (check.queue_maxsize; 0: unbounded,
    NaN: a channel without a bound), or as the params give it where no trial recorded one."""
    recorded = (measured(trials).groupby("point_id")["check.queue_maxsize"].first()
                if "check.queue_maxsize" in trials.columns else pd.Series(dtype=float))
    bounds = {}
    for point_id, rows in trials.groupby("point_id"):
        value = recorded.get(point_id, math.nan)
        if value is None or pd.isna(value):
            value = _bound_from_params(rows.iloc[0])
        bounds[point_id] = None if value is None or pd.isna(value) else int(value)
    return pd.Series(bounds, name="queue_maxsize", dtype="Int64")  # summary.csv: 1000, not 1000.0


def _bound_from_params(row):
    keys = ("size_bytes", "batch", "timing", "queue_maxsize", "pattern", "producers",
            "consumers")
    params = {}
    for key in keys:
        value = row.get(f"param.{key}")
        if value is not None and not pd.isna(value):
            params[key] = value.item() if hasattr(value, "item") else value  # numpy -> Python
    try:
        return queue_bound(row["variant"], normalize(row["variant"], params))
    except Exception:  # an old or foreign record: no bound known
        return None


def channel_name(row):
    """The channel's name for one point: `Queue(maxsize=1000)` where the queue was bounded,
    `Queue()` where it was not (timing=seed: the tutorial's)."""
    if "queue_maxsize" in row:
        bound = row["queue_maxsize"]
    else:  # a row of trials.point_stats (compare, warnings): the bound its params give
        bound = _bound_from_params(row)
    return display(row["variant"], None if bound is None or pd.isna(bound) else bound)


def channel_label(rows):
    """One name for a channel's rows (a chart's legend): the name they share, or the range of
    bounds where they differ (64 KiB frames get a smaller bound: `Queue(maxsize=255..1000)`)."""
    names = list(dict.fromkeys(rows["channel"]))
    bounds = sorted({int(b) for b in rows.get("queue_maxsize", pd.Series(dtype=float)).dropna()
                     if b})
    if len(names) == 1 or len(bounds) < 2:
        return names[0]
    shown = DISPLAY.get(rows["variant"].iloc[0], names[0])
    return f"{shown[:-1]}maxsize={bounds[0]}..{bounds[-1]})"


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
