"""Flags -> typed options: bad input dies here with one line (what is wrong, what is allowed).

The flags every task shares are parsed once, by `parse_shared`, into `SharedOptions`: the same bad
value gets the same refusal in every task. A family parses its own flags with the parsers below.
Everything is checked before any container starts or any file is written.

A flag's value comes from the command line when given (even empty, which is then refused as such),
else from invoke.yaml (the task's own section first, then `lab:`), else from an environment
override such as INVOKE_SCALE_REPEAT (invoke merges those into the config).
"""

import math
import random
import re
from dataclasses import asdict, dataclass, field

from lab import backends
from lab.backends import BACKENDS
from lab.experiments.scaling_task import MOST_WORK
from lab.hosts.topology import PLACEMENTS

# "default": the Python's own default (fork up to 3.13 on Linux, forkserver from 3.14); a trial
# gets no method (`trial_start_method`) and records what it resolved to in check["start_method"].
START_METHODS = ("fork", "spawn", "forkserver", "default")
# Flags every task takes (their help is tasks.SHARED_HELP); --quota only where a family has quota
# points. `plan`, `resume`, `dry_run` and `results_dir` say what to do, not what to measure.
# Shared flags that configure a backend, not the plan (each backend declares and parses its own:
# lab.backends.Backend.flags): a backend that takes none ignores them; --resume keeps the run's
# values unless given again, and they never make a plan differ.
BACKEND_FLAGS = backends.flag_names()
SHARED_FLAGS = ("cpus", "quota", "placement", "repeat", "start_method", "backend", "base_image",
                "image", "seed", "hosts", "min_seconds", *BACKEND_FLAGS)


def trial_start_method(method):
    """What a trial spec carries for a point's start method: None for "default" (the trial's
    Python picks), else the method itself."""
    return None if method == "default" else method


class BadInput(ValueError):
    """A flag value the lab refuses; the message is the one line the user sees."""


def list_items(flag, text):
    """The comma-separated items of a flag's value; an empty item is refused."""
    if isinstance(text, (list, tuple)):
        items = [str(item).strip() for item in text]
    else:
        items = [item.strip() for item in str(text).split(",")]
    if not items or any(item == "" for item in items):
        raise BadInput(f"{flag} {text!r}: empty item; allowed: a comma-separated list like 1,2")
    return items


def cpu_counts(text, host_cpus, flag="--cpus"):
    """'1,2,4' -> [1, 2, 4]; 'all' -> 1, 2, 4 ... up to the host's count (and the count itself)."""
    if str(text).strip() == "all":
        counts, c = [], 1
        while c < host_cpus:
            counts.append(c)
            c *= 2
        return counts + [host_cpus]
    counts = []
    for item in list_items(flag, text):
        if not re.fullmatch(r"\d+", item):
            raise BadInput(f"{flag} {text!r}: {item!r} is not a whole number; "
                           f"allowed: whole CPU counts from 1 to {host_cpus}, or 'all'")
        count = int(item)
        if not 1 <= count <= host_cpus:
            raise BadInput(f"{flag} {text!r}: {count} CPUs is outside this host; "
                           f"allowed: 1 to {host_cpus}")
        counts.append(count)
    return sorted(set(counts))


def quotas(text, host_cpus):
    """'0.5,1.5' -> [0.5, 1.5]: Docker --cpus quotas, fractions allowed, up to the host's count."""
    if text in (None, "", "none"):
        return []
    values = []
    for item in list_items("--quota", text):
        try:
            value = float(item)
        except ValueError:
            raise BadInput(f"--quota {text!r}: {item!r} is not a number; "
                           f"allowed: CPU quotas like 0.5,1.5 up to {host_cpus}") from None
        if not (0.01 <= value <= host_cpus) or math.isnan(value):
            raise BadInput(f"--quota {text!r}: {item} is outside 0.01 to {host_cpus} CPUs")
        values.append(value)
    return sorted(set(values))


def positive_int(flag, value, allowed="a whole number of at least 1"):
    text = str(value).strip()
    if not re.fullmatch(r"\d+", text) or int(text) < 1:
        raise BadInput(f"{flag} {value!r}: not allowed; allowed: {allowed}")
    return int(text)


