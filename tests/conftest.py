"""Shared fixtures: a real Docker engine and the real trial image, built once per test session.

Without an engine the engine tests are skipped with the reason; under CI=true they fail instead,
because CI must prove the containers work.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
BASE_IMAGE = os.environ.get("LAB_TEST_BASE_IMAGE", "multicore-lab-base:trixie")


@pytest.fixture(scope="session")
def engine():
    from lab.backends import BackendUnavailable
    from lab.backends.docker import connect
    try:
        return connect()
    except BackendUnavailable as why:
        if IN_CI:
            pytest.fail(f"CI=true and {why}")
        pytest.skip(f"needs a Docker engine: {why}")


# Module scope: an earlier module may rebuild the image the README's way (`invoke build
# --rebuild` gives the tag a new image id), so each module asks for the image again.
@pytest.fixture(scope="module")
def trial_image(engine):
    """The offline base (debootstrap) and the trial image, as `invoke build` makes them."""
    from lab.backends.image import ensure_image
    return ensure_image(engine, BASE_IMAGE, say=lambda *_: None)


@pytest.fixture(scope="module")
def bookworm_image(engine):
    """A Python 3.11 trial image on Debian bookworm (built offline), for what 3.13 changed."""
    from lab.backends.image import ensure_image
    return ensure_image(engine, "multicore-lab-base:bookworm", say=lambda *_: None)


@pytest.fixture
def docker_backend(engine, trial_image):
    from lab.backends.docker import DockerBackend
    backend = DockerBackend(engine, {"memory_limit": "256m", "shm_size": "64m", "pids_limit": 256})
    backend.images = {trial_image.base: trial_image}
    return backend


def invoke(*args, cwd=PROJECT_ROOT, env=None, timeout=900):
    """Run the real `invoke` command line as a user would; returns the CompletedProcess, with
    `pid` set: containers it starts carry it as label multicore-lab.pid."""
    command = [str(Path(sys.executable).with_name("invoke")), *args]
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env={**os.environ, **(env or {})}) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    done.pid = process.pid
    return done


def containers_started_by(engine, pid, since):
    """Containers created since `since` by the lab process `pid` (other tests may run beside)."""
    return list(engine.events(since=since, until=int(time.time()) + 1, decode=True,
                              filters={"type": "container", "event": "create",
                                       "label": f"multicore-lab.pid={pid}"}))
