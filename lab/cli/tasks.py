"""The lab's tasks and their flags: `invoke --list` in a checkout (tasks.py re-exports
`namespace`) and the installed `multicore-lab` command (lab.cli.program) show the same ones.

Thin on purpose: one function per family hands its flags (None where not given) to the family
through lab.commands, which does the work; invoke.yaml (packaged as lab/package_data/invoke.yaml,
the collection's own configuration, so an installed program has it too), a user's invoke.yaml and
INVOKE_* environment variables hold the defaults. `--format json` prints the run's summary as JSON
on stdout and everything else on stderr (lab.cli.formats).
"""

import functools
import os
import sys

from invoke import Collection, Exit, task as invoke_task

from lab.cli import formats

# Long flags only: invoke's automatic short flags run out of letters on these tasks and would
# offer a bare `-` (shown as `--=STRING`); a flag a user types reads the same in the README.
task = functools.partial(invoke_task, auto_shortflags=False)

SHARED_HELP = {
    "cpus": "CPU counts, e.g. 1,2,4 or 'all' (1,2,4 ... up to this host); each point gets a cpuset",
    "quota": "CFS quotas in CPUs (Docker --cpus), e.g. 0.5,1.5: points limited by quota",
    "placement": "spread (one CPU per physical core first) or compact (SMT siblings together)",
    "repeat": "measured rounds per point (a warm-up round runs first: kept, marked, left out of "
              "the statistics)",
    "start_method": "multiprocessing start method: fork, spawn, forkserver, or default (the "
                    "Python's own; each trial records what it resolved to)",
    "backend": "auto (Docker when an engine answers, else local), docker, local, or slurm (each "
               "trial a job step of exactly its cores; never chosen by auto)",
    "partition": "slurm: the partition trials run in (default: the cluster's default partition)",
    "python": "slurm: the Python on the nodes that runs the trials (default python3)",
    "per_node": "slurm: trials that may share a node at once (default 1: no neighbours)",
    "max_nodes": "slurm: nodes the run holds at once (default auto: the partition's idle nodes)",
    "hosts": "where trials run, side by side: local, ssh://user@host[:port], Docker context "
             "names, comma-separated, or @FILE (one a line); default local",
    "base_image": "base(s) of the trial image, comma-separated (points run on each); "
                  "multicore-lab-base:<suite> is built offline",
    "image": "a ready trial image to use as it is (no build)",
    "seed": "seed of the shuffle within rounds (default: random, recorded)",
    "min_seconds": "the shortest timed section a figure may rest on (default 0.2 s): counts and "
                   "work are sized so each trial's section lasts at least this",
    "dry_run": "print the plan and its estimated duration; run nothing",
    "results_dir": "where run folders go (default results/)",
    "plan": "rerun the matrix of a run's plan.json (e.g. results/<run>/plan.json) here: same "
            "points, seed and repeat, in a new run folder",
    "resume": "finish run RUN (a run id, 'latest' or a path): only its missing and cut-off "
              "trials run, from the run's own plan and image, into the same folder",
    "format": formats.HELP,
}
WITHOUT_QUOTA = {k: v for k, v in SHARED_HELP.items() if k != "quota"}


def _config(c):
    return config_sections(c.config)


def config_sections(config):
    """invoke's configuration as plain dicts: the `lab:` section and each task's own."""
    def plain(section):
        return {k: plain(v) if hasattr(v, "keys") else v for k, v in section.items()}
    return {name: plain(config[name]) for name in ("lab", "scale", "ipc", "lessons")
            if name in config}


def _run(function, *args, emit=None):
    """Run a lab command; what a user can cause ends in one line and its exit status. `emit`
    (--format json) prints the outcome on stdout once the command returned, even a failed run's."""
    from lab.commands import guarded, refusal
    try:
        with guarded(), formats.human_output_to_stderr(emit is not None):
            code = function(*args)
    except KeyboardInterrupt:
        raise Exit("interrupted before any trial ran: no run folder was written", code=130)
    except BrokenPipeError:  # `invoke ipc --dry-run | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit either
        raise Exit(code=0)
    except Exception as error:  # noqa: BLE001 (refusal() says which are the user's)
        known = refusal(error)
        if known is None:
            raise
        raise Exit(known[1], code=known[0])
    status = code if isinstance(code, int) else 0
    if emit is not None:
        emit(code, status)
    if status:
        raise Exit(code=status)


def _family(c, name, flags):
    from lab import commands
    emit = _emitter(flags.pop("format"))
    watcher = formats.RunWatcher(flags.get("results_dir") or c.config.lab.results_dir,
                                 flags.get("resume"))
    _run(commands.run_family, name, flags, _config(c), watcher,
         emit=emit and (lambda _code, status: emit(watcher.run_json(name, status, flags))))


def _emitter(value):
    """formats.emit when --format json, else None; a bad --format is refused in one line,
    before anything runs."""
    from lab.run.options import BadInput
    try:
        return formats.emitter(value)
    except BadInput as why:
        raise Exit(f"error: {why}", code=2) from None


def _families_help(name):
    from lab import families
    return families.get(name).flags


