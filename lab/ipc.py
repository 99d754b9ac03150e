"""`invoke ipc`: Pipe vs Queue vs JoinableQueue, and the channels beyond them, per CPU count.

Flags become a validated plan here (every point checked by the experiment's own `validate`, so a
point over the trial budget is refused before any container starts); lab.runs runs it;
lab.report draws it. Combinations a channel does not offer (2:2 ends on a Pipe, ping-pong with
batches) are left out of the plan and listed; a request that leaves nothing to run is refused.
"""

import random
import re

from lab import options, plan as plans, runner, runs, topology
from lab.experiments import SpecError
from lab.experiments import ipc as experiment
from lab.options import BadInput

TASK = "ipc"
END_PLACEMENTS = experiment.PLACEMENTS
OVERHEAD_SECONDS = {"docker": 0.5, "local": 0.15}
DISPLAY = {  # the channel as the tutorial (or the docs) would write it
    "pipe": "Pipe()", "queue": "Queue()", "joinable_queue": "JoinableQueue()",
    "pipe_oneway": "Pipe(duplex=False)", "simple_queue": "SimpleQueue()",
    "pipe_bytes": "Pipe().send_bytes()", "manager_queue": "Manager().Queue()",
    "unix_socket": "socketpair(AF_UNIX)", "shm_ring": "shared-memory ring",
    "os_pipe": "os.pipe() (reference)",
}
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20}


def parse_size(flag, item):
    """'0', '65536', '64KiB', '1M' -> bytes; negative or malformed sizes are refused."""
    match = re.fullmatch(r"(\d+)\s*([a-zA-Z]*)", item.strip())
    if not match or match.group(2).lower() not in _UNITS:
        raise BadInput(f"{flag} {item!r}: not a size; allowed: bytes from 0 to 1MiB, e.g. 0,64KiB")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_ends(text):
    """'1:1,2:2,4:1' -> [(1, 1), (2, 2), (4, 1)]: producers:consumers."""
    ends = []
    for item in options.list_items("--ends", text):
        match = re.fullmatch(r"(\d+):(\d+)", item)
        if not match or min(int(match.group(1)), int(match.group(2))) < 1:
            raise BadInput(f"--ends {item!r}: not allowed; allowed: producers:consumers such as "
                           f"1:1,2:2,4:1 (each at least 1)")
        ends.append((int(match.group(1)), int(match.group(2))))
    return list(dict.fromkeys(ends))


def validate(opts, host_cpus):
    channels = opts["channels"]
    allowed = experiment.VARIANTS  # the test doubles too: tests run them on purpose
    parsed = {
        "cpus": options.cpu_counts(opts["cpus"], host_cpus),
        "channels": list(experiment.CHANNELS) if channels == "all"
        else options.choices("--channels", channels, allowed),
        "messages": options.positive_ints("--messages", opts["messages"]),
        "round_trips": options.positive_int("--round-trips", opts["round_trips"]),
        "sizes": sorted({parse_size("--sizes", s) for s in options.list_items("--sizes", opts["sizes"])}),
        "batches": options.positive_ints("--batches", opts["batches"]),
        "ends": parse_ends(opts["ends"]),
        "end_placements": options.choices("--end-placement", opts["end_placement"], END_PLACEMENTS),
        "patterns": options.choices("--patterns", opts["patterns"], experiment.PATTERNS),
        "timings": options.choices("--timing", opts["timing"], experiment.TIMINGS),
        "bytes_per_trial": parse_size("--bytes-per-trial", str(opts["bytes_per_trial"]))
        if str(opts["bytes_per_trial"]).strip() not in ("", "none") else None,
        "repeat": options.positive_int("--repeat", opts["repeat"]),
        "placement": options.choice("--placement", opts["placement"], topology.PLACEMENTS),
        "start_method": options.choice("--start-method", opts["start_method"],
                                       options.START_METHODS),
        "backend": options.choice("--backend", opts["backend"], options.BACKENDS),
        "base_images": options.image_names("--base-image", opts["base_image"]),
        "image": options.image_names("--image", opts["image"])[0] if opts.get("image") else None,
    }
    for size in parsed["sizes"]:
        if size > experiment.MAX_ITEM_BYTES:
            raise BadInput(f"--sizes {size}: over 1 MiB; allowed: bytes from 0 to 1MiB")
    seed = opts.get("seed")
    parsed["seed"] = (options.positive_int("--seed", seed, "a whole number")
                      if seed not in (None, "", "random") else random.randrange(1, 2**31))
    return parsed


