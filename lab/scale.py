"""`invoke scale`: the tutorial's CPU-bound task, from 1 to N CPUs, strong and weak.

Flags become a validated plan here; lab.runs runs it; lab.report analyses and draws it.
"""

import math
import random

from lab import options, plan as plans, runner, runs, topology
from lab.experiments.scaling import VARIANTS as SCALING_VARIANTS
from lab.options import BadInput

TASK = "scale"
VARIANTS = tuple(v for v in SCALING_VARIANTS if v != "calibrate")
STRONG_TYPE = ("strong", "process", "seed")
SEED_WORK = 6 * 10**7  # the tutorial's task(): six loops of 10^7
NOMINAL_ITERATIONS_PER_SECOND = 4e6  # for estimates before anything is measured
OVERHEAD_SECONDS = {"docker": 0.8, "local": 0.2}


def validate(opts, host_cpus):
    """Every flag checked before anything starts: returns the parsed values or raises BadInput."""
    parsed = {
        "cpus": options.cpu_counts(opts["cpus"], host_cpus),
        "quota": options.quotas(opts.get("quota"), host_cpus),
        "variants": options.choices("--variants", opts["variants"], VARIANTS),
        "workers": options.workers(opts["workers"]),
        "work": options.work(opts["work"]),
        "repeat": options.positive_int("--repeat", opts["repeat"]),
        "placement": options.choice("--placement", opts["placement"], topology.PLACEMENTS),
        "start_method": options.choice("--start-method", opts["start_method"],
                                       options.START_METHODS),
        "backend": options.choice("--backend", opts["backend"], options.BACKENDS),
        "target_seconds": float(opts.get("target_seconds", 2.0)),
        "base_images": options.image_names("--base-image", opts["base_image"]),
        "image": options.image_names("--image", opts["image"])[0] if opts.get("image") is not None else None,
    }
    seed = opts.get("seed")
    parsed["seed"] = (options.positive_int("--seed", seed, "a whole number")
                      if seed not in (None, "", "random") else random.randrange(1, 2**31))
    if parsed["quota"] and parsed["backend"] == "local":
        raise BadInput("--quota needs containers: a CPU quota cannot be set on a host process; "
                       "use --backend docker or auto")
    return parsed


def build_points(parsed, cpus, work, images):
    """Points of the matrix, per image; each variant gets its 1-CPU, 1-worker baseline, strong
    runs the serial one (absolute speedup)."""
    points = []
    for image in images:
        _add_points(points, parsed, cpus, work, image)
    return points


def _add_points(points, parsed, cpus, work, image):
    def add(variant, count, workers, quota=None):
        cpuset = (topology.cpuset_for(count, cpus, parsed["placement"]) if quota is None
                  else [c.id for c in cpus])
        point = plans.make_point(
            experiment="scaling", variant=variant, limit="quota" if quota else "cpuset",
            cpus=count if quota is None else len(cpus), cpuset=cpuset, quota=quota,
            placement=parsed["placement"], workers=workers,
            start_method=parsed["start_method"], params={"work": work}, image=image)
        if point not in points:
            points.append(point)

    for variant in parsed["variants"]:
        add(variant, 1, 1)
        for count in parsed["cpus"]:
            for workers in parsed["workers"]:
                add(variant, count, count if workers == "cpus" else
                    None if workers == "default" else workers)
        for quota in parsed["quota"]:
            # Pool()'s own size beside the effective CPUs: the comparison a quota is about.
            for workers in dict.fromkeys(["cpus", "default", *parsed["workers"]]):
                add(variant, len(cpus), math.ceil(quota) if workers == "cpus" else
                    None if workers == "default" else workers, quota=quota)
    if any(v in STRONG_TYPE for v in parsed["variants"]):
        add("serial", 1, 1)


def estimator(backend_name, seconds_per_iteration):
    """Rough seconds of one trial of a point (for --dry-run and the progress line)."""
    def estimate(point):
        work_seconds = point.params_dict["work"] * seconds_per_iteration
        workers = point.workers or point.cpus
        if point.variant == "weak":
            work_seconds *= workers
        width = min(workers, point.quota or point.cpus)
        return work_seconds * 1.03 / max(width, 0.01) + OVERHEAD_SECONDS[backend_name]
    return estimate


def calibrate(backend, cpus, parsed, images, say=print):
    """Iterations per second of one pinned process in the trial's own environment."""
    from lab.backends import RUN_LABEL
    cpuset = topology.cpuset_for(1, cpus, parsed["placement"])
    spec = {"experiment": "scaling", "variant": "calibrate", "params": {"calibrate_seconds": 0.5},
            "workers": 1, "start_method": parsed["start_method"], "expect_affinity": cpuset}
    outcome = backend.run(spec, cpuset, None, 120, {RUN_LABEL: "calibration"}, images[0])
    if outcome.error:
        raise RuntimeError(f"calibration trial failed: {outcome.error}\n{outcome.stderr_tail}")
    return outcome.result["metrics"]["iterations_per_second"]["value"]


