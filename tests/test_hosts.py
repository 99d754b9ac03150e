"""Several hosts in one run (--hosts), for real, on the remote test bed (scripts/setup --remote):
a second Docker engine with an image store of its own behind an sshd on 127.0.0.1:2222
(ssh://mclab-remote@...), and this machine's own engine through the same sshd
(ssh://mclab-local@...). No VM is reachable from here; these two stand in for them.

- a two-host run (`local` beside an ssh host; and both through ssh): every trial pinned right
  on its host, per-host facts from the host, the image shipped into the emptied second engine,
  one SSH login per host for the whole run, compare between the hosts of one run;
- the second engine killed mid-run: the first host's trials complete, the run fails (exit 1),
  `--resume` finishes the second once it is back;
- Ctrl-C stops every host's containers;
- unknown host, refused key, unreachable port, fewer CPUs than asked: one line, exit 2,
  nothing written, no container anywhere.
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, invoke
from tests.test_testbed import facts_of, need

pytestmark = [pytest.mark.testbed, pytest.mark.engine]

TESTBED = PROJECT_ROOT / "scripts" / "testbed" / "remote"
SSHD_LOG = Path("/var/log/multicore-lab-remote-sshd.log")


@pytest.fixture(scope="module")
def bed(engine, trial_image):
    """The remote test bed's facts, its second engine answering over ssh."""
    facts = facts_of("remote", "--remote")
    need("local_url" in facts, "the remote test bed predates ssh://mclab-local: rerun "
                               "scripts/setup --remote")
    need("nocli_url" in facts, "the remote test bed predates forwarding and mclab-nocli: rerun "
                               "scripts/setup --remote")
    from lab.backends import BackendUnavailable
    from lab.backends.docker import connect_host
    try:
        client = connect_host(facts["url"])
    except BackendUnavailable as why:
        need(False, f"the remote test bed does not answer over ssh ({why}): run "
                    f"scripts/setup --remote")
    facts["client"] = client
    facts["engine"] = engine
    yield facts
    client.close()


def second_engine():
    """A client of the second engine through its own socket (not ssh): it survives sshd."""
    import docker
    return docker.DockerClient(base_url="unix:///run/multicore-lab-remote/docker.sock",
                               timeout=60)


def lab_containers(client, pid=None, run_id=None):
    filters = {"label": f"multicore-lab.pid={pid}"} if pid else {
        "label": f"multicore-lab.run={run_id}"}
    return client.containers.list(all=True, filters=filters)


def records_of(raw):
    return [json.loads(line) for line in Path(raw).read_text().splitlines() if line.strip()]


def run_folder(results):
    runs = [p for p in Path(results).iterdir() if p.is_dir() and not p.is_symlink()
            and not p.name.startswith("compare")]
    assert len(runs) == 1, runs
    return runs[0]


def logins(user):
    """How many SSH logins of `user` the test bed's sshd accepted so far."""
    if not SSHD_LOG.exists():
        return None
    return sum(1 for line in SSHD_LOG.read_text(errors="replace").splitlines()
               if "Accepted publickey for " + user + " " in line)


SMALL = ("--work", "300000", "--variants", "strong", "--cpus", "1,2", "--seed", "7")


def assert_pinned_per_host(records, hosts):
    assert {r["host"] for r in records} == set(hosts)
    for record in records:
        assert record["ok"], record["error"]
        assert record["seen"]["affinity"] == [int(c) for c in record["cpuset"].split(",")]


def overlaps(records):
    """How many trials started before an earlier one (of any host) ended, by the engines' own
    clocks (the container's start and end as its engine saw them)."""
    spans = sorted((r["engine_started_at"], r["engine_finished_at"]) for r in records)
    assert all(start and end and start <= end for start, end in spans), spans
    return sum(1 for i in range(1, len(spans)) if spans[i][0] < max(e for _, e in spans[:i]))


