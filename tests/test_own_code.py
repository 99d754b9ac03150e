"""Your own code on pinned CPUs: `invoke scale --command ...` and `--target FILE.py:crunch`, from
the lab's root and from a project folder of your own (`invoke -r <lab>`), the checks of a
function's results proven with broken doubles, and every refusal in one line with nothing
written. Small sizes throughout (the tutorial's Pipe program is the longest trial)."""

import json
import textwrap
from pathlib import Path

import pytest

from lab.experiments import command as command_trial
from tests.conftest import PROJECT_ROOT, invoke


def _runs(results):
    return sorted(p for p in Path(results).glob("2*") if p.is_dir())


def _records(run):
    return [json.loads(line) for line in (run / "raw.jsonl").read_text().splitlines()]


def _project(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for folder in [tmp_path, *tmp_path.rglob("*")]:  # pytest's are the owner's alone (0700);
        if folder.is_dir():                           # the trial's user is another (uid 10001)
            folder.chmod(0o755)
    return tmp_path


def _lab(*args, cwd):
    """`invoke -r <lab checkout> scale ...` run from `cwd`, as from a user's own project."""
    return invoke("-r", str(PROJECT_ROOT), "scale", *args, cwd=cwd)


CRUNCH = """
    def crunch(n):
        total = 0
        for i in range(n):
            total += 3
        return total
"""
PROGRAM = """
    import json, sys, time
    start = time.perf_counter()
    sum(range(int(sys.argv[3]) * 1000))
    print("a line of the program's own output")
    print(json.dumps({"seconds": time.perf_counter() - start, "cpus_seen": int(sys.argv[1]),
                      "items": 7}))
"""


# --- pure pieces -------------------------------------------------------------------------------

def test_placeholders_are_filled_word_by_word_and_unknown_ones_named():
    argv = command_trial.argv_for("python3 p.py --n {workers} 'a b' {cpus}x{work}", 2, 3, 40)
    assert argv == ["python3", "p.py", "--n", "3", "a b", "2x40"]
    assert command_trial.unknown_placeholders("run {workers} {threads} {cpus}") == ["threads"]


def test_the_programs_own_seconds_only_from_a_json_last_line_with_seconds():
    assert command_trial._reported('x\n{"seconds": 0.5, "n": 3}\n') == {"seconds": 0.5, "n": 3}
    for text in ('{"seconds": 0.5}\nafter', '{"s": 1}', '[1]', "", "{bad"):
        assert command_trial._reported(text) is None
    assert command_trial._reported('{"seconds": -1}') == {"seconds": -1}  # said: to be checked


def test_a_clock_the_lab_cannot_believe_fails_the_trial(tmp_path):
    """The program's own "seconds" must be a positive number inside the process that timed it:
    a string, a negative, NaN, or a section longer than the whole process fails its trial."""
    project = _project(tmp_path, {"clock.py": """
        import json, sys
        print({"str": '{"seconds": "abc"}', "neg": '{"seconds": -1}', "nan": '{"seconds": NaN}',
               "long": json.dumps({"seconds": 3600}), "fine": '{"seconds": 0.001}'}[sys.argv[1]])
    """})
    for mode, reason in (("str", "says \"seconds\": 'abc'; allowed: a positive number"),
                         ("neg", "says \"seconds\": -1; allowed"),
                         ("nan", "says \"seconds\": nan; allowed"),
                         ("long", "the program says its section took 3600 s, longer than the "
                                  "whole process ("),
                         ("fine", None)):
        before = set(_runs(project / "results"))
        done = _lab("--command", f"python3 clock.py {mode}", "--cpus", "1", "--repeat", "1",
                    cwd=project)
        [run] = set(_runs(project / "results")) - before
        records = _records(run)
        if reason is None:  # the double's control: the same program with a believable clock
            assert done.returncode == 0 and all(r["ok"] and r["seconds"] == 0.001
                                                for r in records), done.stderr[-2000:]
        else:
            assert done.returncode == 3, done.stderr[-2000:]
            assert all(not r["ok"] and reason in r["error"] for r in records), records[0]


# --- a program -----------------------------------------------------------------------------------

def test_the_tutorials_pipe_program_runs_unmodified_from_the_labs_root():
    done = invoke("scale", "--command", "python3 examples/tutorial/pipe.py", "--cpus", "1",
                  "--repeat", "1")
    # this run's folder, by the id it printed (others may run into results/ beside it); it
    # stays, as a user's would (results/latest points at it)
    new = [PROJECT_ROOT / "results" / word.split("/")[-1] for word in done.stdout.split()
           if word.startswith("results/2")][:1]
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(new) == 1 and (new[0] / "report.md").is_file()
    records = _records(new[0])
    assert [r["ok"] for r in records] == [True, True]
    assert {r["experiment"] for r in records} == {"command"}
    assert records[0]["check"]["argv"] == ["python3", "examples/tutorial/pipe.py"]
    assert records[0]["check"]["section_clock"].startswith("the whole process")
    assert all(r["seconds"] > 0 and r["cpu_seconds"] > 0 for r in records)


def test_a_program_from_your_own_folder_gets_its_placeholders_and_its_own_clock(tmp_path):
    project = _project(tmp_path, {"prog.py": PROGRAM})
    done = _lab("--command", "python3 prog.py {cpus} {workers} {work}", "--cpus", "1,2",
                "--work", "30", "--repeat", "1", cwd=project)
    assert done.returncode == 0, done.stderr[-2000:]
    [run] = _runs(project / "results")  # the run lands where the user stands
    records = [r for r in _records(run) if not r["warmup"]]
    assert sorted((r["cpus"], r["check"]["argv"][2:]) for r in records) == [
        (1, ["1", "1", "30"]), (2, ["2", "2", "30"])]
    for record in records:
        assert record["check"]["section_clock"].startswith("the program's own")
        assert record["seconds"] < record["metrics"]["process_seconds"]["value"]
        assert record["metrics"]["cpus_seen"]["value"] == record["cpus"]
    summary = (run / "summary.csv").read_text()
    assert "strong" in summary and "speedup" in summary


def test_a_failing_program_is_a_failed_trial_with_its_stderr_tail(tmp_path):
    project = _project(tmp_path, {"fail.py": """
        import sys
        print("half of the work", file=sys.stderr)
        sys.exit("boom: the input file is missing")
    """})
    done = _lab("--command", "python3 fail.py", "--cpus", "1", "--repeat", "1", cwd=project)
    assert done.returncode == 3, done.stderr[-2000:]  # some measured trials failed
    [run] = _runs(project / "results")
    for record in _records(run):
        assert not record["ok"] and record["seconds"] is None
        assert "exited with status 1: boom: the input file is missing" in record["error"]
        assert "half of the work" in record["stderr_tail"]


def test_the_folder_is_read_only_inside_the_trial_and_mount_chooses_it(tmp_path):
    project = _project(tmp_path, {"code/writer.py": """
        open("output.txt", "w").write("x")
    """, "code/reader.py": """
        print(open("data.txt").read())
    """, "code/data.txt": "ok"})
    done = _lab("--command", "python3 writer.py", "--mount", "code", "--cpus", "1",
                "--repeat", "1", "--backend", "docker", cwd=project)
    assert done.returncode == 3
    [run] = _runs(project / "results")
    assert all("Read-only file system" in r["stderr_tail"] for r in _records(run))
    assert not (project / "code" / "output.txt").exists()
    done = _lab("--command", "python3 reader.py", "--mount", "code", "--cpus", "1",
                "--repeat", "1", "--backend", "local", cwd=project)
    assert done.returncode == 0, done.stderr[-2000:]


# --- a function ----------------------------------------------------------------------------------

def test_a_function_from_your_own_folder_runs_the_tutorials_variants_with_its_checks(tmp_path):
    project = _project(tmp_path, {"my_work.py": CRUNCH})
    done = _lab("--target", "my_work.py:crunch", "--cpus", "1,2", "--variants",
                "strong", "--work", "40000", "--repeat", "1", cwd=project)
    assert done.returncode == 0, done.stderr[-2000:]
    [run] = _runs(project / "results")
    records = _records(run)
    assert {(r["variant"], r["cpus"]) for r in records} == {("strong", 1), ("strong", 2),
                                                            ("serial", 1)}
    for record in records:
        assert record["ok"] and record["experiment"] == "target"
        assert record["params"] == {"work": 40000, "target": "my_work.py:crunch"}
        assert record["check"]["total"] == "the chunks' total equals the serial result"
        assert record["check"]["equal"] == "chunks of equal n gave equal results"
        assert record["check"]["all_workers_warmed"] is True
    assert (run / "speedup.png").is_file() and (run / "report.md").is_file()
    meta = json.loads((run / "meta.json").read_text())
    assert meta["own"]["checked"]["additive"] is True


def test_a_package_target_with_work_auto_is_calibrated(tmp_path):
    project = _project(tmp_path, {"pkg/__init__.py": "", "pkg/work.py": CRUNCH})
    done = invoke("-r", str(PROJECT_ROOT), "scale", "--target", "pkg.work:crunch", "--cpus",
                  "1", "--variants", "strong", "--repeat", "1", cwd=project,
                  env={"INVOKE_SCALE_TARGET_SECONDS": "0.05", "INVOKE_LAB_MIN_SECONDS": "0.01"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "calibrated:" in done.stdout
    [run] = _runs(project / "results")
    meta = json.loads((run / "meta.json").read_text())
    assert meta["calibration"]["mode"] == "auto" and meta["calibration"]["work"] > 1


DOUBLES = {
    "adds.py": CRUNCH,
    "words.py": """
        def crunch(n):
            return "x" * (n % 5)
    """,
    "dice.py": """
        import random
        def crunch(n):
            return random.random() * n
    """,
}


@pytest.fixture
def own_backend(docker_backend, tmp_path):
    _project(tmp_path, DOUBLES)
    docker_backend.share_project(str(tmp_path))
    return docker_backend


def _trial(backend, target, variant, workers=2, work=200):
    spec = {"experiment": "target", "variant": variant, "workers": workers,
            "params": {"target": target, "work": work}, "start_method": "fork",
            "expect_affinity": None, "time_limit_s": 60}
    return backend.run(spec, [0, 1][:workers], None, 60)


@pytest.mark.parametrize("target, variant, failure", [
    ("adds.py:crunch", "test_drop_chunk", "1 of 2 chunks returned a result"),
    ("adds.py:crunch", "test_off_chunk", "gave different results, though crunch is determ"),
    ("words.py:crunch", "test_off_chunk", "gave different results, though crunch is determ"),
])
def test_each_check_of_a_functions_results_can_fail(own_backend, target, variant, failure):
    outcome = _trial(own_backend, target, variant)
    assert outcome.error and failure in outcome.error


def test_the_total_check_fails_on_one_worker_whose_result_is_off(own_backend):
    outcome = _trial(own_backend, "adds.py:crunch", "test_off_chunk", workers=1)
    assert "the chunks' results add up to 601, but crunch(200) serially gives 600" in \
        outcome.error


def test_what_a_function_does_not_let_the_lab_check_is_cant_tell(own_backend):
    words = _trial(own_backend, "words.py:crunch", "strong").result["check"]
    assert words["equal"] == "chunks of equal n gave equal results"
    assert words["total"].startswith("can't tell")
    dice = _trial(own_backend, "dice.py:crunch", "test_off_chunk").result["check"]
    assert dice["equal"].startswith("can't tell") and dice["total"].startswith("can't tell")


# --- refusals ----------------------------------------------------------------------------------

REFUSALS = [
    (["--command", "python3 prog.py {threads}"],
     "unknown placeholder {threads}; allowed: {cpus}, {workers}, {work}"),
    (["--command", "nosuchprog {workers}"], "nosuchprog: command not found in the trial"),
    (["--command", "python3 nosuch.py"], "nosuch.py: no such file in the project folder"),
    (["--command", "python3 prog.py {work}"], "uses {work}: give --work a number"),
    (["--command", "python3 'open"], "No closing quotation"),
    (["--command", "python3 prog.py", "--variants", "process"],
     "--variants 'process' with --command: allowed: strong"),
    (["--target", "broken.py:crunch"], "it does not import: ModuleNotFoundError"),
    (["--target", "raises.py:simulate"], "simulate raised on a small n: ValueError: no work"),
    (["--target", "my_work.py:nope"], "my_work has no function nope"),
    (["--target", "odd.py:leaves"], "leaves raised on a small n: SystemExit: 4"),
    (["--target", "odd.py:idle"], "idle's time does not grow with n: idle("),
    (["--target", "odd.py:locked"], "its result does not pickle (TypeError: cannot pickle "
                                    "'_thread.lock' object), and --variants strong,weak send "
                                    "results back by pickle; allowed: a result that pickles, or "
                                    "--variants serial,threads"),
    (["--target", "nofile.py:crunch"], "no file nofile.py here"),
    (["--target", "my_work"], "allowed FILE.py:FUNCTION or package.module:FUNCTION"),
    (["--target", "my_work.py:crunch", "--command", "x"], "--command and --target together"),
    (["--mount", "nowhere", "--command", "x"], "--mount 'nowhere': no such folder"),
    (["--target", "my_work.py:crunch", "--variants", "strong,interpreters"],
     "InterpreterPoolExecutor needs Python 3.14 or later, and multicore-lab-base:trixie has"),
    (["--requirements", "requirements.txt"], "alone: allowed with --command or --target"),
]


@pytest.mark.parametrize("args, message", REFUSALS, ids=[" ".join(a) for a, _ in REFUSALS])
def test_bad_own_code_is_refused_in_one_line_and_nothing_is_written(tmp_path, args, message):
    project = _project(tmp_path, {"my_work.py": CRUNCH, "prog.py": PROGRAM,
                                  "broken.py": "import no_such_module_here\n",
                                  "raises.py": """
                                      def simulate(n):  # not 'crunch': its own name is said
                                          raise ValueError("no work for you")
                                  """,
                                  "odd.py": """
                                      import threading
                                      def leaves(n):
                                          raise SystemExit(4)
                                      def locked(n):
                                          sum(range(n))
                                          return threading.Lock()
                                      def idle(n):  # n ignored: --work auto finds no rate
                                          return 1
                                  """})
    done = _lab(*args, "--cpus", "1", "--repeat", "1", cwd=project)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in done.stdout + done.stderr
    assert not (project / "results").exists()


def test_a_remote_host_gets_your_folder_and_requirements_as_images_made_here(tmp_path):
    """--hosts ssh://... (the test bed's second engine): the requirements image and the folder
    baked on top of it are made on this machine and shipped; the trials there import six from
    the one and the function from the other (read-only: the function's file cannot be
    written); a second run reuses both images."""
    from tests.test_testbed import facts_of
    remote = facts_of("remote", "--remote")["url"]
    project = _project(tmp_path, {"requirements.txt": "six==1.16.0\n", "my_work.py": """
        import os, six
        def crunch(n):
            assert not os.access(__file__, os.W_OK), "the project folder is writable"
            return n if six.PY3 else 0
    """})
    args = ("--hosts", remote, "--target", "my_work.py:crunch", "--requirements",
            "requirements.txt", "--cpus", "1", "--variants", "strong", "--work", "2000",
            "--repeat", "1")
    done = _lab(*args, cwd=project)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [run] = _runs(project / "results")
    records = _records(run)
    assert records and all(r["ok"] and r["host"] == remote for r in records), \
        [r.get("error") for r in records]
    assert {r["image_tag"].split(":")[0] for r in records} == {"multicore-lab-project"}
    meta = json.loads((run / "meta.json").read_text())
    assert meta["own"]["checked"]["additive"] is True
    again = _lab(*args, cwd=project)
    assert again.returncode == 0 and "project image multicore-lab-project:" in again.stdout \
        and "(reused)" in again.stdout, again.stdout[-2000:] + again.stderr[-2000:]


# --- requirements ------------------------------------------------------------------------------

def test_requirements_go_into_a_derived_image_built_from_wheels_fetched_here(tmp_path):
    """six (one small pure-Python wheel from PyPI): installed into multicore-lab-req:<digest>
    from wheels pip fetched on this machine; the trial imports it; a second run reuses it."""
    project = _project(tmp_path, {"requirements.txt": "six==1.16.0\n", "uses_six.py": """
        import six
        def crunch(n):
            return n if six.PY3 else 0
    """})
    args = ("--target", "uses_six.py:crunch", "--requirements", "requirements.txt", "--cpus",
            "1", "--variants", "strong", "--work", "1000", "--repeat", "1", "--backend",
            "docker")
    first = _lab(*args, cwd=project)
    assert first.returncode == 0, first.stderr[-2000:]
    tags = {r["image_tag"] for r in _records(_runs(project / "results")[0])}
    assert len(tags) == 1 and tags.pop().startswith("multicore-lab-req:")
    second = _lab(*args, cwd=project)
    assert second.returncode == 0 and "(reused)" in second.stdout


def test_requirements_that_do_not_install_are_refused_with_pips_last_error_line(tmp_path):
    project = _project(tmp_path, {"my_work.py": CRUNCH,
                                  "requirements.txt": "no-such-package-mcl-x==9.9\n"})
    for backend, message in (("docker", "pip could not install them: ERROR: No matching "
                                        "distribution found for no-such-package-mcl-x==9.9"),
                             ("local", "lacks no-such-package-mcl-x; install them there")):
        done = _lab("--target", "my_work.py:crunch", "--requirements", "requirements.txt",
                    "--backend", backend, "--cpus", "1", "--repeat", "1", cwd=project)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr
        assert not (project / "results").exists()


def test_a_dry_run_of_your_code_plans_its_points_and_writes_nothing(tmp_path):
    project = _project(tmp_path, {"prog.py": PROGRAM, "my_work.py": CRUNCH})
    command = _lab("--command", "python3 prog.py {cpus} {workers} 1", "--cpus", "1,2",
                   "--dry-run", cwd=project)
    target = _lab("--target", "my_work.py:crunch", "--cpus", "1,2", "--dry-run", cwd=project)
    assert command.returncode == 0 and target.returncode == 0, command.stderr + target.stderr
    assert "command.strong.c2.w2" in command.stdout and "serial" not in command.stdout
    assert "target.weak.c2.w2" in target.stdout and "target.serial.c1.w1" in target.stdout
    assert not (project / "results").exists()


# --- resume ------------------------------------------------------------------------------------

def _cut_off_target_run(project, *args, target="my_work.py:crunch", results_after=1):
    """`invoke -r <lab> scale --target ...` from `project`, SIGINT once its first trial records;
    returns the run folder (exit 130 asserted)."""
    import signal
    import subprocess
    import sys
    import time
    command = [str(Path(sys.executable).with_name("invoke")), "-r", str(PROJECT_ROOT), "scale",
               "--target", target, "--cpus", "1", "--variants", "strong,weak",
               "--work", "20000", "--repeat", "2", *args]
    process = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        raws = list((project / "results").glob("2*/raw.jsonl"))
        if raws and raws[0].read_bytes().count(b"\n") >= results_after:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, out[-2000:] + err[-2000:]
    [run] = _runs(project / "results")
    return run


def test_a_cut_off_target_run_resumes_with_its_folder_and_refuses_a_changed_one(tmp_path):
    """The resumed trials see the project folder again (every planned trial ok); once the
    folder's code changes, or the folder is gone, --resume refuses in one line, nothing run."""
    project = _project(tmp_path, {"my_work.py": CRUNCH})
    run = _cut_off_target_run(project)
    before = (run / "raw.jsonl").read_bytes()
    (project / "my_work.py").write_text(textwrap.dedent(CRUNCH).replace("3", "4"))
    changed = _lab("--resume", "latest", cwd=project)
    lines = changed.stderr.strip().splitlines()
    assert changed.returncode == 2 and len(lines) == 1, changed.stdout + changed.stderr
    assert "changed since the run started" in lines[0] and "Traceback" not in changed.stdout
    assert (run / "raw.jsonl").read_bytes() == before  # nothing ran, nothing was written
    (project / "my_work.py").write_text(textwrap.dedent(CRUNCH))  # the code the run measured
    done = _lab("--resume", "latest", cwd=project)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    from tests.robustness_kit import plan_keys
    from lab import records as trial_records
    records = trial_records.read_records(run / "raw.jsonl", warn=lambda *_: None)
    kept = [r for r in records if not trial_records.is_cut_off(r)]
    assert {trial_records.trial_key(r) for r in kept} == plan_keys(run)
    assert all(r["ok"] for r in kept), [r.get("error") for r in kept if not r["ok"]]
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"


def test_a_cut_off_run_with_requirements_resumes_on_its_derived_image(tmp_path):
    """The resumed trials run on the run's multicore-lab-req image (by its id) and import six."""
    project = _project(tmp_path, {"requirements.txt": "six==1.16.0\n", "my_work.py": """
        import six
        def crunch(n):
            return n if six.PY3 else 0
    """})
    run = _cut_off_target_run(project, "--requirements", "requirements.txt")
    done = _lab("--resume", "latest", cwd=project)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = [r for r in _records(run) if not (r.get("error") or "").startswith("interrupted")]
    assert all(r["ok"] for r in records) and len(records) == 9, [r.get("error") for r in records]
    assert {r["image_tag"].split(":")[0] for r in records} == {"multicore-lab-req"}


def test_a_cut_off_run_on_a_remote_host_resumes_on_its_folder_image(tmp_path):
    from tests.test_testbed import facts_of
    remote = facts_of("remote", "--remote")["url"]
    project = _project(tmp_path, {"my_work.py": CRUNCH})
    run = _cut_off_target_run(project, "--hosts", remote)
    done = _lab("--resume", "latest", cwd=project)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = [r for r in _records(run) if not (r.get("error") or "").startswith("interrupted")]
    assert len(records) == 9 and all(r["ok"] and r["host"] == remote for r in records), \
        [r.get("error") for r in records]
    assert {r["image_tag"].split(":")[0] for r in records} == {"multicore-lab-project"}


def test_resume_refuses_when_the_mounted_folder_is_gone(tmp_path):
    import shutil
    _project(tmp_path / "code", {"my_work.py": CRUNCH})
    run = _cut_off_target_run(_project(tmp_path, {}), "--mount", "code",
                              target="code/my_work.py:crunch")
    shutil.rmtree(tmp_path / "code")
    gone = _lab("--resume", "latest", cwd=tmp_path)
    lines = gone.stderr.strip().splitlines()
    assert gone.returncode == 2 and len(lines) == 1, gone.stdout + gone.stderr
    assert f"the project folder {tmp_path / 'code'} is gone" in lines[0]


def test_a_function_runs_on_interpreters_on_the_sid_base(tmp_path):
    """--variants interpreters (InterpreterPoolExecutor, Python 3.14 on the sid base): the
    function is imported in each interpreter and its checks hold; the sid image's Python is
    the records' own."""
    project = _project(tmp_path, {"my_work.py": CRUNCH})
    done = _lab("--target", "my_work.py:crunch", "--base-image", "multicore-lab-base:sid",
                "--variants", "strong,interpreters", "--cpus", "2", "--work", "20000",
                "--repeat", "1", cwd=project)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [run] = _runs(project / "results")
    records = _records(run)
    assert {r["variant"] for r in records} == {"serial", "strong", "interpreters"}
    interpreters = [r for r in records if r["variant"] == "interpreters"]
    for record in interpreters:
        assert record["ok"] and record["experiment"] == "target", record.get("error")
        assert record["check"]["total"] == "the chunks' total equals the serial result"
    assert all(r["python"].startswith("3.14") for r in records)
