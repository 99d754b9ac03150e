"""`invoke lessons`, host side: the rest of the tutorial, one lesson per trial variant.

Flags -> LessonsOptions -> points: every lesson (lab/experiments/lessons.py) x its items x CPU
count x start method x image. The item is what a lesson sweeps: the start method (start_cost),
the runner with its task size and chunksize (pool_vs_process), the state (shared_state), the
primitive (sync), the case (lifecycle), the runner (threads_vs_processes), the queue kind
(queue_in_process), the crossing (interpreter_boundary). Items that need concurrent.interpreters
(the interpreters runner, interpreter_boundary) are left out, with a note, on an image whose
Python is older than 3.14. Counts are written into each point's params (the trial's own defaults,
sized so a timed section lasts about 0.2 s, times `--size`), so the plan says exactly what ran.

start_cost sweeps `--start-methods`; every other lesson runs under the shared `--start-method`
(invoke.yaml: `default`, each Python's own, recorded by the trial as what it resolved to). The
analysis is lab.analysis.lessons, the report section lab.present.lessons_report.
"""

import math
import re
from dataclasses import dataclass

from lab.experiments import lessons as trial
from lab.experiments import offered
from lab.families import Family, FamilyOptions
from lab.hosts import topology
from lab.run import options as parse
from lab.run.options import BadInput
from lab.run.plan import make_point

LESSONS = trial.USER_VARIANTS
ITEMS = {  # lesson -> (its item's param, the items a user may pick)
    "pool_vs_process": ("runner", trial.RUNNERS["pool_vs_process"]),
    "shared_state": ("state", trial.STATES),
    "sync": ("primitive", trial.PRIMITIVES),
    "lifecycle": ("case", trial.CASES),
    "threads_vs_processes": ("runner", trial.RUNNERS["threads_vs_processes"]),
    "queue_in_process": ("queue_kind", trial.QUEUE_KINDS),
    "interpreter_boundary": ("crossing", trial.CROSSINGS),
}
NEWER_PYTHON = (3, 14)  # concurrent.interpreters: interpreter_boundary, the interpreters runner
INTERPRETER_START_S = 0.05  # an interpreter's create+call+close here, for estimates
INTERPRETER_STARTS = 10     # interpreters a start_cost trial starts (3.14+), times --size
TARGET_S = 0.25              # what a timed section aims at (>= ~0.2 s: long enough to trust)
ITERATIONS_PER_S = 5e6       # the tutorial's loop on one CPU here (README: 5.3 M/s), for sizing
POOL_TASK_OVERHEAD_S = 40e-6  # a pool's cost per task beyond its work, for sizing
START_S = {"fork": 0.0025, "forkserver": 0.025, "spawn": 0.065}  # start()+join(), for sizing
POOL_FIRST_S = {"fork": 0.03, "forkserver": 0.08, "spawn": 0.1}   # a fresh Pool(1)'s first result
START_REPEATS = {m: max(5, min(100, math.ceil(TARGET_S / s))) for m, s in START_S.items()}
START_POOLS = {"fork": 10, "forkserver": 5, "spawn": 5}
SEED_ITERATIONS = trial.PARAMS["seed_iterations"]
TERMINATE_REPEATS = 400
# Rough seconds of one trial's work by item (untimed set-up included), for estimates only.
NOMINAL_S = {"shared_state": 0.6, "sync": 0.5, "terminate": 0.6, "daemon": 0.3,
             "daemon_parent_killed": 0.8, "kill_mid_put": 2.4, "threads_vs_processes": 0.9,
             "queue_in_process": 0.3, "interpreter_boundary": 0.6}
OWN_FLAGS = ("lessons", "start_methods", "runners", "task_sizes", "chunksizes", "states",
             "primitives", "cases", "size")


@dataclass
class LessonsOptions(FamilyOptions):
    lessons: list
    start_methods: list     # what start_cost sweeps
    runners: list           # pool_vs_process runners
    task_sizes: list        # loops per task of the pool break-even
    chunksizes: list        # whole numbers or 'auto'
    states: list
    primitives: list
    cases: list
    size: object            # a fraction of each lesson's default counts, or "auto": sized
                            # from each point's warm-up to --min-seconds



