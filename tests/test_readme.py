"""The README is executable: every command it shows runs, as written, from a fresh clone.

tests/readme_commands.py says what counts as a README command and how each is run (the table
STEPS). Here:

- `test_every_readme_command_has_a_run` (no test bed needed): every command extracted from the
  README is covered by exactly one step, every step's commands are still in the README, every
  stand-in is marked in the README, every INVOKE_* size knob is documented there.
- The runs: a session fixture copies the repository as it is on disk (tracked files and
  untracked ones git does not ignore: in CI that is a fresh clone) into a temporary folder and
  runs the README's first command there (`scripts/setup --engine && .venv/bin/invoke scale`),
  which makes the clone's own .venv. A second copy is set up the same way for the test beds'
  lane (the Slurm and SSH steps), which runs side by side with the local engine's lane: each
  lane has its own `results/`, so `latest` means what the README means. Every step runs from
  its clone's root with the clone's .venv/bin first on PATH and the default relative results/.
- Each step's test asserts the exit status the README promises, no Python traceback, and, where
  the command makes a run, the run folder with the files the README names (meta.json,
  plan.json, raw.jsonl with every measured record ok, summary.csv, report.md, report.html, and
  its charts as PNG and SVG).

Without an engine or a test bed the runs are skipped with the reason; under CI=true they fail.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from tests import readme_commands as table
from tests.conftest import IN_CI, PROJECT_ROOT

TRACEBACK = "Traceback (most recent call last)"
FACTS = Path("/run/multicore-lab-testbed")
RUN_FILES = ("meta.json", "plan.json", "raw.jsonl", "summary.csv", "report.md", "report.html")


# --- coverage: no README command without a run -----------------------------------------------

def test_every_readme_command_has_a_run():
    readme = table.README.read_text()
    shown = {c.text: c for c in table.readme_commands()}
    covered = {}
    for step in table.STEPS:
        for text in (*step.covers, *step.names):
            assert text not in covered, f"{text!r} is covered twice"
            covered[text] = step
    missing = [f"README line {c.line}: {c.text!r}" for t, c in shown.items() if t not in covered]
    assert not missing, ("README commands without a run (add a Step to "
                         "tests/readme_commands.py):\n" + "\n".join(missing))
    gone = [t for t in covered if t not in shown]
    assert not gone, f"steps for commands no longer in the README: {gone}"
    for step in table.STEPS:
        runs = [canonical_part for command in commands_run(step)
                for canonical_part in map(table.canonical, command.split(" && "))]
        for text in step.covers[1:]:
            assert table.canonical(text) in runs, (
                f"{text!r} is not the same command as what its step runs: {commands_run(step)}")
        for name in step.names:
            assert any(r.startswith(table.canonical(name) + " ") for r in runs), (name, runs)
        if step.how == table.STAND_IN:
            assert step.marker and step.marker in " ".join(readme.split()), (
                f"the README must mark {step.covers[0]!r} as run by a stand-in "
                f"(expected the words {step.marker!r})")
        if step.how == table.AS_WRITTEN:
            assert not step.run, step
        for knob in step.env:
            assert knob in readme, f"size knob {knob} is not documented in the README"


def test_extraction_reads_blocks_and_spans():
    text = ("Run `invoke scale --cpus 1` or `.venv/bin/python -m x\n  --y 2`, not `os.cpu_count()`.\n"
            "```sh\na --b \\\n  c   # note\n\n# only a comment\nd && e\n```\n"
            "```yaml\ninvoke: no\n```\n"
            "```console\n$ invoke info\nhost ...\n```\n")
    assert [c.text for c in table.commands_of(text)] == [
        "invoke scale --cpus 1", ".venv/bin/python -m x --y 2", "a --b c", "d && e",
        "invoke info"]


def commands_run(step):
    if step.how in (table.STAND_IN, table.FORM, table.CI):
        return list(step.run)
    return [step.covers[0]]


# --- the fresh clones and the lanes ----------------------------------------------------------

def need(condition, reason):
    if not condition:
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)


def fresh_clone(destination):
    """The repository as it is on disk: tracked and untracked-not-ignored files, in a folder with
    the mode `git clone` gives it (pytest's tmp folders are 0700: the trial's unprivileged user
    could not read a project there, which `--target` rightly refuses)."""
    umask = os.umask(0)
    os.umask(umask)
    destination.chmod(0o777 & ~umask)
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"],
                            cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = PROJECT_ROOT / name
        if not source.is_file() and not source.is_symlink():
            continue  # listed but deleted in the work tree
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return destination


class Clone:
    """One fresh clone, its results/ and the run ids its steps saved."""

    def __init__(self, root):
        self.root = root
        self.saved = {}

    @property
    def results(self):
        return self.root / "results"

    def env(self, extra):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("INVOKE_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env["PATH"] = f"{self.root / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env["VIRTUAL_ENV"] = str(self.root / ".venv")
        env.pop("CI", None)  # the commands run as a user runs them
        return {**env, **extra}

    def runs(self):
        if not self.results.is_dir():
            return set()
        return {p.name for p in self.results.iterdir()
                if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")}


def fill(command, step, clone):
    """Put run ids (@name) and literals in for the README's placeholders."""
    for placeholder, value in step.fill.items():
        if value.startswith("@"):
            value = clone.saved.get(value[1:])
            assert value, f"no earlier run saved as {step.fill[placeholder]} for {command!r}"
        if placeholder.startswith("<"):
            command = command.replace(placeholder, value)
        else:
            command = re.sub(rf"(?<![\w/-]){re.escape(placeholder)}(?![\w/-])", value, command)
    return command


