"""`invoke ipc`, host side: Pipe vs Queue vs JoinableQueue, and the channels beyond them.

Flags -> IpcOptions -> points (every point checked by the trial's own rules and the host's budget,
lab.families.ipc_budget, so a point over the budget is refused before any container starts).
Combinations a channel does not offer (2:2 ends on a Pipe, ping-pong with batches) are left out
of the plan and listed; a request that leaves nothing to run is refused. The analysis is
lab.analysis.ipc, the report section lab.present.ipc_report.
"""

import functools
import math
import re
from dataclasses import dataclass

from lab.experiments import SpecError, offered
from lab.experiments import ipc as trial
from lab.experiments.ipc_catalog import facts, python_refusal
from lab.families import Family, FamilyOptions, ipc_budget
from lab.hosts import topology
from lab.run import options as parse
from lab.run.options import BadInput
from lab.run.plan import make_point

END_PLACEMENTS = trial.PLACEMENTS
SIZING_MARGIN = 1.5  # auto counts aim at 1.5 x --min-seconds, so noise rarely takes one under
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gib": 1 << 30}


def parse_size(flag, item, allowed="bytes from 0 to 1MiB, e.g. 0,64KiB"):
    """'0', '65536', '64KiB', '1M', '4GiB' -> bytes; negative or malformed sizes are refused."""
    match = re.fullmatch(r"(\d+)\s*([a-zA-Z]*)", item.strip())
    if not match or match.group(2).lower() not in _UNITS:
        raise BadInput(f"{flag} {item!r}: not a size; allowed: {allowed}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_ends(text):
    """'1:1,2:2,4:1' -> [(1, 1), (2, 2), (4, 1)]: producers:consumers."""
    ends = []
    for item in parse.list_items("--ends", text):
        match = re.fullmatch(r"(\d+):(\d+)", item)
        if not match or min(int(match.group(1)), int(match.group(2))) < 1:
            raise BadInput(f"--ends {item!r}: not allowed; allowed: producers:consumers such as "
                           f"1:1,2:2,4:1 (each at least 1)")
        ends.append((int(match.group(1)), int(match.group(2))))
    return list(dict.fromkeys(ends))


def message_counts(text):
    """--messages: 'auto' (sized per point to --min-seconds) and/or whole numbers, e.g.
    'auto,2000' measures a sized count beside a given one in one run."""
    counts = [item if item == "auto" else whole_count("--messages", item, "whole numbers")
              for item in parse.list_items("--messages", text)]
    return list(dict.fromkeys(counts))


def whole_count(flag, item, what):
    """A count a trial can hold: 1 to the trial's MAX_MESSAGES (past it, every point would be
    left out and the flag silently ignored)."""
    allowed = f"{what} from 1 to {trial.MAX_MESSAGES:,}, or auto"
    count = parse.positive_int(flag, item, allowed)
    if count > trial.MAX_MESSAGES:
        raise BadInput(f"{flag} {item!r}: not allowed; allowed: {allowed}")
    return count


@dataclass
class IpcOptions(FamilyOptions):
    channels: list
    messages: list          # whole numbers, or ["auto"]: sized to min_seconds per point
    round_trips: object     # a whole number, or "auto"
    sizes: list
    batches: list
    ends: list              # (producers, consumers)
    end_placements: list
    patterns: list
    timings: list
    bytes_per_trial: int | None
    channels_named: bool = True  # False for `all`: a channel this Python lacks is a note




OWN_FLAGS = ("channels", "messages", "round_trips", "sizes", "batches", "ends", "end_placement",
             "patterns", "timing", "bytes_per_trial")


class IpcFamily(Family):
    name = "ipc"
    experiment = "ipc"
    title = "Inter-process channels"
    anchor = "ipc"
    flags = {
        "channels": "all, or some of: " + ", ".join(trial.CHANNELS),
        "messages": "items per stream trial: auto (each point sized from its warm-up so its timed "
                    "section lasts --min-seconds) or counts, e.g. the tutorial's 10000,100000,1000000",
        "round_trips": "ping-pong round trips per latency trial: auto (sized like --messages) or a "
                       "count",
        "sizes": "payload sizes, e.g. 0,1KiB,64KiB,1MiB (0 = a small int)",
        "batches": "items per send, e.g. 1,10,100,1000",
        "ends": "producers:consumers, e.g. 1:1,2:2,4:1 (several ends: queue channels only)",
        "end_placement": "where the two ends run: free, same (one CPU), split (own CPUs)",
        "patterns": "stream (throughput) and/or pingpong (round-trip latency)",
        "timing": "handshake (both ends ready before the clock) and/or seed (the tutorial's)",
        "bytes_per_trial": "for big messages, count = min(messages, this / size), e.g. 4GiB "
                           "(a count sized by --messages auto too)",
    }
    plan_flags = OWN_FLAGS
    compare_ignores = ("param.bytes_per_trial",)  # a cap on sized counts, met as `auto`
    lengthen_flag = "--messages (or --round-trips)"
    size_param = ("messages", "--messages", "a count")

    def parse(self, flags, defaults, shared):
        v = parse.chosen(flags, defaults, OWN_FLAGS)
        channels = (list(trial.CHANNELS) if str(v["channels"]).strip() == "all"
                    else parse.choices("--channels", v["channels"], self.channels_allowed()))
        sizes = sorted({parse_size("--sizes", s) for s in parse.list_items("--sizes", v["sizes"])})
        for size in sizes:
            if size > trial.MAX_ITEM_BYTES:
                raise BadInput(f"--sizes {size}: over 1 MiB; allowed: bytes from 0 to 1MiB")
        budget = str(v["bytes_per_trial"]).strip()
        return IpcOptions(
            shared=shared, channels=channels,
            channels_named=str(v["channels"]).strip() != "all",
            messages=message_counts(v["messages"]),
            round_trips=("auto" if str(v["round_trips"]).strip() == "auto"
                         else whole_count("--round-trips", v["round_trips"], "a whole number")),
            sizes=sizes,
            batches=parse.positive_ints("--batches", v["batches"]),
            ends=parse_ends(v["ends"]),
            end_placements=parse.choices("--end-placement", v["end_placement"], END_PLACEMENTS),
            patterns=parse.choices("--patterns", v["patterns"], trial.PATTERNS),
            timings=parse.choices("--timing", v["timing"], trial.TIMINGS),
            bytes_per_trial=(parse_size("--bytes-per-trial", budget,
                                        "bytes with an optional unit, e.g. 256MiB or 4GiB")
                             if budget not in ("", "none", "None") else None))

    @staticmethod
    def channels_allowed():
        """The channels a user may name. The trial's test doubles (channels broken on purpose)
        are for the tests alone: never listed, accepted only under LAB_TEST_DOUBLES=1."""
        return offered(trial.CHANNELS, trial.TEST_DOUBLES)

    def prepare(self, options, backend, cpus, images, say, dry_run=False):
        """The Python of each image, for the channels that need a newer one (interpreter_queue:
        3.14). A dry run builds nothing: it knows the Python of an image already built (its
        label) and says which images are checked once they are built."""
        needing = [c for c in options.channels if facts(c).min_python]
        if not needing:
            return {}
        if dry_run:
            pythons = {image: backend.known_python(image) for image in images}
            unknown = [image for image, python in pythons.items() if python is None]
            if unknown:
                say(f"{', '.join(needing)}: the Python of {', '.join(unknown)} is not known "
                    f"before its image is built; checked once it is")
            return {"image_pythons": pythons}
        return {"image_pythons": {image: (backend.image_info(image) or {}).get("python")
                                  for image in images}}

    def python_needed(self, point):
        need = facts(point.variant).min_python
        return (tuple(need), "concurrent.interpreters") if need else None

    def points(self, options, cpus, images, prepared):
        shared = options.shared
        counts = parse.cpu_counts(shared.cpus, len(cpus))
        points, skipped = [], {}
        pythons = prepared.get("image_pythons") or {}
        for image in images:
            for channel in options.channels:
                refused = python_refusal(channel, pythons.get(image))
                if refused and len(images) == 1 and options.channels_named:
                    raise BadInput(f"--channels {refused}; {image} has Python "
                                   f"{pythons[image]}; allowed: a --base-image with that "
                                   f"Python, e.g. multicore-lab-base:sid")
            for count in counts:
                cpuset = topology.cpuset_for(count, cpus, shared.placement)
                for end_placement in options.end_placements:
                    if count == 1 and end_placement == "split":
                        skipped["split placement needs 2 CPUs (left out at 1 CPU)"] = 1
                        continue
                    if count == 1 and end_placement == "free" and "same" in options.end_placements:
                        continue  # on one CPU, free is same
                    for channel in options.channels:
                        refused = python_refusal(channel, pythons.get(image))
                        if refused:  # several bases, or `all`: left out here, in a note
                            note = f"{refused}: left out on {image} " \
                                   f"(Python {pythons[image]})"
                            skipped[note] = skipped.get(note, 0) + 1
                            continue
                        for params in _combinations(options):
                            params = {**params, "placement": end_placement}
                            if params["messages"] == "auto":  # sized to this, per point
                                params["min_seconds"] = shared.min_seconds
                            try:
                                ipc_budget.validate(channel, self._first_count(channel, params),
                                                    count, shared.start_method)
                            except ipc_budget.BudgetExceeded as over:
                                raise BadInput(f"{over}; the point is refused before anything "
                                               f"runs") from None
                            except SpecError as why:
                                skipped[str(why)] = skipped.get(str(why), 0) + 1
                                continue
                            point = make_point(
                                experiment=self.experiment, variant=channel, limit="cpuset",
                                cpus=count, cpuset=cpuset, quota=None,
                                placement=shared.placement,
                                workers=params["producers"] + params["consumers"],
                                start_method=shared.start_method, params=params, image=image)
                            if point not in points:
                                points.append(point)
        if not points:
            raise BadInput(f"nothing to run: {'; '.join(skipped) or 'no combination'}")
        return points, skipped

    @staticmethod
    def _first_count(channel, params, start_method="fork"):
        """`params` with a count: the given one, or for auto the estimate's guess (within
        --bytes-per-trial)."""
        if params.get("messages") != "auto":
            return params
        guess = _guessed_count(channel, tuple(sorted(params.items())), params["min_seconds"],
                               start_method)
        return {**params, "messages": min(guess, _byte_cap(params))}

    def trial_params(self, point, warmup):
        """A given count as given; `auto`: the estimate's guess for the warm-up trial, then what
        the warm-up measured, scaled so the section lasts min_seconds (SIZING_MARGIN over: a
        busy machine's measured rounds run slower than its warm-up), within the trial budget
        and at most bytes_per_trial / size_bytes (--bytes-per-trial)."""
        params = point.params_dict
        if params.get("messages") != "auto":
            return params
        first = self._first_count(point.variant, params, point.start_method)
        if warmup is None:
            return first
        measured = warmup.get("seconds")
        if not warmup.get("ok") or not measured or measured <= 0:
            return None  # keep the first guess
        ran = int((warmup.get("params") or {}).get("messages") or first["messages"])
        wanted = math.ceil(ran * params["min_seconds"] / measured * SIZING_MARGIN)
        if params.get("pattern") == "pingpong":  # its percentiles rest on enough round trips
            wanted = max(wanted, ipc_budget.least_count(point.variant, first, point.start_method))
        cap = min(ipc_budget.max_count(point.variant, first, point.start_method),
                  _byte_cap(params))
        return {**first, "messages": max(1, min(wanted, cap))}

    def estimate(self, point, prepared):
        params = self._first_count(point.variant, point.params_dict, point.start_method)
        return ipc_budget.estimate(params, point.variant, point.start_method)["seconds_estimate"]

    def too_short_advice(self, row, min_seconds):
        """A sized point held under min_seconds by --bytes-per-trial: raise that, not the count."""
        budget, size = row.get("param.bytes_per_trial"), row.get("param.size_bytes")
        messages, median = row.get("param.messages"), row.get("median_s")
        if (budget is not None and budget == budget and size and messages and median
                and median > 0 and int(messages) >= int(budget) // int(size)):
            wanted = math.ceil(int(messages) * min_seconds / median) * int(size)
            return (f"its sized count was capped at --bytes-per-trial {_bytes(int(budget))} / "
                    f"{_bytes(int(size))}: raise --bytes-per-trial to at least {_bytes(wanted)}")
        return super().too_short_advice(row, min_seconds)

    def point_label(self, point):
        p = point.params_dict
        size = f"{p.get('size_bytes')} B" if p.get("size_bytes") else "small ints"
        ends = f" {p.get('producers')}:{p.get('consumers')}" if (
            p.get("producers"), p.get("consumers")) != (1, 1) else ""
        batch = f" batch {p.get('batch')}" if p.get("batch", 1) != 1 else ""
        return (f"{point.variant} {p.get('pattern')} {p.get('messages')} x {size}{batch}{ends},"
                f" {point.where()}, ends {p.get('placement')}")

    # --- analysis and report -----------------------------------------------------------------

    def summarize(self, trials):
        from lab.analysis.ipc import summary
        return summary(trials[trials["experiment"] == self.experiment])

    def section(self, trials, summary, out, meta, say):
        from lab.present.ipc_report import ipc_section
        return ipc_section(trials, summary, out, say)

    def row_label(self, row, varying=()):
        from lab.analysis.ipc import channel_name
        from lab.analysis.warnings import point_label
        row = row.copy()
        row["channel"] = channel_name(row)
        return point_label(row, varying)

    def compare_trials(self, trials):
        """Points sized per run (--messages auto) meet as `auto`: each run sized its own count,
        and messages per second does not depend on it."""
        if "param.min_seconds" not in trials:
            return trials
        trials = trials.copy()
        sized = trials["param.min_seconds"].notna()
        trials["param.messages"] = trials["param.messages"].astype(object)
        trials.loc[sized, "param.messages"] = "auto"
        return trials

    def compare_measure(self, trials):
        if "metric.messages_per_second" in trials.columns:
            return "metric.messages_per_second", "messages/s", "higher"
        return super().compare_measure(trials)

    def compare_charts(self, table, run_a, run_b, labels, out):
        rows = table[table["experiment"] == self.experiment]
        if rows.empty:
            return []
        from lab.present.ipc_charts import compare_chart
        return compare_chart(rows, labels[0], labels[1], out)


def _bytes(n):
    """1073741824 -> '1GiB', 655360 -> '640KiB' (what --bytes-per-trial reads), rounded up."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{math.ceil(n / factor)}{unit}"
    return str(n)


def _byte_cap(params):
    """The most messages --bytes-per-trial allows a sized point (kept in its params as
    bytes_per_trial, so --plan and --resume size it the same): bytes_per_trial / size_bytes."""
    budget, size = params.get("bytes_per_trial"), params.get("size_bytes")
    return max(1, int(budget) // int(size)) if budget and size else trial.MAX_MESSAGES


@functools.lru_cache(maxsize=4096)
def _guessed_count(channel, params, seconds, start_method):
    """ipc_budget.count_for, remembered: the progress line asks for it at every trial."""
    return ipc_budget.count_for(channel, dict(params), seconds, start_method)


def _combinations(options):
    """Every point's params the flags ask for, before the channel decides."""
    for pattern in options.patterns:
        if pattern == "pingpong":  # round-trip latency of small messages, one pinger, one ponger
            for timing in options.timings:
                yield {"messages": options.round_trips, "size_bytes": 0, "batch": 1,
                       "producers": 1, "consumers": 1, "pattern": pattern, "timing": timing}
            continue
        for messages in options.messages:
            for size in options.sizes:
                count, cap = messages, {}
                if size and options.bytes_per_trial and messages != "auto":  # a byte budget
                    count = max(1, min(messages, options.bytes_per_trial // size))
                elif size and options.bytes_per_trial:  # sized, then capped at the budget
                    cap = {"bytes_per_trial": options.bytes_per_trial}
                for batch in options.batches:
                    for producers, consumers in options.ends:
                        for timing in options.timings:
                            yield {"messages": count, "size_bytes": size, "batch": batch,
                                   "producers": producers, "consumers": consumers,
                                   "pattern": pattern, "timing": timing, **cap}
