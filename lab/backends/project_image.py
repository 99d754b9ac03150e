"""Your own code on a remote host (`--hosts ssh://...`): images made here, shipped there.

A remote engine cannot bind-mount this machine's folder, nor fetch wheels (no index inside a
container, maybe none on the host). So both are made on THIS machine's engine, from the trial
image the host got from it, and shipped like the trial image (lab.backends.image.ship_image:
`docker save | docker load`, streamed, no registry):

- `--requirements`: the derived image of lab.backends.requirements_image, built here;
- the project folder: baked into `multicore-lab-project:<digest>`, the folder's files (those
  lab.backends.slurm_project.files_to_send picks: no results/, .git or virtual environments;
  at most its MAX_PROJECT_BYTES) copied to PROJECT_DIR, owned by root, directories 0755, files
  0644 (0755 when executable here): the trial's user reads them and cannot change them (its root
  filesystem is read-only besides). The digest is the files' and the image's it derives from, so
  a folder that changes makes another image, and one that does not is built and shipped once.
  The image says where the folder is (PROJECT_ENV in its environment), as a bind mount's
  trial is told by the docker backend.
"""

import hashlib
import io
import os
import tarfile
import time
from pathlib import Path

import docker

from lab.backends import BackendUnavailable
from lab.backends.image import ImageError, ImageInfo, ship_image
from lab.backends.slurm_project import files_to_send, project_digest
from lab.experiments.project import PROJECT_ENV

REPOSITORY = "multicore-lab-project"
PROJECT_DIR = "/project"  # where a trial finds the folder (docker's bind mount uses the same)
DOCKERFILE = f"""\
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
COPY project {PROJECT_DIR}
ENV {PROJECT_ENV}={PROJECT_DIR}
"""


def project_tag(folder, files, image_id):
    digest = hashlib.sha256(f"{project_digest(folder, files)}\0{image_id}".encode())
    return f"{REPOSITORY}:{digest.hexdigest()[:12]}"


def _context(folder, files):
    """The build context: the Dockerfile and project/<the folder's files>, root's, read-only."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def entry(name, kind, mode, size=0):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.size, info.uid, info.gid = kind, mode, size, 0, 0
            return info
        data = DOCKERFILE.encode()
        tar.addfile(entry("Dockerfile", tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
        tar.addfile(entry("project", tarfile.DIRTYPE, 0o755))
        made = set()
        for relative in files:
            for parent in reversed(Path(relative).parents[:-1]):
                if parent not in made:
                    made.add(parent)
                    tar.addfile(entry(f"project/{parent}", tarfile.DIRTYPE, 0o755))
            path = Path(folder) / relative
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            with open(path, "rb") as handle:
                tar.addfile(entry(f"project/{relative}", tarfile.REGTYPE, mode,
                                  path.stat().st_size), handle)
    buffer.seek(0)
    return buffer


def baked_image(source, image, folder, say=print):
    """The ImageInfo of `image` (an ImageInfo on the `source` engine) with `folder` copied to
    PROJECT_DIR: reused when its tag is there, else built on `source`."""
    files, size = files_to_send(folder, "to a host")
    tag = project_tag(folder, files, image.id)
    try:
        found = source.images.get(tag)
        say(f"project image {tag} is there (reused)")
        return ImageInfo(id=found.id, tag=tag, base=image.base, python=image.python)
    except docker.errors.ImageNotFound:
        pass
    started = time.perf_counter()
    say(f"baking {folder} ({len(files)} files, {size / 2**10:.0f} KiB) into {tag} on "
        f"{image.tag} ...")
    steps = source.api.build(fileobj=_context(folder, files), custom_context=True, tag=tag,
                             rm=True, buildargs={"BASE_IMAGE": image.tag or image.id},
                             decode=True, network_mode="none",
                             labels={"multicore-lab.base": image.base,
                                     "multicore-lab.project": str(folder)})
    for step in steps:
        if "error" in step:
            raise ImageError(f"building {tag} failed: {str(step['error']).strip()}")
    found = source.images.get(tag)
    return ImageInfo(id=found.id, tag=tag, base=image.base, python=image.python,
                     built_seconds=round(time.perf_counter() - started, 3))


def on_host(source, client, made, say=print, where="the host"):
    """`made` (an ImageInfo on the `source` engine) on the host's engine `client`: there
    already (same id), or shipped. Returns its ImageInfo there."""
    try:
        there = client.images.get(made.tag)
        if there.id == made.id:
            return made
    except docker.errors.ImageNotFound:
        pass
    seconds, sent = ship_image(source, client, made.tag, say, where)
    made.shipped_seconds, made.shipped_bytes = round(seconds, 3), sent
    return made


def source_image(source, image, where):
    """`image` (the host's ImageInfo) as this machine's engine has it, or BackendUnavailable in
    one line (a trial image the host built itself, e.g. of another architecture)."""
    try:
        found = source.images.get(image.tag or image.id)
    except docker.errors.ImageNotFound:
        found = None
    if found is None or found.id != image.id:
        raise BackendUnavailable(f"{where} has a trial image ({image.tag}) this machine's engine "
                                 f"does not, so your code cannot be packed here for it; allowed: "
                                 f"a host that gets its trial image from this machine (same "
                                 f"architecture), or --hosts local", hint="")
    return image
