"""Run one trial: ``python -m lab.experiments '<trial spec as JSON>'``.

The spec arrives as data (one argv item, never shell text). The last line of stdout is exactly
one JSON object, the trial's result; diagnostics go to stderr. Exit status 0 when the trial
succeeded, 1 when it failed (the JSON line then says why), 2 when the spec itself is unusable.

Spec keys: experiment, variant, params {..}, workers, start_method, expect_affinity (list of CPU
ids the trial must be pinned to, or null).
"""

import json
import os
import platform
import sys
import time
import traceback

from lab import sysinfo
from lab.experiments import SpecError, TrialCheckFailed, load


def _affinity_error(expected):
    """A trial not pinned where it was asked to be must fail loudly, never measure."""
    if expected is None:
        return None
    seen = sorted(os.sched_getaffinity(0))
    if seen != sorted(expected):
        return (f"affinity mismatch: asked for CPUs {sysinfo.format_cpu_list(expected)}, "
                f"the trial runs on {sysinfo.format_cpu_list(seen)}")
    return None


def run(spec):
    """Run the trial described by `spec` and return its result dict (ok or not)."""
    result = {
        "ok": False,
        "error": None,
        "python": platform.python_version(),
        "started_at": time.time(),
        "seen": sysinfo.seen(),
    }
    error = _affinity_error(spec.get("expect_affinity"))
    if error:
        result["error"] = error
        return result
    experiment = load(spec["experiment"])
    if spec.get("variant") not in experiment.VARIANTS:
        raise SpecError(f"unknown variant {spec.get('variant')!r} of {experiment.NAME}; "
                        f"known: {', '.join(experiment.VARIANTS)}")
    before = sysinfo.cpu_counters()
    try:
        outcome = experiment.run_trial(spec)
    except TrialCheckFailed as failure:
        result["error"] = f"check failed: {failure}"
        return result
    after = sysinfo.cpu_counters()
    # An experiment that reads the counters around its own timed section says so; else the
    # whole trial (start-up and warm-up included) is what the counters cover.
    delta = outcome.pop("section_counters", None) or sysinfo.counters_delta(before, after)
    result.update(outcome)
    result["throttled_seconds"] = delta.get("throttled_seconds")
    result["nr_throttled"] = delta.get("nr_throttled")
    result["cgroup_cpu_seconds"] = delta.get("usage_seconds")
    result["ok"] = True
    return result


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