def assert_one_machine(meta, hosts):
    """The hosts (two engines of this kernel) are said to be one machine, in meta.json and its
    warnings (the report shows those)."""
    for host in hosts:
        assert meta["hosts"][host]["shares_machine_with"] == [h for h in hosts if h != host]
    assert len({meta["hosts"][h]["boot_id"] for h in hosts}) == 1
    shared = [w for w in meta["warnings"] if w["code"] == "shared-machine"]
    assert len(shared) == 1 and all(h in shared[0]["message"] for h in hosts)
    assert "not independent" in shared[0]["message"]


def test_two_hosts_local_and_ssh_ship_the_image_pin_every_trial_and_record_each_host(
        bed, tmp_path):
    remote = second_engine()
    # An empty image store for the trial image: shipping is proven, not assumed.
    for image in remote.images.list(name="multicore-lab"):
        for tag in image.tags:
            remote.images.remove(tag, force=True)
    results = tmp_path / "results"
    before = logins(bed["user"])
    done = invoke("scale", "--hosts", f"local,{bed['url']}", "--repeat", "1", *SMALL,
                  "--results-dir", str(results))
    note = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0, note
    assert "Traceback" not in done.stderr
    assert "shipping image multicore-lab:" in done.stdout and "to host " + bed["url"] in done.stdout
    folder = run_folder(results)
    meta = json.loads((folder / "meta.json").read_text())
    assert list(meta["hosts"]) == ["local", bed["url"]]
    far = meta["hosts"][bed["url"]]
    assert far["facts_from"] == "a probe container on the host"
    assert far["backend"]["engine_id"] == bed["engine_id"]
    assert meta["hosts"]["local"]["backend"]["engine_id"] != bed["engine_id"]
    assert far["usable_cpus"] == len(far["topology"]["cpus"]) >= 2
    assert far["cpu_model"] and far["kernel"] and far["virtualisation"]
    shipped = next(iter(far["images"].values()))
    assert shipped["shipped_bytes"] > 10 * 2**20 and shipped["shipped_seconds"] > 0
    assert shipped["id"] == next(iter(meta["hosts"]["local"]["images"].values()))["id"]
    records = records_of(folder / "raw.jsonl")
    assert len(records) == meta["trials_planned"] == 2 * 3 * 2  # hosts x points x rounds
    assert_pinned_per_host(records, ["local", bed["url"]])
    # Two engines of one kernel (this machine's CPUs): one lane, no trial beside another.
    assert overlaps(records) == 0
    assert_one_machine(meta, ["local", bed["url"]])
    assert "are one machine (one kernel)" in done.stdout
    plan = json.loads((folder / "plan.json").read_text())
    assert {p["host"] for p in plan["points"]} == {"local", bed["url"]}
    if before is not None:  # one SSH login for the whole run: channels are reused
        assert logins(bed["user"]) - before == 1
    report = (folder / "report.md").read_text()
    assert "## Hosts" in report and bed["url"] in report
    assert "shared-machine" in report and "not independent" in report
    # Two hosts of one run compared point by point.
    compared = invoke("compare", folder.name, folder.name, "--host-a", "local", "--host-b",
                      bed["url"], "--results-dir", str(results))
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "differs: host: local -> " + bed["url"] in compared.stdout
    assert not lab_containers(bed["engine"], run_id=folder.name)
    assert not lab_containers(remote, run_id=folder.name)


def test_two_hosts_both_through_ssh_run_ipc_side_by_side(bed, tmp_path):
    results = tmp_path / "results"
    hosts = [bed["local_url"], bed["url"]]
    done = invoke("ipc", "--hosts", ",".join(hosts), "--channels", "pipe,queue", "--messages",
                  "2000", "--sizes", "0", "--patterns", "stream", "--end-placement", "free",
                  "--cpus", "1", "--repeat", "1", "--results-dir", str(results))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    folder = run_folder(results)
    meta = json.loads((folder / "meta.json").read_text())
    # the first engine reached through ssh is this machine's engine; the second is not
    assert meta["hosts"][bed["local_url"]]["backend"]["engine_id"] == bed["engine"].info()["ID"]
    assert meta["hosts"][bed["url"]]["backend"]["engine_id"] == bed["engine_id"]
    records = records_of(folder / "raw.jsonl")
    assert_pinned_per_host(records, hosts)
    assert len({r["host"] for r in records}) == 2
    assert overlaps(records) == 0  # one kernel: the two engines' trials take turns
    assert_one_machine(meta, hosts)


