"""The one path every run ends in, whichever way it came in (lab.run.task: a new run and --plan
FILE from lab.run.session, --resume RUN from lab.run.resume): the backend connected, the points
made on each host's CPUs, the plan's trials run into a run folder (a new one, or the run's own on
--resume), the report drawn, and the exit status.

From the moment the run folder is made until its status is recorded, SIGINT and SIGTERM end the
run cleanly (lab.run.runner): the run's trials are stopped, the trial cut off is recorded as
failed ("interrupted ..."), meta.json says `interrupted`, and the exact
`invoke TASK --resume RUN-ID` command is printed.
"""

import dataclasses
import shlex
import signal
import time
from contextlib import contextmanager
from pathlib import Path

from lab import records
from lab.backends import DEFAULT_HOST, BackendUnavailable, choose_backend, on_default_host
from lab.hosts import facts
from lab.run import folder as runfolder
from lab.run import runner, system_checks
from lab.run.options import BadInput
from lab.run.sizing import Sizing


# --- the backend and each host's points ------------------------------------------------------

def connect_backend(name, config, say=print, hosts=(DEFAULT_HOST,), several=False):
    """The backend for `--backend name` on `hosts` (--hosts; `several`: a --hosts run even
    with the default host alone, its records labelled with it), or BadInput saying what to
    do."""
    try:
        return choose_backend(name, config, say=say, hosts=hosts, several=several)
    except BackendUnavailable as why:
        if not on_default_host(hosts):
            raise BadInput(f"--hosts: {why}") from None
        hint = why.advice()
        raise BadInput(f"--backend {name}: {why}{'; ' + hint if hint else ''}") from None


def host_points(family, options, backend, images, prepared, host_cpus=None):
    """(points, notes): the family's points on each host's own CPUs, each point carrying its
    host (none for a run on the default host alone). A host that lacks what the flags ask
    (e.g. --cpus 8 on a 4-CPU host) is refused naming that host, before anything runs."""
    points, notes = [], {}
    for host, cpus in (host_cpus if host_cpus is not None else backend.host_cpus()).items():
        try:
            found, left_out = family.points(options, cpus, images, prepared)
        except BadInput as why:
            if not host:
                raise
            raise BadInput(f"host {host}: {why}") from None
        points += [dataclasses.replace(p, host=host) for p in found] if host else found
        for reason, count in left_out.items():
            notes[reason] = notes.get(reason, 0) + count
    return points, notes


def estimator(family, backend, prepared):
    """Seconds of one trial of a point: the family's guess of its work plus the backend's cost."""
    return lambda point: family.estimate(point, prepared) + backend.trial_overhead_s


# --- the trials into the run folder -------------------------------------------------------------

def quiet_failures(say):
    """`say` that never raises: a closed stdout (`| head`) must not end a run."""
    def safe(*args, **kwargs):
        try:
            say(*args, **kwargs)
        except (OSError, ValueError):
            pass
    return safe


@contextmanager
def signals_caught():
    """SIGINT/SIGTERM become runner.Interrupted inside the block. The handlers are restored when
    it ends, except after an interruption: the process is then on its way out with everything
    recorded, and a second Ctrl-C must not turn exit status 130 into a traceback."""
    guard = runner.SignalGuard()
    guard.install()
    try:
        yield guard
    finally:
        if guard.fired not in runner.SignalGuard.NAMES:
            guard.restore()
        else:  # on the way out: a late second signal must not kill the exiting interpreter
            for sig in runner.SignalGuard.SIGNALS:
                signal.signal(sig, signal.SIG_IGN)


def _create_folder(results_dir, task):
    try:
        return runfolder.RunFolder.create(results_dir, task)
    except OSError as error:
        raise runfolder.RunFolderError(
            f"cannot create a run folder in {results_dir}: {error.strerror or error}; "
            f"pass --results-dir a folder you can write") from None


def perform(family, plan, backend, config, prepared, extra_meta=None, say=print, sizing=None):
    """Run `plan` into a new run folder; returns (folder, status). Trials are never lost.
    `sizing`: point_id -> params already chosen (a --plan rerun runs its source's counts)."""
    images = {name: backend.image_info(name) for name in dict.fromkeys(p.image for p in plan.points)}
    meta = {
        "schema": records.RECORD_SCHEMA, "run_id": None, "task": family.name,
        "status": "running", "started_at": time.time(), "host": backend.host_facts(),
        "backend": backend.describe(), "image": backend.image_info(), "images": images,
        "lab": facts.lab(), "config": config, "seed": plan.seed,
        "trials_planned": len(plan.trials), "points_planned": len(plan.points), "warnings": [],
    }
    meta.update(backend.run_meta())
    meta.update(extra_meta or {})

    def open_folder():  # meta.json and plan.json whole before anything else
        folder = _create_folder(config["results_dir"], family.name)
        meta["run_id"] = folder.run_id
        _write_new_run(folder, meta, family.name, plan, sizing)
        return folder

    def run(folder, guard):
        pythons = ", ".join(f"{i.get('tag') or i.get('id')} (Python {i.get('python')})"
                            for i in images.values())
        hosts = meta.get("hosts") or {}
        on = f" on {len(hosts)} host(s) side by side ({', '.join(hosts)})" if hosts else ""
        say(f"run {folder.run_id}: {len(plan.trials)} trials on the {backend.name} backend"
            f"{on}, image {pythons}; results in {folder.path}")
        return run_trials(family, plan, backend, folder, meta["host"]["hostname"], config,
                          estimator(family, backend, prepared), say, guard=guard,
                          sizing=Sizing(family, folder, sizing))

    return into_folder(family, open_folder, run, say)