def shell(command, clone, env, timeout):
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", command], cwd=clone.root, env=clone.env(env),
                          capture_output=True, text=True, timeout=timeout)
    done.seconds = time.monotonic() - started
    return done


def interrupt(command, clone, env, name):
    """Start a run, SIGINT its process group after its first trial record, keep its id."""
    before = clone.runs()
    process = subprocess.Popen(["bash", "-c", command], cwd=clone.root, env=clone.env(env),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        new = clone.runs() - before
        raw = [clone.results / n / "raw.jsonl" for n in new]
        if any(p.is_file() and p.read_text().count("\n") >= 1 for p in raw):
            break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=300)
    new = clone.runs() - before
    assert len(new) == 1, f"{command!r} (interrupted) made runs {new}:\n{output[-3000:]}"
    assert process.returncode in (0, 130), (
        f"{command!r} cut off by SIGINT exited {process.returncode}, not 130:\n{output[-3000:]}")
    clone.saved[name] = new.pop()


class Result:
    def __init__(self):
        self.commands = []     # (command, CompletedProcess)
        self.new_runs = []
        self.error = None


def execute(step, clone):
    result = Result()
    try:
        if step.interrupt:
            interrupt(step.interrupt[0], clone, step.env, step.interrupt[1])
        before = clone.runs()
        for command in commands_run(step):
            command = fill(command, step, clone)
            result.commands.append((command, shell(command, clone, step.env, step.timeout)))
        if step.after:
            result.commands.append((step.after, shell(step.after, clone, {}, step.timeout)))
        result.new_runs = sorted(clone.runs() - before)
        if step.saves and len(result.new_runs) == 1:
            clone.saved[step.saves] = result.new_runs[0]
    except Exception as error:  # noqa: BLE001 (reported by the step's own test)
        result.error = error
    return result


@pytest.fixture(scope="session")
def readme_runs(tmp_path_factory, engine):
    """Run every step once, lane by lane; returns {step id: Future of its Result}."""
    need((FACTS / "remote.json").is_file() and (FACTS / "slurm.json").is_file(),
         f"the test beds are not up ({FACTS}/*.json missing): run scripts/setup --remote --slurm")
    need(shutil.which("srun") is not None, "no srun on PATH: run scripts/setup --slurm")
    main = Clone(fresh_clone(tmp_path_factory.mktemp("readme-clone")))
    beds = Clone(fresh_clone(tmp_path_factory.mktemp("readme-clone-beds")))
    futures = {step.id: Future() for step in table.STEPS}

    def lane(name, clone):
        for step in table.STEPS:
            if step.lane == name:
                futures[step.id].set_result(execute(step, clone))

    lane("setup", main)
    side = [threading.Thread(target=lane, args=(name, clone), daemon=True)
            for name, clone in (("docker", main), ("beds", beds))]
    for thread in side:
        thread.start()

    def last():
        for thread in side:
            thread.join()
        if beds_may_go_down():
            lane("last", main)
    threading.Thread(target=last, daemon=True).start()
    return {"futures": futures, "main": main, "beds": beds}