@task(help={**SHARED_HELP, **_families_help("scale")})
def scale(c, cpus=None, quota=None, variants=None, workers=None, work=None, repeat=None,
          placement=None, start_method=None, backend=None, base_image=None, image=None,
          seed=None, min_seconds=None, results_dir=None, dry_run=False, resume=None, plan=None,
          hosts=None, partition=None, python=None, per_node=None, max_nodes=None, format=None,
          command=None, target=None, mount=None, requirements=None):
    """CPU-bound speedup curves (strong and weak) from 1 to N CPUs, in pinned containers.

    The tutorial's task, or your own: --command "python3 prog.py --workers {workers}" or
    --target my_work.py:crunch."""
    _family(c, "scale", locals().copy())


@task(help={**WITHOUT_QUOTA, **_families_help("ipc")})
def ipc(c, cpus=None, channels=None, messages=None, round_trips=None, sizes=None, batches=None,
        ends=None, end_placement=None, patterns=None, timing=None, bytes_per_trial=None,
        repeat=None, placement=None, start_method=None, backend=None, base_image=None,
        image=None, seed=None, min_seconds=None, results_dir=None, dry_run=False, resume=None,
        plan=None, hosts=None, partition=None, python=None, per_node=None, max_nodes=None,
        format=None):
    """Pipe vs Queue vs JoinableQueue and the channels beyond them, per CPU count and placement."""
    _family(c, "ipc", locals().copy())


@task(help={**WITHOUT_QUOTA, **_families_help("lessons")})
def lessons(c, lessons=None, start_methods=None, runners=None, task_sizes=None, chunksizes=None,
            states=None, primitives=None, cases=None, size=None, cpus=None, repeat=None,
            placement=None, start_method=None, backend=None, base_image=None, image=None,
            seed=None, min_seconds=None, results_dir=None, dry_run=False, resume=None, plan=None,
            hosts=None, partition=None, python=None, per_node=None, max_nodes=None,
            format=None):
    """The rest of the tutorial: process start, pools, shared state, locks, lifecycle, the GIL.

    Every claim of the tutorial held or not, per Python."""
    _family(c, "lessons", locals().copy())


@task(help={"run": "run id under results/, 'latest', or a run folder's path",
            "results_dir": SHARED_HELP["results_dir"], "format": formats.HELP})
def report(c, run, results_dir=None, format=None):
    """Redraw summary.csv, charts and report.md of a run from its raw.jsonl (runs nothing)."""
    from lab import commands
    emit = _emitter(format)
    results_dir = results_dir or c.config.lab.results_dir
    _run(lambda: commands.report(results_dir, run) and 0,
         emit=emit and (lambda _code, status: emit(formats.report_json(results_dir, run))))


@task(help={"suite": "Debian suite of the offline base: trixie (Python 3.13), bookworm (3.11) "
                     "or sid (3.14)",
            "base_image": "build on this base instead (pulled if a registry answers)",
            "rebuild": "rebuild the image even when one with the same code digest exists"})
def build(c, suite=None, base_image=None, rebuild=False):
    """Build the trial image (and its offline Debian base when missing)."""
    from lab import commands
    base = base_image or (f"multicore-lab-base:{suite}" if suite else c.config.lab.base_image)
    _run(lambda: commands.build(base, rebuild) and 0)


@task()
def info(c):
    """What the lab sees: engine, host CPUs and topology, cgroup version, images, backend choice."""
    from lab import commands
    _run(lambda: commands.info(_config(c)["lab"]))


@task(help={"run_a": "the first run (A): a run id under results/, 'latest', or a run folder's path",
            "run_b": "the second run (B), the same way; ratios are B / A",
            "results_dir": SHARED_HELP["results_dir"] + "; the comparison goes to "
                           "<results-dir>/compare-<a>-vs-<b>/",
            "host_a": "only this host's trials of run A (a run on several hosts, --hosts)",
            "host_b": "only this host's trials of run B; e.g. two hosts of one run: "
                      "invoke compare RUN RUN --host-a local --host-b ssh://me@vm",
            "node_a": "only this node's trials of run A (a Slurm run over several nodes)",
            "node_b": "only this node's trials of run B; e.g. two nodes of one run: "
                      "invoke compare RUN RUN --node-a vm --node-b node2",
            "format": formats.HELP})
def compare(c, run_a, run_b, results_dir=None, host_a=None, host_b=None, node_a=None,
            node_b=None, format=None):
    """Compare two runs point by point: medians, ratio B/A with its interval, Mann-Whitney U."""
    from lab import commands
    emit = _emitter(format)
    _run(lambda: commands.compare(results_dir or c.config.lab.results_dir, run_a, run_b,
                                  host_a=host_a, host_b=host_b, node_a=node_a,
                                  node_b=node_b),
         emit=emit and (lambda folder, _status: emit(formats.compare_json(folder))))


def collection():
    """Every task above, configured with the packaged defaults (invoke.yaml): the lowest level
    of invoke's configuration, so a user's invoke.yaml and INVOKE_* variables still override."""
    from lab import package_files
    from invoke.util import yaml
    tasks = Collection(scale, ipc, lessons, report, build, info, compare)
    tasks.configure(yaml.safe_load(package_files.DEFAULTS.read_text()))
    return tasks


namespace = collection()
