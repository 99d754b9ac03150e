"""The local backend: each trial is a host process pinned with os.sched_setaffinity.

No quota can be set on a host process, so quota points need the docker backend.
"""

import json
import os
import platform
import subprocess
import sys
import time

from lab.backends import HOST_PYTHON, Backend, BackendUnavailable, ImageMismatch, outcome_from

from lab.package_files import PROJECT_ROOT
from lab.experiments.project import PROJECT_ENV
from lab.experiments.gil import python_label


class LocalBackend(Backend):
    name = "local"
    trial_overhead_s = 0.2  # a pinned interpreter's start (README: ~80 ms here)

    def __init__(self, config):
        super().__init__(config)
        self.python = sys.executable

    @staticmethod
    def plan_images(bases, image=None):
        return [HOST_PYTHON]

    def prepare_images(self, bases, image=None, say=print):
        return [HOST_PYTHON]

    def use_recorded_images(self, recorded, names, run):
        python = python_label()
        for info in recorded.values():  # a run recorded before the `t` label: its plain version
            if info.get("python") not in (python, platform.python_version()):
                raise ImageMismatch(f"--resume {run}: the image differs from the run's: its "
                                    f"trials ran on Python {info.get('python')}, this host's is "
                                    f"{python}")

    def image_for_rerun(self, recorded, base_image):
        return HOST_PYTHON

    def describe(self):
        return {"backend": "local", "python_executable": self.python,
                "python": platform.python_version(), "image": None}

    def known_python(self, name):
        return self.image_info(name)["python"]

    def image_info(self, name=None):
        # labelled as the trials label it (3.14.0t on a free-threaded build)
        return {"id": "local", "tag": None, "base": None, "python": python_label()}

    project = None  # the user's folder its trials start the user's code in (share_project)

    def share_project(self, path, say=print):
        """Trials of --command/--target start the user's code in `path` (this machine's own)."""
        self.project = path

    def add_requirements(self, requirements, say=print):
        """The host's Python runs the trials: it must have `requirements` already."""
        from lab.backends.image import ImageError
        from lab.backends.requirements_image import missing_requirements
        missing = missing_requirements(requirements, self.python)
        if missing:
            raise ImageError(f"--requirements: {self.python} lacks {', '.join(missing)}; "
                             f"install them there, or use --backend docker (a derived image)")

    def run(self, spec, cpuset, quota, time_limit_s, labels=None, image=None):
        if quota is not None:
            raise BackendUnavailable("the local backend cannot apply a CPU quota; use --backend docker")
        cpus = set(cpuset)
        started = time.perf_counter()
        # Pinned before exec, so the interpreter and every child it forks inherit the set.
        process = subprocess.Popen(
            [self.python, "-m", "lab.experiments", json.dumps(spec)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
            cwd=PROJECT_ROOT,
            env=None if self.project is None else {**os.environ, PROJECT_ENV: self.project},
            start_new_session=True,  # Ctrl-C reaches the lab, which then stops the trial itself
        )
        timed_out = False
        try:
            stdout, stderr = process.communicate(timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(process.pid, 9)
            stdout, stderr = process.communicate()
        except BaseException:
            os.killpg(process.pid, 9)
            process.communicate()
            raise
        host_seconds = time.perf_counter() - started
        return outcome_from(stdout, stderr, process.returncode, timed_out, False, host_seconds,
                            time_limit_s)

    def stop_all(self, run_id):
        return 0  # a trial in flight is killed by run() itself when interrupted
