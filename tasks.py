"""multicore-lab tasks. `invoke --list` shows them; `invoke --help TASK` explains every flag.

Thin on purpose: flags and invoke.yaml become options, the `lab` package does the work.
"""

import sys

from invoke import Exit, task

SHARED_HELP = {
    "cpus": "CPU counts, e.g. 1,2,4 or 'all' (1,2,4 ... up to this host); each point gets a cpuset",
    "quota": "CFS quotas in CPUs (Docker --cpus), e.g. 0.5,1.5: points limited by quota",
    "placement": "spread (one CPU per physical core first) or compact (SMT siblings together)",
    "repeat": "measured rounds per point (one more warm-up round is run and discarded)",
    "start_method": "multiprocessing start method: fork, spawn or forkserver",
    "backend": "auto (Docker when an engine answers, else local), docker, or local",
    "base_image": "base(s) of the trial image, comma-separated (points run on each); "
                  "multicore-lab-base:<suite> is built offline",
    "image": "a ready trial image to use as it is (no build)",
    "seed": "seed of the shuffle within rounds (default: random, recorded)",
    "dry_run": "print the plan and its estimated duration; run nothing",
    "results_dir": "where run folders go (default results/)",
}


def _lab_config(c, **overrides):
    config = dict(c.config.lab)
    config["docker"] = dict(c.config.lab.docker)
    config.update({k: v for k, v in overrides.items() if v is not None})
    return config


def _fail(error):
    raise Exit(f"error: {error}", code=2)


def _guarded(function, *args, **kwargs):
    """Bad input and unavailable images end in one line and exit 2, before anything runs."""
    from lab.image import ImageError
    from lab.options import BadInput
    from lab.runfolder import RunFolderError
    try:
        return function(*args, **kwargs)
    except (BadInput, ImageError, RunFolderError) as error:
        _fail(error)


@task(help={**SHARED_HELP,
            "variants": "strong, weak, process, seed, serial (comma-separated)",
            "workers": "worker counts per CPU count: cpus (= CPUs), default (Pool()'s own), or numbers",
            "work": "auto (calibrated to ~2 s for one worker), seed (the tutorial's 6e7), or iterations"})
def scale(c, cpus=None, quota=None, variants=None, workers=None, work=None, repeat=None,
          placement=None, start_method=None, backend=None, base_image=None, image=None,
          seed=None, results_dir=None, dry_run=False):
    """CPU-bound speedup curves (strong and weak) from 1 to N CPUs, in pinned containers."""
    from lab import scale as scale_task
    config = _lab_config(c, results_dir=results_dir)
    defaults = dict(c.config.scale)
    chosen = {
        "cpus": cpus or defaults["cpus"], "quota": quota if quota is not None else defaults["quota"],
        "variants": variants or defaults["variants"], "workers": workers or defaults["workers"],
        "work": work or defaults["work"], "target_seconds": defaults["target_seconds"],
        "repeat": repeat or config["repeat"], "placement": placement or config["placement"],
        "start_method": start_method or config["start_method"],
        "backend": backend or config["backend"], "base_image": base_image or config["base_image"], "image": image,
        "seed": seed if seed is not None else config["seed"], "dry_run": dry_run,
    }
    code = _guarded(scale_task.run, chosen, config)
    if code:
        raise Exit(code=code)


@task(help={"run": "run id under results/, 'latest' (default), or a run folder's path",
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


if __name__ == "__main__":
    sys.exit("run tasks with `invoke`, e.g. `invoke scale`")
