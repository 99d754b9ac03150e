"""The lessons family's numbers: per point figures, behaviour checks, the tutorial's claims held
or not, and what changed between Pythons, all computed from a run's trials (trials_frame: the
check.* columns are what each trial verified).

Every sentence here is built from the data it names; nothing is a constant but the tutorial's
own figures (TUTORIAL).
"""

import math

import numpy as np
import pandas as pd

from lab.analysis.trials import measured, point_stats
from lab.records import INTERRUPTED

# The tutorial's own figures (seed/): `%time` over `Process()`, its three timed programs.
TUTORIAL = {"constructor_us": 12.2, "one_process_s": 16.5727, "two_processes_s": 3.4562}
LOST_NOTE_MIN = 0  # a Value without its lock: lost updates above this are the lesson seen

ITEM_PARAM = {"pool_vs_process": "runner", "shared_state": "state", "sync": "primitive",
              "lifecycle": "case", "threads_vs_processes": "runner",
              "queue_in_process": "queue_kind"}
DOUBLE_OF = {"test_value_noop_lock": ("shared_state", "value_locked"),
             "test_lock_does_not_lock": ("sync", "lock"),
             "test_semaphore_admits_three": ("sync", "semaphore")}
HEADLINE = {"start_cost": "start_join_us", "pool_vs_process": "per_task_us",
            "shared_state": "increments_per_second", "sync": "op_us",
            "threads_vs_processes": "iterations_per_second", "queue_in_process": "put_get_us",
            "terminate": "terminate_join_us", "daemon": "daemon_gone_ms",
            "daemon_parent_killed": "daemon_survived", "kill_mid_put": "items_intact"}
METRIC_WORDS = {
    "start_join_us": "start()+join()", "constructor_us": "Process() alone",
    "pool_first_task_us": "fresh Pool(1) to its first result",
    "first_start_join_us": "first start()+join()", "start_join_p90_us": "start()+join() p90",
    "per_task_us": "per task", "tasks_per_second": "tasks/s", "task_cpu_us": "task's own CPU",
    "pool_start_us": "pool start", "increments_per_second": "increments/s",
    "increment_us": "per increment", "lost_updates": "lost updates", "op_us": "per operation",
    "ops_per_second": "operations/s", "wake_us": "wake-up", "release_spread_us": "release spread",
    "release_spread_max_us": "worst release spread", "terminate_join_us": "terminate()+join()",
    "daemon_gone_ms": "daemon gone after its parent's exit", "daemon_survived": "daemon survived",
    "items_intact": "items intact", "iterations_per_second": "loops/s",
    "put_get_us": "put+get", "items_per_second": "items/s",
}
ORDER = ("start_cost", "pool_vs_process", "shared_state", "sync", "lifecycle",
         "threads_vs_processes", "queue_in_process")


# --- units and numbers -------------------------------------------------------------------------

def unit_of(metric):
    for suffix, unit in (("_us", "µs"), ("_ms", "ms"), ("_per_second", "/s")):
        if metric.endswith(suffix):
            return unit
    return ""


def duration(us):
    """Microseconds in the unit a person reads: 2.1 µs, 450 µs, 2.05 ms, 1.3 s."""
    if us is None or not math.isfinite(us):
        return "-"
    if us < 10:
        return f"{us:.2g} µs" if us < 1 else f"{us:.1f} µs"
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1e6:
        return f"{us / 1e3:.3g} ms"
    return f"{us / 1e6:.3g} s"


def rate(value, unit="/s"):
    if value is None or not math.isfinite(value):
        return "-"
    for scale, word in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{word}{unit}"
    return f"{value:.3g}{unit}"


