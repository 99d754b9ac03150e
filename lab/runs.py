"""One run from start to end, whatever the experiment: backend, image, folder, meta, trials.

A task module (lab.scale, lab.ipc) turns flags into a plan and an estimate; this module does the
rest the same way for every task: `perform` runs a new plan, `resume_task` finishes an
interrupted or failed run from its own plan.json and raw.jsonl.

Signals: from the moment the run folder is made until its status is recorded, SIGINT and SIGTERM
end the run cleanly (lab.runner): the run's containers are stopped by label, the trial cut off
is recorded as failed ("interrupted ..."), meta.json says `interrupted`, and the exact
`invoke TASK --resume RUN-ID` command is printed; the task exits 130.

How a task offers `--resume RUN` (what lab.scale does; one flag for lab.ipc):

1. tasks.py: give the task a `resume=None` parameter (help: SHARED_HELP["resume"]) and pass
   `opts["resume"] = resume` and `opts["given"] = _given(flag=value, ...)`: the names of the
   plan-shaping flags and `backend` that were set on the command line (None means not given).
2. The task's run(opts, config, say) starts with
       if opts.get("resume") is not None:  # `--resume ''` is refused, never ignored
           return runs.resume_task(TASK, opts, config, estimator_of, build=report_builder,
                                   plan_of_flags=None, say=say)
   - estimator_of(previous) -> estimate(point) in seconds (from previous.meta, e.g. a recorded
     calibration; only for the progress line and --dry-run);
   - build(folder, say=say) redraws the report at the end (None: no report);
   - plan_of_flags(previous, opts, given) -> plan.Plan the given flags describe, the run's
     recorded options (meta.json "options", see Previous.options) filling in the rest. Without
     it, any plan flag given with --resume is refused; with it, a plan whose points, seed,
     repeat or warm-up differ from plan.json's is refused. Either way the trials run are
     plan.json's own (so calibrated work is kept, nothing is recalibrated).
   perform(..., extra_meta={"options": parsed}) records those options for plan_of_flags.
   tasks.py's `_guarded` turns the refusals (BadInput, RunFolderError) into one line, exit 2.
What resume_task does: reads meta.json, plan.json and raw.jsonl (every line validated), refuses
in one line (BadInput / RunFolderError, exit 2) a run of another task, another backend, a trial
image whose id differs from the run's (or is gone), or a different plan; runs only the trials
missing from raw.jsonl or cut off by an interruption (records whose error starts with
"interrupted"; other failed trials are measurements and stay), after removing containers a
killed process left behind for the run (by its label), appending to the same raw.jsonl
so the run ends with the same (point_id, round) keys as an uninterrupted run; sets the status
back to complete, redraws the report and returns the exit code (0, 130 interrupted, 1 failed).
"""

import json
import shlex
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lab import checks, hostinfo, plan as plans, runfolder, runner, topology
from lab.backends import BackendUnavailable, choose_backend
from lab.options import BadInput


@dataclass
class Prepared:
    backend: object
    cpus: list  # topology.Cpu of the CPUs trials may use


def prepare_backend(name, config, say=print):
    """The backend for `--backend name` with its image ready (built when missing)."""
    try:
        backend = choose_backend(name, config.get("docker", {}), say=say)
    except BackendUnavailable as why:
        raise BadInput(f"--backend {name}: {why}; start dockerd, or use --backend local") from None
    return Prepared(backend, topology.read_cpus())


def ready_images(backend, base_images, image=None, say=print):
    """Build or reuse the trial image of every base (docker backend only); `image` names a
    ready trial image to use as it is. Returns the names points use to pick their image."""
    if backend.name != "docker":
        return ["local"]
    from lab.image import ensure_image, existing_image
    if image:
        backend.images = {image: existing_image(backend.client, image)}
    else:
        backend.images = {base: ensure_image(backend.client, base, say=say) for base in base_images}
    return list(backend.images)


def format_duration(seconds):
    return runner._format_duration(seconds)


