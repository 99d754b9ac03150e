"""A long run loses nothing (issue 7): Ctrl-C, SIGTERM and a kill keep every record and say how
to resume; --resume runs only what is missing or cut off, refuses what would change the run, and
loading a run validates every line. Real engine, real signals, real `invoke` subprocesses; trials
are tiny (--work 200000): these tests are about what happens around trials, never how long they
take. Shared helpers and the seed: tests/robustness_kit.py.
"""

import fcntl
import json
import shutil
import signal
import time

import pytest

from lab import records as trial_records
from lab.run import folder as run_folder
from tests.conftest import invoke
from tests.robustness_kit import (  # noqa: F401 (test_image: a fixture)
    CPUS, SEED, draw, error_lines, finish, labelled, measured_keys, plan_keys, records_of,
    scale_args, snapshot, start_invoke, test_image, wait_for_records)

# --- interruption and resume -------------------------------------------------------------------

@pytest.fixture(scope="module")
def interrupted(engine, test_image, tmp_path_factory):
    """A real `invoke scale` sent SIGINT after its k-th record (k drawn from the seed)."""
    results = tmp_path_factory.mktemp("interrupted")
    args = scale_args(results, test_image)
    total = 3 * 3 if CPUS == "1,2" else 2 * 3  # points x (warm-up + 2 rounds)
    k = draw(1, total - 2, "SIGINT after record")
    process = start_invoke(*args)
    raw, before = wait_for_records(process, results, k)
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process)
    return {"results": results, "args": args, "k": k, "raw": raw, "before": before,
            "folder": raw.parent, "run_id": raw.parent.name, "code": code, "out": out,
            "err": err, "total": total}


def test_sigint_stops_the_run_keeps_every_record_and_says_how_to_resume(engine, interrupted):
    run = interrupted
    note = f"k={run['k']} LAB_TEST_SEED={SEED}\n{run['out'][-2000:]}\n{run['err'][-2000:]}"
    assert run["code"] == 130, note
    command = f"invoke scale --resume {run['run_id']} --results-dir {run['results']}"
    assert command in run["out"], note
    assert "Interrupted (SIGINT)" in run["out"], note
    meta = json.loads((run["folder"] / "meta.json").read_text())
    assert meta["status"] == "interrupted", note
    assert labelled(engine, run["run_id"]) == [], note
    data = run["raw"].read_bytes()
    assert data.startswith(run["before"]), note  # the records there at the signal, untouched
    assert data.endswith(b"\n")
    records = records_of(run["raw"])
    cut = [r for r in records if trial_records.is_cut_off(r)]
    assert len(cut) <= 1 and all(r["error"] == "interrupted (SIGINT)" for r in cut), note
    assert all(r["ok"] for r in records if not trial_records.is_cut_off(r)), note
    assert len(records) - len(cut) < run["total"]


RESUME_REFUSALS = [
    (["--repeat", "3"], "the plan differs from the run's: --repeat 3, the run has 2"),
    (["--seed", "12"], "the plan differs from the run's: --seed 12, the run has 11"),
    (["--cpus", "1", "--variants", "strong,weak"], "the plan differs from the run's: the flags give"),
    (["--work", "300000"], "the plan differs from the run's: the flags give"),
    (["--backend", "local"], "the backend differs from the run's: --backend local, the run ran on "
                             "docker"),
    (["--image", "multicore-lab-base:trixie"], "the plan differs from the run's"),
    (["--repeat", "0"], "--repeat '0': not allowed"),
]


@pytest.mark.parametrize("flags, message", RESUME_REFUSALS,
                         ids=[" ".join(f) for f, _ in RESUME_REFUSALS])
def test_resume_refuses_flags_that_change_the_plan_or_backend(interrupted, tmp_path, flags,
                                                              message):
    results = tmp_path / "copy"
    shutil.copytree(interrupted["results"], results, symlinks=True)
    before = snapshot(results)
    done = invoke("scale", "--resume", interrupted["run_id"], "--results-dir", str(results),
                  *flags)
    lines = error_lines(done.stderr)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert snapshot(results) == before


def test_resume_refuses_when_the_runs_image_changed_or_is_gone(engine, interrupted, test_image,
                                                               tmp_path):
    results = tmp_path / "copy"
    shutil.copytree(interrupted["results"], results, symlinks=True)
    before = snapshot(results)
    original = engine.images.get(test_image)
    other = engine.images.get("multicore-lab-base:trixie")
    assert other.id != original.id
    repository, _, name = test_image.partition(":")
    try:
        other.tag(repository, name)  # the same name now means another image
        done = invoke("scale", "--resume", interrupted["run_id"], "--results-dir", str(results))
        lines = error_lines(done.stderr)
        assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
        assert f"the image differs from the run's: {test_image} is now" in lines[0]
        engine.images.remove(test_image, noprune=True)  # the name is gone
        done = invoke("scale", "--resume", interrupted["run_id"], "--results-dir", str(results))
        lines = error_lines(done.stderr)
        assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
        assert "is no longer on this engine" in lines[0]
    finally:
        original.tag(repository, name)
    assert engine.images.get(test_image).id == original.id
    assert snapshot(results) == before