def figure(metric, value):
    """A metric's value in words with its unit."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    unit = unit_of(metric)
    if unit == "µs":
        return duration(value)
    if unit == "ms":
        return duration(value * 1e3)
    if unit == "/s":
        return rate(value)
    return f"{value:g}"


def times(ratio):
    if ratio is None or not math.isfinite(ratio):
        return "-"
    return f"{ratio:.3g}x" if ratio < 100 else f"{ratio:,.0f}x"


def _cpus(count):
    return f"{int(count)} CPU{'' if int(count) == 1 else 's'}"


def short_python(version):
    return ".".join(str(version).split(".")[:2])


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
        extra = f" {_int(row.get('param.task_iterations'))} loops"
        if item == "pool":
            extra += f" chunksize {row.get('param.chunksize')}"
    python = f", Python {row['python']}" if row.get("python") else ""
    return f"{lesson} {item}{extra}, {_int(row['cpus'])} CPU{'s' if row['cpus'] != 1 else ''}" \
           f"{python}"


def _int(value):
    try:
        return f"{int(value)}"
    except (TypeError, ValueError):
        return str(value)


def _mode(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None
    return pd.Series(values).mode().iloc[0]


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
                 "resolved_start_method": _mode(mine.get("check.start_method", pd.Series(
                     dtype=object)).tolist()) or (row["start_method"] if row["start_method"]
                                                  != "default" else None),
                 "pool_default_workers": _mode(mine["seen.pool_default_workers"].tolist())
                 if "seen.pool_default_workers" in mine else None,
                 "os_cpu_count": _mode(mine["seen.os_cpu_count"].tolist())
                 if "seen.os_cpu_count" in mine else None,
                 "trials_checked": int(_checked(mine).sum()),
                 "trials_failed_check": int((~mine["ok"].astype(bool) & _checked(mine)).sum())}
        for column in metric_columns:
            values = pd.to_numeric(ok[column], errors="coerce").dropna()
            extra[column] = float(values.median()) if len(values) else math.nan
        headline = _headline(row)
        extra["headline"] = headline
        extra["headline_unit"] = unit_of(headline) if headline else ""
        values = pd.to_numeric(ok.get(f"metric.{headline}", pd.Series(dtype=float)),
                               errors="coerce").dropna()
        extra["headline_median"] = float(values.median()) if len(values) else math.nan
        extra["headline_low"] = float(values.min()) if len(values) else math.nan
        extra["headline_high"] = float(values.max()) if len(values) else math.nan
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
    lesson = lesson_of(row["variant"])
    if lesson == "lifecycle":
        return HEADLINE.get(str(row.get("param.case")))
    return HEADLINE.get(lesson)


def _checked(trials):
    """Trials whose checks ran to a verdict: all but those cut off by an interruption."""
    errors = trials["error"].fillna("").astype(str)
    return ~errors.str.startswith(INTERRUPTED)


# --- behaviour checks --------------------------------------------------------------------------

CHECKS = {  # (lesson, item) -> (kind, what is checked)
    ("start_cost", None): ("check", "every child started, ran and wrote its pid; every exit "
                                    "code 0"),
    ("pool_vs_process", None): ("check", "every task's answer came back exactly once, each "
                                         "with all its loops (checksum)"),
    ("shared_state", None): ("check", "the counter is exact under its lock: no update lost"),
    ("shared_state", "value_unlocked"): ("lesson", "a Value incremented without its lock "
                                                   "loses updates under contention"),
    ("sync", "lock"): ("check", "a Lock's critical sections never overlap (at most 1 inside); "
                                "whether another process may release it"),
    ("sync", "rlock"): ("check", "an RLock re-enters in its owner and refuses a release by "
                                 "another process"),
    ("sync", "semaphore"): ("check", "Semaphore(2) never admits a third"),
    ("sync", "event"): ("check", "an Event wakes every waiter every round, none before set()"),
    ("sync", "condition"): ("check", "a Condition's consumers never take what was not "
                                     "produced; every item consumed once"),
    ("sync", "barrier"): ("check", "a Barrier lets nobody out before the last arrives and "
                                   "releases all within its bound"),
    ("lifecycle", "terminate"): ("check", "terminate() ends a process with exit code -15"),
    ("lifecycle", "daemon"): ("check", "a daemon child dies when its parent exits normally"),
    ("lifecycle", "daemon_parent_killed"): ("fact", "does a daemon child outlive a parent "
                                                    "killed by SIGKILL?"),
    ("lifecycle", "kill_mid_put"): ("fact", "is a Queue still usable after a process was "
                                            "killed in the middle of put()?"),
    ("threads_vs_processes", None): ("check", "every loop of the task ran (its sum checked)"),
    ("queue_in_process", None): ("check", "every item came back once, in order"),
}


def _check_key(lesson, item):
    return (lesson, item) if (lesson, item) in CHECKS else (lesson, None)


def _values(rows, column):
    """The known values of `column`, whole floats as ints (pandas makes -15 into -15.0)."""
    if column not in rows:
        return []
    return [int(v) if isinstance(v, float) and v.is_integer() else v
            for v in rows[column].tolist()
            if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _span(values, show=lambda v: f"{v:g}"):
    if not values:
        return "-"
    low, high = min(values), max(values)
    return show(low) if low == high else f"{show(low)} to {show(high)}"


def _distinct(values):
    return ", ".join(str(v) for v in dict.fromkeys(values)) or "-"


def observed(lesson, item, rows):
    """What the trials `rows` (ok ones) of one check showed, in words."""
    if rows.empty:
        return "no trial passed"

    def metric(name):
        return [float(v) for v in _values(rows, f"metric.{name}")]

    if lesson == "start_cost":
        return (f"{_span(_values(rows, 'check.processes_ran'))} children per trial, pids "
                f"written {_span(_values(rows, 'check.pids_written'))}, exit codes "
                f"{_distinct(_values(rows, 'check.exit_codes'))}")
    if lesson == "pool_vs_process":
        pids = _values(rows, "check.worker_pids")
        return (f"{_span(_values(rows, 'check.tasks'))} tasks per trial, each once; "
                f"checksums exact" + (f"; {_span(pids)} worker pids answered" if pids else ""))
    if lesson == "shared_state":
        expected = [int(v) for v in _values(rows, "check.expected")]
        final = [int(v) for v in _values(rows, "check.final")]
        if item == "value_unlocked":
            lost = [e - f for e, f in zip(expected, final)]
            share = [x / e for x, e in zip(lost, expected) if e]
            return (f"lost {_span(lost, lambda v: f'{v:,}')} of "
                    f"{_span(expected, lambda v: f'{v:,}')} increments "
                    f"({_span(share, lambda v: f'{v:.0%}')}); "
                    f"{sum(1 for x in lost if x > LOST_NOTE_MIN)} of {len(lost)} trials lost some")
        return (f"final = expected ({_span(expected, lambda v: f'{v:,}')}) in {len(final)} of "
                f"{len(final)} trials; 0 lost")
    if lesson == "sync":
        if item in ("lock", "rlock", "semaphore", "test_lock_does_not_lock",
                    "test_semaphore_admits_three"):
            text = (f"at most {_span([int(v) for v in _values(rows, 'check.most_inside')])} "
                    f"inside over {_span(_values(rows, 'check.sections'), lambda v: f'{v:,.0f}')}"
                    f" sections per trial")
            if item == "rlock":
                text += (f"; re-entered {_span(_values(rows, 'check.reentered'), lambda v: f'{v:,.0f}')}"
                         f" times")
            release = _values(rows, "check.release_by_other_process")
            if release:
                text += f"; release by another process: {_distinct(release)}"
            return text
        if item == "event":
            return (f"{_span(_values(rows, 'check.waiters'))} waiters woke in each of "
                    f"{_span(_values(rows, 'check.rounds'))} rounds; wake-up median "
                    f"{_span(metric('wake_us'), duration)}")
        if item == "condition":
            return f"{_span(_values(rows, 'check.items'), lambda v: f'{v:,.0f}')} items " \
                   f"produced and consumed once" if _values(rows, "check.items") else \
                   "every item produced was consumed once, never before it was produced"
        if item == "barrier":
            return (f"{_span(_values(rows, 'check.parties'))} parties, "
                    f"{_span(_values(rows, 'check.rounds'))} rounds; release spread median "
                    f"{_span(metric('release_spread_us'), duration)}, worst "
                    f"{_span(metric('release_spread_max_us'), duration)}")
    if lesson == "lifecycle":
        if item == "terminate":
            return (f"exit code {_distinct(_values(rows, 'check.exit_code'))} for "
                    f"{_span(_values(rows, 'check.terminated'))} processes per trial; "
                    f"still alive right after terminate(): "
                    f"{_span(_values(rows, 'check.alive_right_after_terminate'))}")
        if item == "daemon":
            return (f"gone in every trial, {_span(metric('daemon_gone_ms'), lambda v: duration(v * 1e3))}"
                    f" after the parent's exit code")
        if item == "daemon_parent_killed":
            survived = metric("daemon_survived")
            return (f"survived in {sum(1 for v in survived if v)} of {len(survived)} trials "
                    f"(no exit handler runs in a SIGKILLed parent)")
        if item == "kill_mid_put":
            return (f"get() after the kill: {_distinct(_values(rows, 'check.get_after_kill'))}; "
                    f"put()+get(): {_distinct(_values(rows, 'check.put_get_after_kill'))}; "
                    f"items intact {_span(metric('items_intact'))} of "
                    f"{_span(metric('items_put'))}")
    if lesson == "threads_vs_processes":
        return (f"{_span(_values(rows, 'check.iterations'), lambda v: f'{v:,.0f}')} loops, sums "
                f"exact; GIL enabled: {_distinct(_values(rows, 'check.gil_enabled'))}")
    if lesson == "queue_in_process":
        return (f"{_span(_values(rows, 'check.messages'), lambda v: f'{v:,.0f}')} items in "
                f"order, checksum exact")
    return "-"


def behaviour_checks(trials):
    """One row per behaviour check: lesson, item, kind (check / lesson / fact), what it checks,
    result (PASS, FAIL, or the lesson or fact seen), trials (passed / checked), where (CPU counts
    and Pythons), observed (in words) and the first failure's reason."""
    if trials.empty:
        return pd.DataFrame(columns=["lesson", "item", "kind", "what", "result", "trials",
                                     "where", "observed", "failure"])
    frame = trials[_checked(trials)].copy()
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
        if len(failed):
            result = "FAIL"
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
                    "failure": (str(failed["error"].iloc[0]) if len(failed) else "")})
    table = pd.DataFrame(out)
    table["_order"] = table["lesson"].map({n: i for i, n in enumerate(ORDER)}).fillna(99)
    return table.sort_values("_order", kind="stable").drop(columns="_order").reset_index(
        drop=True)


