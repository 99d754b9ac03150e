"""Talking to Slurm: its client commands run, their words read (scontrol's Key=Value records, srun
-v's lines, Slurm's verdicts and durations), time limits in Slurm's whole minutes, and the
environment a step gets (the user's, without this lab's venv or an enclosing allocation).
"""

import math
import os
import re
import subprocess
import sys

from lab.backends import BackendUnavailable

COMMANDS = ("sinfo", "srun", "scontrol", "squeue", "scancel")
JOB_PREFIX = "multicore-lab-"
# Slurm's final job states that are a verdict on the trial (others: the trial's own result)
VERDICTS = {
    "TIMEOUT": "TIMEOUT: Slurm ended the step at its time limit",
    "CANCELLED": "CANCELLED: the job was cancelled",
    "PREEMPTED": "PREEMPTED: the job was preempted by another",
    "NODE_FAIL": "NODE_FAIL: the node failed while the step ran",
    "OUT_OF_MEMORY": "OUT_OF_MEMORY: the step was killed at its memory limit",
    "DEADLINE": "DEADLINE: the job reached its deadline",
    "BOOT_FAIL": "BOOT_FAIL: the node failed to boot",
}
UNUSABLE_NODE = {"DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "FUTURE",
                 "NOT_RESPONDING", "INVAL", "POWERED_DOWN", "POWER_DOWN", "NO_RESPOND"}
# srun's input variables that say "inside an allocation": stripped, so that every trial is a
# job of its own even when the lab itself runs inside salloc or sbatch
ALLOCATION_VARIABLES = ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_STEP_ID", "SLURM_STEPID",
                        "SLURM_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NNODES",
                        "SLURM_JOB_NUM_NODES", "SLURM_NTASKS", "SLURM_NPROCS",
                        "SLURM_CPUS_PER_TASK", "SRUN_CPUS_PER_TASK", "SLURM_TASKS_PER_NODE",
                        "SLURM_JOB_CPUS_PER_NODE", "SLURM_CPU_BIND", "SLURM_DISTRIBUTION",
                        "SLURM_MEM_PER_CPU", "SLURM_MEM_PER_NODE", "SLURM_EXACT")
# srun -v: "srun: jobid 26: nodes(1):`vm', ..." / "srun: job 30 queued and waiting ..." /
# "srun: launching StepId=26.0 on host vm, 1 tasks: 0"
JOB_LINE = re.compile(r"^srun: job(?:id)? (\d+)[: ]")
LAUNCH_LINE = re.compile(r"^srun: launching StepId=(\d+)\.(\d+) on host (\S+?),")
CANCELLED_LINE = re.compile(r"\*\*\* (?:STEP|JOB) (\d+)(?:\.\d+)? ON (\S+) CANCELLED AT \S+"
                            r"(?: DUE TO ([A-Z ]+?))? \*\*\*")
DUE_TO = {"TIME LIMIT": "TIMEOUT", "PREEMPTION": "PREEMPTED", "NODE FAILURE": "NODE_FAIL"}
# srun's own summary of a failed task: true, but says less than the line before it
_TASK_EXIT = re.compile(r"^srun: error: \S+: tasks? [\d,-]+: (Exited with exit code|Terminated)")


def command(args, timeout=30, env=None, cwd=None):
    """A Slurm client command's CompletedProcess; BackendUnavailable when it cannot run."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=cwd)
    except FileNotFoundError:
        raise BackendUnavailable(f"no Slurm here: {args[0]} is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise BackendUnavailable(f"the Slurm controller does not answer: `{' '.join(args[:3])}` "
                                 f"took over {timeout} s") from None


def first_line(done):
    text = (done.stderr or done.stdout or "").strip()
    return text.splitlines()[0][:300] if text else f"exit status {done.returncode}"


def parse_fields(line):
    """`scontrol show ... -o` output (Key=Value ...) as a dict (values may hold spaces only in
    the last fields, which this backend does not read)."""
    fields = {}
    for word in line.split():
        key, sep, value = word.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def show(kind, name=None, timeout=30):
    """Records of `scontrol show KIND [NAME] -o`, each a dict; [] when there is none."""
    done = command(["scontrol", "show", kind, *([str(name)] if name else []), "-o"], timeout)
    if done.returncode != 0:
        return []
    return [parse_fields(line) for line in done.stdout.splitlines() if "=" in line]


def controller_answers(timeout=15):
    try:
        done = command(["scontrol", "ping"], timeout)
    except BackendUnavailable:
        return False
    return "is UP" in done.stdout


def node_usable(state):
    words = set(state.rstrip("*~#!%$@^-").replace("*", "").split("+"))
    return not (words & UNUSABLE_NODE) and not state.endswith("*")


def time_limit_minutes(time_limit_s):
    """Slurm counts time limits in whole minutes: the lab's trial limit, rounded up."""
    return max(1, math.ceil(float(time_limit_s) / 60))


def duration_minutes(text):
    """A Slurm duration (a partition's MaxTime: `UNLIMITED`, `MM`, `MM:SS`, `HH:MM:SS`,
    `D-HH`, `D-HH:MM`, `D-HH:MM:SS`) in minutes; None for no limit or words it cannot read
    (then Slurm itself has the last word)."""
    text = (text or "").strip()
    days, _, clock = text.rpartition("-") if "-" in text else ("0", "", text)
    try:
        parts = [int(p) for p in clock.split(":")]
        days = int(days)
    except ValueError:
        return None  # UNLIMITED, INFINITE, NONE ...
    if "-" in text:  # after a day count the fields are hours[:minutes[:seconds]]
        parts += [0] * (3 - len(parts))
        hours, minutes, seconds = parts[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    elif len(parts) == 2:
        hours, (minutes, seconds) = 0, parts
    else:
        hours, minutes, seconds = 0, parts[0], 0
    return days * 1440 + hours * 60 + minutes + seconds / 60


def minimal_env(environ=None):
    """The environment srun exports to the step: the user's (modules, accounts: SLURM_ACCOUNT
    and the like stay), without this lab's virtual environment and without an enclosing
    allocation's variables."""
    environ = dict(os.environ if environ is None else environ)
    venv = environ.pop("VIRTUAL_ENV", None)
    own_bin = {os.path.join(venv, "bin")} if venv else set()
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):  # the lab runs in a venv
        own_bin.add(os.path.join(sys.prefix, "bin"))
    environ["PATH"] = os.pathsep.join(p for p in environ.get("PATH", "/usr/bin:/bin").split(
        os.pathsep) if p and p not in own_bin) or "/usr/bin:/bin"
    for name in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", *ALLOCATION_VARIABLES):
        environ.pop(name, None)
    return environ


def trial_stderr(stderr):
    """The step's own stderr and srun's errors, without srun -v's chatter."""
    kept = [line for line in stderr.splitlines()
            if not line.startswith("srun: ") or re.search(r"error|abort|cancel|terminat|kill",
                                                          line, re.IGNORECASE)]
    return "\n".join(kept)


def why_failed(stderr, returncode):
    """The line of a failed step that says why (the node's or Python's words, not srun's
    closing `task 0: Exited with exit code 1`)."""
    lines = [line.strip() for line in trial_stderr(stderr).splitlines() if line.strip()]
    telling = [line for line in lines if not _TASK_EXIT.match(line)
               and "_step_signal" not in line] or lines
    return telling[-1][:300] if telling else f"srun exit status {returncode}"


def to_int(value, default=0):
    try:
        return int(str(value).split("(")[0])
    except (TypeError, ValueError):
        return default
