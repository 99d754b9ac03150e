"""`invoke compare RUN_A RUN_B`: two runs side by side, point by point (nothing is run here).

Points are matched by their configuration, never by point_id (which names the image): experiment,
variant, limit, CPUs, quota, workers, placement, start method and every parameter must be equal.
When a run holds several Pythons (several images), the Python version joins the key, so 3.11
meets 3.11; with one Python each, a run on 3.11 and one on 3.13 are compared point for point.

For each common point: both medians, the ratio B/A of the medians with its percentile-bootstrap
interval and the coverage that interval really has with so few trials, and the two-sided
Mann-Whitney U test of the two runs' trials (lab.stats), its p adjusted by Holm's method for the
number of points tested at once (twenty points at 0.05 would otherwise call one "different" by
chance). The measure
is the timed seconds for scaling points (lower is better) and messages per second for IPC points
(higher is better). Written to results/compare-<a>-vs-<b>/: compare.csv, charts (PNG and SVG),
report.md and a self-contained report.html, labelled by what differs between the runs.
"""

import math
import re
from pathlib import Path

import pandas as pd

from lab import records
from lab.analysis import stats
from lab.analysis.trials import load_trials, point_stats, samples
from lab.analysis.warnings import varying_columns, warning
from lab.present import report
from lab.present.charts import compare_ratio_chart
from lab.present.tables import Table, fmt

KEY_COLUMNS = ["experiment", "variant", "limit", "cpus", "quota", "workers", "placement",
               "start_method"]
ALPHA = 0.05


class Run:
    """One side of the comparison: its folder (a run.folder.RunFolder), meta.json, trials,
    point stats and family (`family_of(meta, trials)` finds it)."""

    def __init__(self, folder, family_of, say=print, host=None, node=None):
        self.folder = folder
        self.meta = self.folder.meta_for_reading(say)
        self.trials = load_trials(self.folder, warn=say)
        self.host, self.node = host, node
        if self.trials.empty:
            raise records.RecordsError(f"run {self.folder.run_id} has no trials to compare")
        if node is not None:  # one node of a host of several (a Slurm partition)
            known = sorted(str(n) for n in self.trials.get("node", pd.Series(dtype=object))
                           .dropna().unique())
            if node not in known:
                raise records.RecordsError(f"run {self.folder.run_id} has no trials on node "
                                           f"{node!r}; its nodes: {', '.join(known) or 'none'}")
            self.trials = self.trials[self.trials["node"] == node].reset_index(drop=True)
        if host is not None:  # one host of a run on several (--hosts)
            known = sorted(str(h) for h in self.trials["host"].dropna().unique())
            if host not in known:
                raise records.RecordsError(f"run {self.folder.run_id} has no trials on host "
                                           f"{host!r}; its hosts: {', '.join(known)}")
            self.trials = self.trials[self.trials["host"] == host].reset_index(drop=True)
            facts = (self.meta.get("hosts") or {}).get(host) or {}
            self.meta = {**self.meta, "host": {**facts, "hostname": host},
                         "backend": facts.get("backend") or self.meta.get("backend") or {},
                         "images": facts.get("images") or self.meta.get("images") or {}}
        self.family = family_of(self.meta, self.trials)
        # the family's measure as a column, and its points as compare matches them
        self.trials = self.family.compare_trials(self.trials)
        self.points = point_stats(self.trials)

    @property
    def run_id(self):
        return self.folder.run_id

    @property
    def name(self):
        """The run id, and the host or node when one host or node of the run is compared."""
        return (self.run_id + (f" (host {self.host})" if self.host else "")
                + (f" (node {self.node})" if self.node else ""))

    @property
    def several_hosts(self):
        return "host" in self.trials and self.trials["host"].astype(str).nunique() > 1

    @property
    def pythons(self):
        return sorted(str(p) for p in self.trials["python"].dropna().unique())


