"""What a family's task does: its flags become options (the shared ones parsed once, the
family's by the family), then one way into the one path (lab.run.carry: backend, points, the
trials into a run folder, the report, an exit status: 0 complete, 3 some measured trials failed,
130 interrupted, 1 failed). The ways differ only in where the plan and the folder come from:

  a new run       the flags -> a plan -> a new folder            (session.new_run)
  --plan FILE     another run's plan.json -> a new folder         (session.rerun_plan)
  --resume RUN    the run's own plan, minus what is recorded -> the run's folder (resume.resume_run)
"""

from lab.backends import BackendUnavailable
from lab.run.options import SHARED_FLAGS, BadInput, chosen, parse_shared, seconds
from lab.run.resume import resume_run
from lab.run.session import new_run, rerun_plan


def parse_flags(family, flags, config):
    """(shared options, family options, the family's flags given, every plan-shaping flag's
    value as it came in) from the task's flags (None: not given) and the config (invoke.yaml:
    `lab:`, then the family's own section). The last is what meta.json keeps as `flags`, so that
    --resume with flags can re-parse the run's own values with the given ones on top."""
    section = dict(config.get(family.name) or {})
    defaults = {**config.get("lab", {}), **section}
    shared = parse_shared({k: flags.get(k) for k in (*SHARED_FLAGS, "dry_run", "results_dir",
                                                     "resume", "plan")}, defaults)
    own = {name: flags.get(name) for name in family.flags}
    options = family.parse(own, section, shared)
    given = sorted(name for name, value in own.items() if value is not None)
    values = {**shared.flags, **chosen(own, section, family.flags)}
    return shared, options, given, values


TRIAL_LIMIT_S = 600.0  # lab.trial_time_limit_s when no config sets it


def trial_time_limit(lab):
    """lab.trial_time_limit_s (INVOKE_LAB_TRIAL_TIME_LIMIT_S), checked: a setting, not a flag."""
    value = lab.get("trial_time_limit_s")
    value = TRIAL_LIMIT_S if value in (None, "") else value
    try:
        return seconds("lab.trial_time_limit_s", value, low=1)
    except BadInput as why:
        raise BadInput(f"{why} (INVOKE_LAB_TRIAL_TIME_LIMIT_S or invoke.yaml)") from None


def run_family(family, flags, config, say=print):
    """The whole task of `family`; returns the process exit code. A backend that gives out
    during --resume (a node's Python gone, a host's probe failing) is marked `run_exists`:
    the run is there, unfinished, so lab.commands.refusal ends it with exit 1, not 2."""
    shared, options, given, values = parse_flags(family, flags, config)
    lab_config = {**config.get("lab", {}), "results_dir": shared.results_dir,
                  "trial_time_limit_s": trial_time_limit(config.get("lab", {})),
                  "backend_options": dict(shared.backend_options)}
    if shared.resume is not None:  # `--resume ''` is refused, never ignored
        try:
            return resume_run(family, shared, given, flags, lab_config, say)
        except BackendUnavailable as why:
            why.run_exists = True
            raise
    if shared.plan:
        return rerun_plan(family, shared, given, lab_config, say)
    # a new run's folder is made only once every backend check has passed, and from then on
    # the runner records a backend's failure in the run: what escapes here has written nothing
    return new_run(family, shared, options, values, lab_config, say)
