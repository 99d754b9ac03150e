"""A trial reaches nothing (issue 7): no network, a read-only root, not root, no capabilities,
its limits set and no host path, against controls that show each check can fail; a spec reaches
the trial as data, never shell text. Shared helpers: tests/robustness_kit.py.
"""

import fcntl
import io
import json
import os
import socket
import struct
import threading
import time

import pytest

from lab.backends import RUN_LABEL
from lab.run import plan as plans
from tests.robustness_kit import (
    TEST_REPOSITORY)

# --- nothing reached ---------------------------------------------------------------------------

def probe_point(variant, params=None, cpuset=(0,)):
    return plans.make_point(experiment="probe", variant=variant, limit="cpuset",
                            cpus=len(cpuset), cpuset=list(cpuset), quota=None,
                            placement="spread", workers=1, start_method="fork",
                            params=params or {})


def interface_ipv4(name):
    """The IPv4 address of a host network interface (SIOCGIFADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as handle:
        packed = fcntl.ioctl(handle.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
    return socket.inet_ntoa(packed[20:24])


class Listener:
    """A TCP listener on every host address, on a free port; remembers who connected."""

    def __init__(self):
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("0.0.0.0", 0))
        self.server.listen(8)
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.peers = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                connection, peer = self.server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.peers.append(peer[0])
            connection.close()

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.fixture(scope="module")
def owned_home_image(engine, trial_image):
    """The trial image plus one folder the trial user owns (/home/trial), so that a write the
    user's permissions allow shows what the read-only root alone refuses."""
    dockerfile = (f"FROM {trial_image.tag}\nUSER 0:0\n"
                  f"RUN mkdir -p /home/trial && chown 10001:10001 /home/trial\nUSER 10001:10001\n")
    tag = f"{TEST_REPOSITORY}:isolation-{os.getpid()}"
    image, _ = engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                                   network_mode="none")
    yield image
    try:
        engine.images.remove(image.id, force=True)  # this test's own image, nothing else
    except Exception:  # noqa: BLE001
        pass


def run_container(client, image_id, spec, options):
    """A control container: `options` as given; returns the probe's check."""
    container = client.containers.create(image_id, command=[json.dumps(spec)], detach=True,
                                         **options)
    try:
        container.start()
        status = container.wait(timeout=60)
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        err = container.logs(stdout=False, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    result = json.loads(out.strip().splitlines()[-1])
    assert status["StatusCode"] == 0 and result["ok"], (result, err)
    return result["check"]


def test_trial_reaches_no_network_and_cannot_write_its_root_against_controls(
        engine, owned_home_image, listener):
    from lab.backends.docker import DockerBackend
    from lab.backends.image import ImageInfo
    from lab.run.runner import trial_spec
    bridge = engine.networks.get("bridge").attrs.get("Options", {}).get(
        "com.docker.network.bridge.name", "docker0")
    host = interface_ipv4(bridge)
    spec = trial_spec(probe_point("isolation", {"host": host, "port": listener.port,
                                                "paths": ["/", "/home/trial", "/tmp"]}))
    backend = DockerBackend(engine, {"memory_limit": "256m", "shm_size": "64m"})
    backend.images = {"isolation": ImageInfo(owned_home_image.id, owned_home_image.tags[0],
                                             "test", None)}
    options = backend.container_options([0], None, {RUN_LABEL: "test-isolation"})

    # Controls: the same image, spec and options but for networking / the read-only root.
    networked = run_container(engine, owned_home_image.id, spec,
                              {**options, "network_mode": "bridge"})
    assert networked["connect"] == "connected", networked
    deadline = time.monotonic() + 5
    while not listener.peers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(listener.peers) == 1
    writable = run_container(engine, owned_home_image.id, spec, {**options, "read_only": False})
    assert writable["writes"]["/home/trial"] == "ok" and "rw" in writable["root_mount"], writable

    # The trial itself, as every trial runs (DockerBackend.run with container_options).
    outcome = backend.run(spec, [0], None, 60, {RUN_LABEL: "test-isolation"}, "isolation")
    assert outcome.error is None, outcome.stderr_tail
    check = outcome.result["check"]
    assert check["connect"] in ("ENETUNREACH", "EHOSTUNREACH", "timeout"), check
    time.sleep(0.5)
    assert len(listener.peers) == 1  # only the control ever reached the host
    assert "ro" in check["root_mount"] and "rw" not in check["root_mount"], check
    assert check["owned"]["/home/trial"] is True  # the user's own folder ...
    assert check["writes"]["/home/trial"] == "EROFS"  # ... is read-only all the same
    assert check["writes"]["/"] == "EROFS"
    assert check["writes"]["/tmp"] == "ok"  # the tmpfs is where a trial writes
    assert check["uid"] != 0 and check["euid"] != 0 and check["uid"] == 10001
    assert int(check["status"]["CapEff"], 16) == 0 and check["status"]["NoNewPrivs"] == "1"
    assert engine.containers.list(all=True, filters={"label": f"{RUN_LABEL}=test-isolation"}) == []


def test_trial_container_has_its_limits_and_no_host_path(engine, trial_image):
    from lab.backends.docker import DockerBackend
    backend = DockerBackend(engine, {"memory_limit": "256m", "shm_size": "64m", "pids_limit": 128})
    container = engine.containers.create(
        trial_image.id, command=["{}"],
        **backend.container_options([0], None, {RUN_LABEL: "test-isolation"}))
    try:
        attrs = container.attrs
    finally:
        container.remove(force=True)
    host = attrs["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd") and not host["Privileged"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == 128 and host["Memory"] == 256 * 2**20
    assert host["MemorySwap"] == host["Memory"] and host["ShmSize"] == 64 * 2**20
    assert not host.get("Binds") and not host.get("Mounts") and attrs["Mounts"] == []
    assert list(host["Tmpfs"]) == ["/tmp"]
    assert attrs["Config"]["User"] == "10001:10001"


INJECTIONS = {"substitution": "$(touch /tmp/pwned)", "chain": "; rm -rf / ;",
              "backticks": "`touch /tmp/pwned`", "quotes": "'\"\\", "lines": "a\nb && touch x"}


def test_a_spec_with_shell_text_reaches_the_trial_verbatim(docker_backend):
    from lab.run.runner import trial_spec
    spec = trial_spec(probe_point("echo", {**INJECTIONS, "marker": "/tmp/pwned"}))
    outcome = docker_backend.run(spec, [0], None, 60)
    assert outcome.error is None, outcome.stderr_tail
    check = outcome.result["check"]
    assert check["argv"] == [json.dumps(spec)]  # one argument, the JSON, untouched
    assert check["params"] == spec["params"]
    assert check["marker_exists"] is False  # no shell ever ran it (/tmp is the trial's tmpfs)


def test_the_local_backend_passes_the_spec_as_data_too(tmp_path):
    from lab.backends.local import LocalBackend
    from lab.run.runner import trial_spec
    marker = tmp_path / "pwned"
    params = {"substitution": f"$(touch {marker})", "chain": f"; touch {marker} ;",
              "backticks": f"`touch {marker}`", "marker": str(marker)}
    spec = trial_spec(probe_point("echo", params))
    outcome = LocalBackend({}).run(spec, [0], None, 60)
    assert outcome.error is None, outcome.stderr_tail
    assert outcome.result["check"]["argv"] == [json.dumps(spec)]
    assert outcome.result["check"]["params"] == params
    assert not marker.exists()
