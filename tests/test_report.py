"""Warnings from planted conditions, the report as a reader gets it (HTML parsed), and
`invoke compare` on small real runs."""

import base64
import csv
import json
import os
import time
from html.parser import HTMLParser

import pytest

from lab.analysis import scaling as results, trials as trial_frames, warnings as checks
from lab.families.scale import ScaleFamily
from lab.present import report
from lab.run import folder as runfolder, system_checks
from tests.conftest import invoke
from tests.test_stats import _record, usl_records

HOST_CPUS = len(os.sched_getaffinity(0))


# --- a fake /proc and /sys ---------------------------------------------------------------------

def plant(root, load1=0.1, online="0-1", swapped=(0, 0), governors=("performance",) * 2,
          throttles=None):
    """Lay out what the system checks read, under `root`."""
    def write(relative, text):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    write("proc/loadavg", f"{load1:.2f} 0.50 0.40 2/300 4242\n")
    write("proc/vmstat", f"nr_free_pages 1000\npswpin {swapped[0]}\npswpout {swapped[1]}\n"
                         f"pgfault 77\n")
    write("sys/devices/system/cpu/online", f"{online}\n")
    for cpu, governor in enumerate(governors):
        write(f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", f"{governor}\n")
    for cpu, count in enumerate(throttles or ()):
        write(f"sys/devices/system/cpu/cpu{cpu}/thermal_throttle/core_throttle_count", f"{count}\n")
    return root


def codes(warnings):
    return [w["code"] for w in warnings]


def test_a_quiet_machine_gives_no_warnings(tmp_path):
    root = plant(tmp_path, throttles=(3, 3))
    snapshot = system_checks.before(root)
    assert snapshot.cpus == 2 and snapshot.readings["load_average"]["load1"] == 0.1
    assert system_checks.after(snapshot) == []


def test_load_above_half_the_cpus_before_the_run_warns_with_advice(tmp_path):
    warnings = system_checks.after(system_checks.before(plant(tmp_path, load1=1.5)))
    assert codes(warnings) == ["load-high"]
    assert "1.50" in warnings[0]["message"] and "2 CPUs" in warnings[0]["message"]
    assert warnings[0]["advice"]
    assert system_checks.after(system_checks.before(plant(tmp_path, load1=0.9))) == []  # 0.45 per CPU


def test_swap_activity_between_the_snapshots_warns(tmp_path):
    root = plant(tmp_path, swapped=(10, 20))
    snapshot = system_checks.before(root)
    plant(tmp_path, swapped=(10, 25))
    warnings = system_checks.after(snapshot)
    assert codes(warnings) == ["swap-activity"] and "0 pages in, 5 out" in warnings[0]["message"]


def test_a_governor_other_than_performance_warns(tmp_path):
    warnings = system_checks.after(system_checks.before(plant(tmp_path, governors=("powersave", "performance"))))
    assert codes(warnings) == ["governor-not-performance"]
    assert "powersave" in warnings[0]["message"] and "1 of 2 CPUs" in warnings[0]["message"]


def test_thermal_throttling_during_the_run_warns(tmp_path):
    snapshot = system_checks.before(plant(tmp_path, throttles=(3, 3)))
    plant(tmp_path, throttles=(3, 9))
    assert codes(system_checks.after(snapshot)) == ["thermal-throttling"]


def test_a_tree_with_nothing_readable_gives_no_warning_and_no_error(tmp_path):
    snapshot = system_checks.before(tmp_path / "nothing-here")
    assert set(snapshot.readings.values()) == {None}
    assert system_checks.after(snapshot) == [] and system_checks.after(None) == []


def test_a_snapshot_kept_as_json_compares_the_same(tmp_path):
    snapshot = system_checks.before(plant(tmp_path, load1=4.0))
    kept = json.loads(json.dumps(snapshot.as_dict()))
    assert codes(system_checks.after(kept)) == codes(system_checks.after(snapshot)) == ["load-high"]


# --- warnings from the data --------------------------------------------------------------------

def data_warnings(records):
    trials = trial_frames.trials_frame(records)
    family = ScaleFamily()
    summary = results.scaling_summary(trials)
    return (checks.data_warnings(trials, summary, family.lengthen_flag, family.row_label)
            + family.warnings(trials, summary))


def steady(seconds, repeats=10, variant="strong", cpus=1, **extra):
    return [_record(variant, cpus, cpus, seconds * (1 + 0.001 * (r % 3)), r, **extra)
            for r in range(repeats)]


def test_a_trial_that_waited_for_its_cpus_is_flagged_off_cpu():
    """1 CPU: 2.451 s of section for 2.367 s of CPU is 3.4% short (fine); 2 CPUs: 1.0 s for
    1.6 s of CPU is 20% short (flagged, with the point and the shortfall)."""
    fine = [dict(r, cgroup_cpu_seconds=r["seconds"] * 0.966) for r in steady(2.451)]
    short = [dict(r, cgroup_cpu_seconds=r["seconds"] * 1.6) for r in steady(1.0, cpus=2)]
    warnings = data_warnings(fine + short)
    assert codes(warnings) == ["off-cpu"]
    message = warnings[0]["message"]
    assert "strong, 2 CPUs, 2 workers (10 trials, up to 20% short)" in message
    assert "1 CPU" not in message
    assert data_warnings(fine + [dict(r, cgroup_cpu_seconds=r["seconds"] * 1.99)
                                 for r in steady(1.0, cpus=2)]) == []


def test_steal_time_on_a_vm_is_flagged():
    stolen = [dict(r, steal_seconds=0.08 if r["round"] == 3 else 0.0) for r in steady(1.0)]
    warnings = data_warnings(stolen)
    assert codes(warnings) == ["steal-time"]
    assert "1 trial" in warnings[0]["message"] and "8%" in warnings[0]["message"]


def test_tight_data_with_enough_repeats_gives_no_data_warning():
    assert data_warnings(steady(1.0) + steady(0.55, cpus=2)) == []


def test_a_planted_cv_above_10_percent_warns_spread_too_wide():
    wide = [_record("strong", 2, 2, s, r) for r, s in enumerate([0.5, 0.7, 0.5, 0.7, 0.5, 0.7,
                                                                 0.5, 0.7, 0.5, 0.7])]
    warnings = data_warnings(steady(1.0) + wide)
    assert "spread-too-wide" in codes(warnings)
    message = warnings[codes(warnings).index("spread-too-wide")]["message"]
    assert "strong, 2 CPUs, 2 workers (CV 18%)" in message


def test_few_repeats_with_spread_warns_too_few_repeats():
    few = [_record("strong", 2, 2, s, r) for r, s in enumerate([0.50, 0.54, 0.58])]  # CV 7%
    warnings = data_warnings(steady(1.0) + few)
    assert codes(warnings) == ["too-few-repeats"]
    assert "n=3, CV 7%" in warnings[0]["message"] and "--repeat" in warnings[0]["advice"]


def test_throttling_under_a_cpuset_limit_warns():
    throttled = steady(0.55, cpus=2)
    throttled[3]["throttled_seconds"] = 0.25
    warnings = data_warnings(steady(1.0) + throttled)
    assert codes(warnings) == ["throttled-under-cpuset"]
    assert "1 trial" in warnings[0]["message"] and "0.25 s" in warnings[0]["message"]
    quota = steady(0.55, cpus=2, limit="quota", quota=2.0)
    for record in quota:
        record.update(point_id="q", throttled_seconds=0.5)
    assert "throttled-under-cpuset" not in codes(data_warnings(steady(1.0) + quota))


# --- the report --------------------------------------------------------------------------------

class Page(HTMLParser):
    """What a browser would fetch (src, href), the images, and the visible text."""

    def __init__(self, text):
        super().__init__()
        self.links, self.images, self.tags, self.chunks = [], [], [], []
        self.feed(text)
        self.text = " ".join(self.chunks)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        for name in ("src", "href", "srcset", "data", "action"):
            if attrs.get(name) is not None:
                self.links.append((tag, name, attrs[name]))
        if tag == "img":
            self.images.append(attrs)

    def handle_data(self, data):
        if data.strip():
            self.chunks.append(data.strip())


def assert_self_contained(page):
    assert "link" not in page.tags and "script" not in page.tags and "iframe" not in page.tags
    for tag, name, value in page.links:
        assert value.startswith("#") or value.startswith("data:image/png;base64,"), (tag, value)
    for image in page.images:
        data = base64.b64decode(image["src"].removeprefix("data:image/png;base64,"))
        assert data[:8] == b"\x89PNG\r\n\x1a\n"


META = {
    "task": "scale", "status": "complete", "seed": 4242, "points_planned": 9,
    "trials_planned": 45, "started_at": 1795720000.0, "finished_at": 1795720100.0,
    "host": {"hostname": "lab-box", "cpu_model": "Test CPU 9000", "cpu_count": 8,
             "usable_cpus": 8, "kernel": "6.1.0-test", "cgroup_version": 2,
             "host_python": "3.11.2",
             "topology": {"packages": 1, "physical_cores": 4, "smt": True}},
    "backend": {"backend": "docker", "engine_version": "99.0.1", "api_version": "1.45",
                "cgroup_driver": "systemd", "os": "Debian"},
    "images": {"base": {"tag": "multicore-lab:abc123", "id": "sha256:0123456789abcdef",
                        "base": "multicore-lab-base:trixie", "python": "3.13.5"}},
    "lab": {"version": "0.1.0", "git_commit": "feedc0ffee", "command_line": [
        "invoke", "scale", "--cpus", "1,2,4,8", "--repeat", "5"]},
}


@pytest.fixture
def synthetic_run(tmp_path):
    """A run folder with a USL-shaped strong curve, a weak curve, one throttled cpuset trial,
    and meta.json holding the run-level warnings of a busy machine."""
    folder = runfolder.RunFolder(tmp_path / "20990101T000000Z-scale-test")
    folder.path.mkdir()
    records = usl_records()
    records[7]["throttled_seconds"] = 0.125
    with open(folder.raw_path, "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    busy = system_checks.after(system_checks.before(plant(tmp_path / "root", load1=3.0,
                                            governors=("powersave",) * 2)))
    folder.write_meta({**META, "run_id": folder.run_id, "warnings": busy})
    return folder