def _combinations(parsed):
    """Every (pattern, timing, params) the flags ask for, before the channel decides."""
    for pattern in parsed["patterns"]:
        if pattern == "pingpong":  # round-trip latency of small messages, one pinger, one ponger
            for timing in parsed["timings"]:
                yield pattern, {"messages": parsed["round_trips"], "size_bytes": 0, "batch": 1,
                                "producers": 1, "consumers": 1, "pattern": pattern,
                                "timing": timing}
            continue
        for messages in parsed["messages"]:
            for size in parsed["sizes"]:
                count = messages
                if size and parsed["bytes_per_trial"]:  # big messages: a byte budget, not a count
                    count = max(1, min(messages, parsed["bytes_per_trial"] // size))
                for batch in parsed["batches"]:
                    for producers, consumers in parsed["ends"]:
                        for timing in parsed["timings"]:
                            yield pattern, {"messages": count, "size_bytes": size,
                                            "batch": batch, "producers": producers,
                                            "consumers": consumers, "pattern": pattern,
                                            "timing": timing}


def build_points(parsed, cpus, images):
    """(points, skipped): every valid point; skipped lists why the others were left out.
    A point over the trial budget is refused (BadInput), never skipped."""
    points, skipped = [], {}
    for image in images:
        for count in parsed["cpus"]:
            cpuset = topology.cpuset_for(count, cpus, parsed["placement"])
            for end_placement in parsed["end_placements"]:
                if count == 1 and end_placement == "split":
                    skipped["split placement needs 2 CPUs (left out at 1 CPU)"] = 1
                    continue
                if count == 1 and end_placement == "free" and "same" in parsed["end_placements"]:
                    continue  # on one CPU, free is same
                for channel in parsed["channels"]:
                    for _, params in _combinations(parsed):
                        params = {**params, "placement": end_placement}
                        try:
                            experiment.validate(channel, params, count, parsed["start_method"])
                        except experiment.BudgetExceeded as over:
                            raise BadInput(f"{over}; the point is refused before anything runs")
                        except SpecError as why:
                            skipped[str(why)] = skipped.get(str(why), 0) + 1
                            continue
                        point = plans.make_point(
                            experiment="ipc", variant=channel, limit="cpuset", cpus=count,
                            cpuset=cpuset, quota=None, placement=parsed["placement"],
                            workers=params["producers"] + params["consumers"],
                            start_method=parsed["start_method"], params=params, image=image)
                        if point not in points:
                            points.append(point)
    if not points:
        reasons = "; ".join(skipped) or "no combination"
        raise BadInput(f"nothing to run: {reasons}")
    return points, skipped


def estimator(backend_name):
    def estimate(point):
        guess = experiment.estimate(point.params_dict, point.variant, point.start_method)
        return guess["seconds_estimate"] + OVERHEAD_SECONDS[backend_name]
    return estimate


def run(opts, config, say=print):
    """The whole task; returns the process exit code."""
    from lab.runfolder import check_writable
    if opts.get("resume") is not None:
        return runs.resume_task(TASK, opts, config, lambda previous: estimator(
            previous.meta.get("backend", {}).get("backend", "docker")),
            build=_build_report, plan_of_flags=None, say=say)
    if opts.get("plan"):
        return runs.rerun_task(TASK, opts, config, estimator, build=_build_report, say=say)
    host_cpus = topology.read_cpus()
    parsed = validate(opts, len(host_cpus))
    check_writable(config["results_dir"])
    names = [parsed["image"]] if parsed["image"] else parsed["base_images"]
    points, skipped = build_points(parsed, host_cpus, names)  # refuses over-budget points now
    prepared = runs.prepare_backend(parsed["backend"], config, say)
    name = prepared.backend.name
    if opts.get("dry_run"):
        images = names if name == "docker" else ["local"]
        plan = plans.Plan(build_points(parsed, host_cpus, images)[0], parsed["repeat"],
                          parsed["seed"])
        _say_skipped(skipped, say)
        runs.dry_run(plan, estimator(name), say)
        return 0
    images = runs.ready_images(prepared.backend, parsed["base_images"], parsed["image"], say)
    plan = plans.Plan(build_points(parsed, host_cpus, images)[0], parsed["repeat"], parsed["seed"])
    _say_skipped(skipped, say)
    folder, status = runs.perform(TASK, plan, prepared, config, estimator(name),
                                  extra_meta={"options": parsed,
                                              "skipped_combinations": skipped}, say=say)
    failed = runs.build_report(_build_report, folder, say)
    return runner.exit_code(status, failed or 0)


def _build_report(folder, say=print):
    from lab import report  # pandas and matplotlib load only once there is something to draw
    return report.build(folder, say=say)


def _say_skipped(skipped, say):
    for reason, count in skipped.items():
        say(f"left out ({count}): {reason}")
