"""The machine as its kernel describes it: the CPU's model and flags (/proc/cpuinfo) and the
cgroup version (/proc/self/mounts). Standard library only: one reading for the host's facts
(lab.hosts), a trial's probe (lab.experiments.probe) and a cluster node's pre-run check.
"""


def text_of(path):
    """A /proc or /sys file's text, or None when it cannot be read (never an error)."""
    try:
        with open(path) as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def cpu_model_and_flags(cpuinfo="/proc/cpuinfo"):
    """(model name, CPU flags) of the first processor: x86's `model name` and `flags`, arm's
    `CPU part` (it names no model) and `Features`; (None, []) when it cannot be read."""
    model, flags = None, []
    for line in (text_of(cpuinfo) or "").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = value.split()
        elif key == "CPU part" and model is None:
            model = f"CPU part {value.strip()}"
    return model, flags


def cpu_model(cpuinfo="/proc/cpuinfo"):
    return cpu_model_and_flags(cpuinfo)[0]


def cgroup_version(mounts="/proc/self/mounts"):
    """2 when /sys/fs/cgroup is a unified cgroup2 mount, 1 when v1 controllers are mounted,
    None when neither is (or the mounts cannot be read)."""
    text = text_of(mounts)
    if text is None:
        return None
    types = {fields[1]: fields[2] for fields in (line.split() for line in text.splitlines())
             if len(fields) > 2}
    if types.get("/sys/fs/cgroup") == "cgroup2":
        return 2
    return 1 if "cgroup" in types.values() else None
