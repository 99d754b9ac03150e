"""multicore-lab tasks for `invoke` in a checkout: `invoke --list` shows them, `invoke --help TASK`
explains every flag. They live in lab/cli/tasks.py, so the installed `multicore-lab` command runs
the same tasks with the same flags and defaults."""

from lab.cli.tasks import namespace  # noqa: F401 (invoke runs the collection named `namespace`)
