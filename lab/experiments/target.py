"""The user's own function as a trial (`invoke scale --target my_work.py:crunch`).

`crunch(n)` does n units of work and returns a result. The target is `FILE.py:NAME` (a file in
the project folder, imported under its stem with its folder on sys.path) or `package.module:NAME`
(importable from the project folder, lab.experiments.project). The function is handed to the
tutorial task's executors as their `Task` (lab.experiments.scaling_task): the same variants
(serial, strong, weak, process, threads, interpreters), warm-up, clocks and records as the
tutorial's loop. Results travel back by pickle (a result that does not pickle fails the trial).

Checks, each saying "can't tell" where the function does not let it decide:
  chunks      every chunk returned a result (count and order)
  equal       where the function is deterministic (two calls on the same n agreed in the
              `check` trial), chunks of equal n gave equal results
  total       where results are numbers that add (crunch(k) == k x crunch(1) on small k in the
              `check` trial: exact for integers, to 1e-9 relative for floats), the chunks' total
              equals what crunch(total work) gives serially: total work x crunch(1)
`check` (before the run): the target imports, crunch(1) does not raise, and whether it is
deterministic and additive and its result pickles (what the process and interpreter pools send
back); with params.calibrate_seconds > 0 it also measures units per second.
Test doubles (trials that must fail): test_drop_chunk (one chunk's result lost), test_off_chunk
(one chunk's result changed). Standard library only.
"""

import importlib
import math
import os
import pickle
import sys
import time
from numbers import Number

from lab.experiments import SpecError, TrialCheckFailed, scaling
from lab.experiments.project import project_dir
from lab.experiments.scaling_task import MOST_WORK, Task

NAME = "target"
TEST_DOUBLES = ("test_drop_chunk", "test_off_chunk")
USER_VARIANTS = ("serial", "strong", "weak", "process", "threads", "interpreters")
VARIANTS = USER_VARIANTS + ("check",) + TEST_DOUBLES
ADDITIVE_SIZES = (2, 3, 7)  # crunch(k) == k x crunch(1) on these: results that add
FLOAT_TOLERANCE = 1e-9
CANT_TELL = "can't tell"


