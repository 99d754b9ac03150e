"""The lessons verdict table as a person reads it: claim, Python, CPUs, the figure with its
interval and threshold, the verdict (a coloured cell in HTML, a marked one in Markdown) and the
note, from lab.analysis.lessons.verdicts."""

import html
import math

from lab.analysis.lessons import judge
from lab.analysis.lessons.units import short_python, times
from lab.present.tables import Table, percent

MARK = {judge.HELD: "✅", judge.NOT_HELD: "❌", judge.CANT_TELL: "❔", judge.BUSY: "⏸",
        judge.NO_VERDICT: "⚠", judge.FACT: "ℹ", judge.PARTLY: "◐"}
CSS_CLASS = {judge.HELD: "v-held", judge.NOT_HELD: "v-not", judge.CANT_TELL: "v-cant",
             judge.BUSY: "v-busy", judge.NO_VERDICT: "v-none", judge.FACT: "v-fact",
             judge.PARTLY: "v-cant"}
VERDICT_COLUMN = 4


class VerdictTable(Table):
    """A Table whose verdict column carries its verdict's colour (HTML) and mark (Markdown)."""

    def markdown(self):
        marked = [row[:VERDICT_COLUMN] + [f"{MARK.get(row[VERDICT_COLUMN], '')} "
                                          f"{row[VERDICT_COLUMN]}".strip()]
                  + row[VERDICT_COLUMN + 1:] for row in self.rows]
        return Table(self.headers, marked, self.align).markdown()

    def html(self):
        def cells(tag, values):
            out = []
            for i, value in enumerate(values):
                css = self._align(i)
                if tag == "td" and i == VERDICT_COLUMN:
                    css += " " + CSS_CLASS.get(value, "")
                out.append(f'<{tag} class="{css.strip()}">{html.escape(value)}</{tag}>')
            return "".join(out)
        body = "".join(f"<tr>{cells('td', row)}</tr>" for row in self.rows)
        return (f'<div class="scroll"><table class="verdicts"><thead><tr>'
                f'{cells("th", self.headers)}</tr></thead><tbody>{body}</tbody></table></div>')


def figure_words(row):
    """'3.1x [2.8x, 3.4x], 90% coverage; held above 1x' or '3 of 3 trials'."""
    if row["unit"] == "trials":
        return row["note"].split(";")[0] if row["note"] else "-"
    if not math.isfinite(row["ratio"]):
        return "-"
    text = times(row["ratio"])
    if math.isfinite(row["low"]) and math.isfinite(row["high"]):
        text += f" [{times(row['low'])}, {times(row['high'])}]"
        if math.isfinite(row["coverage"]):
            text += f", {percent(row['coverage'])} coverage"
    else:
        text += " (no interval)"
    if math.isfinite(row["threshold"]) and row["verdict"] != judge.FACT:
        text += f"; held above {times(row['threshold'])}"
    return text


def verdict_table(table):
    rows = []
    for _, row in table.iterrows():
        note = row["note"] if row["unit"] != "trials" else "; ".join(row["note"].split("; ")[1:])
        rows.append([row["claim"], short_python(row["python"]), str(int(row["cpus"])),
                     f"{row['figure']}: {figure_words(row)}", row["verdict"], note])
    return VerdictTable(["claim", "Python", "CPUs", "figure [95% interval]", "verdict", "note"],
                        rows, "lrrlll")
