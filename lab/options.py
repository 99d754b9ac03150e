"""Flag parsing and validation: bad input dies here with one line (what is wrong, what is allowed).

Everything is checked before any container starts or any file is written.
"""

import math
import re

BACKENDS = ("auto", "docker", "local")
START_METHODS = ("fork", "spawn", "forkserver")


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


def workers(text):
    """'cpus' (workers = CPU count), 'default' (Pool()'s own size), or whole numbers."""
    items = list_items("--workers", text)
    result = []
    for item in items:
        if item in ("cpus", "default"):
            result.append(item)
        else:
            result.append(positive_int("--workers", item,
                                       "'cpus', 'default' or whole numbers of at least 1"))
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
        if number >= 1:
            return number
    raise BadInput(f"--work {value!r}: not allowed; allowed: auto, seed, or a whole number of "
                   f"iterations such as 2000000 or 6e7")
