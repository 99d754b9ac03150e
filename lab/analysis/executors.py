"""Processes, threads or interpreters: the scale family's executors side by side, per Python.

`executor_rows(trials, summary)`: per Python (and host, where several), CPU count and executor
(strong = a process Pool, process = one Process per worker, threads, interpreters), the
speedup T(1) / T(c) on the executor's own 1-CPU baseline with its bootstrap interval (from
lab.analysis.scaling), the speed against the serial run (median(serial) / median(point), with
the same bootstrap: the figure executors are compared on, since each one's own baseline
differs), the start cost (median seconds until every pool worker had started and taken its
warm-up task; for `process`, from the first start() to the first work),
and what the workers said of the GIL.

`verdicts(rows)`: one sentence per Python at its largest CPU count with two executors or more:
the executor to use for CPU-bound work on this machine with its interval, or "can't tell" when
the best one's interval overlaps another's.
"""

import math

import pandas as pd

from lab.analysis import stats
from lab.analysis.trials import measured, samples

# variant -> what it is, in the report's words (the order is the table's)
EXECUTORS = {"strong": "processes (Pool)", "process": "processes (Process)",
             "threads": "threads", "interpreters": "interpreters"}
# A pool's start: until every worker had started (older runs: the constructor); processes'
START_METRICS = ("metric.workers_ready_seconds", "metric.pool_start_seconds",
                 "metric.process_start_seconds")
ROUND_TRIP = "metric.task_round_trip_seconds"  # one empty task through the warm pool


def short_python(version):
    """3.14.2 -> 3.14, 3.14.2t -> 3.14t: the label a reader knows a Python by."""
    text = str(version)
    parts = text.rstrip("t").split(".")
    return ".".join(parts[:2]) + ("t" if text.endswith("t") else "")


def _host(value):
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _median(series):
    values = pd.to_numeric(series, errors="coerce").dropna()
    return float(values.median()) if len(values) else math.nan


def _flag(series):
    """True/False when every trial agrees, 'mixed' when not, None when none said."""
    values = {bool(v) for v in series.dropna()}
    return values.pop() if len(values) == 1 else ("mixed" if values else None)


def executor_rows(trials, summary):
    """A frame: python, host, cpus, variant, executor, n, speedup (+ interval), vs_serial
    (+ interval), start_s, round_trip_us (one empty task through the warm pool; NaN in runs
    before it was measured), gil_enabled, free_threaded; cpuset points whose workers = CPUs."""
    columns = ["python", "host", "cpus", "variant", "executor", "n", "speedup", "speedup_low",
               "speedup_high", "vs_serial", "vs_serial_low", "vs_serial_high", "start_s",
               "round_trip_us", "gil_enabled", "free_threaded"]
    if summary is None or summary.empty or trials is None or trials.empty:
        return pd.DataFrame(columns=columns)
    seconds = samples(trials)
    good = measured(trials)
    by_point = {point: rows for point, rows in good.groupby("point_id")}
    points = summary[summary["variant"].isin(list(EXECUTORS)) & (summary["limit"] == "cpuset")
                     & (summary["workers"] == summary["cpus"])]
    serial = summary[(summary["variant"] == "serial") & (summary["limit"] == "cpuset")]
    out = []
    for _, row in points.iterrows():
        host = _host(row.get("host"))
        base = serial[(serial["python"] == row["python"]) & (serial["image"] == row["image"])]
        if "host" in serial.columns:
            base = base[base["host"].map(_host) == host]
        mine = seconds.get(row["point_id"], [])
        vs, low, high = math.nan, math.nan, math.nan
        if len(base) and row["median_s"] > 0:
            base_s = seconds.get(base.iloc[0]["point_id"], [])
            vs = float(base.iloc[0]["median_s"]) / float(row["median_s"])
            low, high = stats.ratio_interval(base_s, mine)
        rows = by_point.get(row["point_id"], pd.DataFrame())
        start = math.nan
        for metric in START_METRICS:
            if metric in rows and not math.isfinite(start):
                start = _median(rows[metric])
        out.append({
            "python": row["python"], "host": host, "cpus": int(row["cpus"]),
            "variant": row["variant"], "executor": EXECUTORS[row["variant"]], "n": int(row["n"]),
            "speedup": row["speedup"], "speedup_low": row["speedup_ci_low"],
            "speedup_high": row["speedup_ci_high"], "vs_serial": vs, "vs_serial_low": low,
            "vs_serial_high": high, "start_s": start,
            "round_trip_us": _median(rows[ROUND_TRIP]) * 1e6 if ROUND_TRIP in rows else math.nan,
            "gil_enabled": _flag(rows["check.gil_enabled"]) if "check.gil_enabled" in rows
            else None,
            "free_threaded": _flag(rows["check.free_threaded"]) if "check.free_threaded" in rows
            else None})
    frame = pd.DataFrame(out, columns=columns)
    order = {v: i for i, v in enumerate(EXECUTORS)}
    return frame.sort_values(["python", "host", "cpus", "variant"],
                             key=lambda c: c.map(order) if c.name == "variant" else c,
                             ignore_index=True)


