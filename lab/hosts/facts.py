"""What meta.json records of the host and the lab, collected in one place (pyperf style)."""

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

from lab.hosts import topology
from lab.version import __version__

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


def cgroup_version(mounts="/proc/self/mounts"):
    """2 when /sys/fs/cgroup is a unified cgroup2 mount, 1 when v1 controllers are mounted."""
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return None
    types = {fields[1]: fields[2] for fields in (line.split() for line in lines) if len(fields) > 2}
    if types.get("/sys/fs/cgroup") == "cgroup2":
        return 2
    return 1 if "cgroup" in types.values() else None


def git_commit(root=PROJECT_ROOT):
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "lab",
                                "docker", "tasks.py"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def host(cpus=None):
    cpus = cpus if cpus is not None else topology.read_cpus()
    return {
        "hostname": socket.gethostname(),
        "cpu_model": topology.cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(cpus),
        "topology": topology.describe(cpus),
        "kernel": platform.release(),
        "cgroup_version": cgroup_version(),
        "host_python": platform.python_version(),
    }


def lab():
    return {"version": __version__, "git_commit": git_commit(), "command_line": sys.argv}