def dry_run(plan, estimate, say=print):
    """Print the plan and its estimated duration; run nothing, write nothing."""
    total = sum(estimate(t.point) for t in plan.trials)
    say(f"plan: {len(plan.points)} points x {plan.rounds} rounds "
        f"({'first round is a warm-up, left out of the statistics; ' if plan.discard_first_round else ''}"
        f"seed {plan.seed}) = {len(plan.trials)} trials, about {format_duration(total)}")
    for point in plan.points:
        say(f"  {point.point_id}: {point.variant} limit={point.limit} cpus={point.cpus} "
            f"cpuset={','.join(map(str, point.cpuset))} quota={point.quota} "
            f"workers={point.workers if point.workers is not None else 'Pool() default'} "
            f"start={point.start_method} params={point.params_dict} "
            f"~{estimate(point):.1f} s/trial")
    return total


def _results_dir_flag(folder):
    results_dir = folder.path.parent
    if results_dir.resolve() == Path("results").resolve():
        return ""
    return f" --results-dir {shlex.quote(str(results_dir))}"


def resume_command(task, folder):
    """The exact command that resumes `folder` (with --results-dir unless it is ./results)."""
    return f"invoke {task} --resume {folder.run_id}{_results_dir_flag(folder)}"


def quiet_failures(say):
    """`say` that never raises: a closed stdout (`| head`) must not end a run."""
    def safe(*args, **kwargs):
        try:
            say(*args, **kwargs)
        except (OSError, ValueError):
            pass
    return safe


def _next_step(task, folder, status, say):
    if status == "interrupted":
        say(f"Run {folder.run_id} interrupted. Resume it (only the missing and cut-off trials "
            f"run) with:\n  {resume_command(task, folder)}\n"
            f"or see what was kept with `invoke report {folder.run_id}"
            f"{_results_dir_flag(folder)}`.")
    elif status == "failed":
        say(f"Run {folder.run_id} failed. Once the cause is fixed, resume it with:\n"
            f"  {resume_command(task, folder)}")


def _run_trials(task, plan, backend, folder, host_name, config, estimate, say, done=(),
                guard=None):
    """execute() with the folder held, the disk reserve set, the system checked before and after
    (load, swap, governor: warnings kept in meta.json), and the next step said."""
    say = quiet_failures(say)
    snapshot = checks.before()
    try:
        folder.reserve_space()
        status = runner.execute(plan, backend, folder, host_name,
                                float(config.get("trial_time_limit_s", 600)), estimate, say=say,
                                done=done, guard=guard)
        _record_system_warnings(folder, checks.after(snapshot), say)
    finally:
        folder.release_reserve()
        folder.unlock()
    _next_step(task, folder, status, say)
    return status


def _record_system_warnings(folder, warnings, say):
    """Add the run-level warnings to meta.json (a resumed run keeps those of its first part)."""
    if not warnings:
        return
    try:
        known = folder.read_meta().get("warnings") or []
        folder.update_meta(warnings=known + [w for w in warnings if w not in known])
    except (OSError, ValueError) as error:
        say(f"WARNING: could not record the system checks in {folder.meta_path}: {error}")


@contextmanager
def _signals_caught():
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


def _interrupted_before_trials(task, folder, why, say):
    """A signal after the run folder was set up but before the first trial: say so, resumably."""
    say = quiet_failures(say)
    try:
        folder.update_meta(status="interrupted", finished_at=time.time())
    except Exception as error:  # noqa: BLE001
        say(f"WARNING: could not record status 'interrupted' in {folder.meta_path}: {error}")
    folder.release_reserve()
    folder.unlock()
    say(f"\nInterrupted ({why or 'SIGINT'}) before any trial of this call ran; nothing was lost.")
    _next_step(task, folder, "interrupted", say)
    return "interrupted"


def _create_folder(results_dir, task):
    try:
        return runfolder.RunFolder.create(results_dir, task)
    except OSError as error:
        raise runfolder.RunFolderError(
            f"cannot create a run folder in {results_dir}: {error.strerror or error}; "
            f"pass --results-dir a folder you can write") from None


