"""Where a run is: one line per finished trial, and on a terminal a live bar (rich) with the
trials done, an estimate of the time left and the running trial's elapsed time.

On a terminal the bar redraws every half second, so the user never waits in silence; in a log
(CI, a pipe, `| tee`) only the plain lines are written, one per trial.
"""

import sys
import time


def format_duration(seconds):
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Progress of `trials` (plan.Trial) whose durations `estimate(point)` guesses (seconds,
    backend overhead included) until one of the point's trials has run; `label(point)` names a
    point; `say` prints a line. Use as a context manager around the trials."""

    def __init__(self, trials, estimate, label, say, rounds, live=None):
        self.total = len(trials)
        self.estimate = estimate
        self.label = label
        self.say = say
        self.rounds = rounds
        self.observed = {}  # point_id -> host seconds of its last trial
        self.live = sys.stdout.isatty() if live is None else live
        self._bar = None
        self._task = None
        self._started_at = time.perf_counter()

    def __enter__(self):
        if self.live:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar,
                                       ProgressColumn, TextColumn)
            from rich.text import Text
            progress = self

            class TrialClock(ProgressColumn):
                """The running trial's elapsed time, redrawn with the bar."""
                def render(self, task):
                    return Text(f"trial {time.perf_counter() - progress._started_at:4.0f} s")

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("~{task.fields[left]} left"), TrialClock(),
                            console=Console(), transient=True, refresh_per_second=2)
            self._bar.start()
            self._task = self._bar.add_task("starting", total=self.total, left="?")
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        return False

    def left_seconds(self, remaining):
        return sum(self.observed.get(t.point.point_id, self.estimate(t.point)) for t in remaining)

    def started(self, index, trial, remaining):
        """A trial starts: the bar names it (its elapsed time runs in the bar's clock)."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"[{index}/{self.total}] "
                             f"{self.label(trial.point)}",
                             left=format_duration(self.left_seconds([trial, *remaining])))
            self._started_at = time.perf_counter()

    def finished(self, index, trial, record, remaining):
        self.observed[trial.point.point_id] = record["host_seconds"]
        status = f"{record['seconds']:.3f} s" if record["ok"] else f"FAILED: {record['error']}"
        line = (f"[{index}/{self.total}] round {trial.round + 1}/{self.rounds}"
                f"{' (warm-up)' if trial.warmup else ''} {self.label(trial.point)}: {status}"
                f" · ~{format_duration(self.left_seconds(remaining))} left")
        if self._bar is not None:
            self._bar.console.print(line, highlight=False, markup=False)
            self._bar.update(self._task, advance=1,
                             left=format_duration(self.left_seconds(remaining)))
        else:
            self.say(line)