def test_report_html_is_one_file_with_every_chart_the_facts_and_the_warnings(synthetic_run):
    said = []
    assert report.build(synthetic_run, ScaleFamily(), say=said.append) == 0
    page = Page((synthetic_run.path / "report.html").read_text())
    assert_self_contained(page)
    charts = sorted(p.stem for p in synthetic_run.path.glob("*.png"))
    assert charts == ["efficiency", "speedup"]
    assert sorted(i["alt"].split()[0] for i in page.images) == charts
    for chart in charts:
        assert (synthetic_run.path / f"{chart}.svg").stat().st_size > 1000
    for fact in ("Test CPU 9000", "6.1.0-test", "cgroup v2", "feedc0ffee", "99.0.1",
                 "invoke scale --cpus 1,2,4,8 --repeat 5", "seed 4242", "multicore-lab:abc123",
                 "Python 3.13.5", "status complete", "4 physical cores, SMT on"):
        assert fact in page.text, fact
    for code in ("load-high", "governor-not-performance", "throttled-under-cpuset"):
        assert code in page.text, code
    assert "What to do:" in page.text
    assert "contention sigma = 0.05" in page.text and "Gustafson" in page.text
    # the same warnings are printed at the end
    printed = "\n".join(said)
    assert printed.index("Warnings (3):") > printed.index("median s")
    assert "[throttled-under-cpuset]" in printed and "what to do:" in printed


