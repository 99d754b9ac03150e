"""The lessons family's part of the report: the tutorial's claims held or not, what changed
between Pythons, every behaviour check as a pass/fail line with what was observed, every
point's figures, the charts."""

from lab.analysis import lessons as results
from lab.present import lessons_charts
from lab.present.lessons_verdicts import verdict_table
from lab.present.report import Section
from lab.analysis.warnings import CV_WIDE, MIN_SECONDS, normalised
from lab.present.tables import Table

SYSTEM_WARNINGS = ("load-high", "swap", "steal-time", "throttled", "governor")

TIMING_NOTE = (
    "Timed sections: start_cost sums its start()+join() times (the metrics are medians per "
    "process); pool runs time the map over a warmed pool, a process per task its first start to "
    "last join, the tutorial's reconstructions their own clock (creation to join); shared state, "
    "sync and threads time the workers' own stamps from the first start after a common release "
    "to the last end. Lifecycle's terminate and daemon cases are per-operation medians and "
    "single operations (milliseconds, not 0.2 s sections): read them as facts with a cost, not "
    "as throughput.")


# The Event's round is set, wake and two Barrier waits (lessons_sync): its figure per round is
# compared with nothing and no claim rests on it; its wake-up (wake_us) is the Event's own.
EVENT_ILLUSTRATION = "illustration, not a claim figure: a round holds two Barrier waits"


def claims_table(claims):
    return Table(["tutorial's claim", "verdict", "measured"],
                 [[claim, verdict, sentence] for claim, verdict, sentence in claims], "lll")


def checks_table(checks):
    rows = []
    for _, row in checks.iterrows():
        seen = row["observed"]
        if row["failure"]:
            seen = f"{seen}; first failure: {row['failure']}" if seen != "no trial passed" \
                else f"first failure: {row['failure']}"
        rows.append([row["result"], f"{row['lesson']} {row['item']}".strip(), row["what"],
                     row["trials"], row["where"], seen])
    return Table(["result", "lesson, item", "what is checked", "trials ok", "where",
                  "observed"], rows, "llllll")


def point_flags(row, min_seconds=MIN_SECONDS):
    """The data warnings that touch this point, in a word each (the Warnings list says why)."""
    flags = []
    if row.get("n", 0) and row["median_s"] == row["median_s"] and row["median_s"] < min_seconds:
        flags.append("too short")
    if row.get("cv") == row.get("cv") and row.get("cv", 0) > CV_WIDE:
        flags.append(f"CV {row['cv']:.0%}")
    if 0 < row.get("n", 0) < 3:
        flags.append(f"n={int(row['n'])}")
    if row.get("outliers", 0):
        flags.append(f"{int(row['outliers'])} outlier(s)")
    return ", ".join(flags)


def figures_table(summary, min_seconds=MIN_SECONDS):
    several = summary["python"].nunique() > 1
    headers = (["python"] if several else []) + [
        "lesson", "item", "CPUs", "start method", "workers", "n", "measure",
        "median [min, max]", "also", "failed", "warnings"]
    rows = []
    for _, row in summary.iterrows():
        metric = row["headline"]
        if metric:
            value = (f"{results.figure(metric, row['headline_median'])} "
                     f"[{results.figure(metric, row['headline_low'])}, "
                     f"{results.figure(metric, row['headline_high'])}]")
            measure = results.METRIC_WORDS.get(metric, metric)
        else:
            value, measure = "-", "-"
        item = row["item"]
        if row["lesson"] == "pool_vs_process" and item in ("pool", "process_per_task"):
            item += f" {int(row['param.task_iterations']):,} loops"
            if row["item"] == "pool":
                item += f", chunksize {row['param.chunksize']}"
        if row["lesson"] == "sync" and row["item"] == "event":
            item += f" ({EVENT_ILLUSTRATION})"
        workers = "-" if row["workers"] is None or row["workers"] != row["workers"] \
            else str(int(row["workers"]))
        rows.append(([str(row["python"])] if several else []) + [
            row["lesson"], item, str(int(row["cpus"])), str(row["resolved_start_method"] or "?"),
            workers, str(int(row["n"])), measure, value, _also(row), str(int(row["failed"])),
            point_flags(row, min_seconds)])
    return Table(headers, rows, ("l" if several else "") + "llrlrrll" + "lrl")




