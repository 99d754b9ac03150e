"""The docker backend: one container per trial, through the Docker SDK (never the docker command).

Lifecycle: create, start, wait with the trial's time limit, read exit code, OOMKilled and logs,
then remove. Never `remove=True`: the engine would take the exit status and logs with it.
"""

import json
import os
import time

import docker
import requests

from lab.backends import (HOST_PYTHON, PID_LABEL, RUN_LABEL, Backend, BackendUnavailable,
                          ImageMismatch, outcome_from)
from lab.backends import docker_input, ssh_tunnel
from lab.experiments.project import PROJECT_ENV
from lab.backends.image import (ImageInfo, ImageError, ensure_image, existing_image,
                                image_on_host, image_tag, offline_suite, recorded_python)

TRIAL_USER = "10001:10001"  # not root inside the trial, whatever the base image says
# images derived from a run's trial image (lab.backends.requirements_image, project_image): the
# run's code by their recorded id alone
DERIVED_REPOSITORIES = ("multicore-lab-req", "multicore-lab-project")
PROJECT_MOUNT = "/project"  # where a trial sees the user's folder (--command, --target)


def connect(timeout_s=5):
    """A client whose engine answers a ping, or BackendUnavailable saying what is wrong."""
    url = os.environ.get("DOCKER_HOST", "")
    if url.startswith("ssh://"):  # as for --hosts: OpenSSH, one login, the socket forwarded
        return ssh_tunnel.connect(url, f"DOCKER_HOST={url}", REMOTE_TIMEOUT_S)
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
        return client
    except Exception as error:  # the SDK raises several unrelated types for "nobody answers"
        reason = str(error).split("\n")[0][:200]
        raise BackendUnavailable(f"the Docker engine does not answer: {reason}") from None


REMOTE_TIMEOUT_S = 60   # API calls to a remote engine (a load of an image gets longer)
PROBE_LABEL = "host-probe"  # RUN_LABEL of the container that reads a host's facts
BOOT_ID = "/proc/sys/kernel/random/boot_id"  # not namespaced: a container sees its kernel's


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def connect_host(host, timeout_s=REMOTE_TIMEOUT_S):
    """A client of the Docker engine of `host` (--hosts): `local` (DOCKER_HOST or the current
    context, as the docker CLI), an ssh://[user@]host[:port] URL or ~/.ssh/config alias (OpenSSH:
    one login per host and run, the engine's socket forwarded; host keys checked against
    known_hosts, never added: lab.backends.ssh_tunnel), or a Docker context name.
    BackendUnavailable in one line when it cannot be had."""
    if host == "local":
        return connect()
    if host.startswith("ssh://"):
        return ssh_tunnel.connect(host, host, timeout_s)
    from docker.context import ContextAPI
    try:
        context = ContextAPI.get_context(host)
    except Exception as error:  # noqa: BLE001 (a damaged context store)
        raise BackendUnavailable(f"host {host}: cannot read Docker context {host!r} "
                                 f"({_first_line(error)})") from None
    if context is None:
        raise BackendUnavailable(f"unknown host {host!r}: not `local`, not an "
                                 f"ssh://[user@]host[:port] URL, and no Docker context of "
                                 f"that name (see `docker context ls`)")
    url = context.Host or ""
    if url.startswith("ssh://"):
        return ssh_tunnel.connect(url, host, timeout_s)
    try:
        client = docker.DockerClient.from_context(host, timeout=timeout_s)
        client.ping()
        return client
    except Exception as error:  # noqa: BLE001
        raise BackendUnavailable(f"host {host}: the Docker engine of context {host!r} "
                                 f"does not answer: {_first_line(error)}") from None


def is_remote(client):
    """Whether `client` reaches its engine over a network (an SSH tunnel, tcp) rather than a
    socket of this machine: then CPUs and facts always come from a probe container there."""
    if getattr(client, "tunnel", None) is not None:
        return True
    return not str(getattr(client.api, "base_url", "")).startswith("http+docker://local")


def this_boot_id():
    """This machine's boot id (None off Linux: then no engine is taken for this machine)."""
    try:
        with open(BOOT_ID) as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def engine_process_here(client):
    """Whether the engine's unix socket is held by a dockerd process of this kernel (the
    socket's peer credentials): then the engine runs on this machine and no probe is needed. A
    forwarded socket (ssh, socat) or Docker Desktop's proxy is not dockerd: the probe decides."""
    import socket
    import struct
    path = getattr(getattr(client.api, "_custom_adapter", None), "socket_path", None)
    if not path or not hasattr(socket, "SO_PEERCRED"):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer:
            peer.settimeout(2)
            peer.connect(path)
            pid, _, _ = struct.unpack("3i", peer.getsockopt(socket.SOL_SOCKET,
                                                            socket.SO_PEERCRED, 12))
        with open(f"/proc/{pid}/comm") as comm:  # 0: not in this pid namespace
            return pid > 0 and comm.read().strip().endswith("dockerd")
    except OSError:
        return False