def lessons_allowed():
    """The lessons a user may name. The trial's test doubles (a lock that does not lock ...) are
    for the tests alone: never listed, accepted only under LAB_TEST_DOUBLES=1."""
    return offered(LESSONS, trial.TEST_DOUBLES)


def _chunksizes(text):
    values = []
    for item in parse.list_items("--chunksizes", text):
        if item == "auto":
            values.append(item)
        else:
            values.append(parse.positive_int("--chunksizes", item,
                                             "whole numbers of at least 1, or auto"))
    return list(dict.fromkeys(values))


def _size(value):
    text = str(value).strip()
    if text == "auto":
        return "auto"
    try:
        size = float(text) if re.fullmatch(r"[0-9.eE+-]+", text) else math.nan
    except ValueError:
        size = math.nan
    if not 0.001 <= size <= 100:  # also catches NaN
        raise BadInput(f"--size {value!r}: not allowed; allowed: auto, or a fraction of the "
                       f"default counts from 0.001 to 100 (1 = timed sections of about 0.2 s)")
    return size


def _items(flag, text, allowed):
    if str(text).strip() == "all":
        return list(allowed)
    return parse.choices(flag, text, allowed)


SIZING_MARGIN = 1.5  # auto counts aim at 1.5 x --min-seconds, so noise rarely takes one under
SIZING_MAX_FACTOR = 100  # an auto count stays within 100x the default (a broken warm-up)


def count_key(lesson, params):
    """The param that sets how long a point's timed section lasts (None: a single operation,
    the tutorial's fixed task, or a test double at the real trials' counts)."""
    if lesson in trial.TEST_DOUBLES:
        return None
    if lesson == "pool_vs_process":
        return "tasks" if params.get("runner") in ("pool", "process_per_task") else None
    if lesson == "lifecycle":
        return "repeats" if params.get("case") == "terminate" else None
    return {"start_cost": "repeats", "shared_state": "increments", "sync": "ops",
            "threads_vs_processes": "iterations", "queue_in_process": "messages",
            "interpreter_boundary": "objects"}.get(lesson)


def scaled(count, size):
    """A default count times --size, at least 1."""
    return max(1, round(count * size))