def _also(row):
    parts = []
    lesson = results.LESSONS.get(row["lesson"])
    for metric in (lesson.also if lesson is not None else ()):
        value = row.get(f"metric.{metric}")
        if value is None or value != value:
            continue
        if metric == "lost_updates":
            fraction = row.get("lost_fraction")
            if row["item"] == "value_unlocked" and fraction == fraction:
                parts.append(f"lost {value:,.0f} ({fraction:.0%})")
            continue
        if metric == "workers_used":
            parts.append(f"{value:g} workers")
            continue
        parts.append(f"{results.METRIC_WORDS.get(metric, metric)} "
                     f"{results.figure(metric, value)}")
    return "; ".join(parts)


def lessons_section(trials, summary, out, meta, say):
    """The section of a lessons run; charts are written into the folder `out`."""
    section = Section("The rest of the tutorial: lessons measured", "lessons")
    if summary is None or summary.empty:
        return section.add("notes", ["No lessons trial was recorded."])
    pythons = ", ".join(sorted(str(p) for p in trials["python"].dropna().unique()))
    backend = (meta.get("backend") or {}).get("backend", "")
    suffix = f"\nPython {pythons}, {backend} backend"
    checks = results.behaviour_checks(trials)
    table = results.verdicts(trials, summary)
    claims = results.claims(summary, checks, table)
    changes = results.python_changes(trials, summary)
    charts = []
    for chart in lessons_charts.CHARTS:
        charts += chart(summary, out, suffix)
    failed = checks[checks["result"] == "FAIL"]
    real = checks[checks["kind"] == "check"]  # lessons and facts cannot fail: not counted
    passed = int((real["result"] == "PASS").sum())
    unjudged = real[real["result"] == results.NO_VERDICT_RESULT]
    verdict = (f"{passed} of {len(real)} behaviour checks hold"
               + (f"; FAILED: {', '.join(f'{r.lesson} {r.item}' for r in failed.itertuples())}"
                  if len(failed) else "")
               + (f"; no verdict (trials errored): "
                  f"{', '.join(f'{r.lesson} {r.item}' for r in unjudged.itertuples())}"
                  if len(unjudged) else ""))
    say(f"\nThe tutorial's claims ({verdict}):")
    for claim, word, sentence in claims:
        say(f"- [{word}] {claim}: {sentence}")
    if changes:
        say("\nWhat changed between Pythons:\n" + "\n".join(f"- {s}" for s in changes))
    say("\nBehaviour checks:\n" + "\n".join(
        f"- {r.result:6} {r.lesson} {r.item}: {r.observed}"
        + (f" (first failure: {r.failure})" if r.failure else "") for r in checks.itertuples()))
    touching = [w for w in normalised(meta.get("warnings"))
                if w["code"].startswith(SYSTEM_WARNINGS)]
    if len(table) and touching:
        section.add("notes", [f"{w['code']}: {w['message']}" for w in touching],
                    "Warnings that touch every verdict below (the machine, not one point):")
    if len(table):
        section.add("table", verdict_table(table),
                    "Every verdict per Python and CPU count: a ratio of medians with its "
                    "bootstrap interval (and the coverage that interval really has at these "
                    "trial counts): held when the whole interval is above the threshold, not "
                    "held when it is at or below, can't tell when it straddles it; a behaviour "
                    "claim is held when every trial held it, not held on a failed check; "
                    "errored trials give no verdict, and a parallelism claim whose trials did "
                    "not get their CPUs (section CPU time short of section x CPUs by more than "
                    "5%) gives 'machine busy: no verdict'")
        say("\nVerdicts per Python and CPU count:\n" + verdict_table(table).text())
    section.add("notes", [f"[{word}] {claim}: {sentence}" for claim, word, sentence in claims],
                f"The tutorial's claims ({verdict}):")
    if changes:
        section.add("notes", changes, "What changed between Pythons:")
    section.add("table", checks_table(checks),
                "Every behaviour check: PASS when every trial held it (warm-up trials "
                "included), FAIL with the first failure's reason; lesson and fact lines say "
                "what was seen, never a failure")
    min_seconds = float((meta.get("options") or {}).get("min_seconds") or MIN_SECONDS)
    section.add("table", figures_table(summary, min_seconds),
                "Every point: the measure's median over the measured trials, with the "
                "smallest and largest trial; 'start method' is what the trials resolved to; "
                "'warnings' names the data warnings that touch the point (see Warnings)")
    section.add("notes", [TIMING_NOTE], "How each lesson is timed:")
    section.add("charts", [c for c in charts if c.suffix == ".png"])
    return section
