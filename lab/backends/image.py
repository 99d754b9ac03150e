"""The trial image: an offline base from Debian's packages, and the lab's code built on it.

The image tag carries a digest of everything that goes into it (the in-container code, the
Dockerfile, the base), so it is rebuilt when that changes and reused otherwise.
"""

import hashlib
import inspect
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import docker

from lab.backends import aptsources
from lab.experiments import gil

from lab.package_files import DOCKERFILE, PROJECT_ROOT
IMAGE_REPOSITORY = "multicore-lab"
OFFLINE_BASE_REPOSITORY = "multicore-lab-base"  # multicore-lab-base:<suite> is built offline


class ImageError(RuntimeError):
    """The image cannot be had; the message says what to do."""


@dataclass
class ImageInfo:
    id: str
    tag: str
    base: str
    python: str | None
    built_seconds: float | None = None
    shipped_seconds: float | None = None  # --hosts: streamed here from this machine's engine
    shipped_bytes: int | None = None

    def as_dict(self):
        return asdict(self)


def in_container_files(root=PROJECT_ROOT):
    """The files the image holds: the standard-library-only part of `lab`."""
    lab = Path(root) / "lab"
    files = [lab / "__init__.py", *sorted((lab / "sysinfo").glob("*.py"))]
    files += sorted((lab / "experiments").glob("*.py"))
    return files


def trial_code_hash(root=PROJECT_ROOT, digest=None):
    """sha256 of the trial's code (each file's path and bytes), continuing `digest` if given:
    the identity of the code a trial runs, in an image or staged for a cluster's nodes."""
    digest = digest if digest is not None else hashlib.sha256()
    for path in in_container_files(root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest


def code_digest(base_image, root=PROJECT_ROOT):
    digest = hashlib.sha256(base_image.encode())
    digest.update(DOCKERFILE.read_bytes())
    return trial_code_hash(root, digest).hexdigest()[:12]


def image_tag(base_image):
    return f"{IMAGE_REPOSITORY}:{code_digest(base_image)}"


def offline_suite(base_image):
    """'multicore-lab-base:trixie' -> 'trixie'; None for any other base."""
    repository, _, tag = base_image.partition(":")
    return tag if repository == OFFLINE_BASE_REPOSITORY and tag else None


def _exists(client, name):
    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None


def build_offline_base(client, suite, say=print, etc_apt="/etc/apt",
                       repository=OFFLINE_BASE_REPOSITORY):
    """debootstrap a minimal Debian `suite` with python3, import it as <repository>:<suite>."""
    if os.geteuid() != 0:
        raise ImageError("building the offline base needs root (debootstrap); "
                         "run `sudo .venv/bin/invoke build` or pass --base-image IMAGE you have")
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed; run `apt-get install debootstrap` "
                         "(or pass --base-image IMAGE you already have)")
    scripts = Path("/usr/share/debootstrap/scripts")  # one script per suite it can make
    if scripts.is_dir() and not (scripts / suite).is_file():
        raise ImageError(f"{repository}:{suite}: {suite!r} is not a suite debootstrap knows; "
                         f"allowed: a Debian suite such as bookworm (3.11), trixie (3.13) or sid "
                         f"(3.14)")
    mirror = aptsources.debian_mirror(etc_apt)
    if mirror is None:
        raise ImageError(f"no Debian archive entry in {etc_apt}/sources.list(.d); "
                         "add one, or pass --base-image IMAGE you already have")
    tag = f"{repository}:{suite}"
    say(f"building offline base {tag} with debootstrap from {mirror} ...")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="multicore-lab-base-") as workdir:
        rootfs = Path(workdir) / "rootfs"
        command = ["debootstrap", "--variant=minbase", "--include=python3", suite, str(rootfs),
                   mirror]
        returncode, tail = _streamed(command, say, prefix="  debootstrap: ")
        if returncode != 0:
            raise ImageError(f"debootstrap {suite} failed: {' | '.join(tail[-3:])}")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        archive = Path(workdir) / "rootfs.tar"
        say("  packing the root file system and importing it into the engine ...")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        client.api.import_image_from_file(str(archive), repository=repository, tag=suite)
    seconds = time.perf_counter() - started
    say(f"built {tag} in {seconds:.1f} s")
    return seconds


