"""What this process sees of its CPUs: affinity, CPU counts, cgroup quota, cpuset, throttling.

Standard library only: this package runs inside the trial containers (Python 3.11 and later) as
well as on the host. CPU lists are in `cpulists`, the cgroup (v1 and v2 behind one interface,
`Cgroup`, found by `find_cgroup`) in `cgroups`; this module is what a trial reads: `seen()` and
the counters around a timed section. Their names stay importable from `lab.sysinfo`.
"""

import math
import os

from lab.sysinfo.cgroups import (Cgroup, CgroupV1, CgroupV2, Hierarchy, Mount,  # noqa: F401
                                 _read_text, find_cgroup)
from lab.sysinfo.cpulists import format_cpu_list, parse_cpu_list  # noqa: F401


# ---------------------------------------------------------------------------------------------
# What the process sees


def _affinity():
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on macOS / Windows
        return None


def _process_cpu_count():
    process_cpu_count = getattr(os, "process_cpu_count", None)  # Python 3.13+
    return process_cpu_count() if process_cpu_count is not None else None


def _pool_default_workers():
    """What multiprocessing.Pool() chooses with no argument, mirroring CPython's Pool.__init__."""
    if hasattr(os, "process_cpu_count"):  # 3.13+: the affinity (or PYTHON_CPU_COUNT)
        return os.process_cpu_count() or 1
    return os.cpu_count() or 1  # before 3.13: every CPU of the machine, affinity ignored


def effective_cpus(affinity_count, quota_cpus):
    """CPUs the process can really use: the affinity, cut to ceil(quota) when there is a quota.

    The loky rule (loky/backend/context.py), at least 1.
    """
    cpus = affinity_count
    if quota_cpus is not None:
        cpus = min(cpus, math.ceil(quota_cpus))
    return max(cpus, 1)


def _cgroup_view():
    """The `cgroup` part of seen(); values it cannot read are None."""
    view = {"version": None, "path": None, "quota_cpus": None, "cpuset": None}
    try:
        cgroup = find_cgroup()
        if cgroup is not None:
            view.update(version=cgroup.version, path=cgroup.path,
                        quota_cpus=cgroup.quota_cpus(), cpuset=cgroup.cpuset())
    except Exception:  # seen() runs in every trial: a None here beats a lost trial
        pass
    return view


def seen():
    """What this process sees of its CPUs, as a JSON-ready dict. Never raises."""
    affinity = _affinity()
    os_cpu_count = os.cpu_count()
    cgroup = _cgroup_view()
    affinity_count = len(affinity) if affinity is not None else (os_cpu_count or 1)
    return {
        "affinity": affinity,
        "os_cpu_count": os_cpu_count,
        "process_cpu_count": _process_cpu_count(),
        "pool_default_workers": _pool_default_workers(),
        "quota_cpus": cgroup["quota_cpus"],
        "effective_cpus": effective_cpus(affinity_count, cgroup["quota_cpus"]),
        "cgroup": cgroup,
    }


# ---------------------------------------------------------------------------------------------
# CPU counters of the cgroup (throttling, usage), before and after a trial

COUNTER_KEYS = ("nr_periods", "nr_throttled", "throttled_seconds", "usage_seconds")
TRIAL_COUNTER_KEYS = COUNTER_KEYS + ("steal_seconds",)  # trial_counters(): the cgroup's + steal


def cpu_counters(root="/"):
    """Snapshot of the cgroup's CPU counters ({COUNTER_KEYS}; a value it can't read is None).

    None when no cgroup is readable at all. Never raises.
    """
    try:
        cgroup = find_cgroup(root)
        if cgroup is None:
            return None
        counters = dict.fromkeys(COUNTER_KEYS)
        counters.update(cgroup.cpu_stat() or {})
        counters["usage_seconds"] = cgroup.usage_seconds()
    except Exception:  # called around every trial: a missing number beats a lost trial
        return None
    if all(value is None for value in counters.values()):
        return None
    return counters


def counters_delta(before, after):
    """after - before for each counter both snapshots hold (not None); {} if either is None."""
    if before is None or after is None:
        return {}
    return {key: after[key] - before[key] for key in TRIAL_COUNTER_KEYS
            if before.get(key) is not None and after.get(key) is not None}


# ---------------------------------------------------------------------------------------------
# Steal time: CPU time the hypervisor gave to other guests while this machine's vCPUs wanted it

STEAL_FIELD = 7  # /proc/stat "cpu" line: user nice system idle iowait irq softirq steal ...


def steal_seconds(root="/"):
    """The machine's cumulative steal time in seconds (all CPUs, /proc/stat), or None.

    /proc/stat is not namespaced: inside a container it is the host's. None when the file, its
    "cpu" line or the steal field (kernels before 2.6.11) is missing or unreadable."""
    text = _read_text(os.path.join(root, "proc/stat"))
    if text is None:
        return None
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            return _ticks_to_seconds(fields[1:], STEAL_FIELD)
    return None


def _ticks_to_seconds(values, index):
    """values[index], a count of USER_HZ ticks, in seconds; None if absent or not a number."""
    try:
        return int(values[index]) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, OSError):
        return None


def trial_counters(root="/"):
    """What a trial reads before and after what it times: the cgroup's CPU counters
    (cpu_counters; None values where unreadable) and the machine's steal_seconds. Never None,
    never raises; subtract two with counters_delta."""
    counters = cpu_counters(root) or dict.fromkeys(COUNTER_KEYS)
    try:
        counters["steal_seconds"] = steal_seconds(root)
    except Exception:  # read around every trial: a missing number beats a lost trial
        counters["steal_seconds"] = None
    return counters
