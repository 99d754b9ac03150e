"""The user's own code on a Slurm cluster (`invoke scale --backend slurm --command/--target`).

The project folder is staged like the lab's trial code (lab.backends.slurm_code): copied once per
content digest to <code folder>/project-<digest>/ on the shared filesystem (its results/, .git,
virtual environments and caches left out), and every step is told where through
lab.experiments.project.PROJECT_ENV. `--requirements`: the nodes' Python (--python, e.g. a venv on
the shared filesystem) must already have them; one 1-CPU step asks it (importlib.metadata) before
the first trial and the run is refused in one line naming what it lacks. Nothing is installed on
a node.
"""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from lab.backends import BackendUnavailable
from lab.experiments.project import PROJECT_ENV

LEFT_OUT = {"results", ".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache",
            ".ipynb_checkpoints", "node_modules"}
MAX_PROJECT_BYTES = 200 * 2**20  # a project folder bigger than this is not copied to the nodes
CHECK_LIMIT_S = 120


def project_files(folder):
    """The files of the project folder that travel to the nodes, sorted (relative paths)."""
    folder = Path(folder)
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in LEFT_OUT and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                found.append(path.relative_to(folder))
    return found


def project_digest(folder, files):
    digest = hashlib.sha256()
    for relative in files:
        digest.update(str(relative).encode() + b"\0")
        digest.update((Path(folder) / relative).read_bytes())
    return digest.hexdigest()[:12]


def files_to_send(folder, where):
    """(the project's files, their bytes), refused in one line when they are more than the lab
    sends `where` (MAX_PROJECT_BYTES): a home folder given by mistake is not copied whole."""
    files = project_files(folder)
    size = sum((Path(folder) / f).stat().st_size for f in files)
    if size > MAX_PROJECT_BYTES:
        raise BackendUnavailable(f"the project folder {folder} holds {size / 2**20:.0f} MiB, "
                                 f"more than the {MAX_PROJECT_BYTES // 2**20} MiB the lab sends "
                                 f"{where}; give --mount a smaller folder", hint="")
    return files, size


def stage_project(folder, code_root):
    """The project folder copied to `code_root`/project-<digest> (once per content, atomically);
    returns that absolute path. BackendUnavailable in one line when it cannot be."""
    files, _ = files_to_send(folder, "to the nodes")
    target = Path(code_root) / f"project-{project_digest(folder, files)}"
    if target.is_dir():
        return target
    try:
        Path(code_root).mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=".project-", dir=code_root))
        try:
            for relative in files:
                copy = temporary / relative
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(folder) / relative, copy)
            for path in [temporary, *temporary.rglob("*")]:
                if path.is_dir():
                    path.chmod(0o755)
            try:
                os.rename(temporary, target)
            except OSError:
                if not target.is_dir():  # not another lab's copy of the same content
                    raise
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    except OSError as error:
        raise BackendUnavailable(f"cannot copy the project folder to {code_root}: "
                                 f"{error.strerror or error}; set lab.slurm.code_dir to a "
                                 f"shared folder you can write", hint="") from None
    return target


REQUIREMENTS_PROBE = r"""
import importlib.metadata as metadata, json, sys
missing = []
for name in sys.argv[1:]:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        missing.append(name)
print(json.dumps({"missing": missing, "python": sys.executable}))
"""


class SlurmProject:
    """The project half of SlurmBackend: needs code_root, env, python, step_command, token."""

    def share_project(self, path, say=print):
        staged = stage_project(path, self.code_root)
        self.env[PROJECT_ENV] = str(staged)  # every step's environment (step_command)

    def add_requirements(self, requirements, say=print):
        from lab.backends.image import ImageError
        from lab.backends.requirements_image import requirement_names
        from lab.backends.slurm_commands import command
        names = requirement_names(requirements)
        step = self.step_command(f"mcl-requirements-{self.token}", 1, CHECK_LIMIT_S,
                                 ["-c", REQUIREMENTS_PROBE, *names])
        done = command(step.argv, timeout=max(120, self.pending_limit_s), env=step.env,
                       cwd=step.cwd)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
            raise ImageError(f"--requirements: the nodes' Python ({self.python}) could not be "
                             f"asked for them: {tail}")
        found = json.loads(lines[-1])
        if found["missing"]:
            raise ImageError(f"--requirements: the nodes' Python {found['python']} lacks "
                             f"{', '.join(found['missing'])}; install them there, or give "
                             f"--python a venv on the shared filesystem that has them")
        say(f"the nodes' Python {found['python']} has the {len(names)} requirement(s)")
