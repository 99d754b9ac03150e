"""What every lesson descriptor shares: the Lesson record (item parameter, headline metric,
words, checks, observed, claims) and the helpers that pick rows and read values from a run's
summary and trials."""

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lab.analysis.lessons.units import short_python
from lab.experiments.lessons_kit import TUTORIAL_CONSTRUCTOR_US
from lab.records import INTERRUPTED

# The tutorial's own figures (seed/): `%time` over `Process()`, its three timed programs.
TUTORIAL = {"constructor_us": TUTORIAL_CONSTRUCTOR_US, "one_process_s": 16.5727,
            "two_processes_s": 3.4562}


@dataclass(frozen=True)
class Lesson:
    """One lesson of the tutorial: what its points sweep and how the run reads it.

    item_param: the param naming a point's item (None: the start method, for start_cost);
    headline: its headline metric, or {item: metric} where the items differ (lifecycle);
    metric_words: its metrics in words; checks: {item or None: (kind, what is checked)};
    observed(item, rows): what passing trials showed, in words; claims: builders
    (summary, checks, table) -> (claim, verdict, sentence) or None, in report order, where
    `table` holds the claim's verdict rows (lessons.judge); verdicts: builders
    (trials, summary) -> [verdict row] per (Python, CPU count); also: metrics the figures
    table shows beside the headline."""
    name: str
    item_param: str | None
    headline: object
    metric_words: dict
    checks: dict
    observed: object
    claims: tuple = field(default_factory=tuple)
    verdicts: tuple = field(default_factory=tuple)
    also: tuple = ()  # metrics the figures table shows beside the headline

    def headline_of(self, item):
        return self.headline.get(str(item)) if isinstance(self.headline, dict) else self.headline


# --- rows of a summary -------------------------------------------------------------------------

def rows_of(summary, every=False, **where):
    """The summary rows matching `where` (column=value or a list of values), those with
    measured trials only unless `every` (a verdict also counts points whose trials errored)."""
    rows = summary
    for column, value in where.items():
        if column not in rows:
            return rows.iloc[0:0]
        rows = rows[rows[column].isin(value if isinstance(value, (list, tuple, set))
                                      else [value])]
    return rows if every else rows[rows["n"] > 0]


def per_python(rows, column, show, reduce=np.median):
    """'2.05 ms' for one Python, '2.05 ms (3.11), 1.9 ms (3.13)' for several: each Python's
    value of `column` over `rows` (reduced over CPU counts by `reduce`)."""
    parts = []
    for python, group in rows.groupby("python", sort=True):
        values = pd.to_numeric(group[column], errors="coerce").dropna()
        if len(values):
            parts.append((short_python(python), show(float(reduce(values)))))
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0][1]
    return ", ".join(f"{value} ({python})" for python, value in parts)


def at_most_cpus(rows):
    """The rows at the largest CPU count measured (the parallel case)."""
    return rows[rows["cpus"] == rows["cpus"].max()] if len(rows) else rows


def table_of(table, claim):
    """The verdict rows of `claim` in `table` (empty where none)."""
    if table is None or table.empty:
        return table if table is not None else None
    return table[table["claim"] == claim]


def check_row(checks, lesson, item):
    """The behaviour-check row of (lesson, item), or None."""
    if checks is None or checks.empty:
        return None
    rows = checks[(checks["lesson"] == lesson) & (checks["item"] == item)]
    return rows.iloc[0] if len(rows) else None


# --- values of trials --------------------------------------------------------------------------

def values(rows, column):
    """The known values of `column`, whole floats as ints (pandas makes -15 into -15.0)."""
    if column not in rows:
        return []
    return [int(v) if isinstance(v, float) and v.is_integer() else v
            for v in rows[column].tolist()
            if v is not None and not (isinstance(v, float) and math.isnan(v))]


def span(found, show=lambda v: f"{v:g}"):
    if not found:
        return "-"
    low, high = min(found), max(found)
    return show(low) if low == high else f"{show(low)} to {show(high)}"


def distinct(found):
    return ", ".join(str(v) for v in dict.fromkeys(found)) or "-"


def mode(found):
    found = [v for v in found if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not found:
        return None
    return pd.Series(found).mode().iloc[0]


def checked(trials):
    """Trials whose checks ran to a verdict: all but those cut off by an interruption."""
    errors = trials["error"].fillna("").astype(str)
    return ~errors.str.startswith(INTERRUPTED)
