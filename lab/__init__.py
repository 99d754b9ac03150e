"""multicore-lab: how Python parallel code scales across CPU counts, measured in pinned containers.

This package is imported inside the trial image with the standard library alone, and only
`lab.experiments` and `lab.sysinfo` are copied into that image: keep this file free of pandas,
matplotlib, docker, invoke and pydantic, and of anything host-side (the lab's version lives in
lab/version.py, so a version bump never changes the trial image).

Where things are (data flows down this list):
  experiments/  in the trial: one module per family, standard library only
  families/     host side of each family: flags -> options -> points, estimate, analysis, charts
  run/          the run machinery: shared options, plan, runner, run folder, resume, progress
  backends/     where a trial executes: docker (and its images), local
  hosts/        facts of a host: CPUs, topology, kernel
  records.py    the data format: trial records, plan.json, meta.json (models)
  analysis/     records -> pandas, statistics, fits, warnings
  present/      charts, report.md / report.html, compare
  commands.py   what tasks.py calls
"""

# The Python API (lab.scale(...), lab.load(...), ...) lives host-side in lab/api.py and loads on
# first use (PEP 562), so `import lab` stays standard-library only here and in the trial image.
API = ("scale", "ipc", "lessons", "load", "report", "compare", "build", "info", "config",
       "Run", "Comparison", "LabError")


def __getattr__(name):
    if name in API:
        from lab import api
        return getattr(api, name)
    raise AttributeError(f"module 'lab' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *API])
