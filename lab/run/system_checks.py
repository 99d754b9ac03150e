"""System checks around a run, snapshot-then-compare (as BenchExec's CPUThrottleCheck and
SwapCheck): the run calls `snapshot = before()` right before its first trial and
`warnings = after(snapshot)` as it ends. Each check is one small class in CHECKS that reads what it
needs under a root path (so a test can lay out a fake /proc and /sys) and compares the two
readings; a file it cannot read makes it silent, never an error. The snapshot is plain data
(`as_dict()`), so it can be kept in meta.json. Warnings are analysis.warnings dicts.
"""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.analysis.warnings import warning
from lab.sysinfo import parse_cpu_list

LOAD_PER_CPU = 0.5    # load average over this many runnable tasks per CPU: the machine was busy


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
# These checks read the machine invoke runs on; each host's own conditions are read by its
# trials (lab.experiments.conditions) and judged per host by lab.analysis.conditions.
THIS_MACHINE = "this machine (where invoke runs)"


@dataclass
class Snapshot:
    """What every check read as the run started, under `root`, on `cpus` online CPUs."""
    root: str
    cpus: int
    taken_at: float
    readings: dict = field(default_factory=dict)
    host: str = THIS_MACHINE  # whose readings: the warnings name it

    def as_dict(self):
        return {"root": self.root, "cpus": self.cpus, "taken_at": self.taken_at,
                "readings": self.readings, "host": self.host}

    @classmethod
    def from_dict(cls, data):
        return cls(str(data.get("root", "/")), int(data.get("cpus") or 1),
                   float(data.get("taken_at") or 0.0), dict(data.get("readings") or {}),
                   str(data.get("host") or THIS_MACHINE))


def before(root="/", cpus=None, checks=CHECKS, host=THIS_MACHINE):
    """Read every system check now (at run start). Never raises for what it cannot read."""
    return Snapshot(str(root), int(cpus or online_cpus(root)), time.time(),
                    {check.name: _safely(check.read, root) for check in checks}, host)


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
            found = check.compare(snapshot.readings.get(check.name), now, snapshot.cpus)
        except (KeyError, TypeError, ValueError):
            continue  # a reading of another shape (an older snapshot): no verdict, no crash
        warnings += [{**w, "message": f"{snapshot.host}: {w['message']}"} for w in found]
    return warnings


def _safely(read, root):
    try:
        return read(root)
    except (OSError, ValueError):
        return None