def perform(task, plan, prepared, config, estimate, extra_meta=None, say=print):
    """Run `plan` into a new run folder; returns (folder, status). Trials are never lost."""
    backend = prepared.backend
    image = backend.image_info()
    images = {name: backend.image_info(name) for name in dict.fromkeys(p.image for p in plan.points)}
    meta = {
        "run_id": None, "task": task, "status": "running",
        "started_at": time.time(), "host": hostinfo.host(prepared.cpus),
        "backend": backend.describe(), "image": image, "images": images,
        "lab": hostinfo.lab(),
        "config": config, "seed": plan.seed, "trials_planned": len(plan.trials),
        "points_planned": len(plan.points), "warnings": [],
    }
    meta.update(extra_meta or {})
    folder = None
    with _signals_caught() as guard:
        try:
            with guard.shielded():  # a signal now waits until meta.json and plan.json are whole
                folder = _create_folder(config["results_dir"], task)
                meta["run_id"] = folder.run_id
                _write_new_run(folder, meta, task, plan)
            pythons = ", ".join(f"{i.get('tag') or i.get('id')} (Python {i.get('python')})"
                                for i in images.values())
            say(f"run {folder.run_id}: {len(plan.trials)} trials on the {backend.name} backend, "
                f"image {pythons}; results in {folder.path}")
            status = _run_trials(task, plan, backend, folder, meta["host"]["hostname"], config,
                                 estimate, say, guard=guard)
        except runner.Interrupted as why:
            guard.closing()
            status = _interrupted_before_trials(task, folder, why, say)
    return folder, status


def _write_new_run(folder, meta, task, plan):
    try:
        folder.write_meta(meta)
        runfolder.write_json_atomic(folder.plan_path, {"task": task, **plan.as_dict()})
    except OSError as error:
        folder.unlock()
        raise runfolder.RunFolderError(
            f"cannot write the run folder {folder.path}: {error.strerror or error}; "
            f"pass --results-dir a folder with room") from None


# --- resume ------------------------------------------------------------------------------------

@dataclass
class Previous:
    """A run to resume: its folder, meta.json, the plan of its plan.json and its records."""
    folder: runfolder.RunFolder
    meta: dict
    plan: plans.Plan
    records: list = field(default_factory=list)

    @property
    def run_id(self):
        return self.folder.run_id

    @property
    def backend_name(self):
        return (self.meta.get("backend") or {}).get("backend")

    @property
    def options(self):
        """The task's validated options as the run recorded them (meta.json `options`)."""
        return self.meta.get("options") or {}

    @property
    def kept(self):
        """Keys of the plan's trials that were measured (ok, or a genuine failure): they stay."""
        planned = {t.key for t in self.plan.trials}
        return {runfolder.trial_key(r) for r in self.records
                if not runfolder.is_cut_off(r) and runfolder.trial_key(r) in planned}

    @property
    def pending(self):
        """Trials missing from raw.jsonl or cut off by an interruption, in the plan's order."""
        kept = self.kept
        return [t for t in self.plan.trials if t.key not in kept]


