"""Analysis and report of a run folder, from raw.jsonl and meta.json alone (nothing is run here).

`build` writes summary.csv and the charts (PNG and SVG), prints the tables, the fits and the
warnings, and writes the same report twice: report.md (renders on a Git forge, the PNGs beside
it) and report.html (one self-contained file: CSS inline, charts embedded as base64 PNG, no
external resource, so it can be copied off a VM alone). Both come from one `Report` object;
a format is one `write_*` function.
"""

import base64
import datetime
import html
import math
import shlex
from dataclasses import dataclass, field

from lab import checks, plots, results, runfolder, stats

SUMMARY = "summary.csv"
MARKDOWN = "report.md"
HTML = "report.html"


def _fmt(value, pattern="{:.3f}"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        if isinstance(value, float) and not math.isfinite(value):
            return "-"
    except TypeError:
        pass
    return pattern.format(value)


def _interval(low, high, pattern="{:.3f}"):
    if _fmt(low) == "-" or _fmt(high) == "-":
        return "-"
    return f"[{pattern.format(low)}, {pattern.format(high)}]"


def percent(fraction):
    """0.9375 -> '93.75%', 0.5 -> '50%': a coverage as exact as it is, without trailing zeros."""
    return f"{fraction * 100:.2f}".rstrip("0").rstrip(".") + "%"


@dataclass
class Table:
    """Headers and rows of strings; the same table as text, Markdown or HTML. `align` has one
    'l' or 'r' per column (numbers right)."""
    headers: list
    rows: list
    align: str = ""

    def _align(self, index):
        return (self.align[index] if index < len(self.align) else "r") if self.align else "r"

    def text(self):
        widths = [max([len(h)] + [len(r[i]) for r in self.rows])
                  for i, h in enumerate(self.headers)]

        def line(cells):
            return " ".join(c.ljust(w) if self._align(i) == "l" else c.rjust(w)
                            for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
        return "\n".join([line(self.headers)] + [line(r) for r in self.rows])

    def markdown(self):
        def cell(text):
            return text.replace("|", "\\|")
        rule = ["---" if self._align(i) == "l" else "---:" for i in range(len(self.headers))]
        lines = ["| " + " | ".join(cell(h) for h in self.headers) + " |",
                 "| " + " | ".join(rule) + " |"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def html(self):
        def cells(tag, values):
            return "".join(f'<{tag} class="{self._align(i)}">{html.escape(v)}</{tag}>'
                           for i, v in enumerate(values))
        body = "".join(f"<tr>{cells('td', row)}</tr>" for row in self.rows)
        return (f'<div class="scroll"><table><thead><tr>{cells("th", self.headers)}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>")


@dataclass
class Section:
    """A part of the report: blocks in order, each ('table', Table, caption), ('text', str,
    caption) preformatted, ('notes', [sentences], heading) or ('charts', [PNG paths], None)."""
    title: str
    anchor: str
    blocks: list = field(default_factory=list)

    def add(self, kind, content, caption=None):
        self.blocks.append((kind, content, caption))
        return self


@dataclass
class Report:
    title: str
    summary_line: str
    facts: list       # (name, value) pairs: what was run, on what
    sections: list
    warnings: list    # {code, message, advice}
    facts_title: str = "What was run, on what"
    methods: list = field(default_factory=lambda: list(METHODS))


# --- scaling -----------------------------------------------------------------------------------

def scaling_display(summary):
    """The per-point table of a scaling run: spread, the median's interval, speedup with its
    bootstrap interval, efficiency."""
    several = summary["python"].nunique() > 1
    headers = (["python"] if several else []) + [
        "variant", "limit", "CPUs", "workers", "n", "median s", "median interval s (coverage)",
        "CV", "outliers", "speedup [95% CI]", "abs.", "effic.", "failed"]
    rows = []
    for _, row in summary.iterrows():
        cpus = f"q{row['quota']:g}" if row["limit"] == "quota" else str(row["cpus"])
        workers = "default" if row["workers"] is None else str(row["workers"])
        weak = row["variant"] == "weak"
        column = "scaled_speedup" if weak else "speedup"
        speedup = _fmt(row[column], "{:.2f}")
        if speedup != "-":
            speedup += " " + _interval(row[f"{column}_ci_low"], row[f"{column}_ci_high"], "{:.2f}")
        interval = _interval(row["median_ci_low_s"], row["median_ci_high_s"])
        if interval != "-":
            interval += f" ({percent(row['median_ci_coverage'])})" if row["n"] > 1 else ""
        rows.append(([str(row["python"])] if several else []) + [
            row["variant"], row["limit"], cpus, workers, str(row["n"]), _fmt(row["median_s"]),
            interval if row["n"] > 1 else "-", _fmt(row["cv"], "{:.1%}"), str(row["outliers"]),
            speedup, _fmt(row["speedup_absolute"], "{:.2f}"), _fmt(row["efficiency"], "{:.2f}"),
            str(row["failed"])])
    align = ("l" if several else "") + "llrr" + "r" * 9
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
        lines.append(f"Amdahl, {variant} (Python {python}): {curve['amdahl'].iloc[0]}")
        lines.append(f"USL, {variant} (Python {python}): {curve['usl'].iloc[0]}")
    for name, curve in results.weak_curves(summary):
        lines.append(f"Gustafson, weak (Python {curve['python'].iloc[0]}): "
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


def scaling_section(scaling, folder, meta, say):
    summary = results.scaling_summary(scaling)
    summary.to_csv(folder.path / SUMMARY, index=False)
    pythons = ", ".join(sorted(str(p) for p in scaling["python"].dropna().unique()))
    suffix = f" — Python {pythons}, {meta.get('backend', {}).get('backend', '')}"
    charts = []
    if summary["speedup"].notna().any() or summary["scaled_speedup"].notna().any():
        charts += plots.speedup_chart(summary, scaling, folder.path, suffix)
    if summary["efficiency"].notna().any():
        charts += plots.efficiency_chart(summary, folder.path, suffix)
    notes = []
    if (summary["limit"] == "quota").any():
        view = results.quota_view(scaling, summary)
        charts += plots.quota_chart(view, folder.path, suffix)
        notes = results.pool_sizing_sentences(view)
    table = scaling_table(summary)
    lines = fit_lines(summary)
    say("\n" + table)
    if lines:
        say("\n".join(lines))
    if notes:
        say("\nWhat to size a pool by:\n" + "\n".join(f"- {s}" for s in notes))
    section = Section("CPU-bound scaling", "scaling")
    section.add("table", scaling_display(summary),
                "Per point: measured trials' seconds; speedup T(1 CPU) / T(c) (weak: scaled, "
                "c·T(1)/T(c)) with its 95% bootstrap interval; abs. = against the serial run; "
                "effic. = speedup / CPUs")
    if lines:
        section.add("table", fits_display(summary), "Fits to the strong curves' and weak "
                    "curve's median speedups (least squares)")
    if notes:
        section.add("notes", notes, "What to size a pool by:")
    section.add("charts", [c for c in charts if c.suffix == ".png"])
    return summary, section


# --- ipc ---------------------------------------------------------------------------------------

def ipc_section(trials, folder, say):
    """Summary, tutorial-style lines, headline ratios and charts of an IPC run."""
    from lab import ipc_plots, ipc_results
    table = ipc_results.summary(trials)
    table.to_csv(folder.path / SUMMARY, index=False)
    pythons = ", ".join(sorted(str(p) for p in trials["python"].dropna().unique()))
    suffix = f" — Python {pythons}"
    charts = []
    for chart in ipc_plots.CHARTS:
        charts += chart(table, folder.path, suffix)
    tutorial = "\n".join(ipc_results.tutorial_lines(table))
    display = Table(*ipc_results.display_table(table))
    notes = ipc_results.headlines(table)
    say("\n" + tutorial + "\n\n" + display.text())
    if notes:
        say("\n" + "\n".join(f"- {note}" for note in notes))
    section = Section("Inter-process channels", "ipc")
    if tutorial:
        section.add("text", tutorial, "The tutorial's sentence per channel, from the median "
                    "trial (* the tutorial's three channels)")
    if notes:
        section.add("notes", notes, "In short:")
    section.add("table", display, "Every point: medians of the measured trials; msgs/s and "
                "MB/s of the payload; p50/p99 round trip where the pattern is ping-pong")
    section.add("charts", [c for c in charts if c.suffix == ".png"])
    return table, section


# --- what was run, on what ---------------------------------------------------------------------

def _when(timestamp):
    if not isinstance(timestamp, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def facts(meta, trials, failed, folder):
    """(name, value) pairs of meta.json, the things a reader needs to judge and rerun the run."""
    host = meta.get("host") or {}
    topo = host.get("topology") or {}
    backend = meta.get("backend") or {}
    lab = meta.get("lab") or {}
    out = [("run", f"{folder.run_id} ({meta.get('task') or '?'}), status "
                   f"{meta.get('status') or 'unknown'}")]
    started, finished = meta.get("started_at"), meta.get("finished_at")
    if _when(started):
        took = (f", {finished - started:.0f} s" if isinstance(finished, (int, float)) else "")
        out.append(("when", f"{_when(started)} to {_when(finished) or '?'}{took}"))
    if lab.get("command_line"):
        out.append(("command line", shlex.join(str(a) for a in lab["command_line"])))
    out.append(("lab", f"version {lab.get('version', '?')}, git commit "
                       f"{lab.get('git_commit') or 'unknown'}"))
    measured = results.measured(trials) if len(trials) else trials
    warmup = int((trials["warmup"] == True).sum()) if len(trials) else 0  # noqa: E712
    out.append(("plan", f"seed {meta.get('seed')}, {meta.get('points_planned', '?')} points, "
                        f"{meta.get('trials_planned', '?')} trials planned, {len(trials)} recorded "
                        f"({warmup} warm-up, "
                        f"{len(measured)} measured, {failed} measured failed)"))
    if meta.get("calibration"):
        calibration = meta["calibration"]
        out.append(("work", ", ".join(f"{k} {v}" for k, v in calibration.items())))
    if host:
        smt = topo.get("smt")
        out.append(("host", f"{host.get('hostname', '?')}: {host.get('cpu_model') or 'CPU ?'}, "
                            f"{host.get('cpu_count')} CPUs ({host.get('usable_cpus')} usable)"))
        if topo:
            out.append(("topology", f"{topo.get('packages')} package(s), "
                                    f"{topo.get('physical_cores')} physical cores, SMT "
                                    f"{'on' if smt else 'off'}"))
        out.append(("kernel, cgroup", f"{host.get('kernel')}, cgroup v{host.get('cgroup_version')}"
                                      f", host Python {host.get('host_python')}"))
    if backend:
        engine = (f", engine {backend['engine_version']} (API {backend.get('api_version')}, "
                  f"cgroup driver {backend.get('cgroup_driver')}) on {backend.get('os')}"
                  if backend.get("engine_version") else "")
        out.append(("backend", f"{backend.get('backend')}{engine}"))
    images = meta.get("images") or ({"": meta["image"]} if meta.get("image") else {})
    for image in images.values():
        ident = str(image.get("id") or "")
        out.append(("image", f"{image.get('tag') or ident} ({ident.removeprefix('sha256:')[:12]}),"
                             f" base {image.get('base')}, Python {image.get('python')}"))
    if len(trials) and "python" in trials:
        seen = ", ".join(sorted(str(p) for p in trials["python"].dropna().unique()))
        out.append(("Python in the trials", seen))
    return out


def summary_line(meta, trials, failed, folder):
    host = meta.get("host") or {}
    pythons = ", ".join(sorted(str(p) for p in trials["python"].dropna().unique()))
    return (f"{meta.get('task') or 'run'} run, {meta.get('status') or 'status unknown'}: "
            f"{len(trials)} trials ({failed} measured failed) on "
            f"{host.get('cpu_model') or 'a host'}"
            f" with {host.get('usable_cpus', '?')} usable CPUs, "
            f"{(meta.get('backend') or {}).get('backend') or '?'} backend, Python {pythons}")


METHODS = [
    "Statistics use the measured trials only (ok, not the warm-up round); failed and warm-up "
    "trials stay in raw.jsonl.",
    "Median interval: distribution-free, from order statistics; the coverage shown is the "
    "interval's actual probability of holding the true median (binomial), e.g. [min, max] of 5 "
    "trials is 93.75%, of 3 trials 75%.",
    f"Speedup interval: percentile bootstrap of the ratio of medians T(1) / T(c), "
    f"{stats.BOOTSTRAP_RESAMPLES} resamples, seed {stats.BOOTSTRAP_SEED} (the same data give the "
    f"same interval).",
    "CV: sample standard deviation / mean. Outliers: Tukey's fences (beyond 1.5 IQR from the "
    "quartiles), flagged and counted, never dropped.",
]


# --- build -------------------------------------------------------------------------------------

def build(folder, say=print):
    """Summary, charts, warnings and report of `folder`; returns the number of failed measured
    trials."""
    trials = results.load_trials(folder, warn=say)
    if trials.empty:
        say(f"{folder.raw_path}: no trials recorded yet; nothing to report")
        return 0
    meta = folder.read_meta() if folder.meta_path.exists() else {}
    failed = int(((trials["ok"] != True) & (trials["warmup"] == False)).sum())  # noqa: E712
    sections, data = [], []
    scaling = trials[trials["experiment"] == "scaling"]
    if not scaling.empty:
        summary, section = scaling_section(scaling, folder, meta, say)
        sections.append(section)
        data += checks.data_warnings(scaling, summary)
    ipc = trials[trials["experiment"] == "ipc"]
    if not ipc.empty:
        table, section = ipc_section(ipc, folder, say)
        sections.append(section)
        data += checks.data_warnings(ipc, table)
    warnings = checks.normalised(meta.get("warnings")) + data
    if failed:
        say(f"\n{failed} measured trial(s) failed; their reasons are in {folder.raw_path}")
    say_warnings(warnings, say)
    report = Report(f"Run {folder.run_id}", summary_line(meta, trials, failed, folder),
                    facts(meta, trials, failed, folder), sections, warnings)
    write_markdown(folder, report)
    write_html(folder, report)
    say(f"\nsummary, charts and report ({MARKDOWN}, {HTML}) in {folder.path}")
    return failed


def say_warnings(warnings, say=print):
    if not warnings:
        say("\nNo warnings: nothing seen that makes these numbers doubtful.")
        return
    say(f"\nWarnings ({len(warnings)}):")
    for item in warnings:
        say(f"- [{item['code']}] {item['message']}")
        if item["advice"]:
            say(f"  what to do: {item['advice']}")


# --- formats -----------------------------------------------------------------------------------

def write_markdown(folder, report):
    lines = [f"# {report.title}", "", report.summary_line, "",
             f"## {report.facts_title}", "", Table(["", ""], [[k, v] for k, v in report.facts],
                                                    "ll").markdown(), ""]
    lines += ["## Warnings", ""]
    if report.warnings:
        for item in report.warnings:
            lines.append(f"- **{item['code']}**: {item['message']}"
                         + (f"  \n  *What to do:* {item['advice']}" if item["advice"] else ""))
    else:
        lines.append("None: nothing seen that makes these numbers doubtful.")
    lines.append("")
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        for kind, content, caption in section.blocks:
            if kind == "table":
                lines += ([f"*{caption}*", ""] if caption else []) + [content.markdown(), ""]
            elif kind == "text":
                lines += ([f"*{caption}*", ""] if caption else []) + ["```", content, "```", ""]
            elif kind == "notes":
                lines += [caption or "", ""] + [f"- {note}" for note in content] + [""]
            elif kind == "charts":
                lines += [f"![{chart.stem}]({chart.name})" for chart in content] + [""]
    lines += ["## How the numbers are computed", ""] + [f"- {m}" for m in report.methods] + [""]
    (folder.path / MARKDOWN).write_text("\n".join(lines))


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1180px;
margin:1.5em auto;padding:0 1.2em;color:#1f2328;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;
margin-top:1.8em}p.lead{color:#57606a;margin-top:0}nav a{margin-right:1em}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums;margin:.4em 0}
th,td{border-bottom:1px solid #d8dee4;padding:3px 9px;vertical-align:top;white-space:nowrap}
th{background:#f6f8fa}td.l:last-child{white-space:normal;min-width:14em}
.l{text-align:left}.r{text-align:right}
table.facts td{white-space:normal}table.facts td:first-child{color:#57606a;font-weight:600;
width:12em}.scroll{overflow-x:auto}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:12.5px;border-radius:6px}
.caption{color:#57606a;font-size:.92em;margin:.9em 0 .2em}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{color:#57606a;font-size:.9em}
.warning{border-left:4px solid #bf8700;background:#fff8c5;padding:.5em .9em;margin:.6em 0;
border-radius:0 6px 6px 0}.warning code{font-weight:600}.advice{color:#3d3d3d}
.clean{border-left:4px solid #1a7f37;background:#dafbe1;padding:.5em .9em}
"""


def _png_data_uri(path):
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_html(folder, report):
    """One self-contained file: inline CSS, charts as base64 PNG, no external resource."""
    e = html.escape
    nav = [f'<a href="#facts">{e(report.facts_title.split(",")[0])}</a>',
           f'<a href="#warnings">Warnings ({len(report.warnings)})</a>']
    nav += [f'<a href="#{s.anchor}">{e(s.title)}</a>' for s in report.sections]
    nav.append('<a href="#methods">How computed</a>')
    parts = [f"<h1>{e(report.title)}</h1>", f'<p class="lead">{e(report.summary_line)}</p>',
             f"<nav>{''.join(nav)}</nav>", f'<h2 id="facts">{e(report.facts_title)}</h2>',
             '<table class="facts"><tbody>'
             + "".join(f'<tr><td class="l">{e(k)}</td><td class="l">{e(str(v))}</td></tr>'
                       for k, v in report.facts) + "</tbody></table>",
             f'<h2 id="warnings">Warnings ({len(report.warnings)})</h2>']
    if report.warnings:
        for item in report.warnings:
            advice = (f'<br><span class="advice"><b>What to do:</b> {e(item["advice"])}</span>'
                      if item["advice"] else "")
            parts.append(f'<div class="warning"><code>{e(item["code"])}</code> '
                         f'{e(item["message"])}{advice}</div>')
    else:
        parts.append('<div class="clean">None: nothing seen that makes these numbers '
                     'doubtful.</div>')
    for section in report.sections:
        parts.append(f'<h2 id="{section.anchor}">{e(section.title)}</h2>')
        for kind, content, caption in section.blocks:
            if kind in ("table", "text") and caption:
                parts.append(f'<p class="caption">{e(caption)}</p>')
            if kind == "table":
                parts.append(content.html())
            elif kind == "text":
                parts.append(f"<pre>{e(content)}</pre>")
            elif kind == "notes":
                parts.append(f"<p>{e(caption or '')}</p><ul>"
                             + "".join(f"<li>{e(n)}</li>" for n in content) + "</ul>")
            elif kind == "charts":
                for chart in content:
                    parts.append(f'<figure><img src="{_png_data_uri(chart)}" '
                                 f'alt="{e(chart.stem)} chart"><figcaption>{e(chart.name)}; as '
                                 f'SVG: {e(chart.stem)}.svg in the run folder</figcaption>'
                                 f'</figure>')
    parts.append('<h2 id="methods">How the numbers are computed</h2><ul>'
                 + "".join(f"<li>{e(m)}</li>" for m in report.methods) + "</ul>")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(report.title)}</title><style>{CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")
    (folder.path / HTML).write_text(page, encoding="utf-8")


def rebuild(results_dir, run, say=print):
    """`invoke report RUN`: redraw from raw.jsonl without running anything."""
    folder = runfolder.resolve(results_dir, run)
    return build(folder, say=say)
