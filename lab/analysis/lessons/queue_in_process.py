"""Lesson queue_in_process: queue.Queue against multiprocessing.Queue inside one process; its
words, check, observed and fact."""

from lab.analysis.lessons import judge as v
from lab.analysis.lessons.base import Lesson, per_python, rows_of, span, values
from lab.analysis.lessons.units import duration, times

METRIC_WORDS = {"put_get_us": "put+get", "items_per_second": "items/s"}
CLAIM = "Within one process, queue.Queue and multiprocessing.Queue"
CHECKS = {None: ("check", "every item came back once, in order")}


def observed(item, rows):
    return (f"{span(values(rows, 'check.messages'), lambda v: f'{v:,.0f}')} items in "
            f"order, checksum exact")


def verdicts(trials, summary):
    """Per (Python, CPU count): multiprocessing.Queue's put+get over queue.Queue's, a fact
    with its interval."""
    out = []
    for python, cpus, rows in v.groups(
            rows_of(summary, every=True, lesson="queue_in_process")):
        thread, process = rows[rows["item"] == "thread_queue"], rows[rows["item"] ==
                                                                      "process_queue"]
        if len(thread) and len(process):
            found = v.gated_ratio(CLAIM, python, cpus,
                                  "put+get, multiprocessing.Queue / queue.Queue", trials,
                                  process, thread, "put_get_us", 1.0)
            if found["verdict"] != v.NO_VERDICT:
                found["verdict"] = v.FACT
            out.append(found)
    return out


def claim_queue_in_process(summary, checks, table=None):
    rows = rows_of(summary, lesson="queue_in_process")
    thread = rows[rows["item"] == "thread_queue"]
    process = rows[rows["item"] == "process_queue"]
    if thread.empty or process.empty:
        return None
    ratio = float(process["metric.put_get_us"].median()) / float(
        thread["metric.put_get_us"].median())
    return (CLAIM, "fact",
            f"A put()+get() cost {per_python(thread, 'metric.put_get_us', duration)} with "
            f"queue.Queue and {per_python(process, 'metric.put_get_us', duration)} with "
            f"multiprocessing.Queue ({times(ratio)}): a process queue pickles every item and "
            f"sends it through a pipe by a feeder thread.")


LESSON = Lesson("queue_in_process", "queue_kind", "put_get_us", METRIC_WORDS, CHECKS, observed,
                (claim_queue_in_process,), (verdicts,),
                also=("items_per_second",))
