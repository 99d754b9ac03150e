"""The report's section "processes, threads or interpreters": the scale family's executors side
by side per Python and CPU count (lab.analysis.executors), one sentence per Python on what to
use for CPU-bound work on this machine, what a run skipped, and the published figures held
against them."""

from lab.analysis import executors
from lab.present.report import Section
from lab.present.tables import Table, fmt, interval

# Published figures the section holds the lab's against (cited where shown)
PUBLISHED = [
    "loremipsumpy/python-3.14-free-threading-benchmark (GitHub), Python 3.14, 4 workers, "
    "CPU-bound: sequential 909 ms, threads 1034 ms, subinterpreters 285 ms, i.e. threads "
    "0.88x and subinterpreters 3.2x the sequential run (threads slower than sequential there, "
    "as under a GIL).",
    "The Python free-threading HOWTO (docs.python.org, Python support for free threading): a "
    "free-threaded 3.14 costs single-threaded code about 5-10%, so a `3.14t` serial run here "
    "should be that much slower than a `3.14` one on the same machine.",
]
QUEUE_COST = ("What a message costs between two threads, two interpreters or two processes: "
              "`invoke ipc --channels thread_queue,queue,interpreter_queue` on the same base "
              "(its report gives each channel's cost per message).")


def _python(value):
    return str(value) + (" (free-threaded)" if str(value).endswith("t") else "")


def _gil(row):
    gil = row["gil_enabled"]
    return "-" if gil is None else "mixed" if gil == "mixed" else ("on" if gil else "off")


def executors_display(rows):
    several_hosts = rows["host"].nunique() > 1
    headers = (["host"] if several_hosts else []) + [
        "python", "CPUs", "executor", "n", "speedup [95%]", "vs serial [95%]", "start s",
        "task µs", "GIL"]
    body = []
    for _, row in rows.iterrows():
        speedup = fmt(row["speedup"], "{:.2f}")
        if speedup != "-":
            speedup += " " + interval(row["speedup_low"], row["speedup_high"], "{:.2f}")
        versus = fmt(row["vs_serial"], "{:.2f}")
        if versus != "-":
            versus += " " + interval(row["vs_serial_low"], row["vs_serial_high"], "{:.2f}")
        body.append(([row["host"]] if several_hosts else []) + [
            _python(row["python"]), str(row["cpus"]), row["executor"], str(row["n"]), speedup,
            versus, fmt(row["start_s"], "{:.4f}"), fmt(row["round_trip_us"], "{:.0f}"), _gil(row)])
    return Table(headers, body, ("l" if several_hosts else "") + "lrlrrrrrl")


def skipped_sentences(meta):
    """What the run left out because a base's Python predates InterpreterPoolExecutor."""
    skipped = (meta or {}).get("interpreters_skipped") or {}
    return [f"interpreters skipped on {image} (Python {python}): InterpreterPoolExecutor needs "
            f"Python 3.14 or later" for image, python in skipped.items()]


def executors_section(scaling, summary, meta, say=print):
    """The section, or None when the run measured no thread or interpreter pool (nor skipped
    one)."""
    asked = set(summary["variant"]) & {"threads", "interpreters"} if not summary.empty else set()
    skipped = skipped_sentences(meta)
    if not asked and not skipped:
        return None
    rows = executors.executor_rows(scaling, summary)
    verdicts = executors.verdicts(rows)
    section = Section("processes, threads or interpreters", "executors")
    if not rows.empty:
        table = executors_display(rows)
        say("\nProcesses, threads or interpreters:\n" + table.text())
        section.add("table", table,
                    "Per Python and CPU count (workers = CPUs): speedup T(1 CPU) / T(c) on each "
                    "executor's own 1-CPU run; vs serial = T(serial run) / T(c), the figure the "
                    "executors are compared on; start s = median seconds from a pool's constructor "
                    "until every worker had started and taken its warm-up task (Processes: "
                    "from the first start() to the first work, their warm-up included); task µs = "
                    "median round trip of one empty task through the warm pool, sent after the "
                    "timed section and waited for (what handing a worker a task and getting its "
                    "result back costs: pickling and a pipe for processes, a queue for "
                    "threads, pickling across interpreters); GIL = whether the workers' "
                    "interpreter had its GIL on (sys._is_gil_enabled(); "
                    "each interpreter has its own, so interpreters run in parallel with theirs "
                    "on)")
    if verdicts:
        say("\nWhat to use for CPU-bound work on this machine:\n"
            + "\n".join(f"- {s}" for s in verdicts))
        section.add("notes", verdicts, "What to use for CPU-bound work on this machine:")
    if skipped:
        say("\n" + "\n".join(skipped))
        section.add("notes", skipped, "Not run:")
    section.add("notes", PUBLISHED + [QUEUE_COST], "Published figures to hold these against, "
                "and where the talking costs are:")
    return section
