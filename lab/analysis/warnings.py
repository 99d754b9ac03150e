"""When the lab's own numbers should not be trusted: warnings from the data, each with what to do.

From a run's trials and point summary (`data_warnings`): spread too wide, too few repeats for the
spread seen, CFS throttling under a cpuset limit, outliers. System checks (load, swap, governor,
thermal throttling) are read around the run by lab/run/system_checks.py and kept in meta.json.

A warning is a dict {code, message, advice}: what was seen, and what to do about it.
"""

import math
from collections import Counter

CV_WIDE = 0.10        # a point's coefficient of variation above this: spread too wide
CV_FEW = 0.05         # ... above this with fewer than MIN_REPEATS trials: too few repeats
MIN_REPEATS = 5       # the fewest trials for which [min, max] is a >90% interval of the median
CI_WIDE = 0.10        # the median's interval wider than this fraction of the median


def warning(code, message, advice):
    return {"code": code, "message": message, "advice": advice}


def listed_warning(code, lead, points, advice):
    """A warning naming points: `points` is [(label, detail)], a point's words (point_label)
    and what was seen there (" (CV 13%)"). The message is the lead and the first points in one
    sentence, as ever; `lead` and `points` let a report show every point grouped
    (`grouped_points`)."""
    message = lead + ": " + _listing([label + detail for label, detail in points])
    return {**warning(code, message, advice), "lead": lead,
            "points": [[str(label), str(detail)] for label, detail in points]}


GROUP_FROM = 4  # a warning naming this many points or more is shown as a grouped list


def grouped_points(item):
    """(common, [(group, [entry])]) of a warning naming GROUP_FROM points or more, else None.
    A point's group is the first word of its label (the lesson, the variant, the channel); its
    entry the rest with what was seen; `common` the label parts every point shares (one Python),
    said once instead of on every entry."""
    points = item.get("points") or []
    if len(points) < GROUP_FROM:
        return None
    labels = [str(label).split(", ") for label, _ in points]
    common = [part for part in labels[0][1:] if all(part in parts[1:] for parts in labels)]
    groups = {}
    for parts, (_, detail) in zip(labels, points):
        head, _, rest = parts[0].partition(" ")
        words = ([rest] if rest else []) + [p for p in parts[1:] if p not in common]
        entry = (", ".join(words) + str(detail)).strip().removeprefix(": ")
        groups.setdefault(head, []).append(entry)
    return ", ".join(common), list(groups.items())


# --- data checks -------------------------------------------------------------------------------

def point_label(row, varying=(), show_workers=False):
    """A point in words: variant, CPUs or quota, workers (`show_workers`), and the parameters
    that vary."""
    where = (f"quota {_plural(row['quota'], 'CPU')}" if row.get("limit") == "quota"
             else _plural(int(row["cpus"]), "CPU"))
    parts = [str(row.get("channel") or row.get("variant")), where]
    workers = row.get("workers")
    if show_workers:
        parts.append("Pool() default workers" if _missing(workers)
                     else _plural(int(workers), "worker"))
    for column in varying:
        name, value = column.removeprefix("param."), row.get(column)
        parts.append(PARAM_WORDS.get(name, "{name} {value}").format(name=name, value=value))
    return ", ".join(parts)


PARAM_WORDS = {"size_bytes": "{value} B", "placement": "ends {value}", "python": "Python {value}",
               "host": "host {value}",
               "messages": "{value} messages", "batch": "batch {value}", "timing": "clock {value}"}


def _plural(count, noun):
    return f"{count:g} {noun}{'' if count == 1 else 's'}"


def _missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def varying_columns(summary):
    """Columns that tell points apart beyond variant, limit and CPUs (parameters, Python)."""
    columns = [c for c in summary.columns if c.startswith("param.")]
    if "python" in summary.columns:
        columns.append("python")
    if "host" in summary.columns:  # a run on several hosts (--hosts)
        columns.append("host")
    return [c for c in columns if summary[c].astype(str).nunique() > 1]


def _listing(items, limit=6):
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


MIN_SECONDS = 0.2  # a timed section shorter than this measures the clock and the scheduler