def _norm(value):
    """A key cell: None for missing, whole numbers as int (2 == 2.0), everything else as str."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value) if float(value).is_integer() else float(value)
    return str(value)


def key_columns(a, b):
    """The configuration columns both runs are matched on, and whether Python is one of them."""
    ignored = set(a.family.compare_ignores)
    params = sorted({c for c in list(a.points.columns) + list(b.points.columns)
                     if c.startswith("param.") and c not in ignored})
    with_python = len(a.pythons) > 1 or len(b.pythons) > 1
    hosts = ["host"] if a.several_hosts and b.several_hosts else []  # host meets host
    return KEY_COLUMNS + params + (["python"] if with_python else []) + hosts, with_python


def _keyed(points, columns):
    keyed = {}
    for _, row in points.iterrows():
        key = tuple(_norm(row.get(c)) for c in columns)
        keyed.setdefault(key, row)
    return keyed


def differences(a, b):
    """(what, in A, in B) for each fact of meta.json that differs between the runs, and the list
    of facts that are the same."""
    def fact(run):
        meta = run.meta
        host = meta.get("host") or {}
        backend = meta.get("backend") or {}
        images = meta.get("images") or {}
        return {
            "Python": ", ".join(run.pythons),
            "host": host.get("hostname"),
            **({"node": run.node or "all"} if a.node or b.node else {}),  # --node-a/--node-b
            "CPU": f"{host.get('cpu_model')} x{host.get('usable_cpus')}",
            "kernel": host.get("kernel"),
            "cgroup": f"v{host.get('cgroup_version')}",
            "image": ", ".join(str(i.get("tag") or i.get("id")) for i in images.values())
            or str((meta.get("image") or {}).get("tag")),
            "base image": ", ".join(str(i.get("base")) for i in images.values()),
            "backend": f"{backend.get('backend')} {backend.get('engine_version') or ''}".strip(),
            "lab commit": (meta.get("lab") or {}).get("git_commit"),
        }
    facts_a, facts_b = fact(a), fact(b)
    differ = [(name, str(facts_a[name]), str(facts_b[name])) for name in facts_a
              if str(facts_a[name]) != str(facts_b[name])]
    same = [(name, str(facts_a[name])) for name in facts_a
            if str(facts_a[name]) == str(facts_b[name])]
    return differ, same


def labels(a, b, differ):
    """Short names for the two runs, by what differs (Python, host, image first)."""
    shown = [d for d in differ if d[0] in ("Python", "host", "node", "CPU", "image", "kernel",
                                           "backend")]
    shown = shown[:2] or differ[:1]
    if not shown:
        return f"A ({a.run_id})", f"B ({b.run_id})"
    return ("A: " + ", ".join(f"{name} {va}" for name, va, _ in shown),
            "B: " + ", ".join(f"{name} {vb}" for name, _, vb in shown))


def compare_points(a, b):
    """One row per common point: both medians, ratio B/A with its interval, Mann-Whitney p."""
    columns, _ = key_columns(a, b)
    points_a, points_b = _keyed(a.points, columns), _keyed(b.points, columns)
    varying = varying_columns(pd.concat([a.points, b.points], ignore_index=True))
    rows = []
    for key in (k for k in points_a if k in points_b):
        row_a, row_b = points_a[key], points_b[key]
        column, unit, better = a.family.compare_measure(a.trials)
        if column not in b.trials.columns:
            column, unit, better = "seconds", "s", "lower"
        sample_a = samples(a.trials, column).get(row_a["point_id"], [])
        sample_b = samples(b.trials, column).get(row_b["point_id"], [])
        median_a = float(pd.Series(sample_a, dtype=float).median())
        median_b = float(pd.Series(sample_b, dtype=float).median())
        low, high = stats.ratio_interval(sample_b, sample_a)
        interval_a, interval_b = stats.median_interval(sample_a), stats.median_interval(sample_b)
        test = stats.difference(sample_a, sample_b)
        ratio = median_b / median_a if median_a > 0 else math.nan
        rows.append({
            **dict(zip(columns, key)), "python_a": row_a.get("python"),
            "python_b": row_b.get("python"), "point_id_a": row_a["point_id"],
            "point_id_b": row_b["point_id"],
            "label": a.family.row_label(row_a, [c for c in varying if c != "python"
                                                and (c != "host" or c in columns)]),
            "measure": column.removeprefix("metric."), "unit": unit, "better": better,
            "n_a": len(sample_a), "n_b": len(sample_b), "median_a": median_a,
            "median_b": median_b, "median_a_ci_low": interval_a.low,
            "median_a_ci_high": interval_a.high, "median_b_ci_low": interval_b.low,
            "median_b_ci_high": interval_b.high, "ratio_b_over_a": ratio, "ratio_ci_low": low,
            "ratio_ci_high": high,
            "ratio_ci_coverage": stats.ratio_interval_coverage(len(sample_a), len(sample_b)),
            "test": test.test, "p_value": test.p_value,
            "smallest_p_value": test.smallest_p_value, "ratio": ratio, "better": better,
            "_test": test})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["p_holm"] = stats.holm(table["p_value"])
    table["significant"] = table["p_holm"] < ALPHA
    table["verdict"] = [verdict(r, b, t, h) for r, b, t, h in
                        zip(table["ratio"], table["better"], table["_test"], table["p_holm"])]
    table = table.drop(columns=["_test", "ratio"])
    order = ["experiment", "variant", "limit", "cpus", "quota"] + [
        c for c in columns if c.startswith("param.")]
    return table.sort_values(order, key=lambda c: c.map(lambda v: (v is None, str(v).zfill(12)
                                                                  if isinstance(v, (int, float))
                                                                  else str(v))),
                             kind="stable").reset_index(drop=True)


def verdict(ratio, better, test, p_holm):
    """B better, B worse, or why it cannot be said: the adjusted p decides, never the medians."""
    if not math.isfinite(test.p_value):
        return "no test (a side has no trials)"
    if not test.smallest_p_value < ALPHA:
        return f"too few trials to tell (p >= {test.smallest_p_value:.2f} at best)"
    if not p_holm < ALPHA:
        return ("no significant difference" if test.p_value >= ALPHA else
                f"can't tell after Holm's correction (p {test.p_value:.3g}, adjusted {p_holm:.3g})")
    faster = (ratio < 1) if better == "lower" else (ratio > 1)
    return "B better" if faster else "B worse"


def unmatched(a, b):
    """Points of one run with no counterpart, and parameters whose values differ (e.g. a work
    calibrated per machine): why a comparison can come out empty."""
    columns, _ = key_columns(a, b)
    keys_a, keys_b = set(_keyed(a.points, columns)), set(_keyed(b.points, columns))
    notes = []
    for column in columns:
        values_a = set(_norm(v) for v in a.points.get(column, pd.Series(dtype=object)))
        values_b = set(_norm(v) for v in b.points.get(column, pd.Series(dtype=object)))
        if values_a and values_b and not values_a & values_b:
            notes.append(f"{column.removeprefix('param.')} is "
                         f"{', '.join(map(str, sorted(values_a, key=str)))} in A and "
                         f"{', '.join(map(str, sorted(values_b, key=str)))} in B")
    return len(keys_a - keys_b), len(keys_b - keys_a), notes


def display(table):
    headers = ["point", "measure", "n A", "n B", "median A", "median B",
               "B/A [interval] real coverage", "p (Mann-Whitney)", "p, Holm", "verdict"]
    rows = []
    for _, row in table.iterrows():
        pattern = "{:,.0f}" if row["unit"] == "messages/s" else "{:.4f}"
        ratio = f"{row['ratio_b_over_a']:.3f}"
        if math.isfinite(row["ratio_ci_low"]):
            ratio += f" [{row['ratio_ci_low']:.3f}, {row['ratio_ci_high']:.3f}]"
            coverage = row["ratio_ci_coverage"]
            ratio += f" {coverage:.0%}" if math.isfinite(coverage) else " (coverage unknown)"
        rows.append([row["label"], f"{row['measure']} ({row['unit']}, {row['better']} better)",
                     str(row["n_a"]), str(row["n_b"]), pattern.format(row["median_a"]),
                     pattern.format(row["median_b"]), ratio, fmt(row["p_value"], "{:.3g}"),
                     fmt(row["p_holm"], "{:.3g}"), row["verdict"]])
    return Table(headers, rows, "ll" + "r" * 7 + "l")


def folder_for(results_dir, a, b):
    def side(run):
        where = "-".join(re.sub(r"[^A-Za-z0-9.-]+", "_", part).strip("_")
                         for part in (run.host, run.node) if part)
        return run.run_id + (f"-{where}" if where else "")
    path = Path(results_dir) / f"compare-{side(a)}-vs-{side(b)}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def compare(folder_a, folder_b, out_dir, family_of, say=print, host_a=None, host_b=None,
            node_a=None, node_b=None):
    """Compare two run folders into out_dir/compare-<a>-vs-<b>/; returns that folder's path.
    Refuses (records.RecordsError) a run that has no trials. `host_a`, `host_b`: compare only
    that host's trials of a run on several (two hosts of one run, or one host with a run);
    `node_a`, `node_b` likewise for the nodes of a cluster's host (two nodes of one run)."""
    a = Run(folder_a, family_of, say, host_a, node_a)
    b = Run(folder_b, family_of, say, host_b, node_b)
    differ, same = differences(a, b)
    label_a, label_b = labels(a, b, differ)
    table = compare_points(a, b)
    out = folder_for(out_dir, a, b)
    columns, with_python = key_columns(a, b)
    plain = [c for c in columns if not c.startswith("param.")]
    params = [c.removeprefix("param.") for c in columns if c.startswith("param.")]
    how = ("points matched by configuration, not point id: " + ", ".join(plain)
           + (f", and parameters {', '.join(params)}" if params else "")
           + ("" if with_python else " (not by Python or image: one of each per run)"))
    only_a, only_b, notes = unmatched(a, b)
    say(f"A = {a.run_id}  ({label_a})\nB = {b.run_id}  ({label_b})")
    say("differs: " + ("; ".join(f"{n}: {va} -> {vb}" for n, va, vb in differ)
                       or "nothing meta.json records (same host, image, Python, lab commit)"))
    say(how)
    if table.empty:
        say(f"no common points ({only_a} only in A, {only_b} only in B)"
            + (": " + "; ".join(notes) if notes else "")
            + ". Rerun one run with the other's flags (its command line is in meta.json) to "
              "compare them.")
    else:
        table.to_csv(out / "compare.csv", index=False)
        say("\n" + display(table).text())
        if only_a or only_b:
            say(f"({only_a} point(s) only in A, {only_b} only in B: not compared)")
    charts = []
    if not table.empty:
        charts += compare_ratio_chart(table, out, f"{label_b} against {label_a}")
        charts += a.family.compare_charts(table, a, b, (label_a, label_b), out)
    write_report(out, a, b, table, differ, same, how, notes, (label_a, label_b), charts)
    say(f"\ncomparison (compare.csv, charts, report.md, report.html) in {out}")
    return out


