"""The docker backend: one container per trial, through the Docker SDK (never the docker command).

Lifecycle: create, start, wait with the trial's time limit, read exit code, OOMKilled and logs,
then remove. Never `remove=True`: the engine would take the exit status and logs with it.
"""

import contextlib
import json
import os
import time

import docker
import requests

from lab.backends import PID_LABEL, RUN_LABEL, BackendUnavailable, outcome_from

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


class DockerBackend:
    name = "docker"

    def __init__(self, client, config):
        self.client = client
        self.config = config  # the `docker` section of invoke.yaml
        self.images = {}      # point.image -> lab.image.ImageInfo, set before any trial
        # Steps a signal must not cut in half; the runner lends its signal guard's `shielded`.
        self.uninterruptible = contextlib.nullcontext

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

    def stop_all(self, run_id):
        """Kill and remove every container labelled with this run (and no other). Returns the count."""
        found = self.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
        for container in found:
            try:
                container.remove(force=True)
            except docker.errors.APIError:
                pass
        return len(found)
