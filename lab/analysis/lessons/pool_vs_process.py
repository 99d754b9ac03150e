"""Lesson pool_vs_process: a reused Pool against a Process per task, and the tutorial's three
timed programs reconstructed; its words, check, observed, break-even and claims."""

import math

import pandas as pd

from lab.analysis.lessons import judge as v
from lab.analysis.lessons.base import (TUTORIAL, Lesson, at_most_cpus, per_python, rows_of,
                                       span, table_of, values)
from lab.analysis.lessons.units import cpus_words, duration, short_python, times, whole

METRIC_WORDS = {"per_task_us": "per task", "tasks_per_second": "tasks/s",
                "task_cpu_us": "task's own CPU", "pool_start_us": "pool start"}
POOL_CLAIM = "A pool saves the time of starting processes"
SEED_CLAIM = "The tutorial's reconstructions: processes make the task faster"
SEED_THRESHOLD = 1.2  # per task, two processes over one: faster when above
CHECKS = {None: ("check", "every task's answer came back exactly once, each with all its "
                          "loops (checksum)")}


def observed(item, rows):
    pids = values(rows, "check.worker_pids")
    return (f"{span(values(rows, 'check.tasks'))} tasks per trial, each once; "
            f"checksums exact" + (f"; {span(pids)} worker pids answered" if pids else ""))


def break_even(summary, threshold=1.1):
    """Pool against a process per task, per Python, CPU count and task size: per-task µs of
    the reused pool (at one chunksize fixed before looking: Pool.map's own "auto" where run,
    else the smallest; the best of several would be the winner's curse) and of a process per
    task, their ratio; and per
    (Python, CPUs) the task size from which a pool saves less than 1 - 1/threshold."""
    pool = rows_of(summary, lesson="pool_vs_process", item="pool")
    per = rows_of(summary, lesson="pool_vs_process", item="process_per_task")
    rows = []
    if pool.empty:
        return pd.DataFrame(), []
    for (python, cpus, size), group in pool.groupby(["python", "cpus", "param.task_iterations"]):
        other = per[(per["python"] == python) & (per["cpus"] == cpus)
                    & (per["param.task_iterations"] == size)]
        best = _fixed_chunksize(group).iloc[0]
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


def _fixed_chunksize(group):
    """The pool rows at the chunksize chosen without looking at the times."""
    sizes = group["param.chunksize"].astype(str)
    if (sizes == "auto").any():
        return group[sizes == "auto"]
    numbers = pd.to_numeric(group["param.chunksize"], errors="coerce")
    return group[numbers == numbers.min()]


def verdicts(trials, summary):
    """Per (Python, CPU count) and task size, smallest first: a process per task over a
    reused pool, per task (> 1: the pool saves; where it stops, the break-even shows); the
    reconstructions' one process over two, per task, at 2 CPUs or more (> 1.2, a parallelism
    claim: gated on the CPUs the trials got)."""
    out = []
    pool = rows_of(summary, every=True, lesson="pool_vs_process", item="pool")
    per = rows_of(summary, every=True, lesson="pool_vs_process", item="process_per_task")
    for python, cpus, rows in v.groups(pool):
        for size in sorted(rows["param.task_iterations"].dropna().unique()):
            mine = _fixed_chunksize(rows[rows["param.task_iterations"] == size])
            other = per[(per["python"] == python) & (per["cpus"] == cpus)
                        & (per["param.task_iterations"] == size)]
            if other.empty:
                continue
            chunk = mine["param.chunksize"].iloc[0]
            chunk = chunk if str(chunk) == "auto" else whole(chunk)
            figure = (f"per task, a Process per task / a reused pool (chunksize {chunk}), "
                      f"{int(size):,} loops")
            out.append(v.gated_ratio(POOL_CLAIM, python, cpus, figure, trials, other, mine,
                                     "per_task_us", 1.0))
    seeds = rows_of(summary, every=True, lesson="pool_vs_process",
                    item=["seed_one_process", "seed_two_processes"])
    for python, cpus, rows in v.groups(seeds):
        one = rows[rows["item"] == "seed_one_process"]
        two = rows[rows["item"] == "seed_two_processes"]
        if one.empty or two.empty or cpus < 2:
            continue
        out.append(v.gated_ratio(
            SEED_CLAIM, python, cpus, "per task, one process / two Processes", trials, one, two,
            "per_task_us", SEED_THRESHOLD, usable=_seed_cpus))
    return out