class LessonsFamily(Family):
    name = "lessons"
    experiment = trial.NAME
    title = "The rest of the tutorial: lessons measured"
    anchor = "lessons"
    flags = {
        "lessons": "all, or some of: " + ", ".join(LESSONS),
        "start_methods": "start methods the start_cost lesson sweeps: fork, spawn, forkserver, "
                         "default (the other lessons run under --start-method)",
        "runners": "pool_vs_process runners: all, or some of: "
                   + ", ".join(trial.RUNNERS["pool_vs_process"]),
        "task_sizes": "loops of the tutorial's task per short task (pool break-even), "
                      "e.g. 1000,10000,100000",
        "chunksizes": "chunksizes of the reused pool, e.g. 1,16,auto",
        "states": "shared_state items: all, or some of: " + ", ".join(trial.STATES),
        "primitives": "sync items: all, or some of: " + ", ".join(trial.PRIMITIVES),
        "cases": "lifecycle items: all, or some of: " + ", ".join(trial.CASES),
        "size": "auto (each point's count sized from its warm-up so its timed section lasts "
                "--min-seconds), or a fraction of every lesson's default counts (1: timed "
                "sections of about 0.2 s; 0.05: a quick look)",
    }
    plan_flags = OWN_FLAGS
    lengthen_flag = "--size"

    def parse(self, flags, defaults, shared):
        v = parse.chosen(flags, defaults, OWN_FLAGS)
        lessons = (list(LESSONS) if str(v["lessons"]).strip() == "all"
                   else parse.choices("--lessons", v["lessons"], lessons_allowed()))
        return LessonsOptions(
            shared=shared, lessons=lessons,
            start_methods=parse.choices("--start-methods", v["start_methods"],
                                        parse.START_METHODS),
            runners=_items("--runners", v["runners"], trial.RUNNERS["pool_vs_process"]),
            task_sizes=parse.positive_ints("--task-sizes", v["task_sizes"],
                                           "whole numbers of loops, at least 1, e.g. 1000,10000"),
            chunksizes=_chunksizes(v["chunksizes"]),
            states=_items("--states", v["states"], trial.STATES),
            primitives=_items("--primitives", v["primitives"], trial.PRIMITIVES),
            cases=_items("--cases", v["cases"], trial.CASES),
            size=_size(v["size"]))

    # --- before the plan ---------------------------------------------------------------------

    def prepare(self, options, backend, cpus, images, say, dry_run=False):
        """Which start method `default` will be on each image (Python 3.14 made it forkserver
        on Linux): counts are sized by it. The trials record what it really resolved to."""
        methods, pythons = {}, {}
        for image in images:  # a dry run knows the Python of an image already built (its label)
            python = (backend.known_python(image) if dry_run
                      else (backend.image_info(image) or {}).get("python"))
            methods[image] = default_start_method(python)
            pythons[image] = python
        unknown = [image for image, python in pythons.items() if python is None]
        if dry_run and unknown and any(_too_old(lesson, params, "0")
                                       for lesson in options.lessons
                                       for _, _, params in self._items(lesson, options, 1)):
            say(f"concurrent.interpreters items: the Python of {', '.join(unknown)} is not "
                f"known before its image is built; checked once it is")
        return {"default_start_methods": methods, "image_pythons": pythons}

    def python_needed(self, point):
        needs = _too_old(point.variant, point.params_dict, "0")  # needs any newer Python at all
        return (NEWER_PYTHON, "concurrent.interpreters") if needs else None

    # --- points ------------------------------------------------------------------------------

    def points(self, options, cpus, images, prepared):
        shared = options.shared
        counts = parse.cpu_counts(shared.cpus, len(cpus))
        defaults = prepared.get("default_start_methods") or {}
        pythons = prepared.get("image_pythons") or {}
        points, notes = [], {}
        for image in images:
            for count in counts:
                cpuset = topology.cpuset_for(count, cpus, shared.placement)
                for lesson in options.lessons:
                    for method, workers, params in self._items(lesson, options, count):
                        if _too_old(lesson, params, pythons.get(image)):
                            item = params.get(ITEMS.get(lesson, ("",))[0], "")
                            note = (f"{lesson} {item}".strip() + " needs Python 3.14 or later "
                                    f"(concurrent.interpreters): "
                                    f"not on this Python, left out on {image} (Python "
                                    f"{pythons[image]})")
                            notes[note] = notes.get(note, 0) + 1
                            continue
                        method = method or shared.start_method
                        resolved = defaults.get(image) if method == "default" else method
                        auto = options.size == "auto"
                        params = _sized(lesson, params, resolved or "fork", workers or count,
                                        1 if auto else options.size)
                        if auto and count_key(lesson, params):
                            params.update(sizing="auto", min_seconds=shared.min_seconds)
                        point = make_point(
                            experiment=self.experiment, variant=lesson, limit="cpuset",
                            cpus=count, cpuset=cpuset, quota=None, placement=shared.placement,
                            workers=workers, start_method=method, params=params, image=image)
                        if point not in points:
                            points.append(point)
        if not points:
            raise BadInput(f"nothing to run: {'; '.join(notes) or 'no lesson item left'}")
        return points, notes

    @staticmethod
    def _items(lesson, options, count):
        """(start method or None for --start-method, workers or None, params) of each item."""
        family = trial.DOUBLE_OF.get(lesson, lesson)
        if lesson in trial.TEST_DOUBLES:
            yield None, (max(2, count) if family == "shared_state" else max(4, count)), {}
        elif lesson == "start_cost":
            for method in options.start_methods:
                yield method, None, {}
        elif lesson == "pool_vs_process":
            for runner in options.runners:
                if runner == "pool":
                    for size in options.task_sizes:
                        for chunksize in options.chunksizes:
                            yield None, count, {"runner": runner, "task_iterations": size,
                                                "chunksize": chunksize}
                elif runner == "process_per_task":
                    for size in options.task_sizes:
                        yield None, count, {"runner": runner, "task_iterations": size}
                else:  # the tutorial's reconstructions: their own process counts
                    yield None, None, {"runner": runner}
        elif lesson == "shared_state":
            for state in options.states:
                yield None, max(2, count), {"state": state}
        elif lesson == "sync":
            for primitive in options.primitives:
                yield None, max(4, count), {"primitive": primitive}
        elif lesson == "lifecycle":
            for case in options.cases:
                yield None, None, {"case": case}
        elif lesson == "threads_vs_processes":
            for runner in trial.RUNNERS["threads_vs_processes"]:
                yield None, (1 if runner == "serial" else count), {"runner": runner}
        elif lesson == "queue_in_process":
            for kind in trial.QUEUE_KINDS:
                yield None, None, {"queue_kind": kind}
        elif lesson == "interpreter_boundary":
            for crossing in trial.CROSSINGS:
                yield None, (count if crossing != "queue" else None), {"crossing": crossing}

    def trial_params(self, point, warmup):
        """Counts as given (--size a number); under --size auto the default count for the
        warm-up trial, then the count that makes the point's section last --min-seconds (aimed
        SIZING_MARGIN over, as ipc's auto counts) from what the warm-up measured."""
        params = point.params_dict
        if params.get("sizing") != "auto":
            return params
        base = {k: v for k, v in params.items() if k not in ("sizing", "min_seconds")}
        key = count_key(point.variant, params)
        if warmup is None or key is None:
            return base
        measured = warmup.get("seconds")
        if not warmup.get("ok") or not measured or measured <= 0:
            return None  # keep the first count
        ran = int((warmup.get("params") or {}).get(key) or base[key])
        wanted = math.ceil(ran * float(params["min_seconds"]) / measured * SIZING_MARGIN)
        cap = min(trial.LIMITS[key][1], base[key] * SIZING_MAX_FACTOR)
        return {**base, key: max(1, min(wanted, cap))}

    def estimate(self, point, prepared):
        p = point.params_dict
        method = point.start_method
        if method == "default":
            method = (prepared.get("default_start_methods") or {}).get(point.image) or "fork"
        start = START_S.get(method, 0.03)
        lesson = trial.DOUBLE_OF.get(point.variant, point.variant)
        workers = point.workers or point.cpus
        width = min(workers, point.cpus)
        if lesson == "start_cost":
            return (p["repeats"] * (start + 1e-4) + p["constructors"] * 3e-6
                    + p.get("interpreter_starts", 0) * INTERPRETER_START_S
                    + p["pools"] * POOL_FIRST_S.get(method, 0.1) + 0.1)
        if lesson == "pool_vs_process":
            runner = p["runner"]
            if runner in ("pool", "process_per_task"):
                task = p["task_iterations"] / ITERATIONS_PER_S
                extra = start if runner == "process_per_task" else POOL_TASK_OVERHEAD_S
                return workers * start + p["tasks"] * (task + extra) / width + 0.1
            tasks, procs = {"seed_one_process": (6, 1), "seed_two_processes": (2, 2)}.get(
                runner, (6, point.workers or trial.SEED_POOL_WORKERS))
            return (procs * start + tasks * p["seed_iterations"] / ITERATIONS_PER_S
                    / min(procs, point.cpus) + 0.1)
        if lesson == "threads_vs_processes":
            cpus = point.cpus if p["runner"] == "processes" else 1
            return p["iterations"] / ITERATIONS_PER_S / cpus + workers * start + 0.1
        key = p.get("case") if lesson == "lifecycle" else lesson
        return NOMINAL_S.get(key, 0.5) + workers * start

    def too_short_advice(self, row, min_seconds):
        lesson = trial.DOUBLE_OF.get(row["variant"], row["variant"])
        if lesson == "lifecycle" and row.get("param.case") != "terminate":
            return "a single operation: its figure is a fact with a cost, not lengthened"
        if row.get("param.sizing") == "auto":
            return ("sized from its warm-up, the measured trials ran faster than it: rerun, or "
                    "raise --min-seconds")
        if not row["median_s"] > 0:
            return super().too_short_advice(row, min_seconds)
        return f"multiply --size by at least {math.ceil(min_seconds / row['median_s'] * 10) / 10:g}"

    def point_label(self, point):
        return f"{item_words(point.variant, point.params_dict, point.start_method)}, " \
               f"{point.where()}"

    # --- analysis and report -----------------------------------------------------------------

    def summarize(self, trials):
        from lab.analysis.lessons import summary
        return summary(trials[trials["experiment"] == self.experiment])

    def section(self, trials, summary, out, meta, say):
        from lab.present.lessons_report import lessons_section
        return lessons_section(trials[trials["experiment"] == self.experiment], summary, out,
                               meta, say)

    def facts(self, meta):
        methods = meta.get("default_start_methods") or {}
        if not methods:
            return []
        return [("start method `default`", "expected " + ", ".join(
            f"{m} on {i.rsplit('/', 1)[-1]}" for i, m in methods.items())
            + "; each trial records what it resolved to")]

    def row_label(self, row, varying=()):
        from lab.analysis.lessons import point_words
        return point_words(row)

    def compare_measure(self, trials):
        return "seconds", "s", "lower"


