"""One run from start to end, whatever the experiment: backend, image, folder, meta, trials.

A task module (lab.scale, lab.ipc) turns flags into a plan and an estimate; this module does the
rest the same way for every task.
"""

import time
from dataclasses import dataclass

from lab import hostinfo, runfolder, runner, topology
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
        f"({'first round is a discarded warm-up, ' if plan.discard_first_round else ''}"
        f"seed {plan.seed}) = {len(plan.trials)} trials, about {format_duration(total)}")
    for point in plan.points:
        say(f"  {point.point_id}: {point.variant} limit={point.limit} cpus={point.cpus} "
            f"cpuset={','.join(map(str, point.cpuset))} quota={point.quota} "
            f"workers={point.workers if point.workers is not None else 'Pool() default'} "
            f"start={point.start_method} params={point.params_dict} "
            f"~{estimate(point):.1f} s/trial")
    return total


def perform(task, plan, prepared, config, estimate, extra_meta=None, say=print):
    """Run `plan` into a new run folder; returns (folder, status). Trials are never lost."""
    backend = prepared.backend
    folder = runfolder.RunFolder.create(config["results_dir"], task)
    image = backend.image_info()
    images = {name: backend.image_info(name) for name in dict.fromkeys(p.image for p in plan.points)}
    meta = {
        "run_id": folder.run_id, "task": task, "status": "running",
        "started_at": time.time(), "host": hostinfo.host(prepared.cpus),
        "backend": backend.describe(), "image": image, "images": images,
        "lab": hostinfo.lab(),
        "config": config, "seed": plan.seed, "trials_planned": len(plan.trials),
        "points_planned": len(plan.points), "warnings": [],
    }
    meta.update(extra_meta or {})
    folder.write_meta(meta)
    runfolder.write_json_atomic(folder.path / runfolder.PLAN, {"task": task, **plan.as_dict()})
    pythons = ", ".join(f"{i.get('tag') or i.get('id')} (Python {i.get('python')})"
                        for i in images.values())
    say(f"run {folder.run_id}: {len(plan.trials)} trials on the {backend.name} backend, "
        f"image {pythons}; results in {folder.path}")
    status = runner.execute(plan, backend, folder, meta["host"]["hostname"],
                            float(config.get("trial_time_limit_s", 600)), estimate, say=say)
    folder.update_meta(status=status, finished_at=time.time())
    if status == "interrupted":
        say(f"Run {folder.run_id} interrupted; see what was kept with "
            f"`invoke report {folder.run_id}`.")
    return folder, status
