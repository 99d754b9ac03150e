"""The lab from Python (`import lab; lab.scale(...)`) and `--format json`: the same flags, checks,
one-line refusals and run folders as the command line, through real containers."""

import json
import shutil

import pandas
import pytest

import lab
from conftest import invoke

pytestmark = pytest.mark.engine

TINY = dict(cpus=[1], variants="serial", work=100000, repeat=1)
TINY_FLAGS = ["--cpus", "1", "--variants", "serial", "--work", "100000", "--repeat", "1"]


def test_bad_input_raises_the_command_lines_one_line_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(lab.LabError) as refused:
        lab.scale(cpus="two", repeat=1)
    said = invoke("scale", "--cpus", "two", "--repeat", "1", "--results-dir", str(tmp_path))
    assert said.returncode == refused.value.exit_status == 2
    assert str(refused.value) == said.stderr.strip()
    assert refused.value._render_traceback_() == [f"LabError: {refused.value}"]
    with pytest.raises(lab.LabError, match=r"lab.ipc\(\) has no flag cpu; its flags: cpus,"):
        lab.ipc(cpu=[1, 2])
    with pytest.raises(lab.LabError, match="has no flag format"):
        lab.scale(format="json")  # a function hands back the Run, not text
    with pytest.raises(lab.LabError, match="no run at 'nothing-here'"):
        lab.load("nothing-here")
    assert list(tmp_path.iterdir()) == []


def test_every_family_forwards_the_tasks_own_flags(tmp_path):
    """Keywords are the task's flags: a dry run of each family goes through the same parsing."""
    ipc = lab.ipc(cpus=[1], channels="pipe", dry_run=True, results_dir=tmp_path)
    assert ipc["points"] and {p["variant"] for p in ipc["points"]} == {"pipe"}  # the plan
    assert {p["cpus"] for p in ipc["points"]} == {1}
    lessons = lab.lessons(lessons="start_cost", cpus=1, dry_run=True, results_dir=tmp_path)
    assert lessons["trials"] == lessons["rounds"] * len(lessons["points"])
    assert {p["experiment"] for p in lessons["points"]} == {"lessons"}
    assert "target_seconds" not in lab.api.task_flags("scale")  # a setting, not a flag
    assert set(lab.api.task_flags("scale")) >= {"cpus", "variants", "work", "resume", "plan"}
    assert not (tmp_path / "results").exists() and list(tmp_path.iterdir()) == []


def test_a_run_from_python_is_a_run_folder_with_dataframes_charts_and_a_report(
        tmp_path, monkeypatch, trial_image):
    monkeypatch.chdir(tmp_path)  # results/ is the caller's, as for the command line
    run = lab.scale(**{**TINY, "variants": ["serial", "strong"]})
    assert run.path.parent == (tmp_path / "results").resolve()
    assert run.exit_status == 0 and run.status == "complete" and run.task == "scale"
    assert isinstance(run.summary, pandas.DataFrame) and isinstance(run.trials, pandas.DataFrame)
    assert sorted(run.summary["variant"]) == ["serial", "strong"]
    assert len(run.trials) == 2 * 2  # a warm-up and one measured round per point
    assert run.charts and all(chart._repr_png_().startswith(b"\x89PNG")
                              for chart in run.charts.values())
    figure = next(iter(run.charts.values())).figure()
    assert figure.get_axes()
    page = run._repr_html_()
    assert f"Run {run.run_id}" in page and "<body" not in page and "data:image/png" in page

    again = lab.load(run.run_id)
    assert again.path == run.path and again.summary.equals(run.summary)
    assert lab.load("latest").path == run.path

    redrawn = lab.report(run.run_id)  # summary, charts and report drawn again from raw.jsonl
    assert redrawn.path == run.path and redrawn.summary.equals(run.summary)

    resumed = lab.scale(resume=run.run_id)  # nothing missing: nothing runs, same folder
    assert resumed.path == run.path and len(resumed.trials) == len(run.trials)

    twin = shutil.copytree(run.path, tmp_path / "twin" / run.run_id)  # a second run folder
    compared = lab.compare(run, str(twin))
    assert len(compared.points) == 2 and "Comparison" in repr(compared)
    assert "compare" in compared._repr_html_()
    with pytest.raises(lab.LabError, match="A and B are the same run"):
        lab.compare(run, run.run_id)


def test_format_json_prints_the_summary_on_stdout(tmp_path, trial_image):
    done = invoke("scale", *TINY_FLAGS, "--results-dir", str(tmp_path), "--format", "json")
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout)  # stdout is the JSON alone
    assert outcome["task"] == "scale" and outcome["status"] == "complete"
    assert outcome["exit_status"] == 0
    assert [row["variant"] for row in outcome["summary"]] == ["serial"]
    assert outcome["summary"][0]["median_s"] > 0
    assert f"run {outcome['run']}" in done.stderr  # the human output went to stderr

    report = invoke("report", outcome["run"], "--results-dir", str(tmp_path), "--format", "json")
    assert report.returncode == 0 and json.loads(report.stdout)["summary"] == outcome["summary"]
    twin = shutil.copytree(tmp_path / outcome["run"], tmp_path / "twin" / outcome["run"])
    compared = invoke("compare", outcome["run"], str(twin), "--results-dir", str(tmp_path),
                      "--format", "json")
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert len(json.loads(compared.stdout)["points"]) == 1


def test_a_dry_run_in_json_is_its_plan_the_same_as_the_text_says(tmp_path):
    """Scripts can read the matrix before running it: the points (ids, CPUs, params, estimated
    seconds), rounds, trials and the total, equal to the human lines on stderr."""
    done = invoke("scale", "--cpus", "1,2", "--variants", "strong,threads", "--repeat", "3",
                  "--dry-run", "--format", "json", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    plan = json.loads(done.stdout)["plan"]
    said = [line.split(":")[0].strip() for line in done.stderr.splitlines()
            if line.startswith("  ") and "s/trial" in line]
    assert [point["point_id"] for point in plan["points"]] == said
    assert {(p["variant"], p["cpus"]) for p in plan["points"]} >= {
        ("strong", 1), ("strong", 2), ("threads", 1), ("threads", 2)}
    assert plan["rounds"] == 4 and plan["trials"] == 4 * len(plan["points"])
    assert f"= {plan['trials']} trials" in done.stderr
    assert plan["estimated_seconds"] >= max(p["seconds_per_trial"] for p in plan["points"])
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_a_bad_format_is_one_line(tmp_path):
    done = invoke("scale", "--format", "xml", "--results-dir", str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "error: --format 'xml' is not a format; use text or json"
    assert list(tmp_path.iterdir()) == []
