"""The run machinery, the same for every family and backend: shared options (options.py), the
plan (plan.py), one trial after another (runner.py), the run folder (folder.py), progress
(progress.py), system checks (system_checks.py), and a run from start to end: one path (carry.py)
that a new run or a rerun of a plan.json (session.py) and --resume (resume.py) come into, and
which way a task takes (task.py). It never names a family or a backend."""
