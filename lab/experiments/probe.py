"""Probe: trials that exercise the lab itself (what a trial sees; how failures are recorded).

  seen      do nothing timed: the record's `seen` is the point (affinity, counts, cgroup)
  sleep     sleep `params.seconds` (a trial that overruns its time limit)
  exit      exit with `params.code` without a result line (a crashing trial)
  allocate  touch `params.mib` MiB of memory (a trial killed past its memory limit)
"""

import os
import time

NAME = "probe"
VARIANTS = ("seen", "sleep", "exit", "allocate")


def run_trial(spec):
    variant, params = spec["variant"], spec.get("params", {})
    start = time.perf_counter()
    if variant == "sleep":
        time.sleep(float(params.get("seconds", 1.0)))
    elif variant == "exit":
        os._exit(int(params.get("code", 3)))  # no result line: the host must notice on its own
    elif variant == "allocate":
        mib = int(params.get("mib", 64))
        block = bytearray(mib * 1024 * 1024)
        for offset in range(0, len(block), 4096):  # touch every page so it is really resident
            block[offset] = 1
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time(),
            "metrics": {}, "check": {}}