def test_resume_runs_only_the_missing_and_cut_off_trials_then_the_run_is_whole(
        engine, interrupted):
    run = interrupted
    note = f"k={run['k']} LAB_TEST_SEED={SEED}"
    folder, raw = run["folder"], run["raw"]
    kept = [r for r in records_of(raw) if not trial_records.is_cut_off(r)]
    before = snapshot(run["results"])
    dry = invoke("scale", "--resume", run["run_id"], "--results-dir", str(run["results"]),
                 "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"{run['total'] - len(kept)} of {run['total']} trials to run" in dry.stdout, dry.stdout
    assert snapshot(run["results"]) == before  # a dry run writes nothing

    # What an uninterrupted run with the same flags would run: its plan, from --dry-run.
    plan_text = invoke(*[a for a in run["args"]], "--dry-run")
    assert plan_text.returncode == 0, plan_text.stderr
    point_ids = [line.split(":")[0].strip() for line in plan_text.stdout.splitlines()
                 if line.startswith("  ")]
    rounds = 3
    uninterrupted = {(p, r) for p in point_ids for r in range(rounds)}
    assert plan_keys(folder) == uninterrupted

    done = invoke("scale", "--resume", run["run_id"], "--results-dir", str(run["results"]))
    assert done.returncode == 0, note + done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{run['total'] - len(kept)} of {run['total']} trials to run" in done.stdout
    data = raw.read_bytes()
    assert data.startswith(run["before"])  # appended to, never rewritten
    keys = measured_keys(raw)
    assert sorted(keys) == sorted(uninterrupted), note  # each trial measured exactly once
    loaded = trial_records.read_records(raw, warn=lambda *_: None)
    assert {trial_records.trial_key(r) for r in loaded} == uninterrupted
    assert len(loaded) == len(uninterrupted)
    assert all(r["ok"] for r in loaded), [r["error"] for r in loaded if not r["ok"]]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["resumes"][0]["previous_status"] == "interrupted"
    assert meta["calibration"]["work"] == 200000
    assert (folder / "summary.csv").exists() and (folder / "report.md").exists()
    assert labelled(engine, run["run_id"]) == []
    again = invoke("scale", "--resume", run["run_id"], "--results-dir", str(run["results"]))
    assert again.returncode == 0 and "nothing to resume" in again.stdout
    assert measured_keys(raw) == keys


def test_sigterm_and_a_second_signal_end_the_run_cleanly(engine, test_image, tmp_path):
    process = start_invoke(*scale_args(tmp_path, test_image, 1))
    raw, before = wait_for_records(process, tmp_path, 1)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    try:
        process.send_signal(signal.SIGINT)  # a second signal must not cut the cleanup short
    except ProcessLookupError:
        pass
    code, out, err = finish(process)
    assert code == 130, out + err
    assert "Interrupted (SIGTERM)" in out and "Traceback" not in err, out + err
    run_id = raw.parent.name
    assert f"invoke scale --resume {run_id} --results-dir {tmp_path}" in out
    assert json.loads((raw.parent / "meta.json").read_text())["status"] == "interrupted"
    assert raw.read_bytes().startswith(before)
    assert all(r["ok"] or r["error"] == "interrupted (SIGTERM)" for r in records_of(raw))
    assert labelled(engine, run_id) == []


def test_a_killed_run_loses_at_most_its_trial_in_flight_and_resume_cleans_up(engine, test_image,
                                                                            tmp_path):
    """SIGKILL: no cleanup at all in the process. The records on disk are whole, and --resume
    removes what the run left behind (by its label) and finishes it."""
    k = draw(1, 5, "SIGKILL after record")
    process = start_invoke(*scale_args(tmp_path, test_image))
    raw, before = wait_for_records(process, tmp_path, k)
    process.kill()
    process.communicate(timeout=60)
    run_id = raw.parent.name
    assert raw.read_bytes().startswith(before)
    assert json.loads((raw.parent / "meta.json").read_text())["status"] == "running"
    done = invoke("scale", "--resume", run_id, "--results-dir", str(tmp_path))
    assert done.returncode == 0, f"k={k} LAB_TEST_SEED={SEED}\n" + done.stdout + done.stderr
    assert raw.read_bytes().startswith(before)
    assert sorted(measured_keys(raw)) == sorted(plan_keys(raw.parent))
    assert json.loads((raw.parent / "meta.json").read_text())["status"] == "complete"
    assert labelled(engine, run_id) == []


def test_resume_keeps_the_calibrated_work_and_does_not_calibrate_again(engine, test_image,
                                                                      tmp_path):
    env = {"INVOKE_SCALE_TARGET_SECONDS": "0.05"}  # a tiny calibrated trial
    args = ["scale", "--cpus", "1", "--variants", "strong", "--work", "auto", "--repeat", "2",
            "--backend", "docker", "--image", test_image, "--results-dir", str(tmp_path)]
    process = start_invoke(*args, env=env)
    raw, before = wait_for_records(process, tmp_path, 1)
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process)
    assert code == 130 and "calibrated:" in out, out + err
    work = json.loads((raw.parent / "meta.json").read_text())["calibration"]["work"]
    done = invoke("scale", "--resume", raw.parent.name, "--results-dir", str(tmp_path),
                  "--work", "auto", env=env)  # the run's own --work: accepted, not re-measured
    assert done.returncode == 0, done.stdout + done.stderr
    assert "calibrated:" not in done.stdout
    records = trial_records.read_records(raw, warn=lambda *_: None)
    assert {r["params"]["work"] for r in records} == {work}
    assert {trial_records.trial_key(r) for r in records} == plan_keys(raw.parent)


