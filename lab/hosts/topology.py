"""The host's CPU topology and how a count of CPUs becomes a CPU set (placement).

spread:  one CPU per physical core first (SMT siblings only once every core has one)
compact: SMT siblings together (fill a core before taking the next)
"""

import os
from dataclasses import dataclass
from pathlib import Path

PLACEMENTS = ("spread", "compact")


@dataclass(frozen=True)
class Cpu:
    id: int
    package: int
    core: int


def _read_int(path, default):
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return default


def read_cpus(sys_cpu="/sys/devices/system/cpu", usable=None):
    """The CPUs this process may use, with their package and core ids from sysfs."""
    usable = sorted(usable if usable is not None else os.sched_getaffinity(0))
    return [Cpu(cpu,
                _read_int(f"{sys_cpu}/cpu{cpu}/topology/physical_package_id", 0),
                _read_int(f"{sys_cpu}/cpu{cpu}/topology/core_id", cpu))
            for cpu in usable]


def cores(cpus):
    """CPUs grouped by physical core, in order of their lowest CPU id."""
    groups = {}
    for cpu in sorted(cpus, key=lambda c: c.id):
        groups.setdefault((cpu.package, cpu.core), []).append(cpu.id)
    return list(groups.values())


def ordered(cpus, placement):
    """All CPU ids in the order `placement` hands them out."""
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; allowed: {', '.join(PLACEMENTS)}")
    groups = cores(cpus)
    if placement == "compact":
        return [cpu for group in groups for cpu in group]
    depth = max(len(group) for group in groups)
    return [group[i] for i in range(depth) for group in groups if i < len(group)]


def cpuset_for(count, cpus, placement):
    """The first `count` CPUs in placement order, sorted (a cpuset is a set)."""
    order = ordered(cpus, placement)
    if not 1 <= count <= len(order):
        raise ValueError(f"{count} CPUs asked for, {len(order)} available")
    return sorted(order[:count])


def describe(cpus):
    """What meta.json records of the topology."""
    groups = cores(cpus)
    return {
        "cpus": [c.id for c in cpus],
        "packages": len({c.package for c in cpus}),
        "physical_cores": len(groups),
        "smt": any(len(group) > 1 for group in groups),
        "cores": groups,
    }


def cpus_of(described):
    """The Cpus a host had, from what `describe` recorded of it (meta.json's host topology):
    physical cores as recorded, packages folded into one (placement needs only the cores)."""
    cpus = []
    for core, group in enumerate(described.get("cores") or [[c] for c in described.get("cpus", [])]):
        cpus += [Cpu(cpu, 0, core) for cpu in group]
    return sorted(cpus, key=lambda c: c.id)


def cpus_from(listed):
    """Cpus from [{id, package, core}, ...] (what a remote host's probe trial reports)."""
    return sorted((Cpu(int(c["id"]), int(c.get("package", 0)), int(c.get("core", c["id"])))
                   for c in listed), key=lambda c: c.id)


def flat(count):
    """`count` CPUs 0..count-1, each its own core: a host whose topology is not known yet
    (only its engine's CPU count)."""
    return [Cpu(cpu, 0, cpu) for cpu in range(count)]
