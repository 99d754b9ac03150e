"""What each `invoke` task does, as plain functions (tasks.py only hands them flags and config).

Every command can be run from Python too: `run_family(name, flags, config)`, `report(...)`,
`compare(...)`, `build(...)`, `info(...)`. `refusal(error)` says which errors are the user's to
fix (one line, no traceback) and with which exit status.
"""

import signal

from lab import backends, families, records
from lab.run.folder import RunFolderError, resolve
from lab.run.options import BadInput

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def refusal(error):
    """(exit status, one line) for an error a user can cause or fix, else None (a bug). The
    backends say which of theirs are (lab.backends.refusal): refused input is exit 2, a failure
    of what the run needed exit 1."""
    if isinstance(error, (BadInput, RunFolderError, records.RecordsError)):
        return EXIT_BAD_INPUT, f"error: {error}"
    said = backends.refusal(error)
    if said is None:
        return None
    kind, line = said
    return (EXIT_FAILED if kind == backends.FAILED else EXIT_BAD_INPUT), line


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


class guarded:
    """Inside the block SIGTERM is Ctrl-C, so building or calibrating stops cleanly (containers
    removed); once trials run, lab.run catches both and keeps what was measured."""

    def __enter__(self):
        self.previous = signal.signal(signal.SIGTERM, _interrupt)
        return self

    def __exit__(self, *exc):
        if signal.getsignal(signal.SIGTERM) is _interrupt:
            signal.signal(signal.SIGTERM, self.previous)
        return False


def run_family(name, flags, config, say=print):
    """`invoke NAME ...`: a run of the family NAME; returns its exit status."""
    from lab.run.task import run_family as run
    return run(families.get(name), flags, config, say=say)


def family_of(meta, trials):
    """The family of a run: by meta.json's task, else by its trials' experiment."""
    task = (meta or {}).get("task")
    if task in families.FAMILIES:
        return families.get(task)
    experiments = set(trials["experiment"].dropna()) if len(trials) else set()
    for experiment in experiments:
        family = families.for_experiment(experiment)
        if family is not None:
            return family
    raise records.RecordsError(f"cannot tell which task made this run (task {task!r}, "
                               f"experiments {sorted(experiments)})")


def report(results_dir, run, say=print):
    """`invoke report RUN`: summary, charts and report redrawn from raw.jsonl; runs nothing."""
    from lab.analysis.trials import load_trials
    from lab.present import report as present
    folder = resolve(results_dir, run)
    meta = folder.meta_for_reading(say)
    family = family_of(meta, load_trials(folder, warn=lambda *_: None))
    return present.build(folder, family, say=say)


def compare(results_dir, run_a, run_b, say=print, host_a=None, host_b=None, node_a=None,
            node_b=None):
    """`invoke compare A B [--host-a H] [--host-b H] [--node-a N] [--node-b N]`: point by
    point, into <results_dir>/compare-<a>-vs-<b>/; a host or node flag keeps only that host's
    or node's trials of its run."""
    from lab.present.compare import compare as present
    folder_a, folder_b = resolve(results_dir, run_a), resolve(results_dir, run_b)
    if folder_a.path == folder_b.path and (host_a or None, node_a or None) == (host_b or None,
                                                                            node_b or None):
        # every ratio would be 1 and every test "no difference": a comparison of nothing
        raise BadInput(f"compare: A and B are the same run ({folder_a.path.name}); allowed: two "
                       f"runs, or one run's hosts or nodes set apart by --host-a/--host-b or "
                       f"--node-a/--node-b")
    return present(folder_a, folder_b, results_dir, family_of, say=say, host_a=host_a or None,
                   host_b=host_b or None, node_a=node_a or None, node_b=node_b or None)


def build(base_image, rebuild=False, say=print):
    """`invoke build`: the trial image, and its offline base when missing."""
    from lab.run.options import image_names
    image_names("--base-image", base_image)  # a name the engine would refuse: one line here
    return backends.build_image(base_image, rebuild=rebuild, say=say)


def info(config, say=print):
    """`invoke info`: what the lab sees before it runs anything."""
    from lab import sysinfo
    from lab.hosts import facts, topology
    cpus = topology.read_cpus()
    host = facts.host(cpus)
    topo = host["topology"]
    say(f"host        {host['hostname']}: {host['cpu_model']}, kernel {host['kernel']}")
    say(f"CPUs        {host['cpu_count']} online, {len(cpus)} usable by this process "
        f"({sysinfo.format_cpu_list([c.id for c in cpus])}); {topo['physical_cores']} physical "
        f"cores in {topo['packages']} package(s), SMT {'on' if topo['smt'] else 'off'}")
    say(f"placement   spread order {topology.ordered(cpus, 'spread')}, "
        f"compact order {topology.ordered(cpus, 'compact')}")
    say(f"cgroup      v{host['cgroup_version']}; this process sees {sysinfo.seen()['cgroup']}")
    backends.say_engine(config["base_image"], say)
