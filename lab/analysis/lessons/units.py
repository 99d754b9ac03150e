"""Numbers of the lessons family in words: durations, rates, ratios, CPU counts, Pythons.

One place for how a lessons figure is written, shared by the analysis sentences and by
lab/present (tests/test_structure.py keeps analysis from importing lab.present, so the
presentation modules take these from here).
"""

import math


def unit_of(metric):
    for suffix, unit in (("_us", "µs"), ("_ms", "ms"), ("_per_second", "/s")):
        if metric.endswith(suffix):
            return unit
    return ""


def duration(us):
    """Microseconds in the unit a person reads: 2.1 µs, 450 µs, 2.05 ms, 1.3 s."""
    if us is None or not math.isfinite(us):
        return "-"
    if us < 10:
        return f"{us:.2g} µs" if us < 1 else f"{us:.1f} µs"
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1e6:
        return f"{us / 1e3:.3g} ms"
    return f"{us / 1e6:.3g} s"


def rate(value, unit="/s"):
    if value is None or not math.isfinite(value):
        return "-"
    for scale, word in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{word}{unit}"
    return f"{value:.3g}{unit}"


def figure(metric, value):
    """A metric's value in words with its unit."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    unit = unit_of(metric)
    if unit == "µs":
        return duration(value)
    if unit == "ms":
        return duration(value * 1e3)
    if unit == "/s":
        return rate(value)
    return f"{value:g}"


def times(ratio):
    if ratio is None or not math.isfinite(ratio):
        return "-"
    return f"{ratio:.3g}x" if ratio < 100 else f"{ratio:,.0f}x"


def cpus_words(count):
    return f"{int(count)} CPU{'' if int(count) == 1 else 's'}"


def short_python(version):
    return ".".join(str(version).split(".")[:2])


def whole(value):
    try:
        return f"{int(value)}"
    except (TypeError, ValueError):
        return str(value)
