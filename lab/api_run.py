"""What lab.api hands back: a Run (one run folder: its trials, summary, charts and report as
pandas DataFrames, images and HTML; shown inline by Jupyter) and a Comparison (a compare folder).

Read from the folder's files each time (raw.jsonl, summary.csv, *.png, report.html), so a Run
reflects a --resume or a redraw made since; nothing here runs a trial or writes a file.
"""

import base64
import html
import json
import re
from pathlib import Path

SUMMARY = "summary.csv"
REPORT_HTML = "report.html"
_BODY = re.compile(r"<body[^>]*>(?P<body>.*)</body>", re.S)


class Chart:
    """One chart of a run (its PNG; an SVG lies beside it): shown as an image by Jupyter."""

    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.stem

    def _repr_png_(self):
        return self.path.read_bytes()

    def figure(self):
        """The chart as a matplotlib Figure (the PNG drawn full size, no axes)."""
        import matplotlib.image
        import matplotlib.pyplot as plt
        pixels = matplotlib.image.imread(self.path)
        height, width = pixels.shape[:2]
        figure = plt.figure(figsize=(width / 100, height / 100), dpi=100)
        axes = figure.add_axes([0, 0, 1, 1])
        axes.imshow(pixels)
        axes.set_axis_off()
        plt.close(figure)  # handed back, not left in pyplot's list of open figures
        return figure

    def __repr__(self):
        return f"Chart({str(self.path)!r})"


def _report_body(path, title):
    """report.html's body (images are data URIs already), to sit inside a notebook's output."""
    if not path.exists():
        return None
    text = path.read_text()
    match = _BODY.search(text)
    body = match["body"] if match else text
    return f'<div class="multicore-lab-report" title="{html.escape(title)}">{body}</div>'


def _records(frame):
    """A DataFrame's rows as JSON-ready dicts (NaN and NaT as None)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


class Run:
    """One run folder. `trials` and `summary` are DataFrames, `charts` the run's charts by name,
    `meta` its meta.json; `exit_status` what the command ended with (None for a loaded run)."""

    def __init__(self, path, exit_status=None):
        self.path = Path(path)
        self.exit_status = exit_status

    @property
    def run_id(self):
        return self.path.name

    @property
    def meta(self):
        meta = self.path / "meta.json"
        return json.loads(meta.read_text()) if meta.exists() else {}

    @property
    def task(self):
        return self.meta.get("task")

    @property
    def status(self):
        return self.meta.get("status")

    @property
    def trials(self):
        """Every trial of raw.jsonl (warm-ups and failures included, marked), one row each."""
        from lab.analysis.trials import load_trials
        return load_trials(self.path, warn=lambda *_: None)

    @property
    def summary(self):
        """summary.csv (one row per point); drawn from the trials when the run has none yet."""
        import pandas
        csv = self.path / SUMMARY
        if csv.exists():
            return pandas.read_csv(csv)
        from lab.commands import family_of
        trials = self.trials
        if trials.empty:
            return pandas.DataFrame()
        return family_of(self.meta, trials).summarize(trials)

    @property
    def charts(self):
        return {path.stem: Chart(path) for path in sorted(self.path.glob("*.png"))}

    def report_html(self):
        return _report_body(self.path / REPORT_HTML, f"Run {self.run_id}")

    def _repr_html_(self):
        report = self.report_html()
        if report is not None:
            return report
        return (f"<p>Run {html.escape(self.run_id)} ({html.escape(str(self.status))}): no report "
                f"yet; <code>lab.report({self.run_id!r})</code> draws it.</p>")

    def as_json(self):
        """What `--format json` prints: the run and its summary's rows."""
        meta = self.meta
        return {"task": meta.get("task"), "run": self.run_id, "folder": str(self.path),
                "status": meta.get("status"), "exit_status": self.exit_status,
                "trials_planned": meta.get("trials_planned"),
                "summary": _records(self.summary)}

    def __repr__(self):
        return f"Run({self.run_id!r}, task={self.task!r}, status={self.status!r})"


class Comparison:
    """A compare folder (compare-<a>-vs-<b>/): `points` is compare.csv as a DataFrame."""

    def __init__(self, path):
        self.path = Path(path)

    @property
    def points(self):
        import pandas
        csv = self.path / "compare.csv"
        return pandas.read_csv(csv) if csv.exists() else pandas.DataFrame()

    @property
    def charts(self):
        return {path.stem: Chart(path) for path in sorted(self.path.glob("*.png"))}

    def _repr_html_(self):
        return _report_body(self.path / REPORT_HTML, self.path.name) or (
            f"<p>{html.escape(self.path.name)}: no report</p>")

    def as_json(self):
        return {"compare": self.path.name, "folder": str(self.path),
                "points": _records(self.points)}

    def __repr__(self):
        return f"Comparison({str(self.path)!r})"
