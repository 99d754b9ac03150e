"""Experiment families, host side: everything a family is, behind one interface.

A family (ARCHITECTURE.md) is a kind of experiment with its own task: `scale`, `ipc`,
`lessons`. Its host side is
one `Family` subclass in this folder, registered in FAMILIES; its trial side is one module in
lab/experiments (standard library only). The run machinery (lab.run), report assembly and
compare (lab.present) call these methods and never name a family.

Adding a family: lab/experiments/<name>.py (run_trial), named in lab.experiments.EXPERIMENTS;
lab/families/<name>.py (a Family subclass), named in FAMILIES below; one task function in
tasks.py handing its flags to `lab.commands.run_family`; its defaults in invoke.yaml.
"""

import importlib
import math
from dataclasses import asdict, dataclass

from lab.run.options import BadInput, SharedOptions

# task name -> "module:Class"; imported when used, so `invoke info` loads no family.
FAMILIES = {
    "scale": "lab.families.scale:ScaleFamily",
    "ipc": "lab.families.ipc:IpcFamily",
    "lessons": "lab.families.lessons:LessonsFamily",
}


@dataclass
class FamilyOptions:
    """A family's typed options: the shared ones, then its own (a dataclass subclass adds them)."""
    shared: SharedOptions

    def record(self):
        """What meta.json keeps (`options`): the family's own and the shared ones, flat."""
        data = asdict(self)
        data.update(data.pop("shared"))
        return data


class Family:
    """The host side of one experiment family. Subclasses set the attributes and override the
    methods that say `raise NotImplementedError`; the others have sensible defaults.

    name           the task (`invoke NAME`), the run id's middle part, meta.json's `task`
    experiment     the trial-side module in lab/experiments that runs its trials
    also_experiments  other trial modules its runs may hold (found by them without meta.json)
    title, anchor  the report section's heading and HTML anchor
    flags          {flag: help} of its own flags (beside the shared ones), as tasks.py takes them
    plan_flags     which of its flags shape the plan (--resume compares them, --plan refuses)
    uses_quota     whether it offers --quota points
    lengthen_flag  the flag that lengthens a trial (named by the spread warnings)
    show_workers   whether a point's worker count belongs in its label
    """
    name = ""
    experiment = ""
    also_experiments = ()
    title = ""
    anchor = ""
    flags = {}
    plan_flags = ()
    uses_quota = False
    lengthen_flag = "--work"
    show_workers = False

    # --- flags -> options -> points ----------------------------------------------------------

    def parse(self, flags, defaults, shared):
        """The family's typed options from its `flags` (None: not given) and `defaults` (its
        invoke.yaml section), or BadInput in one line."""
        raise NotImplementedError

    def prepare(self, options, backend, cpus, images, say, dry_run=False):
        """What the run needs measured before its plan (e.g. a calibration trial); returns what
        meta.json keeps of it (a dict merged into meta), from which `points` and `estimate`
        read. A dry run measures nothing and returns nominal values."""
        return {}

    def on_resume(self, backend, meta, run):
        """--resume, once the backend uses the run's recorded images: give the backend again what
        the run's `prepare` gave it (e.g. scale's project folder), from the run's meta.json, or
        BadInput in one line when that is no longer what the run measured."""

    def points(self, options, cpus, images, prepared):
        """(points, notes): the points of the matrix on these CPUs and images; notes maps a
        one-line reason for combinations left out to how many were. BadInput when nothing is
        left to run."""
        raise NotImplementedError

    def estimate(self, point, prepared):
        """Rough seconds of one trial's work (the backend adds its overhead)."""
        raise NotImplementedError

    def python_needed(self, point):
        """((major, minor), what) when `point` needs a Python at least that new (e.g. ((3, 14),
        "concurrent.interpreters")), else None: a recorded plan (--plan) is refused in one line
        on an image whose Python is older, as a new run refuses the flags that ask for it."""
        return None

    def trial_params(self, point, warmup):
        """The params a trial of `point` runs with (the spec's, and the record's). `warmup` is
        None before anything was measured, else the record of the point's warm-up trial: a
        family that sizes its trials to --min-seconds (ipc's --messages auto) returns the params
        that make a measured trial's section last about that long (lab.run.sizing keeps them);
        None keeps the first choice. By default a point's params are what its trials run."""
        return point.params_dict

    # The parameter that sets how much a trial does, its flag and unit: the too-short advice
    # computes from it the least value that would last min_seconds (None: say the flag only).
    size_param = None         # e.g. ("work", "--work", "iterations")

    def too_short_advice(self, row, min_seconds):
        """What to do about a point whose median timed section is under min_seconds."""
        if self.size_param is None:
            return f"lengthen its trials ({self.lengthen_flag})"
        name, flag, unit = self.size_param
        given = row.get(f"param.{name}")
        if given is None or not row["median_s"] > 0:
            return f"lengthen its trials ({self.lengthen_flag})"
        at_least = math.ceil(float(given) * min_seconds / row["median_s"])
        return f"use {flag} auto or {unit} of at least {at_least:,}"

    def point_label(self, point):
        """What a person reads in the progress line: the point's variant and what varies."""
        workers = "Pool() default" if point.workers is None else point.workers
        return f"{point.variant}, {point.where()}, workers {workers}"

    # --- analysis and report -----------------------------------------------------------------

    def summarize(self, trials):
        """summary.csv: one row per point (analysis.trials.point_stats and the family's own)."""
        from lab.analysis.trials import point_stats
        return point_stats(trials)

    def section(self, trials, summary, out, meta, say):
        """The report section (present.report.Section): tables, charts (written into `out`),
        notes; what it prints goes through `say`."""
        raise NotImplementedError

    def warnings(self, trials, summary):
        """Warnings about this family's own numbers, beyond those every family gets
        (analysis.warnings.data_warnings): a list of analysis.warnings.warning dicts."""
        return []

    def facts(self, meta):
        """(name, value) lines the report's facts table adds for this family."""
        return []

    def row_label(self, row, varying=()):
        """A summary row in words (warnings, compare)."""
        from lab.analysis.warnings import point_label
        return point_label(row, varying, show_workers=self.show_workers)

    # Parameters `invoke compare` does not match points on, because its measure does not depend
    # on them (scale: the work, calibrated per machine; its measure is time per unit of work).
    compare_ignores = ()

    def compare_trials(self, trials):
        """The trials as compare matches and measures them: the column compare_measure names
        added where it is derived, parameters a run chose for itself made equal."""
        return trials

    def compare_measure(self, trials):
        """(column, unit, better) `invoke compare` compares for this family's points."""
        return "seconds", "s", "lower"

    def compare_charts(self, table, run_a, run_b, labels, out):
        """Charts of a comparison beyond the generic ratio chart; returns their paths."""
        return []


def register(name, family):
    """Make `family` (a Family subclass, or "module:Class") the family of task `name`; what
    FAMILIES lists is registered at import, a plug-in or a test registers its own."""
    FAMILIES[name] = family


def get(name):
    """The registered family called `name` (an instance), or BadInput naming the known ones."""
    if name not in FAMILIES:
        raise BadInput(f"unknown task {name!r}; known: {', '.join(FAMILIES)}")
    family = FAMILIES[name]
    if isinstance(family, str):
        module, _, cls = family.partition(":")
        family = getattr(importlib.import_module(module), cls)
    return family()


def for_experiment(experiment):
    """The family whose trials run `experiment` (runs without a meta.json)."""
    for name in FAMILIES:
        family = get(name)
        if experiment in (family.experiment, *family.also_experiments):
            return family
    return None