# --- the tutorial's claims ---------------------------------------------------------------------

def _rows(summary, **where):
    rows = summary
    for column, value in where.items():
        if column not in rows:
            return rows.iloc[0:0]
        rows = rows[rows[column].isin(value if isinstance(value, (list, tuple, set))
                                      else [value])]
    return rows[rows["n"] > 0]


def _per_python(rows, column, show, reduce=np.median):
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


def _at_most_cpus(rows):
    """The rows at the largest CPU count measured (the parallel case)."""
    return rows[rows["cpus"] == rows["cpus"].max()] if len(rows) else rows


def claims(summary, checks):
    """[(claim, verdict, sentence)]: each tutorial claim this run measured, held or not, with
    the figures. Verdicts: held, not held, partly (held in one case, not another), fact."""
    out = []
    if summary is None or summary.empty:
        return out
    checks = checks if checks is not None else pd.DataFrame()
    for build in (_claim_constructor, _claim_pool, _claim_reconstructions, _claim_shared_memory,
                  _claim_sync_hardest, _claim_lock, _claim_semaphore, _claim_terminate,
                  _claim_daemon, _claim_threads, _claim_queue_in_process):
        claim = build(summary, checks)
        if claim:
            out.append(claim)
    return out


def _claim_constructor(summary, checks):
    rows = _rows(summary, lesson="start_cost")
    if rows.empty:
        return None
    tutorial = TUTORIAL["constructor_us"]
    constructor = _per_python(rows, "metric.constructor_us", duration)
    costs = []
    for method, group in rows.groupby("resolved_start_method", sort=False):
        costs.append((float(group["metric.start_join_us"].median()), method, group))
    costs.sort(key=lambda c: c[0])
    start_join = "; ".join(f"{method} {_per_python(group, 'metric.start_join_us', duration)}"
                           for _, method, group in costs)
    ratio = (rows["metric.start_join_us"] / rows["metric.constructor_us"]).dropna()
    held = bool(len(rows)) and float(rows["metric.start_join_us"].max()) <= 2 * tutorial
    return ("Creating a process costs 12.2 µs (the tutorial's %time of Process())",
            "held" if held else "not held",
            f"{'Held' if held else 'Not held'}: Process() alone took {constructor} (nothing "
            f"starts: the tutorial's {tutorial:g} µs timed only this, and %time on its own line "
            f"times an empty statement); start()+join() of one process took {start_join}, "
            f"{times(float(ratio.min()))} to {times(float(ratio.max()))} the constructor "
            f"(medians per point, all CPU counts).")