def _seed_cpus(trial):
    workers = {"seed_one_process": 1, "seed_two_processes": 2}.get(trial.get("param.runner"))
    return min(workers or trial["cpus"], trial["cpus"])


def claim_pool(summary, checks, table=None):
    frame, ends = break_even(summary)
    if frame.empty or frame["process_us"].isna().all():
        return None
    both = frame.dropna(subset=["process_us"])
    fallback = v.HELD if bool((both["ratio"] > 1).all()) else v.NOT_HELD
    rows = table_of(table, POOL_CLAIM)
    verdict = v.decided(rows, fallback)
    lead = v.lead(verdict)
    if verdict in (v.CANT_TELL, v.PARTLY) and _held_at_short_tasks(rows):
        verdict = v.PARTLY  # held at the short tasks, where starting a process weighs most
        lead = "Held for short tasks, not at every task size (the verdict table, per size)"
    parts = []
    for end in ends:
        where = (f"Python {short_python(end['python'])}, {cpus_words(end['cpus'])}, "
                 f"{end['start_method']}")
        if math.isfinite(end["break_even_us"]):
            stop = (f"it stops paying (a process per task within 10%) from tasks of "
                    f"{duration(end['break_even_us'])}")
        else:
            stop = (f"still {times(end['ratio_at_largest'])} cheaper at the largest task "
                    f"({duration(end['largest_us'])}): no break-even measured")
        parts.append(f"{where}: {times(end['ratio_at_smallest'])} cheaper per "
                     f"{duration(end['smallest_us'])} task, {stop}")
    fresh = rows_of(summary, lesson="start_cost")
    first = ""
    if len(fresh):
        default = fresh[fresh["resolved_start_method"].isin(set(both["start_method"]))]
        default = default if len(default) else fresh
        ratio = (default["metric.pool_first_task_us"] / default["metric.start_join_us"]).dropna()
        if len(ratio):
            first = (f" But a fresh Pool(1)'s first result cost "
                     f"{per_python(default, 'metric.pool_first_task_us', duration)}, "
                     f"{times(float(ratio.min()))} to {times(float(ratio.max()))} one Process's "
                     f"start()+join() under the same method: a pool pays only when reused.")
    return (POOL_CLAIM, verdict,
            f"{lead} for a reused pool: per task, a reused pool "
            f"against a process per task — " + "; ".join(parts) + "." + first)


def _held_at_short_tasks(rows):
    """Whether every (Python, CPU count) decided at its smallest task size held it."""
    if rows is None or rows.empty:
        return False
    sizes = rows["figure"].str.extract(r"([0-9,]+) loops$")[0].str.replace(",", "")
    sizes = pd.to_numeric(sizes, errors="coerce")
    first = rows[sizes == sizes.groupby([rows["python"], rows["cpus"]]).transform("min")]
    decided = first[first["verdict"].isin([v.HELD, v.NOT_HELD, v.CANT_TELL])]
    return len(decided) > 0 and bool((decided["verdict"] == v.HELD).all())


def claim_reconstructions(summary, checks, table=None):
    rows = rows_of(summary, lesson="pool_vs_process",
                   item=["seed_one_process", "seed_two_processes", "seed_pool8"])
    if rows.empty:
        return None
    rows = at_most_cpus(rows)
    cpus = int(rows["cpus"].max())
    figures = {}
    for item in ("seed_one_process", "seed_two_processes", "seed_pool8"):
        group = rows[rows["item"] == item]
        if len(group):
            figures[item] = (per_python(group, "median_s", lambda v: f"{v:.3g} s"),
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
        verdict = v.decided(table_of(table, SEED_CLAIM),
                            v.HELD if per_task > SEED_THRESHOLD else v.NOT_HELD)
        tail = (f" The tutorial's {tutorial:.1f}x ({TUTORIAL['one_process_s']:g} s against "
                f"{TUTORIAL['two_processes_s']:g} s) compares 6 tasks with 2; per task the two "
                f"processes were {times(per_task)} as fast as one here.")
    else:
        verdict, tail = "fact", ""
    return (SEED_CLAIM, verdict, f"{v.lead(verdict)} at {cpus_words(cpus)}: {listed}.{tail}")


LESSON = Lesson("pool_vs_process", "runner", "per_task_us", METRIC_WORDS, CHECKS, observed,
                (claim_pool, claim_reconstructions), (verdicts,),
                also=("task_cpu_us", "tasks_per_second", "pool_start_us"))
