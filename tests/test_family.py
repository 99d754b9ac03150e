"""A new family is one host module and one trial module, registered once: the `probe` family
(tests/probe_family.py on lab/experiments/probe.py) runs end to end through the lab's own
machinery, on the real engine and on the local backend, with nothing in the runner, run folder,
report assembly or compare edited for it."""

import csv
import json
import statistics

import pytest

from lab import commands, families
from tests.conftest import BASE_IMAGE
from tests.probe_family import ProbeFamily


@pytest.fixture
def probe_registered():
    families.register("probe", ProbeFamily)
    yield
    families.FAMILIES.pop("probe", None)


def run_probe(results, backend, naps="0.05,0.15", **extra):
    flags = {"cpus": "1", "naps": naps, "repeat": "3", "backend": backend,
             "results_dir": str(results), "seed": "7", **extra}
    config = {"lab": {"results_dir": str(results), "backend": "auto", "base_image": BASE_IMAGE,
                      "placement": "spread", "start_method": "fork", "repeat": 5,
                      "seed": "random", "trial_time_limit_s": 60,
                      "docker": {"memory_limit": "256m", "shm_size": "64m", "pids_limit": 256}},
              "probe": {"naps": "0.1"}}
    said = []
    code = commands.run_family("probe", flags, config, say=said.append)
    return code, (results / "latest").resolve(), "\n".join(map(str, said))


def check_run(folder, backend):
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["task"] == "probe" and meta["status"] == "complete"
    assert meta["flags"]["naps"] == "0.05,0.15"
    records = [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 4 and all(r["ok"] for r in records)  # 2 points x (warm-up + 3)
    assert {r["backend"] for r in records} == {backend}
    for record in records:  # the trial slept what its point asked, and no less
        assert record["seconds"] >= record["params"]["seconds"]
    with open(folder / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(float(r["param.seconds"]) for r in rows) == [0.05, 0.15]
    assert all(int(r["n"]) == 3 for r in rows)
    assert (folder / "naps.png").stat().st_size > 1000
    html = (folder / "report.html").read_text()
    assert '<h2 id="naps">Naps</h2>' in html and "Every nap" in html
    plan = json.loads((folder / "plan.json").read_text())
    assert plan["task"] == "probe" and plan["repeat"] == 3 and plan["seed"] == 7


def test_a_new_family_runs_end_to_end_on_the_real_engine_and_compares(
        engine, trial_image, probe_registered, tmp_path):
    code, first, said = run_probe(tmp_path / "a", "docker")
    assert code == 0, said
    assert "nap 0.15 s, cpus 1" in said  # the family's own labels in the progress lines
    check_run(first, "docker")
    code, second, said = run_probe(tmp_path / "b", "docker")
    assert code == 0, said
    out = commands.compare(tmp_path, str(first), str(second), say=lambda *_: None)
    with open(out / "compare.csv") as handle:
        compared = list(csv.DictReader(handle))
    assert len(compared) == 2 and {r["measure"] for r in compared} == {"seconds"}
    def median_of(folder, nap):  # the measured trials of one nap, from the run's own records
        records = [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]
        return statistics.median(r["seconds"] for r in records
                                 if not r["warmup"] and r["params"]["seconds"] == nap)
    for row in compared:  # B/A is the two runs' own medians, whatever this machine's load did
        nap = float(row["param.seconds"])
        assert float(row["ratio_b_over_a"]) == pytest.approx(
            median_of(second, nap) / median_of(first, nap), rel=1e-9)
    assert (out / "compare_ratio.png").exists() and (out / "report.html").exists()
    # redrawn from raw.jsonl alone, summary.csv comes out the same
    before = (first / "summary.csv").read_bytes()
    commands.report(tmp_path, str(first), say=lambda *_: None)
    assert (first / "summary.csv").read_bytes() == before


def test_the_same_family_runs_on_the_local_backend(probe_registered, tmp_path):
    code, folder, said = run_probe(tmp_path, "local")
    assert code == 0, said
    check_run(folder, "local")


def test_a_family_refuses_its_own_bad_flag_in_one_line_before_anything_runs(probe_registered,
                                                                           tmp_path):
    from lab.run.options import BadInput
    with pytest.raises(BadInput, match="--naps 'soon': not a number"):
        run_probe(tmp_path, "local", naps="soon")
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_run_without_its_meta_json_is_found_by_any_of_its_familys_trial_modules():
    """A report resting on raw.jsonl alone (meta.json lost) finds the family by the records'
    experiment: the user's own code (--target, --command) is the scale family's too."""
    assert {families.for_experiment(e).name for e in ("scaling", "target", "command")} == {"scale"}
    assert families.for_experiment("ipc").name == "ipc"
    assert families.for_experiment("no_such_experiment") is None