def break_even(summary, threshold=1.1):
    """Pool against a process per task, per Python, CPU count and task size: per-task µs of
    the reused pool (its best chunksize) and of a process per task, their ratio; and per
    (Python, CPUs) the task size from which a pool saves less than 1 - 1/threshold."""
    pool = _rows(summary, lesson="pool_vs_process", item="pool")
    per = _rows(summary, lesson="pool_vs_process", item="process_per_task")
    rows = []
    if pool.empty:
        return pd.DataFrame(), []
    for (python, cpus, size), group in pool.groupby(["python", "cpus", "param.task_iterations"]):
        other = per[(per["python"] == python) & (per["cpus"] == cpus)
                    & (per["param.task_iterations"] == size)]
        best = group.loc[group["metric.per_task_us"].idxmin()]
        rows.append({"python": python, "cpus": cpus, "task_iterations": int(size),
                     "task_us": float(group["metric.task_cpu_us"].median()),
                     "pool_us": float(best["metric.per_task_us"]),
                     "pool_chunksize": best["param.chunksize"],
                     "process_us": (float(other["metric.per_task_us"].iloc[0])
                                    if len(other) else math.nan),
                     "start_method": best["resolved_start_method"]})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame, []
    frame["ratio"] = frame["process_us"] / frame["pool_us"]
    ends = []
    for (python, cpus), group in frame.groupby(["python", "cpus"]):
        group = group.sort_values("task_iterations")
        below = group[group["ratio"] < threshold]
        ends.append({"python": python, "cpus": cpus,
                     "break_even_us": (float(below["task_us"].iloc[0]) if len(below)
                                       else math.nan),
                     "largest_us": float(group["task_us"].iloc[-1]),
                     "ratio_at_largest": float(group["ratio"].iloc[-1]),
                     "ratio_at_smallest": float(group["ratio"].iloc[0]),
                     "smallest_us": float(group["task_us"].iloc[0]),
                     "start_method": group["start_method"].iloc[0]})
    return frame, ends


