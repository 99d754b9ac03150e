"""The scale family's part of the report: the per-point table, the fits, the charts."""

from lab.analysis import ceiling as ceilings, conditions, scaling as results
from lab.present import scaling_charts as plots
from lab.present.executors_report import executors_section
from lab.present.report import Section
from lab.present.tables import Table, fmt as _fmt, interval as _interval, percent

def scaling_display(summary):
    """The per-point table of a scaling run: spread, the median's interval, speedup with its
    bootstrap interval, efficiency."""
    several = summary["python"].nunique() > 1
    hosts = "host" in summary.columns and summary["host"].astype(str).nunique() > 1
    headers = (["host"] if hosts else []) + (["python"] if several else []) + [
        "variant", "limit", "CPUs", "workers", "n", "median s", "median interval s (coverage)",
        "CV", "outliers", "speedup [95% bootstrap]", "abs.", "effic.", "of ceil.", "failed"]
    rows = []
    for _, row in summary.iterrows():
        cpus = f"q{row['quota']:g}" if row["limit"] == "quota" else str(row["cpus"])
        workers = "default" if row["workers"] is None else str(row["workers"])
        weak = row["variant"] == "weak"
        column = "scaled_speedup" if weak else "speedup"
        speedup = _fmt(row[column], "{:.2f}")
        if speedup != "-":
            speedup += " " + _interval(row[f"{column}_ci_low"], row[f"{column}_ci_high"], "{:.2f}")
            if row["speedup_ci_coverage"] < 0.95:  # few trials: the 95% is not what it covers
                speedup += f" (~{row['speedup_ci_coverage']:.0%})"
        interval = _interval(row["median_ci_low_s"], row["median_ci_high_s"])
        if interval != "-":
            interval += f" ({percent(row['median_ci_coverage'])})" if row["n"] > 1 else ""
        rows.append(([str(row["host"])] if hosts else []) + ([str(row["python"])] if several else []) + [
            row["variant"], row["limit"], cpus, workers, str(row["n"]), _fmt(row["median_s"]),
            interval if row["n"] > 1 else "-", _fmt(row["cv"], "{:.1%}"), str(row["outliers"]),
            speedup, _fmt(row["speedup_absolute"], "{:.2f}"), _fmt(row["efficiency"], "{:.2f}"),
            _fmt(row.get("of_ceiling"), "{:.2f}"), str(row["failed"])])
    align = ("l" if hosts else "") + ("l" if several else "") + "llrr" + "r" * 10
    return Table(headers, rows, align)


def scaling_table(summary):
    """The table printed at the end (text)."""
    return scaling_display(summary).text()


def fit_lines(summary):
    """'Amdahl, strong (Python 3.13.5): serial fraction s = ...' per curve and law."""
    lines = []
    for name, curve in results.strong_curves(summary):
        python = curve["python"].iloc[0]
        variant = name.split(" ")[0]
        on = f", host {name.split(', host ', 1)[1].rstrip(')')}" if ", host " in name else ""
        lines.append(f"Amdahl, {variant} (Python {python}{on}): {curve['amdahl'].iloc[0]}")
        lines.append(f"USL, {variant} (Python {python}{on}): {curve['usl'].iloc[0]}")
    for name, curve in results.weak_curves(summary):
        on = f", host {name.split(', host ', 1)[1].rstrip(')')}" if ", host " in name else ""
        lines.append(f"Gustafson, weak (Python {curve['python'].iloc[0]}{on}): "
                     f"{curve['gustafson'].iloc[0]}")
    return lines


def fits_display(summary):
    rows = []
    for name, curve in results.strong_curves(summary):
        rows.append([name, "Amdahl: S = 1 / (s + (1 - s) / c)", curve["amdahl"].iloc[0]])
        rows.append([name, "USL: S = c / (1 + σ(c - 1) + κc(c - 1))", curve["usl"].iloc[0]])
    for name, curve in results.weak_curves(summary):
        rows.append([name, "Gustafson: S = c - s(c - 1)", curve["gustafson"].iloc[0]])
    return Table(["curve", "law", "fit"], rows, "lll")


def scaling_section(scaling, summary, out, meta, say):
    """The section of a scale run (and, where it ran threads or interpreters, the section
    "processes, threads or interpreters" after it); charts are written into the folder `out`."""
    pythons = ", ".join(sorted(str(p) for p in scaling["python"].dropna().unique()))
    suffix = f" — Python {pythons}, {meta.get('backend', {}).get('backend', '')}"
    charts = []
    if summary["speedup"].notna().any() or summary["scaled_speedup"].notna().any():
        charts += plots.speedup_chart(summary, scaling, out, suffix)
    if summary["efficiency"].notna().any():
        charts += plots.efficiency_chart(summary, out, suffix)
    notes = []
    if (summary["limit"] == "quota").any():
        view = results.quota_view(scaling, summary)
        charts += plots.quota_chart(view, out, suffix)
        notes = results.pool_sizing_sentences(view)
    delivered = ceilings.sentences(summary)
    ran_in = conditions.condition_sentences(scaling)
    table = scaling_table(summary)
    lines = fit_lines(summary)
    say("\n" + table)
    if lines:
        say("\n".join(lines))
    if notes:
        say("\nWhat to size a pool by:\n" + "\n".join(f"- {s}" for s in notes))
    if delivered:
        say("\nWhat the CPUs deliver (measured ceiling):\n"
            + "\n".join(f"- {s}" for s in delivered))
    section = Section("CPU-bound scaling", "scaling")
    section.add("table", scaling_display(summary),
                "Per point: measured trials' seconds; speedup T(1 CPU) / T(c) (weak: scaled, "
                "c·T(1)/T(c)) with its 95% bootstrap interval; abs. = against the serial run; "
                "effic. = speedup / CPUs; of ceil. = speedup / the measured ceiling at those CPUs; "
                "ceiling rows: N pinned spinners' work against one's")
    if lines:
        section.add("table", fits_display(summary), "Fits to the strong curves' and weak "
                    "curve's median speedups (least squares)")
    if notes:
        section.add("notes", notes, "What to size a pool by:")
    if delivered:
        section.add("notes", delivered, "What the CPUs deliver (the measured ceiling: N pinned "
                    "independent spinners against one; strong speedup / ceiling is `of_ceiling` "
                    "in summary.csv):")
    if ran_in:
        say("\nConditions on each host's trial CPUs:\n" + "\n".join(f"- {s}" for s in ran_in))
        section.add("notes", ran_in, "Conditions on each host's trial CPUs (read by every "
                    "trial on its own machine: metric.load1, metric.steal_own_cpus_seconds, "
                    "metric.swapped_pages, metric.thermal_events, check.governor):")
    section.add("charts", [c for c in charts if c.suffix == ".png"])
    beside = executors_section(scaling, summary, meta, say)  # threads or interpreters measured
    return [section, beside] if beside is not None else section