def write_report(out, a, b, table, differ, same, how, notes, names, charts):
    facts = [(side, run_id if run_id in name else f"{run_id} ({name.split(': ', 1)[-1]})")
             for side, run_id, name in (("A", a.run_id, names[0]), ("B", b.run_id, names[1]))]
    facts += [(f"{name} (differs)", f"A {va}  |  B {vb}") for name, va, vb in differ]
    facts += [(name, value) for name, value in same]
    facts.append(("matching", how))
    section = report.Section("Point by point", "points")
    if table.empty:
        section.add("notes", ["No common points." + (" " + "; ".join(notes) if notes else "")],
                    "Nothing to compare:")
    else:
        section.add("table", display(table),
                    "Ratio B/A of the medians with its nominal 95% percentile-bootstrap interval "
                    "and the coverage it really has at these trial counts; p: two-sided "
                    "Mann-Whitney U test of the two runs' trials, and adjusted by Holm's method "
                    "for the number of points (the adjusted p decides)")
        section.add("charts", [c for c in charts if c.suffix == ".png"])
    warnings = []
    if not table.empty and not (table["smallest_p_value"] < ALPHA).any():
        smallest = table["smallest_p_value"].min()
        warnings.append(warning(
            "too-few-repeats",
            f"with these trial counts the Mann-Whitney test cannot go below p = {smallest:.2f}: "
            f"no difference can be called significant at {ALPHA:g}",
            "rerun both with --repeat 5 or more (4 per side reach p = 0.029 at best)"))
    methods = [
        "Measure: timed seconds for scaling points (lower is better), messages per second for "
        "IPC points (higher is better); measured trials only.",
        f"Ratio interval: percentile bootstrap of median(B) / median(A), "
        f"{stats.BOOTSTRAP_RESAMPLES} resamples, seed {stats.BOOTSTRAP_SEED}.",
        f"Significance: two-sided Mann-Whitney U test (scipy.stats.mannwhitneyu), alpha {ALPHA:g};"
        f" it assumes no distribution. With n trials per side it cannot give p below "
        f"2 / C(2n, n): 0.10 for 3, 0.029 for 4, 0.0079 for 5.",
        "Many points: the p-values of all common points are adjusted together by Holm's "
        "step-down method, which keeps the chance of any false 'better' or 'worse' among them "
        f"at {ALPHA:g}; a point below {ALPHA:g} before adjustment but not after is 'can't tell'.",
        "Interval coverage: asked for 95%, a percentile bootstrap of a ratio of medians covers "
        "less with few trials (a seeded simulation measures about 66% at 2 trials a side, 90% "
        "at 3, 91% at 4, 95% from 5); the table prints that real coverage beside each interval.",
    ]
    page = report.Report(f"Compare {a.run_id} (A) with {b.run_id} (B)",
                         f"{len(table)} common point(s); {names[0]} | {names[1]}", facts,
                         [section], warnings, facts_title="The two runs", methods=methods)
    report.write_markdown(out, page)
    report.write_html(out, page)
