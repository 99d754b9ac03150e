"""`invoke scale`, host side: the tutorial's CPU-bound task, from 1 to N CPUs, strong and weak.

Flags -> ScaleOptions -> points (each variant with its 1-CPU baseline, strong runs the serial
one); `--work auto` is calibrated by one trial before the plan (kept in meta.json, so --resume and
--plan reuse it); the analysis is lab.analysis.scaling, the report section lab.present.
"""

import math
from dataclasses import dataclass

from lab.experiments.scaling import USER_VARIANTS
from lab.families import Family, FamilyOptions, scale_own
from lab.hosts import topology
from lab.run import options as parse
from lab.run.options import BadInput
from lab.run.plan import make_point

# What users may ask for: the trial's own less its calibration (test doubles are apart there).
VARIANTS = tuple(v for v in USER_VARIANTS if v != "calibrate")
SEED_WORK = 6 * 10**7  # the tutorial's task(): six loops of 10^7
NOMINAL_ITERATIONS_PER_SECOND = 4e6  # for estimates before anything is measured
CALIBRATION_SECONDS = 0.5


@dataclass
class ScaleOptions(FamilyOptions):
    variants: list
    workers: list           # 'cpus', 'default' or whole numbers
    work: object            # 'auto', 'seed' or iterations
    target_seconds: float   # what --work auto aims one worker's trial at
    ceiling: bool = False   # the measured ceiling beside the variants (the default run's)
    own: object = None      # scale_own.OwnCode: the user's --command or --target, else None



