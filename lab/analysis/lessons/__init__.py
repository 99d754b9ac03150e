"""The lessons family's numbers: per point figures, behaviour checks, the tutorial's claims held
or not, and what changed between Pythons, all computed from a run's trials (trials_frame: the
check.* columns are what each trial verified).

One descriptor per lesson (lab/analysis/lessons/<lesson>.py: its item parameter, headline
metric, words, checks, observed and claims); this module puts them together: summary.csv,
the behaviour checks, the claims in report order. Every sentence is built from the data it
names; nothing is a constant but the tutorial's own figures (TUTORIAL).
"""

import math

import pandas as pd

from lab.analysis.lessons import judge as _verdicts
from lab.analysis.lessons import (interpreter_boundary, lifecycle, pool_vs_process,
                                  queue_in_process, shared_state, start_cost, sync,
                                  threads_vs_processes)
from lab.analysis.lessons.base import (TUTORIAL, checked, mode, per_python,  # noqa: F401
                                       rows_of)
from lab.analysis.lessons.pool_vs_process import break_even  # noqa: F401
from lab.analysis.lessons.pythons import python_changes  # noqa: F401
from lab.analysis.lessons.units import (duration, figure, rate, short_python,  # noqa: F401
                                        times, unit_of, whole)
from lab.analysis.trials import measured, point_stats
from lab.experiments.lessons import DOUBLES

LESSONS = {d.name: d for d in (start_cost.LESSON, pool_vs_process.LESSON, shared_state.LESSON,
                               sync.LESSON, lifecycle.LESSON, threads_vs_processes.LESSON,
                               queue_in_process.LESSON, interpreter_boundary.LESSON)}
ORDER = tuple(LESSONS)
ITEM_PARAM = {name: d.item_param for name, d in LESSONS.items() if d.item_param}
HEADLINE = {}
METRIC_WORDS = {}
CHECKS = {}  # (lesson, item) -> (kind, what is checked)
for _name, _lesson in LESSONS.items():
    HEADLINE.update(_lesson.headline if isinstance(_lesson.headline, dict)
                    else {_name: _lesson.headline})
    METRIC_WORDS.update(_lesson.metric_words)
    CHECKS.update({(_name, item): check for item, check in _lesson.checks.items()})
DOUBLE_OF = DOUBLES  # variant -> (lesson, item): the trial's one map
_rows = rows_of  # the charts' name for it
NO_VERDICT_RESULT = "NO VERDICT"  # a check whose trials errored (crashed, timed out), none failed


# --- points ------------------------------------------------------------------------------------

def lesson_of(variant):
    return DOUBLE_OF.get(variant, (variant,))[0]


def item_of(row):
    """A point's item: what its lesson sweeps (the start method for start_cost)."""
    variant = row["variant"]
    if variant in DOUBLE_OF:
        return variant
    if variant == "start_cost":
        return str(row.get("start_method"))
    param = ITEM_PARAM.get(variant)
    value = row.get(f"param.{param}") if param else None
    return str(value) if value is not None else ""


def point_words(row):
    """A summary row in words (warnings, compare, tables)."""
    item = item_of(row)
    lesson = row["variant"]
    extra = ""
    if lesson == "pool_vs_process" and item in ("pool", "process_per_task"):
        extra = f" {whole(row.get('param.task_iterations'))} loops"
        if item == "pool":
            extra += f" chunksize {row.get('param.chunksize')}"
    python = f", Python {row['python']}" if row.get("python") else ""
    return f"{lesson} {item}{extra}, {whole(row['cpus'])} CPU{'s' if row['cpus'] != 1 else ''}" \
           f"{python}"


