"""CPU lists as the kernel writes them ("0-3,8-11"): parsed to sorted ids and written back.

Standard library only (runs in the trial)."""

# ---------------------------------------------------------------------------------------------
# CPU lists ("0-3,8-11")


def parse_cpu_list(text):
    """Parse a kernel CPU list such as "0-3,8-11" into a sorted list of CPU numbers.

    An empty or blank text is the empty list; anything else that is not a CPU list raises
    ValueError.
    """
    cpus = set()
    text = text.strip()
    if not text:
        return []
    for part in text.split(","):
        part = part.strip()
        first, dash, last = part.partition("-")
        if not dash:
            cpus.add(_cpu_number(first, text))
            continue
        low, high = _cpu_number(first, text), _cpu_number(last, text)
        if low > high:
            raise ValueError(f"descending CPU range {part!r} in CPU list {text!r}")
        cpus.update(range(low, high + 1))
    return sorted(cpus)


def _cpu_number(word, whole_text):
    word = word.strip()
    if not word.isdigit():  # also refuses "", "-1", "+1" and "1.5"
        raise ValueError(f"not a CPU list: {whole_text!r}")
    return int(word)


def format_cpu_list(cpus):
    """Format CPU numbers as a kernel CPU list: [0, 1, 2, 5] -> "0-2,5" (sorted, ranges merged)."""
    ranges = []
    for cpu in sorted(set(cpus)):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)