def _claim_pool(summary, checks):
    frame, ends = break_even(summary)
    if frame.empty or frame["process_us"].isna().all():
        return None
    both = frame.dropna(subset=["process_us"])
    held = bool((both["ratio"] > 1).all())
    parts = []
    for end in ends:
        where = (f"Python {short_python(end['python'])}, {_cpus(end['cpus'])}, "
                 f"{end['start_method']}")
        if math.isfinite(end["break_even_us"]):
            stop = (f"it stops paying (a process per task within 10%) from tasks of "
                    f"{duration(end['break_even_us'])}")
        else:
            stop = (f"still {times(end['ratio_at_largest'])} cheaper at the largest task "
                    f"({duration(end['largest_us'])}): no break-even measured")
        parts.append(f"{where}: {times(end['ratio_at_smallest'])} cheaper per "
                     f"{duration(end['smallest_us'])} task, {stop}")
    fresh = _rows(summary, lesson="start_cost")
    first = ""
    if len(fresh):
        default = fresh[fresh["resolved_start_method"].isin(set(both["start_method"]))]
        default = default if len(default) else fresh
        ratio = (default["metric.pool_first_task_us"] / default["metric.start_join_us"]).dropna()
        if len(ratio):
            first = (f" But a fresh Pool(1)'s first result cost "
                     f"{_per_python(default, 'metric.pool_first_task_us', duration)}, "
                     f"{times(float(ratio.min()))} to {times(float(ratio.max()))} one Process's "
                     f"start()+join() under the same method: a pool pays only when reused.")
    return ("A pool saves the time of starting processes",
            "held" if held else "not held",
            f"{'Held' if held else 'Not held'} for a reused pool: per task, a reused pool "
            f"against a process per task — " + "; ".join(parts) + "." + first)


