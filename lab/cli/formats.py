"""`--format`: text (the human output on stdout, as always) or json (one JSON document on
stdout: the run's summary, for scripts and CI; every human line goes to stderr instead).

The JSON of a run is lab.api_run.Run.as_json(): task, run id, folder, status, exit status, and
the summary's rows (summary.csv) with NaN as null. A dry run's holds its plan instead: seed,
rounds, trials, estimated seconds, and every point (as plan.json has it, with its label and
estimated seconds per trial).
"""

import contextlib
import json
import re
import sys
from pathlib import Path

FORMATS = ("text", "json")
HELP = ("text (default) or json: the run's summary as JSON on stdout, the human output on stderr "
        "(for scripts and CI)")
# lab.run says this once the run folder exists (lab.api reads the run's folder from it)
RUN_LINE = re.compile(r"^run (?P<run_id>\S+): .*; results in (?P<path>.+)$")


def parse(value):
    """'text' or 'json' from a --format value (None or '' = text); else BadInput, one line."""
    from lab.run.options import BadInput
    chosen = (value or "text").strip().lower()
    if chosen not in FORMATS:
        raise BadInput(f"--format {value!r} is not a format; use text or json")
    return chosen


def emitter(value):
    """A function printing one JSON document on stdout for --format json; None for text."""
    return emit if parse(value) == "json" else None


def emit(document):
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def human_output_to_stderr(enabled):
    """Inside the block, what the lab prints (lines, tables, the progress bar) goes to stderr,
    so stdout holds the JSON alone."""
    return contextlib.redirect_stdout(sys.stderr) if enabled else contextlib.nullcontext()


class RunWatcher:
    """A `say` for lab.commands.run_family that prints as usual and remembers the run folder the
    lab names (a new run, a --plan rerun), or the run being resumed."""

    def __init__(self, results_dir, resume=None, say=None):
        self.results_dir = results_dir
        self.resume = resume
        self.say = say
        self.path = None
        self.plan = None  # a dry run's plan (lab.run.session.dry_run keeps it here)
        self.before = self._folders()  # should the line ever read otherwise: the new folder

    def _folders(self):
        root = Path(self.results_dir)
        return {p for p in root.iterdir() if (p / "meta.json").exists()} if root.is_dir() else set()

    def keep_plan(self, plan):
        self.plan = plan

    def __call__(self, *args, **kwargs):
        (self.say or print)(*args, **kwargs)
        text = " ".join(str(arg) for arg in args)
        for line in text.splitlines():
            match = RUN_LINE.match(line.strip())
            if match and self.path is None:
                self.path = Path(match["path"]).resolve()  # the caller's cwd, now

    def folder(self):
        """The run's folder, or None (a dry run, or nothing was written)."""
        if self.path is not None:
            return self.path
        if self.resume:
            from lab.run.folder import resolve
            return resolve(self.results_dir, self.resume).path
        new = sorted(self._folders() - self.before)
        return new[-1].resolve() if len(new) == 1 else None

    def run_json(self, task, exit_status, flags=None):
        folder = self.folder()
        if folder is None:
            document = {"task": task, "run": None, "dry_run": bool((flags or {}).get("dry_run")),
                        "exit_status": exit_status, "summary": []}
            return document if self.plan is None else {**document, "plan": self.plan}
        from lab.api_run import Run
        return Run(folder, exit_status).as_json()


def report_json(results_dir, run):
    from lab.api_run import Run
    from lab.run.folder import resolve
    return Run(resolve(results_dir, run).path, 0).as_json()


def compare_json(folder):
    from lab.api_run import Comparison
    return Comparison(folder).as_json()