def load(target, folder):
    """The function `target` names, imported from `folder`; SpecError in one line when not."""
    module_name, _, function_name = target.rpartition(":")
    if not module_name or not function_name.isidentifier():
        raise SpecError(f"target {target!r}: allowed FILE.py:FUNCTION or package.module:FUNCTION")
    if module_name.endswith(".py"):
        path = os.path.join(folder, module_name)
        if not os.path.isfile(path):
            raise TrialCheckFailed(f"no file {module_name} in the project folder")
        search, module_name = os.path.dirname(path), os.path.basename(path)[:-3]
    else:
        search = folder
    if search not in sys.path:
        sys.path.insert(0, search)
    try:
        module = importlib.import_module(module_name)
    except BaseException as error:  # noqa: BLE001 (whatever the user's import raises)
        raise TrialCheckFailed(f"it does not import: {type(error).__name__}: {error}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise TrialCheckFailed(f"{module_name} has no function {function_name}")
    return function


# ---------------------------------------------------------------------------------------------
# What the function lets the lab check


def _same(a, b):
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 (a result whose == raises or is ambiguous, e.g. arrays)
        return False


def _number(value):
    return isinstance(value, Number) and not isinstance(value, bool)


def _close(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    try:
        return math.isclose(a, b, rel_tol=FLOAT_TOLERANCE, abs_tol=0.0) or a == b
    except TypeError:
        return False


def probe(function, name="crunch"):
    """What the function lets the lab check, from small calls: name(1) must not raise."""
    try:
        one, again = function(1), function(1)
        deterministic = _same(one, again) and _same(function(3), function(3))
        additive = deterministic and _number(one) and all(
            _close(function(k), k * one) for k in ADDITIVE_SIZES)
    except (Exception, SystemExit) as error:  # noqa: BLE001 (the user's function on a small n)
        raise TrialCheckFailed(f"{name} raised on a small n: {type(error).__name__}: "
                               f"{error}") from None
    try:  # a pool's worker sends each chunk's result back by pickle, as does an interpreter's
        pickle.dumps(one)
        pickle_error = None
    except Exception as error:  # noqa: BLE001 (whatever the result's own __reduce__ raises)
        pickle_error = f"{type(error).__name__}: {error}"
    return {"deterministic": deterministic, "additive": additive,
            "unit_result": one if additive else None, "result_pickles": pickle_error is None,
            "pickle_error": pickle_error}


def check_results(chunks, asked, properties, name="crunch"):
    """The checks of the module docstring, `name` the function's own; TrialCheckFailed when one
    fails."""
    if len(chunks) != len(asked) or any(c is None for c in chunks):
        returned = sum(c is not None for c in chunks)
        raise TrialCheckFailed(f"{returned} of {len(asked)} chunks returned a result")
    check = {"chunks": f"all {len(asked)} returned"}
    if properties.get("deterministic"):
        first = {}
        for index, (chunk, n) in enumerate(zip(chunks, asked)):
            if n in first and not _same(chunk["result"], chunks[first[n]]["result"]):
                raise TrialCheckFailed(f"chunk {index} and chunk {first[n]} both ran {name}({n}) "
                                       f"but gave different results, though {name} is "
                                       f"deterministic")
            first.setdefault(n, index)
        check["equal"] = "chunks of equal n gave equal results"
    else:
        check["equal"] = f"{CANT_TELL}: {name} gave different results on the same n"
    if properties.get("additive"):
        total = sum(c["result"] for c in chunks)
        expected = sum(asked) * properties["unit_result"]
        if not _close(total, expected):
            raise TrialCheckFailed(f"the chunks' results add up to {total!r}, but {name}("
                                   f"{sum(asked)}) serially gives {expected!r}")
        check["total"] = "the chunks' total equals the serial result"
    else:
        check["total"] = f"{CANT_TELL}: {name}'s results are not numbers that add"
    return check


# ---------------------------------------------------------------------------------------------
# The trial: the tutorial's executors, given the user's function as their task


def _calibrate(function, seconds_wanted, name="crunch"):
    """Units per second of one call, over about `seconds_wanted` (n doubled from 1)."""
    n = 1
    while True:
        start = time.perf_counter()
        function(n)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds_wanted:
            return n / elapsed
        if n >= MOST_WORK:  # n ignored, or work that hardly grows: no rate to size a trial by
            raise TrialCheckFailed(f"{name}'s time does not grow with n: {name}({n:,}) took "
                                   f"{elapsed * 1e3:.3g} ms; allowed: a function whose work "
                                   f"grows with n, or --work N")
        n *= 2 if elapsed < seconds_wanted / 4 else math.ceil(seconds_wanted / max(elapsed, 1e-9))


def run_trial(spec):
    variant, params = spec["variant"], spec.get("params") or {}
    target, folder = params.get("target"), project_dir()
    if not target:
        raise SpecError("a target trial needs params.target")
    function, name = load(target, folder), target.rpartition(":")[2]
    properties = probe(function, name)  # untimed, small calls: what the checks can decide
    if variant == "check":
        metrics = {}
        if float(params.get("calibrate_seconds") or 0) > 0:
            rate = _calibrate(function, float(params["calibrate_seconds"]), name)
            metrics["units_per_second"] = {"value": rate, "unit": "1/s"}
        found = dict(properties, unit_result=repr(properties["unit_result"]))
        return {"seconds": 0.0, "cpu_seconds": None, "metrics": metrics, "check": found}

    def check(chunks, asked):
        if variant == "test_drop_chunk":
            chunks = chunks[:-1]
        elif variant == "test_off_chunk":
            chunks = [dict(chunks[0], result=_off(chunks[0]["result"]))] + chunks[1:]
        return check_results(chunks, asked, properties, name)

    task = Task(f"your {target}", function, check)
    executor = "strong" if variant in TEST_DOUBLES else variant
    return scaling.run_trial(dict(spec, variant=executor), task)


def _off(result):
    """A result moved just enough to differ (the test_off_chunk double)."""
    if _number(result):
        return result + 1
    return (result, "off")