def _streamed(command, say, prefix=""):
    """Run `command`, saying each line of its output as it comes (a long build is never
    silent); returns (exit status, the last lines)."""
    tail = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as process:
        for line in process.stdout:
            line = line.rstrip()
            if line:
                say(prefix + line)
                tail = (tail + [line])[-10:]
    return process.returncode, tail


def ensure_base(client, base_image, say=print):
    """The base is there, or built offline (multicore-lab-base:*), or pulled; else a clear error."""
    if _exists(client, base_image):
        return None
    suite = offline_suite(base_image)
    if suite:
        return build_offline_base(client, suite, say)
    say(f"pulling base image {base_image} ...")
    try:
        client.images.pull(base_image)
    except docker.errors.APIError as error:
        raise ImageError(f"base image {base_image} is not here and cannot be pulled "
                         f"({str(error)[:120]}); build an offline one with `invoke build` "
                         f"(multicore-lab-base:trixie) or pass --base-image") from None
    return None


def _build_context(base_image):
    """A tar of the Dockerfile and the in-container code (nothing else travels to the engine)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(DOCKERFILE, arcname="Dockerfile")
        for path in in_container_files():
            tar.add(path, arcname=str(path.relative_to(PROJECT_ROOT)))
    buffer.seek(0)
    return buffer


def existing_image(client, name):
    """A trial image the user names (`--image`), used as it is: never built or changed."""
    image = _exists(client, name)
    if image is None:
        raise ImageError(f"--image {name}: no such image on this engine; build one with "
                         f"`invoke build` or leave --image out")
    labels = image.labels or {}
    return ImageInfo(id=image.id, tag=name, base=labels.get("multicore-lab.base", "unknown"),
                     python=python_version(client, image.id))


PYTHON_LABEL = "multicore-lab.python"  # the image's Python, recorded when it is built


def python_label_code():
    """Python source that prints the Python's label as the trials record it
    (lab.experiments.gil.python_label: x.y.z, `t` on a free-threaded build), runnable in any
    image with a python3, the lab's code in it or not (a base before the build)."""
    return inspect.getsource(gil) + "\nprint(python_label())\n"


def python_version(client, image_id):
    """The image's Python as the trials label it (3.14.0, or 3.14.0t free-threaded), asked of a
    throwaway container."""
    output = client.containers.run(
        image_id, entrypoint=["python3", "-c", python_label_code()],
        network_mode="none", labels={"multicore-lab.pid": str(os.getpid())},
        remove=True)  # remove=True is fine here: only stdout matters
    return output.decode().strip()


def recorded_python(client, name):
    """The Python recorded on the image called `name` when it was built, without starting
    anything; None when there is no such image here or it was built before the label."""
    image = _exists(client, name)
    return ((image.labels or {}).get(PYTHON_LABEL) or None) if image is not None else None


def _build(client, base_image, tag, rebuild, say):
    """docker build through the SDK's streaming API: each step is said as the engine does it.
    The base's Python is labelled on the image, so a dry run can read it without a container."""
    python = python_version(client, base_image)
    steps = client.api.build(fileobj=_build_context(base_image), custom_context=True, tag=tag,
                             rm=True, buildargs={"BASE_IMAGE": base_image}, decode=True,
                             labels={"multicore-lab.base": base_image, PYTHON_LABEL: python},
                             nocache=rebuild)
    for step in steps:
        if "error" in step:
            raise ImageError(f"building {tag} failed: {str(step['error']).strip()}")
        text = str(step.get("stream") or "").strip()
        if text.startswith("Step ") or text.startswith("Successfully"):
            say(f"  {text}")


