"""The test beds themselves work, before any feature is tested on them.

`scripts/setup --remote`: a second Docker engine behind an sshd of its own on 127.0.0.1:2222,
reached the way docker-py reaches a remote host (paramiko, and the ssh command with
use_ssh_client=True), with its host key pinned. `scripts/setup --slurm`: a single-node Slurm
whose steps are pinned to cores by affinity and by a cgroup v1 cpuset.

Each bed writes its facts to /run/multicore-lab-testbed/<bed>.json when it is up. Without a bed
its tests are skipped with the reason; under CI=true they fail instead, because CI sets both up.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import IN_CI

pytestmark = pytest.mark.testbed

FACTS = Path("/run/multicore-lab-testbed")
STEP_CGROUP = re.compile(r"^/slurm[^/]*/uid_\d+/job_\d+/step_\d+$")


def need(condition, reason):
    """Skip with the reason when a test bed is missing; under CI=true fail."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)


def facts_of(bed, flag):
    path = FACTS / f"{bed}.json"
    need(path.is_file(), f"no {bed} test bed ({path} is missing): run scripts/setup {flag}")
    return json.loads(path.read_text())


def run(command, timeout=120, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


# --- the remote host: a second engine behind sshd --------------------------------------------

@pytest.fixture(scope="module")
def remote():
    facts = facts_of("remote", "--remote")
    try:
        with socket.create_connection((facts["host"], facts["port"]), timeout=5):
            pass
    except OSError as why:
        need(False, f"the remote test bed's sshd does not answer on {facts['host']}:{facts['port']} "
                    f"({why}): run scripts/setup --remote")
    try:
        import paramiko  # noqa: F401 (docker-py's ssh:// transport imports it)
    except ImportError:
        need(False, "paramiko is not installed: pip install 'docker[ssh]'")
    return facts


@pytest.fixture(scope="module")
def first_engine():
    import docker
    try:
        client = docker.from_env(timeout=20)
        return client.info()
    except Exception as why:  # noqa: BLE001 (any failure means: no engine here)
        need(False, f"the first Docker engine does not answer: {why}")


def ssh_command(facts, *options, user=None):
    """The ssh command alone (-F none: no ~/.ssh/config), host-key checking strict."""
    return ["ssh", "-F", "none", "-p", str(facts["port"]), "-l", user or facts["user"],
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
            "-o", "ControlMaster=no", "-o", "ControlPath=none", *options, facts["host"]]


@pytest.mark.parametrize("use_ssh_client", [False, True], ids=["paramiko", "ssh-command"])
def test_ssh_url_reaches_the_second_engine_not_the_first(remote, first_engine, use_ssh_client):
    import docker
    client = docker.DockerClient(base_url=remote["url"], use_ssh_client=use_ssh_client, timeout=60)
    try:
        info = client.info()
    finally:
        client.close()
    assert info["DockerRootDir"] == remote["docker_root_dir"]
    assert info["ID"] == remote["engine_id"]
    assert info["ID"] != first_engine["ID"]
    assert info["DockerRootDir"] != first_engine["DockerRootDir"]


def test_alias_from_ssh_config_reaches_the_second_engine(remote):
    import docker
    client = docker.DockerClient(base_url=remote["alias_url"], timeout=60)
    try:
        assert client.info()["ID"] == remote["engine_id"]
    finally:
        client.close()


def test_paramiko_refuses_a_host_missing_from_known_hosts(remote, tmp_path, monkeypatch):
    """docker-py reads ~/.ssh from $HOME: a home with the key but an empty known_hosts."""
    import docker
    (tmp_path / ".ssh").mkdir(mode=0o700)
    (tmp_path / ".ssh" / "config").write_text(
        f"Host {remote['host']}\n    IdentityFile {remote['identity_file']}\n")
    (tmp_path / ".ssh" / "known_hosts").write_text("")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(Exception, match="not found in known_hosts"):
        docker.DockerClient(base_url=remote["url"], timeout=20)


def test_paramiko_refuses_a_host_key_that_does_not_match(remote, tmp_path):
    import paramiko
    other = tmp_path / "other_key"
    made = run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)])
    assert made.returncode == 0, made.stderr
    key_type, key = (other.with_suffix(".pub")).read_text().split()[:2]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{remote['host']}]:{remote['port']} {key_type} {key}\n")
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect(remote["host"], port=remote["port"], username=remote["user"],
                       key_filename=remote["identity_file"], allow_agent=False,
                       look_for_keys=False, timeout=10)
    client.close()