def run(opts, config, say=print):
    """The whole task; returns the process exit code."""
    if opts.get("resume") is not None:
        return resume(opts, config, say)
    if opts.get("plan"):
        return runs.rerun_task(TASK, opts, config, lambda backend_name: estimator(
            backend_name, 1 / NOMINAL_ITERATIONS_PER_SECOND), build=_build_report, say=say)
    from lab.runfolder import check_writable
    host_cpus = topology.read_cpus()
    parsed = validate(opts, len(host_cpus))
    check_writable(config["results_dir"])
    prepared = runs.prepare_backend(parsed["backend"], config, say)
    if parsed["quota"] and prepared.backend.name != "docker":
        raise BadInput("--quota needs the docker backend, and no Docker engine answers")
    name = prepared.backend.name
    work = parsed["work"]
    if opts.get("dry_run"):
        seconds_per_iteration = (parsed["target_seconds"] / SEED_WORK if work == "auto"
                                 else 1 / NOMINAL_ITERATIONS_PER_SECOND)
        work_value = SEED_WORK if work in ("auto", "seed") else work
        images = ([parsed["image"]] if parsed["image"] else parsed["base_images"]
                  ) if name == "docker" else ["local"]
        plan = plans.Plan(build_points(parsed, host_cpus, work_value, images), parsed["repeat"],
                          parsed["seed"])
        if work == "auto":
            say(f"work: calibrated at the start of the run so one worker's trial takes about "
                f"{parsed['target_seconds']:g} s")
        runs.dry_run(plan, estimator(name, seconds_per_iteration), say)
        return 0
    images = runs.ready_images(prepared.backend, parsed["base_images"], parsed["image"], say)
    calibration = {"mode": work if isinstance(work, str) else "given"}
    if work == "seed":
        work = SEED_WORK
    rate = NOMINAL_ITERATIONS_PER_SECOND
    if work == "auto":
        rate = calibrate(prepared.backend, host_cpus, parsed, images, say)
        work = max(1000, int(rate * parsed["target_seconds"]))
        say(f"calibrated: {rate:,.0f} iterations/s on one CPU -> work {work:,} iterations "
            f"(about {parsed['target_seconds']:g} s for one worker)")
        calibration.update(iterations_per_second=rate, target_seconds=parsed["target_seconds"])
    calibration["work"] = work
    plan = plans.Plan(build_points(parsed, host_cpus, work, images), parsed["repeat"],
                      parsed["seed"])
    folder, status = runs.perform(TASK, plan, prepared, config, estimator(name, 1 / rate),
                                  extra_meta={"calibration": calibration, "options": parsed},
                                  say=say)
    from lab import report  # pandas and matplotlib load only once there is something to draw
    failed = runs.build_report(report.build, folder, say)
    return runner.exit_code(status, failed or 0)


# Flags that shape the plan: with --resume, any of them given must describe the run's own plan.
PLAN_FLAGS = ("cpus", "quota", "variants", "workers", "work", "repeat", "placement",
              "start_method", "base_image", "image", "seed")


def resume(opts, config, say=print):
    """`invoke scale --resume RUN`: the run's missing and cut-off trials, from its plan.json,
    with its calibrated work (no recalibration); then the report, redrawn."""
    return runs.resume_task(TASK, opts, config, _resume_estimator, build=_build_report,
                            plan_of_flags=_plan_of_flags, say=say)


def _resume_estimator(previous):
    rate = ((previous.meta.get("calibration") or {}).get("iterations_per_second")
            or NOMINAL_ITERATIONS_PER_SECOND)
    name = previous.backend_name if previous.backend_name in OVERHEAD_SECONDS else "docker"
    return estimator(name, 1 / rate)


def _build_report(folder, say=print):
    from lab import report  # pandas and matplotlib load only once there is something to draw
    return report.build(folder, say=say)


def _plan_of_flags(previous, opts, given):
    """The plan the given flags describe, the run's recorded options filling in the rest."""
    recorded = previous.options
    if not recorded:
        raise BadInput(f"--resume {previous.run_id}: the run records no options to compare "
                       f"flags with; leave the flags out")
    host_cpus = topology.read_cpus()
    merged = {"cpus": recorded.get("cpus"), "quota": recorded.get("quota") or "",
              "variants": recorded.get("variants"), "workers": recorded.get("workers"),
              "work": recorded.get("work"), "repeat": recorded.get("repeat"),
              "placement": recorded.get("placement"), "start_method": recorded.get("start_method"),
              "backend": previous.backend_name, "target_seconds": recorded.get("target_seconds", 2),
              "base_image": recorded.get("base_images"), "image": recorded.get("image"),
              "seed": recorded.get("seed")}
    merged.update({flag: opts.get(flag) for flag in given if flag in PLAN_FLAGS})
    parsed = validate(merged, len(host_cpus))
    calibration = previous.meta.get("calibration") or {}
    work = parsed["work"]
    if work == "seed":
        work = SEED_WORK
    elif work == "auto":
        if calibration.get("mode") != "auto":
            raise BadInput(f"--resume {previous.run_id}: the plan differs from the run's: "
                           f"--work auto, the run's work was {calibration.get('work')} iterations")
        work = calibration["work"]
    images = (([parsed["image"]] if parsed["image"] else parsed["base_images"])
              if previous.backend_name == "docker" else ["local"])
    return plans.Plan(build_points(parsed, host_cpus, work, images), parsed["repeat"],
                      parsed["seed"])
