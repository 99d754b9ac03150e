"""The ipc family's charts, one function each; every one reads the table of analysis.ipc.summary."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401
import numpy as np  # noqa: E402

from lab.analysis.ipc import channel_label, streams_of_small_messages  # noqa: E402
from lab.present.charts import save as _save  # noqa: E402


def _groups(table):
    """(label, rows) per CPU count and placement of the ends (and Python when several)."""
    several = table["python"].nunique() > 1
    hosts = "host" in table.columns and table["host"].astype(str).nunique() > 1
    keys = (["host"] if hosts else []) + ["python", "cpus", "param.placement"]
    for values, rows in table.groupby(keys, sort=True):
        host = f"{values[0]}\n" if hosts else ""  # several hosts (--hosts): grouped per host
        python, cpus, placement = values[-3:]
        label = f"{cpus} CPU{'s' if cpus > 1 else ''}, ends {placement}"
        yield host + (f"Py {python}, " if several else "") + label, rows


def _grouped_bars(axes, table, metric, ylabel, log=True):
    groups = list(_groups(table))
    channels = list(dict.fromkeys(table.sort_values("channel_order")["variant"]))
    width = 0.8 / max(1, len(channels))
    lowest = []  # the smallest whisker end of each channel, for the log axis's floor
    for c_index, channel in enumerate(channels):
        xs, ys, lows, highs = [], [], [], []
        for g_index, (_, rows) in enumerate(groups):
            row = rows[rows["variant"] == channel]
            if row.empty or not np.isfinite(row[metric].iloc[0]):
                continue
            xs.append(g_index + (c_index - (len(channels) - 1) / 2) * width)
            ys.append(row[metric].iloc[0])
            lows.append(row[metric].iloc[0] - row[f"{metric}_min"].iloc[0])
            highs.append(row[f"{metric}_max"].iloc[0] - row[metric].iloc[0])
        if not xs:
            continue
        lowest.append(min(y - low if np.isfinite(low) else y for y, low in zip(ys, lows)))
        first = table[table["variant"] == channel].iloc[0]
        axes.bar(xs, ys, width=width, color=f"C{c_index % 10}",
                 hatch="//" if first["tutorial"] else None, edgecolor="black", linewidth=0.4,
                 yerr=np.clip([lows, highs], 0, None), capsize=2,
                 label=channel_label(table[table["variant"] == channel])
                 + (" *" if first["tutorial"] else ""))
    axes.set_xticks(range(len(groups)), [label for label, _ in groups])
    if log:
        axes.set_yscale("log")
        # Bars on a log axis start at its floor: a floor set by matplotlib's margin just under
        # the smallest bar makes a 2x difference look like 10x; a whole decade below does not
        positive = [v for v in lowest if v > 0]
        if positive:
            axes.set_ylim(bottom=10 ** np.floor(np.log10(min(positive))))
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3, axis="y", which="both")


def channels_chart(table, folder, title_suffix=""):
    """Messages/s of every channel for small messages, per CPU count and placement of the ends."""
    rows = streams_of_small_messages(table[table["param.timing"] == "handshake"])
    if rows.empty:
        return []
    # One bar per channel and group: its largest count (a run of the tutorial's 10^4..10^6 shows
    # 10^6; sized counts differ per point, each lasting about --min-seconds)
    rows = (rows.sort_values("param.messages")
            .drop_duplicates(["python", "variant", "cpus", "param.placement"], keep="last"))
    counts = sorted(rows["param.messages"].unique())
    what = (f"{int(counts[0]):,} small ints" if len(counts) == 1
            else "small ints (counts sized per point)")
    groups = rows.groupby(["cpus", "param.placement"]).ngroups
    figure, axes = plt.subplots(figsize=(max(8, 2.2 * groups + 4), 5))
    _grouped_bars(axes, rows, "messages_per_second", "messages per second (log scale)")
    axes.set_title(f"{what}, one producer, one consumer{title_suffix}\n"
                   f"* hatched: the tutorial's three; bars: median, whiskers: min-max of repeats",
                   fontsize=10)
    axes.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(figure, folder, "ipc_channels")


def latency_chart(table, folder, title_suffix=""):
    """Round-trip latency (ping-pong) per channel: median bars, p99 as a marker above."""
    rows = table[table["param.pattern"] == "pingpong"]
    if rows.empty:
        return []
    figure, axes = plt.subplots(figsize=(max(8, 2.2 * rows.groupby(["cpus", "param.placement"]).ngroups + 4), 5))
    _grouped_bars(axes, rows, "p50_us", "round trip, microseconds (log scale)")
    groups = list(_groups(rows))
    channels = list(dict.fromkeys(rows.sort_values("channel_order")["variant"]))
    width = 0.8 / max(1, len(channels))
    for c_index, channel in enumerate(channels):
        for g_index, (_, group) in enumerate(groups):
            row = group[group["variant"] == channel]
            if len(row) and np.isfinite(row["p99_us"].iloc[0]):
                axes.plot(g_index + (c_index - (len(channels) - 1) / 2) * width,
                          row["p99_us"].iloc[0], marker="v", color="black", markersize=4)
    axes.plot([], [], marker="v", color="black", linestyle="none", label="p99")
    axes.set_title(f"Round-trip latency of small messages (ping-pong){title_suffix}\n"
                   f"bars: median of the trials' p50; triangles: p99", fontsize=10)
    axes.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(figure, folder, "ipc_latency")


def _bytes_label(value, _position):
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= factor:
            return f"{value / factor:g} {unit}"
    return f"{value:g}"


def _line_panels(table, x_column, metric, xlabel, ylabel, title):
    panels = list(_groups(table))
    figure, axes_list = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.6),
                                     squeeze=False, sharey=True)
    for axes, (label, rows) in zip(axes_list[0], panels):
        for c_index, (channel, curve) in enumerate(rows.groupby("variant", sort=False)):
            curve = curve.sort_values(x_column)
            reference = channel == "os_pipe"
            axes.errorbar(curve[x_column], curve[metric],
                          yerr=np.clip([curve[metric] - curve[f"{metric}_min"],
                                        curve[f"{metric}_max"] - curve[metric]], 0, None),
                          marker="o", capsize=2, color="black" if reference else f"C{c_index % 10}",
                          linestyle="--" if reference else "-", label=channel_label(curve))
        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_bytes_label))
        axes.set_yscale("log")
        axes.set_xlabel(xlabel)
        axes.set_title(label, fontsize=10)
        axes.grid(alpha=0.3, which="both")
    axes_list[0][0].set_ylabel(ylabel)
    axes_list[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.suptitle(title, fontsize=11)
    return figure


def sizes_chart(table, folder, title_suffix=""):
    """Bytes/s against message size, log-log, one line per channel; raw os.pipe dashed."""
    rows = table[(table["param.pattern"] == "stream") & (table["param.size_bytes"] > 0)
                 & (table["param.batch"] == 1) & (table["ends"] == "1:1")
                 & (table["param.timing"] == "handshake")]
    if rows["param.size_bytes"].nunique() < 2:  # one size is a dot, not a line: see the table
        return []
    figure = _line_panels(rows, "param.size_bytes", "bytes_per_second",
                          "message size (bytes, log scale)", "payload bytes per second (log)",
                          f"Throughput against message size{title_suffix} "
                          f"(dashed: raw os.pipe, a reference, not a ceiling)")
    return _save(figure, folder, "ipc_sizes")


def batch_chart(table, folder, title_suffix=""):
    """Items/s against items per send: what batching buys each channel."""
    rows = table[(table["param.pattern"] == "stream") & (table["ends"] == "1:1")
                 & (table["param.timing"] == "handshake")]
    if rows["param.batch"].nunique() < 2:
        return []
    sizes = sorted(rows["param.size_bytes"].unique())
    rows = rows[rows["param.size_bytes"] == sizes[0]]
    figure = _line_panels(rows, "param.batch", "messages_per_second",
                          "items per send (log scale)", "items per second (log)",
                          f"Batching: items/s against batch size{title_suffix}")
    return _save(figure, folder, "ipc_batch")


def ends_chart(table, folder, title_suffix=""):
    """Queues with several producers and consumers: the case the tutorial says Queue is for."""
    rows = table[(table["param.pattern"] == "stream") & (table["param.batch"] == 1)
                 & (table["param.timing"] == "handshake")]
    if rows["ends"].nunique() < 2:
        return []
    rows = rows[rows["variant"].isin(rows.loc[rows["ends"] != "1:1", "variant"].unique())]
    rows = rows[rows["param.size_bytes"] == rows["param.size_bytes"].min()]
    figure, axes = plt.subplots(figsize=(9, 5))
    labels = []
    for index, ((channel, cpus, placement), curve) in enumerate(
            rows.groupby(["channel", "cpus", "param.placement"])):
        curve = curve.sort_values("ends")
        axes.plot(curve["ends"], curve["messages_per_second"], marker="o", color=f"C{index % 10}",
                  label=f"{channel}, {cpus} CPUs, ends {placement}")
        labels += list(curve["ends"])
    axes.set_yscale("log")
    axes.set_xlabel("producers:consumers")
    axes.set_ylabel("items per second (log scale)")
    axes.set_title(f"Many producers and consumers{title_suffix}", fontsize=10)
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(figure, folder, "ipc_ends")


def tutorial_chart(table, folder, title_suffix=""):
    """The tutorial's own measurement: seconds to send N small ints through each channel, N on a
    log axis, one panel per CPU count, placement of the ends and clock; the tutorial's three
    solid, the other channels thin. Drawn when a run has two counts or more."""
    rows = streams_of_small_messages(table)
    if rows["param.messages"].nunique() < 2:
        return []
    hosts = "host" in rows.columns and rows["host"].astype(str).nunique() > 1
    keys = ["cpus", "param.placement", "param.timing"] + (["host"] if hosts else [])
    panels = list(rows.groupby(keys, sort=True))
    figure, axes_list = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4),
                                     squeeze=False, sharey=True)
    for axes, (values, group) in zip(axes_list[0], panels):
        cpus, placement, timing = values[:3]
        for c_index, (channel, curve) in enumerate(group.groupby("variant", sort=False)):
            curve = curve.sort_values("param.messages")
            tutorial = bool(curve["tutorial"].iloc[0])
            axes.plot(curve["param.messages"], curve["median_s"], marker="o",
                      linewidth=2 if tutorial else 0.8, color=f"C{c_index % 10}",
                      label=channel_label(curve) + (" *" if tutorial else ""))
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("messages sent (small ints, log scale)")
        axes.set_title(f"{cpus} CPU{'s' if cpus > 1 else ''}, ends {placement}, clock {timing}"
                       + (f"\n{values[3]}" if hosts else ""), fontsize=10)
        axes.grid(alpha=0.3, which="both")
    axes_list[0][0].set_ylabel("seconds, median of the trials (log)")
    axes_list[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.suptitle(f"The tutorial's table: time to send N numbers{title_suffix}\n"
                    f"* the tutorial's three channels", fontsize=11, y=1.06)
    return _save(figure, folder, "ipc_tutorial")


CHARTS = (tutorial_chart, channels_chart, latency_chart, sizes_chart, batch_chart, ends_chart)


def _count_label(value, _position):
    for unit, factor in (("M", 1e6), ("k", 1e3)):
        if value >= factor:
            return f"{value / factor:g}{unit}"
    return f"{value:g}"


def compare_chart(table, label_a, label_b, folder):
    """Messages/s of both runs per common IPC point: a dot per run and point (A circles, B
    squares) on a log axis, whiskers the order-statistic interval of each median (its coverage
    depends on the trial count). Dots, not bars: a bar's length on a log axis means nothing."""
    rows = table.iloc[::-1]
    height = max(3.0, 0.45 * len(rows) + 1.6)
    figure, axes = plt.subplots(figsize=(9.5, height))
    ys = np.arange(len(rows))
    for offset, side, label, color, marker in ((0.15, "a", label_a, "C0", "o"),
                                               (-0.15, "b", label_b, "C1", "s")):
        medians = rows[f"median_{side}"].to_numpy(float)
        low = np.nan_to_num(medians - rows[f"median_{side}_ci_low"].to_numpy(float), nan=0.0)
        high = np.nan_to_num(rows[f"median_{side}_ci_high"].to_numpy(float) - medians, nan=0.0)
        axes.errorbar(medians, ys + offset, xerr=np.clip([low, high], 0, None), fmt=marker,
                      color=color, capsize=3, markersize=6, label=label)
    axes.set_yticks(ys, list(rows["label"]), fontsize=8)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_count_label))
    axes.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(_count_label))
    axes.tick_params(axis="x", which="minor", labelsize=7)
    axes.set_xlabel(f"{rows['measure'].iloc[0].replace('_', ' ')} ({rows['unit'].iloc[0]}, "
                    f"median; log scale)")
    axes.set_title("IPC throughput of both runs\nwhiskers: the median's order-statistic interval",
                   fontsize=10)
    axes.grid(alpha=0.3, axis="x", which="both")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(figure, folder, "compare_ipc")