def into_folder(family, open_folder, run, say, folder=None):
    """The trials into a run folder, the same for every way in: `open_folder()` makes it (a new
    run) or marks `folder` running again (--resume) while a signal waits, so its files are
    whole; `run(folder, guard)` runs the trials (run_trials). A signal before the first trial
    leaves the folder resumable. Returns (folder, status)."""
    with signals_caught() as guard:
        try:
            with guard.shielded():
                folder = open_folder()
            status = run(folder, guard)
        except runner.Interrupted as why:
            guard.closing()
            status = interrupted_before_trials(family.name, folder, why, say)
    return folder, status


def _write_new_run(folder, meta, task, plan, sizing=None):
    try:
        folder.write_meta(meta)
        runfolder.write_json_atomic(folder.plan_path, {"schema": records.RECORD_SCHEMA,
                                                       "task": task, **plan.as_dict(),
                                                       "sizing": sizing or {}})
    except OSError as error:
        folder.unlock()
        raise runfolder.RunFolderError(
            f"cannot write the run folder {folder.path}: {error.strerror or error}; "
            f"pass --results-dir a folder with room") from None


def run_trials(family, plan, backend, folder, host_name, config, estimate, say, done=(),
               guard=None, sizing=None):
    """runner.execute with the folder held, the disk reserve set, the system checked right
    before the first trial and after the last (load, swap, governor: warnings kept in
    meta.json), and the next step said."""
    say = quiet_failures(say)
    snapshot = system_checks.before()
    try:
        folder.reserve_space()
        status = runner.execute(plan, backend, folder, host_name,
                                float(config.get("trial_time_limit_s", 600)), estimate, say=say,
                                done=done, guard=guard, label=family.point_label,
                                sizing=sizing or Sizing(family, folder))
        _record_system_warnings(folder, system_checks.after(snapshot), say)
    finally:
        folder.release_reserve()
        folder.unlock()
    next_step(family.name, folder, status, say)
    return status


def _record_system_warnings(folder, warnings, say):
    """Add the run-level warnings to meta.json (a resumed run keeps those of its first part)."""
    if not warnings:
        return
    try:
        known = folder.read_meta().get("warnings") or []
        folder.update_meta(warnings=known + [w for w in warnings if w not in known])
    except (OSError, ValueError, records.RecordsError) as error:
        say(f"WARNING: could not record the system checks in {folder.meta_path}: {error}")


def interrupted_before_trials(task, folder, why, say):
    """A signal after the run folder was set up but before the first trial: say so, resumably."""
    say = quiet_failures(say)
    try:
        folder.update_meta(status="interrupted", finished_at=time.time())
    except Exception as error:  # noqa: BLE001
        say(f"WARNING: could not record status 'interrupted' in {folder.meta_path}: {error}")
    folder.release_reserve()
    folder.unlock()
    say(f"\nInterrupted ({why or 'SIGINT'}) before any trial of this call ran; nothing was lost.")
    next_step(task, folder, "interrupted", say)
    return "interrupted"


# --- the end: the report, the exit status, the next step ----------------------------------------

def finish(family, folder, status, say):
    failed = build_report(family, folder, say)
    return runner.exit_code(status, failed or 0)


def build_report(family, folder, say=print):
    """Draw the run's report; a full disk or other trouble writing it is said in one line (the
    trials are safe in raw.jsonl), never a traceback. An interrupted run gets none: its user
    wants out (`invoke report RUN` draws it later)."""
    try:
        if folder.read_meta().get("status") == "interrupted":
            return None
    except (OSError, ValueError, records.RecordsError):
        pass
    from lab.present import report  # pandas and matplotlib load only once there is a report
    try:
        return report.build(folder, family, say=say)
    except OSError as error:
        say = quiet_failures(say)
        say(f"could not write the report of {folder.run_id}: {runner._reason(error, None)}; "
            f"redraw it later with `invoke report {folder.run_id}`")
        return None


def _results_dir_flag(folder):
    results_dir = folder.path.parent
    if results_dir.resolve() == Path("results").resolve():
        return ""
    return f" --results-dir {shlex.quote(str(results_dir))}"


def resume_command(task, folder):
    """The exact command that resumes `folder` (with --results-dir unless it is ./results)."""
    return f"invoke {task} --resume {folder.run_id}{_results_dir_flag(folder)}"


def next_step(task, folder, status, say):
    if status == "interrupted":
        say(f"Run {folder.run_id} interrupted. Resume it (only the missing and cut-off trials "
            f"run) with:\n  {resume_command(task, folder)}\n"
            f"or see what was kept with `invoke report {folder.run_id}"
            f"{_results_dir_flag(folder)}`.")
    elif status == "failed":
        say(f"Run {folder.run_id} failed. Once the cause is fixed, resume it with:\n"
            f"  {resume_command(task, folder)}")
