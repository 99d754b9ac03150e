"""When the lab's own numbers should not be trusted: warnings, each with what to do.

Two kinds:

- System checks, snapshot-then-compare (as BenchExec's CPUThrottleCheck and SwapCheck): the run
  calls `snapshot = before()` as it starts and `warnings = after(snapshot)` as it ends. Each check
  is one small class in CHECKS that reads what it needs under a root path (so a test can lay out
  a fake /proc and /sys) and compares the two readings; a file it cannot read makes it silent,
  never an error. The snapshot is plain data (`as_dict()`), so it can be kept in meta.json.
- Data checks, from a run's trials and point summary (`data_warnings`): spread too wide, too few
  repeats for the spread seen, CFS throttling under a cpuset limit, outliers.

A warning is a dict {code, message, advice}: what was seen, and what to do about it.
"""

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.sysinfo import parse_cpu_list

LOAD_PER_CPU = 0.5    # load average over this many runnable tasks per CPU: the machine was busy
CV_WIDE = 0.10        # a point's coefficient of variation above this: spread too wide
CV_FEW = 0.05         # ... above this with fewer than MIN_REPEATS trials: too few repeats
MIN_REPEATS = 5       # the fewest trials for which [min, max] is a >90% interval of the median
CI_WIDE = 0.10        # the median's interval wider than this fraction of the median


def warning(code, message, advice):
    return {"code": code, "message": message, "advice": advice}


def _read(root, relative):
    """Text of root/relative, or None where it is missing or unreadable."""
    try:
        return (Path(root) / relative).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _cpu_dirs(root):
    base = Path(root) / "sys/devices/system/cpu"
    try:
        return sorted((p for p in base.glob("cpu[0-9]*") if p.name[3:].isdigit()),
                      key=lambda p: int(p.name[3:]))
    except OSError:
        return []


def online_cpus(root="/"):
    """CPUs online under `root` (sys/devices/system/cpu/online), else os.cpu_count()."""
    try:
        cpus = parse_cpu_list(_read(root, "sys/devices/system/cpu/online") or "")
    except ValueError:
        cpus = []
    return len(cpus) or os.cpu_count() or 1


class Check:
    """One system check: `read(root)` a reading (plain data, None where not readable), and
    `compare(before, after, cpus)` the two readings into warnings."""
    name = ""

    def read(self, root):
        raise NotImplementedError

    def compare(self, before, after, cpus):
        raise NotImplementedError


class LoadAverage(Check):
    """The 1-minute load average as the run starts: other work competing for the CPUs."""
    name = "load_average"

    def read(self, root):
        text = _read(root, "proc/loadavg")
        try:
            one, five, fifteen = (float(v) for v in text.split()[:3])
        except (AttributeError, ValueError):
            return None
        return {"load1": one, "load5": five, "load15": fifteen}

    def compare(self, before, after, cpus):
        if not before or before["load1"] <= LOAD_PER_CPU * cpus:
            return []
        return [warning(
            "load-high",
            f"load average {before['load1']:.2f} over the minute before the run, on {cpus} CPUs "
            f"(above {LOAD_PER_CPU:g} per CPU): other work was competing for the CPUs",
            f"run on a quiet machine: stop other jobs (see `top`), or wait until the load falls "
            f"below {LOAD_PER_CPU * cpus:.1f}; the interleaved rounds spread such noise over all "
            f"points but do not remove it")]


class Swap(Check):
    """Pages swapped in or out during the run (/proc/vmstat pswpin, pswpout)."""
    name = "swap"

    def read(self, root):
        text = _read(root, "proc/vmstat")
        if text is None:
            return None
        counters = {}
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key in ("pswpin", "pswpout"):
                try:
                    counters[key] = int(value)
                except ValueError:
                    return None
        return counters if len(counters) == 2 else None

    def compare(self, before, after, cpus):
        if not before or not after:
            return []
        swapped_in = after["pswpin"] - before["pswpin"]
        swapped_out = after["pswpout"] - before["pswpout"]
        if swapped_in <= 0 and swapped_out <= 0:
            return []
        return [warning(
            "swap-activity",
            f"the machine swapped during the run ({swapped_in} pages in, {swapped_out} out): "
            f"trials that waited on the disk measured paging, not Python",
            "free memory before measuring (stop other jobs, lower the container memory limit in "
            "invoke.yaml lab.docker.memory_limit so a trial fails instead of swapping) and rerun")]


