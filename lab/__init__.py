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
