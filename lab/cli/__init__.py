"""The lab as a command: `multicore-lab TASK --flags` once installed (pip install <the lab>),
the same tasks, flags and defaults as `invoke TASK` in a checkout (lab.cli.tasks holds them both).
"""

import os
import sys

from lab.version import __version__

NAME = "multicore-lab"


def main(argv=None):
    """The `multicore-lab` console script: invoke's own Program around the lab's tasks."""
    from invoke import Program

    from lab.cli.tasks import namespace
    try:
        Program(name=NAME, binary=NAME, version=__version__, namespace=namespace).run(argv)
    except BrokenPipeError:  # `multicore-lab --list | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit either
