"""A host that vanishes without closing its connection (a preempted VM, a network partition),
for real on the remote test bed: the lab's SSH connection to it is frozen (SIGSTOP of the test
bed's sshd processes that serve that one connection, the [priv] monitor and the session; no
other connection of that sshd is touched, and SIGCONT always follows).

- the lab's keepalive (ServerAliveInterval=5, CountMax=3) notices, the host is recorded lost
  with its trial in flight cut off (not a timeout), the other host (here in the same lane: one
  kernel) carries on, the run ends failed and `--resume` runs the lost trials once it is back;
- Ctrl-C with that host frozen: the other host's containers are stopped and the lab exits 130
  without waiting for the frozen one.
"""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from tests.conftest import invoke
from tests.test_hosts import (bed, lab_containers, records_of, run_folder,  # noqa: F401
                              second_engine, start, wait_until)

pytestmark = [pytest.mark.testbed, pytest.mark.engine]


def _ss(query):
    done = subprocess.run(["ss", "-tnpH", query], capture_output=True, text=True, timeout=10)
    return done.stdout.splitlines()


def connection_of(lab_pid, port):
    """The sshd pids serving the lab's master connection to the test bed (by its client
    port): [] until the lab has logged in."""
    children = subprocess.run(["pgrep", "-P", str(lab_pid), "-x", "ssh"], capture_output=True,
                              text=True).stdout.split()
    ports = set()
    for line in _ss(f"dport = :{port}"):
        pids = set(re.findall(r"pid=(\d+)", line))
        if pids & set(children):
            ports.add(line.split()[3].rsplit(":", 1)[1])
    found = []
    for client_port in ports:
        for line in _ss(f"sport = :{port} and dport = :{client_port}"):
            found += [int(pid) for pid in re.findall(r"pid=(\d+)", line)]
    return sorted(set(found))


def freeze(pids):
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)


def thaw(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def started_on_second_engine(process):
    """A trial of the run (not the probe that reads the host's facts) runs on the second
    engine."""
    return lambda: any("multicore-lab.point" in c.labels
                       for c in lab_containers(second_engine(), pid=process.pid))


WORK = ("--work", "3000000", "--variants", "strong", "--cpus", "1,2", "--seed", "7")


def test_a_frozen_connection_loses_its_host_the_other_carries_on_and_resume_finishes(
        bed, tmp_path):
    results = tmp_path / "results"
    process = start("scale", "--hosts", f"local,{bed['url']}", "--repeat", "2", *WORK,
                    "--results-dir", str(results))
    frozen = []
    try:
        assert wait_until(started_on_second_engine(process), 300, process), \
            process.communicate(timeout=60)
        frozen = connection_of(process.pid, bed["port"])
        assert len(frozen) == 2, frozen  # sshd's [priv] monitor and the session
        freeze(frozen)
        since = time.monotonic()
        out, err = process.communicate(timeout=400)  # the 600 s trial limit is not waited for
        print(f"the lab ended {time.monotonic() - since:.0f} s after the freeze")  # noqa: T201
    finally:
        thaw(frozen)
        if process.poll() is None:
            process.kill()
    note = out[-3000:] + err[-3000:]
    assert process.returncode == 1, note
    assert "Traceback" not in err, note
    folder = run_folder(results)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "failed" and list(meta["hosts_lost"]) == [bed["url"]], meta
    records = records_of(folder / "raw.jsonl")
    local = [r for r in records if r["host"] == "local"]
    far = [r for r in records if r["host"] == bed["url"]]
    planned = meta["trials_planned"] // 2
    assert len(local) == planned and all(r["ok"] for r in local), note  # carried on
    assert len(far) == planned, note
    lost = [r for r in far if not r["ok"]]
    assert lost and all(r["error"].startswith("host lost") for r in lost), lost
    assert not any(r["timed_out"] for r in far)  # a vanished host is no trial timeout
    assert "stopped answering" in lost[0]["error"], lost[0]["error"]
    # Back (the connection thawed): --resume runs the lost trials, the leftover container of
    # the cut-off trial is removed first.
    resumed = invoke("scale", "--resume", folder.name, "--results-dir", str(results))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"{len(lost)} of {2 * planned} trials to run" in resumed.stdout
    after = json.loads((folder / "meta.json").read_text())
    assert after["status"] == "complete" and "failure" not in after
    assert not lab_containers(second_engine(), run_id=folder.name)


def test_ctrl_c_with_a_frozen_host_stops_the_others_and_exits(bed, tmp_path):
    results = tmp_path / "results"
    process = start("scale", "--hosts", f"local,{bed['url']}", "--repeat", "3", *WORK,
                    "--results-dir", str(results))
    frozen = []
    try:
        assert wait_until(started_on_second_engine(process), 300, process), \
            process.communicate(timeout=60)
        frozen = connection_of(process.pid, bed["port"])
        assert len(frozen) == 2, frozen
        freeze(frozen)
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        thaw(frozen)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out[-3000:] + err[-3000:]
    assert "Traceback" not in err
    folder = run_folder(results)
    assert not lab_containers(bed["engine"], run_id=folder.name)
    assert json.loads((folder / "meta.json").read_text())["status"] == "interrupted"
    for _ in range(60):  # the thawed sshd lets the second engine's container be seen again
        if not lab_containers(second_engine(), run_id=folder.name):
            break
        time.sleep(0.5)
    leftovers = lab_containers(second_engine(), run_id=folder.name)
    for container in leftovers:  # what --resume would remove; this test removes it itself
        container.remove(force=True)
