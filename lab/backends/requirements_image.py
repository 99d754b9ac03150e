"""`--requirements requirements.txt`: a trial image derived from the lab's, with them installed.

The lab's offline way: nothing inside a container reaches a package index. On THIS machine pip
fetches wheels for the image's Python and the engine's architecture (`pip download
--only-binary=:all: --python-version X.Y --implementation cp --platform manylinux_2_28_<arch>
--platform manylinux2014_<arch>`; pure-Python wheels match any platform), then installs them from
that folder alone (`pip install --no-index --find-links WHEELS --target SITE`, the same platform
flags) into a site folder, which the derived image copies to SITE_DIR, compiles (the trial's
root is read-only) and puts on PYTHONPATH. So the image needs neither pip nor apt nor a network.

The tag is `multicore-lab-req:<digest>`, the digest of the requirements file and the trial
image's id: built once, reused while neither changes. A requirements file that does not
install is refused with pip's last error line (ImageError: one line, exit 2), before anything
is built or written.
"""

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import docker

from lab.backends.image import ImageError, ImageInfo

REPOSITORY = "multicore-lab-req"
SITE_DIR = "/opt/multicore-lab-site"
PIP_TIMEOUT_S = 600
DOCKERFILE = f"""\
ARG TRIAL_IMAGE
FROM ${{TRIAL_IMAGE}}
USER root
COPY site {SITE_DIR}
RUN python3 -m compileall -q {SITE_DIR} || true
ENV PYTHONPATH=/opt/multicore-lab:{SITE_DIR}
USER 10001:10001
"""


def requirements_tag(requirements, image_id):
    digest = hashlib.sha256(Path(requirements).read_bytes())
    digest.update(str(image_id).encode())
    return f"{REPOSITORY}:{digest.hexdigest()[:12]}"


def pip_platform_flags(python, architecture):
    """pip's flags that pick wheels for CPython `python` (x.y.z) on `architecture`."""
    version = ".".join(str(python).rstrip("t").split(".")[:2])
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(architecture, architecture)
    return ["--only-binary=:all:", "--python-version", version, "--implementation", "cp",
            "--platform", f"manylinux_2_28_{arch}", "--platform", f"manylinux2014_{arch}"]


def _pip(args, say):
    """Run this Python's pip; ImageError with pip's last error line when it fails."""
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines()
                 if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines or ["no output"]
        raise ImageError(f"--requirements: pip could not install them: {errors[-1][:300]}")
    return done


def install_site(requirements, python, architecture, folder, say=print):
    """The requirements installed for the image's Python into `folder`/site (wheels fetched
    into `folder`/wheels first). Returns the site folder."""
    flags = pip_platform_flags(python, architecture)
    wheels, site = Path(folder) / "wheels", Path(folder) / "site"
    say(f"fetching wheels of {requirements} for Python {python} ({architecture}) on this "
        f"machine ...")
    _pip(["download", "--quiet", *flags, "-d", str(wheels), "-r", str(requirements)], say)
    _pip(["install", "--quiet", "--no-index", "--find-links", str(wheels), "--target",
          str(site), *flags, "-r", str(requirements)], say)
    site.mkdir(exist_ok=True)
    return site


def _context(site):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = DOCKERFILE.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(site, arcname="site")
    buffer.seek(0)
    return buffer


def derived_image(client, trial, requirements, say=print):
    """The ImageInfo of the trial image `trial` (an ImageInfo) with `requirements` installed:
    reused when its tag is there, else built (wheels fetched here, no index in a container)."""
    tag = requirements_tag(requirements, trial.id)
    try:
        image = client.images.get(tag)
        say(f"requirements image {tag} is there (reused)")
        return ImageInfo(id=image.id, tag=tag, base=trial.base, python=trial.python)
    except docker.errors.ImageNotFound:
        pass
    started = time.perf_counter()
    architecture = client.info().get("Architecture") or os.uname().machine
    with tempfile.TemporaryDirectory(prefix="multicore-lab-req-") as folder:
        site = install_site(requirements, trial.python, architecture, folder, say)
        say(f"building {tag} on {trial.tag} ...")
        steps = client.api.build(fileobj=_context(site), custom_context=True, tag=tag, rm=True,
                                 buildargs={"TRIAL_IMAGE": trial.tag or trial.id}, decode=True,
                                 network_mode="none",
                                 labels={"multicore-lab.base": trial.base,
                                         "multicore-lab.requirements": str(requirements)})
        for step in steps:
            if "error" in step:
                raise ImageError(f"building {tag} failed: {str(step['error']).strip()}")
    image = client.images.get(tag)
    seconds = time.perf_counter() - started
    say(f"built {tag} in {seconds:.1f} s")
    return ImageInfo(id=image.id, tag=tag, base=trial.base, python=trial.python,
                     built_seconds=round(seconds, 3))


def requirement_names(requirements):
    """The distribution names a requirements file asks for (options and versions left out)."""
    names = []
    for line in Path(requirements).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name = line
        for stop in "<>=!~;[ @":
            name = name.split(stop, 1)[0]
        names.append(name.strip())
    return names


def missing_requirements(requirements, python_executable):
    """The requirements `python_executable` lacks (importlib.metadata asked there), as names;
    for a backend whose trials run a Python that is already there (the local one)."""
    names = requirement_names(requirements)
    script = ("import importlib.metadata as m, sys\n"
              "for n in sys.argv[1:]:\n"
              "    try: m.version(n)\n"
              "    except m.PackageNotFoundError: print(n)\n")
    done = subprocess.run([python_executable, "-c", script, *names], capture_output=True,
                          text=True, timeout=60)
    return [line for line in done.stdout.split() if line]
