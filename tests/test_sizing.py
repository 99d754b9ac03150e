"""Timed sections long enough to mean something: --messages auto sizes each point from its own
warm-up trial to --min-seconds, keeps the count in plan.json and every record, and a given count
too short to trust is flagged in the report."""

import json
import statistics

import pytest

from lab.run import plan as plans
from lab.run.sizing import Sizing
from tests.conftest import invoke

RING_FAST = ["--cpus", "2", "--channels", "shm_ring", "--batches", "100", "--sizes", "0",
             "--patterns", "stream", "--end-placement", "split", "--repeat", "5", "--seed", "3"]


def records_of(folder):
    return [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]


class DoublingFamily:
    """Sizes a point to twice what its warm-up ran, keeps given params otherwise."""
    def trial_params(self, point, warmup):
        params = point.params_dict
        if warmup is None:
            return {**params, "messages": 10}
        return {**params, "messages": 2 * warmup["params"]["messages"]} if warmup["ok"] else None


def test_sizing_is_chosen_once_from_the_warm_up_and_kept_in_plan_json(tmp_path):
    point = plans.make_point(experiment="ipc", variant="pipe", limit="cpuset", cpus=1,
                             cpuset=[0], quota=None, placement="spread", workers=2,
                             start_method="fork", params={"messages": "auto"})
    warm, measured = plans.Trial(point, 0, 0, True), plans.Trial(point, 1, 1, False)

    class Folder:
        plan_path = tmp_path / "plan.json"
    Folder.plan_path.write_text(json.dumps({"task": "ipc", "points": []}))
    sizing = Sizing(DoublingFamily(), Folder())
    assert sizing.params(point)["messages"] == 10  # the first guess, for the warm-up
    sizing.learn(warm, {"ok": True, "params": {"messages": 10}})
    assert sizing.params(point)["messages"] == 20
    sizing.learn(measured, {"ok": True, "params": {"messages": 20}})  # measured rounds: no change
    assert json.loads(Folder.plan_path.read_text())["sizing"] == {point.point_id: {"messages": 20}}
    again = Sizing(DoublingFamily(), None, known={point.point_id: {"messages": 20}})
    assert again.params(point)["messages"] == 20  # --resume and --plan: the run's own count


@pytest.fixture(scope="module")
def sized_run(engine, trial_image, tmp_path_factory):
    """One run: the ring with batches of 100 at --messages auto beside a fixed small count."""
    results = tmp_path_factory.mktemp("sized")
    done = invoke("ipc", *RING_FAST, "--messages", "auto,2000", "--results-dir", str(results))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return (results / "latest").resolve(), done


def test_a_fast_point_is_sized_above_the_target_from_its_warm_up(sized_run):
    folder, _ = sized_run
    plan = json.loads((folder / "plan.json").read_text())
    auto = next(p for p in plan["points"] if p["params"]["messages"] == "auto")
    records = records_of(folder)
    by_point = {}
    for record in records:
        by_point.setdefault(record["point_id"], []).append(record)
    sized = next(rs for rs in by_point.values() if any(r["warmup"] for r in rs)
                 and len({r["params"]["messages"] for r in rs}) > 1)
    fixed = next(rs for rs in by_point.values() if {r["params"]["messages"] for r in rs} == {2000})
    warm = next(r for r in sized if r["warmup"])
    count = plan["sizing"][warm["point_id"]]["messages"]
    # the count follows from the warm-up's own rate: at least the target's worth of messages
    assert count >= warm["params"]["messages"] * auto["params"]["min_seconds"] / warm["seconds"]
    measured = [r for r in sized if not r["warmup"]]
    assert all(r["ok"] and r["params"]["messages"] == count for r in measured)
    assert statistics.median(r["seconds"] for r in measured) > 0.5 * auto["params"]["min_seconds"]
    fixed_seconds = [r["seconds"] for r in fixed if not r["warmup"]]
    # A ratio in one run, not the two points' noise (which a loaded machine decides): the sized
    # section is thousands of times the fixed one here; ten leaves room for any load.
    assert statistics.median(r["seconds"] for r in measured) > 10 * statistics.median(fixed_seconds)


def test_a_given_count_too_short_to_trust_is_flagged_with_what_to_use(sized_run):
    folder, done = sized_run
    assert "[too-short]" in done.stdout
    line = next(line for line in done.stdout.splitlines() if "[too-short]" in line)
    assert "shared-memory ring, 2 CPUs, 2000 messages: " in line  # the given count, named
    assert "use --messages auto or a count of at least" in line
    assert "too-short" in (folder / "report.html").read_text()


def test_a_plan_rerun_runs_exactly_the_sized_counts(sized_run, tmp_path):
    folder, _ = sized_run
    sizing = json.loads((folder / "plan.json").read_text())["sizing"]
    done = invoke("ipc", "--plan", str(folder / "plan.json"), "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    again = (tmp_path / "latest").resolve()
    counts = {(r["point_id"], r["params"]["messages"]) for r in records_of(again)}
    for point_id, params in sizing.items():
        assert {c for p, c in counts if p == point_id} == {params["messages"]}  # warm-up too


def test_bytes_per_trial_caps_a_sized_count(engine, trial_image, tmp_path):
    """--messages auto sizes a 64 KiB point to thousands of messages; --bytes-per-trial 640KiB
    caps it at 640 KiB / 64 KiB = 10, for the warm-up and the measured trials alike, and the
    plan keeps the cap (so --plan and --resume size the same) and the count."""
    done = invoke("ipc", "--cpus", "1", "--channels", "pipe", "--sizes", "64KiB",
                  "--patterns", "stream", "--end-placement", "free", "--messages", "auto",
                  "--bytes-per-trial", "640KiB", "--repeat", "1", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    folder = (tmp_path / "latest").resolve()
    plan = json.loads((folder / "plan.json").read_text())
    (point,) = plan["points"]
    assert point["params"]["messages"] == "auto"
    assert point["params"]["bytes_per_trial"] == 640 << 10
    (sized,) = plan["sizing"].values()
    assert sized["messages"] == 10
    assert {r["params"]["messages"] for r in records_of(folder)} == {10}  # warm-up too