def beds_may_go_down():
    """`scripts/testbed/... down` stops beds other sessions on this machine may be using: it runs
    under CI=true (and LAB_README_BEDS_DOWN=1), not on a shared workstation by default;
    LAB_README_BEDS_DOWN=0 leaves it out even in CI."""
    wanted = os.environ.get("LAB_README_BEDS_DOWN")
    return wanted == "1" or (IN_CI and wanted != "0")


def test_the_clone_runs_its_own_lab(readme_runs):
    clone = readme_runs["main"]
    readme_runs["futures"][table.STEPS[0].id].result()
    done = shell("python -c 'import lab; print(lab.__file__)' && command -v invoke", clone, {}, 60)
    assert done.returncode == 0, done.stderr
    lab_file, invoke = done.stdout.split()
    assert Path(lab_file).resolve().is_relative_to(clone.root.resolve()), lab_file
    assert Path(invoke) == clone.root / ".venv" / "bin" / "invoke"


@pytest.mark.parametrize("step", table.STEPS, ids=lambda s: s.id)
def test_readme_command(step, readme_runs):
    if step.lane == "last" and not beds_may_go_down():
        pytest.skip("stops the shared test beds (other sessions may use them): runs under "
                    "CI=true or LAB_README_BEDS_DOWN=1")
    clone = readme_runs["beds" if step.lane == "beds" else "main"]
    result = readme_runs["futures"][step.id].result(timeout=3600)
    if result.error:
        raise result.error
    for command, done in result.commands:
        said = f"$ {command}\n(exit {done.returncode}, {done.seconds:.0f} s)\n" \
               f"--- stdout (tail)\n{done.stdout[-2500:]}\n--- stderr (tail)\n{done.stderr[-2500:]}"
        expected = 0 if command == step.after else step.status
        assert done.returncode == expected, f"exit status {done.returncode}, README: {expected}\n{said}"
        assert TRACEBACK not in done.stderr + done.stdout, f"a traceback\n{said}"
    if step.makes:
        # --resume finishes the run cut off before it, in its own folder
        runs = result.new_runs or ([clone.saved[step.interrupt[1]]] if step.interrupt else [])
        assert len(runs) == 1, f"expected one run folder under results/, got {runs}"
        check_run_folder(clone.results / runs[0], step)


def check_run_folder(folder, step):
    for name in RUN_FILES:
        assert (folder / name).is_file(), f"{folder.name}: no {name}"
    for chart in step.charts:
        for suffix in (".png", ".svg"):
            assert (folder / (chart + suffix)).is_file(), f"{folder.name}: no {chart}{suffix}"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta.get("status") == "complete", f"{folder.name}: status {meta.get('status')}"
    plan = json.loads((folder / "plan.json").read_text())
    records = [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()
               if line.strip()]
    assert records, f"{folder.name}: raw.jsonl is empty"
    failed = [r for r in records if not r.get("ok") and not r.get("warmup")
              and not str(r.get("error") or "").startswith("interrupted")]  # cut off, resumed
    assert not failed, f"{folder.name}: failed trials: {[r.get('error') for r in failed][:5]}"
    assert plan, folder
    # Every planned trial has its record (after --resume too: the README's "same set of trials").
    kept = {(r["point_id"], r["round"], r.get("host")) for r in records
            if not str(r.get("error") or "").startswith("interrupted")}
    assert len(kept) == meta["trials_planned"], (
        f"{folder.name}: {len(kept)} trials recorded, {meta['trials_planned']} planned")
    latest = folder.parent / "latest"
    assert latest.is_symlink(), "results/latest is missing"
