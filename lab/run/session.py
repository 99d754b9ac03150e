"""Two ways into the one path (lab.run.carry) where the plan comes from the flags or a file:

  new run      backend -> its host's CPUs -> points (checked, nothing built yet) -> images ->
               the family's preparation (e.g. calibration) -> plan -> a new run folder
  --plan FILE  another run's plan.json, checked against this backend's hosts -> a new run folder

The third way, --resume RUN, takes the run's own plan (lab.run.resume); lab.run.task picks the way.
"""

import dataclasses
from pathlib import Path

from lab import records
from lab.backends import DEFAULT_HOST
from lab.run import folder as runfolder
from lab.run.carry import connect_backend, estimator, finish, host_points, perform
from lab.run.options import BACKEND_FLAGS, BadInput
from lab.run.plan import Plan, make_point, plan_of
from lab.run.progress import format_duration
from lab.run.sizing import remapped


def _silent(*_args, **_kwargs):
    pass


# --- the plan in words (--dry-run), a quota the backend cannot set -------------------------------

def check_quota(shared, backend, family):
    if shared.quota and not family.uses_quota:
        raise BadInput(f"--quota: `invoke {family.name}` has no quota points")
    if shared.quota and not backend.supports_quota:
        raise BadInput(backend.quota_refusal(by_name=shared.backend == backend.name))


def dry_run(plan, estimate, label, say=print, backend=None):
    """Print the plan and its estimated duration (and the backend's own line, e.g. the nodes a
    cluster run would hold at once); run nothing, write nothing."""
    line = (backend.describe() or {}).get("summary") if backend is not None else None
    if line:
        say(f"backend: {line}")
    per_host = {}
    for trial in plan.trials:  # hosts run side by side: the longest host's share is the wait
        per_host[trial.point.host] = per_host.get(trial.point.host, 0) + estimate(trial.point)
    total = max(per_host.values(), default=0)
    if len(per_host) > 1:
        say(f"{len(per_host)} hosts side by side, one trial at a time on each")
    say(f"plan: {len(plan.points)} points x {plan.rounds} rounds "
        f"({'first round is a warm-up, left out of the statistics; ' if plan.discard_first_round else ''}"
        f"seed {plan.seed}) = {len(plan.trials)} trials, about {format_duration(total)}")
    for point in plan.points:
        say(f"  {point.point_id}: {label(point)}; limit={point.limit} "
            f"cpuset={','.join(map(str, point.cpuset))} quota={point.quota} "
            f"start={point.start_method} params={point.params_dict} "
            f"~{estimate(point):.1f} s/trial")
    keep = getattr(say, "keep_plan", None)  # --format json: the same plan as data
    if keep is not None:
        keep({**plan.as_dict(), "rounds": plan.rounds, "trials": len(plan.trials),
              "estimated_seconds": round(total, 1),
              "points": [{"point_id": point.point_id, **point.as_dict(), "label": label(point),
                          "seconds_per_trial": round(estimate(point), 2)}
                         for point in plan.points]})
    return total


def say_left_out(notes, say):
    for reason, count in notes.items():
        say(f"left out ({count}): {reason}")


# --- a new run -----------------------------------------------------------------------------------

def new_run(family, shared, options, values, config, say=print):
    runfolder.check_writable(config["results_dir"])
    backend = connect_backend(shared.backend, config, say, shared.hosts)
    check_quota(shared, backend, family)
    cpus = backend.cpus()
    # Every point checked (budget, CPUs, combinations) before any image is built or trial run.
    names = backend.plan_images(shared.base_images, shared.image)
    nominal = family.prepare(options, backend, cpus, names, say if shared.dry_run else _silent,
                             dry_run=True)
    points, notes = host_points(family, options, backend, names, nominal)
    plan = Plan(points, shared.repeat, shared.seed)
    if shared.dry_run:
        say_left_out(notes, say)
        dry_run(plan, estimator(family, backend, nominal), family.point_label, say, backend)
        return 0
    images = backend.prepare_images(shared.base_images, shared.image, say)
    cpus = backend.cpus()  # a remote host's own topology, read there once its image is in
    prepared = family.prepare(options, backend, cpus, images, say)
    points, notes = host_points(family, options, backend, images, prepared)
    plan = Plan(points, shared.repeat, shared.seed)
    say_left_out(notes, say)
    folder, status = perform(family, plan, backend, config, prepared, extra_meta={
        "options": options.record(), "flags": values,
        "skipped_combinations": notes, **prepared}, say=say)
    return finish(family, folder, status, say)


# --- rerun a recorded plan elsewhere (--plan) ---------------------------------------------------

def read_plan_file(family, path):
    """(Plan, sizing) of a run's plan.json, refused in one line when it is not a readable plan
    of `family` (read before any backend is asked for anything)."""
    try:
        stored = records.read_plan(path)
    except records.RecordsError as why:
        raise BadInput(f"--plan {path}: not a readable plan.json ({why}); allowed: the plan.json "
                       f"of a run folder") from None
    if stored.task != family.name:
        raise BadInput(f"--plan {path}: a plan of `invoke {stored.task}`, not of "
                       f"`invoke {family.name}`")
    return plan_of(stored), stored.sizing


