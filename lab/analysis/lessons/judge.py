"""Verdicts of the tutorial's claims per (Python, CPU count): a ratio of medians with its
bootstrap interval against a threshold (held, not held, can't tell), a behaviour check's
trials (held, not held), and the gates that give no verdict: errored trials, and trials that
did not get their CPUs (machine busy). Each row is data; lab/present writes it in words."""

import math

import numpy as np
import pandas as pd

from lab.analysis import stats

HELD, NOT_HELD, CANT_TELL = "held", "not held", "can't tell"
NO_VERDICT, BUSY = "no verdict", "machine busy: no verdict"
FACT, PARTLY = "fact", "partly"
OFF_CPU_SHORTFALL = 0.05  # a trial's section CPU short of section x CPUs by more: it waited
COLUMNS = ["lesson", "claim", "python", "cpus", "figure", "unit", "ratio", "low", "high", "coverage",
           "threshold", "verdict", "note"]


def row(claim, python, cpus, figure, verdict, unit="ratio", ratio=math.nan, low=math.nan,
        high=math.nan, coverage=math.nan, threshold=math.nan, note=""):
    return {"claim": claim, "python": python, "cpus": int(cpus), "figure": figure,
            "unit": unit, "ratio": ratio, "low": low, "high": high, "coverage": coverage,
            "threshold": threshold, "verdict": verdict, "note": note}


def frame(rows):
    return pd.DataFrame(rows, columns=COLUMNS)


# --- trials of points --------------------------------------------------------------------------

def trials_of(trials, summary_rows):
    """The non-warm-up trials of the points in `summary_rows`."""
    if trials is None or trials.empty or summary_rows is None or summary_rows.empty:
        return trials.iloc[0:0] if trials is not None else pd.DataFrame()
    mine = trials[trials["point_id"].isin(set(summary_rows["point_id"]))]
    return mine[mine["warmup"] == False]  # noqa: E712 (pandas)


def metric_values(trials, summary_rows, metric):
    mine = trials_of(trials, summary_rows)
    mine = mine[mine["ok"] == True]  # noqa: E712
    if f"metric.{metric}" not in mine:
        return []
    return [float(v) for v in pd.to_numeric(mine[f"metric.{metric}"], errors="coerce").dropna()]


def errored(trials, summary_rows):
    """Measured trials that crashed, timed out or could not run (not a failed check, not an
    interruption): their points give no verdict."""
    mine = trials_of(trials, summary_rows)
    if mine.empty:
        return 0
    errors = mine["error"].fillna("").astype(str)
    bad = (mine["ok"] != True) & ~errors.str.startswith("check failed")  # noqa: E712
    bad &= ~errors.str.startswith("interrupted")
    return int(bad.sum())


def failed_checks(trials, summary_rows):
    mine = trials_of(trials, summary_rows)
    if mine.empty:
        return 0
    return int(mine["error"].fillna("").astype(str).str.startswith("check failed").sum())


def shortfalls(trials, summary_rows, usable):
    """Per measured trial, how far its section CPU time fell short of its section x the CPUs
    it could use (`usable(trial)`): the smaller of the cgroup's CPU over the section (where
    the trial read it there) and its workers' own CPU seconds."""
    mine = trials_of(trials, summary_rows)
    mine = mine[mine["ok"] == True]  # noqa: E712
    out = []
    for _, trial in mine.iterrows():
        seconds = trial.get("check.section_seconds")  # where the CPU time has its own section
        if seconds is None or pd.isna(seconds):
            seconds = trial.get("seconds")
        cpus = usable(trial)
        if not seconds or not cpus or pd.isna(seconds):
            continue
        found = [trial.get("cpu_seconds")]
        if trial.get("check.section_counters") is True:
            found.append(trial.get("cgroup_cpu_seconds"))
        found = [float(v) for v in found if v is not None and not pd.isna(v)]
        if found:
            out.append(1 - min(found) / (float(seconds) * cpus))
    return out


def busy(trials, summary_rows, usable):
    """The worst shortfall when a trial waited for its CPUs (above OFF_CPU_SHORTFALL), else
    None."""
    falls = shortfalls(trials, summary_rows, usable)
    worst = max(falls) if falls else 0.0
    return worst if worst > OFF_CPU_SHORTFALL else None


# --- verdicts ----------------------------------------------------------------------------------

