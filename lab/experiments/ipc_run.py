"""The ipc trial's orchestration: open the channel, start the ends (each in its place, a process,
a thread or an interpreter (lab.experiments.ipc_places), released together by a barrier; or, under timing=seed, the tutorial's parent as producer and
one reader), collect their reports, stop everything, and hand the reports to
lab.experiments.ipc_outcomes. Standard library only.
"""

import os
import queue
import threading
import time

from lab.experiments import TrialCheckFailed, stop_processes
from lab.experiments.ipc_channels import DUPLEX_KINDS
from lab.experiments.ipc_outcomes import (check_delivery, payload_check, pingpong_outcome,
                                          stream_metrics, stream_outcome)
from lab.experiments.ipc_params import OS_PIPE_BUFFER_BYTES

def _open_channels(cfg, context):
    """The trial's channel; ping-pong on a one-way kind gets a second one for the way back."""
    from lab.experiments.ipc_channels import Channel
    count = 2 if cfg["pattern"] == "pingpong" and cfg["channel"] not in DUPLEX_KINDS else 1
    return [Channel(cfg["variant"], context, cfg["queue_maxsize"], cfg["ring_bytes"],
                    OS_PIPE_BUFFER_BYTES) for _ in range(count)]


def _close_all(channels):
    for channel in channels:
        try:
            channel.close()
        except Exception:  # cleanup goes on; the trial's own outcome or error stands
            pass


def run_ends(cfg, context, pins):
    """Handshake timing: every end started in its place (a process, a thread or an
    interpreter: lab.experiments.ipc_places), released together by a barrier."""
    from lab.experiments import ipc_ends
    from lab.experiments.ipc_channels import pingpong_ends
    from lab.experiments.ipc_places import place_for
    P, C = cfg["producers"], cfg["consumers"]
    channels, handles = [], {}
    place = place_for(cfg["ends"], context, P + C)
    finished = False
    try:
        channels = _open_channels(cfg, context)
        if cfg["pattern"] == "pingpong":
            producer_end, consumer_end = pingpong_ends(channels)
        else:
            producer_end, consumer_end = channels[0].ends()
        cfg["helper_pid"] = channels[0].helper_pid
        cfg["pipe_buffer_bytes"] = channels[0].pipe_buffer_bytes
        if cfg["helper_pid"] is not None and cfg["placement"] == "same":
            os.sched_setaffinity(cfg["helper_pid"], {pins["producer0"]})
        cfg["deadline"] = time.monotonic() + cfg["timeout_s"]
        ends_counter = place.counter() if C > 1 else None
        if cfg["pattern"] == "pingpong":
            targets = [("producer0", ipc_ends.pinger, (producer_end,)),
                       ("consumer0", ipc_ends.ponger, (consumer_end,))]
        else:
            targets = [(f"producer{i}", ipc_ends.producer, (i, producer_end))
                       for i in range(P)]
            targets += [(f"consumer{j}", ipc_ends.consumer, (j, consumer_end))
                        for j in range(C)]
        for index, (role, body, args) in enumerate(targets):
            barrier = place.barrier(index)
            extra = (ends_counter,) if body is ipc_ends.consumer else ()
            handles[role] = place.start(role, (pins[role], barrier, body, cfg)
                                        + args + (barrier,) + extra)
        reports = _collect(handles, place.results, cfg["deadline"], cfg["timeout_s"])
        finished = True
    finally:
        place.stop(handles.values(), graceful=finished)
        place.close()
        _close_all(channels)
    if cfg["pattern"] == "pingpong":
        return pingpong_outcome(cfg, reports)
    return stream_outcome(cfg, reports)


def _collect(processes, results, deadline, timeout_s):
    """Wait for one report per process; a failure anywhere ends the wait (after a short grace
    for the reports it causes elsewhere) and is raised: TrialCheckFailed for a wrong answer."""
    reports, failures, dead_since = {}, [], {}
    grace_until = None
    while len(reports) + len(failures) < len(processes):
        now = time.monotonic()
        if any(f["check_failed"] for f in failures):
            break  # the root cause is known: a wrong answer
        if failures and grace_until is None:
            grace_until = now + 0.5  # a crash may be the echo of a failed check elsewhere
        if grace_until is not None and now > grace_until:
            break
        if now > deadline:
            waiting = sorted(set(processes) - set(reports))
            raise TimeoutError(f"ipc trial did not finish within timeout_s={timeout_s:g}: "
                               f"no report from {', '.join(waiting)}")
        try:
            report = results.get(timeout=0.1)
        except queue.Empty:
            heard = set(reports) | {f["role"] for f in failures}
            for role, process in processes.items():
                if role in heard or process.exitcode is None:
                    continue
                dead_since.setdefault(role, now)
                if now - dead_since[role] > 1.0:  # its report would have arrived by now
                    failures.append({"role": role, "check_failed": False, "secondary": False,
                                     "error": f"{role} exited with code {process.exitcode} "
                                              f"without a report"})
            continue
        if report.get("error"):
            failures.append(report)
        else:
            reports[report["role"]] = report
    if failures:
        _raise_failure(failures)
    return reports