def test_report_md_links_its_charts_and_lists_the_warnings(synthetic_run):
    report.build(synthetic_run, ScaleFamily(), say=lambda *_: None)
    text = (synthetic_run.path / "report.md").read_text()
    assert "![speedup](speedup.png)" in text and "![efficiency](efficiency.png)" in text
    assert "- **load-high**:" in text and "*What to do:*" in text
    assert "| command line | invoke scale --cpus 1,2,4,8 --repeat 5 |" in text
    summary = list(csv.DictReader(open(synthetic_run.path / "summary.csv")))
    for column in ("median_ci_low_s", "median_ci_high_s", "median_ci_coverage", "cv",
                   "outliers", "speedup_ci_low", "speedup_ci_high", "usl_sigma", "usl_kappa",
                   "gustafson_serial_fraction"):
        assert column in summary[0], column


def test_a_run_of_old_string_warnings_still_reports(synthetic_run):
    synthetic_run.update_meta(warnings=["backend local: docker did not answer"])
    report.build(synthetic_run, ScaleFamily(), say=lambda *_: None)
    assert "backend local: docker did not answer" in Page(
        (synthetic_run.path / "report.html").read_text()).text


# --- invoke compare on real runs ---------------------------------------------------------------

def _make_run(results_dir, task, *flags):
    done = invoke(task, *flags, "--repeat", "3", "--backend", "docker",
                  "--results-dir", str(results_dir))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return (results_dir / "latest").resolve()


@pytest.fixture(scope="module")
def two_scale_runs(engine, trial_image, tmp_path_factory):
    if HOST_CPUS < 2:
        pytest.skip("needs 2 CPUs")
    results_dir = tmp_path_factory.mktemp("compare")
    flags = ("--cpus", "1,2", "--work", "200000")
    a = _make_run(results_dir, "scale", *flags, "--seed", "1")
    time.sleep(1.1)  # run ids carry the second
    b = _make_run(results_dir, "scale", *flags, "--seed", "2")
    # the same machine twice: say B ran elsewhere, as a comparison across machines would
    meta = json.loads((b / "meta.json").read_text())
    meta["host"]["hostname"] = "cloud-vm"
    (b / "meta.json").write_text(json.dumps(meta))
    return results_dir, a, b


