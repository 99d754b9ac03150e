"""The ipc family's part of the report: the tutorial's sentences, the headlines, the table, the
charts."""

from lab.analysis import ipc as ipc_results
from lab.analysis.ipc_headlines import headlines
from lab.present import ipc_charts
from lab.present.report import Section
from lab.present.tables import Table

def ipc_section(trials, table, out, say):
    """Tutorial-style lines, headline ratios and charts of an IPC run (`table`: its summary);
    charts are written into the folder `out`."""
    pythons = ", ".join(sorted(str(p) for p in trials["python"].dropna().unique()))
    suffix = f" — Python {pythons}"
    charts = []
    for chart in ipc_charts.CHARTS:
        charts += chart(table, out, suffix)
    tutorial = "\n".join(ipc_results.tutorial_lines(table))
    display = Table(*ipc_results.display_table(table))
    notes = headlines(table, trials)
    say("\n" + tutorial + "\n\n" + display.text())
    if notes:
        say("\n" + "\n".join(f"- {note}" for note in notes))
    section = Section("Inter-process channels", "ipc")
    if tutorial:
        section.add("text", tutorial, "The tutorial's sentence per channel, from the median "
                    "trial (* the tutorial's three channels)")
    if notes:
        section.add("notes", notes, "In short (a ratio of medians with its bootstrap interval: "
                    "faster or slower only where the interval leaves out 1, else level):")
    section.add("table", display, "Every point: medians of the measured trials; msgs/s and "
                "MB/s of the payload; p50/p99 round trip where the pattern is ping-pong")
    section.add("charts", [c for c in charts if c.suffix == ".png"])
    return section