def _claim_reconstructions(summary, checks):
    rows = _rows(summary, lesson="pool_vs_process",
                 item=["seed_one_process", "seed_two_processes", "seed_pool8"])
    if rows.empty:
        return None
    rows = _at_most_cpus(rows)
    cpus = int(rows["cpus"].max())
    figures = {}
    for item in ("seed_one_process", "seed_two_processes", "seed_pool8"):
        group = rows[rows["item"] == item]
        if len(group):
            figures[item] = (_per_python(group, "median_s", lambda v: f"{v:.3g} s"),
                             float(group["metric.per_task_us"].median()))
    words = {"seed_one_process": "one process, 6 tasks",
             "seed_two_processes": "two Processes, 2 tasks",
             "seed_pool8": "Pool(8), 6 tasks"}
    listed = "; ".join(f"{words[k]} {v[0]} ({duration(v[1])} per task)"
                       for k, v in figures.items())
    one, two = figures.get("seed_one_process"), figures.get("seed_two_processes")
    tutorial = TUTORIAL["one_process_s"] / TUTORIAL["two_processes_s"]
    if one and two:
        per_task = one[1] / two[1]
        held = per_task > 1.2
        verdict = "held" if held else "not held"
        tail = (f" The tutorial's {tutorial:.1f}x ({TUTORIAL['one_process_s']:g} s against "
                f"{TUTORIAL['two_processes_s']:g} s) compares 6 tasks with 2; per task the two "
                f"processes were {times(per_task)} as fast as one here.")
    else:
        verdict, tail = "fact", ""
    return ("The tutorial's reconstructions: processes make the task faster",
            verdict, f"{verdict.capitalize()} at {_cpus(cpus)}: {listed}.{tail}")


def _claim_shared_memory(summary, checks):
    rows = _rows(summary, lesson="shared_state")
    manager = rows[rows["item"] == "manager_dict"]
    fast = rows[rows["item"].isin(["value_locked", "array_locked", "shared_memory"])]
    if manager.empty or fast.empty:
        return None
    ratios = []
    for (python, cpus), group in rows.groupby(["python", "cpus"]):
        m = group[group["item"] == "manager_dict"]["metric.increments_per_second"]
        others = group[group["item"].isin(["value_locked", "array_locked", "shared_memory"])]
        if m.empty or others.empty:
            continue
        low = float(others["metric.increments_per_second"].min())
        high = float(others["metric.increments_per_second"].max())
        ratios += [low / float(m.iloc[0]), high / float(m.iloc[0])]
    held = bool(ratios) and min(ratios) > 1
    figures = "; ".join(f"{item} {_per_python(rows[rows['item'] == item], 'metric.increments_per_second', rate)}"
                        for item in ("shared_memory", "value_locked", "array_locked",
                                     "manager_dict")
                        if (rows["item"] == item).any())
    return ("Shared memory is the fastest way to share state (against a Manager)",
            "held" if held else "not held",
            f"{'Held' if held else 'Not held'}: locked increments per second (median over CPU "
            f"counts) — {figures}; shared memory and Value/Array were "
            f"{times(min(ratios))} to {times(max(ratios))} a Manager dict's rate.")


def _claim_sync_hardest(summary, checks):
    rows = _rows(summary, lesson="shared_state", item="value_unlocked")
    if rows.empty or "lost_fraction" not in rows:
        return None
    locked = _rows(summary, lesson="shared_state")
    locked = locked[locked["item"] != "value_unlocked"]
    lost_any = bool((rows["metric.lost_updates"] > 0).any())
    parts = []
    for (python, cpus), group in rows.groupby(["python", "cpus"]):
        parts.append(f"{group['lost_fraction'].iloc[0]:.0%} (up to "
                     f"{group['lost_fraction_max'].iloc[0]:.0%}) at {_cpus(cpus)} on "
                     f"{short_python(python)}")
    exact = ""
    if len(locked):
        bad = locked["metric.lost_updates"].fillna(0).gt(0).any()
        exact = (" Every locked state ended exact (0 lost)." if not bad
                 else " A locked state lost updates: see the checks.")
    return ("...but synchronising shared memory is the hardest part",
            "held" if lost_any else "not held",
            f"{'Held' if lost_any else 'Not seen this run'}: a Value incremented without its "
            f"lock lost a median {', '.join(parts)} of its increments (a lesson, not a failed "
            f"trial).{exact}")


def _claim_lock(summary, checks):
    rows = checks[(checks["lesson"] == "sync") & (checks["item"] == "lock")] if len(checks) \
        else checks
    if rows is None or rows.empty:
        return None
    row = rows.iloc[0]
    costs = _rows(summary, lesson="sync", item="lock")
    cost = _per_python(costs, "metric.op_us", duration)
    held = row["result"] == "PASS"
    return ("A Lock (mutex) lets one process at a time into its section",
            "held" if held else "not held",
            f"{'Held' if held else 'Not held'}: {row['observed']} ({row['trials']} trials); an "
            f"acquire+release across processes cost {cost} per operation.")