def ratio_verdict(numerator, denominator, threshold):
    """(ratio, low, high, coverage, verdict) of median(numerator) / median(denominator) against
    `threshold`: held when its whole interval lies above, not held when at or below, can't tell
    when it straddles the threshold or a side has fewer than 2 trials."""
    if not numerator or not denominator:
        return math.nan, math.nan, math.nan, math.nan, NO_VERDICT
    ratio = np.median(numerator) / np.median(denominator)
    low, high = stats.ratio_interval(numerator, denominator)
    coverage = stats.ratio_interval_coverage(len(numerator), len(denominator))
    if not (math.isfinite(low) and math.isfinite(high)):
        return ratio, low, high, coverage, CANT_TELL
    verdict = HELD if low > threshold else NOT_HELD if high <= threshold else CANT_TELL
    return float(ratio), low, high, coverage, verdict


def gated_ratio(claim, python, cpus, figure, trials, top, bottom, metric, threshold,
                usable=None, lower_is_better=False, note=""):
    """A verdict row for median(top's metric) / median(bottom's metric) > threshold (the
    other way round with `lower_is_better`: a time), with the gates: errored trials give no
    verdict; with `usable` (a parallelism claim), trials that waited for their CPUs give
    'machine busy: no verdict'."""
    bad = errored(trials, top) + errored(trials, bottom)
    a, b = metric_values(trials, top, metric), metric_values(trials, bottom, metric)
    if lower_is_better:
        a, b = b, a
    if bad and (len(a) < 2 or len(b) < 2):
        return row(claim, python, cpus, figure, NO_VERDICT, threshold=threshold,
                   note=f"{bad} trial{'s' if bad > 1 else ''} errored")
    ratio, low, high, coverage, verdict = ratio_verdict(a, b, threshold)
    notes = [note] if note else []
    if bad:
        notes.append(f"{bad} trial{'s' if bad > 1 else ''} errored, left out")
    if usable is not None:
        worst = max([busy(trials, top, usable) or 0, busy(trials, bottom, usable) or 0])
        if worst:
            verdict = BUSY
            notes.append(f"a trial got {worst:.0%} less CPU than its section x its CPUs")
    if verdict == CANT_TELL and min(len(a), len(b)) < 2:
        notes.append("fewer than 2 trials a side: no interval")
    return row(claim, python, cpus, figure, verdict, ratio=ratio, low=low, high=high,
               coverage=coverage, threshold=threshold, note="; ".join(notes))


def check_verdict(claim, python, cpus, figure, trials, points):
    """A behaviour claim at one (Python, CPU count): held when every checked trial held it,
    not held when a check failed, no verdict when trials only errored or none ran."""
    mine = trials_of(trials, points)
    failed = failed_checks(trials, points)
    ok = int((mine["ok"] == True).sum()) if len(mine) else 0  # noqa: E712
    bad = errored(trials, points)
    if failed:
        verdict = NOT_HELD
    elif ok and not bad:
        verdict = HELD
    else:
        verdict = NO_VERDICT
    note = f"{ok} of {len(mine)} trials held it" + (f"; {bad} errored" if bad else "")
    return row(claim, python, cpus, figure, verdict, unit="trials", ratio=float(ok),
               note=note + (f"; {failed} failed the check" if failed else ""))


def combine(verdicts):
    """A claim's verdict over its (Python, CPU count) rows."""
    verdicts = list(verdicts)
    found = [v for v in verdicts if v not in (NO_VERDICT, BUSY, FACT)]
    if not found:
        return FACT if FACT in verdicts else BUSY if BUSY in verdicts else NO_VERDICT
    kinds = set(found)
    if len(kinds) == 1:
        return found[0]
    if {HELD, NOT_HELD} <= kinds:
        return PARTLY
    return CANT_TELL


def lead(verdict):
    """The first words of a claim's sentence for `verdict`."""
    return {HELD: "Held", NOT_HELD: "Not held", CANT_TELL: "Can't tell",
            PARTLY: "Held at some Pythons or CPU counts, not at others", FACT: "Fact",
            NO_VERDICT: "No verdict (trials errored)",
            BUSY: "No verdict (the machine was busy)"}.get(verdict, verdict.capitalize())


def decided(table, fallback):
    """The claim's verdict from its rows (`table`), or `fallback` where it has none."""
    if table is None or table.empty:
        return fallback
    return combine(table["verdict"].tolist())


def groups(summary_rows):
    """(python, cpus, rows) of `summary_rows`, in order."""
    if summary_rows is None or summary_rows.empty:
        return []
    return [(python, cpus, rows) for (python, cpus), rows
            in summary_rows.groupby(["python", "cpus"], sort=True)]
