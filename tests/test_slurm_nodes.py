"""A Slurm run over several nodes, without a cluster: every record's host is the run's
(`<partition>@<cluster>`) and its node is beside it; curves and baselines are per host, so a
speedup is never one node's T(1) over another node's T(c); --per-node deals trials, not points,
over the nodes; lab.slurm.max_nodes caps the nodes held; the jobs of a run, its pre-run check and
its calibration carry names of their own; the user is the uid's; a step's start is the trial's
own stamp or Slurm's StartTime, never srun's wording; srun starts inside the runner's guard."""

import json
import os
import pwd
import threading
import time
from types import SimpleNamespace

import pytest

from lab.analysis import nodes as node_views, scaling, trials as trial_frames
from lab.backends import slurm, slurm_step
from lab.backends.slurm_nodes import NodeDealer, max_nodes_of

HOST = "bench@multicore-lab"
NODES = {"vm": {"State": "IDLE", "CPUTot": "1"}, "node2": {"State": "IDLE", "CPUTot": "1"}}


def _backend(per_node=1, max_nodes=None, nodes=NODES, tmp_path=None):
    config = {"results_dir": str(tmp_path or "results")}
    if max_nodes is not None:
        config["slurm"] = {"max_nodes": max_nodes}
    backend = slurm.SlurmBackend(config, "bench", dict(nodes), {"CPUTot": "1"}, per_node=per_node)
    backend.code_dir = backend.code_root / "abc"
    backend.cluster = "multicore-lab"
    return backend


class _Process:
    def __init__(self, returncode=0):
        self.returncode = returncode

    def poll(self):
        return self.returncode


def _step(node, started_at, launch_line=True):
    step = SimpleNamespace(submitted=started_at - 0.5, job_id="41", step_id="0", node=None,
                           started=None, process=_Process(0))
    if launch_line:  # what srun -v said, read as it came: a hint only
        step.node = "elsewhere"
    return step


def _stdout(node, started_at, seconds=1.0):
    return json.dumps({"ok": True, "error": None, "python": "3.13.0", "started_at": started_at,
                       "seconds": seconds, "metrics": {}, "seen": {},
                       "slurm": {"job_id": "41", "step_id": "0", "node": node,
                                 "cgroup": "/slurm/uid_0/job_41/step_0", "cpuset": "1"}}) + "\n"


# --- 1. the host is the run's, the node beside it ---------------------------------------------------

def test_a_trials_record_carries_the_run_host_and_its_node_beside_it():
    from lab.run.runner import make_record
    backend = _backend()
    started = time.time() - 2.0
    outcome = backend._outcome(_step("node2", started), _stdout("node2", started), "", started + 1.5,
                               60, None)
    assert "host" not in outcome.extra  # the node never stands in for the host
    assert outcome.extra["node"] == "node2"
    trial = SimpleNamespace(point=SimpleNamespace(
        point_id="p", experiment="scaling", variant="strong", start_method="fork", limit="cpuset",
        cpus=1, cpuset=(0,), quota=None, placement="spread", workers=1, params_dict={},
        image="slurm"), round=0, repeat=0, warmup=False)
    record = make_record("run-1", trial, outcome, backend, HOST)
    assert record["host"] == HOST and record["node"] == "node2"


def _made_up(host_of=lambda node: HOST):
    """Strong scaling on two unlike nodes (node2 is 1.5 x slower): T(1) 2 s on vm, 3 s on node2;
    T(2) 1 s and 1.5 s; every point's five trials over both nodes, as dealt."""
    records = []
    for cpus, base in ((1, 2.0), (2, 1.0)):
        for repeat in range(6):
            node = ("vm", "node2")[repeat % 2]
            seconds = base * (1.5 if node == "node2" else 1.0) * (1 + 0.001 * repeat)
            records.append({"schema": 1, "run_id": "made-up", "round": repeat, "repeat": repeat,
                            "point_id": f"strong-{cpus}", "experiment": "scaling",
                            "variant": "strong", "limit": "cpuset", "cpus": cpus, "quota": None,
                            "placement": "spread", "workers": cpus, "start_method": "fork",
                            "backend": "slurm", "python": "3.13.0", "image": "slurm-code:abc",
                            "host": host_of(node), "node": node, "params": {"work": 1000},
                            "ok": True, "warmup": False, "seconds": seconds, "metrics": {}})
    return records


def test_curves_and_baselines_are_per_host_over_both_nodes():
    frame = trial_frames.trials_frame(_made_up())
    summary = scaling.scaling_summary(frame).set_index("point_id")
    # one curve, one baseline: medians over both nodes, never node A over node B
    assert summary.loc["strong-2", "speedup"] == pytest.approx(2.0, rel=0.01)
    assert len(list(scaling.strong_curves(summary.reset_index()))) == 1
    # what the old code recorded (host = node, --per-node binding a point to one node's lane):
    # the 2-CPU point on node2 looked for its baseline "on node2", found none: speedup gone
    old = [{**r, "node": n, "host": n} for r in _made_up()
           for n in [("vm", "node2")[r["cpus"] - 1]]]
    lost = scaling.scaling_summary(trial_frames.trials_frame(old)).set_index("point_id")
    assert lost.loc["strong-2", "speedup"] != lost.loc["strong-2", "speedup"]  # NaN


