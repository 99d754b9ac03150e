"""multicore-lab tasks. `invoke --list` shows them; `invoke --help TASK` explains every flag.

Thin on purpose: flags and invoke.yaml become options, the `lab` package does the work.
"""

import signal
import sys

from invoke import Exit, task

SHARED_HELP = {
    "cpus": "CPU counts, e.g. 1,2,4 or 'all' (1,2,4 ... up to this host); each point gets a cpuset",
    "quota": "CFS quotas in CPUs (Docker --cpus), e.g. 0.5,1.5: points limited by quota",
    "placement": "spread (one CPU per physical core first) or compact (SMT siblings together)",
    "repeat": "measured rounds per point (a warm-up round runs first: kept, marked, left out of the statistics)",
    "start_method": "multiprocessing start method: fork, spawn or forkserver",
    "backend": "auto (Docker when an engine answers, else local), docker, or local",
    "base_image": "base(s) of the trial image, comma-separated (points run on each); "
                  "multicore-lab-base:<suite> is built offline",
    "image": "a ready trial image to use as it is (no build)",
    "seed": "seed of the shuffle within rounds (default: random, recorded)",
    "dry_run": "print the plan and its estimated duration; run nothing",
    "results_dir": "where run folders go (default results/)",
    "plan": "rerun the matrix of a run's plan.json (e.g. results/<run>/plan.json) here: same "
            "points, seed and repeat, in a new run folder",
    "resume": "finish run RUN (a run id, 'latest' or a path): only its missing and cut-off "
              "trials run, from the run's own plan and image, into the same folder",
}


def _lab_config(c, **overrides):
    config = dict(c.config.lab)
    config["docker"] = dict(c.config.lab.docker)
    config.update({k: v for k, v in overrides.items() if v is not None})
    return config


def _given(**flags):
    """Names of the flags given on the command line (--resume checks them against the run)."""
    return sorted(name for name, value in flags.items() if value is not None)


def _or(value, default):
    """The flag's value when given, even empty (then refused as such), else the default."""
    return default if value is None else value


def _fail(error):
    raise Exit(f"error: {error}", code=2)


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def _guarded(function, *args, **kwargs):
    """Bad input and unavailable images end in one line and exit 2, before anything runs.
    SIGTERM is Ctrl-C here, so building or calibrating stops cleanly (containers removed); once
    trials run, lab.runs catches both and keeps what was measured."""
    from lab.image import ImageError
    from lab.options import BadInput
    from lab.runfolder import RunFolderError
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return function(*args, **kwargs)
    except (BadInput, ImageError, RunFolderError) as error:
        _fail(error)
    except KeyboardInterrupt:
        raise Exit("interrupted before any trial ran: no run folder was written", code=130)
    finally:
        if signal.getsignal(signal.SIGTERM) is _interrupt:
            signal.signal(signal.SIGTERM, previous)


@task(help={**SHARED_HELP,
            "variants": "strong, weak, process, seed, serial (comma-separated)",
            "workers": "worker counts per CPU count: cpus (= CPUs), default (Pool()'s own), or numbers",
            "work": "auto (calibrated to ~2 s for one worker), seed (the tutorial's 6e7), or iterations"})
def scale(c, cpus=None, quota=None, variants=None, workers=None, work=None, repeat=None,
          placement=None, start_method=None, backend=None, base_image=None, image=None,
          seed=None, results_dir=None, dry_run=False, resume=None, plan=None):
    """CPU-bound speedup curves (strong and weak) from 1 to N CPUs, in pinned containers."""
    from lab import scale as scale_task
    config = _lab_config(c, results_dir=results_dir)
    defaults = dict(c.config.scale)
    chosen = {
        "cpus": _or(cpus, defaults["cpus"]), "quota": _or(quota, defaults["quota"]),
        "variants": _or(variants, defaults["variants"]), "workers": _or(workers, defaults["workers"]),
        "work": _or(work, defaults["work"]), "target_seconds": defaults["target_seconds"],
        "repeat": _or(repeat, config["repeat"]), "placement": _or(placement, config["placement"]),
        "start_method": _or(start_method, config["start_method"]),
        "backend": _or(backend, config["backend"]), "base_image": _or(base_image, config["base_image"]), "image": image,
        "seed": seed if seed is not None else config["seed"], "dry_run": dry_run,
        "resume": resume, "plan": plan, "given": _given(
            cpus=cpus, quota=quota, variants=variants, workers=workers, work=work, repeat=repeat,
            placement=placement, start_method=start_method, backend=backend,
            base_image=base_image, image=image, seed=seed),
    }
    code = _guarded(scale_task.run, chosen, config)
    if code:
        raise Exit(code=code)


