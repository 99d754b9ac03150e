"""The report of a run folder, from raw.jsonl and meta.json alone (nothing is run here).

`build` asks the run's family for its summary (summary.csv) and its section (tables, charts as
PNG and SVG, what it prints), adds what every run has (what was run on what, the warnings, how
the numbers are computed), and writes the same report twice: report.md (renders on a Git forge, the PNGs beside
it) and report.html (one self-contained file: CSS inline, charts embedded as base64 PNG, no
external resource, so it can be copied off a VM alone). Both come from one `Report` object;
a format is one `write_*` function.
"""

import base64
import datetime
import html
import shlex
from dataclasses import dataclass, field

from lab.analysis import stats
from lab.analysis.trials import load_trials, measured
from lab.analysis.conditions import condition_warnings
from lab.analysis.nodes import node_lines, node_warning
from lab.analysis.warnings import MIN_SECONDS, data_warnings, grouped_points, normalised
from lab.present.tables import Table

SUMMARY = "summary.csv"
MARKDOWN = "report.md"
HTML = "report.html"


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


# --- what was run, on what ---------------------------------------------------------------------

def _when(timestamp):
    if not isinstance(timestamp, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def facts(meta, trials, failed, folder, family_facts=()):
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
    kept = measured(trials) if len(trials) else trials
    warmup = int((trials["warmup"] == True).sum()) if len(trials) else 0  # noqa: E712
    out.append(("plan", f"seed {meta.get('seed')}, {meta.get('points_planned', '?')} points, "
                        f"{meta.get('trials_planned', '?')} trials planned, {len(trials)} recorded "
                        f"({warmup} warm-up, "
                        f"{len(kept)} measured, {failed} measured failed)"))
    out += family_facts
    if meta.get("hosts"):  # several hosts: their facts are in the table of hosts
        names = ", ".join(meta["hosts"])
        out.append(("hosts", f"{len(meta['hosts'])}, side by side, one trial at a time on "
                             f"each: {names} (facts per host below)"))
        host = {}
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
        # a backend may say itself in one line (e.g. a cluster: partition, nodes, packing)
        out.append(("backend", backend.get("summary") or f"{backend.get('backend')}{engine}"))
    images = meta.get("images") or ({"": meta["image"]} if meta.get("image") else {})
    for image in images.values():
        ident = str(image.get("id") or "")
        out.append(("image", f"{image.get('tag') or ident} ({ident.removeprefix('sha256:')[:12]}),"
                             f" base {image.get('base')}, Python {image.get('python')}"))
    if len(trials) and "python" in trials:
        seen = ", ".join(sorted(str(p) for p in trials["python"].dropna().unique()))
        out.append(("Python in the trials", seen))
    return out


def host_words(facts):
    """What machine a host is, from its facts: the instance type where its DMI data names it
    (EC2), else vendor and product; whether it is virtualised."""
    dmi = facts.get("dmi") or {}
    kind = facts.get("instance_type") or " ".join(
        v for v in (dmi.get("sys_vendor"), dmi.get("product_name")) if v) or "-"
    virtual = facts.get("virtualisation")
    return kind + (f" (virtualised: {virtual})" if virtual and virtual != "none" else "")


def nodes_section(trials):
    """Where a host is several nodes (a Slurm partition): trials per node and how far a point's
    medians on its nodes lie apart; nothing for a host of one machine."""
    lines = node_lines(trials)
    if not lines:
        return []
    return [Section("Nodes", "nodes").add(
        "notes", lines, "A point's trials ran on several nodes of its host; its statistics and "
        "speedups are over all of them (never one node against another):")]


def hosts_section(meta):
    """The facts of every host of a run on several (--hosts), one row each, from that host."""
    headers = ["host", "machine", "CPU model", "CPUs (usable)", "cores, SMT", "kernel, cgroup",
               "engine", "image", "status"]
    lost = meta.get("hosts_lost") or {}
    rows = []
    for name, facts in meta["hosts"].items():
        topo = facts.get("topology") or {}
        engine = facts.get("backend") or {}
        images = facts.get("images") or {}
        image = "; ".join(
            f"{(i.get('id') or '').removeprefix('sha256:')[:12]} Python {i.get('python')}"
            + (f", shipped {i['shipped_bytes'] / 2**20:.0f} MiB in {i['shipped_seconds']:.1f} s"
               if i.get("shipped_seconds") is not None and i.get("shipped_bytes") else "")
            for i in images.values()) or "-"
        rows.append([name, host_words(facts), str(facts.get("cpu_model") or "?"),
                     f"{facts.get('cpu_count')} ({facts.get('usable_cpus')})",
                     f"{topo.get('physical_cores')} cores, SMT {'on' if topo.get('smt') else 'off'}",
                     f"{facts.get('kernel')}, cgroup v{facts.get('cgroup_version')}",
                     f"Docker {engine.get('engine_version')} on {engine.get('os')}", image,
                     f"lost: {lost[name]}" if name in lost else "ok"])
    section = Section("Hosts", "hosts")
    section.add("table", Table(headers, rows, "l" * len(headers)),
                "Each host's facts come from that host (a probe container there for a remote "
                "engine), never from the machine that drove the run")
    return section


def summary_line(meta, trials, failed, folder):
    host = meta.get("host") or {}
    pythons = ", ".join(sorted(str(p) for p in trials["python"].dropna().unique()))
    where = (f"{host.get('cpu_model') or 'a host'} with {host.get('usable_cpus', '?')} usable "
             f"CPUs" if not meta.get("hosts") else f"{len(meta['hosts'])} hosts")
    return (f"{meta.get('task') or 'run'} run, {meta.get('status') or 'status unknown'}: "
            f"{len(trials)} trials ({failed} measured failed) on {where}, "
            f"{(meta.get('backend') or {}).get('backend') or '?'} backend, Python {pythons}")


METHODS = [
    "Statistics use the measured trials only (ok, not the warm-up round); failed and warm-up "
    "trials stay in raw.jsonl.",
    "Median interval: distribution-free, from order statistics; the coverage shown is the "
    "interval's actual probability of holding the true median (binomial), e.g. [min, max] of 5 "
    "trials is 93.75%, of 3 trials 75%.",
    f"Speedup interval: percentile bootstrap of the ratio of medians T(1) / T(c), "
    f"{stats.BOOTSTRAP_RESAMPLES} resamples, seed {stats.BOOTSTRAP_SEED} (the same data give the "
    f"same interval). Asked for 95%, it really covers about "
    f"{stats.RATIO_INTERVAL_COVERAGE[3]:.0%} with 3 trials a side and "
    f"{stats.RATIO_INTERVAL_COVERAGE[4]:.0%} with 4 (a seeded simulation, rerun by the tests), "
    f"95% or more from 5; an interval of fewer trials shows its real coverage beside it.",
    "CV: sample standard deviation / mean. Outliers: Tukey's fences (beyond 1.5 IQR from the "
    "quartiles), flagged and counted, never dropped.",
]


# --- build -------------------------------------------------------------------------------------

def build(folder, family, say=print):
    """summary.csv, charts, warnings and report of `folder` (a run.folder.RunFolder) by its
    `family` (families.Family); returns the number of failed measured trials."""
    trials = load_trials(folder, warn=say)
    if trials.empty:
        say(f"{folder.raw_path}: no trials recorded yet; nothing to report")
        return 0
    meta = folder.meta_for_reading()  # commands.report said it when damaged
    failed = int(((trials["ok"] != True) & (trials["warmup"] == False)).sum())  # noqa: E712
    summary = family.summarize(trials)
    summary.to_csv(folder.path / SUMMARY, index=False)
    section = family.section(trials, summary, folder.path, meta, say)
    min_seconds = float((meta.get("options") or {}).get("min_seconds") or MIN_SECONDS)
    data = (data_warnings(trials, summary, family.lengthen_flag, family.row_label, min_seconds,
                          family.too_short_advice)
            + family.warnings(trials, summary)
            + condition_warnings(trials)  # every family's trials read where they ran
            + [w for w in [node_warning(trials)] if w])  # a host of several nodes (a cluster)
    warnings = normalised(meta.get("warnings")) + data
    if failed:
        say(f"\n{failed} measured trial(s) failed; their reasons are in {folder.raw_path}")
    say_warnings(warnings, say)
    sections = ([hosts_section(meta)] if meta.get("hosts") else []) + nodes_section(trials) + (
        section if isinstance(section, list) else [section])  # a family may give several
    report = Report(f"Run {folder.run_id}", summary_line(meta, trials, failed, folder),
                    facts(meta, trials, failed, folder, family.facts(meta)), sections, warnings)
    write_markdown(folder.path, report)
    write_html(folder.path, report)
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

def write_markdown(out, report):
    """report.md in the folder `out` (a Path), the PNGs beside it."""
    lines = [f"# {report.title}", "", report.summary_line, "",
             f"## {report.facts_title}", "", Table(["", ""], [[k, v] for k, v in report.facts],
                                                    "ll").markdown(), ""]
    lines += ["## Warnings", ""]
    if report.warnings:
        for item in report.warnings:
            grouped = grouped_points(item)
            if grouped:
                common, groups = grouped
                lines.append(f"- **{item['code']}**: {_lead(item, common)}:")
                lines += [f"  - **{group}**: " + " · ".join(entries) for group, entries in groups]
                lines += ["", f"  *What to do:* {item['advice']}", ""] if item["advice"] else [""]
                continue
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
    (out / MARKDOWN).write_text("\n".join(lines))


def _lead(item, common):
    """A grouped warning's sentence without its points, the parts they all share after it."""
    return item["lead"] + (f"; all at {common}" if common else "")


def _points_html(groups):
    """A grouped warning's points: one row per group (lesson, variant, channel), its points in
    one cell, apart by a middle dot (what was seen may hold a semicolon)."""
    e = html.escape
    return ('<table class="points"><tbody>'
            + "".join(f'<tr><th class="l">{e(group)}</th><td class="l">'
                      + " · ".join(e(entry) for entry in entries) + "</td></tr>"
                      for group, entries in groups) + "</tbody></table>")


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
table.points{margin:.3em 0 .2em;background:#fffdf0}table.points th{background:none;
font-weight:600;padding-right:1em}table.points td{white-space:normal}
.clean{border-left:4px solid #1a7f37;background:#dafbe1;padding:.5em .9em}
td.v-held{background:#dafbe1}td.v-not{background:#ffebe9}td.v-cant{background:#fff8c5}
td.v-busy,td.v-none{background:#eaeef2;color:#57606a}td.v-fact{background:#ddf4ff}
"""


def _png_data_uri(path):
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_html(out, report):
    """report.html in the folder `out` (a Path): one self-contained file (inline CSS, charts as
    base64 PNG, no external resource)."""
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
            grouped = grouped_points(item)
            if grouped:
                common, groups = grouped
                parts.append(f'<div class="warning"><code>{e(item["code"])}</code> '
                             f'{e(_lead(item, common))}:{_points_html(groups)}'
                             f'{advice.removeprefix("<br>")}</div>')
                continue
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
    (out / HTML).write_text(page, encoding="utf-8")