def test_the_report_words_count_trials_per_node_and_the_node_to_node_spread():
    frame = trial_frames.trials_frame(_made_up())
    table = node_views.node_table(frame).set_index("node")
    assert table.loc["vm", "trials"] == table.loc["node2", "trials"] == 6
    assert set(table["host"]) == {HOST}
    spread = node_views.node_spread(frame).set_index("point_id")
    assert spread.loc["strong-1", "spread"] == pytest.approx(0.5, rel=0.01)
    lines = node_views.node_lines(frame)
    assert lines[0].startswith(f"{HOST}: ") and "node vm 6 trial(s)" in lines[0]
    assert "node-to-node spread" in lines[1] and "50." in lines[1]
    warning = node_views.node_warning(frame)
    assert warning["code"] == "nodes-differ" and "2 point(s)" in warning["message"]
    one = trial_frames.trials_frame([r for r in _made_up() if r["node"] == "vm"])
    assert node_views.node_lines(one) == [] and node_views.node_warning(one) is None


# --- 2. --per-node deals trials, not points ----------------------------------------------------------

def test_per_node_deals_each_points_trials_over_the_nodes():
    dealer = NodeDealer(["vm", "node2"], per_node=2)
    seen = []
    for _ in range(4):  # one lane running a point's trials one after another
        node = dealer.take("strong-1")
        seen.append(node)
        dealer.give_back(node)
    assert seen.count("vm") == seen.count("node2") == 2
    # four lanes at once: every place taken, two on each node, the fifth waits for one
    held = [dealer.take(f"p{i}") for i in range(4)]
    assert sorted(held) == ["node2", "node2", "vm", "vm"]
    got = []
    waiter = threading.Thread(target=lambda: got.append(dealer.take("p9")))
    waiter.start()
    time.sleep(0.2)
    assert got == []
    dealer.give_back("node2")
    waiter.join(5)
    assert got == ["node2"]


def test_a_lane_is_no_node_and_a_dealt_trial_names_its_node():
    backend = _backend(per_node=2)
    assert backend.slots() == 4 and backend.host_words(3) == "Slurm lane 3"
    dealt = backend.step_command("multicore-lab-r", 1, 60, ["-c", "pass"], node="node2")
    assert "--nodelist=node2" in dealt.argv and "--exclusive" not in dealt.argv
    whole = _backend().step_command("multicore-lab-r", 1, 60, ["-c", "pass"])
    assert "--exclusive" in whole.argv and not any(a.startswith("--nodelist") for a in whole.argv)


# --- 4. names, user, guard, max nodes ----------------------------------------------------------------

def test_max_nodes_caps_the_nodes_held_and_defaults_to_the_idle_ones():
    busy = {**NODES, "node3": {"State": "MIXED"}}
    assert max_nodes_of(None, busy)[0] == 2 and "idle nodes (2)" in max_nodes_of(None, busy)[1]
    assert max_nodes_of("1", busy) == (1, "lab.slurm.max_nodes 1")
    assert max_nodes_of(9, busy)[0] == 3
    with pytest.raises(ValueError, match="allowed: auto"):
        max_nodes_of("0", busy)
    backend = _backend(per_node=2, max_nodes=1)
    assert backend.slots() == 2 and backend.held == ["node2"]  # idle first, by name
    assert "at most 1 node(s) held at once" in backend.summary()
    assert backend.describe()["max_nodes"] == 1
    assert _backend(nodes=busy).slots() == 2  # default: the idle nodes


def test_the_user_is_the_uids_and_each_invocation_names_its_own_jobs(monkeypatch):
    monkeypatch.setenv("USER", "somebody-else")
    one, two = _backend(), _backend()
    assert one.user == pwd.getpwuid(os.getuid()).pw_name
    assert one.token != two.token
    names = []

    class Stop(Exception):
        pass

    def started(argv, **_):
        names.append(next(a for a in argv if a.startswith("--job-name=")))
        raise Stop()

    monkeypatch.setattr(slurm_step.subprocess, "Popen", started)
    for backend in (one, two):
        with pytest.raises(Stop):
            backend.run({"experiment": "scaling"}, [0], None, 60, {slurm.RUN_LABEL: "calibration"})
        with pytest.raises(Stop):
            backend.run({"experiment": "scaling"}, [0], None, 60,
                        {slurm.RUN_LABEL: "20261206-scale-1"})
    assert names[0] == f"--job-name=multicore-lab-calibration-{one.token}"
    assert names[2] == f"--job-name=multicore-lab-calibration-{two.token}"
    assert names[1] == names[3] == "--job-name=multicore-lab-20261206-scale-1"


