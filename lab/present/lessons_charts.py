"""The lessons family's charts (PNG and SVG through charts.save): start cost per method and
Python, the pool break-even curve, shared-state throughput with lost updates marked, cost per
synchronisation operation. Each takes the run's summary (lab.analysis.lessons.summary)."""

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter

from lab.analysis import lessons as results
from lab.present.charts import save

METHODS = ("fork", "forkserver", "spawn")


def _duration_axis(axis):
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: results.duration(v)))


def _rate_axis(axis):
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: results.rate(v, "")))


def _groups(rows):
    """(python, cpus) pairs of `rows`, in order, with a colour each (Python: hue, CPUs: shade)."""
    pythons = sorted(rows["python"].dropna().unique(),
                     key=lambda v: tuple(int(x) for x in str(v).split(".") if x.isdigit()))
    cpus = sorted(rows["cpus"].unique())
    maps = ("Blues", "Oranges", "Greens", "Purples", "Reds")
    out = []
    for i, python in enumerate(pythons):
        cmap = plt.get_cmap(maps[i % len(maps)])
        for j, count in enumerate(cpus):
            shade = 0.55 + 0.35 * (j / max(1, len(cpus) - 1))
            out.append((python, count, cmap(shade)))
    return out


def start_cost_chart(summary, out, subtitle=""):
    """Median start()+join() per start method and Python (log), each CPU count a bar; the
    constructor alone and the tutorial's 12.2 µs as lines; a fresh Pool(1)'s first result as a
    marker above each bar."""
    rows = results._rows(summary, lesson="start_cost")
    if rows.empty:
        return []
    methods = [m for m in METHODS if (rows["resolved_start_method"] == m).any()]
    methods += sorted(set(rows["resolved_start_method"].dropna()) - set(methods))
    beside = [(name, column) for name, column in (("a thread", "metric.thread_start_join_us"),
                                                  ("an interpreter",
                                                   "metric.interpreter_start_us"))
              if column in rows and rows[column].notna().any()]
    groups = _groups(rows)
    width = 0.8 / max(1, len(groups))
    figure, axes = plt.subplots(figsize=(max(7.5, 1.2 + 2.2 * (len(methods) + len(beside))),
                                         5.2))
    labels = []
    for g, (python, cpus, colour) in enumerate(groups):
        xs, heights, pools = [], [], []
        for m, method in enumerate(methods):
            row = rows[(rows["python"] == python) & (rows["cpus"] == cpus)
                       & (rows["resolved_start_method"] == method)]
            if row.empty:
                continue
            xs.append(m - 0.4 + width * (g + 0.5))
            heights.append(float(row["metric.start_join_us"].iloc[0]))
            pools.append(float(row["metric.pool_first_task_us"].iloc[0]))
        for k, (_, column) in enumerate(beside):  # a thread, an interpreter: no start method
            found = rows[(rows["python"] == python) & (rows["cpus"] == cpus)][column].dropna()
            if len(found):
                xs.append(len(methods) + k - 0.4 + width * (g + 0.5))
                heights.append(float(found.median()))
        if not xs:
            continue
        label = f"Python {results.short_python(python)}, {cpus} CPU{'s' if cpus > 1 else ''}"
        axes.bar(xs, heights, width * 0.92, color=colour, label=label, edgecolor="black",
                 linewidth=0.4)
        axes.scatter(xs[:len(pools)], pools, marker="v", color=colour, edgecolor="black", s=38,
                     zorder=3)
        labels += [(x, h, g) for x, h in zip(xs, heights)]
    constructor = float(rows["metric.constructor_us"].median())
    axes.axhline(constructor, color="C2", linestyle="-", linewidth=1.2,
                 label=f"Process() alone (median {results.duration(constructor)})")
    axes.axhline(results.TUTORIAL["constructor_us"], color="C3", linestyle="--", linewidth=1.2,
                 label="the tutorial's '12.2 µs to create a process'")
    axes.scatter([], [], marker="v", color="grey", edgecolor="black",
                 label="▼ fresh Pool(1) to its first result")
    axes.set_yscale("log")
    _duration_axis(axes.yaxis)
    axes.set_xticks(range(len(methods) + len(beside)), methods + [n for n, _ in beside])
    axes.set_xlabel("start method" + (" (beside them: a thread's start()+join(), an "
                                      "interpreter's create, call and close)" if beside else ""))
    what = "a process, a thread or an interpreter" if beside else "a process"
    axes.set_ylabel(f"start() + join() of {'one' if beside else 'one process'}, median (log)")
    axes.set_title(f"What starting {what} costs{subtitle}", fontsize=10)
    axes.grid(alpha=0.3, axis="y", which="both")
    low = min(constructor, results.TUTORIAL["constructor_us"]) / 2
    axes.set_ylim(low, axes.get_ylim()[1] * 3)
    for x, h, g in labels:  # low in the bar, clear of the lines and of the markers above
        axes.annotate(results.duration(h), (x, results.TUTORIAL["constructor_us"] * 2.5),
                      ha="center", va="bottom", fontsize=7, rotation=90,
                      color="white" if g % 2 else "black")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(figure, out, "lessons_start_cost")


