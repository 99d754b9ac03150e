"""`invoke TASK --resume RUN`: finish an interrupted or failed run from its own files; the way into
the one path (lab.run.carry) whose plan is the run's own and whose folder is the run's.

Reads meta.json, plan.json and raw.jsonl (every line validated), refuses in one line a run of
another task, another backend, a trial image whose id differs from the run's (or is gone), or a
plan the given flags describe differently; then runs only the trials missing from raw.jsonl or
cut off by an interruption (records whose error starts with "interrupted"; other failed trials
are measurements and stay), after removing what a killed process left behind for the run (by
its label), appending to the same raw.jsonl, so the run ends with the same (point_id, round)
keys as an uninterrupted run. The run's own preparation (e.g. its calibrated work) is kept:
nothing is measured again.
"""

import sys
import time
from dataclasses import dataclass, field

from lab import records
from lab.backends import DEFAULT_HOST, ImageMismatch, backend_class
from lab.hosts import topology
from lab.run import folder as runfolder
from lab.run.options import BACKEND_FLAGS, SHARED_FLAGS, BadInput, parse_shared
from lab.run.plan import Plan, plan_of
from lab.run.progress import format_duration
from lab.run.sizing import Sizing
from lab.run.carry import (connect_backend, estimator, finish, host_points, into_folder,
                           run_trials)


@dataclass
class Previous:
    """A run to resume: its folder, meta.json, the plan of its plan.json and its records."""
    folder: runfolder.RunFolder
    meta: dict
    plan: Plan
    records: list = field(default_factory=list)
    sizing: dict = field(default_factory=dict)  # the params its warm-ups chose (run.sizing)

    @property
    def run_id(self):
        return self.folder.run_id

    @property
    def backend_name(self):
        return (self.meta.get("backend") or {}).get("backend")

    @property
    def kept(self):
        """Keys of the plan's trials that were measured (ok, or a genuine failure): they stay."""
        planned = {t.key for t in self.plan.trials}
        return {records.trial_key(r) for r in self.records
                if not records.is_cut_off(r) and records.trial_key(r) in planned}

    @property
    def pending(self):
        """Trials missing from raw.jsonl or cut off by an interruption, in the plan's order."""
        kept = self.kept
        return [t for t in self.plan.trials if t.key not in kept]


def open_run(results_dir, run, task, say=print):
    """The run `run` (an id, 'latest' or a path) of `task`, ready to resume; RunFolderError
    (one line) when it is not a run of this task or its plan.json is missing or damaged."""
    if not str(run).strip():
        raise BadInput("--resume '': empty; allowed: a run id under "
                       f"{results_dir}, 'latest', or a run folder's path")
    try:
        folder = runfolder.resolve(results_dir, run)
    except runfolder.RunFolderError:
        raise runfolder.RunFolderError(
            f"--resume {run!r}: no such run; allowed: a run id under {results_dir}, 'latest', "
            f"or a run folder's path") from None
    try:
        meta = folder.read_meta()
    except (OSError, ValueError, records.RecordsError) as error:
        raise runfolder.RunFolderError(f"--resume {run}: {folder.meta_path} is not readable "
                                       f"({error}); the run cannot be resumed") from None
    if meta.get("task") != task:
        raise runfolder.RunFolderError(
            f"--resume {run}: run {folder.run_id} is a {meta.get('task')!r} run, not {task!r}; "
            f"resume it with `invoke {meta.get('task')} --resume {folder.run_id}`")
    try:
        stored = records.read_plan(folder.plan_path)
        plan = plan_of(stored)
    except records.RecordsError as why:
        raise runfolder.RunFolderError(f"--resume {run}: {why}; the run cannot be resumed"
                                       ) from None
    found = records.read_records(folder.raw_path, warn=say)
    return Previous(folder, meta, plan, found, stored.sizing)


def plan_difference(stored, wanted):
    """How `wanted` differs from the run's plan `stored` (one phrase), or None."""
    if wanted.repeat != stored.repeat:
        return f"--repeat {wanted.repeat}, the run has {stored.repeat}"
    if wanted.seed != stored.seed:
        return f"--seed {wanted.seed}, the run has {stored.seed}"
    if wanted.discard_first_round != stored.discard_first_round:
        return "the warm-up round differs"
    have = {p.point_id: p for p in stored.points}
    want = {p.point_id: p for p in wanted.points}
    if have != want:
        extra, missing = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        parts = []
        if extra:
            parts.append(f"{len(extra)} point(s) the run does not have (e.g. {extra[0]})")
        if missing:
            parts.append(f"{len(missing)} of its {len(have)} points left out (e.g. {missing[0]})")
        return "the flags give " + " and ".join(parts)
    return None