class ScaleFamily(Family):
    name = "scale"
    experiment = "scaling"
    also_experiments = scale_own.EXPERIMENTS  # the user's own code: --command, --target
    title = "CPU-bound scaling"
    anchor = "scaling"
    flags = {
        "variants": "strong, weak, process, seed, serial, ceiling, threads, interpreters "
                    "(3.14+) (comma-separated; the default "
                    "adds ceiling: N pinned spinners, what N CPUs deliver)",
        "workers": "worker counts per CPU count: cpus (= CPUs), default (Pool()'s own), or numbers",
        "work": "auto (calibrated to ~2 s for one worker), seed (the tutorial's 6e7), or iterations",
        **scale_own.FLAGS,
    }
    plan_flags = ("variants", "workers", "work")
    uses_quota = True
    lengthen_flag = "--work"
    size_param = ("work", "--work", "a work")
    show_workers = True

    def parse(self, flags, defaults, shared):
        values = parse.chosen(flags, defaults, ("variants", "workers", "work", "target_seconds"))
        try:
            target = float(values["target_seconds"])
        except (TypeError, ValueError):
            target = math.nan
        if not 0.01 <= target <= 3600:  # also catches NaN
            raise BadInput(f"scale.target_seconds {values['target_seconds']!r} (invoke.yaml or "
                           f"INVOKE_SCALE_TARGET_SECONDS): not allowed; allowed: seconds from "
                           f"0.01 to 3600")
        options = ScaleOptions(
            shared=shared,
            variants=parse.choices("--variants", values["variants"], VARIANTS),
            workers=parse.workers(values["workers"]),
            work=parse.work(values["work"]),
            target_seconds=target)
        # The default run measures the ceiling too (what N CPUs of each host deliver); a
        # --variants given runs what it names.
        if flags.get("variants") is None and "ceiling" not in options.variants:
            options.ceiling = True
        # The user's own program or function (scale_own) runs the same points as the task.
        options.own = scale_own.parse(flags, options.work,
                                      options.variants if flags.get("variants") else None)
        if options.own is not None:
            if flags.get("variants") is None and options.own.experiment == "command":
                options.variants = ["strong"]
            scale_own.check_variants(options.own, options.variants)
            options.ceiling = False  # the tutorial's spinners count iterations, not your units
        return options

    # --- before the plan ---------------------------------------------------------------------

    def on_resume(self, backend, meta, run):
        scale_own.reshare(backend, meta, run)  # the user's folder, if the run measured its code

    def prepare(self, options, backend, cpus, images, say, dry_run=False):
        """The work of every trial: given, the tutorial's, or calibrated by one pinned trial so
        one worker's trial takes about target_seconds. Returns {"calibration": {...}}."""
        if options.own is not None:
            return scale_own.prepare(options.own, options, backend, cpus, images, say, dry_run)
        skipped = _interpreter_images(options.variants, backend, images, dry_run, say)  # first
        work = options.work
        calibration = {"mode": work if isinstance(work, str) else "given"}
        if work == "seed":
            work = SEED_WORK
        elif work == "auto" and dry_run:  # estimated as if the tutorial's work took the target
            say(f"work: calibrated at the start of the run so one worker's trial takes about "
                f"{options.target_seconds:g} s")
            work = SEED_WORK
            calibration["target_seconds"] = options.target_seconds
        elif work == "auto":
            say(f"calibrating: one {CALIBRATION_SECONDS:g} s trial pinned to one CPU measures "
                f"iterations per second ...")
            rate = self._calibrate(options, backend, cpus, images)
            # One worker's trial takes about target_seconds, and the fastest point (strong, at
            # the most CPUs) still gets a timed section of min_seconds.
            most = max(parse.cpu_counts(options.shared.cpus, len(cpus)) or [1])
            seconds = max(options.target_seconds, options.shared.min_seconds * most * 1.2)
            work = max(1000, int(rate * seconds))
            say(f"calibrated: {rate:,.0f} iterations/s on one CPU -> work {work:,} iterations "
                f"(about {seconds:g} s for one worker"
                f"{f', {seconds / most:.2f} s at {most} CPUs' if most > 1 else ''})")
            calibration.update(iterations_per_second=rate, target_seconds=options.target_seconds)
        calibration["work"] = work
        return {"calibration": calibration, **skipped}

    def _calibrate(self, options, backend, cpus, images):
        from lab.backends import RUN_LABEL
        cpuset = topology.cpuset_for(1, cpus, options.shared.placement)
        spec = {"experiment": self.experiment, "variant": "calibrate",
                "params": {"calibrate_seconds": CALIBRATION_SECONDS}, "workers": 1,
                "start_method": parse.trial_start_method(options.shared.start_method),
                "expect_affinity": cpuset}
        outcome = backend.run(spec, cpuset, None, 120, {RUN_LABEL: "calibration"}, images[0])
        if outcome.error:
            tail = outcome.stderr_tail.strip().splitlines()[-1:] or [""]
            raise BadInput(f"calibration trial failed: {outcome.error} {tail[0]}".strip()
                           + "; give --work a number of iterations to skip calibration")
        return outcome.result["metrics"]["iterations_per_second"]["value"]

    # --- points ------------------------------------------------------------------------------

    def points(self, options, cpus, images, prepared):
        shared = options.shared
        counts = parse.cpu_counts(shared.cpus, len(cpus))
        quotas = parse.quotas(shared.quota, len(cpus))
        work = self._work(options, prepared)
        own = options.own
        experiment = own.experiment if own else self.experiment
        own_params = own.params() if own else {}
        points = []
        skipped, left_out = prepared.get("interpreters_skipped") or {}, {}

        def add(variant, count, workers, image, quota=None):
            cpuset = (topology.cpuset_for(count, cpus, shared.placement) if quota is None
                      else [c.id for c in cpus])
            point = make_point(
                experiment=experiment, variant=variant,
                limit="quota" if quota else "cpuset",
                cpus=count if quota is None else len(cpus), cpuset=cpuset, quota=quota,
                placement=shared.placement, workers=workers, start_method=shared.start_method,
                params={"work": work, **own_params}, image=image)
            if point not in points:
                points.append(point)

        def add_ceiling(count, image, iterations):
            point = make_point(
                experiment=self.experiment, variant="ceiling", limit="cpuset", cpus=count,
                cpuset=topology.cpuset_for(count, cpus, shared.placement), quota=None,
                placement=shared.placement, workers=count, start_method=shared.start_method,
                params={"work": iterations}, image=image)
            if point not in points:
                points.append(point)

        # a spinner's trial: strong's shortest (a command without {work} has no ceiling)
        ceiling_work = max(1000, (work or 0) // max(counts or [1]))
        for image in images:
            for variant in options.variants:
                if variant == "ceiling":
                    continue
                if variant == "interpreters" and image in skipped:  # its Python predates them
                    left_out[f"interpreters on {image} (Python {skipped[image]}): "
                             f"InterpreterPoolExecutor needs Python 3.14 or later"] = 1
                    continue
                add(variant, 1, 1, image)
                for count in counts:
                    for workers in options.workers:
                        add(variant, count, count if workers == "cpus" else
                            None if workers == "default" else workers, image)
                for quota in quotas:
                    # Pool()'s own size beside the effective CPUs: the comparison a quota is about.
                    for workers in dict.fromkeys(["cpus", "default", *options.workers]):
                        add(variant, len(cpus), math.ceil(quota) if workers == "cpus" else
                            None if workers == "default" else workers, image, quota=quota)
            from lab.analysis.scaling import STRONG_VARIANTS
            if any(v in STRONG_VARIANTS for v in options.variants) and experiment != "command":
                add("serial", 1, 1, image)
            # The ceiling: one spinner per CPU, each pinned; only where some count exceeds 1
            # (at 1 CPU it is 1 by definition).
            if "ceiling" in options.variants or (options.ceiling and max(counts or [1]) > 1):
                for count in dict.fromkeys([1, *counts]):
                    add_ceiling(count, image, ceiling_work)
        return points, left_out

    @staticmethod
    def _work(options, prepared):
        """Iterations per trial: the run's calibrated or given work (a resumed run's own)."""
        calibration = prepared.get("calibration") or {}
        if options.own is not None and not options.own.uses_work():
            return None  # a command without {work}
        if options.work == "seed":
            return SEED_WORK
        if options.work == "auto":
            if calibration.get("mode") != "auto":
                raise BadInput(f"the plan differs from the run's: --work auto, the run's work "
                               f"was {calibration.get('work')} iterations")
            return calibration["work"]
        return options.work

    def estimate(self, point, prepared):
        own = scale_own.estimate(point, prepared)
        if own is not None:
            return own
        calibration = prepared.get("calibration") or {}
        rate = calibration.get("iterations_per_second") or NOMINAL_ITERATIONS_PER_SECOND
        if calibration.get("mode") == "auto" and "iterations_per_second" not in calibration:
            rate = SEED_WORK / float(calibration.get("target_seconds") or 2.0)  # a dry run
        work_seconds = point.params_dict["work"] / rate
        if point.variant == "ceiling":  # one spinner's work on each CPU, side by side
            return work_seconds * 1.03
        workers = point.workers or point.cpus
        if point.variant == "weak":
            work_seconds *= workers
        width = 1 if point.variant == "threads" else min(workers, point.quota or point.cpus)
        return work_seconds * 1.03 / max(width, 0.01)

    def python_needed(self, point):
        return ((3, 14), "InterpreterPoolExecutor") if point.variant == "interpreters" else None

    def point_label(self, point):
        workers = "Pool() default" if point.workers is None else point.workers
        return f"{point.experiment} {point.variant}, {point.where()}, workers {workers}"

    # --- analysis and report -----------------------------------------------------------------

    def summarize(self, trials):
        from lab.analysis.scaling import scaling_summary
        return scaling_summary(self._measured(trials))

    def section(self, trials, summary, out, meta, say):
        from lab.present.scaling_report import scaling_section
        return scaling_section(self._measured(trials), summary, out, meta, say)

    def warnings(self, trials, summary):
        from lab.analysis.scaling import off_cpu
        from lab.analysis.ceiling import ceiling_warnings
        scaling = self._measured(trials)
        found = off_cpu(scaling, self.row_label)
        return ([found] if found else []) + ceiling_warnings(summary)

    def _measured(self, trials):
        """The run's trials of the tutorial's task, or of the user's program or function
        (scale_own), under one experiment name: the analysis and charts are the same."""
        mine = trials[trials["experiment"].isin([self.experiment, *scale_own.EXPERIMENTS])]
        return mine.assign(experiment=self.experiment)

    def facts(self, meta):
        calibration = meta.get("calibration")
        if not calibration:
            return scale_own.facts(meta)
        return scale_own.facts(meta) + [("work", ", ".join(f"{k.replace('_', ' ')} "
                                                           f"{_readable(v)}"
                                                           for k, v in calibration.items()))]

    def row_label(self, row, varying=()):
        """A point in words; the work is left out: it is one per run, the ceiling's spinners
        each running a share of it (naming it would tell the ceiling apart, which its variant
        already does)."""
        return super().row_label(row, [c for c in varying if c != "param.work"])

    # Two runs calibrate different work (a laptop, a cloud VM, or two runs minutes apart): they
    # are matched without it and compared on time per unit of work, which does not depend on it.
    compare_ignores = ("param.work",)

    def compare_trials(self, trials):
        trials = trials.copy()
        work = trials["param.work"].astype(float) if "param.work" in trials else float("nan")
        trials["seconds_per_million_iterations"] = trials["seconds"] / work * 1e6
        return trials

    def compare_measure(self, trials):
        return "seconds_per_million_iterations", "s per 10^6 iterations", "lower"

    def compare_charts(self, table, run_a, run_b, labels, out):
        if not (table["experiment"] == self.experiment).any():
            return []
        from lab.present.scaling_charts import compare_speedup_chart
        return compare_speedup_chart(self.summarize(run_a.trials), self.summarize(run_b.trials),
                                     labels[0], labels[1], out)


def _readable(value):
    """A calibration value as a reader wants it: 10.0M, not 10004497.744717646."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if abs(value) >= 1e6:
        return f"{value / 1e6:.4g}M"
    return f"{value:.4g}" if isinstance(value, float) else f"{value:,}"


def _interpreter_images(variants, backend, images, dry_run, say):
    """{"interpreters_skipped": {image: its Python}} for the images whose Python predates
    InterpreterPoolExecutor (3.14); when every image does, `--variants interpreters` is refused
    in one line naming the Python (the images are built, but no trial has run). A dry run knows
    an image's Python only where it is already built (its label, no container): it refuses or
    leaves out the same way, and says which images are checked once they are built."""
    if "interpreters" not in variants:
        return {}
    if dry_run:
        known = {name: backend.known_python(name) for name in images}
        unknown = [name for name, python in known.items() if python is None]
        if unknown:
            say(f"interpreters: the Python of {', '.join(unknown)} is not known before its "
                f"image is built; interpreters are checked (3.14 or later) once it is")
        pythons = {name: python for name, python in known.items() if python is not None}
    else:
        pythons = {name: str(backend.image_info(name).get("python") or "?") for name in images}
    old = {name: python for name, python in pythons.items() if _release(python) < (3, 14)}
    if old and len(old) == len(images):
        name, python = next(iter(old.items()))
        raise BadInput(f"--variants interpreters: InterpreterPoolExecutor needs Python 3.14 or "
                       f"later, and {name} has Python {python}; allowed: a Python 3.14 or "
                       f"later (in containers: --base-image multicore-lab-base:sid) or the "
                       f"other variants")
    return {"interpreters_skipped": old} if old else {}


def _release(python):
    """'3.13.5' -> (3, 13); what cannot be read sorts first (treated as too old)."""
    try:
        return tuple(int(part) for part in python.rstrip("t").split(".")[:2])
    except ValueError:
        return (0, 0)
