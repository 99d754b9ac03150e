"""What meta.json records of the host and the lab, collected in one place (pyperf style)."""

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

from lab.experiments import conditions
from lab.hosts import topology
from lab.sysinfo.machine import cgroup_version, cpu_model, cpu_model_and_flags
from lab.version import __version__

from lab.package_files import PROJECT_ROOT


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
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(cpus),
        "topology": topology.describe(cpus),
        "kernel": platform.release(),
        "cgroup_version": cgroup_version(),
        "host_python": platform.python_version(),
        "architecture": platform.machine(),
        **machine(),
        "conditions": conditions.read([c.id for c in cpus] or None),
    }


DMI = Path("/sys/class/dmi/id")
DMI_FIELDS = ("sys_vendor", "product_name", "product_version", "board_vendor", "bios_vendor")


def _read(path):
    try:
        return Path(path).read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def machine(dmi=None, hypervisor_flag=None, hypervisor_type=None):
    """What kind of machine: DMI vendor and product (EC2 names its instance type in
    product_name), and whether it is virtualised (the CPU's `hypervisor` flag, Xen's
    /sys/hypervisor/type); read on this machine unless given (a remote host's probe)."""
    if dmi is None:
        dmi = {name: _read(DMI / name) for name in DMI_FIELDS}
        dmi = {k: v for k, v in dmi.items() if v}
    if hypervisor_flag is None:
        flags = cpu_model_and_flags()[1]
        hypervisor_flag = "hypervisor" in flags
        hypervisor_type = _read("/sys/hypervisor/type")
    virtualised = bool(hypervisor_flag or hypervisor_type)
    kind = hypervisor_type or (dmi.get("product_name") if virtualised else None)
    return {"dmi": dmi, "virtualisation": (kind or "yes") if virtualised else "none",
            "instance_type": instance_type(dmi)}


def instance_type(dmi):
    """The cloud instance type where the DMI data names it (EC2: sys_vendor 'Amazon EC2',
    product_name 'c7i.large'), else None."""
    vendor = (dmi or {}).get("sys_vendor") or ""
    product = (dmi or {}).get("product_name") or ""
    if vendor.startswith("Amazon") and product and "." in product:
        return product
    return None


def from_probe(check, engine, name):
    """meta.json's facts of another machine from its probe trial (`probe host`, run there) and
    its engine's info(): never from this machine."""
    cpus = topology.cpus_from(check.get("cpus") or [])
    described = topology.describe(cpus)
    if check.get("smt_active") in ("0", "1"):
        described["smt_active"] = check["smt_active"] == "1"
    return {
        "hostname": engine.get("Name") or name,
        "host": name,
        "cpu_model": check.get("cpu_model"),
        "cpu_count": check.get("cpu_count"),
        "usable_cpus": len(cpus),
        "topology": described,
        "kernel": check.get("kernel"),
        "architecture": check.get("machine"),
        "cgroup_version": engine.get("CgroupVersion") and int(engine["CgroupVersion"])
        or check.get("cgroup_version"),
        "os": engine.get("OperatingSystem"),
        "memory_bytes": engine.get("MemTotal"),
        "host_python": None,
        **machine(check.get("dmi") or {}, check.get("hypervisor_flag"),
                  check.get("hypervisor_type")),
        "boot_id": check.get("boot_id"),   # its kernel's: which machine it is, by identity
        "engine_id": engine.get("ID"),      # which engine: two --hosts reaching one share it
        "facts_from": "a probe container on the host",
        # load, swap, governors, thermal and per-CPU steal of its CPUs as the probe ran there
        "conditions": check.get("conditions"),
    }


def lab():
    return {"version": __version__, "git_commit": git_commit(), "command_line": sys.argv}