def test_two_entries_that_reach_one_engine_are_refused_naming_both(bed, tmp_path):
    line = refused(bed, tmp_path, f"local,{bed['local_url']}", expect="reach one Docker engine")
    assert f"hosts local and {bed['local_url']} " in line


def start(*args):
    command = [str(Path(sys.executable).with_name("invoke")), *args]
    return subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_until(predicate, timeout, process):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def records_on(results, host):
    try:
        folder = run_folder(results)
        return [r for r in records_of(folder / "raw.jsonl") if r["host"] == host]
    except (AssertionError, FileNotFoundError, OSError, ValueError):
        return []


def engine_pid():
    return int(Path("/run/multicore-lab-remote/dockerd.pid").read_text().strip())


def test_second_engine_killed_mid_run_first_host_completes_and_resume_finishes(bed, tmp_path):
    results = tmp_path / "results"
    process = start("scale", "--hosts", f"local,{bed['url']}", "--repeat", "2", *SMALL,
                    "--results-dir", str(results))
    try:
        assert wait_until(lambda: len(records_on(results, bed["url"])) >= 2, 300, process), \
            process.communicate(timeout=60)
        os.kill(engine_pid(), signal.SIGKILL)  # the second engine only, never the first
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
        up = subprocess.run([str(TESTBED), "up"], capture_output=True, text=True, timeout=300)
    note = out[-3000:] + err[-3000:]
    assert up.returncode == 0, up.stdout + up.stderr
    assert process.returncode == 1, note
    assert "Traceback" not in err, note
    folder = run_folder(results)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "failed" and bed["url"] in meta["failure"], meta.get("failure")
    records = records_of(folder / "raw.jsonl")
    local = [r for r in records if r["host"] == "local"]
    far = [r for r in records if r["host"] == bed["url"]]
    planned = meta["trials_planned"] // 2
    assert len(local) == planned and all(r["ok"] for r in local), note  # carried on
    lost = [r for r in far if not r["ok"]]
    assert lost and all(r["error"].startswith("host lost") for r in lost)
    assert len(far) == planned  # in flight and not yet run: recorded failed, with the reason
    resumed = invoke("scale", "--resume", folder.name, "--results-dir", str(results))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"{len(lost)} of {2 * planned} trials to run" in resumed.stdout
    from lab import records as lab_records
    final = lab_records.read_records(folder / "raw.jsonl", warn=lambda *_: None)
    keys = {(r["point_id"], r["round"]) for r in final if r["ok"]}
    assert len(keys) == 2 * planned, "every trial of both hosts measured once resumed"
    after = json.loads((folder / "meta.json").read_text())
    assert after["status"] == "complete"
    # complete now: the failure is history, not the run's state
    assert "failure" not in after and "hosts_lost" not in after
    assert after["failures"] == [{"failure": meta["failure"], "hosts_lost": meta["hosts_lost"],
                                  "resolved_by_resume": 1}]
    # Trials of `local` alone left (as if the lab died before they ran): resumed, they are
    # still `local`'s, not a host named after this machine.
    lines = (folder / "raw.jsonl").read_text().splitlines(keepends=True)
    drop = [i for i, line in enumerate(lines) if json.loads(line)["host"] == "local"][-2:]
    (folder / "raw.jsonl").write_text("".join(l for i, l in enumerate(lines) if i not in drop))
    again = invoke("scale", "--resume", folder.name, "--results-dir", str(results))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"2 of {2 * planned} trials to run" in again.stdout
    final = records_of(folder / "raw.jsonl")
    assert {r["host"] for r in final} == {"local", bed["url"]}
    assert len([r for r in final if r["host"] == "local" and r["ok"]]) == planned
    assert "failure" not in json.loads((folder / "meta.json").read_text())


