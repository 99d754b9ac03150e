"""Analysis and charts of a run folder, from raw.jsonl alone (nothing is run here).

`build` writes summary.csv, the charts and report.md, and prints the table of the run.
"""

import math

from lab import plots, results, runfolder

SUMMARY = "summary.csv"


def _fmt(value, pattern="{:.3f}"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pattern.format(value)


def scaling_table(summary):
    """The table printed at the end: CPUs, workers, median seconds, speedup, efficiency."""
    lines = [f"{'python':<7} {'variant':<9} {'limit':<7} {'CPUs':>5} {'workers':>8} {'n':>3} {'median s':>9} "
             f"{'IQR s':>7} {'speedup':>8} {'abs.':>6} {'effic.':>7} {'failed':>6}"]
    for _, row in summary.iterrows():
        cpus = f"q{row['quota']:g}" if row["limit"] == "quota" else str(row["cpus"])
        workers = "default" if row["workers"] is None else str(row["workers"])
        speedup = row["scaled_speedup"] if row["variant"] == "weak" else row["speedup"]
        lines.append(f"{str(row['python']):<7} {row['variant']:<9} {row['limit']:<7} {cpus:>5} {workers:>8} "
                     f"{row['n']:>3} {_fmt(row['median_s']):>9} {_fmt(row['iqr_s']):>7} "
                     f"{_fmt(speedup, '{:.2f}'):>8} {_fmt(row['speedup_absolute'], '{:.2f}'):>6} "
                     f"{_fmt(row['efficiency'], '{:.2f}'):>7} {row['failed']:>6}")
    fits = summary.drop_duplicates(["variant", "python"])
    for _, row in fits[fits["amdahl"] != ""].iterrows():
        lines.append(f"Amdahl, {row['variant']} (Python {row['python']}): {row['amdahl']}")
    return "\n".join(lines)


def build(folder, say=print):
    """Summary, charts and report of `folder`; returns the number of failed measured trials."""
    trials = results.load_trials(folder, warn=say)
    if trials.empty:
        say(f"{folder.raw_path}: no trials recorded yet; nothing to report")
        return 0
    meta = folder.read_meta() if folder.meta_path.exists() else {}
    failed = int(((trials["ok"] != True) & (trials["warmup"] == False)).sum())  # noqa: E712
    sections = []
    scaling = trials[trials["experiment"] == "scaling"]
    if not scaling.empty:
        summary = results.scaling_summary(scaling)
        summary.to_csv(folder.path / SUMMARY, index=False)
        pythons = ", ".join(sorted(str(p) for p in scaling["python"].dropna().unique()))
        suffix = f" — Python {pythons}, {meta.get('backend', {}).get('backend', '')}"
        charts = []
        if summary["speedup"].notna().any():
            charts += plots.speedup_chart(summary, scaling, folder.path, suffix)
        if summary["efficiency"].notna().any():
            charts += plots.efficiency_chart(summary, folder.path, suffix)
        table = scaling_table(summary)
        notes = []
        if (summary["limit"] == "quota").any():
            view = results.quota_view(scaling, summary)
            charts += plots.quota_chart(view, folder.path, suffix)
            notes = results.pool_sizing_sentences(view)
        say("\n" + table)
        if notes:
            say("\nWhat to size a pool by:\n" + "\n".join(f"- {s}" for s in notes))
        sections.append(("CPU-bound scaling", table, [c for c in charts if c.suffix == ".png"],
                         notes))
    if failed:
        say(f"\n{failed} measured trial(s) failed; their reasons are in {folder.raw_path}")
    write_markdown(folder, meta, sections, failed)
    say(f"\nsummary, charts and report in {folder.path}")
    return failed


def write_markdown(folder, meta, sections, failed):
    host = meta.get("host", {})
    image = meta.get("image", {})
    lines = [f"# Run {folder.run_id}", "",
             f"- task: {meta.get('task')}, status: {meta.get('status')}",
             f"- host: {host.get('cpu_model')}, {host.get('usable_cpus')} usable CPUs, "
             f"kernel {host.get('kernel')}, cgroup v{host.get('cgroup_version')}",
             f"- backend: {meta.get('backend', {}).get('backend')}, image "
             f"{image.get('tag') or image.get('id')} (base {image.get('base')}), "
             f"Python {image.get('python')}",
             f"- seed {meta.get('seed')}, {meta.get('trials_planned')} trials planned, "
             f"{failed} measured trial(s) failed", ""]
    for title, table, charts, notes in sections:
        lines += [f"## {title}", "", "```", table, "```", ""]
        if notes:
            lines += ["What to size a pool by:", ""] + [f"- {note}" for note in notes] + [""]
        lines += [f"![{chart.stem}]({chart.name})" for chart in charts] + [""]
    (folder.path / "report.md").write_text("\n".join(lines))


def rebuild(results_dir, run, say=print):
    """`invoke report RUN`: redraw from raw.jsonl without running anything."""
    folder = runfolder.resolve(results_dir, run)
    return build(folder, say=say)
