"""`invoke scale --command/--target`, host side: the user's own program or function in the lab.

Flags (`--command`, `--target`, `--mount`, `--requirements`) -> OwnCode, refused in one line
before anything runs; the pre-run check trial (the program found, the target imported and
crunch(1) run, its units per second measured for `--work auto`); the points' experiment and
params. lab/families/scale.py calls these beside the tutorial's task: the points, records,
statistics, charts and report are the tutorial's.

The user's files: the project folder (--mount, else the current directory) is shown to every
trial by the backend (`share_project`: docker a read-only bind mount, or for a remote host an
image made here and shipped, lab.backends.project_image; local the folder itself; Slurm a staged
copy), after `--requirements` went into the trial image. meta.json keeps the folder's content digest (`own.digest`, its files as the Slurm nodes
get them: results/, .git and virtual environments left out): `--resume` shows the folder again
(`reshare`) only while it still holds the code the run measured, else refuses in one line.
"""

import os
from dataclasses import dataclass

from lab.experiments import command as command_trial
from lab.run.options import BadInput

FLAGS = {
    "command": "your program, run at every point like hyperfine's scans, e.g. \"python3 prog.py "
               "--workers {workers}\" ({cpus}, {workers}, {work} filled in; no shell)",
    "target": "your function crunch(n) (n units of work, returns a result): FILE.py:crunch or "
              "package.module:crunch, importable from the current directory",
    "mount": "the folder trials see read-only as their working directory (default: the "
             "current directory); with --command or --target",
    "requirements": "a requirements.txt installed into a derived trial image (wheels fetched "
                    "here, no index inside a container); with --command or --target",
}
EXPERIMENTS = ("command", "target")  # the trial modules of the user's code (lab/experiments)
COMMAND_VARIANTS = ("strong", "weak")
TARGET_VARIANTS = ("serial", "strong", "weak", "process", "threads", "interpreters")
PICKLING_VARIANTS = ("strong", "weak", "process", "interpreters")  # results cross by pickle
CHECK_LIMIT_S = 120
CALIBRATION_SECONDS = 0.5
NOMINAL_COMMAND_SECONDS = 1.0  # a program's length is unknown before it runs: estimates only


@dataclass
class OwnCode:
    experiment: str                 # "command" or "target": the trial module that runs it
    code: str                       # the command template or the target
    project: str                    # the absolute folder the trials see
    requirements: str | None = None  # an absolute requirements file

    def params(self):
        return {"command" if self.experiment == "command" else "target": self.code}

    def uses_work(self):
        return self.experiment == "target" or "work" in command_trial.placeholders(self.code)


def parse(flags, work, variants_given):
    """OwnCode from the flags (None: neither --command nor --target), or BadInput."""
    command, target = flags.get("command"), flags.get("target")
    mount, requirements = flags.get("mount"), flags.get("requirements")
    if command is not None and target is not None:
        raise BadInput("--command and --target together: allowed: one of them")
    if command is None and target is None:
        for name, value in (("--mount", mount), ("--requirements", requirements)):
            if value is not None:
                raise BadInput(f"{name} {value!r} alone: allowed with --command or --target")
        return None
    project = os.path.abspath(os.path.expanduser(mount if mount is not None else "."))
    if not os.path.isdir(project):
        raise BadInput(f"--mount {mount!r}: no such folder; allowed: a folder to show the trials")
    if requirements is not None:
        requirements = os.path.abspath(os.path.expanduser(requirements))
        if not os.path.isfile(requirements):
            raise BadInput(f"--requirements {flags['requirements']!r}: no such file; allowed: "
                           f"a pip requirements file")
    if command is not None:
        own = OwnCode("command", _command(command, work, variants_given), project, requirements)
    else:
        own = OwnCode("target", _target(target, project), project, requirements)
    return own


def _command(text, work, variants_given):
    allowed = ", ".join("{%s}" % name for name in command_trial.PLACEHOLDERS)
    try:
        command_trial.split(text)
    except ValueError as why:
        raise BadInput(f"--command {text!r}: {why}; allowed: a command line (no shell), "
                       f"placeholders {allowed}") from None
    unknown = command_trial.unknown_placeholders(text)
    if unknown:
        raise BadInput(f"--command {text!r}: unknown placeholder {{{unknown[0]}}}; allowed: "
                       f"{allowed}")
    if "work" in command_trial.placeholders(text) and not isinstance(work, int):
        raise BadInput(f"--command {text!r} uses {{work}}: give --work a number (the lab "
                       f"cannot calibrate a program); --work is {work!r}")
    for variant in variants_given or ():
        if variant not in COMMAND_VARIANTS:
            raise BadInput(f"--variants {variant!r} with --command: allowed: strong (your "
                           f"program splits {{work}} over {{workers}}), weak ({{work}} per worker)")
    return text