def _claim_semaphore(summary, checks):
    rows = checks[(checks["lesson"] == "sync") & (checks["item"] == "semaphore")] if len(
        checks) else checks
    if rows is None or rows.empty:
        return None
    row = rows.iloc[0]
    held = row["result"] == "PASS"
    text = (f"{'Held' if held else 'Not held'}: {row['observed']} ({row['trials']} trials).")
    lock = _rows(summary, lesson="sync", item="lock")
    sem = _rows(summary, lesson="sync", item="semaphore")
    verdict = "held" if held else "not held"
    if len(lock) and len(sem):
        ratio = float(sem["metric.op_us"].median()) / float(lock["metric.op_us"].median())
        cheaper = ratio > 1
        text += (f" The tutorial adds that a mutex is more efficient than a semaphore: a Lock "
                 f"cost {_per_python(lock, 'metric.op_us', duration)} per operation, "
                 f"Semaphore(2) {_per_python(sem, 'metric.op_us', duration)} "
                 f"({times(ratio)}): {'held' if cheaper else 'not held'}.")
        if held and not cheaper:
            verdict = "partly"
    return ("Semaphore(n) admits n at a time; a mutex is cheaper", verdict, text)


def _claim_terminate(summary, checks):
    rows = checks[(checks["lesson"] == "lifecycle") & (checks["item"] == "terminate")] if len(
        checks) else checks
    if rows is None or rows.empty:
        return None
    row = rows.iloc[0]
    held = row["result"] == "PASS"
    costs = _rows(summary, lesson="lifecycle", item="terminate")
    return ("terminate() kills a process: exit code -15",
            "held" if held else "not held",
            f"{'Held' if held else 'Not held'}: {row['observed']} ({row['trials']} trials); "
            f"terminate()+join() took {_per_python(costs, 'metric.terminate_join_us', duration)}"
            f" (median per operation).")


def _claim_daemon(summary, checks):
    if checks is None or checks.empty:
        return None
    normal = checks[(checks["lesson"] == "lifecycle") & (checks["item"] == "daemon")]
    killed = checks[(checks["lesson"] == "lifecycle")
                    & (checks["item"] == "daemon_parent_killed")]
    if normal.empty and killed.empty:
        return None
    held_normal = len(normal) and normal.iloc[0]["result"] == "PASS"
    survived = _rows(summary, lesson="lifecycle", item="daemon_parent_killed")
    survives = bool(len(survived)) and float(survived["metric.daemon_survived"].max()) > 0
    text = []
    if len(normal):
        text.append(f"on a normal exit the daemon child was {normal.iloc[0]['observed']}")
    if len(killed):
        text.append(f"when the parent was SIGKILLed the daemon child "
                     f"{killed.iloc[0]['observed']}")
    verdict = ("partly" if held_normal and survives else "held" if held_normal
               else "not held")
    words = {"partly": "Held only on a normal exit", "held": "Held",
             "not held": "Not held"}[verdict]
    return ("A daemon process ends when the main process exits", verdict,
            f"{words}: " + "; ".join(text) + ".")


def _claim_threads(summary, checks):
    rows = _rows(summary, lesson="threads_vs_processes")
    if rows.empty:
        return None
    rows = _at_most_cpus(rows)
    cpus = int(rows["cpus"].max())
    parts, held = [], True
    for python, group in rows.groupby("python"):
        rates = {item: float(g["metric.iterations_per_second"].median())
                 for item, g in group.groupby("item")}
        serial = rates.get("serial")
        if not serial:
            continue
        threads = rates.get("threads", math.nan) / serial
        processes = rates.get("processes", math.nan) / serial
        held &= processes > 1.3 * threads
        parts.append(f"{short_python(python)}: threads {threads:.2f}x, processes "
                     f"{processes:.2f}x the serial loop rate ({rate(serial, ' loops/s')})")
    if not parts:
        return None
    if cpus < 2:
        return ("Threads cannot run the CPU-bound task in parallel (the GIL); processes can",
                "fact", f"Measured at 1 CPU only, where neither can run in parallel: "
                        f"{'; '.join(parts)}.")
    return ("Threads cannot run the CPU-bound task in parallel (the GIL); processes can",
            "held" if held else "not held",
            f"{'Held' if held else 'Not held'} at {cpus} CPUs: {'; '.join(parts)}.")


