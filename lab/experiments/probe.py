"""Probe: trials that exercise the lab itself (what a trial sees; how failures are recorded).

  seen       do nothing timed: the record's `seen` is the point (affinity, counts, cgroup)
  sleep      sleep `params.seconds` (a trial that overruns its time limit)
  exit       exit with `params.code` without a result line (a crashing trial)
  allocate   touch `params.mib` MiB of memory (a trial killed past its memory limit)
  isolation  what the trial can reach: a TCP connect to `params.host`:`params.port`, a file
             created in each of `params.paths`, its uid/gid, how `/` is mounted, its capabilities
  echo       the trial spec as the trial received it (argv and params), and whether
             `params.marker` exists: specs travel as data, never as shell text
  host       the facts of the machine the trial runs on, for a remote host (--hosts): CPU
             model, the CPUs it may use with their package and core ids, kernel, cgroup
             version, SMT, DMI vendor and product (an EC2 instance type), virtualisation, and
             the kernel's boot id (which machine it is: a container sees its kernel's).
             Nothing that needs the network or privileges, no serial number or hardware UUID
             (the boot id is random, made anew at every boot); and its conditions
             (lab.experiments.conditions: load, swap, governors, thermal, per-CPU steal)
"""

import errno
import os
import socket
import sys
import time

from lab.experiments import conditions
from lab.sysinfo import machine

NAME = "probe"
VARIANTS = ("seen", "sleep", "exit", "allocate", "isolation", "echo", "host")
DMI = "/sys/class/dmi/id"
DMI_FIELDS = ("sys_vendor", "product_name", "product_version", "board_vendor", "bios_vendor")


def _errno_name(error):
    return errno.errorcode.get(error.errno, str(error.errno)) if error.errno else type(error).__name__


def _connect(host, port, timeout=3.0):
    """'connected', or the errno name (ENETUNREACH, ECONNREFUSED ...) of the failed connect."""
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return "connected"
    except socket.timeout:
        return "timeout"
    except OSError as error:
        return _errno_name(error)


def _write(directory):
    """'ok' when a new file can be created in `directory` (then removed), else the errno name."""
    path = os.path.join(directory, f".probe-{os.getpid()}")
    try:
        with open(path, "x") as handle:
            handle.write("probe")
    except OSError as error:
        return _errno_name(error)
    os.unlink(path)
    return "ok"


def _root_mount():
    """The mount options of `/` as /proc/mounts lists it (the last mount on / wins)."""
    options = None
    with open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 3 and fields[1] == "/":
                options = fields[3].split(",")
    return options


def _status_fields(names):
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in names:
                found[key] = value.strip()
    return found


def _isolation(params):
    paths = params.get("paths") or ["/"]
    return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
            "groups": os.getgroups(), "home": os.path.expanduser("~"),
            "connect": _connect(params["host"], params["port"]) if params.get("host") else None,
            "writes": {path: _write(path) for path in paths},
            "owned": {path: os.stat(path).st_uid == os.getuid() for path in paths
                      if os.path.exists(path)},
            "root_mount": _root_mount(),
            "status": _status_fields({"CapEff", "CapPrm", "CapBnd", "NoNewPrivs"})}


def _text(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _int_or(text, default):
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def _host():
    sys_cpu = "/sys/devices/system/cpu"
    cpus = []
    for cpu in sorted(os.sched_getaffinity(0)):
        package = _text(f"{sys_cpu}/cpu{cpu}/topology/physical_package_id")
        core = _text(f"{sys_cpu}/cpu{cpu}/topology/core_id")
        cpus.append({"id": cpu, "package": _int_or(package, 0), "core": _int_or(core, cpu)})
    model, flags = machine.cpu_model_and_flags()
    dmi = {name: _text(f"{DMI}/{name}") for name in DMI_FIELDS}
    hypervisor = _text("/sys/hypervisor/type")
    return {"cpu_model": model, "cpus": cpus, "cpu_count": os.cpu_count(),
            "online": _text(f"{sys_cpu}/online"), "smt_active": _text(f"{sys_cpu}/smt/active"),
            "kernel": os.uname().release, "machine": os.uname().machine,
            "cgroup_version": machine.cgroup_version(),
            "hypervisor_flag": "hypervisor" in flags, "hypervisor_type": hypervisor,
            "boot_id": _text("/proc/sys/kernel/random/boot_id"),  # the kernel's, not namespaced
            "dmi": {k: v for k, v in dmi.items() if v},
            "conditions": conditions.read([c["id"] for c in cpus])}


def run_trial(spec):
    variant, params = spec["variant"], spec.get("params", {})
    start = time.perf_counter()
    check = {}
    if variant == "sleep":
        time.sleep(float(params.get("seconds", 1.0)))
    elif variant == "exit":
        os._exit(int(params.get("code", 3)))  # no result line: the host must notice on its own
    elif variant == "allocate":
        mib = int(params.get("mib", 64))
        block = bytearray(mib * 1024 * 1024)
        for offset in range(0, len(block), 4096):  # touch every page so it is really resident
            block[offset] = 1
    elif variant == "isolation":
        check = _isolation(params)
    elif variant == "host":
        check = _host()
    elif variant == "echo":
        marker = params.get("marker")
        check = {"argv": sys.argv[1:], "params": params,
                 "marker_exists": os.path.exists(marker) if marker else None}
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time(),
            "metrics": {}, "check": check}
