"""Experiments: the code that runs inside a trial (a container or a pinned local process).

Standard library only. Each experiment family is one module with the same small shape:

    NAME: str                      the experiment's name in a trial spec and in records
    VARIANTS: tuple[str, ...]      the variants it offers
    def run_trial(spec: dict) -> dict

`run_trial` gets the trial spec (see `lab.experiments.__main__`) and returns a result dict:

    {"seconds": float,              the timed section only (time.perf_counter)
     "cpu_seconds": float | None,   CPU time of all the trial's processes during the timed section
     "metrics": {name: {"value": float, "unit": str}},
     "check": {...}}                what it verified (counts, sums); informational

It checks its own answer: a wrong answer raises `TrialCheckFailed` (a failed trial, never a
number). Adding an experiment = adding a module here and naming it in `EXPERIMENTS`.
"""

import importlib
import os
import time


class TrialCheckFailed(Exception):
    """The trial computed or received something other than what it must have: no number."""


class SpecError(ValueError):
    """The trial spec asks for something the experiment does not offer."""


# name -> module path; imported lazily so a trial loads only its own experiment.
EXPERIMENTS = {
    "scaling": "lab.experiments.scaling",
    "ipc": "lab.experiments.ipc",
    "probe": "lab.experiments.probe",
    "lessons": "lab.experiments.lessons",
    "command": "lab.experiments.command",  # the user's own program (invoke scale --command)
    "target": "lab.experiments.target",    # the user's own function (invoke scale --target)
}


def whole_param(experiment, key, value, low, high):
    """A whole-number param (a float like 3.0 counts) in low .. high, or SpecError in one line;
    the one check every experiment's params share."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{experiment} param {key} must be a whole number in {low} .. {high}, "
                        f"got {value!r}")
    if not low <= value <= high:
        raise SpecError(f"{experiment} param {key}={value} is outside {low} .. {high}: {key} "
                        f"must be a whole number in that range")
    return value


def number_param(experiment, key, value, low=0.0, high=float("inf"), above_low=False):
    """A finite number in low .. high (above `low` itself where `above_low`), or SpecError."""
    inside = (not isinstance(value, bool) and isinstance(value, (int, float)) and value == value
              and value != float("inf") and (value > low if above_low else value >= low)
              and value <= high)
    if not inside:
        allowed = ("a positive number" if above_low and low == 0 and high == float("inf")
                   else f"a number in {low:g} .. {high:g}")
        raise SpecError(f"{experiment} param {key} must be {allowed}, got {value!r}")
    return value


def choice_param(experiment, key, value, choices):
    if value not in choices:
        raise SpecError(f"{experiment} param {key}={value!r} is not one of {', '.join(choices)}")
    return value


def offered(names, doubles):
    """The variants a user may name: `names`, plus the test doubles (broken on purpose, for
    the tests alone) under LAB_TEST_DOUBLES=1; never listed in help."""
    return tuple(names) + (tuple(doubles) if os.environ.get("LAB_TEST_DOUBLES") == "1" else ())


def split_evenly(total, parts):
    """`total` in `parts` shares as equal as integers allow (they sum to `total`): work per
    worker, messages per producer."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def stop_processes(processes, graceful, grace_s=2.0):
    """No orphans: let finished processes exit (up to 10 s when `graceful`), then terminate
    what still runs, and kill what outlives `grace_s`."""
    processes = list(processes)
    if graceful:
        stop = time.monotonic() + 10.0
        for process in processes:
            process.join(max(0.0, stop - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(grace_s)
        if process.is_alive():
            process.kill()
            process.join(grace_s)


def load(name):
    """Return the experiment module called `name`, or raise SpecError naming the known ones."""
    if name not in EXPERIMENTS:
        raise SpecError(f"unknown experiment {name!r}; known: {', '.join(sorted(EXPERIMENTS))}")
    return importlib.import_module(EXPERIMENTS[name])
