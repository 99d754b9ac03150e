"""The ipc trial's outcomes: the ends' reports -> delivery checks (what the producers counted as
sent against the point's shares and what the consumers received), the timed section, the metrics
and the `check` facts of the record. Standard library only.
"""

import math

from lab.experiments import TrialCheckFailed

def payload_check(cfg, consumer_reports):
    verified = sum(r["verified_items"] for r in consumer_reports)
    if cfg["codec"] == "int" and cfg["batch"] == 1:
        how = "every item's index compared in the loop (the int is the payload)"
    elif cfg["codec"] == "bytes":
        how = "every frame's index at both ends and its content compared in the loop"
    else:
        how = "every frame's index and content compared in the loop"
    return {"payload_check": how, "payloads_verified": verified}


def check_delivery(cfg, sent, frames_sent, consumers):
    """What the producers counted as sent must be their shares, and what the consumers received
    must be exactly that: per producer, and frame for frame."""
    from lab.experiments.ipc_ends import check_counts, check_sent, check_union
    check_sent(sent, cfg["shares"])
    if len(consumers) == 1:
        check_counts(consumers[0], sent, cfg["producers"])
    else:
        check_union([r["records"] for r in consumers], sent, cfg["producers"])
    received = sum(r["items"] for r in consumers)
    frames_received = sum(r["frames"] for r in consumers)
    if received != sum(sent) or frames_received != sum(frames_sent):
        raise TrialCheckFailed(f"sent {sum(sent)} items in {sum(frames_sent)} frames, received "
                               f"{received} in {frames_received}")


def stream_outcome(cfg, reports):
    P, C = cfg["producers"], cfg["consumers"]
    producers = [reports[f"producer{i}"] for i in range(P)]
    consumers = [reports[f"consumer{j}"] for j in range(C)]
    t_start = min(r["t0"] for r in producers)
    last = [r["t_end"] for r in consumers if r["t_end"] is not None]
    if len(last) != 1:
        raise TrialCheckFailed(f"{len(last)} consumers saw the last end of stream, expected one")
    t_end = last[0]
    if cfg["channel"] == "joinable_queue":
        t_end = max([t_end] + [r["t_join"] for r in producers])
    seconds = t_end - t_start
    if not seconds > 0:
        raise RuntimeError(f"timed section of {seconds} s: the clocks disagree")
    sent_per_producer = [r["items"] for r in producers]
    check_delivery(cfg, sent_per_producer, [r["frames"] for r in producers], consumers)
    sent = sum(sent_per_producer)
    received = sum(r["items"] for r in consumers)
    frames = sum(r["frames"] for r in producers)
    helper = producers[0].get("helper_cpu_seconds")
    cpu = sum(r["cpu_seconds"] for r in producers + consumers) + (helper or 0.0)
    check = payload_check(cfg, consumers)
    check.update({"sent": sent, "sent_per_producer": sent_per_producer, "received": received,
                  "frames": frames, "received_per_consumer": [r["items"] for r in consumers],
                  "helper_cpu_seconds": helper,
                  "seen_affinity": {role: r["affinity"] for role, r in reports.items()}})
    return {"seconds": seconds, "cpu_seconds": cpu,
            "metrics": stream_metrics(cfg, seconds, frames, cpu), "check": check,
            "_t_start": t_start}


def _metric(value, unit):
    return {"value": value, "unit": unit}


def stream_metrics(cfg, seconds, frames, cpu):
    n = cfg["messages"]
    metrics = {"messages_per_second": _metric(n / seconds, "1/s"),
               "sends_per_second": _metric(frames / seconds, "1/s"),
               "cpu_us_per_message": _metric(cpu / n * 1e6, "us")}
    if cfg["item_bytes"]:
        metrics["bytes_per_second"] = _metric(n * cfg["item_bytes"] / seconds, "B/s")
    return metrics


def pingpong_outcome(cfg, reports):
    pinger, ponger = reports["producer0"], reports["consumer0"]
    samples = sorted(pinger["samples_ns"])
    n = len(samples)
    if n != cfg["messages"]:
        raise TrialCheckFailed(f"{n} round trips timed, expected {cfg['messages']}")
    seconds = pinger["t_end"] - pinger["t0"]
    cpu = pinger["cpu_seconds"] + ponger["cpu_seconds"]
    middle = n // 2
    p50 = samples[middle] if n % 2 else (samples[middle - 1] + samples[middle]) / 2
    p99 = samples[max(0, math.ceil(0.99 * n) - 1)]  # nearest rank
    metrics = {"round_trips_per_second": _metric(n / seconds, "1/s"),
               "messages_per_second": _metric(2 * n / seconds, "1/s"),
               "p50_us": _metric(p50 / 1e3, "us"), "p99_us": _metric(p99 / 1e3, "us"),
               "mean_us": _metric(sum(samples) / n / 1e3, "us"),
               "min_us": _metric(samples[0] / 1e3, "us"),
               "max_us": _metric(samples[-1] / 1e3, "us"),
               "cpu_us_per_message": _metric(cpu / (2 * n) * 1e6, "us")}
    if cfg["item_bytes"]:
        metrics["bytes_per_second"] = _metric(2 * n * cfg["item_bytes"] / seconds, "B/s")
    check = payload_check(cfg, [pinger])
    check.update({"round_trips": n, "echoed": ponger["items"],
                  "seen_affinity": {role: r["affinity"] for role, r in reports.items()}})
    return {"seconds": seconds, "cpu_seconds": cpu, "metrics": metrics, "check": check,
            "_t_start": pinger["t0"]}


def smt_siblings(pins):
    """For split placement: whether producer0's and consumer0's CPUs are SMT siblings (None if
    not split or the topology is unreadable)."""
    a, b = pins.get("producer0"), pins.get("consumer0")
    if a is None or b is None or a == b:
        return None
    try:
        with open(f"/sys/devices/system/cpu/cpu{a}/topology/thread_siblings_list") as f:
            text = f.read().strip()
    except OSError:
        return None
    siblings = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        siblings.update(range(int(low), int(high or low) + 1))
    return b in siblings