def break_even_chart(summary, out, subtitle=""):
    """µs per task against the task's own CPU time (both log): the reused pool at each chunksize,
    a process per task, and the task's work shared by the workers (the floor). One panel per
    Python and CPU count."""
    pool = results._rows(summary, lesson="pool_vs_process", item="pool")
    per = results._rows(summary, lesson="pool_vs_process", item="process_per_task")
    rows = pool if len(pool) else per
    if rows.empty:
        return []
    _, ends = results.break_even(summary)
    panels = [(p, c) for p, c, _ in _groups(rows)]
    columns = len(sorted(rows["cpus"].unique()))
    lines = math.ceil(len(panels) / columns)
    figure, grid = plt.subplots(lines, columns, figsize=(5.2 * columns, 3.9 * lines),
                                squeeze=False, sharex=True, sharey=True)
    sizes = pool.groupby(["python", "cpus", "param.task_iterations"])["metric.task_cpu_us"] \
        .median() if len(pool) else None
    for index, (python, cpus) in enumerate(panels):
        axes = grid[index // columns][index % columns]

        def task_us(frame):
            if sizes is None:
                return frame["param.task_iterations"].to_numpy(float)
            return np.array([sizes.get((python, cpus, s), math.nan)
                             for s in frame["param.task_iterations"]])

        mine = pool[(pool["python"] == python) & (pool["cpus"] == cpus)]
        for k, (chunk, group) in enumerate(mine.groupby(mine["param.chunksize"].astype(str))):
            group = group.sort_values("param.task_iterations")
            axes.plot(task_us(group), group["metric.per_task_us"], marker="o", color=f"C{k}",
                      label=f"reused pool, chunksize {chunk}")
        other = per[(per["python"] == python) & (per["cpus"] == cpus)].sort_values(
            "param.task_iterations")
        if len(other):
            axes.plot(task_us(other), other["metric.per_task_us"], marker="s", color="C3",
                      linestyle="--", label="a Process per task")
        if len(mine):
            xs = np.sort(task_us(mine))
            xs = xs[np.isfinite(xs)]
            if len(xs):
                axes.plot(xs, xs / cpus, color="grey", linestyle=":",
                          label="the work alone / workers")
        for end in ends:
            if end["python"] == python and end["cpus"] == cpus and math.isfinite(
                    end["break_even_us"]):
                axes.axvline(end["break_even_us"], color="C3", alpha=0.4, linewidth=4,
                             label="a pool saves < 10% from here")
        method = (mine if len(mine) else other)["resolved_start_method"].dropna()
        axes.set_title(f"Python {results.short_python(python)}, {cpus} CPU"
                       f"{'s' if cpus > 1 else ''}, "
                       f"{method.iloc[0] if len(method) else '?'}", fontsize=9)
        axes.set_xscale("log")
        axes.set_yscale("log")
        _duration_axis(axes.xaxis)
        _duration_axis(axes.yaxis)
        axes.grid(alpha=0.3, which="both")
        if index % columns == 0:
            axes.set_ylabel("wall time per task (log)")
        if index // columns == lines - 1:
            axes.set_xlabel("one task's own CPU time (log)")
    for index in range(len(panels), lines * columns):
        grid[index // columns][index % columns].axis("off")
    handles = {}
    for axes in grid.flat:
        for handle, label in zip(*axes.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    figure.suptitle(f"When a pool pays: per task, reused pool against a process per task"
                    f"{subtitle}", fontsize=10)
    figure.tight_layout(rect=(0, 0.1 / lines, 1, 1))
    figure.legend(list(handles.values()), list(handles), fontsize=8, loc="lower center",
                  ncol=min(3, len(handles)), bbox_to_anchor=(0.5, 0.0))
    return save(figure, out, "lessons_pool_break_even")


def _hbars(rows, items, column, axes, show, mark=None):
    """Horizontal bars of `column` per item (rows), one per (python, cpus) group."""
    groups = _groups(rows)
    height = 0.8 / max(1, len(groups))
    for g, (python, cpus, colour) in enumerate(groups):
        ys, values, marks = [], [], []
        for i, item in enumerate(items):
            row = rows[(rows["python"] == python) & (rows["cpus"] == cpus)
                       & (rows["item"] == item)]
            if row.empty or not np.isfinite(float(row[column].iloc[0])):
                continue
            ys.append(i - 0.4 + height * (g + 0.5))
            values.append(float(row[column].iloc[0]))
            marks.append(mark(row.iloc[0]) if mark else None)
        if not ys:
            continue
        label = f"Python {results.short_python(python)}, {cpus} CPU{'s' if cpus > 1 else ''}"
        bars = axes.barh(ys, values, height * 0.92, color=colour, label=label,
                         edgecolor="black", linewidth=0.4)
        for bar, value, note in zip(bars, values, marks):
            text = show(value) + (f"  {note}" if note else "")
            if note:
                bar.set_hatch("//")
                bar.set_edgecolor("C3")
            axes.annotate(text, (value, bar.get_y() + bar.get_height() / 2),
                          textcoords="offset points", xytext=(3, 0), va="center", fontsize=7,
                          color="C3" if note else "black")
    axes.set_yticks(range(len(items)), items)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.grid(alpha=0.3, axis="x", which="both")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def shared_state_chart(summary, out, subtitle=""):
    """Increments per second per way of sharing state (log); a Value without its lock hatched,
    with the share of updates it lost."""
    rows = results._rows(summary, lesson="shared_state")
    if rows.empty:
        return []
    items = [i for i in ("shared_memory", "value_locked", "array_locked", "value_unlocked",
                         "queue", "pipe", "manager_dict") if (rows["item"] == i).any()]
    figure, axes = plt.subplots(figsize=(10, 1.4 + 0.35 * len(items) * len(_groups(rows))))

    def lost(row):
        fraction = row.get("lost_fraction")
        if row["item"] != "value_unlocked" or fraction is None or not math.isfinite(fraction):
            return None
        return f"lost {fraction:.0%} of its updates"
    _hbars(rows, items, "metric.increments_per_second", axes, lambda v: results.rate(v), lost)
    _rate_axis(axes.xaxis)
    axes.set_xlim(right=axes.get_xlim()[1] * 8)  # room for the labels
    axes.set_xlabel("increments per second, all workers together (log; higher is faster)")
    axes.set_title(f"Sharing a counter between processes (hatched: no lock, updates lost)"
                   f"{subtitle}", fontsize=10)
    return save(figure, out, "lessons_shared_state")


def sync_chart(summary, out, subtitle=""):
    """Wall time per operation of each primitive across processes (log)."""
    rows = results._rows(summary, lesson="sync")
    if rows.empty:
        return []
    items = [i for i in ("lock", "semaphore_one", "rlock", "semaphore", "condition", "event",
                         "barrier") if (rows["item"] == i).any()]
    figure, axes = plt.subplots(figsize=(10, 1.4 + 0.35 * len(items) * len(_groups(rows))))
    _hbars(rows, items, "metric.op_us", axes, results.duration)
    _duration_axis(axes.xaxis)
    axes.set_xlim(right=axes.get_xlim()[1] * 4)
    axes.set_xlabel("wall time per operation (log; lock/rlock/semaphore: acquire+release; "
                    "condition: one item; event, barrier: one round;\nevent's round holds "
                    "two Barrier waits: an illustration, compared with nothing and no claim's "
                    "figure)")
    axes.set_title(f"What a synchronisation operation costs across processes{subtitle}",
                   fontsize=10)
    return save(figure, out, "lessons_sync")


def threads_chart(summary, out, subtitle=""):
    """Loops per second of the tutorial's task: serial, threads, processes (the GIL)."""
    rows = results._rows(summary, lesson="threads_vs_processes")
    if rows.empty:
        return []
    items = [i for i in ("serial", "threads", "processes", "interpreters")
             if (rows["item"] == i).any()]
    figure, axes = plt.subplots(figsize=(10, 1.4 + 0.35 * len(items) * len(_groups(rows))))
    _hbars(rows, items, "metric.iterations_per_second", axes, lambda v: results.rate(v))
    _rate_axis(axes.xaxis)
    axes.set_xscale("linear")
    axes.set_xlim(0, axes.get_xlim()[1] * 1.25)
    axes.set_xlabel("loops of the tutorial's task per second, all workers together")
    against = "processes and interpreters" if "interpreters" in items else "processes"
    axes.set_title(f"Threads against {against} on the CPU-bound task{subtitle}", fontsize=10)
    return save(figure, out, "lessons_threads")


CHARTS = (start_cost_chart, break_even_chart, shared_state_chart, sync_chart, threads_chart)