class Governor(Check):
    """The CPU frequency governor of every CPU, where cpufreq is exposed."""
    name = "governor"

    def read(self, root):
        governors = {}
        for cpu in _cpu_dirs(root):
            text = _read(cpu, "cpufreq/scaling_governor")
            if text is not None:
                governors[cpu.name] = text.strip()
        return governors or None

    def compare(self, before, after, cpus):
        seen = {**(before or {}), **(after or {})}
        others = {cpu: g for cpu, g in seen.items() if g != "performance"}
        if not others:
            return []
        kinds = sorted(set(others.values()))
        return [warning(
            "governor-not-performance",
            f"CPU frequency governor {', '.join(kinds)} (not performance) on "
            f"{len(others)} of {len(seen)} CPUs: the clock speed changes with load, so the same "
            f"work takes different times",
            "set the performance governor for the run (`cpupower frequency-set -g performance`, "
            "or write performance to /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor), "
            "then rerun")]


class ThermalThrottle(Check):
    """Thermal throttling events of the CPUs (thermal_throttle/*_throttle_count) during the run."""
    name = "thermal_throttle"

    def read(self, root):
        counts = {}
        for cpu in _cpu_dirs(root):
            for kind in ("core_throttle_count", "package_throttle_count"):
                text = _read(cpu, f"thermal_throttle/{kind}")
                if text is not None and text.strip().isdigit():
                    counts[f"{cpu.name}/{kind}"] = int(text)
        return counts or None

    def compare(self, before, after, cpus):
        if not before or not after:
            return []
        grew = {k: after[k] - before[k] for k in before if k in after and after[k] > before[k]}
        if not grew:
            return []
        return [warning(
            "thermal-throttling",
            f"the CPUs were thermally throttled during the run ({sum(grew.values())} events on "
            f"{len({k.split('/')[0] for k in grew})} CPUs): their clock was lowered to cool down",
            "cool the machine (airflow, lower ambient load) or use one that holds its clock, "
            "then rerun")]


CHECKS = (LoadAverage(), Swap(), Governor(), ThermalThrottle())


@dataclass
class Snapshot:
    """What every check read as the run started, under `root`, on `cpus` online CPUs."""
    root: str
    cpus: int
    taken_at: float
    readings: dict = field(default_factory=dict)

    def as_dict(self):
        return {"root": self.root, "cpus": self.cpus, "taken_at": self.taken_at,
                "readings": self.readings}

    @classmethod
    def from_dict(cls, data):
        return cls(str(data.get("root", "/")), int(data.get("cpus") or 1),
                   float(data.get("taken_at") or 0.0), dict(data.get("readings") or {}))


def before(root="/", cpus=None, checks=CHECKS):
    """Read every system check now (at run start). Never raises for what it cannot read."""
    return Snapshot(str(root), int(cpus or online_cpus(root)), time.time(),
                    {check.name: _safely(check.read, root) for check in checks})


def after(snapshot, checks=CHECKS):
    """Read every check again (at run end) and compare with `snapshot` (a Snapshot or its
    as_dict()); returns the warnings, a list of {code, message, advice}."""
    if snapshot is None:
        return []
    if isinstance(snapshot, dict):
        snapshot = Snapshot.from_dict(snapshot)
    warnings = []
    for check in checks:
        now = _safely(check.read, snapshot.root)
        try:
            warnings += check.compare(snapshot.readings.get(check.name), now, snapshot.cpus)
        except (KeyError, TypeError, ValueError):
            continue  # a reading of another shape (an older snapshot): no verdict, no crash
    return warnings


def _safely(read, root):
    try:
        return read(root)
    except (OSError, ValueError):
        return None


