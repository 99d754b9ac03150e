"""The docker backend: one container per trial, through the Docker SDK (never the docker command).

Lifecycle: create, start, wait with the trial's time limit, read exit code, OOMKilled and logs,
then remove. Never `remove=True`: the engine would take the exit status and logs with it.
"""

import json
import os
import time

import docker
import requests

from lab.backends import (PID_LABEL, RUN_LABEL, Backend, BackendUnavailable, ImageMismatch,
                          outcome_from)
from lab.backends.image import ImageInfo, ensure_image, existing_image, image_tag

TRIAL_USER = "10001:10001"  # not root inside the trial, whatever the base image says


def connect(timeout_s=5):
    """A client whose engine answers a ping, or BackendUnavailable saying what is wrong."""
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
        return client
    except Exception as error:  # the SDK raises several unrelated types for "nobody answers"
        reason = str(error).split("\n")[0][:200]
        raise BackendUnavailable(f"the Docker engine does not answer: {reason}") from None


def _short(image_id):
    return str(image_id or "?").replace("sha256:", "")[:12]


class DockerBackend(Backend):
    name = "docker"
    engine_words = "the Docker engine"
    trial_overhead_s = 0.6  # create, start, wait, logs, remove (README: ~360 ms here) and Python
    supports_quota = True

    def __init__(self, client, config):
        super().__init__(config)  # the `docker` section of invoke.yaml
        self.client = client
        self.images = {}      # point.image -> backends.image.ImageInfo, set before any trial

    # --- images ------------------------------------------------------------------------------

    @staticmethod
    def plan_images(bases, image=None):
        return [image] if image else list(bases)

    def prepare_images(self, bases, image=None, say=print):
        """Build or reuse the trial image of every base; `image` names a ready trial image to
        use as it is. Returns the names points use to pick their image."""
        if image:
            self.images = {image: existing_image(self.client, image)}
        else:
            self.images = {base: ensure_image(self.client, base, say=say) for base in bases}
        return list(self.images)

    def use_recorded_images(self, recorded, names, run):
        """The very images the run used (no build): ImageMismatch when one differs now (other
        code, rebuilt, gone)."""
        images = {}
        for name in names:
            info = recorded.get(name)
            if not info:
                raise ImageMismatch(f"--resume {run}: meta.json records no image for {name!r}; "
                                    f"the run cannot be resumed")
            lookup = info.get("tag") or name
            if info.get("base") == name and lookup != name:  # built from a base by ensure_image
                now = image_tag(name)
                if now != lookup:
                    raise ImageMismatch(
                        f"--resume {run}: the image differs from the run's: the run used "
                        f"{lookup} ({_short(info.get('id'))}), the code here makes {now}; resume "
                        f"with the code the run had, or start a new run")
            try:
                current = self.client.images.get(lookup)
            except docker.errors.ImageNotFound:
                raise ImageMismatch(f"--resume {run}: the image differs from the run's: {lookup} "
                                    f"({_short(info.get('id'))}) is no longer on this engine"
                                    ) from None
            if current.id != info.get("id"):
                raise ImageMismatch(f"--resume {run}: the image differs from the run's: {lookup} "
                                    f"is now {_short(current.id)}, the run used "
                                    f"{_short(info.get('id'))}")
            images[name] = ImageInfo(**{k: info.get(k) for k in ("id", "tag", "base", "python",
                                                                 "built_seconds")})
        self.images = images

    def image_for_rerun(self, recorded, base_image):
        """A point recorded on the local backend runs on `base_image`; others keep theirs."""
        return base_image if recorded in ("", "local") else recorded

    def describe(self):
        version = self.client.version()
        info = self.client.info()
        return {"backend": "docker", "engine_version": version.get("Version"),
                "api_version": version.get("ApiVersion"), "os": info.get("OperatingSystem"),
                "kernel": info.get("KernelVersion"), "cgroup_version": info.get("CgroupVersion"),
                "cgroup_driver": info.get("CgroupDriver"), "engine_cpus": info.get("NCPU")}

    def image_info(self, name=None):
        """The ImageInfo (as a dict) of the trial image called `name`, or of the first one."""
        return self._image(name).as_dict()

    def _image(self, name):
        if not self.images:
            raise RuntimeError("no trial image prepared: build or name one before running trials")
        return self.images[name] if name else next(iter(self.images.values()))

    def container_options(self, cpuset, quota, labels):
        """Isolation and limits of every trial container (networking off, read-only root ...)."""
        options = {
            "cpuset_cpus": ",".join(str(c) for c in cpuset),
            "network_mode": "none",
            "mem_limit": self.config.get("memory_limit", "1g"),
            "memswap_limit": self.config.get("memory_limit", "1g"),  # no swap: OOM is an OOM
            "pids_limit": int(self.config.get("pids_limit", 512)),
            "shm_size": self.config.get("shm_size", "256m"),
            "read_only": True,
            "tmpfs": {"/tmp": "rw,nosuid,nodev,size=64m,mode=1777"},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "user": TRIAL_USER,
            "labels": {PID_LABEL: str(os.getpid()), **(labels or {})},
        }
        if quota is not None:
            options["nano_cpus"] = int(round(quota * 1e9))  # Docker's --cpus; never with cpu_quota
        return options

    def run(self, spec, cpuset, quota, time_limit_s, labels=None, image=None):
        started = time.perf_counter()
        container = None
        try:
            # Created and its id known, or not created: a Ctrl-C during the request must not
            # leave a container the run cannot name (it waits for the end of this block).
            with self.uninterruptible():
                container = self.client.containers.create(
                    self._image(image).id, command=[json.dumps(spec)], detach=True,
                    **self.container_options(cpuset, quota, labels))
            container.start()
            timed_out = False
            try:
                status = container.wait(timeout=time_limit_s)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                timed_out = True
                container.kill()
                status = container.wait(timeout=30)
            host_seconds = time.perf_counter() - started
            container.reload()
            state = container.attrs["State"]
            stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
            stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
            return outcome_from(stdout, stderr, status.get("StatusCode"), timed_out,
                                bool(state.get("OOMKilled")), host_seconds, time_limit_s)
        finally:
            try:
                if container is not None:
                    container.remove(force=True)
            except docker.errors.APIError:
                pass  # already gone (e.g. the engine cleaned up); nothing left to keep

    def stopped_phrase(self, run_id, count):
        return (f"no container of this run is left (label {RUN_LABEL}={run_id}"
                f"{f', {count} removed' if count else ''})")

    def engine_gone(self):
        try:
            self.client.ping()
            return False
        except Exception:  # noqa: BLE001 (whatever the SDK raises, the engine does not answer)
            return True

    def close(self):
        self.client.close()

    def stop_all(self, run_id):
        """Kill and remove every container labelled with this run (and no other). Returns the count."""
        found = self.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
        for container in found:
            try:
                container.remove(force=True)
            except docker.errors.APIError:
                pass
        return len(found)
