"""Run one trial: ``python -m lab.experiments '<trial spec as JSON>'``.

The spec arrives as data (one argv item, never shell text). The last line of stdout is exactly
one JSON object, the trial's result; diagnostics go to stderr. Exit status 0 when the trial
succeeded, 1 when it failed (the JSON line then says why), 2 when the spec itself is unusable.

Spec keys: experiment, variant, params {..}, workers, start_method, expect_affinity (list of CPU
ids the trial must be pinned to, or null). Where the scheduler picks the CPUs (a Slurm step):
expect_cpu_count (how many CPUs the affinity must hold) and expect_cgroup_cpuset (true: the
affinity must be the cpuset of the trial's own cgroup, bar SMT siblings of its CPUs); such a
trial also records its job, step and node (`slurm`) when it runs under Slurm. Every measured
record's `check` says whether the GIL was enabled and the build free-threaded (`gil_enabled`,
`free_threaded`: read in the trial's process, or in its workers where the experiment reports
theirs).

Besides the experiment's own result, every record carries what the trial saw (`seen`) and the
counters read around its timed section (where the experiment reads them there) or around the
whole trial: throttled_seconds, nr_throttled, cgroup_cpu_seconds and steal_seconds (the
machine's steal time from /proc/stat; null where unreadable, and on a failed trial the whole
trial's).
"""

import json
import os
import sys
import time
import traceback

from lab import sysinfo
from lab.experiments import SpecError, TrialCheckFailed, conditions, gil, load


def _affinity_error(expected):
    """A trial not pinned where it was asked to be must fail loudly, never measure."""
    if expected is None:
        return None
    seen = sorted(os.sched_getaffinity(0))
    if seen != sorted(expected):
        return (f"affinity mismatch: asked for CPUs {sysinfo.format_cpu_list(expected)}, "
                f"the trial runs on {sysinfo.format_cpu_list(seen)}")
    return None


def _count_error(spec, seen):
    """A trial pinned by a scheduler: the CPU count it got, and an affinity that is its own
    cgroup's cpuset (what the step was given, not what it chose to use)."""
    expected = spec.get("expect_cpu_count")
    if expected is None:
        return None
    affinity = sorted(os.sched_getaffinity(0))
    if len(affinity) != int(expected):
        return (f"affinity mismatch: asked for {expected} CPU(s), the trial runs on "
                f"{len(affinity)} ({sysinfo.format_cpu_list(affinity)})")
    if not spec.get("expect_cgroup_cpuset"):
        return None
    cpuset = (seen.get("cgroup") or {}).get("cpuset")
    if cpuset is None:
        return "affinity unchecked: no cpuset cgroup is readable, so the pinning cannot be shown"
    extra = set(sysinfo.parse_cpu_list(cpuset)) - set(affinity)
    siblings = set()
    for cpu in affinity:  # with one thread per core, a step's cgroup may hold whole cores
        path = f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
        try:
            with open(path) as handle:
                siblings.update(sysinfo.parse_cpu_list(handle.read().strip()))
        except (OSError, ValueError):
            pass
    if not set(affinity) <= set(sysinfo.parse_cpu_list(cpuset)) or extra - siblings:
        return (f"affinity mismatch: the trial runs on {sysinfo.format_cpu_list(affinity)}, its "
                f"cgroup's cpuset is {cpuset}")
    return None


def _slurm():
    """The job, step and node of a trial run by Slurm (from the step's environment), and the
    cpuset cgroup it runs in; None elsewhere."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    cgroup = None
    try:
        with open("/proc/self/cgroup") as handle:
            for line in handle:
                number, controllers, path = line.rstrip("\n").split(":", 2)
                if "cpuset" in controllers.split(",") or (number == "0" and cgroup is None):
                    cgroup = path
    except (OSError, ValueError):
        pass
    return {"job_id": os.environ.get("SLURM_JOB_ID"), "step_id": os.environ.get("SLURM_STEP_ID"),
            "node": os.environ.get("SLURMD_NODENAME"), "cgroup": cgroup}


def run(spec):
    """Run the trial described by `spec` and return its result dict (ok or not)."""
    result = {
        "ok": False,
        "error": None,
        "python": gil.python_label(),  # 3.14.0t on a free-threaded build
        "started_at": time.time(),
        "seen": sysinfo.seen(),
        "steal_seconds": None,
    }
    if spec.get("expect_cpu_count") is not None:
        result["slurm"] = _slurm()
        if result["slurm"] is not None:
            result["slurm"]["cpuset"] = (result["seen"].get("cgroup") or {}).get("cpuset")
    error = _affinity_error(spec.get("expect_affinity")) or _count_error(spec, result["seen"])
    if error:
        result["error"] = error
        return result
    experiment = load(spec["experiment"])
    if spec.get("variant") not in experiment.VARIANTS:
        raise SpecError(f"unknown variant {spec.get('variant')!r} of {experiment.NAME}; "
                        f"known: {', '.join(experiment.VARIANTS)}")
    before = sysinfo.trial_counters()
    around = conditions.read()  # this trial's own CPUs, on the machine it runs on
    try:
        outcome = experiment.run_trial(spec)
    except TrialCheckFailed as failure:
        result["error"] = f"check failed: {failure}"
        result["steal_seconds"] = _whole_trial(before).get("steal_seconds")
        return result
    # An experiment that reads the counters around its own timed section says so; else the
    # whole trial (start-up and warm-up included) is what the counters cover.
    delta = outcome.pop("section_counters", None) or _whole_trial(before)
    if spec.get("variant") != "calibrate":  # a calibration is no trial of the run's
        conditions.keep(outcome, around)
    result.update(outcome)
    # Read in this process, unless the experiment reported its workers' own (scaling does)
    result.setdefault("check", {}).setdefault("gil_enabled", gil.gil_enabled())
    result["check"].setdefault("free_threaded", gil.free_threaded())
    result["throttled_seconds"] = delta.get("throttled_seconds")
    result["nr_throttled"] = delta.get("nr_throttled")
    result["cgroup_cpu_seconds"] = delta.get("usage_seconds")
    result["steal_seconds"] = delta.get("steal_seconds")
    result["ok"] = True
    return result


def _whole_trial(before):
    """The counters' change from `before` until now."""
    return sysinfo.counters_delta(before, sysinfo.trial_counters())


def main(argv):
    if len(argv) != 2:
        print("usage: python -m lab.experiments '<trial spec as JSON>'", file=sys.stderr)
        return 2
    try:
        spec = json.loads(argv[1])
        result = run(spec)
    except (SpecError, ValueError, KeyError) as error:
        print(json.dumps({"ok": False, "error": f"bad trial spec: {error}"}), flush=True)
        return 2
    except Exception as error:  # a crash is a failed trial with its reason, never a number
        traceback.print_exc()
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