# --- data checks -------------------------------------------------------------------------------

def point_label(row, varying=()):
    """A point in words: variant, CPUs or quota, workers, and the parameters that vary."""
    where = (f"quota {_plural(row['quota'], 'CPU')}" if row.get("limit") == "quota"
             else _plural(int(row["cpus"]), "CPU"))
    parts = [str(row.get("channel") or row.get("variant")), where]
    workers = row.get("workers")
    if row.get("experiment") == "scaling":
        parts.append("Pool() default workers" if _missing(workers)
                     else _plural(int(workers), "worker"))
    for column in varying:
        name, value = column.removeprefix("param."), row.get(column)
        parts.append(PARAM_WORDS.get(name, "{name} {value}").format(name=name, value=value))
    return ", ".join(parts)


PARAM_WORDS = {"size_bytes": "{value} B", "placement": "ends {value}", "python": "Python {value}",
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
    return [c for c in columns if summary[c].astype(str).nunique() > 1]


def _listing(items, limit=6):
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def data_warnings(trials, summary):
    """Warnings from the measurements themselves: `trials` (results.trials_frame) and `summary`
    (results.point_stats or a summary built on it: n, median_s, cv, median_ci_*, outliers)."""
    out = []
    if summary is None or summary.empty:
        return out
    varying = varying_columns(summary)
    rows = [row for _, row in summary.iterrows() if row["n"] > 0]
    longer = ("--messages (or --round-trips)" if (summary["experiment"] == "ipc").all()
              else "--work")

    wide = [row for row in rows if row["cv"] > CV_WIDE]
    if wide:
        out.append(warning(
            "spread-too-wide",
            f"{len(wide)} point{'s' if len(wide) > 1 else ''} vary by more than {CV_WIDE:.0%} "
            f"(coefficient of variation) between trials: "
            + _listing([f"{point_label(r, varying)} (CV {r['cv']:.0%})" for r in wide]),
            f"find the noise before trusting differences smaller than the spread: quiet the "
            f"machine, lengthen each trial ({longer}) so start-up jitter matters less, and raise "
            f"--repeat; the median and its interval are robust, the mean is not"))

    few = []
    for row in rows:
        relative = (row["median_ci_high_s"] - row["median_ci_low_s"]) / row["median_s"] \
            if row["median_s"] > 0 else math.nan
        if row["n"] < 3:
            few.append(f"{point_label(row, varying)} (n={row['n']}: no spread to judge)")
        elif row["n"] < MIN_REPEATS and row["cv"] > CV_FEW:
            few.append(f"{point_label(row, varying)} (n={row['n']}, CV {row['cv']:.0%})")
        elif relative > CI_WIDE:
            few.append(f"{point_label(row, varying)} (n={row['n']}, the median's "
                       f"{row['median_ci_coverage']:.0%} interval spans {relative:.0%} of it)")
    if few:
        out.append(warning(
            "too-few-repeats",
            f"too few trials for the spread seen at {len(few)} point{'s' if len(few) > 1 else ''}: "
            + _listing(few),
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

    outliers = [row for row in rows if row.get("outliers", 0) > 0]
    if outliers:
        total = int(sum(row["outliers"] for row in outliers))
        out.append(warning(
            "outliers",
            f"{total} trial{'s' if total > 1 else ''} at {len(outliers)} "
            f"point{'s' if len(outliers) > 1 else ''} lie outside Tukey's fences (1.5 IQR beyond "
            f"the quartiles); they are kept in every statistic and counted in summary.csv: "
            + _listing([f"{point_label(r, varying)} ({int(r['outliers'])})" for r in outliers]),
            "look at when they ran (started_at and `outlier` in the trials): a cluster in time "
            "points to interference from outside; the medians barely move, means would"))
    return out


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
            out.append({"code": str(item.get("code") or "run"),
                        "message": str(item.get("message") or ""),
                        "advice": str(item.get("advice") or "")})
        else:
            out.append(warning("run", str(item), ""))
    return out
