"""An HTML report of a scored inbox: one self-contained file that works offline.

`triage report SCORED.csv -o report.html` (or `triage score ... --report report.html`) reads
the rows `triage score` wrote and shows: counts per verdict over time (a plotly chart, with
plotly.js inlined, so no request leaves the file), the top senders per verdict (sponsored mail
apart), the review queue, the most confident pitches and scams with the words behind their
reasons marked, and the conversations worth replying to (`app/rollup.py`).
"""

from __future__ import annotations

import csv
import html
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from app.items import is_anonymous
from app.model import LABELS, Thresholds
from app.rollup import roll_up

TEMPLATES = Path(__file__).with_name("web") / "templates"
COLORS = {"genuine": "#1b7f3b", "sales_pitch": "#b86e00", "spam": "#b3261e"}
_QUOTED = re.compile(r"'([^']{2,200})'")
TOP = 10


def read_scored(path: Path) -> list[dict[str, str]]:
    """Rows of a scored CSV (as `triage score` writes it); ValueError when it is not one."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not {"verdict", "p_genuine", "p_sales_pitch", "p_spam"} <= set(rows[0]):
        raise ValueError(f"{path}: not a scored file (no verdict and p_* columns); make one with `triage score`")
    return rows


def marked(text: str, reasons: list[str]) -> Markup:
    """The text (escaped) with every phrase quoted in a reason ("the words 'X'") marked."""
    phrases = sorted({m.group(1) for r in reasons for m in _QUOTED.finditer(r or "")}, key=len, reverse=True)
    out = html.escape(text)
    for phrase in phrases:
        escaped = html.escape(phrase)
        if escaped in out:
            out = out.replace(escaped, f"<mark>{escaped}</mark>", 1)
    return Markup(out)


def _month(value: str) -> str:
    return value[:7] if re.match(r"\d{4}-\d{2}", value or "") else "unknown"


def verdicts_over_time(rows: list[dict[str, str]]) -> str:
    counts: Counter[tuple[str, str]] = Counter((_month(r.get("sent_at", "")), r["verdict"]) for r in rows)
    months = sorted({m for m, _ in counts})
    fig = go.Figure(
        [go.Bar(name=lab, x=months, y=[counts[(m, lab)] for m in months], marker_color=COLORS[lab]) for lab in LABELS]
    )
    fig.update_layout(
        barmode="stack", height=320, margin={"l": 40, "r": 10, "t": 30, "b": 40}, title="Items per month and verdict"
    )
    return fig.to_html(full_html=False, include_plotlyjs=False)


def top_senders(rows: list[dict[str, str]]) -> dict[str, list[tuple[str, int]]]:
    out = {}
    for lab in LABELS:
        c = Counter(r.get("sender_name") or "" for r in rows if r["verdict"] == lab)
        out[lab] = [(name, n) for name, n in c.most_common() if name.strip() and not is_anonymous(name)][:TOP]
    return out


def build_report(rows: list[dict[str, str]], title: str, thresholds: Thresholds | None = None) -> str:
    """The report's HTML."""
    thresholds = thresholds or Thresholds()
    reason_cols = ("reason_1", "reason_2", "reason_3")

    def view(r: dict[str, str]) -> dict[str, Any]:
        reasons = [r.get(c, "") for c in reason_cols if r.get(c)]
        return {**r, "reasons": reasons, "marked": marked(r.get("snippet", ""), reasons)}

    confident = {
        lab: [view(r) for r in sorted((r for r in rows if r["verdict"] == lab), key=lambda r: -float(r["confidence"] or 0))[:TOP]]
        for lab in ("sales_pitch", "spam")
    }
    conversations = roll_up(rows, thresholds)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    return env.get_template("report.html").render(
        title=title,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        plotly_js=Markup(get_plotlyjs()),
        chart=Markup(verdicts_over_time(rows)),
        counts={lab: sum(r["verdict"] == lab for r in rows) for lab in LABELS},
        total=len(rows),
        review=[view(r) for r in rows if r.get("needs_review") == "true"][: 5 * TOP],
        n_review=sum(r.get("needs_review") == "true" for r in rows),
        sponsored=Counter(r["verdict"] for r in rows if is_anonymous(r.get("sender_name"))),
        senders=top_senders(rows),
        confident=confident,
        worth=[c for c in conversations if c.verdict == "genuine" and c.awaiting_reply][: 3 * TOP],
        dates=(min((r.get("sent_at") or "" for r in rows), default=""), max((r.get("sent_at") or "" for r in rows), default="")),
        labels=LABELS,
        colors=COLORS,
    )


def write_report(scored: Path, out: Path, thresholds: Thresholds | None = None) -> int:
    """Write the report of a scored CSV; returns the number of rows it covers."""
    rows = read_scored(Path(scored))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(build_report(rows, f"Inbox report: {Path(scored).name}", thresholds), encoding="utf-8")
    tmp.replace(out)
    return len(rows)