def plan_of_flags(family, previous, flags, names):
    """The plan the given flags (`names`) describe, the run's recorded flag values filling in
    the rest, on the CPUs the run's host had."""
    recorded = previous.meta.get("flags")
    if not recorded:
        raise BadInput(f"--resume {previous.run_id}: the run records no flags to compare "
                       f"--{names[0].replace('_', '-')} with; leave the flags out")
    merged = {**recorded, **{name: flags[name] for name in names}}
    shared = parse_shared({k: merged.get(k) for k in SHARED_FLAGS}, {})
    # what is not a flag (e.g. scale's target_seconds) comes from the run's recorded options
    options = family.parse({k: merged.get(k) for k in family.flags},
                           previous.meta.get("options") or {}, shared)
    hosts = previous.meta.get("hosts") or {}
    if any(p.host for p in previous.plan.points):  # --hosts: each host's own CPUs
        host_cpus = {name: topology.cpus_of(facts.get("topology") or {})
                     for name, facts in hosts.items()}
    else:
        host_cpus = {"": topology.cpus_of(previous.meta.get("host", {}).get("topology") or {})}
    try:
        images = backend_class(previous.backend_name).plan_images(shared.base_images,
                                                                  shared.image)
    except KeyError:
        raise BadInput(f"--resume {previous.run_id}: the run's backend "
                       f"{previous.backend_name!r} is unknown here") from None
    try:
        points, _ = host_points(family, options, None, images, previous.meta, host_cpus)
    except BadInput as why:
        text = str(why)
        if text.startswith("the plan differs"):
            raise BadInput(f"--resume {previous.run_id}: {text}") from None
        raise
    return Plan(points, shared.repeat, shared.seed)


def resume_run(family, shared, given_own, flags, config, say=print):
    """`invoke TASK --resume RUN` end to end; returns the exit code."""
    previous = open_run(config["results_dir"], shared.resume, family.name, say)
    run = previous.run_id
    plan_flags = sorted((set(shared.given) | set(given_own)) - {"backend", *BACKEND_FLAGS})
    backend = shared.backend if "backend" in shared.given else None
    wanted = previous.backend_name
    if backend not in (None, "", "auto") and backend != wanted:
        raise BadInput(f"--resume {run}: the backend differs from the run's: --backend "
                       f"{backend}, the run ran on {wanted}; leave --backend out")
    if plan_flags:
        plan = plan_of_flags(family, previous, flags, plan_flags)
        difference = plan_difference(previous.plan, plan)
        if difference:
            raise BadInput(f"--resume {run}: the plan differs from the run's: {difference}; "
                           f"leave those flags out to finish the run as planned, or start a "
                           f"new run")
    recorded = previous.meta.get("flags") or {}  # the run's partition, Python ... unless given
    config = {**config, "backend_options": {
        **{name: recorded[name] for name in BACKEND_FLAGS if recorded.get(name) is not None},
        **{name: shared.backend_options[name] for name in BACKEND_FLAGS
           if name in shared.given}}}
    folder, status = resume(family, previous, config, backend, shared.dry_run, say)
    if status is None:  # --dry-run: the trials it would run are said, nothing ran
        return 0
    return finish(family, folder, status, say)


