"""Tables a person reads: the same Table as text (the terminal), Markdown and HTML, and the
number formats every report uses."""

import html
import math
from dataclasses import dataclass

def fmt(value, pattern="{:.3f}"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        if isinstance(value, float) and not math.isfinite(value):
            return "-"
    except TypeError:
        pass
    return pattern.format(value)


def interval(low, high, pattern="{:.3f}"):
    if fmt(low) == "-" or fmt(high) == "-":
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
