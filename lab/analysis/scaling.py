"""Scaling runs in pandas: speedup (with its interval), efficiency, Karp-Flatt, the fits
(Amdahl, USL, Gustafson) per curve, and the quota view."""

import math

import numpy as np
import pandas as pd

from lab.analysis import ceiling, fits, stats
from lab.analysis.trials import measured, point_stats, samples

# Fixed total work (speedup T(1)/T(c)); "weak" grows the work with the workers instead.
STRONG_VARIANTS = ("strong", "process", "seed", "threads", "interpreters")
IN_ONE_PROCESS = ("threads", "interpreters")  # pools of one process: no start method applies


def _same_curve(summary, row, variant=None):
    """Rows of the same curve as `row`: same variant, start method, image and parameters."""
    mask = ((summary["variant"] == (variant or row["variant"]))
            & (summary["start_method"] == row["start_method"]) & (summary["image"] == row["image"]))
    if "host" in summary.columns:  # several hosts (--hosts): each host has its own curves
        mask &= _host_column(summary) == ("" if pd.isna(row["host"]) else str(row["host"]))
    for column in (c for c in summary.columns if c.startswith("param.")):
        mask &= (summary[column] == row[column]) | (summary[column].isna() & pd.isna(row[column]))
    return summary[mask]


def _baseline_point(summary, row):
    """The point of the same curve pinned to 1 CPU with 1 worker (None when not measured)."""
    curve = _same_curve(summary, row)
    base = curve[(curve["limit"] == "cpuset") & (curve["cpus"] == 1) & (curve["workers"] == 1)]
    return base.iloc[0] if len(base) else None


def _baseline_seconds(summary, row):
    """Median time of the same curve pinned to 1 CPU with 1 worker (NaN when not measured)."""
    base = _baseline_point(summary, row)
    return float(base["median_s"]) if base is not None else math.nan


def resources(row):
    """The CPUs a point had: its quota under a quota limit, else its cpuset's size."""
    return float(row["quota"]) if row["limit"] == "quota" else float(row["cpus"])


SCALING_COLUMNS = ("speedup", "speedup_ci_low", "speedup_ci_high", "speedup_ci_coverage",
                   "speedup_absolute",
                   "efficiency", "scaled_speedup", "scaled_speedup_ci_low",
                   "scaled_speedup_ci_high", "karp_flatt", "speedup_cap")


def scaling_summary(trials):
    """Point stats plus speedup (with its bootstrap interval), efficiency, Karp-Flatt, and the
    fits: Amdahl and USL on each strong curve, Gustafson on each weak one."""
    summary = point_stats(trials)
    summary = summary[summary["experiment"] == "scaling"].copy()
    for column in SCALING_COLUMNS:
        summary[column] = np.nan
    seconds = samples(trials)
    for index, row in summary.iterrows():
        if row["variant"] == "serial" or not row["median_s"] > 0:
            continue
        base = _baseline_point(summary, row)
        base_s = float(base["median_s"]) if base is not None else math.nan
        # T(1) / T(c) resampled from both points' trials: the speedup's own uncertainty
        if base is None:
            low, high = math.nan, math.nan
        elif base["point_id"] == row["point_id"]:
            low, high = 1.0, 1.0  # the baseline against itself: 1 by definition
        else:
            low, high = stats.ratio_interval(seconds.get(base["point_id"], []),
                                             seconds.get(row["point_id"], []))
            summary.at[index, "speedup_ci_coverage"] = stats.ratio_interval_coverage(
                len(seconds.get(base["point_id"], [])), len(seconds.get(row["point_id"], [])))
        serial = _same_curve(summary, row, variant="serial")
        serial = serial[(serial["cpus"] == 1) & (serial["limit"] == "cpuset")]
        serial_s = float(serial["median_s"].iloc[0]) if len(serial) else math.nan
        cpus = resources(row)
        if row["variant"] == "ceiling":  # N spinners' work against one: N x T(1) / T(N)
            spinners = row["workers"] if row["workers"] is not None else row["cpus"]
            summary.at[index, "speedup"] = spinners * base_s / row["median_s"]
            summary.at[index, "speedup_ci_low"] = spinners * low
            summary.at[index, "speedup_ci_high"] = spinners * high
            summary.at[index, "efficiency"] = summary.at[index, "speedup"] / cpus
            continue
        if row["variant"] == "weak":
            workers = row["workers"] if row["workers"] is not None else row["cpus"]
            summary.at[index, "scaled_speedup"] = workers * base_s / row["median_s"]
            summary.at[index, "scaled_speedup_ci_low"] = workers * low
            summary.at[index, "scaled_speedup_ci_high"] = workers * high
            summary.at[index, "efficiency"] = summary.at[index, "scaled_speedup"] / cpus
            continue
        speedup = base_s / row["median_s"]
        summary.at[index, "speedup"] = speedup
        summary.at[index, "speedup_ci_low"] = low
        summary.at[index, "speedup_ci_high"] = high
        summary.at[index, "speedup_absolute"] = serial_s / row["median_s"]
        summary.at[index, "efficiency"] = speedup / cpus
        summary.at[index, "karp_flatt"] = fits.karp_flatt(cpus, speedup)
        if row["variant"] == "seed":
            workers = row["workers"] if row["workers"] is not None else row["cpus"]
            summary.at[index, "speedup_cap"] = fits.seed_speedup_cap(min(cpus, workers))
    for column in ("amdahl_serial_fraction", "usl_sigma", "usl_kappa", "gustafson_serial_fraction"):
        summary[column] = np.nan
    for column in ("amdahl", "usl", "gustafson"):
        summary[column] = ""
        summary[f"{column}_exact"] = False  # solved from one point per parameter, not fitted
    for _, curve in strong_curves(summary):
        amdahl = fits.fit_amdahl(curve["cpus"], curve["speedup"])
        summary.loc[curve.index, "amdahl"] = amdahl.describe()
        summary.loc[curve.index, "amdahl_exact"] = amdahl.exact
        if amdahl.fitted:
            summary.loc[curve.index, "amdahl_serial_fraction"] = amdahl.serial_fraction
        usl = fits.fit_usl(curve["cpus"], curve["speedup"])
        summary.loc[curve.index, "usl"] = usl.describe()
        summary.loc[curve.index, "usl_exact"] = usl.exact
        if usl.fitted:
            summary.loc[curve.index, "usl_sigma"] = usl.sigma
            summary.loc[curve.index, "usl_kappa"] = usl.kappa
    for _, curve in weak_curves(summary):
        gustafson = fits.fit_gustafson(curve["cpus"], curve["scaled_speedup"])
        summary.loc[curve.index, "gustafson"] = gustafson.describe()
        summary.loc[curve.index, "gustafson_exact"] = gustafson.exact
        if gustafson.fitted:
            summary.loc[curve.index, "gustafson_serial_fraction"] = gustafson.serial_fraction
    summary = ceiling.attach(summary, STRONG_VARIANTS)
    return summary.sort_values(["python", "variant", "limit", "cpus", "workers"], key=_sort_key)


