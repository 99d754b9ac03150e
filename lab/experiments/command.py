"""The user's own program as a trial (`invoke scale --command "python3 prog.py --workers {workers}"`).

Like hyperfine's parameter scans: the command template's placeholders {cpus}, {workers} and
{work} are filled in per point (cpus: the trial's pinned CPUs; workers: the point's worker count,
the CPUs where the point leaves it to the Python; work: the run's --work), the template is split
with shlex and exec'd with no shell, in the user's project folder (lab.experiments.project), with
stdin closed. The trial's affinity is inherited by the program and all its children.

Clock: the whole process, from just before the exec to its exit (perf_counter), unless the last
line of the program's stdout is a JSON object with a "seconds" key: then that is the timed
section (the program's own clock), and it must be a positive number no longer than the whole
process, or the trial fails (a clock the lab cannot believe is no figure). The record's
check["section_clock"] says which clock it took.
Its other numeric keys become metrics. CPU seconds: the program's and its waited-for
children's (getrusage RUSAGE_CHILDREN around it).

A non-zero exit (or a killed program) is a failed trial; its stderr tail goes to the trial's
stderr, so the record's stderr_tail holds it.

Variants: strong and weak run the same command; they say how to read it (strong: the program
splits a fixed {work} over {workers}, speedup T(1)/T(c); weak: {work} per worker) and put it on
the matching curve. `check` is the pre-run check: the program is found in the trial (its
executable on PATH, or a path in the project folder; for `python3 FILE.py` the file too).
Standard library only.
"""

import json
import math
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time

from lab.experiments import SpecError, TrialCheckFailed
from lab.experiments.project import project_dir

NAME = "command"
VARIANTS = ("strong", "weak", "check")
PLACEHOLDERS = ("cpus", "workers", "work")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
STDERR_TAIL_CHARS = 1500
KILL_MARGIN_S = 5.0  # the program is killed this long before the host's time limit


def placeholders(template):
    """The placeholder names a command template uses, in order (unknown ones included)."""
    return [match.group(1) for match in _PLACEHOLDER.finditer(template)]


def unknown_placeholders(template):
    return [name for name in placeholders(template) if name not in PLACEHOLDERS]


def split(template):
    """The template's words (shlex, as a POSIX shell splits them); ValueError when unbalanced."""
    words = shlex.split(template)
    if not words:
        raise ValueError("an empty command")
    return words


def argv_for(template, cpus, workers, work):
    """The argv of one trial: the template split, then each placeholder filled in."""
    values = {"cpus": cpus, "workers": workers, "work": work}

    def fill(match):
        if match.group(1) not in values:
            raise SpecError(f"unknown placeholder {{{match.group(1)}}}; allowed: "
                            + ", ".join("{%s}" % name for name in PLACEHOLDERS))
        return str(values[match.group(1)])
    return [_PLACEHOLDER.sub(fill, word) for word in split(template)]


def _resolve(argv, cwd):
    """(the program's path, a problem in words or None): argv[0] found as exec would find it."""
    program = argv[0]
    if "/" in program:
        path = os.path.join(cwd, program)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return None, f"{program}: no executable file of that name in the project folder"
    else:
        path = shutil.which(program)
        if path is None:
            return None, (f"{program}: command not found in the trial (PATH "
                          f"{os.environ.get('PATH', '')})")
    script = argv[1] if len(argv) > 1 else ""
    if os.path.basename(program).startswith("python") and script.endswith(".py"):
        if not os.path.isfile(os.path.join(cwd, script)):
            return path, f"{script}: no such file in the project folder"
    return path, None


def run_trial(spec):
    params = spec.get("params") or {}
    template = params.get("command")
    if not template:
        raise SpecError("a command trial needs params.command")
    cwd = project_dir()
    cpus = len(os.sched_getaffinity(0))
    workers = spec.get("workers") or cpus
    argv = argv_for(template, cpus, workers, params.get("work"))
    if spec["variant"] == "check":
        path, problem = _resolve(argv, cwd)
        if problem:
            raise TrialCheckFailed(problem)
        return {"seconds": 0.0, "cpu_seconds": None, "metrics": {},
                "check": {"argv": argv, "program": path}}
    return _measured(argv, cwd, spec.get("time_limit_s"))


def _measured(argv, cwd, time_limit_s):
    limit = None if not time_limit_s else max(1.0, float(time_limit_s) - KILL_MARGIN_S)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        process = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)  # its whole group is stopped below
    except OSError as error:
        raise TrialCheckFailed(f"the command could not start: {argv[0]}: "
                               f"{error.strerror or error}") from None
    try:
        stdout, stderr = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise TrialCheckFailed(f"the command ran longer than {limit:g} s and was killed") from None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    process_seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _stop_group(process.pid)  # daemon children the program left behind
    stderr_text = stderr.decode(errors="replace")
    if process.returncode != 0:
        tail = stderr_text[-STDERR_TAIL_CHARS:]
        sys.stderr.write(tail)
        last = (tail.strip().splitlines() or [""])[-1][:200]
        status = (f"was killed by signal {-process.returncode}" if process.returncode < 0
                  else f"exited with status {process.returncode}")
        raise TrialCheckFailed(f"the command {status}" + (f": {last}" if last else ""))
    reported = _reported(stdout.decode(errors="replace"))
    cpu_seconds = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    metrics = {"process_seconds": {"value": process_seconds, "unit": "s"}}
    if reported is not None:
        seconds = _section_seconds(reported["seconds"], process_seconds)
        clock = "the program's own: \"seconds\" of the JSON object on its last output line"
        metrics.update({key: {"value": float(value), "unit": ""}
                        for key, value in reported.items()
                        if key != "seconds" and _number(value)})
    else:
        seconds = process_seconds
        clock = "the whole process: from just before its exec to its exit"
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "metrics": metrics,
            "check": {"argv": argv, "exit_status": 0, "section_clock": clock}}


def _number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _reported(stdout):
    """The JSON object on the program's last output line when it has a "seconds" key."""
    lines = stdout.strip().splitlines()
    if not lines:
        return None
    try:
        found = json.loads(lines[-1])
    except ValueError:
        return None
    return found if isinstance(found, dict) and "seconds" in found else None


def _section_seconds(value, process_seconds):
    """The program's own section, checked: a positive number, inside the process that timed it
    (1 ms of slack for the two clocks' reads)."""
    if not _number(value) or value <= 0:
        raise TrialCheckFailed(f"the program's last line says \"seconds\": {value!r}; allowed: "
                               f"a positive number of seconds (or no \"seconds\" key: the "
                               f"process is timed whole)")
    if value > process_seconds + 0.001:
        raise TrialCheckFailed(f"the program says its section took {value:.6g} s, longer than "
                               f"the whole process ({process_seconds:.6g} s)")
    return value


def _stop_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass  # nothing of it is left
