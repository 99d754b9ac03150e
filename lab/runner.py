"""Drives a plan through a backend: one trial at a time, each record appended as it ends.

Ctrl-C or SIGTERM stops the run's trial in flight, records it as failed ("interrupted"), marks
the run interrupted and says how to look at what was kept. A backend that goes away marks the
run failed. Finished records are never touched.
"""

import signal
import sys
import time

from lab import RECORD_SCHEMA, runfolder
from lab.backends import RUN_LABEL, TrialOutcome


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during the run."""


def _raise_interrupted(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def trial_spec(point):
    return {"experiment": point.experiment, "variant": point.variant,
            "params": point.params_dict, "workers": point.workers,
            "start_method": point.start_method, "expect_affinity": list(point.cpuset)}


def make_record(run_id, trial, outcome, backend, host):
    """The trial record of DESIGN.md: what the trial said plus what only the host knows."""
    point = trial.point
    result = outcome.result or {}
    image = backend.image_info(point.image or None)
    seconds = result.get("seconds") if outcome.error is None else None
    return {
        "schema": RECORD_SCHEMA, "run_id": run_id, "point_id": point.point_id,
        "experiment": point.experiment, "variant": point.variant, "backend": backend.name,
        "host": host, "image": image.get("id"), "image_tag": image.get("tag"),
        "python": result.get("python") or image.get("python"),
        "start_method": point.start_method, "limit": point.limit, "cpus": point.cpus,
        "cpuset": ",".join(str(c) for c in point.cpuset), "quota": point.quota,
        "placement": point.placement, "workers": point.workers, "params": point.params_dict,
        "round": trial.round, "repeat": trial.repeat, "warmup": trial.warmup,
        "ok": outcome.error is None, "error": outcome.error,
        "seconds": seconds, "cpu_seconds": result.get("cpu_seconds"),
        "metrics": result.get("metrics") or {}, "check": result.get("check") or {},
        "seen": result.get("seen"),
        "throttled_seconds": result.get("throttled_seconds"),
        "nr_throttled": result.get("nr_throttled"),
        "cgroup_cpu_seconds": result.get("cgroup_cpu_seconds"),
        "host_seconds": outcome.host_seconds,
        "overhead_seconds": (outcome.host_seconds - seconds) if seconds is not None else None,
        "exit_code": outcome.exit_code, "oom_killed": outcome.oom_killed,
        "timed_out": outcome.timed_out,
        "stderr_tail": outcome.stderr_tail if outcome.error else "",
        "started_at": result.get("started_at"),
    }


def _format_duration(seconds):
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """One line per trial: where the run is and an estimate of the time left."""

    def __init__(self, trials, estimate, say):
        self.total = len(trials)
        self.estimate = estimate
        self.say = say
        self.observed = {}  # point_id -> host seconds of its last trial

    def left_seconds(self, remaining):
        return sum(self.observed.get(t.point.point_id, self.estimate(t.point)) for t in remaining)

    def report(self, index, trial, record, remaining, rounds):
        self.observed[trial.point.point_id] = record["host_seconds"]
        status = f"{record['seconds']:.3f} s" if record["ok"] else f"FAILED: {record['error']}"
        self.say(f"[{index}/{self.total}] round {trial.round + 1}/{rounds}"
                 f"{' (warm-up)' if trial.warmup else ''} {trial.point.point_id} "
                 f"cpus={trial.point.cpus} workers={trial.point.workers}: {status}"
                 f" · ~{_format_duration(self.left_seconds(remaining))} left")


def execute(plan, backend, folder, host_name, time_limit_s, estimate, say=print, done=()):
    """Run every trial of `plan` not in `done` (keys of finished trials). Returns the run status."""
    pending = [t for t in plan.trials if t.key not in set(done)]
    progress = Progress(pending, estimate, say)
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    status, current = "complete", None
    try:
        for index, trial in enumerate(pending, start=1):
            current = trial
            labels = {RUN_LABEL: folder.run_id, "multicore-lab.point": trial.point.point_id}
            outcome = backend.run(trial_spec(trial.point), trial.point.cpuset, trial.point.quota,
                                  time_limit_s, labels, trial.point.image or None)
            record = make_record(folder.run_id, trial, outcome, backend, host_name)
            folder.append(record)
            current = None
            progress.report(index, trial, record, pending[index:], plan.rounds)
    except (Interrupted, KeyboardInterrupt) as why:
        status = "interrupted"
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
        stopped = backend.stop_all(folder.run_id)
        if current is not None:
            _record_cut_off(folder, current, backend, host_name, f"interrupted ({why})")
        say(f"\nInterrupted ({why}): stopped {stopped} container(s) of this run; every finished "
            f"trial is kept in {folder.raw_path}.")
    except Exception as error:  # the backend went away (engine stopped, disk full ...)
        status = "failed"
        say(f"\nRun failed: {type(error).__name__}: {str(error)[:300]}\n"
            f"Every finished trial is kept in {folder.raw_path}.")
        folder.update_meta(failure=f"{type(error).__name__}: {error}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _record_cut_off(folder, trial, backend, host_name, reason):
    outcome = TrialOutcome(None, reason, None, False, False, 0.0, "")
    folder.append(make_record(folder.run_id, trial, outcome, backend, host_name))


def exit_code(status):
    return {"complete": 0, "interrupted": 130}.get(status, 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `invoke scale` (or lab.scale.run from Python)")