def _sort_key(column):
    return column.map(lambda v: (1, str(v)) if v is None or isinstance(v, str) else (0, v))


def strong_curves(summary):
    """(name, rows) per strong-scaling curve: cpuset-limited, workers = CPUs, one variant."""
    rows = summary[summary["variant"].isin(STRONG_VARIANTS) & (summary["limit"] == "cpuset")
                   & (summary["workers"] == summary["cpus"])]
    several = rows["python"].nunique() > 1
    for (variant, method, python, host), curve in rows.groupby(
            ["variant", "start_method", "python", _host_column(rows)]):
        how = "one process" if variant in IN_ONE_PROCESS else method  # no start method there
        label = f"{variant} ({how}{', Python ' + python if several else ''}{_on(rows, host)})"
        yield label, curve.sort_values("cpus")


def weak_curves(summary):
    """(name, rows) per weak-scaling curve: cpuset-limited, workers = CPUs."""
    rows = summary[(summary["variant"] == "weak") & (summary["limit"] == "cpuset")
                   & (summary["workers"] == summary["cpus"])]
    several = rows["python"].nunique() > 1
    for (method, python, host), curve in rows.groupby(["start_method", "python",
                                                        _host_column(rows)]):
        label = f"weak ({method}{', Python ' + python if several else ''}{_on(rows, host)})"
        yield label, curve.sort_values("cpus")


def _host_column(rows):
    """What tells the hosts of a run apart (--hosts): its records' host, else one group."""
    if "host" in rows.columns:
        return rows["host"].map(lambda h: "" if pd.isna(h) else str(h))
    return pd.Series("", index=rows.index)


def _on(rows, host):
    """', host X' in a curve's name when the run has several hosts."""
    several = _host_column(rows).nunique() > 1
    return f", host {host}" if several else ""


def per_trial_speedups(trials, summary):
    """Each measured trial's speedup against its curve's baseline median (for the spread)."""
    good = measured(trials)
    base = {}
    for _, row in summary.iterrows():
        base[row["point_id"]] = (_baseline_seconds(summary, row), row)
    out = good[good["point_id"].isin(summary["point_id"])].copy()
    out["speedup"] = [base[p][0] / s * (_spinners(base[p][1]) if base[p][1]["variant"] == "ceiling"
                                        else 1) if s else math.nan
                      for p, s in zip(out["point_id"], out["seconds"])]
    return out


def _spinners(row):
    return row["workers"] if row["workers"] is not None else row["cpus"]