def default_start_method(python):
    """The start method Python `python` (x.y.z, or None: unknown) uses by default on Linux."""
    try:
        major, minor = (int(part) for part in str(python).split(".")[:2])
    except ValueError:
        return "fork"
    return "forkserver" if (major, minor) >= (3, 14) else "fork"


def item_words(lesson, params, start_method):
    """A point's lesson and item in words, for progress lines."""
    if lesson == "start_cost":
        return f"start_cost {start_method}"
    if lesson == "pool_vs_process" and params.get("runner") in ("pool", "process_per_task"):
        chunk = (f" chunksize {params['chunksize']}" if params.get("runner") == "pool" else "")
        return (f"pool_vs_process {params['runner']} {params.get('task_iterations')} loops"
                f"{chunk}, {start_method}")
    param = ITEMS.get(lesson, (None,))[0]
    item = f" {params.get(param)}" if param and params.get(param) is not None else ""
    return f"{lesson}{item}, {start_method}"


def _sized(lesson, params, method, workers, size):
    """The point's params with every count written out: the trial's defaults (sized for
    ~0.2 s timed sections) times `size`."""
    p = dict(params)
    family = trial.DOUBLE_OF.get(lesson, lesson)
    if lesson in trial.TEST_DOUBLES:  # the real trial's counts: caught where it runs
        if family == "sync":
            p["ops"] = scaled(trial.PRIMITIVE_OPS[trial.DOUBLE_PRIMITIVE[lesson]], size)
        elif family == "interpreter_boundary":
            p["objects"] = scaled(trial.CROSSING_OBJECTS, size)
        else:
            p["increments"] = scaled(trial.STATE_INCREMENTS["value_locked"], size)
    elif lesson == "start_cost":
        p.update(repeats=scaled(START_REPEATS.get(method, 20), size),
                 interpreter_starts=scaled(INTERPRETER_STARTS, size),
                 constructors=scaled(trial.PARAMS["constructors"], size),
                 pools=scaled(START_POOLS.get(method, 5), size))
    elif lesson == "pool_vs_process":
        runner = p["runner"]
        if runner == "pool":
            task = p["task_iterations"] / ITERATIONS_PER_S + POOL_TASK_OVERHEAD_S
            p["tasks"] = scaled(min(20_000, max(12, math.ceil(TARGET_S * workers / task))), size)
        elif runner == "process_per_task":
            task = p["task_iterations"] / ITERATIONS_PER_S + START_S.get(method, 0.03)
            p["tasks"] = scaled(min(2_000, max(6, math.ceil(TARGET_S * workers / task))), size)
        else:
            p["seed_iterations"] = scaled(SEED_ITERATIONS, size)
    elif lesson == "shared_state":
        p["increments"] = scaled(trial.STATE_INCREMENTS[p["state"]], size)
    elif lesson == "sync":
        p["ops"] = scaled(trial.PRIMITIVE_OPS[p["primitive"]], size)
    elif lesson == "lifecycle":
        if p["case"] == "terminate":  # ~0.6 ms each: 400 make a section of ~0.25 s
            p["repeats"] = scaled(TERMINATE_REPEATS, size)
    elif lesson == "threads_vs_processes":
        p["iterations"] = scaled(trial.PARAMS["iterations"], size)
    elif lesson == "queue_in_process":
        p["messages"] = scaled(trial.QUEUE_MESSAGES[p["queue_kind"]], size)
    elif lesson == "interpreter_boundary":
        p["objects"] = scaled(trial.CROSSING_OBJECTS, size)
    return p


def _too_old(lesson, params, python):
    """Whether an item needs concurrent.interpreters that Python `python` lacks (unknown: the
    trial decides)."""
    needs = (trial.DOUBLE_OF.get(lesson, lesson) == "interpreter_boundary"
             or (lesson == "threads_vs_processes" and params.get("runner") == "interpreters"))
    if not needs or python is None:
        return False
    try:
        return tuple(int(part) for part in str(python).split(".")[:2]) < NEWER_PYTHON
    except ValueError:
        return False
