"""The user's own files inside a trial: where they are, as the backend put them there.

The backend (docker: a read-only bind mount; local: the folder itself; Slurm: a staged copy) says
where the user's project folder is through the environment variable PROJECT_ENV; a trial that
runs the user's code (`command`, `target`) starts it there. Standard library only.
"""

import os

from lab.experiments import SpecError

PROJECT_ENV = "MULTICORE_LAB_PROJECT"


def project_dir():
    """The user's project folder as this trial sees it; SpecError when the backend gave none."""
    path = os.environ.get(PROJECT_ENV)
    if not path:
        raise SpecError(f"no project folder: the backend did not set {PROJECT_ENV}")
    if not os.path.isdir(path):
        raise SpecError(f"the project folder {path} is not there inside the trial")
    if not os.access(path, os.R_OK | os.X_OK):
        from lab.experiments import TrialCheckFailed
        raise TrialCheckFailed(f"the trial's user (uid {os.getuid()}) cannot read the project "
                               f"folder: make it readable to others (chmod o+rx) or run from a "
                               f"folder owned by a user who is not root")
    return path
