# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cost report as a page for people: the site/department totals as a table and as
charts (drawn by matplotlib as inline SVG), self-contained (no script, no style sheet or
font from anywhere), so it opens from a file or a mail attachment and fetches nothing.

Department and site names come from the legacy export, so from customers: every one is
escaped in the HTML, and the charts draw them as plain text (no mathtext: a name such as
``$x^2$`` is shown as written, not typeset or refused).
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterable
from decimal import Decimal

# Bar colours of the charts (the screenshot test looks for them).
COST_COLOUR = "#1f6fb4"
MINUTES_COLOUR = "#e07b1a"
_TABLE_COLUMNS = ("site", "department", "calls", "answered", "billed_minutes", "cost",
                  "unrated", "open")  # fmt: skip
_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}"
    "td:nth-child(-n+2),th{text-align:left}"
    ".chart svg{max-width:100%;height:auto}"
)


def _label(row: dict) -> str:
    return f"{row['site']} / {row['department']}"


def _bar_chart(labels: list[str], values: list[float], colour: str, title: str, unit: str) -> str:
    """A horizontal bar chart as SVG text."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    height = max(2.5, 0.45 * len(labels) + 1.2)
    figure = Figure(figsize=(8, height), dpi=96)
    FigureCanvasSVG(figure)
    axes = figure.add_subplot()
    positions = list(range(len(labels)))
    axes.barh(positions, values, color=colour)
    axes.set_yticks(positions, labels=labels)
    for tick in axes.get_yticklabels():
        tick.set_parse_math(False)
    axes.invert_yaxis()
    axes.set_xlabel(unit, parse_math=False)
    axes.set_title(title, parse_math=False)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    # Inline in HTML: from the <svg> element on (no XML declaration or DOCTYPE).
    return svg[svg.index("<svg") :]


def page(departments: Iterable[dict], period: str, currency: str, totals: dict) -> str:
    """The report page. ``totals``: calls, open, unrated, unreadable (counts) of the run."""
    rows = list(departments)
    labels = [_label(r) for r in rows]
    costs = [float(Decimal(r["cost"])) for r in rows]
    minutes = [float(Decimal(r["billed_minutes"])) for r in rows]
    esc = html.escape
    charts = ""
    if rows:
        charts = "".join(
            f'<div class="chart">{_bar_chart(labels, values, colour, title, unit)}</div>'
            for values, colour, title, unit in (
                (costs, COST_COLOUR, f"Cost per site and department, {period}", currency),
                (minutes, MINUTES_COLOUR, "Billed minutes per site and department", "minutes"),
            )
        )
    head = "".join(f"<th>{esc(c.replace('_', ' '))}</th>" for c in _TABLE_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(str(r.get(c, '')))}</td>" for c in _TABLE_COLUMNS) + "</tr>"
        for r in rows
    )
    total_cost = sum((Decimal(r["cost"]) for r in rows), Decimal("0.00"))
    notes = (
        f"{int(totals.get('calls', 0))} calls; total cost {esc(str(total_cost))} "
        f"{esc(currency)}; {int(totals.get('unrated', 0))} outbound calls without a tariff, "
        f"{int(totals.get('open', 0))} without a confirmed end (not priced), "
        f"{int(totals.get('unreadable', 0))} records with an unreadable time left out."
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Call costs {esc(period)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Call costs {esc(period)}</h1><p>{notes}</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"{charts or '<p>No calls in this period.</p>'}</body></html>\n"
    )