def _target(text, project):
    module, _, function = text.rpartition(":")
    if not module or not function.isidentifier():
        raise BadInput(f"--target {text!r}: allowed FILE.py:FUNCTION or package.module:FUNCTION")
    if module.endswith(".py"):
        path = os.path.abspath(module)  # where the user stands
        if not os.path.isfile(path):
            raise BadInput(f"--target {text!r}: no file {module} here ({os.getcwd()})")
        relative = os.path.relpath(path, project)
        if relative.startswith(".."):
            raise BadInput(f"--target {text!r}: {path} is outside the folder the trials see "
                           f"({project}); allowed: a file inside it (--mount)")
        return f"{relative}:{function}"
    if not all(part.isidentifier() for part in module.split(".")):
        raise BadInput(f"--target {text!r}: {module!r} is not a module name; allowed FILE.py:"
                       f"FUNCTION or package.module:FUNCTION")
    return text


def check_variants(own, variants):
    """The variants a run of `own` measures (BadInput for those it cannot)."""
    allowed = COMMAND_VARIANTS if own.experiment == "command" else TARGET_VARIANTS
    for variant in variants:
        if variant not in allowed:
            raise BadInput(f"--variants {variant!r} with --{own.experiment}: allowed: "
                           f"{', '.join(allowed)}")
    return variants


# --- before the plan ---------------------------------------------------------------------------

def can_share(own, backend, hosts):
    """BadInput in one line when the backend has no means to show the folder to its trials."""
    if getattr(backend, "share_project", None) is None:
        raise BadInput(f"--{own.experiment}: the trials on {', '.join(hosts)} cannot see this "
                       f"machine's files; allowed: --hosts local (this machine's engine), "
                       f"--backend local or slurm")


def share(own, backend, hosts, say=print):
    """Show the project folder to the backend's trials, or BadInput in one line."""
    from lab.backends import BackendUnavailable
    can_share(own, backend, hosts)
    try:
        backend.share_project(own.project, say)
    except BackendUnavailable as why:
        raise BadInput(str(why)) from None


def folder_digest(path):
    """The content digest of the project folder (lab.backends.slurm_project's: the files that
    matter to the code, not the run's own results/)."""
    from lab.backends.slurm_project import project_digest, project_files
    return project_digest(path, project_files(path))


def reshare(backend, meta, run):
    """--resume of a run of the user's code: the project folder shown to the backend's trials
    again, or BadInput in one line when it is gone or no longer the code the run measured."""
    from lab.backends import BackendUnavailable
    own = meta.get("own")
    if not own:
        return
    project, recorded = own.get("project"), own.get("digest")
    if not project or not os.path.isdir(project):
        raise BadInput(f"--resume {run}: the project folder {project} is gone; a resumed run "
                       f"measures the code the run measured: restore it, or start a new run")
    if recorded is None:
        raise BadInput(f"--resume {run}: the run records no digest of its project folder "
                       f"{project} (it predates resuming your code), so whether the code is the "
                       f"same can't be told; start a new run")
    now = folder_digest(project)
    if now != recorded:
        raise BadInput(f"--resume {run}: the project folder {project} changed since the run "
                       f"started (content digest {now}, the run had {recorded}); a resumed run "
                       f"measures the same code: restore it, or start a new run")
    share_project = getattr(backend, "share_project", None)
    if share_project is None:  # pragma: no cover (such a run was refused at its start)
        raise BadInput(f"--resume {run}: the {backend.name} backend cannot show {project}")
    try:
        share_project(project, say=lambda *_: None)
    except BackendUnavailable as why:
        raise BadInput(f"--resume {run}: {why}") from None


