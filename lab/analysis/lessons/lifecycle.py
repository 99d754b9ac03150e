"""Lesson lifecycle: terminate(), daemon children on a normal and a killed parent's exit, a
Queue after a kill mid-put; their words, checks, observed and claims."""

from lab.analysis.lessons import judge as v
from lab.analysis.lessons.base import (Lesson, check_row, distinct, per_python, rows_of, span,
                                       table_of, values)
from lab.analysis.lessons.units import duration

HEADLINE = {"terminate": "terminate_join_us", "daemon": "daemon_dead_at_parent_exit",
            "daemon_parent_killed": "daemon_survived", "kill_mid_put": "items_intact"}
METRIC_WORDS = {"terminate_join_us": "terminate()+join()",
                "daemon_gone_ms": "daemon gone after its parent's exit",
                "daemon_dead_at_parent_exit": "daemon dead before its parent's exit",
                "daemon_survived": "daemon survived", "items_intact": "items intact"}
TERMINATE_CLAIM = "terminate() kills a process: exit code -15"
DAEMON_CLAIM = "A daemon process ends when the main process exits"
CHECKS = {
    "terminate": ("check", "terminate() ends a process with exit code -15"),
    "daemon": ("check", "a daemon child dies when its parent exits normally"),
    "daemon_parent_killed": ("fact", "does a daemon child outlive a parent killed by SIGKILL?"),
    "kill_mid_put": ("fact", "is a Queue still usable after a process was killed in the middle "
                             "of put()?"),
}


def observed(item, rows):
    def metric(name):
        return [float(v) for v in values(rows, f"metric.{name}")]

    if item == "terminate":
        return (f"exit code {distinct(values(rows, 'check.exit_code'))} for "
                f"{span(values(rows, 'check.terminated'))} processes per trial; "
                f"still alive right after terminate(): "
                f"{span(values(rows, 'check.alive_right_after_terminate'))}")
    if item == "daemon":
        first = metric("daemon_dead_at_parent_exit")
        if not first:  # a run from before the order was recorded
            return (f"gone in every trial, "
                    f"{span(metric('daemon_gone_ms'), lambda v: duration(v * 1e3))}"
                    f" after the parent's exit code was seen")
        return (f"gone in every trial; dead before its parent's exit in "
                f"{sum(1 for x in first if x)} of {len(first)} trials (the parent's exit "
                f"handler terminates and joins its daemon children before it exits)")
    if item == "daemon_parent_killed":
        survived = metric("daemon_survived")
        return (f"survived in {sum(1 for v in survived if v)} of {len(survived)} trials "
                f"(no exit handler runs in a SIGKILLed parent)")
    if item == "kill_mid_put":
        return (f"get() after the kill: {distinct(values(rows, 'check.get_after_kill'))}; "
                f"put()+get(): {distinct(values(rows, 'check.put_get_after_kill'))}; "
                f"items intact {span(metric('items_intact'))} of "
                f"{span(metric('items_put'))}")
    return "-"


def verdicts(trials, summary):
    """Per (Python, CPU count): terminate()'s and the daemon's (normal exit) checks."""
    out = []
    for python, cpus, rows in v.groups(rows_of(summary, every=True, lesson="lifecycle")):
        for claim, item in ((TERMINATE_CLAIM, "terminate"), (DAEMON_CLAIM, "daemon")):
            points = rows[rows["item"] == item]
            if len(points):
                out.append(v.check_verdict(claim, python, cpus, "trials that held it", trials,
                                           points))
    return out


def claim_terminate(summary, checks, table=None):
    row = check_row(checks, "lifecycle", "terminate")
    if row is None:
        return None
    verdict = v.decided(table_of(table, TERMINATE_CLAIM),
                        v.HELD if row["result"] == "PASS" else v.NOT_HELD)
    costs = rows_of(summary, lesson="lifecycle", item="terminate")
    return (TERMINATE_CLAIM, verdict,
            f"{v.lead(verdict)}: {row['observed']} ({row['trials']} trials); "
            f"terminate()+join() took {per_python(costs, 'metric.terminate_join_us', duration)}"
            f" (median per operation).")


def claim_daemon(summary, checks, table=None):
    normal = check_row(checks, "lifecycle", "daemon")
    killed = check_row(checks, "lifecycle", "daemon_parent_killed")
    if normal is None and killed is None:
        return None
    held_normal = v.decided(table_of(table, DAEMON_CLAIM),
                            v.HELD if normal is not None and normal["result"] == "PASS"
                            else v.NOT_HELD)
    survived = rows_of(summary, lesson="lifecycle", item="daemon_parent_killed")
    survives = bool(len(survived)) and float(survived["metric.daemon_survived"].max()) > 0
    text = []
    if normal is not None:
        text.append(f"on a normal exit the daemon child was {normal['observed']}")
    if killed is not None:
        text.append(f"when the parent was SIGKILLed the daemon child {killed['observed']}")
    verdict = v.PARTLY if held_normal == v.HELD and survives else held_normal
    words = "Held only on a normal exit" if verdict == v.PARTLY else v.lead(verdict)
    return (DAEMON_CLAIM, verdict, f"{words}: " + "; ".join(text) + ".")


LESSON = Lesson("lifecycle", "case", HEADLINE, METRIC_WORDS, CHECKS, observed,
                (claim_terminate, claim_daemon), (verdicts,))