def load_plan(path):
    """The Plan of a run's plan.json (same points, seed and repeat: the same trials, in order)."""
    data = json.loads(Path(path).read_text())
    points = [plans.make_point(**point) for point in data["points"]]
    return plans.Plan(points, int(data["repeat"]), int(data["seed"]),
                      bool(data.get("discard_first_round", True)))


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
    except (OSError, ValueError) as error:
        raise runfolder.RunFolderError(f"--resume {run}: {folder.meta_path} is not readable "
                                       f"({error}); the run cannot be resumed") from None
    if meta.get("task") != task:
        raise runfolder.RunFolderError(
            f"--resume {run}: run {folder.run_id} is a {meta.get('task')!r} run, not {task!r}; "
            f"resume it with `invoke {meta.get('task')} --resume {folder.run_id}`")
    try:
        plan = load_plan(folder.plan_path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise runfolder.RunFolderError(f"--resume {run}: {folder.plan_path} is missing or "
                                       f"damaged ({type(error).__name__}: {error}); the run "
                                       f"cannot be resumed") from None
    records = runfolder.read_records(folder.raw_path, warn=say)
    return Previous(folder, meta, plan, records)


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


def _image_short(image_id):
    return str(image_id or "?").replace("sha256:", "")[:12]


def use_recorded_images(backend, previous):
    """Give `backend` the very images the run used (no build, no probe container); BadInput
    when one of them differs now: other code (another image tag), rebuilt, gone, other Python."""
    run = previous.run_id
    recorded = previous.meta.get("images") or {}
    names = list(dict.fromkeys(p.image for p in previous.plan.points))
    if backend.name != "docker":
        python = backend.image_info()["python"]
        for info in recorded.values():
            if info.get("python") != python:
                raise BadInput(f"--resume {run}: the image differs from the run's: its trials ran "
                               f"on Python {info.get('python')}, this host's is {python}")
        return
    import docker

    from lab.image import ImageInfo, image_tag
    images = {}
    for name in names:
        info = recorded.get(name)
        if not info:
            raise runfolder.RunFolderError(f"--resume {run}: meta.json records no image for "
                                           f"{name!r}; the run cannot be resumed")
        lookup = info.get("tag") or name
        if info.get("base") == name and lookup != name:  # built from a base by ensure_image
            now = image_tag(name)
            if now != lookup:
                raise BadInput(f"--resume {run}: the image differs from the run's: the run used "
                               f"{lookup} ({_image_short(info.get('id'))}), the code here makes "
                               f"{now}; resume with the code the run had, or start a new run")
        try:
            current = backend.client.images.get(lookup)
        except docker.errors.ImageNotFound:
            raise BadInput(f"--resume {run}: the image differs from the run's: {lookup} "
                           f"({_image_short(info.get('id'))}) is no longer on this engine") from None
        if current.id != info.get("id"):
            raise BadInput(f"--resume {run}: the image differs from the run's: {lookup} is now "
                           f"{_image_short(current.id)}, the run used "
                           f"{_image_short(info.get('id'))}")
        images[name] = ImageInfo(**{k: info.get(k) for k in ("id", "tag", "base", "python",
                                                             "built_seconds")})
    backend.images = images


def resume(task, previous, config, estimate, plan=None, backend=None, dry_run=False, say=print):
    """Run the trials of `previous` (open_run) that are missing or were cut off, into the same
    folder (raw.jsonl is appended to), so the run ends with the trials an uninterrupted run has.

    The plan is the run's own; `plan` (what the task's flags describe, when any were given) and
    `backend` (a --backend given) must match the run's, and so must the images, or BadInput.
    Nothing in the folder changes before every check has passed (a dry run changes nothing).
    Returns (folder, status); status is None for a dry run."""
    folder = previous.folder
    run = previous.run_id
    wanted = previous.backend_name
    if backend not in (None, "", "auto") and backend != wanted:
        raise BadInput(f"--resume {run}: the backend differs from the run's: --backend "
                       f"{backend}, the run ran on {wanted}; leave --backend out")
    if plan is not None:
        difference = plan_difference(previous.plan, plan)
        if difference:
            raise BadInput(f"--resume {run}: the plan differs from the run's: {difference}; "
                           f"leave those flags out to finish the run as planned, or start a "
                           f"new run")
    total = len(previous.plan.trials)
    if dry_run:
        pending = previous.pending
        if not pending:
            say(f"run {run}: all {total} trials are recorded; nothing to resume")
            return folder, None
        seconds = sum(estimate(t.point) for t in pending)
        say(f"{_resume_summary(previous, pending)}; about {format_duration(seconds)}")
        for trial in pending:
            say(f"  round {trial.round + 1}/{previous.plan.rounds}"
                f"{' (warm-up)' if trial.warmup else ''} {trial.point.point_id}")
        return folder, None
    prepared = None
    if previous.pending:
        prepared = prepare_backend(backend if backend not in (None, "") else wanted, config, say)
        if prepared.backend.name != wanted:
            raise BadInput(f"--resume {run}: the backend differs from the run's: the run ran on "
                           f"{wanted}, {prepared.backend.name} is what answers here")
        use_recorded_images(prepared.backend, previous)
    try:
        folder.lock()  # from here on no other process appends to this run
        # what another process may have added before the lock was taken counts too
        previous.records = runfolder.read_records(folder.raw_path, warn=lambda *_: None)
        pending = previous.pending
        if not pending:
            say(f"run {run}: all {total} trials are recorded; nothing to resume")
            if previous.meta.get("status") != "complete":
                _update_meta(folder, run, status="complete")
            return folder, "complete"
        if prepared is None:  # pragma: no cover (another process removed records meanwhile)
            raise runfolder.RunFolderError(f"--resume {run}: raw.jsonl changed while it was "
                                           f"read; try again")
        _remove_leftovers(prepared.backend, run, say)
        summary = _resume_summary(previous, pending)
        resumes = list(previous.meta.get("resumes") or [])
        resumes.append({"started_at": time.time(), "trials": len(pending),
                        "cut_off": _cut_off_count(previous, pending), "command": " ".join(sys.argv),
                        "previous_status": previous.meta.get("status")})
        host = hostinfo.host(prepared.cpus).get("hostname")
        with _signals_caught() as guard:
            try:
                with guard.shielded():  # a signal now waits until meta.json is whole
                    _update_meta(folder, run, status="running", resumes=resumes)
                say(f"{summary}; on the {prepared.backend.name} backend, results in {folder.path}")
                if host != (previous.meta.get("host") or {}).get("hostname"):
                    say(f"WARNING: run {run} started on host "
                        f"{previous.meta.get('host', {}).get('hostname')}, it is resumed on {host}")
                status = _run_trials(task, previous.plan, prepared.backend, folder, host, config,
                                     estimate, say, done=previous.kept, guard=guard)
            except runner.Interrupted as why:
                guard.closing()
                status = _interrupted_before_trials(task, folder, why, say)
        return folder, status
    finally:
        folder.unlock()


def _remove_leftovers(backend, run, say):
    """Containers a killed process left behind for this run (by its label; the lock says no
    other process runs it now): removed before its trials run again."""
    try:
        removed = backend.stop_all(run)
    except Exception as error:  # noqa: BLE001 (never a reason not to resume)
        say(f"WARNING: could not look for containers left by run {run}: {error}")
        return
    if removed:
        say(f"removed {removed} container(s) left behind by run {run} "
            f"(label {runner.RUN_LABEL}={run})")


def _cut_off_count(previous, pending):
    recorded = {runfolder.trial_key(r) for r in previous.records}
    return sum(1 for t in pending if t.key in recorded)


def _resume_summary(previous, pending):
    cut_off = _cut_off_count(previous, pending)
    return (f"run {previous.run_id}: {len(pending)} of {len(previous.plan.trials)} trials to run "
            f"({cut_off} cut off, {len(pending) - cut_off} missing), {len(previous.kept)} kept")


def _update_meta(folder, run, **changes):
    try:
        return folder.update_meta(**changes)
    except OSError as error:
        raise runfolder.RunFolderError(f"--resume {run}: cannot write {folder.meta_path}: "
                                       f"{error.strerror or error}") from None


def resume_task(task, opts, config, estimator_of, build=None, plan_of_flags=None, say=print):
    """`invoke TASK --resume RUN` end to end (see the module's docstring); returns the exit code.

    opts: "resume" (the run: an id, 'latest' or a path), "given" (names of the flags set on the
    command line), "backend" and "dry_run"; config: the lab's config (results_dir ...)."""
    previous = open_run(config["results_dir"], opts["resume"], task, say)
    given = set(opts.get("given") or ())
    plan_flags = sorted(given - {"backend"})
    plan = None
    if plan_flags:
        if plan_of_flags is None:
            raise BadInput(f"--resume {previous.run_id}: the run's plan comes from its "
                           f"plan.json; leave out --{plan_flags[0].replace('_', '-')}")
        plan = plan_of_flags(previous, opts, set(plan_flags))
    folder, status = resume(task, previous, config, estimator_of(previous), plan=plan,
                            backend=opts.get("backend") if "backend" in given else None,
                            dry_run=bool(opts.get("dry_run")), say=say)
    if status is None:  # --dry-run: the trials it would run are said, nothing ran
        return 0
    failed = build_report(build, folder, say) if build is not None else 0
    return runner.exit_code(status, failed or 0)


def build_report(build, folder, say=print):
    """Draw the run's report with `build(folder, say=...)`; a full disk or other trouble
    writing it is said in one line (the trials are safe in raw.jsonl), never a traceback.
    An interrupted run gets none: its user wants out (`invoke report RUN` draws it later)."""
    try:
        if folder.read_meta().get("status") == "interrupted":
            return None
    except (OSError, ValueError):
        pass
    try:
        return build(folder, say=say)
    except OSError as error:
        say = quiet_failures(say)
        say(f"could not write the report of {folder.run_id}: {runner._reason(error, None)}; "
            f"redraw it later with `invoke report {folder.run_id}`")
        return None


# --- rerun a recorded plan elsewhere (--plan) ---------------------------------------------------

def plan_from_file(task, path, cpus, backend_name, base_image):
    """The plan of a run's plan.json, to run again here: same points, seed and repeat.

    Refused in one line when the file is not a plan of `task` or asks for CPUs this host lacks.
    Points keep their images (base names, rebuilt here from this code); on the local backend
    they run as "local", and a point recorded on the local backend runs on `base_image`."""
    try:
        data = json.loads(Path(path).read_text())
        stored = load_plan(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BadInput(f"--plan {path}: not a readable plan.json ({error}); allowed: the "
                       f"plan.json of a run folder") from None
    if data.get("task") != task:
        raise BadInput(f"--plan {path}: a plan of `invoke {data.get('task')}`, not of "
                       f"`invoke {task}`")
    usable = {c.id for c in cpus}
    points = []
    for point in stored.points:
        missing = sorted(set(point.cpuset) - usable)
        if missing:
            raise BadInput(f"--plan {path}: point {point.point_id} is pinned to CPUs "
                           f"{','.join(map(str, point.cpuset))}, this host lacks "
                           f"{','.join(map(str, missing))}; allowed: CPUs "
                           f"{','.join(map(str, sorted(usable)))}")
        if backend_name == "local" and point.quota is not None:
            raise BadInput(f"--plan {path}: point {point.point_id} has a CPU quota, which the "
                           f"local backend cannot set; use --backend docker")
        image = "local" if backend_name == "local" else (
            base_image if point.image in ("", "local") else point.image)
        points.append(plans.make_point(**{**point.as_dict(), "image": image}))
    return plans.Plan(points, stored.repeat, stored.seed, stored.discard_first_round)


def rerun_task(task, opts, config, estimate_of, build=None, say=print):
    """`invoke TASK --plan PLAN.json`: the recorded matrix, run anew into a new run folder."""
    path = opts["plan"]
    shaping = sorted(set(opts.get("given") or ()) - {"backend", "base_image", "image", "plan"})
    if shaping:
        raise BadInput(f"--plan {path}: the matrix comes from the plan; leave out "
                       f"--{shaping[0].replace('_', '-')}")
    runfolder.check_writable(config["results_dir"])
    cpus = topology.read_cpus()
    prepared = prepare_backend(opts["backend"], config, say)
    name = prepared.backend.name
    plan = plan_from_file(task, path, cpus, name, opts["base_image"])
    estimate = estimate_of(name)
    if opts.get("dry_run"):
        dry_run(plan, estimate, say)
        return 0
    bases = list(dict.fromkeys(p.image for p in plan.points))
    ready_images(prepared.backend, bases, opts.get("image"), say)
    if opts.get("image"):  # a ready image stands in for every base of the plan
        plan = plans.Plan([plans.make_point(**{**p.as_dict(), "image": opts["image"]})
                           for p in plan.points], plan.repeat, plan.seed, plan.discard_first_round)
    folder, status = perform(task, plan, prepared, config, estimate,
                             extra_meta={"plan_source": str(Path(path).resolve())}, say=say)
    failed = build_report(build, folder, say) if build is not None else 0
    return runner.exit_code(status, failed or 0)