def test_resume_refuses_a_run_another_process_is_running(interrupted, tmp_path):
    results = tmp_path / "copy"
    shutil.copytree(interrupted["results"], results, symlinks=True)
    folder = results / interrupted["run_id"]
    with open(folder / run_folder.LOCK, "a+") as held:  # as the process running it holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = snapshot(results)
        done = invoke("scale", "--resume", interrupted["run_id"], "--results-dir", str(results))
    lines = error_lines(done.stderr)
    assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
    assert f"run {interrupted['run_id']} is being run right now" in lines[0]
    assert snapshot(results) == before


# --- loading a run validates every line --------------------------------------------------------

def copy_run(interrupted, tmp_path):
    folder = tmp_path / interrupted["run_id"]
    shutil.copytree(interrupted["folder"], folder)
    for drawn in ("summary.csv", "report.md", "speedup.png", "efficiency.png"):
        (folder / drawn).unlink(missing_ok=True)
    return folder


def test_report_skips_a_truncated_last_line_and_says_which(interrupted, tmp_path):
    folder = copy_run(interrupted, tmp_path)
    raw = folder / "raw.jsonl"
    lines = raw.read_bytes().splitlines(keepends=True)
    with open(raw, "ab") as handle:  # a crash in the middle of writing a record
        handle.write(lines[0][: len(lines[0]) // 2])
    done = invoke("report", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (f"{raw}:{len(lines) + 1}: damaged line (the last one, cut off: a crash mid-write?), "
            f"skipped") in done.stdout
    assert (folder / "report.md").exists() and (folder / "summary.csv").exists()
    assert "Traceback" not in done.stderr


def test_a_damaged_meta_json_is_left_aside_by_report_and_refused_by_resume(interrupted, tmp_path):
    """meta.json cut off (an editor, a full disk): the report still rests on raw.jsonl, which is
    what was measured, and says so; --resume, which needs the run's own flags, refuses."""
    folder = copy_run(interrupted, tmp_path)
    meta = folder / "meta.json"
    meta.write_text(meta.read_text()[:40])
    done = invoke("report", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{meta} is not a run's meta.json (" in done.stdout
    assert "left aside; what follows rests on raw.jsonl alone" in done.stdout
    assert (folder / "report.md").exists() and (folder / "summary.csv").exists()
    resumed = invoke("scale", "--resume", str(folder))
    lines = error_lines(resumed.stderr)
    assert resumed.returncode == 2 and len(lines) == 1 and "cannot be resumed" in lines[0]
    assert "Traceback" not in done.stderr + resumed.stderr


def test_report_and_resume_refuse_a_record_of_an_unknown_schema(interrupted, tmp_path):
    folder = copy_run(interrupted, tmp_path)
    raw = folder / "raw.jsonl"
    records = records_of(raw)
    records[-1]["schema"] = 99
    raw.write_text("".join(json.dumps(r) + "\n" for r in records))
    before = snapshot(folder)
    expected = f"{raw}:{len(records)}: record schema 99 is not 1, which this lab reads"
    for command in (["report", str(folder)], ["scale", "--resume", str(folder)]):
        done = invoke(*command)
        lines = error_lines(done.stderr)
        assert done.returncode == 2, done.stdout + done.stderr
        assert lines == [f"error: {expected}"], lines
    assert snapshot(folder) == before