def plan_for_backend(plan, path, backend, base_image, hosts=None):
    """`plan` (another run's) to run again on `backend`: same points, seed and repeat, refused in
    one line when it asks for CPUs or a quota the backend's host lacks. Points keep their
    images where the backend can (base names, rebuilt from this code); the backend says what a
    point recorded elsewhere runs on. `hosts` (--hosts given): every distinct point of the plan
    runs on each of the backend's hosts instead of the host it had."""
    host_cpus = backend.host_cpus()
    if hosts is not None:
        distinct = list(dict.fromkeys(dataclasses.replace(p, host="") for p in plan.points))
        plan.points = [dataclasses.replace(p, host=h) for h in host_cpus for p in distinct]
    points = []
    for point in plan.points:
        if point.host not in host_cpus:
            raise BadInput(f"--plan {path}: point {point.point_id} ran on host "
                           f"{point.host or DEFAULT_HOST}, which this run does not have; pass "
                           f"--hosts to say where the plan runs")
        usable = {c.id for c in host_cpus[point.host]}
        missing = sorted(set(point.cpuset) - usable)
        if missing:
            raise BadInput(f"--plan {path}: point {point.point_id} is pinned to CPUs "
                           f"{','.join(map(str, point.cpuset))}, this host lacks "
                           f"{','.join(map(str, missing))}; allowed: CPUs "
                           f"{','.join(map(str, sorted(usable)))}")
        if point.quota is not None and not backend.supports_quota:
            raise BadInput(f"--plan {path}: point {point.point_id} has a CPU quota, which the "
                           f"{backend.name} backend cannot set; {backend.quota_advice}")
        image = backend.image_for_rerun(point.image, base_image)
        points.append(make_point(**{**point.as_dict(), "image": image}))
    return Plan(points, plan.repeat, plan.seed, plan.discard_first_round)


def _release(python):
    """'3.13.5' or '3.14.0t' -> (3, 13) or (3, 14); None when it cannot be read."""
    parts = str(python or "").split(".")[:2]
    return tuple(int(p) for p in parts) if len(parts) == 2 and all(map(str.isdigit, parts)) \
        else None


def check_pythons(family, plan, path, python_of):
    """Refuse in one line a recorded point that needs a newer Python (concurrent.interpreters:
    3.14) than its image has, as a new run refuses the flags asking for it: before any trial
    runs or any folder is made. `python_of(image)` is None where the Python is not known."""
    for point in plan.points:
        need = family.python_needed(point)
        python = python_of(point.image) if need else None
        have = _release(python)
        if need and have is not None and have < tuple(need[0]):
            release = ".".join(map(str, need[0]))
            raise BadInput(f"--plan {path}: point {point.point_id} ({family.point_label(point)}) "
                           f"needs Python {release} or later ({need[1]}), and "
                           f"{point.image or 'this host'} has Python {python}; allowed: a plan "
                           f"without such points, or --image / --backend with Python {release} "
                           f"or later")


def rerun_plan(family, shared, given_own, config, say=print):
    """`invoke TASK --plan PLAN.json`: the recorded matrix, run anew into a new run folder."""
    path = shared.plan
    shaping = sorted((set(shared.given) | set(given_own)) - {"backend", "base_image", "image",
                                                            "hosts", *BACKEND_FLAGS})
    if shaping:
        raise BadInput(f"--plan {path}: the matrix comes from the plan; leave out "
                       f"--{shaping[0].replace('_', '-')}")
    runfolder.check_writable(config["results_dir"])
    plan, sizing = read_plan_file(family, path)
    source = plan
    given_hosts = "hosts" in shared.given
    stored_hosts = list(dict.fromkeys(p.host for p in plan.points))
    hosts = (shared.hosts if given_hosts or "" in stored_hosts else stored_hosts)
    backend = connect_backend(shared.backend, config, say, hosts)
    plan = plan_for_backend(plan, path, backend, shared.base_images[0],
                            hosts if given_hosts else None)
    prepared = {}  # nothing measured beforehand: the points carry their work
    estimate = estimator(family, backend, prepared)
    if shared.dry_run:  # an image already built knows its Python (its label): refused alike
        check_pythons(family, plan, path, lambda image: backend.known_python(shared.image
                                                                             or image))
        dry_run(plan, estimate, family.point_label, say, backend)
        return 0
    bases = list(dict.fromkeys(p.image for p in plan.points))
    backend.prepare_images(bases, shared.image, say)
    if shared.image:  # a ready image stands in for every base of the plan
        plan = Plan([make_point(**{**p.as_dict(), "image": shared.image}) for p in plan.points],
                    plan.repeat, plan.seed, plan.discard_first_round)
    check_pythons(family, plan, path,
                  lambda image: (backend.image_info(image or None) or {}).get("python"))
    folder, status = perform(family, plan, backend, config, prepared,
                             extra_meta={"plan_source": str(Path(path).resolve())}, say=say,
                             sizing=remapped(sizing, source.points, plan.points))
    return finish(family, folder, status, say)
