"""What a family's task does: its flags become options (the shared ones parsed once, the
family's by the family), then one of three paths, each ending in the report and an exit status
(0 complete, 3 some measured trials failed, 130 interrupted, 1 failed):

  a new run (session.new_run), --resume RUN (resume.resume_run), --plan FILE (session.rerun_plan).
"""

from lab.run.options import BACKEND_FLAGS, SHARED_FLAGS, chosen, parse_shared
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


def run_family(family, flags, config, say=print):
    """The whole task of `family`; returns the process exit code."""
    shared, options, given, values = parse_flags(family, flags, config)
    lab_config = {**config.get("lab", {}), "results_dir": shared.results_dir,
                  "trial_time_limit_s": shared.time_limit_s,
                  "backend_options": {name: getattr(shared, name) for name in BACKEND_FLAGS}}
    if shared.resume is not None:  # `--resume ''` is refused, never ignored
        return resume_run(family, shared, given, flags, lab_config, say)
    if shared.plan:
        return rerun_plan(family, shared, given, lab_config, say)
    return new_run(family, shared, options, values, lab_config, say)
