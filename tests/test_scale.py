"""`invoke scale`: the arithmetic on synthetic timings, and a real run on CPUs 1 and 2."""

import csv
import json
import math
import os
import statistics

import pytest

from lab.analysis import fits, scaling as results, trials as trial_frames
from tests.conftest import invoke

HOST_CPUS = len(os.sched_getaffinity(0))


def test_pure_amdahl_curve_gives_its_serial_fraction_back():
    cpus = [1, 2, 4, 8, 16]
    speedups = [1 / (0.1 + 0.9 / c) for c in cpus]
    fit = fits.fit_amdahl(cpus, speedups)
    assert fit.fitted and abs(fit.serial_fraction - 0.1) < 1e-6


def test_amdahl_is_not_fitted_from_one_cpu_count():
    fit = fits.fit_amdahl([1, 1], [1.0, 1.0])
    assert not fit.fitted and fit.serial_fraction is None
    assert fit.describe().startswith("not fitted")


def test_karp_flatt_recovers_the_serial_fraction_of_an_amdahl_point():
    speedup = 1 / (0.2 + 0.8 / 4)
    assert math.isclose(fits.karp_flatt(4, speedup), 0.2)
    assert fits.karp_flatt(1, 1.0) is None


def test_seed_cap_is_six_over_ceil_six_over_c():
    assert [fits.seed_speedup_cap(c) for c in (1, 2, 3, 4, 5, 6, 8)] == [1, 2, 3, 3, 3, 6, 6]


def _record(variant, cpus, workers, seconds, repeat=1):
    return {"schema": 1, "run_id": "synthetic", "round": repeat,
            "point_id": f"{variant}-{cpus}-{workers}", "experiment": "scaling",
            "variant": variant, "limit": "cpuset", "cpus": cpus, "quota": None,
            "placement": "spread", "workers": workers, "start_method": "fork",
            "backend": "local", "python": "3.x", "image": "local", "params": {"work": 1},
            "ok": True, "warmup": False, "seconds": seconds, "repeat": repeat, "metrics": {}}


def test_strong_and_weak_definitions_on_synthetic_timings():
    records = []
    for repeat, jitter in enumerate((0.0, 0.1, -0.1)):
        records += [_record("serial", 1, 1, 9.0 + jitter, repeat),
                    _record("strong", 1, 1, 10.0 + jitter, repeat),
                    _record("strong", 2, 2, 5.5 + jitter, repeat),
                    _record("weak", 1, 1, 4.0 + jitter, repeat),
                    _record("weak", 2, 2, 5.0 + jitter, repeat)]
    summary = results.scaling_summary(trial_frames.trials_frame(records)).set_index("point_id")
    strong = summary.loc["strong-2-2"]
    assert math.isclose(strong["speedup"], 10 / 5.5)
    assert math.isclose(strong["speedup_absolute"], 9 / 5.5)
    assert math.isclose(strong["efficiency"], 10 / 5.5 / 2)
    weak = summary.loc["weak-2-2"]
    assert math.isclose(weak["efficiency"], 4 / 5)            # T(1) / T(c)
    assert math.isclose(weak["scaled_speedup"], 2 * 4 / 5)    # c x T(1) / T(c)
    assert math.isclose(strong["amdahl_serial_fraction"], 2 / (10 / 5.5) - 1, rel_tol=1e-4)
    assert strong["n"] == 3 and math.isclose(strong["iqr_s"], 0.1)


@pytest.fixture(scope="module")
def scale_run(engine, trial_image, tmp_path_factory):
    if HOST_CPUS < 2:
        pytest.skip("needs 2 CPUs")
    results_dir = tmp_path_factory.mktemp("results")
    done = invoke("scale", "--cpus", "1,2", "--work", "400000", "--repeat", "3", "--seed", "17",
                  "--variants", "strong,weak,process,seed", "--backend", "docker",
                  "--results-dir", str(results_dir))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results_dir / "latest", done


def test_every_trial_of_a_real_run_is_ok_and_pinned(scale_run):
    folder, _ = scale_run
    records = [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]
    assert len(records) == 9 * 4  # 4 variants x 2 CPU counts + serial, 1 warm-up + 3 rounds
    assert all(r["ok"] for r in records), [r["error"] for r in records if not r["ok"]]
    for record in records:
        assert record["seen"]["affinity"] == list(range(record["cpus"]))
        assert record["check"]["iterations"] > 0 and record["overhead_seconds"] > 0
    assert sum(r["warmup"] for r in records) == 9


def test_summary_equals_speedups_recomputed_from_raw(scale_run):
    folder, _ = scale_run
    records = [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]
    times = {}
    for r in records:
        if r["ok"] and not r["warmup"]:
            times.setdefault((r["variant"], r["cpus"], r["workers"]), []).append(r["seconds"])
    median = {key: statistics.median(values) for key, values in times.items()}
    with open(folder / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    checked = 0
    for row in rows:
        key = (row["variant"], int(row["cpus"]), int(row["workers"]))
        assert math.isclose(float(row["median_s"]), median[key], rel_tol=1e-9)
        if row["variant"] in ("strong", "process", "seed"):
            expected = median[(row["variant"], 1, 1)] / median[key]
            assert math.isclose(float(row["speedup"]), expected, rel_tol=1e-9)
            absolute = median[("serial", 1, 1)] / median[key]
            assert math.isclose(float(row["speedup_absolute"]), absolute, rel_tol=1e-9)
            assert math.isclose(float(row["efficiency"]), expected / key[1], rel_tol=1e-9)
            checked += 1
        if row["variant"] == "weak":
            assert math.isclose(float(row["efficiency"]),
                                median[("weak", 1, 1)] / median[key], rel_tol=1e-9)
            checked += 1
    assert checked == 8


def test_charts_and_table_are_written(scale_run):
    folder, done = scale_run
    for name in ("speedup.png", "speedup.svg", "efficiency.png", "summary.csv", "report.md"):
        assert (folder / name).stat().st_size > 1000 or name.endswith(".md"), name
    assert (folder / "speedup.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "median s" in done.stdout and "Amdahl, strong (Python 3." in done.stdout


def test_report_redraws_from_raw_without_running_anything(scale_run, engine):
    folder, _ = scale_run
    summary_before = (folder / "summary.csv").read_text()
    for chart in folder.glob("*.png"):
        chart.unlink()
    (folder / "summary.csv").unlink()
    done = invoke("report", str(folder.resolve()))
    assert done.returncode == 0, done.stderr
    assert (folder / "speedup.png").stat().st_size > 1000
    assert (folder / "summary.csv").read_text() == summary_before
