"""Every task as a Python function, for scripts and notebooks (`import lab`: lab/__init__.py
hands these names out lazily, so the trial image never imports this module).

    run = lab.scale(cpus=[1, 2], repeat=3)   # the flags of `invoke scale`, underscores for dashes
    run.summary, run.trials                  # pandas DataFrames; run.charts: images; in Jupyter
    run                                      # shows its report inline
    lab.load("results/<run>"), lab.report(run), lab.compare(a, b), lab.ipc(...), lab.lessons(...)

A keyword is a task's flag: whatever flags lab.cli.tasks gives a task are accepted here, checked
by the same code as the command line (lab.commands), with the same defaults (invoke.yaml, then
INVOKE_* variables). A list is a comma-separated value ([1, 2] is "1,2"). What a user can cause
raises LabError carrying the command line's one line; run folders go to ./results (the caller's
working directory) unless results_dir says otherwise.
"""

import inspect

from lab.api_run import Comparison, Run
from lab.cli.formats import RunWatcher

FAMILY_TASKS = ("scale", "ipc", "lessons")


class LabError(Exception):
    """Bad input, or a run that could not go on: the message is the command line's one line
    ('error: ...'), `exit_status` its exit status (2: refused, nothing written)."""

    def __init__(self, line, exit_status=2):
        super().__init__(line)
        self.exit_status = exit_status

    def _render_traceback_(self):
        """IPython and Jupyter show this instead of a traceback: the one line is the story."""
        return [f"LabError: {self}"]


def task_flags(name):
    """The flags of task `name` as keyword names (its invoke task's parameters; not --format:
    a function hands back objects, not text)."""
    from lab.cli import tasks
    body = getattr(tasks, name).body
    return [p for p in inspect.signature(body).parameters if p not in ("c", "format")]


def config():
    """The tasks' configuration as plain dicts, as `invoke` and `multicore-lab` see it: the
    packaged invoke.yaml, then the user's ~/.invoke.yaml and INVOKE_* environment variables."""
    from invoke import Config

    from lab.cli.tasks import config_sections, namespace
    settings = Config()
    settings.load_collection(namespace.configuration())
    settings.load_shell_env()
    return config_sections(settings)


def _value(name, value):
    """A keyword's value as the command line would hand it over."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple, set, range)):
        return ",".join(str(item) for item in value)
    if isinstance(value, (Run, Comparison)):
        return str(value.path)
    return str(value)


def _flags(task, given):
    allowed = task_flags(task)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise LabError(f"error: lab.{task}() has no flag {', '.join(unknown)}; its flags: "
                       f"{', '.join(allowed)}")
    flags = {name: None for name in allowed}
    flags.update({name: _value(name, value) for name, value in given.items()})
    flags["dry_run"] = bool(flags.get("dry_run"))
    return flags


def _call(function, *args, **kwargs):
    """Run a lab command as the command line does, a user's mistake raised as one LabError."""
    from lab.commands import guarded, refusal
    try:
        with guarded():
            return function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 (refusal() says which are the user's)
        known = refusal(error)
        if known is None:
            raise
        raise LabError(known[1], known[0]) from None


def _results_dir(results_dir):
    return str(results_dir) if results_dir else config()["lab"]["results_dir"]


def run_task(task, **flags):
    """`invoke TASK --flags`: a new run (or --resume, --plan) of a family; returns its Run,
    or for dry_run=True the plan (printed, and returned as --format json gives it: a dict)."""
    from lab import commands
    flags = _flags(task, flags)
    settings = config()
    results_dir = flags.get("results_dir") or settings["lab"]["results_dir"]
    watcher = RunWatcher(results_dir, flags.get("resume"))
    status = _call(commands.run_family, task, flags, settings, watcher)
    folder = _call(watcher.folder)
    return watcher.plan if folder is None else Run(folder, status)


def scale(**flags):
    """`invoke scale`: speedup curves from 1 to N CPUs; e.g. lab.scale(cpus=[1, 2], repeat=3)."""
    return run_task("scale", **flags)


def ipc(**flags):
    """`invoke ipc`: Pipe, Queue and the other channels, per CPU count and placement."""
    return run_task("ipc", **flags)


def lessons(**flags):
    """`invoke lessons`: the tutorial's other claims, each held or not."""
    return run_task("lessons", **flags)


def load(run, results_dir=None):
    """A run already made: a run folder's path, a run id under results_dir, or 'latest'."""
    from lab.run.folder import resolve
    return Run(_call(resolve, _results_dir(results_dir), _value("run", run)).path)


def report(run, results_dir=None):
    """`invoke report RUN`: summary, charts and report redrawn from raw.jsonl; returns the Run."""
    from lab import commands
    loaded = load(run, results_dir)
    _call(commands.report, str(loaded.path.parent), str(loaded.path))
    return loaded


def compare(run_a, run_b, results_dir=None, host_a=None, host_b=None, node_a=None, node_b=None):
    """`invoke compare A B`: point by point, B / A; returns the Comparison (its `points`)."""
    from lab import commands
    folder = _call(commands.compare, _results_dir(results_dir), _value("run_a", run_a),
                   _value("run_b", run_b), host_a=host_a, host_b=host_b, node_a=node_a,
                   node_b=node_b)
    return Comparison(folder)


def build(suite=None, base_image=None, rebuild=False):
    """`invoke build`: the trial image (and its offline base when missing)."""
    from lab import commands
    base = base_image or (f"multicore-lab-base:{suite}" if suite else config()["lab"]["base_image"])
    return _call(commands.build, base, rebuild)


def info():
    """`invoke info`: engine, CPUs, topology, cgroup, images, backend choice (printed)."""
    from lab import commands
    _call(commands.info, config()["lab"])