def test_ctrl_c_stops_every_hosts_containers(bed, tmp_path):
    results = tmp_path / "results"
    process = start("scale", "--hosts", f"local,{bed['url']}", "--repeat", "3", "--work",
                    "3000000", "--variants", "strong", "--cpus", "1,2", "--results-dir",
                    str(results))
    try:
        assert wait_until(lambda: len(records_on(results, bed["url"])) >= 1
                          and len(records_on(results, "local")) >= 1, 300, process)
        time.sleep(0.5)  # both hosts have a trial in flight now
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out[-3000:] + err[-3000:]
    assert "no container of this run is left on any host" in out
    folder = run_folder(results)
    assert not lab_containers(bed["engine"], run_id=folder.name)
    assert not lab_containers(second_engine(), run_id=folder.name)
    assert json.loads((folder / "meta.json").read_text())["status"] == "interrupted"


SSH_HOME = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh"  # OpenSSH's ~: never $HOME


def ssh_dir(bed, tmp_path, config="", known_hosts=True):
    """A ~/.ssh of the test's own: the test bed's key as id_lab, its pinned host key (unless
    not), and `config`; what `invoke_with_ssh_dir` mounts over the real one."""
    folder = tmp_path / "dot-ssh"
    folder.mkdir(mode=0o700)
    shutil.copyfile(bed["identity_file"], folder / "id_lab")
    (folder / "id_lab").chmod(0o600)
    pinned = Path(bed["testbed_known_hosts"]).read_text() if known_hosts else ""
    (folder / "known_hosts").write_text(pinned)
    (folder / "config").write_text(config)
    (folder / "config").chmod(0o600)
    return folder


def invoke_mounted(mounts, *args, env=None):
    """The real invoke command line in a mount namespace of its own, each (source, target) of
    `mounts` bound over its target there (nothing changes outside). The pid stays invoke's."""
    need(os.geteuid() == 0 and shutil.which("unshare") is not None,
         "needs root and unshare to give the lab its own ~/.ssh or boot id")
    binds = [str(part) for pair in mounts for part in pair]
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               'while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 97; shift 2; done; '
               'shift; exec "$@"', "sh", *binds, "--",
               str(Path(sys.executable).with_name("invoke")), *args]
    with subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **(env or {})}) as process:
        stdout, stderr = process.communicate(timeout=900)
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    done.pid = process.pid
    return done


def invoke_with_ssh_dir(folder, *args, env=None):
    """invoke with `folder` as ~/.ssh: OpenSSH reads ~/.ssh/config from the password database's
    home, never $HOME, so a test's own config needs the very path a user's has."""
    need(SSH_HOME.is_dir(), f"{SSH_HOME} is missing: run scripts/setup --remote")
    return invoke_mounted([(folder, SSH_HOME)], *args, env=env)