def _claim_queue_in_process(summary, checks):
    rows = _rows(summary, lesson="queue_in_process")
    thread = rows[rows["item"] == "thread_queue"]
    process = rows[rows["item"] == "process_queue"]
    if thread.empty or process.empty:
        return None
    ratio = float(process["metric.put_get_us"].median()) / float(
        thread["metric.put_get_us"].median())
    return ("Within one process, queue.Queue and multiprocessing.Queue",
            "fact",
            f"A put()+get() cost {_per_python(thread, 'metric.put_get_us', duration)} with "
            f"queue.Queue and {_per_python(process, 'metric.put_get_us', duration)} with "
            f"multiprocessing.Queue ({times(ratio)}): a process queue pickles every item and "
            f"sends it through a pipe by a feeder thread.")


# --- what changed between Pythons ---------------------------------------------------------------

def python_changes(trials, summary):
    """One sentence each, with the figures: the default start method, Pool()'s size in a
    cpuset, start costs, per Python of the run (a run of one Python gets its figures too)."""
    if summary is None or summary.empty:
        return []
    pythons = sorted(summary["python"].dropna().unique(),
                     key=lambda v: tuple(int(x) for x in str(v).split(".") if x.isdigit()))
    several = len(pythons) > 1
    out = []
    seen = {}  # python -> the method `default` resolved to
    default = trials[trials["start_method"] == "default"] if "start_method" in trials else trials
    if "check.start_method" in default and len(default):
        seen = {p: _mode(default[default["python"] == p]["check.start_method"].tolist())
                for p in pythons}
        seen = {p: m for p, m in seen.items() if m}
        if seen:
            groups = {}
            for python, method in seen.items():
                groups.setdefault(method, []).append(short_python(python))
            text = "; ".join(f"{method} on {', '.join(v)}" for method, v in groups.items())
            changed = (" — 3.14 moved Linux to forkserver, so every Pool() there pays a fork "
                       "server's start" if len(groups) > 1 else "")
            out.append(f"Default start method (the trials' `default`, as resolved): {text}"
                       f"{changed}.")
    sizes = summary.dropna(subset=["pool_default_workers"])
    if len(sizes):
        parts = []
        for python in pythons:
            group = sizes[sizes["python"] == python]
            if group.empty:
                continue
            by_cpus = ", ".join(f"{int(cpus)}-CPU cpuset {int(g['pool_default_workers'].iloc[0])}"
                                for cpus, g in group.groupby("cpus"))
            parts.append(f"{short_python(python)}: {by_cpus}")
        host = _mode(summary["os_cpu_count"].tolist())
        out.append(f"Pool()'s default size (workers): {'; '.join(parts)} (os.cpu_count() "
                   f"{host}; 3.13 sizes by os.process_cpu_count(), which follows the cpuset).")
    start = _rows(summary, lesson="start_cost")
    if len(start):
        parts = []
        for method, group in start.groupby("resolved_start_method"):
            parts.append(f"{method} {_per_python(group, 'metric.start_join_us', duration)}")
        text = f"start()+join() of one process: {'; '.join(parts)}"
        defaults = []
        for python in pythons:
            method = seen.get(python)
            group = start[(start["python"] == python)
                          & (start["resolved_start_method"] == method)]
            if method and len(group):
                defaults.append((short_python(python), method,
                                 float(group["metric.start_join_us"].median()),
                                 float(group["metric.pool_first_task_us"].median())))
        if len(defaults) > 1:
            costs = [d[2] for d in defaults]
            text += ("; under each Python's default: " + ", ".join(
                f"{d[0]} {d[1]} {duration(d[2])} (a fresh Pool(1)'s first result "
                f"{duration(d[3])})" for d in defaults)
                + f", {times(max(costs) / min(costs))} apart")
        out.append(text[0].upper() + text[1:] + " (medians over CPU counts).")
    gil = trials.get("check.gil_enabled")
    if gil is not None and gil.notna().any():
        states = {short_python(p): _mode(trials[trials["python"] == p]["check.gil_enabled"]
                                         .tolist()) for p in pythons}
        states = {p: s for p, s in states.items() if s is not None}
        out.append("The GIL: " + ", ".join(f"{'enabled' if s else 'disabled'} on {p}"
                                           for p, s in states.items()) + ".")
    if not several:
        out.insert(0, f"One Python in this run ({pythons[0]}); run with --base-image "
                      f"multicore-lab-base:bookworm,multicore-lab-base:trixie,"
                      f"multicore-lab-base:sid to set 3.11, 3.13 and 3.14 side by side.")
    return out