def summary(trials):
    """summary.csv of a lessons run: one row per point; the seconds statistics of every family
    (point_stats), the lesson and item, the start method the trials resolved to, Pool()'s
    default size, each metric's median over the measured trials (metric.<name>), the headline
    metric with its median interval, and for shared state the lost fraction."""
    if trials.empty:
        return pd.DataFrame()
    frame = point_stats(trials)
    good = measured(trials)
    metric_columns = sorted(c for c in trials.columns if c.startswith("metric."))
    rows = []
    for _, row in frame.iterrows():
        mine = trials[trials["point_id"] == row["point_id"]]
        ok = good[good["point_id"] == row["point_id"]]
        extra = {"lesson": lesson_of(row["variant"]), "item": item_of(row),
                 "resolved_start_method": mode(mine.get("check.start_method", pd.Series(
                     dtype=object)).tolist()) or (row["start_method"] if row["start_method"]
                                                  != "default" else None),
                 "pool_default_workers": mode(mine["seen.pool_default_workers"].tolist())
                 if "seen.pool_default_workers" in mine else None,
                 "os_cpu_count": mode(mine["seen.os_cpu_count"].tolist())
                 if "seen.os_cpu_count" in mine else None,
                 "trials_checked": int(checked(mine).sum()),
                 "trials_failed_check": int((~mine["ok"].astype(bool) & checked(mine)).sum())}
        for column in metric_columns:
            found = pd.to_numeric(ok[column], errors="coerce").dropna()
            extra[column] = float(found.median()) if len(found) else math.nan
        headline = _headline(row)
        extra["headline"] = headline
        extra["headline_unit"] = unit_of(headline) if headline else ""
        found = pd.to_numeric(ok.get(f"metric.{headline}", pd.Series(dtype=float)),
                              errors="coerce").dropna()
        extra["headline_median"] = float(found.median()) if len(found) else math.nan
        extra["headline_low"] = float(found.min()) if len(found) else math.nan
        extra["headline_high"] = float(found.max()) if len(found) else math.nan
        if extra["lesson"] == "shared_state" and "check.expected" in ok:
            lost = pd.to_numeric(ok.get("metric.lost_updates"), errors="coerce")
            expected = pd.to_numeric(ok["check.expected"], errors="coerce")
            fraction = (lost / expected).dropna()
            extra["lost_fraction"] = float(fraction.median()) if len(fraction) else math.nan
            extra["lost_fraction_max"] = float(fraction.max()) if len(fraction) else math.nan
        rows.append(extra)
    out = pd.concat([frame.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    out["_order"] = out["lesson"].map({name: i for i, name in enumerate(ORDER)}).fillna(99)
    sort = ["_order", "variant", "item", "param.task_iterations", "param.chunksize", "python",
            "cpus"]
    sort = [c for c in sort if c in out.columns]
    out = out.sort_values(sort, key=lambda s: s.astype(str) if s.dtype == object else s,
                          kind="stable").drop(columns="_order").reset_index(drop=True)
    return out


def _headline(row):
    lesson = LESSONS.get(lesson_of(row["variant"]))
    if lesson is None:
        return None
    return lesson.headline_of(row.get(f"param.{lesson.item_param}") if lesson.item_param
                              else None)


# --- behaviour checks --------------------------------------------------------------------------

def _check_key(lesson, item):
    return (lesson, item) if (lesson, item) in CHECKS else (lesson, None)


def observed(lesson, item, rows):
    """What the trials `rows` (ok ones) of one check showed, in words."""
    if rows.empty:
        return "no trial passed"
    if lesson not in LESSONS:
        return "-"
    return LESSONS[lesson].observed(item, rows)


def behaviour_checks(trials):
    """One row per behaviour check: lesson, item, kind (check / lesson / fact), what it checks,
    result (PASS, FAIL on a failed check, NO VERDICT when trials only errored, or the lesson or
    fact seen), trials (passed / checked), where (CPU counts
    and Pythons), observed (in words) and the first failure's reason."""
    if trials.empty:
        return pd.DataFrame(columns=["lesson", "item", "kind", "what", "result", "trials",
                                     "where", "observed", "failure"])
    frame = trials[checked(trials)].copy()
    frame["lesson"] = frame["variant"].map(lesson_of)
    frame["item"] = [item_of(row) for _, row in frame.iterrows()]
    out = []
    for (lesson, item), rows in frame.groupby(["lesson", "item"], sort=False):
        double = item in DOUBLE_OF
        kind, what = CHECKS[_check_key(lesson, DOUBLE_OF[item][1] if double else item)]
        if double:
            what = f"test double {item}: {what}"
        ok = rows[rows["ok"] == True]  # noqa: E712
        failed = rows[rows["ok"] != True]  # noqa: E712
        wrong = failed[failed["error"].fillna("").astype(str).str.startswith("check failed")]
        if len(wrong):
            result = "FAIL"
        elif len(failed) and kind == "check":
            result = NO_VERDICT_RESULT
        elif kind == "check":
            result = "PASS"
        else:
            result = kind
        where = (f"{', '.join(str(c) for c in sorted(rows['cpus'].unique()))} CPU(s); Python "
                 f"{', '.join(sorted(str(p) for p in rows['python'].dropna().unique()))}")
        methods = sorted(str(m) for m in rows.get("check.start_method", pd.Series(
            dtype=object)).dropna().unique())
        if methods:
            where += f"; {', '.join(methods)}"
        out.append({"lesson": lesson, "item": item, "kind": kind, "what": what,
                    "result": result, "trials": f"{len(ok)}/{len(rows)}", "where": where,
                    "observed": observed(lesson, item if not double else DOUBLE_OF[item][1], ok),
                    "failure": (str((wrong if len(wrong) else failed)["error"].iloc[0])
                                if len(failed) else "")})
    table = pd.DataFrame(out)
    table["_order"] = table["lesson"].map({n: i for i, n in enumerate(ORDER)}).fillna(99)
    return table.sort_values("_order", kind="stable").drop(columns="_order").reset_index(
        drop=True)


# --- the tutorial's claims ---------------------------------------------------------------------

def verdicts(trials, summary):
    """The verdict table: one row per claim, Python and CPU count (and start method where a
    lesson sweeps it): the figure, its ratio with a bootstrap interval and that interval's real
    coverage, the threshold, the verdict (held, not held, can't tell, fact, no verdict, machine
    busy: no verdict) and a note (lessons.judge)."""
    rows = []
    if trials is None or trials.empty or summary is None or summary.empty:
        return _verdicts.frame(rows)
    for lesson in LESSONS.values():
        for build in lesson.verdicts:
            rows += [{**row, "lesson": lesson.name} for row in build(trials, summary)]
    return _verdicts.frame(rows)


def claims(summary, checks, table=None):
    """[(claim, verdict, sentence)]: each tutorial claim this run measured, with the figures.
    A claim's verdict combines its rows of `table` (verdicts(): held, not held, can't tell,
    partly where (Python, CPU count)s disagree, no verdict); without a table, from the medians
    alone."""
    out = []
    if summary is None or summary.empty:
        return out
    checks = checks if checks is not None else pd.DataFrame()
    for lesson in LESSONS.values():
        said = []
        for build in lesson.claims:
            claim = build(summary, checks, table)
            if claim:
                said.append(claim)
        out += said + _unsaid(lesson, table, {claim for claim, _, _ in said})
    return out


def _unsaid(lesson, table, said):
    """A claim with verdict rows but no measured figures to say (its trials errored)."""
    if table is None or table.empty:
        return []
    out = []
    mine = table[(table["lesson"] == lesson.name) & ~table["claim"].isin(said)]
    for claim in dict.fromkeys(mine["claim"]):
        rows = table[table["claim"] == claim]
        verdict = _verdicts.combine(rows["verdict"].tolist())
        notes = "; ".join(dict.fromkeys(n for n in rows["note"] if n))
        out.append((claim, verdict, f"{_verdicts.lead(verdict)}: no figures to report"
                                    + (f" ({notes})." if notes else ".")))
    return out
