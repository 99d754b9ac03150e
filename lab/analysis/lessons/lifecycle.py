"""Lesson lifecycle: terminate(), daemon children on a normal and a killed parent's exit, a
Queue after a kill mid-put; their words, checks, observed and claims."""

from lab.analysis.lessons.base import (Lesson, check_row, distinct, per_python, rows_of, span,
                                       values)
from lab.analysis.lessons.units import duration

HEADLINE = {"terminate": "terminate_join_us", "daemon": "daemon_gone_ms",
            "daemon_parent_killed": "daemon_survived", "kill_mid_put": "items_intact"}
METRIC_WORDS = {"terminate_join_us": "terminate()+join()",
                "daemon_gone_ms": "daemon gone after its parent's exit",
                "daemon_survived": "daemon survived", "items_intact": "items intact"}
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
        return (f"gone in every trial, "
                f"{span(metric('daemon_gone_ms'), lambda v: duration(v * 1e3))}"
                f" after the parent's exit code")
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


def claim_terminate(summary, checks):
    row = check_row(checks, "lifecycle", "terminate")
    if row is None:
        return None
    held = row["result"] == "PASS"
    costs = rows_of(summary, lesson="lifecycle", item="terminate")
    return ("terminate() kills a process: exit code -15",
            "held" if held else "not held",
            f"{'Held' if held else 'Not held'}: {row['observed']} ({row['trials']} trials); "
            f"terminate()+join() took {per_python(costs, 'metric.terminate_join_us', duration)}"
            f" (median per operation).")


def claim_daemon(summary, checks):
    normal = check_row(checks, "lifecycle", "daemon")
    killed = check_row(checks, "lifecycle", "daemon_parent_killed")
    if normal is None and killed is None:
        return None
    held_normal = normal is not None and normal["result"] == "PASS"
    survived = rows_of(summary, lesson="lifecycle", item="daemon_parent_killed")
    survives = bool(len(survived)) and float(survived["metric.daemon_survived"].max()) > 0
    text = []
    if normal is not None:
        text.append(f"on a normal exit the daemon child was {normal['observed']}")
    if killed is not None:
        text.append(f"when the parent was SIGKILLed the daemon child {killed['observed']}")
    verdict = ("partly" if held_normal and survives else "held" if held_normal
               else "not held")
    words = {"partly": "Held only on a normal exit", "held": "Held",
             "not held": "Not held"}[verdict]
    return ("A daemon process ends when the main process exits", verdict,
            f"{words}: " + "; ".join(text) + ".")


LESSON = Lesson("lifecycle", "case", HEADLINE, METRIC_WORDS, CHECKS, observed,
                (claim_terminate, claim_daemon))