def _raise_failure(failures):
    """The root cause: a failed check first, then an error that is not a broken barrier."""
    primary = (next((f for f in failures if f["check_failed"]), None)
               or next((f for f in failures if not f["secondary"]), failures[0]))
    if primary["check_failed"]:
        raise TrialCheckFailed(primary["error"])
    raise RuntimeError(primary["error"])


def run_seed(cfg, context, pins):
    """The tutorial's timing: the parent produces, the clock runs from right after the reader's
    start() until it is joined (JoinableQueue: until join() returns)."""
    from lab.experiments import ipc_ends
    channels = []
    reader = watchdog = port = None
    results = context.Queue()
    finished = context.RawValue("b", 0)
    stop_read, stop_write = os.pipe()
    affinity = os.sched_getaffinity(0)
    completed = False
    try:
        channels = _open_channels(cfg, context)
        producer_end, consumer_end = channels[0].ends()
        cfg["helper_pid"] = channels[0].helper_pid
        cfg["pipe_buffer_bytes"] = channels[0].pipe_buffer_bytes
        cfg["deadline"] = time.monotonic() + cfg["timeout_s"]
        port = producer_end.open(cfg)
        payloads = ipc_ends.Payloads(cfg, 0)
        send_all, _ = payloads.sender(ipc_ends.items_to_send(cfg, 0))
        send = port.send
        if pins["producer0"] is not None:
            os.sched_setaffinity(0, {pins["producer0"]})
        if cfg["helper_pid"] is not None and cfg["placement"] == "same":
            os.sched_setaffinity(cfg["helper_pid"], {pins["producer0"]})
        process = context.Process(target=ipc_ends.seed_reader_main, name="ipc-consumer0",
                                  args=(cfg, pins["consumer0"], consumer_end, results, finished),
                                  daemon=True)
        process.start()
        reader = process
        watchdog = threading.Thread(target=ipc_ends.seed_watchdog, daemon=True,
                                    args=(reader, consumer_end, cfg, finished, stop_read))
        watchdog.start()
        producer_affinity = sorted(os.sched_getaffinity(0))
        cpu_start = time.process_time()
        t0 = time.perf_counter()
        sent, frames = send_all(send)
        if port.join is not None:
            port.join()
        else:
            send(payloads.end)
            report = _seed_report(results, reader, cfg)
            reader.join(max(0.0, cfg["deadline"] - time.monotonic()))
        t1 = time.perf_counter()
        cpu = time.process_time() - cpu_start
        if port.join is not None:  # the reader still waits for its end marker
            send(payloads.end)
            report = _seed_report(results, reader, cfg)
        completed = True
    finally:
        os.write(stop_write, b"x")
        if watchdog is not None:
            watchdog.join(2.0)
        os.sched_setaffinity(0, affinity)
        stop_processes([reader] if reader is not None else [], graceful=completed)
        if port is not None:
            port.close()
        results.close()
        _close_all(channels)
        os.close(stop_read)
        os.close(stop_write)
    check_delivery(cfg, [sent], [frames], [report])
    seconds = t1 - t0
    check = payload_check(cfg, [report])
    check.update({"sent": sent, "sent_per_producer": [sent], "received": report["items"],
                  "frames": frames,
                  "seen_affinity": {"producer0": producer_affinity,
                                    "consumer0": report["affinity"]}})
    return {"seconds": seconds, "cpu_seconds": cpu + report["cpu_seconds"],
            "metrics": stream_metrics(cfg, seconds, frames, cpu + report["cpu_seconds"]),
            "check": check, "_t_start": t0}


def _seed_report(results, reader, cfg):
    return _collect({"consumer0": reader}, results, cfg["deadline"],
                    cfg["timeout_s"])["consumer0"]
