"""--hosts as people write them for cloud VMs: ~/.ssh/config aliases (HostName, Port, User,
IdentityFile, ProxyJump through a bastion, Include, names with '_' and '.'), a host with an engine
and no docker CLI, and a `local` engine that is not this machine, told by its boot id.

Every test here drives the real invoke command line. A test's own ~/.ssh is mounted over the real
one in a mount namespace of the lab process alone (OpenSSH reads ~ from the password database,
never $HOME); the test bed's sshd on 127.0.0.1:2222 stands in for both bastion and VM.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import containers_started_by
from tests.test_hosts import (SSH_HOME, assert_pinned_per_host, bed, invoke_mounted,  # noqa: F401
                              invoke_with_ssh_dir, lab_containers, logins, records_of, refused,
                              run_folder, second_engine, ssh_dir)

pytestmark = [pytest.mark.testbed, pytest.mark.engine]

SMALL = ("--repeat", "1", "--work", "300000", "--variants", "strong", "--seed", "7")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

# What a user keeps for two cloud VMs: an include of per-project files, a bastion in front of a
# private subnet, names with '_' and '.', ports as numbers.
MAIN_CONFIG = """\
Include ~/.ssh/config.d/*.conf
Host *
    IdentitiesOnly yes
"""
VMS_CONFIG = """\
Host bastion_1
    HostName 127.0.0.1
    Port 2222
    User mclab-remote
    IdentityFile ~/.ssh/id_lab
Host labvm_a
    HostName 127.0.0.1
    Port 2222
    User mclab-local
    IdentityFile ~/.ssh/id_lab
    ProxyJump bastion_1
Host nocli.vm
    HostName 127.0.0.1
    Port 2222
    User mclab-nocli
    IdentityFile ~/.ssh/id_lab
"""


def cloud_ssh_dir(bed, tmp_path, extra=""):
    folder = ssh_dir(bed, tmp_path, MAIN_CONFIG)
    (folder / "config.d").mkdir(mode=0o700)
    (folder / "config.d" / "vms.conf").write_text(VMS_CONFIG + extra)
    (folder / "config.d" / "vms.conf").chmod(0o600)
    return folder


def ssh_processes_naming(text):
    found = []
    for proc in Path("/proc").iterdir():
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line and line.startswith("ssh"):
            found.append(line)
    return found


def test_ssh_config_aliases_bastion_include_and_a_host_without_docker_cli_run_end_to_end(
        bed, tmp_path):
    folder = cloud_ssh_dir(bed, tmp_path)
    # The control: mclab-nocli really has no docker on its PATH there.
    seen = subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                           "-i", bed["identity_file"], "-p", str(bed["port"]),
                           f"{bed['nocli_user']}@{bed['host']}", "command -v docker || echo none"],
                          capture_output=True, text=True, timeout=60)
    assert seen.stdout.strip() == "none", seen.stdout + seen.stderr
    # A TMPDIR of the test's own (short: the lab's sockets live there) to see it left empty.
    temp = Path(tempfile.mkdtemp(prefix="mclab-test-", dir="/tmp"))
    results = tmp_path / "results"
    hosts = ["ssh://labvm_a", "ssh://nocli.vm"]
    before = {user: logins(user) for user in ("mclab-remote", "mclab-local", "mclab-nocli")}
    done = invoke_with_ssh_dir(folder, "scale", "--hosts", ",".join(hosts), "--cpus", "1,2",
                               *SMALL, "--results-dir", str(results), env={"TMPDIR": str(temp)})
    note = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0, note
    assert "Traceback" not in done.stderr
    run = run_folder(results)
    meta = json.loads((run / "meta.json").read_text())
    assert list(meta["hosts"]) == hosts
    first, second = meta["hosts"]["ssh://labvm_a"], meta["hosts"]["ssh://nocli.vm"]
    # labvm_a (through the bastion) is this machine's engine; nocli.vm the second one
    assert first["backend"]["engine_id"] == first["engine_id"] == bed["engine"].info()["ID"]
    assert second["backend"]["engine_id"] == second["engine_id"] == bed["engine_id"]
    for facts in (first, second):
        assert facts["facts_from"] == "a probe container on the host"
        assert facts["boot_id"] == BOOT_ID.read_text().strip()  # the same kernel, by identity
    records = records_of(run / "raw.jsonl")
    assert len(records) == meta["trials_planned"] and len(records) % 2 == 0
    assert_pinned_per_host(records, hosts)
    if before["mclab-remote"] is not None:  # one login each: bastion, and each VM behind it
        assert {user: logins(user) - count for user, count in before.items()} == {
            "mclab-remote": 1, "mclab-local": 1, "mclab-nocli": 1}
    # The private socket folders and the ssh processes are gone with the run.
    assert not list(temp.glob("mclab-ssh-*"))
    assert ssh_processes_naming(str(temp)) == []
    shutil.rmtree(temp)
    assert not lab_containers(bed["engine"], run_id=run.name)
    assert not lab_containers(second_engine(), run_id=run.name)


@pytest.mark.parametrize("name, extra, expect", [
    ("typo", "Host typo_vm\n    HostName 127.0.0.1\n    Portt 2222\n",
     "ssh cannot read its configuration"),
    ("badport", "Host badport_vm\n    HostName 127.0.0.1\n    Port twentytwo\n",
     "ssh cannot read its configuration"),
    ("deadport", "Host deadport_vm\n    HostName 127.0.0.1\n    Port 1\n",
     "nothing answers on 127.0.0.1 port 1"),
    ("deadbastion", "Host deadbastion_vm\n    HostName 10.0.0.9\n    ProxyJump nobastion\n"
                    "Host nobastion\n    HostName 127.0.0.1\n    Port 1\n",
     "nothing answers on 127.0.0.1 port 1 (through nobastion)"),
    ("noforward", "Host noforward_vm\n    HostName 127.0.0.1\n    Port 2222\n"
                  "    User mclab-remote\n    IdentityFile ~/.ssh/id_noforward\n",
     "its sshd refuses to forward"),
])
def test_ssh_config_troubles_are_refused_in_one_line(bed, tmp_path, name, extra, expect):
    folder = cloud_ssh_dir(bed, tmp_path, extra)
    if name == "noforward":  # a key that logs in but may forward nothing (restrict)
        key = folder / "id_noforward"
        key.write_bytes(Path(bed["noforward_identity_file"]).read_bytes())
        key.chmod(0o600)
    line = refused(bed, tmp_path, f"ssh://{name}_vm", cpus="1", ssh=folder, expect=expect)
    assert f"host ssh://{name}_vm" in line
    assert "PRIVATE KEY" not in line


def test_an_alias_whose_host_key_is_not_pinned_is_refused_and_nothing_is_added(bed, tmp_path):
    folder = cloud_ssh_dir(bed, tmp_path)
    (folder / "known_hosts").write_text("")
    refused(bed, tmp_path, "ssh://nocli.vm", cpus="1", ssh=folder,
            expect="not in ~/.ssh/known_hosts")
    assert (folder / "known_hosts").read_text() == ""


def test_a_host_lacking_the_image_when_this_machine_cannot_build_its_base_is_refused(
        bed, tmp_path):
    """A laptop with no Docker engine (and no debootstrap) cannot make the offline base: said
    in one line, before anything is built or written."""
    remote = second_engine()
    for name in ("multicore-lab", "multicore-lab-base"):  # nothing there to build on either
        for image in remote.images.list(name=name):
            for tag in image.tags:
                remote.images.remove(tag, force=True)
    line = refused(bed, tmp_path, bed["url"], cpus="1",
                   env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine-here.sock"},
                   expect="lacks the trial image")
    assert "a Docker engine" in line and "--base-image python:3.13-slim" in line


def run_scale(results, mounts=(), env=None):
    args = ("scale", "--backend", "docker", "--cpus", "1", *SMALL, "--results-dir", str(results))
    return invoke_mounted(list(mounts), *args, env=env)


@pytest.fixture
def forwarded_engine(bed):
    """This machine's engine behind a forwarded socket (ssh -L through the test bed's sshd, as
    mclab-local): what the lab sees of Docker Desktop's VM or a socket forwarded from elsewhere,
    a socket no dockerd of this kernel holds."""
    folder = Path(tempfile.mkdtemp(prefix="mclab-fwd-", dir="/tmp"))
    sock = folder / "docker.sock"
    process = subprocess.Popen(
        ["ssh", "-nNT", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
         "-o", "IdentitiesOnly=yes", "-i", bed["identity_file"], "-p", str(bed["port"]),
         "-L", f"{sock}:/var/run/docker.sock", f"{bed['local_user']}@{bed['host']}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock.exists(), process.stderr.read() if process.poll() is not None else "no socket"
        yield f"unix://{sock}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_local_engine_on_another_kernel_gets_its_facts_from_the_probe(bed, tmp_path,
                                                                         forwarded_engine):
    """`local` whose engine runs on another machine (Docker Desktop's VM, a forwarded socket)
    stands here as a forwarded socket, seen by a lab whose own boot id differs (bind-mounted in
    its namespace): its CPUs and facts come from the probe there, never this machine's /proc."""
    real = BOOT_ID.read_text().strip()
    engine_id = bed["engine"].info()["ID"]
    fake = tmp_path / "boot_id"
    fake.write_text("00000000-0000-4000-8000-000000000000\n")
    elsewhere = run_scale(tmp_path / "elsewhere", [(fake, BOOT_ID)],
                          env={"DOCKER_HOST": forwarded_engine})
    assert elsewhere.returncode == 0, elsewhere.stdout[-3000:] + elsewhere.stderr[-3000:]
    meta = json.loads((run_folder(tmp_path / "elsewhere") / "meta.json").read_text())
    assert meta["host"]["facts_from"] == "a probe container on the host"
    assert meta["host"]["boot_id"] == real and meta["host"]["engine_id"] == engine_id
    # The control: the engine's own socket, held by a dockerd of this kernel: this machine's
    # facts, and no probe container needed to tell.
    since = int(time.time())
    here = run_scale(tmp_path / "here")
    assert here.returncode == 0, here.stdout[-3000:] + here.stderr[-3000:]
    meta = json.loads((run_folder(tmp_path / "here") / "meta.json").read_text())
    assert meta["host"]["facts_from"] == "this machine"
    assert meta["host"]["boot_id"] == real and meta["host"]["engine_id"] == engine_id
    labels = {e["Actor"]["Attributes"].get("multicore-lab.run")
              for e in containers_started_by(bed["engine"], here.pid, since)}
    assert "host-probe" not in labels
    for folder in ("elsewhere", "here"):
        records = records_of(run_folder(tmp_path / folder) / "raw.jsonl")
        assert records and all(r["ok"] for r in records)
        assert all(r["seen"]["affinity"] == [int(c) for c in r["cpuset"].split(",")]
                   for r in records)
