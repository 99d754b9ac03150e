"""Per host: the conditions the trials ran in, read by each trial (every family: the trial's
entry point, lab.experiments.__main__) on its own machine for its own CPUs
(lab.experiments.conditions: load as it started, steal on its CPUs, swapping, thermal
throttling, frequency governor), kept in its record (metric.load1, metric.steal_own_cpus_seconds,
metric.swapped_pages, metric.thermal_events, check.governor), turned into warnings that name
the host. lab/run/system_checks.py reads the same on the machine where invoke runs; these are
each host's own, remote hosts included.
"""

import math

import pandas as pd

from lab.analysis.warnings import warning

LOAD_PER_CPU = 0.5   # as lab.run.system_checks: more runnable tasks per CPU, the host was busy
STEAL_SHARE = 0.01   # steal on the trial's own CPUs above this share of its time


def _column(frame, name):
    if name in frame.columns:
        return frame[name]
    return pd.Series(math.nan, index=frame.index, dtype=float)


def _hosts(frame):
    if "host" not in frame.columns:
        return pd.Series("this host", index=frame.index)
    return frame["host"].map(lambda h: "this host" if h is None or (isinstance(h, float)
                                                                    and math.isnan(h)) else str(h))


def per_host(trials):
    """{host: {first_load1, cpus, trials, steal_s, worst_steal_share, swapped_pages,
    thermal_events, governors}} over every trial that read its conditions."""
    out = {}
    if trials is None or trials.empty or "metric.load1" not in trials.columns:
        return out
    frame = trials[_column(trials, "metric.load1").notna()]
    for host, rows in frame.groupby(_hosts(frame)):
        rows = rows.sort_values("started_at") if "started_at" in rows else rows
        time = _column(rows, "host_seconds").fillna(_column(rows, "seconds")).astype(float)
        steal = _column(rows, "metric.steal_own_cpus_seconds").astype(float).fillna(0.0)
        share = (steal / time.where(time > 0)).fillna(0.0)
        cpus = _column(rows, "seen.os_cpu_count").dropna()
        governors = _column(rows, "check.governor").dropna().astype(str)
        out[host] = {
            "first_load1": float(rows["metric.load1"].iloc[0]),
            "cpus": int(cpus.max()) if len(cpus) else None,
            "trials": len(rows),
            "stolen_trials": int((share > STEAL_SHARE).sum()),
            "steal_s": float(steal.sum()),
            "worst_steal_share": float(share.max()) if len(share) else 0.0,
            "swapped_pages": int(_column(rows, "metric.swapped_pages").fillna(0).sum()),
            "thermal_events": int(_column(rows, "metric.thermal_events").fillna(0).sum()),
            "governors": sorted({g for value in governors for g in value.split(",") if g}),
        }
    return out


def condition_warnings(trials):
    """Warnings per host: busy as its first trial started, steal on the trials' own CPUs,
    swapping, thermal throttling, a governor other than performance."""
    out = []
    for host, seen in per_host(trials).items():
        cpus = seen["cpus"]
        if cpus and seen["first_load1"] > LOAD_PER_CPU * cpus:
            out.append(warning(
                "host-load-high",
                f"host {host}: load average {seen['first_load1']:.2f} on its {cpus} CPUs as its "
                f"first trial started (above {LOAD_PER_CPU:g} per CPU): other work was "
                f"competing for its CPUs",
                f"quiet that host (see `top` there) or wait until its load falls below "
                f"{LOAD_PER_CPU * cpus:.1f}, then rerun; each record keeps the load as the trial "
                f"started (metric.load1)"))
        if seen["stolen_trials"]:
            out.append(warning(
                "host-steal-own-cpus",
                f"host {host}: the hypervisor took {seen['steal_s']:.2f} s from the trials' own "
                f"CPUs in {seen['stolen_trials']} of {seen['trials']} trials (up to "
                f"{seen['worst_steal_share']:.0%} of a trial; /proc/stat per CPU)",
                "another guest shares those vCPUs' cores: rerun on dedicated CPUs or at a quieter "
                "time; read that host's speedups with its measured ceiling"))
        if seen["swapped_pages"]:
            out.append(warning(
                "host-swap",
                f"host {host}: {seen['swapped_pages']} pages swapped in or out while its trials "
                f"ran: trials that waited on the disk measured paging, not Python",
                "free memory on that host (stop other jobs) and rerun"))
        if seen["thermal_events"]:
            out.append(warning(
                "host-thermal",
                f"host {host}: {seen['thermal_events']} thermal throttling events on the trials' "
                f"CPUs while they ran: their clock was lowered",
                "cool that machine or use one that holds its clock, then rerun"))
        others = [g for g in seen["governors"] if g != "performance"]
        if others:
            out.append(warning(
                "host-governor",
                f"host {host}: CPU frequency governor {', '.join(others)} (not performance) on "
                f"the trials' CPUs: the clock changes with load",
                "set the performance governor on that host (`cpupower frequency-set -g "
                "performance`) and rerun"))
    return out


def condition_sentences(trials):
    """One line per host: what its trials saw (for the report)."""
    lines = []
    for host, seen in per_host(trials).items():
        governors = ", ".join(seen["governors"]) or "not exposed"
        lines.append(
            f"Host {host}: load {seen['first_load1']:.2f} on {seen['cpus'] or '?'} CPUs as its "
            f"first trial started; steal on the trials' CPUs {seen['steal_s']:.2f} s in all; "
            f"{seen['swapped_pages']} pages swapped; {seen['thermal_events']} thermal events; "
            f"governor {governors} ({seen['trials']} trials).")
    return lines