def data_warnings(trials, summary, lengthen="--work", label=point_label,
                  min_seconds=MIN_SECONDS, advice=None):
    """Warnings from the measurements themselves: `trials` (trials.trials_frame) and `summary`
    (trials.point_stats or a summary built on it: n, median_s, cv, median_ci_*, outliers).
    `lengthen` names the flag that makes a trial longer; `label(row, varying)` names a point;
    `advice(row, min_seconds)` says what to do about a point whose timed section is too short."""
    out = []
    failed = _failed_measured(trials)
    if failed:
        out.append(failed)
    if summary is None or summary.empty:
        return out
    point_label = label
    varying = varying_columns(summary)
    rows = [row for _, row in summary.iterrows() if row["n"] > 0]
    longer = lengthen

    short = [row for row in rows if row["median_s"] < min_seconds]
    if short:
        advise = advice or (lambda row, target: f"lengthen its trials ({longer})")
        out.append(listed_warning(
            "too-short",
            f"{len(short)} point{'s' if len(short) > 1 else ''} rest on timed sections under "
            f"{min_seconds:g} s, too short to trust (the clock, a scheduler tick and a page fault "
            f"are a large part of them)",
            [(point_label(r, varying), f": {r['median_s'] * 1e3:.1f} ms; "
                                       f"{advise(r, min_seconds)}") for r in short],
            f"size the trials to --min-seconds {min_seconds:g} or more; the lab does so itself "
            f"where it chooses the counts"))

    wide = [row for row in rows if row["cv"] > CV_WIDE]
    if wide:
        out.append(listed_warning(
            "spread-too-wide",
            f"{len(wide)} point{'s' if len(wide) > 1 else ''} vary by more than {CV_WIDE:.0%} "
            f"(coefficient of variation) between trials",
            [(point_label(r, varying), f" (CV {r['cv']:.0%})") for r in wide],
            f"find the noise before trusting differences smaller than the spread: quiet the "
            f"machine, lengthen each trial ({longer}) so start-up jitter matters less, and raise "
            f"--repeat; the median and its interval are robust, the mean is not"))

    few = []
    for row in rows:
        relative = (row["median_ci_high_s"] - row["median_ci_low_s"]) / row["median_s"] \
            if row["median_s"] > 0 else math.nan
        name = point_label(row, varying)
        if row["n"] < 3:
            few.append((name, f" (n={row['n']}: no spread to judge)"))
        elif row["n"] < MIN_REPEATS and row["cv"] > CV_FEW:
            few.append((name, f" (n={row['n']}, CV {row['cv']:.0%})"))
        elif relative > CI_WIDE:
            few.append((name, f" (n={row['n']}, the median's {row['median_ci_coverage']:.0%} "
                              f"interval spans {relative:.0%} of it)"))
    if few:
        out.append(listed_warning(
            "too-few-repeats",
            f"too few trials for the spread seen at {len(few)} point{'s' if len(few) > 1 else ''}",
            few,
            f"rerun with --repeat {max(10, MIN_REPEATS)} or more: with 10 trials the median's "
            f"interval runs from the 2nd to the 9th at 97.9% coverage; below {MIN_REPEATS} no "
            f"interval reaches 90% ([min, max] of 5 is 93.75%)"))

    throttled = _throttled_under_cpuset(trials)
    if throttled is not None:
        count, seconds, points = throttled
        out.append(warning(
            "throttled-under-cpuset",
            f"{count} trial{'s' if count > 1 else ''} limited by a cpuset only "
            f"{'were' if count > 1 else 'was'} CFS-throttled "
            f"({seconds:.2f} s in all) at {len(points)} point{'s' if len(points) > 1 else ''}: "
            f"a CPU quota was in force as well, so their times include waiting for quota",
            "find the quota: the container's cgroup and its parents (cpu.max on cgroup v2, "
            "cpu.cfs_quota_us on v1), the engine's cgroup parent or a systemd slice's CPUQuota; "
            "remove it and rerun those points"))

    stolen = _stolen(trials)
    if stolen is not None:
        count, seconds, worst, hosts = stolen
        out.append(warning(
            "steal-time",
            (f"host {', '.join(hosts)}: " if hosts else "")
            + f"the hypervisor ran something else on this VM's CPUs during {count} trial"
            f"{'s' if count > 1 else ''} ({seconds:.2f} s of steal time in all, up to "
            f"{worst:.0%} of a trial's section): those trials waited for CPUs the VM was promised",
            "rerun on an instance with dedicated CPUs (no burstable type, a dedicated host), or "
            "at a quieter time; compare the affected points only with the spread in mind"))

    outliers = [row for row in rows if row.get("outliers", 0) > 0]
    if outliers:
        total = int(sum(row["outliers"] for row in outliers))
        out.append(listed_warning(
            "outliers",
            f"{total} trial{'s' if total > 1 else ''} at {len(outliers)} "
            f"point{'s' if len(outliers) > 1 else ''} lie outside Tukey's fences (1.5 IQR beyond "
            f"the quartiles); they are kept in every statistic and counted in summary.csv",
            [(point_label(r, varying), f" ({int(r['outliers'])})") for r in outliers],
            "look at when they ran (started_at and `outlier` in the trials): a cluster in time "
            "points to interference from outside; the medians barely move, means would"))
    return out