def test_srun_starts_inside_the_guard_and_a_stopped_run_starts_none(monkeypatch):
    backend = _backend()
    order = []

    class Stopped(Exception):
        pass

    from contextlib import contextmanager

    @contextmanager
    def guard():
        order.append("guard")
        raise Stopped()
        yield  # noqa: unreachable

    backend.uninterruptible = guard
    monkeypatch.setattr(slurm_step.subprocess, "Popen",
                        lambda *a, **k: order.append("srun") or pytest.fail("srun started"))
    with pytest.raises(Stopped):
        backend.run({"experiment": "scaling"}, [0], None, 60, {slurm.RUN_LABEL: "r"})
    assert order == ["guard"]


# --- 5. the step's start: the trial's stamp or Slurm's record --------------------------------------

def test_the_steps_start_is_the_trials_stamp_not_srun_wording():
    backend = _backend()
    started = time.time() - 10.0
    step = _step("vm", started, launch_line=False)  # srun said no launch line at all
    outcome = backend._outcome(step, _stdout("vm", started, 1.0), "", started + 1.25, 60, None)
    assert outcome.error is None
    assert outcome.host_seconds == pytest.approx(1.25)
    assert outcome.extra["queue_seconds"] == pytest.approx(0.5)
    assert outcome.extra["node"] == "vm"


def test_slurms_start_time_is_read_when_the_trial_said_nothing(monkeypatch):
    backend = _backend()
    stamp = "2026-12-06T00:04:19"
    epoch = slurm_step.slurm_time(stamp)
    assert epoch == time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))
    assert slurm_step.slurm_time("Unknown") is None
    monkeypatch.setattr(slurm_step, "show", lambda kind, name=None, timeout=30: [
        {"JobState": "RUNNING", "StartTime": stamp}])
    assert backend._start_time("41") == epoch
    monkeypatch.setattr(slurm_step, "show", lambda kind, name=None, timeout=30: [
        {"JobState": "PENDING", "StartTime": "Unknown"}])
    assert backend._start_time("41") is None


def test_the_report_shows_a_nodes_section_and_warns_only_for_a_host_of_several_nodes():
    from lab.present import report
    frame = trial_frames.trials_frame(_made_up())
    (section,) = report.nodes_section(frame)
    assert section.title == "Nodes" and any("node vm 6 trial(s)" in line
                                            for line in section.blocks[0][1])
    one = trial_frames.trials_frame([r for r in _made_up() if r["node"] == "vm"])
    assert report.nodes_section(one) == []


def test_max_nodes_is_a_flag_refused_in_one_line_and_said_in_the_plan():
    """--max-nodes 0 is refused before anything runs; --max-nodes 1 is what the dry run's
    backend line says the run would hold."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    invoke = str(Path(sys.executable).with_name("invoke"))
    bad = subprocess.run([invoke, "scale", "--backend", "slurm", "--max-nodes", "0",
                          "--dry-run"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: --max-nodes '0': not allowed; allowed: auto (the partition's idle nodes) or a "
        "whole number of at least 1"]
    if shutil.which("sinfo") is None:
        pytest.skip("needs the Slurm test bed for the plan's backend line")
    done = subprocess.run([invoke, "scale", "--backend", "slurm", "--partition", "pair",
                           "--max-nodes", "1", "--dry-run"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "at most 1 node(s) held at once (--max-nodes 1)" in done.stdout


def test_compare_takes_two_nodes_of_one_run(tmp_path):
    """`invoke compare RUN RUN --node-a vm --node-b node2`: node2 is 1.5x slower in the made-up
    run, and the comparison says so point by point; an unknown node is refused in one line."""
    import csv
    import subprocess
    import sys
    from pathlib import Path
    run = tmp_path / "20261206T000000Z-scale-nod2"
    run.mkdir()
    (run / "meta.json").write_text(json.dumps({"schema": 1, "run_id": run.name, "task": "scale",
                                               "status": "complete"}))
    (run / "raw.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _made_up()))
    invoke = str(Path(sys.executable).with_name("invoke"))
    done = subprocess.run([invoke, "compare", str(run), str(run), "--node-a", "vm", "--node-b",
                           "node2", "--results-dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / f"compare-{run.name}-vm-vs-{run.name}-node2"
    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert {r["cpus"] for r in rows} == {"1", "2"}
    assert all(float(r["ratio_b_over_a"]) == pytest.approx(1.5, rel=0.01) for r in rows)
    assert "A: node vm" in done.stdout and "B: node node2" in done.stdout
    bad = subprocess.run([invoke, "compare", str(run), str(run), "--node-a", "nope",
                          "--results-dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"error: run {run.name} has no trials on node 'nope'; its nodes: node2, vm"]
    same = subprocess.run([invoke, "compare", str(run), run.name, "--node-a", "vm", "--node-b",
                           "vm", "--results-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)  # one folder, named two ways, the same node on both sides
    assert same.returncode == 2 and same.stderr.strip().splitlines() == [
        f"error: compare: A and B are the same run ({run.name}); allowed: two runs, or one run's "
        f"hosts or nodes set apart by --host-a/--host-b or --node-a/--node-b"]