def positive_ints(flag, text, allowed="whole numbers of at least 1"):
    return sorted({positive_int(flag, item, allowed) for item in list_items(flag, text)})


def choice(flag, value, allowed):
    if value not in allowed:
        raise BadInput(f"{flag} {value!r}: unknown; allowed: {', '.join(allowed)}")
    return value


def choices(flag, text, allowed):
    items = list_items(flag, text)
    for item in items:
        choice(flag, item, allowed)
    return list(dict.fromkeys(items))  # keep order, drop repeats


# Each worker is a process in a trial that may hold 512 (the engine's pids limit) and 1 GiB.
MOST_WORKERS = 256


def workers(text):
    """'cpus' (workers = CPU count), 'default' (Pool()'s own size), or whole numbers."""
    items = list_items("--workers", text)
    allowed = f"'cpus', 'default' or whole numbers from 1 to {MOST_WORKERS}"
    result = []
    for item in items:
        if item in ("cpus", "default"):
            result.append(item)
        else:
            number = positive_int("--workers", item, allowed)
            if number > MOST_WORKERS:
                raise BadInput(f"--workers {item!r}: not allowed; allowed: {allowed}")
            result.append(number)
    return list(dict.fromkeys(result))


_IMAGE_NAME = re.compile(
    r"^(?:[a-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")


def image_names(flag, text):
    """Docker image references ('multicore-lab-base:trixie', 'python:3.13-slim'), checked to parse."""
    names = list_items(flag, text)
    for name in names:
        if not _IMAGE_NAME.match(name):
            raise BadInput(f"{flag} {name!r}: not an image name; allowed: names like "
                           f"multicore-lab-base:trixie or registry.example/python:3.13-slim")
    return list(dict.fromkeys(names))


def work(value):
    """'auto' (calibrated), 'seed' (the tutorial's 6 x 10^7) or a whole number of iterations."""
    text = str(value).strip()
    if text in ("auto", "seed"):
        return text
    text = text.replace("_", "")
    if re.fullmatch(r"\d+(e\d+)?", text):
        number = int(float(text)) if "e" in text else int(text)
        if 1 <= number <= MOST_WORK:  # 10^12: hours on any CPU; past it, years
            return number
    raise BadInput(f"--work {value!r}: not allowed; allowed: auto, seed, or a whole number of "
                   f"iterations from 1 to 1e12, such as 2000000 or 6e7")


def seconds(name, value, low=0.001, high=7 * 24 * 3600):
    """A duration in seconds (a setting, not a flag: `name` says where it comes from)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not low <= number <= high:  # also refuses NaN
        raise BadInput(f"{name} {value!r}: not allowed; allowed: seconds from {low:g} to {high:g}")
    return number


def seed_value(value):
    """--seed: a whole number, or 'random' (drawn now, recorded)."""
    if value in (None, "", "random"):
        return random.randrange(1, 2**31)
    return positive_int("--seed", value, "a whole number, or random")


def cpus_text(text):
    """--cpus checked for form now ('all' or whole numbers); counts beyond a host are refused
    when that host's CPUs are known (`cpu_counts`)."""
    if str(text).strip() == "all":
        return "all"
    items = list_items("--cpus", text)
    for item in items:
        if not re.fullmatch(r"\d+", item):  # the range is checked against the host's CPUs
            raise BadInput(f"--cpus {text!r}: {item!r} is not a whole number; allowed: whole "
                           f"CPU counts like 1,2,4, or 'all'")
    return ",".join(items)


def quota_text(text):
    """--quota checked for form now (numbers); quotas beyond a host are refused when that
    host's CPUs are known (`quotas`)."""
    if text in (None, "", "none"):
        return ""
    for item in list_items("--quota", text):
        try:
            float(item)
        except ValueError:
            raise BadInput(f"--quota {text!r}: {item!r} is not a number; allowed: CPU quotas "
                           f"like 0.5,1.5") from None
    return str(text) if not isinstance(text, (list, tuple)) else ",".join(map(str, text))


def _host_item(item, source):
    """One --hosts item checked for form by the backend whose kind it is."""
    try:
        return backends.host_item(item, source)
    except backends.FlagRefused as why:
        raise BadInput(str(why)) from None