STEAL_SHARE = 0.01  # steal time above this share of a trial's section is worth a warning


def _failed_measured(trials):
    """Measured trials that failed: a run whose trials all failed must never read as clean."""
    if trials is None or trials.empty or not {"ok", "warmup"} <= set(trials.columns):
        return None
    measured_rows = trials[trials["warmup"] == False]  # noqa: E712 (pandas)
    failed = measured_rows[measured_rows["ok"] != True]  # noqa: E712
    if failed.empty:
        return None
    reasons = Counter(str(e).splitlines()[0][:160] for e in failed.get("error", [])
                      if isinstance(e, str) and e)
    first = f"; the most frequent reason: {reasons.most_common(1)[0][0]}" if reasons else ""
    every = " (every one)" if len(failed) == len(measured_rows) else ""
    return warning(
        "trials-failed",
        f"{len(failed)} of {len(measured_rows)} measured trials failed{every}{first}; the figures "
        f"rest on the trials that did not",
        "read each failure's reason and stderr tail in raw.jsonl (and the report's points); fix "
        "the cause and rerun the matrix with --plan results/<run>/plan.json (--resume reruns "
        "only trials that were cut off or never ran)")


def _stolen(trials):
    """(trials, steal seconds, worst share) of trials whose host stole CPU time from them."""
    if trials is None or trials.empty or not {"steal_seconds", "seconds"} <= set(trials.columns):
        return None
    steal = trials["steal_seconds"].astype(float).fillna(0.0)
    share = steal / trials["seconds"].astype(float)
    hit = trials[share > STEAL_SHARE]
    if hit.empty:
        return None
    hosts = (sorted({str(h) for h in hit["host"] if h is not None and h == h})
             if "host" in hit.columns else [])
    return len(hit), float(steal[hit.index].sum()), float(share[hit.index].max()), hosts


def _throttled_under_cpuset(trials):
    """(trials, throttled seconds, point ids) of cpuset-limited trials that were throttled."""
    needed = {"limit", "throttled_seconds", "point_id"}
    if trials is None or trials.empty or not needed <= set(trials.columns):
        return None
    seconds = trials["throttled_seconds"].astype(float).fillna(0.0)
    hit = trials[(trials["limit"] == "cpuset") & (seconds > 0)]
    if hit.empty:
        return None
    return len(hit), float(seconds[hit.index].sum()), sorted(hit["point_id"].unique())


def normalised(warnings):
    """Warnings as stored by anyone (dicts, or plain strings of older runs) as dicts."""
    out = []
    for item in warnings or ():
        if isinstance(item, dict):
            kept = {"code": str(item.get("code") or "run"),
                    "message": str(item.get("message") or ""),
                    "advice": str(item.get("advice") or "")}
            if item.get("points") and isinstance(item["points"], list):
                kept.update(lead=str(item.get("lead") or kept["message"]),
                            points=[list(map(str, p))[:2] for p in item["points"]
                                    if isinstance(p, (list, tuple)) and len(p) >= 2])
            out.append(kept)
        else:
            out.append(warning("run", str(item), ""))
    return out