def refused(bed, tmp_path, hosts, cpus="1,2", env=None, expect="", ssh=None):
    results = tmp_path / "results"
    since = int(time.time())
    args = ("scale", "--hosts", hosts, "--repeat", "1", "--work", "300000", "--cpus", cpus,
            "--results-dir", str(results))
    done = invoke_with_ssh_dir(ssh, *args, env=env) if ssh else invoke(*args, env=env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert expect in lines[0], lines[0]
    assert not results.exists() or not any(results.iterdir())
    for client in (bed["engine"], second_engine()):
        created = list(client.events(since=since, until=int(time.time()) + 1, decode=True,
                                     filters={"type": "container", "event": "create",
                                              "label": f"multicore-lab.pid={done.pid}"}))
        assert created == []
    return lines[0]


def test_unknown_hosts_are_refused_in_one_line(bed, tmp_path):
    refused(bed, tmp_path, "local,ssh://lab@no-such-host.invalid", expect="unknown host name")
    refused(bed, tmp_path, "no-such-context", expect="no Docker context of that name")
    refused(bed, tmp_path, "tcp://10.0.0.5:2375", expect="unknown kind of host")


def test_a_key_the_host_refuses_is_refused_in_one_line(bed, tmp_path):
    # A ~/.ssh of its own (mounted over the real one: OpenSSH ignores $HOME) whose only key is
    # not authorised there.
    folder = ssh_dir(bed, tmp_path)
    key = folder / "not_authorised"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (folder / "config").write_text(f"Host {bed['host']}\n    IdentityFile {SSH_HOME}/not_authorised"
                                   f"\n    IdentitiesOnly yes\n")
    line = refused(bed, tmp_path, bed["url"], ssh=folder, expect="the SSH login was refused")
    assert "not_authorised" not in line and "PRIVATE KEY" not in line


def test_a_host_missing_from_known_hosts_is_refused_in_one_line(bed, tmp_path):
    folder = ssh_dir(bed, tmp_path, f"Host {bed['host']}\n    IdentityFile ~/.ssh/id_lab\n",
                     known_hosts=False)
    refused(bed, tmp_path, bed["url"], ssh=folder, expect="not in ~/.ssh/known_hosts")
    assert (folder / "known_hosts").read_text() == ""  # nothing added, ever


def test_an_unreachable_port_is_refused_in_one_line(bed, tmp_path):
    refused(bed, tmp_path, f"local,ssh://{bed['user']}@127.0.0.1:1", expect="nothing answers")


def test_a_host_with_fewer_cpus_than_asked_is_refused_naming_it(bed, tmp_path):
    count = bed["client"].info()["NCPU"]
    line = refused(bed, tmp_path, bed["url"], cpus=f"1,{count + 1}",
                   expect=f"host {bed['url']}: --cpus")
    assert f"allowed: 1 to {count}" in line


def test_hosts_flag_and_point_ids(tmp_path):
    import hashlib
    from lab.run.options import BadInput, hosts
    from lab.run.plan import make_point
    assert hosts("local,ssh://me@vm:2222,my-context") == ["local", "ssh://me@vm:2222",
                                                          "my-context"]
    listed = tmp_path / "hosts.txt"
    listed.write_text("# the VMs\nssh://ubuntu@vm-a\nssh://ubuntu@vm-b:2222  # arm64\n")
    assert hosts(f"local,@{listed}") == ["local", "ssh://ubuntu@vm-a", "ssh://ubuntu@vm-b:2222"]
    for bad in ("ssh://me:secret@vm", "local,local", "ssh://vm:99999", "a b"):
        with pytest.raises(BadInput) as why:
            hosts(bad)
        assert "secret" not in str(why.value)
    fields = dict(experiment="probe", variant="seen", limit="cpuset", cpus=1, cpuset=[0],
                  quota=None, placement="spread", workers=1, start_method="fork", image="x")
    alone = make_point(**fields)
    before = {**alone.as_dict()}
    del before["host"]  # a single-host run's ids are those it had before --hosts existed
    digest = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:6]
    assert alone.point_id == f"probe.seen.c1.w1.{digest}"
    assert make_point(**fields, host="local").point_id != alone.point_id


def test_an_alias_from_ssh_config_is_a_host(bed):
    """`ssh://mclab-remote:2222`: HostName from ~/.ssh/config, as `ssh` reads it."""
    from lab.backends.docker import DockerBackend, connect_host
    client = connect_host(bed["alias_url"])
    try:
        backend = DockerBackend(client, {}, host=bed["alias_url"])
        assert backend.remote and backend.describe()["engine_id"] == bed["engine_id"]
        assert len(backend.cpus()) == client.info()["NCPU"]
    finally:
        client.close()
