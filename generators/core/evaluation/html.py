"""The validation report as one self-contained HTML page: inline CSS, figures as data URIs, no
script and no external resource, so it can be mailed, archived or served as-is.

Every string from the report (column names, reasons, justifications) is user input and is
escaped. The public page never shows ``real_details`` nor a figure outside the public set, even if
handed a custodian report or custodian figures by mistake.
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any, Iterable, Mapping

from generators.core.evaluation.plots import PUBLIC_PREFIX, Figure
from generators.core.evaluation.report import AUDIENCES

__all__ = ["render_html"]

#: Lists (and dicts) longer than this are summarised, not listed: a KM curve is not a table.
MAX_ITEMS = 50
#: A dict of per-item statistics becomes one wide table up to this many statistics.
MAX_TABLE_COLUMNS = 12
MAX_DEPTH = 4
NOTES = {
    "custodian": "custodian view: includes statistics of the real data",
    "public": "public view: scores and synthetic-side plots only",
}
SECTION_TITLES = {"fidelity": "Fidelity", "survival": "Survival", "privacy": "Privacy", "utility": "Utility"}
_COMPARISON = {"<=": "≤", ">=": "≥", "<": "<", ">": ">"}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
.audience { display: inline-block; padding: .2rem .6rem; border-radius: .3rem; background: #eef3fb;
            border: 1px solid #c5d5ee; font-size: .9rem; }
.audience.custodian { background: #fff4e5; border-color: #f0c98a; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.muted, .description { color: #666; font-size: .82rem; }
.reason { color: #8a4b00; font-size: .82rem; }
.na { color: #8a4b00; font-weight: 600; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #c62828; font-weight: 600; }
.override { border: 1px solid #f0c98a; background: #fff8ec; padding: .6rem 1rem; border-radius: .3rem; }
details { margin: .2rem 0; } summary { cursor: pointer; color: #345; font-size: .85rem; }
details table { font-size: .8rem; } h4 { margin: .5rem 0 .2rem; font-size: .85rem; }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #444; max-width: 900px; }
"""


#: Where :func:`with_gates` puts the gate results of a stored page (they are judged when read).
GATES_MARKER = "<!-- publication gates -->"


def gates_block(report: Mapping[str, Any]) -> str:
    """The gate results and any override of ``report`` (``gates``, ``override``) as HTML, or ''."""
    sections: Mapping[str, list] = report.get("sections") or {}
    labels = {m.get("key"): m.get("label") for metrics in sections.values() for m in metrics or ()}
    parts = []
    if report.get("gates"):
        parts.append(_gates(report["gates"], labels))
    if report.get("override"):
        parts.append(_override(report["override"]))
    return "".join(parts)


def with_gates(page: str, report: Mapping[str, Any]) -> str:
    """A stored page with the gate results as judged now (the dataset's gates may have changed
    since the page was rendered)."""
    return page.replace(GATES_MARKER, gates_block(report) + GATES_MARKER, 1)