def _figure(row):
    interval = ("" if not math.isfinite(row["vs_serial_low"]) else
                f" [{row['vs_serial_low']:.2f}, {row['vs_serial_high']:.2f}]")
    return f"{row['executor']} {row['vs_serial']:.2f}x{interval}"


def _overlap(a, b):
    """Whether two rows' intervals of vs_serial overlap (a missing interval: they do)."""
    bounds = [a["vs_serial_low"], a["vs_serial_high"], b["vs_serial_low"], b["vs_serial_high"]]
    if not all(math.isfinite(v) for v in bounds):
        return True
    return a["vs_serial_low"] <= b["vs_serial_high"] and b["vs_serial_low"] <= a["vs_serial_high"]


def verdicts(rows):
    """One sentence per Python (and host): what to use for CPU-bound work on this machine at
    its largest CPU count where two executors or more were measured against the serial run."""
    sentences = []
    if rows is None or rows.empty:
        return sentences
    several_hosts = rows["host"].nunique() > 1
    for (python, host), mine in rows.groupby(["python", "host"], sort=True):
        mine = mine[mine["vs_serial"].map(lambda v: isinstance(v, float) and math.isfinite(v))]
        counts = [c for c, group in mine.groupby("cpus") if group["variant"].nunique() > 1]
        where = f"Python {short_python(python)}" + (f" on {host}" if several_hosts and host else "")
        if not counts:
            measured_here = ", ".join(dict.fromkeys(mine["executor"])) or "no executor"
            sentences.append(f"{where}: only {measured_here} measured against the serial run; "
                             f"nothing to compare (run --variants strong,threads,interpreters).")
            continue
        cpus = max(counts)
        group = mine[mine["cpus"] == cpus].sort_values("vs_serial", ascending=False)
        best = group.iloc[0]
        rest = [row for _, row in group.iloc[1:].iterrows()]
        tied = [row for row in rest if _overlap(best, row)]
        behind = [row for row in rest if not _overlap(best, row)]
        lead = f"{where}, {cpus} CPUs (speed against the serial run, 95% bootstrap interval)"
        behind_words = (f"; {' and '.join(_figure(r) for r in behind)} "
                        f"{'is' if len(behind) == 1 else 'are'} behind" if behind else "")
        if tied:
            names = " or ".join([best["executor"]] + [r["executor"] for r in tied])
            figures = ", ".join(_figure(r) for r in [best, *tied])
            sentences.append(f"{lead}: can't tell {names}: {figures} overlap{behind_words}; "
                             f"more rounds (--repeat) may decide.")
        else:
            sentences.append(f"{lead}: use {best['executor']} for CPU-bound work on this "
                             f"machine: {_figure(best)}, its interval clear of the others"
                             f"{behind_words}.")
    return sentences