def same_kernel_and_cpus(info):
    """A first guess, before a probe can run: an engine whose kernel release or CPU count
    differs from this machine's runs elsewhere (Docker Desktop's VM, a forwarded socket)."""
    import platform
    return (info.get("KernelVersion") == platform.release()
            and int(info.get("NCPU") or 0) == os.cpu_count())


class HostGone(RuntimeError):
    """The engine stopped answering in the middle of a trial (its host lost, not a timeout)."""


PING_TIMEOUT_S = 10  # is the engine there? (an API call's own limit is REMOTE_TIMEOUT_S)


def engine_time(stamp):
    """An engine's RFC 3339 time (nanoseconds, Z) as seconds since the epoch; None for none."""
    from datetime import datetime
    if not stamp or stamp.startswith("0001-"):
        return None
    whole, _, rest = stamp.rstrip("Z").partition(".")
    import re
    fraction = re.match(r"\d*", rest).group()
    zone = rest[len(fraction):] or ("" if "+" in whole[10:] else "+00:00")
    try:
        seconds = datetime.fromisoformat(whole + zone).timestamp()
    except ValueError:
        return None
    return seconds + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def _has(client, name):
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def _short(image_id):
    return str(image_id or "?").replace("sha256:", "")[:12]


class DockerBackend(Backend):
    name = "docker"
    engine_words = "the Docker engine"
    trial_overhead_s = 0.6  # create, start, wait, logs, remove (README: ~360 ms here) and Python
    supports_quota = True
    host_forms = docker_input.HOST_FORMS
    host_item = staticmethod(docker_input.host_item)
    refusal = staticmethod(docker_input.refusal)

    def __init__(self, client, config, host="", source=None):
        super().__init__(config)  # the `docker` section of invoke.yaml
        self.client = client
        self.images = {}      # point.image -> backends.image.ImageInfo, set before any trial
        self.host = host      # its name in --hosts ("" for the default engine alone)
        self.through = is_remote(client)  # over a network: facts always from the host
        self.source = source  # () -> this machine's engine (images shipped from it), or None
        self._probed = None   # what the probe container saw there, its boot id among it
        self._guess = None    # before any probe: whether the engine's kernel and CPUs are ours
        self._here = None     # whether a dockerd of this kernel holds its socket
        self.project = None   # the user's folder its trials see read-only (share_project)
        self.trial_user = TRIAL_USER  # the folder's owner once one is shared (not root)

    @property
    def where(self):
        return f"host {self.host}" if self.host else "the engine"

    # --- the host: CPUs and facts from the host itself ---------------------------------------

    @property
    def remote(self):
        """Whether trials run on another machine than this one, by identity, not by URL: reached
        over a network; or a socket here not held by a dockerd of this kernel (Docker Desktop's
        VM, a forwarded socket) whose engine's boot id (its probe's, once a trial image is
        there) is not this machine's; until a probe can run, an engine whose kernel or CPU count
        is not this machine's."""
        if self.through:
            return True
        if self._here is None:
            self._here = engine_process_here(self.client)
        if self._here:
            return False
        boot_id = self._identity().get("boot_id")
        if boot_id:
            return boot_id != this_boot_id()
        if self._guess is None:
            self._guess = same_kernel_and_cpus(self.client.info())
        return not self._guess

    def _identity(self):
        """The probe's findings once a trial image is there ({} before, or when a local
        engine's probe failed: its trials will say why)."""
        if self._probed is None and self.images:
            try:
                self._probe()
            except BackendUnavailable:
                if self.through:
                    raise
                self._probed = {}
        return self._probed or {}

    def cpus(self):
        """This machine's CPUs for an engine on this machine; another machine's from its probe
        container (once its image is there), until then its engine's CPU count, flat."""
        if not self.remote:
            return super().cpus()
        from lab.hosts import topology
        probed = self._identity()
        if probed.get("cpus"):
            return topology.cpus_from(probed["cpus"])
        return topology.flat(int(self.client.info().get("NCPU") or 1))

    def host_facts(self):
        info = self.client.info()
        if not self.remote:
            facts = {**super().host_facts(), "boot_id": this_boot_id(),
                     "engine_id": info.get("ID"), "facts_from": "this machine"}
            return {**facts, "host": self.host} if self.host else facts
        from lab.hosts import facts
        probed = self._identity() or self._probe()
        return facts.from_probe(probed, info, self.host or "remote")

    def _probe(self):
        """Run `probe host` in a container there (all its CPUs, no network): what it sees."""
        spec = {"experiment": "probe", "variant": "host", "params": {}, "workers": 1,
                "start_method": "fork", "expect_affinity": None, "time_limit_s": 60}
        outcome = self.run(spec, None, None, 60, {RUN_LABEL: PROBE_LABEL})
        if outcome.error:
            raise BackendUnavailable(f"{self.where}: the probe container that reads its facts "
                                     f"failed: {outcome.error}")
        self._probed = outcome.result.get("check") or {}
        return self._probed

    # --- images ------------------------------------------------------------------------------

    @staticmethod
    def plan_images(bases, image=None):
        return [image] if image else list(bases)

    def prepare_images(self, bases, image=None, say=print):
        """Build or reuse the trial image of every base; `image` names a ready trial image to
        use as it is. Returns the names points use to pick their image."""
        if image:
            self.images = {image: existing_image(self.client, image)}
        elif self.through:
            source = self.source() if self.source else None
            images = {}
            for base in bases:
                self._can_get_image(base, source)
                images[base] = image_on_host(self.client, base, source, say=say,
                                             where=self.where)
            self.images = images
        else:
            self.images = {base: ensure_image(self.client, base, say=say) for base in bases}
        return list(self.images)

    def _can_get_image(self, base, source):
        """ImageError in one line, before anything is built, when the host lacks the trial image
        of an offline base that only this machine can make (Docker and debootstrap, as root)."""
        if not offline_suite(base) or any(_has(self.client, name)
                                          for name in (image_tag(base), base)):
            return
        if source is not None and any(_has(source, name) for name in (image_tag(base), base)):
            return
        import shutil
        lacking = [what for what, ok in (
            ("a Docker engine", source is not None), ("debootstrap", shutil.which("debootstrap")),
            ("root", os.geteuid() == 0)) if not ok]
        if lacking:
            raise ImageError(f"{self.where} lacks the trial image, and its base {base} is built "
                             f"on this machine, which lacks {' and '.join(lacking)}: run "
                             f"`scripts/setup --engine` here (as root), or pass --base-image "
                             f"python:3.13-slim to build the image on the host from Docker Hub")

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
            # built from a base by ensure_image; a --requirements image (derived from the trial
            # image the run had) is the run's code by its id alone, checked below
            if info.get("base") == name and lookup != name and \
                    lookup.split(":")[0] not in DERIVED_REPOSITORIES:
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
        return base_image if recorded in ("", HOST_PYTHON) else recorded

    def describe(self):
        version = self.client.version()
        info = self.client.info()
        described = {"backend": "docker", "engine_version": version.get("Version"),
                     "api_version": version.get("ApiVersion"), "os": info.get("OperatingSystem"),
                     "kernel": info.get("KernelVersion"),
                     "cgroup_version": info.get("CgroupVersion"),
                     "cgroup_driver": info.get("CgroupDriver"), "engine_cpus": info.get("NCPU")}
        if self.host:
            described.update(host=self.host, engine_id=info.get("ID"), remote=self.remote,
                             architecture=info.get("Architecture"))
        return described

    def known_python(self, name):
        """The Python labelled on the trial image of base `name` (or on image `name`) when it
        was built, if that image is on this engine: read from its labels, no container."""
        return recorded_python(self.client, image_tag(name)) or recorded_python(self.client, name)

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
            "network_mode": "none",
            "mem_limit": self.config.get("memory_limit", "1g"),
            "memswap_limit": self.config.get("memory_limit", "1g"),  # no swap: OOM is an OOM
            "pids_limit": int(self.config.get("pids_limit", 512)),
            "shm_size": self.config.get("shm_size", "256m"),
            "read_only": True,
            "tmpfs": {"/tmp": "rw,nosuid,nodev,size=64m,mode=1777"},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "user": self.trial_user,
            "labels": {PID_LABEL: str(os.getpid()), **(labels or {})},
        }
        if self.project is not None:  # the user's code: read-only, where the trial starts it
            options["volumes"] = {self.project: {"bind": PROJECT_MOUNT, "mode": "ro"}}
            options["environment"] = {PROJECT_ENV: PROJECT_MOUNT}
        if cpuset is not None:  # None: every CPU of the host (its probe)
            options["cpuset_cpus"] = ",".join(str(c) for c in cpuset)
        if quota is not None:
            options["nano_cpus"] = int(round(quota * 1e9))  # Docker's --cpus; never with cpu_quota
        return options

    def share_project(self, path, say=print):
        """Show the user's folder `path` to every trial, read-only at PROJECT_MOUNT (--command,
        --target): a bind mount here; an engine on another machine, which cannot see this
        machine's files, gets them baked into an image made here and shipped
        (lab.backends.project_image)."""
        if self.remote:
            from lab.backends import project_image
            if all(i.tag.startswith(f"{project_image.REPOSITORY}:") for i in self.images.values()):
                return  # --resume: the run's recorded images hold the folder already
            source = self._source_for_own_code(path)
            self.images = {name: project_image.on_host(
                source, self.client, project_image.baked_image(
                    source, project_image.source_image(source, info, self.where), path, say),
                say, self.where) for name, info in self.images.items()}
            return
        self.project = path
        owner = os.stat(path)
        if owner.st_uid != 0:  # the folder's owner reads it as on this machine; never root
            self.trial_user = f"{owner.st_uid}:{owner.st_gid}"

    def add_requirements(self, requirements, say=print):
        """Every trial image with `requirements` installed (lab.backends.requirements_image:
        wheels fetched on this machine, a derived image cached by their digest); an engine on
        another machine gets it built here and shipped (lab.backends.project_image)."""
        from lab.backends.requirements_image import derived_image
        if self.remote:
            from lab.backends import project_image
            source = self._source_for_own_code(requirements)
            self.images = {name: project_image.on_host(
                source, self.client, derived_image(
                    source, project_image.source_image(source, info, self.where), requirements,
                    say), say, self.where) for name, info in self.images.items()}
            return
        self.images = {name: derived_image(self.client, info, requirements, say)
                       for name, info in self.images.items()}

    def _source_for_own_code(self, path):
        """This machine's engine, where the images of the user's code are made for a remote
        host; BackendUnavailable in one line when there is none."""
        source = self.source() if self.source else None
        if source is None:
            raise BackendUnavailable(f"{self.where} runs on another machine and no engine here "
                                     f"can pack {path} for it; allowed: your own code on this "
                                     f"machine's engine (--hosts local), --backend local, or "
                                     f"slurm")
        return source

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
            status, timed_out = self._wait(container, started + time_limit_s)
            host_seconds = time.perf_counter() - started
            container.reload()
            state = container.attrs["State"]
            stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
            stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
            outcome = outcome_from(stdout, stderr, status.get("StatusCode"), timed_out,
                                   bool(state.get("OOMKilled")), host_seconds, time_limit_s)
            # the engine's own clock (the host's): when the trial's process started and ended
            outcome.extra.update(engine_started_at=engine_time(state.get("StartedAt")),
                                 engine_finished_at=engine_time(state.get("FinishedAt")))
            return outcome
        finally:
            try:
                if container is not None:
                    container.remove(force=True)
            except docker.errors.APIError:
                pass  # already gone (e.g. the engine cleaned up); nothing left to keep

    def _wait(self, container, deadline):
        """(exit status, timed out): the limit reached is a timeout (the container killed); a
        connection that drops while the engine still answers is waited on again; one whose
        engine is gone (the host, its SSH connection) raises HostGone, never a timeout."""
        while True:
            try:
                return container.wait(timeout=max(1.0, deadline - time.perf_counter())), False
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as why:
                if time.perf_counter() >= deadline - 0.5:
                    container.kill()
                    return container.wait(timeout=30), True
                if self.engine_gone():
                    raise HostGone(f"{self.engine_words} stopped answering during the trial "
                                   f"({_first_line(why)})") from None
                time.sleep(0.5)

    def stopped_phrase(self, run_id, count):
        return (f"no container of this run is left (label {RUN_LABEL}={run_id}"
                f"{f', {count} removed' if count else ''})")

    def engine_gone(self, timeout_s=PING_TIMEOUT_S):
        """Its SSH connection ended, or its engine does not answer a ping within `timeout_s`."""
        tunnel = getattr(self.client, "tunnel", None)
        if tunnel is not None and not tunnel.alive():
            return True
        try:
            api = self.client.api
            api._result(api._get(api._url("/_ping"), timeout=timeout_s))
            return False
        except Exception:  # noqa: BLE001 (whatever the SDK raises, the engine does not answer)
            return True

    def boot_id(self):
        """Its kernel's boot id: which machine it runs on (None when it cannot be told)."""
        return this_boot_id() if not self.remote else self._identity().get("boot_id")

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
