"""Every command the README shows, and how tests/test_readme.py runs it.

What counts as a README command (`commands_of`):

- every line of a fenced block whose language is sh, bash, shell or console (console: only the
  lines after a `$ ` prompt), with `\\` continuations joined, `# comments` and blank lines dropped;
  `a && b` stays one command line, run by bash as written;
- every inline code span of the prose (outside fences; a span may run over a line break) that
  starts, after an optional `/usr/bin/time `, with `invoke `, `.venv/bin/`, `python -m ` or
  `scripts/`: the lab's tasks, its set-up and test-bed scripts, its benchmarks. Other spans
  (`os.cpu_count()`, `--cpus 2`, file names, the VM walkthrough's `ssh` and `docker -H` lines,
  which only make sense on a real VM) are not commands of the lab.

Whitespace is normalised (runs of spaces become one). A command shown twice is one command.

How each is run is the table STEPS below, in the order the steps run (later steps use runs made
by earlier ones). Every README command must be covered by exactly one step, and every command a
step names must still be in the README: adding a command to the README without a run of it
fails the suite (`test_every_readme_command_has_a_run`).

A step runs, from the root of a fresh clone, with the clone's `.venv/bin` first on PATH (what
`. .venv/bin/activate` does; the README says so under "Two commands") and the default relative
`results/`:

- AS_WRITTEN: the README's text itself, with only size knobs lowered, through the INVOKE_*
  variables the README documents (SIZE). Placeholders (`RUN`, `RUN_A`, `RUN_B`, `<run>`, `A`,
  `B`, `IMG`, `<spec>`) are filled from `fill`: `@name` is the id of the run an earlier step of
  this session saved under that name (`saves`), anything else is literal.
- STAND_IN: the README marks the command as needing what no machine here has (a real VM, a
  path of a real cluster); `run` is what runs instead on the test bed, and `marker` is the
  README's words that say so.
- FORM: a synopsis (`invoke build [--suite bookworm] ...`): `run` is its forms, each run.
- CI: the command is the CI itself (.ci/run runs it); `run` is the part that is not the suite.

`covers` may also hold spans that are the same command as the step's (after dropping a leading
`/usr/bin/time ` and `.venv/bin/`: with the venv's bin first on PATH, `invoke` is
`.venv/bin/invoke`), and `names` holds spans that name a task or flag in a sentence
(`invoke report`) rather than give a whole command; both are checked against `run`.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
SPAN_COMMAND = re.compile(r"^(/usr/bin/time )?(invoke |\.venv/bin/|python -m |scripts/)")
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")


@dataclass(frozen=True)
class Command:
    text: str
    line: int      # where the README shows it first
    where: str     # "block" or "span"


def _strip_comment(line):
    """Drop a `# comment` (a # at the start or after a blank, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def normalise(text):
    return " ".join(text.split())


def commands_of(text):
    """The README's commands, in order of first appearance, each once."""
    found = {}

    def add(command, line, where):
        command = normalise(command)
        if command and command not in found:
            found[command] = Command(command, line, where)

    prose = []   # (line number, text) outside fences
    lines = text.splitlines()
    fence = None
    pending, pending_line = "", 0
    for number, line in enumerate(lines, 1):
        opened = FENCE.match(line)
        if fence is None:
            if opened:
                fence = (opened.group(1), opened.group(2).lower())
                prose.append((number, ""))  # a span never runs across a fence
                continue
            prose.append((number, line))
            continue
        if opened and opened.group(1).startswith(fence[0]) and not opened.group(2):
            fence = None
            continue
        language = fence[1]
        if language not in SHELL_LANGUAGES:
            continue
        body = line
        if language == "console":
            stripped = line.lstrip()
            if not pending and not stripped.startswith("$ "):
                continue  # output, not a command
            if not pending:
                body = stripped[2:]
        if not pending:
            pending_line = number
        body = _strip_comment(body) if not body.rstrip().endswith("\\") else body
        if body.rstrip().endswith("\\"):
            pending += body.rstrip()[:-1] + " "
            continue
        add(pending + body, pending_line, "block")
        pending = ""
    # Inline spans: join the prose back (a span may continue on the next line), then map each
    # span's offset to its line.
    joined, starts = "", []
    for number, line in prose:
        starts.append((len(joined), number))
        joined += line + "\n"
    for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", joined):
        span = normalise(match.group(1))
        if SPAN_COMMAND.match(span):
            line = max(n for offset, n in starts if offset <= match.start())
            add(span, line, "span")
    return sorted(found.values(), key=lambda c: c.line)


def readme_commands():
    return commands_of(README.read_text())


def canonical(command):
    """The command a user's shell runs, with the venv's bin first on PATH and the timing left
    out: `/usr/bin/time .venv/bin/invoke scale` and `invoke scale` are the same run."""
    command = normalise(command)
    command = re.sub(r"^/usr/bin/time ", "", command)
    return re.sub(r"^\.venv/bin/", "", command)


# --- the table -------------------------------------------------------------------------------

AS_WRITTEN, STAND_IN, FORM, CI = "as written", "stand-in", "form", "ci"

# The size knobs (README, "Tasks": every INVOKE_* variable used here is named there): one
# measured round, the shortest timed sections the lab accepts, scaling's calibration aimed at
# 0.05 s, lessons at 1% of their default counts. Flags a command gives (`--repeat 3`) win, as the
# README says.
SIZE = {
    "INVOKE_LAB_REPEAT": "1",
    "INVOKE_IPC_REPEAT": "1",
    "INVOKE_LESSONS_REPEAT": "1",
    "INVOKE_LAB_MIN_SECONDS": "0.001",
    "INVOKE_SCALE_TARGET_SECONDS": "0.05",
    "INVOKE_LESSONS_SIZE": "0.01",
}

# The test bed's stand-ins for the README's cloud VMs: the second engine (mclab-remote) and this
# machine's engine reached through the same sshd (mclab-local, which stands for root).
VM_A = "ssh://mclab-remote@127.0.0.1:2222"
VM_B = "ssh://mclab-local@127.0.0.1:2222"
VM_MARKER = "the README's tests run these commands with test bed stand-ins"
SPEC = ('{"experiment": "probe", "variant": "seen", "params": {}, "workers": 1, '
        '"start_method": "fork", "expect_affinity": null}')


@dataclass(frozen=True)
class Step:
    covers: tuple               # README commands this step runs (the first is the one run)
    how: str = AS_WRITTEN
    run: tuple = ()             # STAND_IN / FORM / CI: what runs instead; else the README's text
    fill: dict = field(default_factory=dict)   # placeholder -> "@saved run" or a literal
    names: tuple = ()           # spans naming this step's task or flag in a sentence
    env: dict = field(default_factory=lambda: dict(SIZE))
    status: int = 0             # the exit status the README promises
    makes: str = ""             # scale | ipc | lessons: the run folder it must leave
    charts: tuple = ()          # charts (PNG and SVG) that folder must hold
    saves: str = ""             # keep the new run's id under this name
    interrupt: tuple = ()       # (command, name): first run this, cut it off with SIGINT
                                #   after its first trial, keep its run id under name
    after: str = ""             # what the harness runs afterwards (a test bed back up)
    lane: str = "docker"        # steps of one lane run in order; lanes run side by side
    why: str = ""
    marker: str = ""            # STAND_IN: the README's words marking it
    timeout: int = 900

    @property
    def id(self):
        return normalise(self.covers[0])[:70]


SCALE_CHARTS = ("speedup", "efficiency")
IPC_CHARTS = ("ipc_channels", "ipc_latency")
LESSONS_CHARTS = ("lessons_start_cost", "lessons_pool_break_even", "lessons_shared_state",
                  "lessons_sync", "lessons_threads")

STEPS = [
    # The README's first command is the set-up itself: it makes the clone's .venv.
    Step(("scripts/setup --engine && .venv/bin/invoke scale", "scripts/setup --engine"),
         makes="scale", charts=SCALE_CHARTS, saves="scale_a", lane="setup", timeout=1200),
    Step(("invoke info",), lane="setup"),
    Step(("invoke --help scale",), lane="setup"),
    Step(("python -m lab.experiments '<spec>'",), fill={"<spec>": SPEC}, lane="setup",
         why="the trial's own command line, given a probe trial's spec"),

    # --- the local engine -------------------------------------------------------------------
    Step(("scripts/setup",)),
    Step(("/usr/bin/time .venv/bin/invoke scale", "invoke scale", ".venv/bin/invoke scale"),
         makes="scale", charts=SCALE_CHARTS, saves="scale_b"),
    Step(("invoke report RUN",), fill={"RUN": "@scale_a"}, names=("invoke report",)),
    Step(("invoke compare RUN_A RUN_B",), fill={"RUN_A": "@scale_a", "RUN_B": "@scale_b"},
         names=("invoke compare",)),
    Step(("invoke scale --plan results/<run>/plan.json",), fill={"<run>": "@scale_a"},
         makes="scale", charts=SCALE_CHARTS),
    Step(("invoke scale --resume RUN",), fill={"RUN": "@cut_scale"},
         interrupt=("invoke scale", "cut_scale"), makes="scale", charts=SCALE_CHARTS),
    Step(("invoke ipc --resume RUN",), fill={"RUN": "@cut_ipc"},
         interrupt=("invoke ipc --channels pipe --cpus 1 --patterns stream --repeat 4", "cut_ipc"),
         makes="ipc", charts=("ipc_channels",)),
    Step(("invoke scale --quota 0.5,1,1.5,2",), names=("invoke scale --quota",),
         makes="scale", charts=SCALE_CHARTS + ("quota",)),
    Step(("invoke build [--suite bookworm] [--base-image IMG] [--rebuild]",), how=FORM,
         run=("invoke build", "invoke build --suite bookworm",
              "invoke build --base-image multicore-lab-base:trixie --rebuild")),
    Step(("invoke scale --quota 0.5,1,1.5,2 --variants strong --repeat 3 --base-image "
          "multicore-lab-base:trixie,multicore-lab-base:bookworm",),
         makes="scale", charts=SCALE_CHARTS + ("quota",)),
    Step(("invoke ipc",), makes="ipc", charts=IPC_CHARTS),
    Step(("invoke ipc --messages auto",), makes="ipc", charts=IPC_CHARTS),
    Step(("/usr/bin/time .venv/bin/invoke ipc --seed 16",), makes="ipc", charts=IPC_CHARTS),
    Step(("invoke ipc --channels queue,shm_ring --batches 1,100 --cpus 2 --end-placement split "
          "--patterns stream --sizes 0 --messages auto,100000 --repeat 5 --seed 15",),
         makes="ipc", charts=("ipc_channels", "ipc_batch", "ipc_tutorial")),
    # The README's pictures (docs/): the three runs they were made from, and the script that
    # remakes the images from docs/runs/ (in the clone: its docs/ is the clone's own).
    Step((".venv/bin/invoke ipc --channels pipe,queue,joinable_queue --messages 10000,100000 "
          "--sizes 0 --patterns stream",), makes="ipc", charts=("ipc_channels", "ipc_tutorial")),
    Step((".venv/bin/invoke lessons --lessons start_cost,sync,threads_vs_processes",),
         makes="lessons", charts=("lessons_start_cost", "lessons_sync", "lessons_threads")),
    Step(("scripts/setup --docs && .venv/bin/python -m benchmarks.docs_images",
          "scripts/setup --docs")),
    Step(("/usr/bin/time .venv/bin/invoke lessons", "invoke lessons"),
         makes="lessons", charts=LESSONS_CHARTS),
    Step(("invoke build --suite sid",)),
    Step(("invoke scale --variants strong,threads,interpreters --base-image "
          "multicore-lab-base:trixie,multicore-lab-base:sid",),
         names=("invoke scale --variants strong,threads,interpreters",),
         makes="scale", charts=SCALE_CHARTS),
    # --- your own code: a function that scales, one that does not, the tutorial's program --------
    Step(("invoke scale --target examples/own_code/crunch.py:crunch --cpus 1,2",),
         makes="scale", charts=SCALE_CHARTS),
    Step(("invoke scale --target examples/own_code/one_at_a_time.py:crunch --cpus 1,2",),
         makes="scale", charts=SCALE_CHARTS),
    Step(("invoke scale --command \"python3 examples/tutorial/pipe.py\" --cpus 1,2",),
         makes="scale", charts=SCALE_CHARTS),
    Step(("invoke lessons --lessons start_cost,queue_in_process --base-image "
          "multicore-lab-base:bookworm,multicore-lab-base:trixie,multicore-lab-base:sid --repeat 3",),
         makes="lessons", charts=("lessons_start_cost",)),
    Step(("invoke ipc --channels thread_queue,queue,interpreter_queue --base-image "
          "multicore-lab-base:sid --sizes 0 --cpus 2 --round-trips 300 --seed 23",),
         makes="ipc", charts=IPC_CHARTS),
    Step(("invoke lessons --lessons start_cost,threads_vs_processes,interpreter_boundary "
          "--base-image multicore-lab-base:sid --cpus 2 --repeat 6 --seed 23",),
         makes="lessons", charts=("lessons_start_cost", "lessons_threads")),
    Step(("invoke lessons --lessons interpreter_boundary",), status=2,
         why="the default base runs Python 3.13: refused in one line, nothing written"),
    Step(("python -m benchmarks.overhead --trials 15",)),
    # --- the Python API's and the installed command's sections ---------------------------------
    Step(("invoke scale --cpus 1,2 --variants strong --format json > summary.json",),
         makes="scale", charts=SCALE_CHARTS,
         why="the JSON on stdout goes to summary.json; tests/test_api.py parses it"),
    Step(("mkdir -p ~/lab-runs && cd ~/lab-runs && multicore-lab scale --cpus 1,2 --variants "
          "strong",),
         why="the clone's .venv holds the installed command (scripts/setup: pip install -e); "
             "its run lands in ~/lab-runs/results, not the clone's"),

    # --- hosts over SSH: the README's VMs are test-bed stand-ins ------------------------------
    Step(("scripts/setup --engine --remote --slurm --docs && .venv/bin/python -m pytest -ra",),
         how=CI, run=("scripts/setup --engine --remote --slurm --docs",), lane="beds",
         why=".ci/run runs this line (with CI=true) in a fresh clone: the suite is this run; "
             "the set-up part runs here (it sets up the second clone the test beds' lane "
             "runs in); the pytest part would run this suite inside itself"),
    Step(("invoke ipc --hosts local,ssh://root@10.0.0.5:2222",), how=STAND_IN,
         run=(f"invoke ipc --hosts local,{VM_A}",), marker=VM_MARKER, makes="ipc",
         charts=IPC_CHARTS, lane="beds"),
    Step(("invoke scale --hosts ssh://ubuntu@vm-a,ssh://ubuntu@vm-b",), how=STAND_IN,
         run=(f"invoke scale --hosts {VM_A},{VM_B}",), marker=VM_MARKER, makes="scale",
         charts=SCALE_CHARTS, saves="two_hosts", lane="beds"),
    Step(("invoke report latest",), lane="beds",
         why="latest is the two-host run just made: one report, every host"),
    Step(("invoke compare latest latest --host-a ssh://ubuntu@vm-a --host-b ssh://ubuntu@vm-b",),
         how=STAND_IN, run=(f"invoke compare latest latest --host-a {VM_A} --host-b {VM_B}",),
         marker=VM_MARKER, lane="beds"),
    Step(("invoke compare RUN RUN --host-a A --host-b B",),
         fill={"RUN": "@two_hosts", "A": VM_A, "B": VM_B}, lane="beds"),
    Step(("invoke scale --hosts ssh://lab@VM-A,ssh://lab@VM-B --repeat 5",), how=STAND_IN,
         run=(f"invoke scale --hosts {VM_A},{VM_B} --repeat 5",), marker=VM_MARKER,
         makes="scale", charts=SCALE_CHARTS, lane="beds"),
    Step(("python -m benchmarks.overhead --trials 15 --hosts ssh://mclab-remote@127.0.0.1:2222",),
         lane="beds"),
    Step(("scripts/setup --remote",), lane="beds"),

    # --- Slurm: the test bed's partition bench ------------------------------------------------
    Step(("invoke scale --backend slurm --partition bench",), makes="scale",
         charts=SCALE_CHARTS, lane="beds"),
    Step(("invoke ipc --backend slurm --partition bench --python /opt/python/3.13/bin/python3",),
         how=STAND_IN, run=("invoke ipc --backend slurm --partition bench --python /usr/bin/python3",),
         marker="stands for your cluster's interpreter", makes="ipc", charts=IPC_CHARTS,
         lane="beds"),
    Step(("invoke scale --resume latest",), interrupt=("invoke scale --backend slurm --partition bench", "cut_slurm"),
         makes="scale", charts=SCALE_CHARTS, lane="beds",
         why="latest is a slurm scale run cut off by Ctrl-C (the harness's SIGINT)"),
    Step(("/usr/bin/time .venv/bin/invoke scale --backend slurm --repeat 3",), makes="scale",
         charts=SCALE_CHARTS, lane="beds"),
    Step((".venv/bin/python -m benchmarks.slurm_overhead --trials 15",), lane="beds"),
    Step(("scripts/setup --slurm",), lane="beds"),
    Step(("python -m benchmarks.build_times",), lane="beds"),
    Step(("python -m benchmarks.tutorial_seed --repeat 7",), lane="beds",
         env={**SIZE, "INVOKE_IPC_MESSAGES": "10000"}),

    # --- last: the test beds' own off switches, each followed by the harness turning it on
    Step(("scripts/testbed/remote down",), after="scripts/testbed/remote up",
         lane="last"),
    Step(("scripts/testbed/slurm down",), after="scripts/testbed/slurm up", lane="last"),
]