def ensure_image(client, base_image, rebuild=False, say=print):
    """The trial image for `base_image`, built only when its code digest has no image yet."""
    tag = image_tag(base_image)
    image = None if rebuild else _exists(client, tag)
    built_seconds = None
    if image is None:
        ensure_base(client, base_image, say)
        say(f"building image {tag} on {base_image} ...")
        started = time.perf_counter()
        _build(client, base_image, tag, rebuild, say)
        image = client.images.get(tag)
        built_seconds = time.perf_counter() - started
        say(f"built {tag} in {built_seconds:.1f} s")
    labels = image.labels or {}
    version = labels.get(PYTHON_LABEL) or python_version(client, image.id)
    return ImageInfo(id=image.id, tag=tag, base=base_image, python=version,
                     built_seconds=built_seconds)


SHIP_REPORT_BYTES = 32 * 1024 * 1024  # a progress line per 32 MiB shipped
LOAD_TIMEOUT_S = 1800                  # the engine answers a load only once all of it is in


def ship_image(source, target, tag, say=print, where="the host"):
    """Stream `tag` from the `source` engine into the `target` engine: `docker save` chunks go
    straight into `docker load` (a generator: the tar is never whole in memory, nor on disk),
    a progress line per 32 MiB. Returns (seconds, bytes)."""
    image = source.images.get(tag)
    size = int(image.attrs.get("Size") or 0)
    sent = 0
    started = time.perf_counter()

    def chunks():
        nonlocal sent
        report = SHIP_REPORT_BYTES
        for chunk in image.save(named=tag):
            sent += len(chunk)
            if sent >= report:
                share = f" of ~{size / 2**20:.0f} MiB" if size else ""
                say(f"  shipped {sent / 2**20:.0f} MiB{share} to {where} "
                    f"({time.perf_counter() - started:.0f} s)")
                report += SHIP_REPORT_BYTES
            yield chunk

    say(f"shipping image {tag} to {where} (docker save | docker load, streamed; no registry) ...")
    previous = target.api.timeout
    target.api.timeout = max(previous or 0, LOAD_TIMEOUT_S)
    try:
        target.images.load(chunks())
    finally:
        target.api.timeout = previous
    seconds = time.perf_counter() - started
    if target.images.get(tag).id != image.id:
        raise ImageError(f"shipping {tag} to {where}: the image loaded there differs from this "
                         f"machine's; remove it there and retry")
    say(f"shipped {tag} to {where}: {sent / 2**20:.1f} MiB in {seconds:.1f} s")
    return seconds, sent


def image_on_host(client, base_image, source=None, say=print, where="the host"):
    """The trial image for `base_image` on a remote host's engine `client`: there already, or
    shipped from `source` (this machine's engine, building it here first when missing) when both
    have the same architecture, or built there from a base it can pull when they differ;
    otherwise ImageError saying what to do."""
    tag = image_tag(base_image)
    if _exists(client, tag) is not None or source is None:
        return ensure_image(client, base_image, say=say)
    here = source.info().get("Architecture")
    there = client.info().get("Architecture")
    if here == there:
        ensure_image(source, base_image, say=say)
        seconds, sent = ship_image(source, client, tag, say, where)
        info = ensure_image(client, base_image, say=say)
        info.shipped_seconds, info.shipped_bytes = round(seconds, 3), sent
        return info
    if offline_suite(base_image):
        raise ImageError(f"{where} is {there}, this machine {here}: the offline base "
                         f"{base_image} is built for {here} and cannot run there; pass "
                         f"--base-image with an image {where} can pull (e.g. python:3.13-slim)")
    say(f"{where} is {there}, this machine {here}: building the trial image there on "
        f"{base_image} ...")
    try:
        return ensure_image(client, base_image, say=say)
    except ImageError as why:
        raise ImageError(f"{where}: {why}") from None
