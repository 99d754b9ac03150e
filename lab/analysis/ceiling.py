"""The measured ceiling: what N CPUs of a host deliver, from the scale family's `ceiling`
variant (N independent spinners, each pinned to its own CPU; lab.experiments.scaling).

Its figure is N x T(1) / T(N), the work of how many single CPUs N of them do side by side, with
the bootstrap interval of T(1) / T(N) scaled by N. On whole CPUs it is N; SMT siblings, vCPUs
that share physical cores with other guests, a machine's other load, or a power budget that
lowers the clock as more cores run take it below. Strong scaling cannot beat it, so each strong
point also gets `ceiling` (the same host's ceiling at its CPU count) and `of_ceiling`
(speedup / ceiling: the efficiency against what the CPUs deliver, not against N).
"""

import math

import pandas as pd

WHOLE = 0.9  # a ceiling below this x N: the host's N CPUs are not N whole CPUs


def _host(value):
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _hosts(rows):
    if "host" in rows.columns:
        return rows["host"].map(_host)
    return pd.Series("", index=rows.index)


def ceiling_rows(summary):
    """The ceiling points (cpuset-limited, one spinner per CPU) with a figure."""
    if summary is None or summary.empty or "variant" not in summary.columns:
        return summary.iloc[0:0] if summary is not None else pd.DataFrame()
    rows = summary[(summary["variant"] == "ceiling") & (summary["limit"] == "cpuset")]
    return rows[rows["speedup"].notna()] if "speedup" in rows.columns else rows


def ceiling_curves(summary):
    """(label, rows sorted by CPUs) per host and image: the measured ceiling's curve."""
    rows = ceiling_rows(summary)
    if rows.empty:
        return
    hosts = _hosts(rows)
    several_hosts = hosts.nunique() > 1
    several_pythons = rows["python"].nunique() > 1
    for (host, python), curve in rows.groupby([hosts, rows["python"]]):
        extra = ", ".join(([f"Python {python}"] if several_pythons else [])
                          + ([f"host {host}"] if several_hosts else []))
        yield (f"measured ceiling ({extra})" if extra else "measured ceiling",
               curve.sort_values("cpus"))


def attach(summary, strong_variants):
    """Add `ceiling` and `of_ceiling` to the points of `strong_variants` (the same host, image
    and CPU count's ceiling)."""
    summary["ceiling"] = math.nan
    summary["of_ceiling"] = math.nan
    rows = ceiling_rows(summary)
    if rows.empty:
        return summary
    by_key = {}
    for _, row in rows.iterrows():
        by_key[(_host(row.get("host")), row["image"], int(row["cpus"]))] = float(row["speedup"])
    for index, row in summary.iterrows():
        if row["variant"] not in strong_variants or row["limit"] != "cpuset":
            continue
        ceiling = by_key.get((_host(row.get("host")), row["image"], int(row["cpus"])))
        if ceiling and not math.isnan(row["speedup"]):
            summary.at[index, "ceiling"] = ceiling
            summary.at[index, "of_ceiling"] = row["speedup"] / ceiling
    return summary


def findings(summary):
    """Per host, its ceiling at the most CPUs measured above 1 (and every count below WHOLE):
    dicts {host, cpus, ceiling, low, high, whole}."""
    out = []
    rows = ceiling_rows(summary)
    if rows.empty:
        return out
    rows = rows[rows["cpus"] > 1]
    for host, curve in rows.groupby(_hosts(rows)):
        curve = curve.sort_values("cpus")
        for _, row in curve.iterrows():
            cpus = int(row["cpus"])
            found = {"host": host, "cpus": cpus, "ceiling": float(row["speedup"]),
                     "low": float(row["speedup_ci_low"]), "high": float(row["speedup_ci_high"]),
                     "whole": float(row["speedup"]) >= WHOLE * cpus}
            if not found["whole"] or cpus == int(curve["cpus"].max()):
                out.append(found)
    return out


def _figure(found):
    interval = (f" [{found['low']:.2f}, {found['high']:.2f}]"
                if math.isfinite(found["low"]) and math.isfinite(found["high"]) else "")
    return f"{found['ceiling']:.2f}{interval}"


def _where(host):
    return f"host {host}: its" if host else "this host's"


def sentences(summary):
    """One sentence per host: what its most CPUs deliver, whole or not."""
    out = []
    found_all = findings(summary)
    for host in dict.fromkeys(f["host"] for f in found_all):
        found = max((f for f in found_all if f["host"] == host), key=lambda f: f["cpus"])
        verdict = ("whole CPUs" if found["whole"] else
                   f"not whole CPUs (below {WHOLE:g} x {found['cpus']}): a speedup here is bounded "
                   f"by this figure, not by {found['cpus']}")
        if found["whole"] and found["low"] < WHOLE * found["cpus"]:
            verdict = (f"whole CPUs by the median, but its interval reaches below {WHOLE:g} x "
                       f"{found['cpus']}: too noisy to tell; rerun on a quiet machine with more "
                       f"--repeat")
        where = f"Host {host}: its" if host else "This host's"
        out.append(f"{where} {found['cpus']} CPUs deliver {_figure(found)} times one "
                   f"({found['cpus']} pinned independent spinners against one; 95% bootstrap "
                   f"interval): {verdict}.")
    return out


def ceiling_warnings(summary):
    """A `not-whole-cpus` warning per host whose ceiling at some N falls below WHOLE x N."""
    from lab.analysis.warnings import warning
    out = []
    short = [f for f in findings(summary) if not f["whole"]]
    for host in dict.fromkeys(f["host"] for f in short):
        listed = "; ".join(f"{f['cpus']} CPUs deliver {_figure(f)} times one"
                           for f in short if f["host"] == host)
        out.append(warning(
            "not-whole-cpus",
            f"{_where(host)} CPUs are not whole CPUs: {listed} (N pinned independent spinners, "
            f"nothing shared, against one; below {WHOLE:g} x N): SMT siblings, vCPUs sharing "
            f"physical cores with other guests, other load on the machine or a clock that drops "
            f"as more cores run; every speedup on this host is bounded by that ceiling",
            "read strong scaling against the measured ceiling (summary.csv `of_ceiling`), not "
            "against N; for whole CPUs use --placement spread over cores, a quiet machine, or an "
            "instance type with dedicated cores, and rerun to see whether it holds from minute "
            "to minute"))
    return out