def prepare(own, options, backend, cpus, images, say, dry_run):
    """The pre-run check trial, and for a target with --work auto its calibration. Returns
    what meta.json keeps: {"own": ..., "calibration": ...}."""
    from lab.backends import BackendUnavailable
    from lab.hosts import topology
    from lab.run import options as parse_options
    can_share(own, backend, options.shared.hosts)
    work = options.work
    kept = {"own": {"experiment": own.experiment, "code": own.code, "project": own.project,
                    "requirements": own.requirements, "digest": folder_digest(own.project)}}
    calibration = {"mode": work if isinstance(work, str) else "given"}
    if not own.uses_work():
        calibration = {"mode": "not used (the command has no {work})"}
    if own.experiment == "target" and work == "seed":
        raise BadInput("--work seed is the tutorial's; with --target allowed: auto or a number "
                       "of units")
    if dry_run:
        if own.experiment == "target" and work == "auto":
            say(f"work: calibrated at the start of the run so one worker's trial takes about "
                f"{options.target_seconds:g} s")
        calibration["work"] = work if isinstance(work, int) else None
        calibration["target_seconds"] = options.target_seconds
        return {**kept, "calibration": calibration}
    if own.requirements:
        add_requirements = getattr(backend, "add_requirements", None)
        if add_requirements is None:
            raise BadInput(f"--requirements: the {backend.name} backend cannot install them; "
                           f"allowed: --backend docker, local or slurm")
        try:
            add_requirements(own.requirements, say)
        except BackendUnavailable as why:
            raise BadInput(str(why)) from None
    # after the requirements: a remote host's folder image is made on top of their image
    share(own, backend, options.shared.hosts, say)
    if "interpreters" in options.variants:  # InterpreterPoolExecutor: Python 3.14 and later
        for name in images:
            python = str(backend.image_info(name).get("python") or "?")
            if tuple(int(p) for p in python.rstrip("t").split(".")[:2] if p.isdigit()) < (3, 14):
                raise BadInput(f"--variants interpreters: InterpreterPoolExecutor needs Python "
                               f"3.14 or later, and {name} has Python {python}; allowed: "
                               f"--base-image multicore-lab-base:sid or the other variants")
    calibrate = own.experiment == "target" and work == "auto"
    cpuset = topology.cpuset_for(1, cpus, options.shared.placement)
    spec = {"experiment": own.experiment, "variant": "check",
            "params": {**own.params(), "work": work if isinstance(work, int) else 1,
                       "calibrate_seconds": CALIBRATION_SECONDS if calibrate else 0},
            "workers": 1, "start_method": parse_options.trial_start_method(
                options.shared.start_method),
            "expect_affinity": cpuset, "time_limit_s": CHECK_LIMIT_S}
    say(f"checking your {own.experiment} in a trial pinned to one CPU"
        f"{' and measuring its units per second' if calibrate else ''} ...")
    from lab.backends import RUN_LABEL
    outcome = backend.run(spec, cpuset, None, CHECK_LIMIT_S, {RUN_LABEL: "calibration"},
                          images[0])
    if outcome.error:
        reason = outcome.error.removeprefix("check failed: ")
        raise BadInput(f"--{own.experiment} {own.code!r}: {reason}")
    found = outcome.result.get("check") or {}
    sent_back = [v for v in options.variants if v in PICKLING_VARIANTS]
    if found.get("result_pickles") is False and sent_back:
        raise BadInput(f"--target {own.code!r}: its result does not pickle "
                       f"({found.get('pickle_error')}), and --variants {','.join(sent_back)} "
                       f"send results back by pickle; allowed: a result that pickles, or "
                       f"--variants serial,threads")
    kept["own"]["checked"] = found
    if calibrate:
        rate = outcome.result["metrics"]["units_per_second"]["value"]
        most = max(parse_options.cpu_counts(options.shared.cpus, len(cpus)) or [1])
        seconds = max(options.target_seconds, options.shared.min_seconds * most * 1.2)
        work = max(1, int(rate * seconds))
        say(f"calibrated: {rate:,.0f} units/s on one CPU -> work {work:,} units (about "
            f"{seconds:g} s for one worker)")
        calibration.update(iterations_per_second=rate, target_seconds=options.target_seconds)
    calibration["work"] = work if isinstance(work, int) else None
    return {**kept, "calibration": calibration}


def estimate(point, prepared):
    """Rough seconds of one trial (None: the tutorial's estimate applies: a target whose
    units per second were measured)."""
    if point.experiment == "command":
        return NOMINAL_COMMAND_SECONDS
    if point.experiment == "target" and point.params_dict.get("work") is None:  # a dry run
        return float((prepared.get("calibration") or {}).get("target_seconds") or 2.0)
    return None


def facts(meta):
    """The report's facts line of a run of the user's code: what ran, where, what was checked."""
    own = meta.get("own")
    if not own:
        return []
    checked = own.get("checked") or {}
    found = [word for word, key in (("deterministic", "deterministic"),
                                    ("results that add", "additive")) if checked.get(key)]
    said = f" ({', '.join(found)})" if found else (" (neither deterministic nor adding: "
                                                   "those checks can't tell)"
                                                   if own["experiment"] == "target" else "")
    requirements = f", requirements {own['requirements']}" if own.get("requirements") else ""
    return [(f"your {own['experiment']}", f"{own['code']}{said}, in {own['project']}"
                                          f"{requirements}")]
