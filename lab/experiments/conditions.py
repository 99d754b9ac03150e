"""IN THE TRIAL (standard library only): the conditions a trial ran in, read on the machine it
runs on (a container sees its kernel's /proc and /sys), for the CPUs it was pinned to.

`read(cpus)` is one reading: the load average, the swap counters, the frequency governor and
thermal-throttle counters of those CPUs, and their steal time (the per-CPU `cpuN` lines of
/proc/stat, not the machine's sum: a VM's neighbours take time from some vCPUs and not others).
`change(before, after)` is what a trial keeps: the load as it started, the governors seen, and
how much steal, swapping and throttling happened on its CPUs meanwhile. Anything unreadable is
left out (None), never an error.
"""

import os

from lab.sysinfo.machine import text_of as _text

STEAL_FIELD = 8  # a /proc/stat cpuN line: name user nice system idle iowait irq softirq steal


def _load(root):
    try:
        one, five, fifteen = (float(v) for v in _text(f"{root}proc/loadavg").split()[:3])
    except (AttributeError, ValueError):
        return None
    return {"load1": one, "load5": five, "load15": fifteen}


def _swap(root):
    counters = {}
    for line in (_text(f"{root}proc/vmstat") or "").splitlines():
        key, _, value = line.partition(" ")
        if key in ("pswpin", "pswpout") and value.strip().isdigit():
            counters[key] = int(value)
    return counters if len(counters) == 2 else None


def _steal(root, cpus):
    """{cpu id: steal seconds so far} for `cpus` from /proc/stat's per-CPU lines."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None
    wanted = {f"cpu{c}": c for c in cpus}
    steal = {}
    for line in (_text(f"{root}proc/stat") or "").splitlines():
        fields = line.split()
        if fields and fields[0] in wanted and len(fields) > STEAL_FIELD:
            try:
                steal[str(wanted[fields[0]])] = int(fields[STEAL_FIELD]) / ticks
            except ValueError:
                continue
    return steal or None


def _per_cpu(root, cpus, relative):
    found = {}
    for cpu in cpus:
        text = _text(f"{root}sys/devices/system/cpu/cpu{cpu}/{relative}")
        if text is not None:
            found[str(cpu)] = text.strip()
    return found or None


def read(cpus=None, root="/"):
    """One reading for `cpus` (default: this process's affinity)."""
    cpus = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    root = root if root.endswith("/") else root + "/"
    thermal = {}
    for kind in ("core_throttle_count", "package_throttle_count"):
        for cpu, value in (_per_cpu(root, cpus, f"thermal_throttle/{kind}") or {}).items():
            if value.isdigit():
                thermal[f"{cpu}/{kind}"] = int(value)
    return {"cpus": cpus, "load": _load(root), "swap": _swap(root),
            "governors": _per_cpu(root, cpus, "cpufreq/scaling_governor"),
            "thermal": thermal or None, "steal": _steal(root, cpus)}


def _grew(before, after):
    if not before or not after:
        return None
    return sum(max(0, after[k] - before[k]) for k in before if k in after)


def change(before, after):
    """What a trial keeps of two readings: flat numbers and words (None: not readable)."""
    load = before.get("load") or {}
    governors = sorted(set((after.get("governors") or before.get("governors") or {}).values()))
    return {
        "load1": load.get("load1"),
        "online_cpus": os.cpu_count(),
        "steal_own_cpus_seconds": _grew(before.get("steal"), after.get("steal")),
        "swapped_pages": _grew(before.get("swap"), after.get("swap")),
        "thermal_events": _grew(before.get("thermal"), after.get("thermal")),
        "governor": ",".join(governors) if governors else None,
    }


# What a trial keeps of the conditions on its own CPUs, as metrics (and the governor as a check)
CONDITION_METRICS = {"load1": "runnable tasks (1-minute load average as the trial started)",
                     "steal_own_cpus_seconds": "s (steal on the trial's CPUs, whole trial)",
                     "swapped_pages": "pages (swapped in or out, machine, whole trial)",
                     "thermal_events": "events (thermal throttling of the trial's CPUs)"}


def keep(result, before):
    """Add to a trial's result what changed on its CPUs since `before` (a `read()`): every
    family's trials carry the conditions they ran in, read where they ran."""
    kept = change(before, read(before["cpus"]))
    metrics = result.setdefault("metrics", {})
    for name, unit in CONDITION_METRICS.items():
        if kept.get(name) is not None:
            metrics[name] = {"value": kept[name], "unit": unit}
    if kept.get("governor"):
        result.setdefault("check", {})["governor"] = kept["governor"]
    return result