def resume(family, previous, config, backend_flag=None, dry_run=False, say=print):
    """Run the trials of `previous` that are missing or were cut off, into the same folder.
    Nothing in the folder changes before every check has passed (a dry run changes nothing).
    Returns (folder, status); status is None for a dry run."""
    folder = previous.folder
    run = previous.run_id
    wanted = previous.backend_name
    total = len(previous.plan.trials)
    if dry_run:
        pending = previous.pending
        if not pending:
            say(f"run {run}: all {total} trials are recorded; nothing to resume")
            return folder, None
        seconds = sum(family.estimate(t.point, previous.meta) for t in pending)
        say(f"{_summary(previous, pending)}; about {format_duration(seconds)}")
        for trial in pending:
            say(f"  round {trial.round + 1}/{previous.plan.rounds}"
                f"{' (warm-up)' if trial.warmup else ''} {trial.point.point_id}")
        return folder, None
    backend = None
    if previous.pending:
        # only the hosts with trials left: one that is done may be gone for good
        hosts = list(dict.fromkeys(t.point.host for t in previous.pending))
        backend = connect_backend(backend_flag or wanted, config, say,
                                  [DEFAULT_HOST] if hosts == [""] else hosts,
                                  several=hosts != [""])  # the default host of --hosts stays
        if backend.name != wanted:
            raise BadInput(f"--resume {run}: the backend differs from the run's: the run ran on "
                           f"{wanted}, {backend.name} is what answers here")
        names = list(dict.fromkeys(p.image for p in previous.plan.points))
        try:
            backend.use_recorded(previous.meta, names, run)
        except ImageMismatch as why:
            raise BadInput(str(why)) from None
        family.on_resume(backend, previous.meta, run)  # e.g. the user's folder shown again
    try:
        folder.lock()  # from here on no other process appends to this run
        # what another process may have added before the lock was taken counts too
        previous.records = records.read_records(folder.raw_path, warn=lambda *_: None)
        pending = previous.pending
        if not pending:
            say(f"run {run}: all {total} trials are recorded; nothing to resume")
            if previous.meta.get("status") != "complete":
                _update_meta(folder, run, status="complete")
            _retire_failure(folder, run)
            return folder, "complete"
        if backend is None:  # pragma: no cover (another process removed records meanwhile)
            raise runfolder.RunFolderError(f"--resume {run}: raw.jsonl changed while it was "
                                           f"read; try again")
        _remove_leftovers(backend, run, say)
        resumes = list(previous.meta.get("resumes") or [])
        resumes.append({"started_at": time.time(), "trials": len(pending),
                        "cut_off": _cut_off_count(previous, pending), "command": " ".join(sys.argv),
                        "previous_status": previous.meta.get("status")})
        host = backend.host_facts().get("hostname")

        def reopen():
            _update_meta(folder, run, status="running", resumes=resumes)
            return folder

        def run_rest(folder, guard):
            say(f"{_summary(previous, pending)}; on the {backend.name} backend, results in "
                f"{folder.path}")
            if host != (previous.meta.get("host") or {}).get("hostname") and not \
                    previous.meta.get("hosts"):
                say(f"WARNING: run {run} started on host "
                    f"{previous.meta.get('host', {}).get('hostname')}, it is resumed on {host}")
            return run_trials(family, previous.plan, backend, folder, host, config,
                              estimator(family, backend, previous.meta), say,
                              done=previous.kept, guard=guard,
                              sizing=Sizing(family, folder, previous.sizing))

        folder, status = into_folder(family, reopen, run_rest, say, folder)
        if status == "complete":
            _retire_failure(folder, run)
        return folder, status
    finally:
        folder.unlock()


def _retire_failure(folder, run):
    """A run that is complete now keeps no `failure` or `hosts_lost`: they move to its history
    (`failures`, each with the status it had and when it ended)."""
    meta = folder.read_meta()
    if not (meta.get("failure") or meta.get("hosts_lost")):
        return
    history = list(meta.get("failures") or [])
    history.append({key: meta.get(key) for key in ("failure", "hosts_lost")
                    if meta.get(key) is not None})
    history[-1]["resolved_by_resume"] = len(meta.get("resumes") or [])
    for key in ("failure", "hosts_lost"):
        meta.pop(key, None)
    meta["failures"] = history
    try:
        folder.write_meta(meta)
    except OSError as error:
        raise runfolder.RunFolderError(f"--resume {run}: cannot write {folder.meta_path}: "
                                       f"{error.strerror or error}") from None


def _remove_leftovers(backend, run, say):
    """What a killed process left behind for this run (by its label; the lock says no other
    process runs it now): removed before its trials run again."""
    try:
        removed = backend.stop_all(run)
    except Exception as error:  # noqa: BLE001 (never a reason not to resume)
        say(f"WARNING: could not look for trials left by run {run}: {error}")
        return
    if removed:
        say(backend.removed_phrase(run, removed))


def _cut_off_count(previous, pending):
    recorded = {records.trial_key(r) for r in previous.records}
    return sum(1 for t in pending if t.key in recorded)


def _summary(previous, pending):
    cut_off = _cut_off_count(previous, pending)
    return (f"run {previous.run_id}: {len(pending)} of {len(previous.plan.trials)} trials to run "
            f"({cut_off} cut off, {len(pending) - cut_off} missing), {len(previous.kept)} kept")


def _update_meta(folder, run, **changes):
    try:
        return folder.update_meta(**changes)
    except OSError as error:
        raise runfolder.RunFolderError(f"--resume {run}: cannot write {folder.meta_path}: "
                                       f"{error.strerror or error}") from None