def render_html(report: Mapping[str, Any], figures: Iterable[Figure], *, title: str, audience: str) -> str:
    """The page for ``report`` (what ``Report.to_dict(audience)`` returns, optionally with
    ``gates`` and ``override`` added) and its figures."""
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {AUDIENCES}")
    public = audience == "public"
    sections: Mapping[str, list] = report.get("sections") or {}
    labels = {m.get("key"): m.get("label") for metrics in sections.values() for m in metrics or ()}
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="audience {_e(audience)}">{_e(NOTES[audience])}</p>',
    ]
    if report.get("meta"):
        body.append(_meta(report["meta"]))
    body.append(_headline(report.get("headline") or {}, labels, sections))
    body.append(gates_block(report))
    body.append(GATES_MARKER)
    for name, metrics in sections.items():
        body.append(f"<h2>{_e(SECTION_TITLES.get(name, name.title()))}</h2>")
        body.append(_section(metrics or [], public=public) if metrics else '<p class="muted">No metrics.</p>')
    shown = [f for f in figures if not public or f.key.startswith(PUBLIC_PREFIX)]
    if shown:
        body.append("<h2>Figures</h2>")
        body.extend(_figure(f) for f in shown)
    return ("<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


# ------------------------------------------------------------------------------------ formatting
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
    """Three significant digits, without an exponent between 0.001 and 10 000; whole numbers exact."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value == 0:
            return "0"
        magnitude = abs(value)
        if 1e-3 <= magnitude < 1e4:
            decimals = max(0, 2 - math.floor(math.log10(magnitude)))
            return f"{value:.{decimals}f}"
        return f"{value:.3g}"
    return str(value)


def _plain(value: Any) -> str:
    """A bound or threshold as written (0, 1, 0.85), not padded to three significant digits."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return _number(value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _cell(value: Any) -> str:
    css = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return f"<td{css}>{_e(_number(value))}</td>"


def _range(bounds: Any) -> str:
    low, high = (list(bounds) + [None, None])[:2] if isinstance(bounds, (list, tuple)) else (None, None)
    if low is not None and high is not None:
        return f"[{_plain(low)}, {_plain(high)}]"
    if low is not None:
        return f"≥ {_plain(low)}"
    if high is not None:
        return f"≤ {_plain(high)}"
    return "unbounded"


def _better(better: Any) -> str:
    return {"higher": "higher ↑", "lower": "lower ↓"}.get(better, str(better or ""))


# ------------------------------------------------------------------------------------- blocks
def _meta(meta: Mapping[str, Any]) -> str:
    return f"<details open><summary>Run facts</summary>{_value(meta, 0)}</details>"


def _headline(headline: Mapping[str, Any], labels: Mapping[str, Any], sections: Mapping[str, list]) -> str:
    if not headline:
        return ""
    metrics = {m.get("key"): m for ms in sections.values() for m in ms or ()}
    rows = []
    for key, value in headline.items():
        metric = metrics.get(key, {})
        shown = (f'<td class="num">{_e(_number(value))}</td>' if value is not None
                 else f'<td><span class="na">n/a</span> <span class="reason">{_e(metric.get("reason", ""))}</span></td>')
        rows.append(f"<tr><td>{_e(labels.get(key) or key)} <span class=\"muted\">{_e(key)}</span></td>{shown}"
                    f"<td>{_e(_range(metric.get('range')))}</td><td>{_e(_better(metric.get('better')))}</td></tr>")
    return ("<h2>Headline scores</h2><table><thead><tr><th>Score</th><th>Value</th><th>Range</th>"
            "<th>Better</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _gates(gates: list[Mapping[str, Any]], labels: Mapping[str, Any]) -> str:
    failed = sum(1 for g in gates if not g.get("passed"))
    verdict = ('<p class="pass">Every publication gate passed.</p>' if not failed
               else f'<p class="fail">{failed} of {len(gates)} publication gates failed.</p>')
    rows = []
    for gate in gates:
        metric = gate.get("metric", "")
        rule = f"{_COMPARISON.get(gate.get('comparison'), gate.get('comparison', ''))} {_plain(gate.get('threshold'))}"
        result = '<td class="pass">passed</td>' if gate.get("passed") else '<td class="fail">failed</td>'
        rows.append(f"<tr><td>{_e(gate.get('gate', ''))}</td><td>{_e(labels.get(metric) or metric)}</td>"
                    f"{_cell(gate.get('value'))}<td>{_e(rule)}</td>{result}"
                    f"<td>{_e(gate.get('reason', ''))}</td></tr>")
    return ("<h2>Publication gates</h2>" + verdict + "<table><thead><tr><th>Gate</th><th>Metric</th><th>Value</th>"
            "<th>Rule</th><th>Result</th><th>Reason</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _override(override: Mapping[str, Any]) -> str:
    return ('<div class="override"><strong>Published by override</strong> of the failed gates'
            f" by {_e(override.get('by', ''))} at {_e(override.get('at', ''))}.<br>"
            f"Justification: {_e(override.get('justification', ''))}</div>")


def _section(metrics: list[Mapping[str, Any]], *, public: bool) -> str:
    rows = []
    for metric in metrics:
        if metric.get("applicable", True) and metric.get("value") is not None:
            value = f'<td class="num">{_e(_number(metric.get("value")))}</td>'
        else:
            value = f'<td><span class="na">n/a</span> <span class="reason">{_e(metric.get("reason", ""))}</span></td>'
        description = metric.get("description") or ""
        rows.append(f"<tr><td>{_e(metric.get('label') or metric.get('key', ''))}"
                    f"<div class=\"description\">{_e(description)}</div></td>{value}"
                    f"<td>{_e(_range(metric.get('range')))}</td><td>{_e(_better(metric.get('better')))}</td></tr>")
        parts = [("Scores", metric.get("details")), ("Synthetic rows", metric.get("synthetic_details"))]
        if not public:
            parts.append(("Real rows (custodian only)", metric.get("real_details")))
        shown = [f"<h4>{_e(name)}</h4>{_value(content, 0)}" for name, content in parts if content]
        if shown:
            rows.append(f'<tr><td colspan="4"><details><summary>Breakdown of {_e(metric.get("key", ""))}</summary>'
                        + "".join(shown) + "</details></td></tr>")
    return ("<table><thead><tr><th>Metric</th><th>Value</th><th>Range</th><th>Better</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _value(value: Any, depth: int) -> str:
    """A compact rendering of nested details: scalars inline, per-item statistics as one table."""
    if _scalar(value):
        return _e(_number(value))
    if depth >= MAX_DEPTH:
        return '<span class="muted">…</span>'
    if isinstance(value, Mapping):
        return _mapping(value, depth)
    if isinstance(value, (list, tuple)):
        return _list(list(value), depth)
    return _e(value)


def _too_many(count: int) -> str:
    return f'<span class="muted">{count} items, not shown</span>'


def _mapping(value: Mapping[str, Any], depth: int) -> str:
    if not value:
        return '<span class="muted">none</span>'
    items = list(value.items())
    more = len(items) - MAX_ITEMS
    items = items[:MAX_ITEMS]
    tail = f'<tr><td colspan="99" class="muted">… and {more} more, not shown</td></tr>' if more > 0 else ""
    inner = [v for _, v in items]
    if all(isinstance(v, Mapping) and all(_scalar(x) for x in v.values()) for v in inner):
        columns = list(dict.fromkeys(k for v in inner for k in v))
        if 0 < len(columns) <= MAX_TABLE_COLUMNS:
            head = "<tr><th></th>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>"
            rows = "".join(f"<tr><th>{_e(k)}</th>" + "".join(_cell(v.get(c)) if c in v else "<td></td>" for c in columns)
                           + "</tr>" for k, v in items)
            return f"<table>{head}{rows}{tail}</table>"
    rows = "".join(f"<tr><th>{_e(k)}</th>" + (_cell(v) if _scalar(v) else f"<td>{_value(v, depth + 1)}</td>") + "</tr>"
                   for k, v in items)
    return f"<table>{rows}{tail}</table>"


def _list(value: list[Any], depth: int) -> str:
    if not value:
        return '<span class="muted">none</span>'
    if len(value) > MAX_ITEMS:
        return _too_many(len(value))
    if all(_scalar(v) for v in value):
        return _e(", ".join(_number(v) for v in value))
    if all(isinstance(v, Mapping) and all(_scalar(x) for x in v.values()) for v in value):
        columns = list(dict.fromkeys(k for v in value for k in v))
        if len(columns) <= MAX_TABLE_COLUMNS:
            head = "<tr>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>"
            rows = "".join("<tr>" + "".join(_cell(v.get(c)) if c in v else "<td></td>" for c in columns) + "</tr>"
                           for v in value)
            return f"<table>{head}{rows}</table>"
    return "<ul>" + "".join(f"<li>{_value(v, depth + 1)}</li>" for v in value) + "</ul>"


def _figure(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(figure.title)}">'
            f"<figcaption><strong>{_e(figure.title)}.</strong> {_e(figure.caption)}</figcaption></figure>")
