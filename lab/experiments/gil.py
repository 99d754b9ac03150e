"""IN THE TRIAL (standard library only): what this Python says about its GIL, read where the
code runs (a worker, an interpreter, the trial's own process), and the Python's label.

`gil_enabled()`: whether the GIL is on now (sys._is_gil_enabled() where it exists, 3.13+; True
before: every older CPython has it). `free_threaded()`: whether the build is free-threaded
(Py_GIL_DISABLED, PEP 703). `python_label()`: x.y.z, with a `t` after it on a free-threaded
build (3.14.0t), as CPython names its free-threaded executables (python3.14t).
"""

import platform
import sys
import sysconfig


def gil_enabled():
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


def free_threaded():
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def python_label():
    return platform.python_version() + ("t" if free_threaded() else "")
