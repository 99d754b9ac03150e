"""Where a trial executes. Every backend has the same small interface:

    name                      "docker" | "local"
    describe() -> dict        what meta.json records (engine, version, image ...)
    image_info(name) -> dict  id, tag, base, python of the image a point names
    run(trial_spec, cpuset, quota, time_limit_s, labels, image) -> TrialOutcome
    stop_all(run_id)          stop whatever this run still has running (Ctrl-C)

`choose_backend` implements DESIGN.md's rule for --backend auto|docker|local.
"""

import json
import os
from dataclasses import dataclass

STDERR_TAIL_CHARS = 2000
RUN_LABEL = "multicore-lab.run"  # every trial container carries its run id under this label
PID_LABEL = "multicore-lab.pid"  # and the pid of the lab process that started it


class BackendUnavailable(RuntimeError):
    """The backend asked for cannot run trials here; the message says why and what to do."""


@dataclass
class TrialOutcome:
    result: dict | None      # the trial's JSON line, parsed
    error: str | None        # why the trial failed, or None
    exit_code: int | None
    oom_killed: bool
    timed_out: bool
    host_seconds: float      # start to exit as the host saw it (container or process start included)
    stderr_tail: str


def outcome_from(stdout, stderr, exit_code, timed_out, oom_killed, host_seconds, time_limit_s):
    """Turn what a finished trial left behind into an outcome with one clear reason on failure."""
    tail = stderr[-STDERR_TAIL_CHARS:]
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    result = None
    if lines:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = None
        if not isinstance(result, dict):
            result = None
    if timed_out:
        error = f"timeout: still running after the {time_limit_s:g} s trial limit"
    elif oom_killed:
        error = "out of memory: killed at the container's memory limit (OOMKilled)"
    elif result is not None and not result.get("ok"):
        error = result.get("error") or f"trial failed (exit {exit_code})"
    elif exit_code != 0:
        error = f"exited with status {exit_code}"
    elif result is None:
        error = "unparsable output: the last line of stdout is not a JSON object"
    else:
        error = None
    return TrialOutcome(result, error, exit_code, oom_killed, timed_out, host_seconds, tail)


def engine_requested_explicitly():
    return bool(os.environ.get("DOCKER_HOST"))


def choose_backend(name, config, say=print):
    """The backend for `--backend name`: auto falls back to local loudly; docker never does."""
    from lab.backends.local import LocalBackend
    if name == "local":
        return LocalBackend(config)
    from lab.backends.docker import DockerBackend, connect
    try:
        client = connect()
    except BackendUnavailable as why:
        if name == "docker" or engine_requested_explicitly():
            raise
        say(f"WARNING: no Docker engine answers ({why}); running trials on the local backend "
            f"(host processes pinned with sched_setaffinity). Start dockerd for containers.")
        return LocalBackend(config)
    return DockerBackend(client, config)