def hosts(value):
    """--hosts: the default host or the host strings a backend takes (backends.hosts_allowed),
    comma-separated, or '@FILE' naming a file of them (one a line or comma-separated; # starts
    a comment)."""
    if value in (None, ""):
        return [backends.DEFAULT_HOST]
    items = []
    for item in list_items("--hosts", value):
        if item.startswith("@"):
            path = item[1:]
            try:
                with open(path) as handle:
                    text = handle.read()
            except OSError as error:
                raise BadInput(f"--hosts @{path}: cannot read the hosts file "
                               f"({error.strerror or error})") from None
            listed = [part.strip() for line in text.splitlines()
                      for part in line.split("#", 1)[0].split(",") if part.strip()]
            if not listed:
                raise BadInput(f"--hosts @{path}: the file names no host; "
                               f"{backends.hosts_allowed()}")
            items += [_host_item(part, f" (in {path})") for part in listed]
        else:
            items.append(_host_item(item, ""))
    twice = next((h for i, h in enumerate(items) if h in items[:i]), None)
    if twice:
        raise BadInput(f"--hosts: {twice} is named twice; name each host once")
    return items


def backend_options(values):
    """Each backend's flags parsed by the backend that takes them."""
    try:
        return backends.parse_flags(values)
    except backends.FlagRefused as why:
        raise BadInput(str(why)) from None


@dataclass
class SharedOptions:
    """The flags every task shares, validated; `given` names those set on the command line."""
    cpus: str                 # 'all' or '1,2,4': resolved against the host's CPUs (cpu_counts)
    quota: str                # '' or '0.5,1.5': resolved against the host's CPUs (quotas)
    placement: str
    repeat: int
    start_method: str
    backend: str
    base_images: list
    image: str | None
    seed: int
    dry_run: bool = False
    results_dir: str = "results"
    resume: str | None = None
    plan: str | None = None
    given: list = field(default_factory=list)
    flags: dict = field(default_factory=dict)  # each shared flag's value as it came in
    time_limit_s: float = 600.0  # a trial still running then is stopped, recorded failed
    min_seconds: float = 0.2     # the shortest timed section a printed figure may rest on
    hosts: list = field(default_factory=lambda: [backends.DEFAULT_HOST])  # --hosts, checked for form
    # {flag: value} of the backends' own flags (BACKEND_FLAGS), each parsed by its backend
    backend_options: dict = field(default_factory=dict)

    def as_dict(self):
        return asdict(self)


def chosen(flags, defaults, names):
    """{name: the flag's value when given (not None), else the default} for `names`."""
    return {name: defaults.get(name) if flags.get(name) is None else flags[name] for name in names}


def parse_shared(flags, defaults):
    """SharedOptions from the command line's `flags` (None: not given) and the merged defaults
    (invoke.yaml `lab:` overlaid by the task's section)."""
    values = chosen(flags, defaults, SHARED_FLAGS)
    given = sorted(name for name, value in flags.items() if value is not None
                   and name not in ("dry_run", "results_dir", "resume", "plan"))
    image = values["image"]
    options = SharedOptions(
        cpus=cpus_text(values["cpus"]),
        quota=quota_text(values["quota"]),
        placement=choice("--placement", values["placement"], PLACEMENTS),
        repeat=positive_int("--repeat", values["repeat"]),
        start_method=choice("--start-method", values["start_method"], START_METHODS),
        backend=choice("--backend", values["backend"], BACKENDS),
        base_images=image_names("--base-image", values["base_image"]),
        image=image_names("--image", image)[0] if image not in (None, "") else None,
        seed=seed_value(values["seed"]),
        dry_run=bool(flags.get("dry_run")),
        results_dir=str(flags.get("results_dir") or defaults.get("results_dir") or "results"),
        resume=flags.get("resume"), plan=flags.get("plan"), given=given,
        flags={name: values[name] for name in SHARED_FLAGS},
        hosts=hosts(values.get("hosts")),
        backend_options=backend_options(values),
        min_seconds=seconds("--min-seconds", values.get("min_seconds") or 0.2, low=0.001, high=600),
    )
    options.flags["hosts"] = ",".join(options.hosts)  # a hosts file's hosts, not its name
    options.flags["seed"] = options.seed  # what a resumed run re-parses: the seed drawn, not 'random'
    return options