def test_ssh_command_refuses_an_unknown_host_and_accepts_the_pinned_key(remote, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    refused = run([*ssh_command(remote, "-i", remote["identity_file"],
                                "-o", f"UserKnownHostsFile={empty}"), "true"])
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr
    pinned = run([*ssh_command(remote, "-i", remote["identity_file"],
                               "-o", f"UserKnownHostsFile={remote['testbed_known_hosts']}"),
                  "echo $DOCKER_HOST"])
    assert pinned.returncode == 0, pinned.stderr
    assert pinned.stdout.strip() == remote["remote_docker_host"]


def test_sshd_takes_keys_only(remote):
    tried = run([*ssh_command(remote, "-o", "PubkeyAuthentication=no",
                              "-o", "PreferredAuthentications=password,keyboard-interactive",
                              "-o", f"UserKnownHostsFile={remote['testbed_known_hosts']}"), "true"])
    assert tried.returncode == 255
    assert "Permission denied (publickey)" in tried.stderr
    as_root = run([*ssh_command(remote, "-i", remote["identity_file"],
                                "-o", f"UserKnownHostsFile={remote['testbed_known_hosts']}",
                                user="root"), "true"])
    assert as_root.returncode == 255


# --- Slurm: steps pinned to cores --------------------------------------------------------------

@pytest.fixture(scope="module")
def slurm():
    facts = facts_of("slurm", "--slurm")
    need(shutil.which("srun") is not None, "srun is not installed: run scripts/setup --slurm")
    ping = run(["scontrol", "ping"], timeout=30)
    need("is UP" in ping.stdout, f"slurmctld does not answer ({ping.stdout.strip()} "
                                 f"{ping.stderr.strip()}): run scripts/setup --slurm")
    return facts


# Inside the step: its affinity, its cpuset cgroup (from /proc/self/cgroup) and that cgroup's CPUs.
PROBE = ('p=$(grep -E "^[0-9]+:cpuset:" /proc/self/cgroup | cut -d: -f3-); '
         'echo "$(grep Cpus_allowed_list /proc/self/status | cut -f2) $p '
         '$(cat /sys/fs/cgroup/cpuset$p/cpuset.cpus)"')


def cpu_list(text):
    """'0-2,5' -> {0, 1, 2, 5}"""
    cpus = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def pinned_step(facts, cpus):
    done = run(["srun", "-p", facts["partition"], "-n1", f"-c{cpus}", "--cpu-bind=cores",
                "-t", "2", "sh", "-c", PROBE])
    assert done.returncode == 0, done.stderr
    affinity, cgroup, cpuset = done.stdout.split()
    return cpu_list(affinity), cgroup, cpu_list(cpuset)


@pytest.mark.parametrize("cpus", [1, 2])
def test_srun_step_is_pinned_in_affinity_and_cgroup(slurm, cpus):
    if cpus > slurm["cpus"]:
        pytest.skip(f"the node has {slurm['cpus']} CPU(s)")
    affinity, cgroup, cpuset = pinned_step(slurm, cpus)
    assert len(affinity) == cpus
    assert STEP_CGROUP.match(cgroup), cgroup
    assert Path(slurm["cgroup_root"]).name == cgroup.split("/")[1]
    assert cpuset == affinity


def test_batch_jobs_run_as_root_and_as_an_ordinary_user(slurm):
    folder = Path(tempfile.mkdtemp(prefix="mcl-sbatch-", dir="/tmp"))
    folder.chmod(0o1777)
    try:
        for user, status in (("root", 3), ("nobody", 0)):
            command = ["sbatch", "--wait", "--parsable", "-p", slurm["partition"], "-n1", "-c1",
                       "-t", "2", f"--chdir={folder}", f"--output={folder}/%j.out",
                       "--wrap", f"id -un; exit {status}"]
            if user != "root":
                need(os.geteuid() == 0, "submitting as another user needs root (runuser)")
                command = ["runuser", "-u", user, "--", *command]
            done = run(command)
            job = done.stdout.strip().split(";")[0]
            assert done.returncode == status, (done.stdout, done.stderr)
            assert (folder / f"{job}.out").read_text().strip() == user
            shown = run(["scontrol", "show", "job", job]).stdout
            assert f"ExitCode={status}:0" in shown
            assert f"UserId={user}(" in shown
    finally:
        shutil.rmtree(folder, ignore_errors=True)
