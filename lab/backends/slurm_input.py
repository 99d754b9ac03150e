"""What the user types for the slurm backend: its flags (--partition, --python, --per-node,
--max-nodes), each checked for form before anything asks the cluster (whether the partition
exists and the nodes' Python runs is found when connecting: lab.backends.slurm).
"""

import re

from lab.backends import BackendFlag, FlagRefused

PARTITION_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def partition(value):
    """--partition: a partition's name, or '' for the cluster's default partition."""
    text = "" if value is None else str(value).strip()
    if text and not PARTITION_NAME.match(text):
        raise FlagRefused(f"--partition {value!r}: not a partition name; allowed: letters, "
                          f"digits, '_', '.' and '-' (or leave it out for the cluster's default "
                          f"partition)")
    return text


def python(value):
    """--python: the command or path of the Python on the nodes (one word)."""
    text = "python3" if value in (None, "") else str(value).strip()
    if not text or any(c.isspace() for c in text) or any(c in text for c in "'\"$`;|&<>"):
        raise FlagRefused(f"--python {value!r}: not allowed; allowed: the nodes' interpreter as "
                          f"one command or path, e.g. python3 or /opt/python/3.13/bin/python3")
    return text


def _whole(flag, value, allowed="a whole number of at least 1"):
    text = str(value).strip()
    if not re.fullmatch(r"\d+", text) or int(text) < 1:
        raise FlagRefused(f"{flag} {value!r}: not allowed; allowed: {allowed}")
    return int(text)


def per_node(value):
    """--per-node: trials that may share a node at once (1: none)."""
    return _whole("--per-node", 1 if value in (None, "") else value)


def max_nodes(value):
    """--max-nodes: nodes held at once; None for auto (the partition's idle nodes)."""
    if str(value or "auto").strip() == "auto":
        return None
    return _whole("--max-nodes", value,
                  "auto (the partition's idle nodes) or a whole number of at least 1")


FLAGS = (BackendFlag("partition", partition), BackendFlag("python", python),
         BackendFlag("per_node", per_node), BackendFlag("max_nodes", max_nodes))
