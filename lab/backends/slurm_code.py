"""The trial code on the shared filesystem: lab/__init__.py, lab/sysinfo.py and lab/experiments/
copied once per code version into <code folder>/<digest>/ (an absolute path: the nodes and srun's
--chdir must not read it against another working directory), and the probe the pre-run check
runs there with the nodes' Python.
"""

import os
import shutil
import tempfile
from pathlib import Path


def trial_files(root):
    from lab.backends.image import in_container_files  # one definition of "the trial's code"
    return in_container_files(root)


def code_digest(root):
    from lab.backends.image import trial_code_hash  # one digest of it, the image's too
    return trial_code_hash(root).hexdigest()[:12]


def _missing_folders(folder):
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def stage_code(root, folder):
    """Copy the trial code under `folder`/<digest>/lab (once per digest, atomically). Returns
    (that folder, the digest, what this call created: the copy and the folders made for it,
    deepest first, so that a refused run can take them away again)."""
    folder = Path(os.path.abspath(folder))
    digest = code_digest(root)
    target = folder / digest
    if target.is_dir() and code_digest(target) == digest:
        return target, digest, []
    made = _missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=folder))
    try:
        for path in trial_files(root):
            copy = temporary / path.relative_to(root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        temporary.chmod(0o755)
        if target.exists():  # a damaged copy: replaced whole
            shutil.rmtree(target)
        try:
            os.rename(temporary, target)
        except OSError:
            if not (target.is_dir() and code_digest(target) == digest):  # not another lab's race
                raise
            return target, digest, made
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return target, digest, [target, *made]


def unstage(made):
    """Take away what stage_code created for a run that was then refused: the copy, and the
    folders made for it while they are empty (another lab's copy beside it stays)."""
    for path in made:  # each made by this call: what holds lab/ is this call's copy
        if (path / "lab").is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.rmdir()
            except OSError:
                pass


# The pre-run check, run exactly as a trial is (same srun flags, environment, working directory
# and --python): the Python's version, then the staged trial code imported and one probe trial
# run with a trial's own checks (a CPU count, the step cgroup's cpuset), then the node's facts.
# The first lines parse on any Python, so an old one is refused with its version, not a
# SyntaxError.
PROBE_SPEC = {"experiment": "probe", "variant": "seen", "params": {}, "workers": 1,
              "start_method": "fork", "expect_affinity": None, "expect_cpu_count": 1,
              "expect_cgroup_cpuset": True, "time_limit_s": 60}
NODE_PROBE = r"""
import sys
if sys.version_info < (3, 11):
    sys.stderr.write("Python %s at %s is too old for the trial code (3.11 or later)\n"
                     % (sys.version.split()[0], sys.executable))
    sys.exit(3)
import json, os, platform, socket
import lab.experiments, lab.sysinfo
from lab.experiments.__main__ import run
from lab.sysinfo import machine
result = run(json.loads(sys.argv[1]))
if not result.get("ok"):
    sys.stderr.write("the probe trial failed: %s\n" % result.get("error"))
    sys.exit(1)
print(json.dumps({"node": socket.gethostname(), "python": platform.python_version(),
                  "executable": sys.executable, "cpu_model": machine.cpu_model(),
                  "kernel": platform.release(), "architecture": platform.machine(),
                  "cgroup_version": machine.cgroup_version(),
                  "affinity": sorted(os.sched_getaffinity(0)), "cwd": os.getcwd()}))
"""