def test_a_real_runs_report_html_parses_and_is_self_contained(two_scale_runs):
    _, a, _ = two_scale_runs
    page = Page((a / "report.html").read_text())
    assert_self_contained(page)
    assert len(page.images) == len(list(a.glob("*.png"))) >= 2
    meta = json.loads((a / "meta.json").read_text())
    assert meta["host"]["kernel"] in page.text and meta["run_id"] in page.text


def test_compare_matches_every_point_and_tests_each_difference(two_scale_runs):
    results_dir, a, b = two_scale_runs
    done = invoke("compare", a.name, b.name, "--results-dir", str(results_dir))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = results_dir / f"compare-{a.name}-vs-{b.name}"
    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert len(rows) == 7  # strong, weak and the measured ceiling at 1 and 2 CPUs, serial
    assert {(r["variant"], r["cpus"]) for r in rows} == {
        ("serial", "1"), ("strong", "1"), ("strong", "2"), ("weak", "1"), ("weak", "2"),
        ("ceiling", "1"), ("ceiling", "2")}
    for row in rows:
        assert row["point_id_a"] == row["point_id_b"]  # same image here, so same ids
        assert row["n_a"] == row["n_b"] == "3" and row["test"] == "Mann-Whitney U, two-sided"
        assert 0 < float(row["p_value"]) <= 1
        assert float(row["smallest_p_value"]) == pytest.approx(0.1)
        low, ratio, high = (float(row[k]) for k in ("ratio_ci_low", "ratio_b_over_a",
                                                     "ratio_ci_high"))
        assert low <= ratio <= high
        assert row["verdict"].startswith("too few trials")  # 3 vs 3 cannot reach p < 0.05
    assert "host" in done.stdout and "cloud-vm" in done.stdout and "Mann-Whitney" in done.stdout
    for chart in ("compare_speedup", "compare_ratio"):
        assert (out / f"{chart}.png").stat().st_size > 5000 and (out / f"{chart}.svg").exists()
    page = Page((out / "report.html").read_text())
    assert_self_contained(page)
    assert len(page.images) == 2 and "cloud-vm" in page.text and "too-few-repeats" in page.text


def test_compare_of_ipc_runs_overlays_their_messages_per_second(engine, trial_image, tmp_path):
    flags = ("--cpus", "1", "--channels", "pipe,queue", "--messages", "1000", "--sizes", "0",
             "--patterns", "stream", "--end-placement", "free")
    a = _make_run(tmp_path, "ipc", *flags, "--seed", "1")
    time.sleep(1.1)
    b = _make_run(tmp_path, "ipc", *flags, "--seed", "2")
    done = invoke("compare", str(a), str(b), "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / f"compare-{a.name}-vs-{b.name}"
    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert sorted(r["variant"] for r in rows) == ["pipe", "queue"]
    assert {r["measure"] for r in rows} == {"messages_per_second"}
    assert (out / "compare_ipc.png").stat().st_size > 5000
    # the handshake clock bounds the queue, and the comparison names it by its bound
    assert "Pipe()" in done.stdout and "Queue(maxsize=" in done.stdout


def _altered_copy(run, folder, change):
    folder.mkdir()
    records = [json.loads(line) for line in (run / "raw.jsonl").read_text().splitlines()]
    for record in records:
        change(record)
    (folder / "raw.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "meta.json").write_text((run / "meta.json").read_text())
    return folder


def test_runs_calibrated_to_different_work_compare_on_time_per_unit_of_work(two_scale_runs,
                                                                           tmp_path):
    """Two machines calibrate different work; their points still meet, on seconds per 10^6
    iterations: here B did twice the work in twice the time, so every ratio is 1."""
    results_dir, a, _ = two_scale_runs

    def doubled(record):
        record["params"]["work"] *= 2
        record["seconds"] = record["seconds"] * 2 if record["seconds"] is not None else None
    other = _altered_copy(a, tmp_path / "other", doubled)
    done = invoke("compare", str(a), str(other), "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(open(tmp_path / f"compare-{a.name}-vs-other" / "compare.csv")))
    assert len(rows) == 7 and {r["measure"] for r in rows} == {"seconds_per_million_iterations"}
    assert all(float(r["ratio_b_over_a"]) == pytest.approx(1.0) for r in rows)


def test_compare_says_why_when_no_point_is_in_common(two_scale_runs, tmp_path):
    results_dir, a, _ = two_scale_runs
    other = _altered_copy(a, tmp_path / "other", lambda r: r.update(start_method="spawn"))
    done = invoke("compare", str(a), str(other), "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "no common points" in done.stdout
    assert "start_method is fork in A and spawn in B" in done.stdout


def test_compare_refuses_a_run_that_is_not_there(tmp_path):
    done = invoke("compare", "no-such-run", "latest", "--results-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: no run at 'no-such-run'")
