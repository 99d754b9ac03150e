"""The slurm backend over two nodes (scripts/setup --slurm: partition `pair` holds node `vm` and
`node2`, a second slurmd in its own network namespace), through the commands a user types: a
scale run spread over both nodes with one host and one curve; `--per-node 2` dealing each
point's trials over the nodes; Ctrl-C with two lanes leaving no job of the run (a bystander
job untouched), then `--resume` completing the run. No timing is asserted: both nodes share
this machine's CPUs."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.analysis import nodes as node_views, scaling, trials as trial_frames
from tests.conftest import PROJECT_ROOT, invoke
from tests.test_slurm import SMALL_SCALE, jobs_named, lab_records
from tests.test_testbed import facts_of, need


@pytest.fixture(scope="module")
def pair():
    facts = facts_of("slurm", "--slurm")
    need(facts.get("pair_partition"), "the Slurm test bed has one node: run scripts/setup --slurm")
    state = subprocess.run(["sinfo", "-h", "-p", facts["pair_partition"], "-o", "%n %T"],
                           capture_output=True, text=True, timeout=30).stdout.split("\n")
    need(sum(1 for line in state if line.split()[1:2] and line.split()[1].rstrip("*~#!%$@^-")
             in ("idle", "mixed", "allocated", "completing")) == 2,
         f"partition {facts['pair_partition']} has not two usable nodes: {state}")
    return facts


def both_idle(pair, wait_s=180):
    """Wait until no job (anyone's: the suite's other Slurm tests) holds a node of `pair`, so
    that Slurm has both nodes to choose from."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        state = subprocess.run(["sinfo", "-h", "-p", pair["pair_partition"], "-o", "%T"],
                               capture_output=True, text=True, timeout=30).stdout.split()
        if state and all(s.startswith("idle") for s in state):
            return
        time.sleep(0.5)
    pytest.fail(f"partition {pair['pair_partition']} still busy after {wait_s} s: {state}")


def squeue_all():
    return subprocess.run(["squeue", "-h", "-o", "%i %j %u %T %N"], capture_output=True,
                          text=True, timeout=30).stdout.strip().splitlines()


def scale(pair, results, *extra):
    both_idle(pair)
    return invoke("scale", "--backend", "slurm", "--partition", pair["pair_partition"],
                  *SMALL_SCALE, "--repeat", "2", "--seed", "5", *extra,
                  "--results-dir", str(results))


def one_host_both_nodes(found, pair):
    host = f"{pair['pair_partition']}@{pair['cluster']}"
    assert {r["host"] for r in found} == {host}  # the run's host, never a node
    assert {r["node"] for r in found if r["ok"]} == {pair["node"], pair["second_node"]}
    frame = trial_frames.trials_frame(found)
    summary = scaling.scaling_summary(frame)
    strong = summary[(summary["variant"] == "strong") & (summary["cpus"] == 2)]
    assert len(strong) == 1 and strong["speedup"].iloc[0] > 0  # its baseline found, same host
    assert len(list(scaling.strong_curves(summary))) == 1
    table = node_views.node_table(frame)
    assert set(table["node"]) == {pair["node"], pair["second_node"]}
    return table


@pytest.mark.testbed
def test_a_scale_run_spreads_over_both_nodes_with_one_host_and_one_curve(pair, tmp_path):
    done = scale(pair, tmp_path / "results")
    assert done.returncode == 0, done.stdout + done.stderr
    folder = (tmp_path / "results" / "latest").resolve()
    found = lab_records(folder)
    one_host_both_nodes(found, pair)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["backend"]["max_nodes"] == 2 and sorted(meta["backend"]["nodes_held"]) == \
        sorted([pair["node"], pair["second_node"]])
    assert "at most 2 node(s) held at once" in (folder / "report.md").read_text()


@pytest.mark.testbed
def test_per_node_2_deals_each_points_trials_over_both_nodes(pair, tmp_path):
    done = scale(pair, tmp_path / "results", "--per-node", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    found = lab_records((tmp_path / "results" / "latest").resolve())
    one_host_both_nodes(found, pair)
    by_point = {}
    for record in found:
        by_point.setdefault(record["point_id"], set()).add(record["node"])
    spread = [p for p, nodes in by_point.items() if len(nodes) == 2]
    assert spread, by_point  # trials, not points, are dealt: a point runs on both nodes
    assert all(r["per_node"] == 2 for r in found)


@pytest.mark.testbed
def test_ctrl_c_with_two_lanes_leaves_no_job_of_the_run_then_resume(pair, tmp_path):
    results = tmp_path / "results"
    held = subprocess.run(["sbatch", "--hold", "--parsable", "-p", pair["pair_partition"], "-n1",
                           "-c1", "-t", "1", "--job-name", "mcl-bystander-2", "-o", "/dev/null",
                           "--wrap", "true"], capture_output=True, text=True, timeout=30)
    assert held.returncode == 0, held.stderr
    bystander = held.stdout.strip().split(";")[0]
    try:
        command = [str(Path(sys.executable).with_name("invoke")), "scale", "--backend", "slurm",
                   "--partition", pair["pair_partition"], *SMALL_SCALE, "--repeat", "3",
                   "--seed", "7", "--results-dir", str(results)]
        both_idle(pair)
        lab = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        raw = None
        while time.monotonic() < deadline and lab.poll() is None:
            runs = [p for p in results.glob("*-scale-*") if (p / "raw.jsonl").exists()]
            raw = runs[0] / "raw.jsonl" if runs else None
            if raw and len(raw.read_text().splitlines()) >= 3:
                break
            time.sleep(0.05)
        assert raw is not None and lab.poll() is None, lab.communicate()[0]
        before = squeue_all()
        lab.send_signal(signal.SIGINT)
        said = lab.communicate(timeout=120)[0]
        after = squeue_all()
        print("squeue before Ctrl-C:", *before, "squeue after:", *after, sep="\n  ")
        assert lab.returncode == 130, said
        folder = raw.parent
        assert jobs_named(f"multicore-lab-{folder.name}") == []
        assert not [line for line in after if folder.name in line], after  # others' may run
        assert bystander in jobs_named("mcl-bystander-2")  # another job: untouched
        cut = [r for r in lab_records(folder) if not r["ok"]]
        assert all(r["host"] == f"{pair['pair_partition']}@{pair['cluster']}" for r in cut)
        resumed = invoke("scale", "--resume", folder.name, "--results-dir", str(results))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    finally:
        subprocess.run(["scancel", bystander], timeout=30)
    found = lab_records(folder)
    plan = json.loads((folder / "plan.json").read_text())
    assert len({(r["point_id"], r["round"], r["repeat"], r["warmup"]) for r in found
                if r["ok"]}) == len(plan["points"]) * 4
    assert json.loads((folder / "meta.json").read_text())["status"] == "complete"
    assert {r["host"] for r in found} == {f"{pair['pair_partition']}@{pair['cluster']}"}