@task(help={**{k: v for k, v in SHARED_HELP.items() if k != "quota"},
            "channels": "all, or some of: pipe, queue, joinable_queue, pipe_oneway, simple_queue, "
                        "pipe_bytes, manager_queue, unix_socket, shm_ring, os_pipe",
            "messages": "items per stream trial, e.g. 10000,100000,1000000",
            "round_trips": "ping-pong round trips per latency trial",
            "sizes": "payload sizes, e.g. 0,1KiB,64KiB,1MiB (0 = a small int)",
            "batches": "items per send, e.g. 1,10,100,1000",
            "ends": "producers:consumers, e.g. 1:1,2:2,4:1 (several ends: queue channels only)",
            "end_placement": "where the two ends run: free, same (one CPU), split (own CPUs)",
            "patterns": "stream (throughput) and/or pingpong (round-trip latency)",
            "timing": "handshake (both ends ready before the clock) and/or seed (the tutorial's)",
            "bytes_per_trial": "for big messages, count = min(messages, this / size), e.g. 256MiB"})
def ipc(c, cpus=None, channels=None, messages=None, round_trips=None, sizes=None, batches=None,
        ends=None, end_placement=None, patterns=None, timing=None, bytes_per_trial=None,
        repeat=None, placement=None, start_method=None, backend=None, base_image=None,
        image=None, seed=None, results_dir=None, dry_run=False, resume=None, plan=None):
    """Pipe vs Queue vs JoinableQueue and the channels beyond them, per CPU count and placement."""
    from lab import ipc as ipc_task
    config = _lab_config(c, results_dir=results_dir)
    defaults = dict(c.config.ipc)
    flags = dict(cpus=cpus, channels=channels, messages=messages, round_trips=round_trips,
                 sizes=sizes, batches=batches, ends=ends, end_placement=end_placement,
                 patterns=patterns, timing=timing, bytes_per_trial=bytes_per_trial)
    chosen = {name: defaults[name] if value is None else value for name, value in flags.items()}
    chosen.update({
        "repeat": defaults["repeat"] if repeat is None else repeat,
        "placement": placement or config["placement"],
        "start_method": start_method or config["start_method"],
        "backend": backend or config["backend"], "base_image": base_image or config["base_image"],
        "image": image, "seed": seed if seed is not None else config["seed"], "dry_run": dry_run,
        "resume": resume, "plan": plan, "given": sorted(n for n, v in {**flags, "repeat": repeat,
                                          "placement": placement, "start_method": start_method,
                                          "backend": backend, "base_image": base_image,
                                          "image": image, "seed": seed}.items() if v is not None),
    })
    code = _guarded(ipc_task.run, chosen, config)
    if code:
        raise Exit(code=code)


@task(help={"run": "run id under results/, 'latest', or a run folder's path",
            "results_dir": SHARED_HELP["results_dir"]})
def report(c, run, results_dir=None):
    """Redraw summary.csv, charts and report.md of a run from its raw.jsonl (runs nothing)."""
    from lab import report as report_module
    config = _lab_config(c, results_dir=results_dir)
    _guarded(report_module.rebuild, config["results_dir"], run)


@task(help={"suite": "Debian suite of the offline base: trixie (Python 3.13) or bookworm (3.11)",
            "base_image": "build on this base instead (pulled if a registry answers)",
            "rebuild": "rebuild the image even when one with the same code digest exists"})
def build(c, suite=None, base_image=None, rebuild=False):
    """Build the trial image (and its offline Debian base when missing)."""
    from lab import build as build_module
    base = base_image or (f"multicore-lab-base:{suite}" if suite else c.config.lab.base_image)
    _guarded(build_module.run, base, rebuild)


@task
def info(c):
    """What the lab sees: engine, host CPUs and topology, cgroup version, images, backend choice."""
    from lab import info as info_module
    info_module.show(_lab_config(c))


@task(help={"run_a": "the first run (A): a run id under results/, 'latest', or a run folder's path",
            "run_b": "the second run (B), the same way; ratios are B / A",
            "results_dir": SHARED_HELP["results_dir"] + "; the comparison goes to "
                           "<results-dir>/compare-<a>-vs-<b>/"})
def compare(c, run_a, run_b, results_dir=None):
    """Compare two runs point by point: medians, ratio B/A with its interval, Mann-Whitney U."""
    from lab import compare as compare_module
    config = _lab_config(c, results_dir=results_dir)
    _guarded(compare_module.run, config["results_dir"], run_a, run_b)


if __name__ == "__main__":
    sys.exit("run tasks with `invoke`, e.g. `invoke scale`")
