"""The run machinery, the same for every family and backend: shared options (options.py), the
plan (plan.py), one trial after another (runner.py), the run folder (folder.py), progress
(progress.py), system checks (system_checks.py), and a run from start to end: new, resumed or
rerun from a plan.json (session.py, resume.py), and which of them a task takes (task.py). It never
names a family or a backend."""