def quota_view(trials, summary):
    """Per point of the quota comparison: resources (cpuset size or quota), median throttled
    seconds, and the pool size the trial saw as default."""
    good = measured(trials)
    extra = good.groupby("point_id").agg(
        throttled_median_s=("throttled_seconds", "median"),
        pool_default_workers=("seen.pool_default_workers", "max"),
        effective_cpus=("seen.effective_cpus", "max"),
        os_cpu_count=("seen.os_cpu_count", "max"))
    view = summary.join(extra, on="point_id")
    view["resources"] = [resources(row) for _, row in view.iterrows()]
    return view


def pool_sizing_sentences(view):
    """One sentence per Python: what Pool() chose under a cpuset and a quota, and what to size by."""
    sentences = []
    for python, rows in view.groupby("python"):
        host = int(rows["os_cpu_count"].max())
        cpuset = rows[(rows["limit"] == "cpuset") & (rows["cpus"] < host)]
        quota = rows[rows["limit"] == "quota"]
        if quota.empty and cpuset.empty:
            continue
        parts = []
        if not cpuset.empty:
            row = cpuset.sort_values("cpus").iloc[0]
            follows = int(row["pool_default_workers"]) == int(row["cpus"])
            parts.append(f"Pool() starts {_workers(row['pool_default_workers'])} in a "
                         f"{int(row['cpus'])}-CPU cpuset ({'it follows affinity' if follows else 'it counts every host CPU'})")
        advice = "size pools by effective CPUs, min(affinity, ceil(quota / period))"
        if not quota.empty:
            q = quota.sort_values("quota").iloc[0]
            parts.append(f"{_workers(q['pool_default_workers'])} under a {q['quota']:g}-CPU quota "
                         f"(whose effective CPUs are {int(q['effective_cpus'])})")
            default = quota[quota["workers"].isna() & (quota["quota"] == q["quota"])]
            sized = quota[(quota["workers"] == math.ceil(q["quota"])) & (quota["quota"] == q["quota"])]
            if len(default) and len(sized) and default["median_s"].iloc[0] > 0:
                ratio = sized["median_s"].iloc[0] / default["median_s"].iloc[0]
                advice += (f": at that quota the effective-sized pool took {ratio:.2f}x the time of "
                           f"the default one, throttled {sized['throttled_median_s'].iloc[0]:.2f} s "
                           f"against {default['throttled_median_s'].iloc[0]:.2f} s")
        sentences.append(f"Python {python}: {' and '.join(parts)}; {advice}.")
    return sentences


def _workers(count):
    count = int(count)
    return f"{count} worker{'s' if count != 1 else ''}"


OFF_CPU_SHORTFALL = 0.05  # a trial's CPU time short of CPUs x seconds by more: it waited


def off_cpu(trials, label):
    """A warning (or None) when measured trials got less CPU than their section's length times
    the CPUs they could use: something else ran on their CPUs, or they were throttled or stolen
    from. CPU time is the cgroup's over the timed section (else the workers' own)."""
    from lab.analysis.warnings import warning
    good = measured(trials)
    if good.empty or "cgroup_cpu_seconds" not in good:
        return None
    short = {}
    for _, row in good.iterrows():
        cpu = row.get("cgroup_cpu_seconds")
        if cpu is None or pd.isna(cpu):
            cpu = row.get("cpu_seconds")
        if cpu is None or pd.isna(cpu) or not row["seconds"] or row["variant"] == "serial":
            continue
        usable = min(row["workers"] if row["workers"] is not None else row["cpus"], resources(row))
        if row["variant"] == "threads" and row.get("check.gil_enabled") is not False:
            usable = 1  # threads under one GIL run one at a time: one CPU is all they can use
        shortfall = 1 - float(cpu) / (float(row["seconds"]) * usable)
        if shortfall > OFF_CPU_SHORTFALL:
            short.setdefault(row["point_id"], (row, []))[1].append(shortfall)
    if not short:
        return None
    worst = sorted(short.values(), key=lambda item: -max(item[1]))
    hosts = ["host"] if _host_column(good).nunique() > 1 else []  # --hosts: name each host
    listed = [f"{label(row, hosts)} ({len(falls)} trial{'s' if len(falls) > 1 else ''}, up to "
              f"{max(falls):.0%} short)" for row, falls in worst[:6]]
    count = sum(len(falls) for _, falls in short.values())
    return warning(
        "off-cpu",
        f"{count} trial{'s' if count > 1 else ''} got less CPU time than their timed section "
        f"times the CPUs they could use (by more than {OFF_CPU_SHORTFALL:.0%}): they waited for "
        f"their CPUs, so they measured the machine's load as well as Python: "
        + "; ".join(listed) + ("; and more" if len(worst) > 6 else ""),
        "run on a quiet machine (see the load warning and `top`), check steal time on a VM and "
        "CFS throttling; rerun those points")
