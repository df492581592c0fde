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
       max-width: 1100px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
h3 { margin: 1.2rem 0 .3rem; font-size: 1.05rem; }
.audience { display: inline-block; padding: .2rem .6rem; border-radius: .3rem; background: #eef3fb;
            border: 1px solid #c5d5ee; font-size: .9rem; }
.audience.custodian { background: #fff4e5; border-color: #f0c98a; }
.summary { border: 1px solid #c5d5ee; background: #f7faff; border-radius: .4rem; padding: .4rem 1.2rem 1rem;
           margin-top: 1.2rem; }
.summary h2 { border: 0; margin: 1.1rem 0 .3rem; font-size: 1.15rem; }
.summary .kicker { text-transform: uppercase; letter-spacing: .08em; font-size: .8rem; color: #345; margin: .8rem 0 0; }
.gates ~ .no-gates, .override ~ .no-gates { display: none; }
.summary .lead { font-size: 1.08rem; }
.summary ul { margin: .2rem 0 .6rem; padding-left: 1.3rem; } .summary li { margin: .25rem 0; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.muted, .description { color: #555; font-size: .85rem; }
.reason { color: #8a4b00; font-size: .85rem; }
.na { color: #8a4b00; font-weight: 600; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #c62828; font-weight: 600; }
.override { border: 1px solid #f0c98a; background: #fff8ec; padding: .6rem 1rem; border-radius: .3rem; }
.metrics { list-style: none; padding: 0; margin: .4rem 0; }
.metric { border-bottom: 1px solid #eee; }
.metric > details > summary { display: grid; grid-template-columns: minmax(0, 1fr) 6rem 7rem; gap: .8rem;
                              align-items: baseline; padding: .35rem .2rem; cursor: pointer; list-style: none; }
.metric > details > summary::-webkit-details-marker { display: none; }
.metric > details > summary::before { content: "▸"; color: #678; position: absolute; margin-left: -1rem; }
.metric > details[open] > summary::before { content: "▾"; }
.metric .name { font-weight: 500; } .metric .hint { display: block; color: #555; font-size: .82rem; font-weight: 400; }
.metric .value { text-align: right; font-variant-numeric: tabular-nums; font-weight: 600; }
.metric .body { padding: .2rem 0 .8rem 1rem; }
.verdict { display: inline-block; padding: .05rem .5rem; border-radius: 1rem; font-size: .82rem; text-align: center; }
.verdict.good { background: #e3f4e8; color: #1a6b36; } .verdict.fair { background: #fff3d6; color: #7a5400; }
.verdict.poor { background: #fde4e4; color: #a4232b; } .verdict.none { background: #eee; color: #555; }
details { margin: .2rem 0; } summary { cursor: pointer; color: #234; }
details table { font-size: .8rem; } h4 { margin: .5rem 0 .2rem; font-size: .85rem; }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .88rem; color: #333; max-width: 900px; }
@media print {
  @page { size: A4; margin: 15mm 12mm; }
  body { margin: 0; max-width: none; font-size: 10.5pt; color: #000; }
  .summary { background: none; border: 1px solid #999; }
  h2 { break-after: avoid; page-break-after: avoid; }
  .metric, figure, tr, .summary li { break-inside: avoid; page-break-inside: avoid; }
  figure img { max-width: 100%; border: 0; }
  .metric > details > summary::before { content: ""; }
  details::details-content { content-visibility: visible; display: block; }  /* folds print open */
  .verdict { border: 1px solid #999; background: none !important; color: #000 !important; }
  a { color: #000; text-decoration: none; }
}
"""


#: Where :func:`with_gates` puts the gate results of a stored page (they are judged when read).
GATES_MARKER = "<!-- publication gates -->"


def gates_block(report: Mapping[str, Any]) -> str:
    """The gate results and any override of ``report`` (``gates``, ``override``) as HTML, or ''."""
    sections: Mapping[str, list] = report.get("sections") or {}
    labels = {m.get("key"): display_label(m) for metrics in sections.values() for m in metrics or ()}
    parts = []
    if report.get("gates"):
        parts.append(_gates(report["gates"], labels))
    if report.get("override"):
        parts.append(_override(report["override"]))
    return "".join(parts)


def with_gates(page: str, report: Mapping[str, Any]) -> str:
    """A stored page with the gate results as judged now (the dataset's gates may have changed
    since the page was rendered), in its summary."""
    return page.replace(GATES_MARKER, gates_block(report) + GATES_MARKER, 1)


def render_html(report: Mapping[str, Any], figures: Iterable[Figure], *, title: str, audience: str) -> str:
    """The page for ``report`` (what ``Report.to_dict(audience)`` returns, optionally with
    ``gates`` and ``override`` added) and its figures.

    First a summary in plain words (what the release is fit for, what to be careful about, the
    publication gates), then one line per metric with its details folded, then the figures."""
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {AUDIENCES}")
    public = audience == "public"
    sections: Mapping[str, list] = report.get("sections") or {}
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="audience {_e(audience)}">{_e(NOTES[audience])}</p>',
        _summary(sections),
        gates_block(report), GATES_MARKER, NO_GATES, "</section>",
    ]
    samples = (report.get("meta") or {}).get("samples") or []
    for name, metrics in sections.items():
        body.append(f'<h2 id="section-{_e(name)}">{_e(SECTION_TITLES.get(name, name.title()))}</h2>')
        body.extend(f'<p class="muted sample">{_e(note.get("text", ""))}</p>' for note in samples
                    if note.get("section") == name)
        body.append(_section(metrics or [], public=public) if metrics else '<p class="muted">No metrics.</p>')
    shown = [f for f in figures if not public or f.key.startswith(PUBLIC_PREFIX)]
    if shown:
        body.append("<h2>Figures</h2>")
        body.extend(_figure(f) for f in shown)
    if report.get("meta"):
        body.append(_meta(report["meta"]))
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


# ------------------------------------------------------------------------------ plain language
#: How a score reads: (good if at least / at most, fair if at least / at most). Keys absent here get no verdict
#: (a C-index or a classifier AUC on its own says how hard the task is, not how good the release is).
_HIGHER = {  # higher is better
    "fidelity.overall": (0.9, 0.8), "fidelity.csf": (0.9, 0.8), "fidelity.gsf": (0.9, 0.8),
    "fidelity.column_shapes": (0.9, 0.8), "fidelity.column_pair_trends": (0.9, 0.8), "fidelity.pca": (0.9, 0.8),
    "fidelity.basic_statistics": (0.9, 0.8), "fidelity.support_coverage": (0.9, 0.8),
    "fidelity.log_correlation": (0.8, 0.6), "survival.km_divergence": (0.9, 0.8), "survival.optimism": (0.9, 0.8),
    "survival.short_sightedness": (0.9, 0.8), "survival.median_follow_up": (0.9, 0.8),
    "survival.cox_sign_agreement": (0.85, 0.7), "survival.cox_significance_agreement": (0.8, 0.6),
    "survival.logrank_p": (0.05, 0.01), "survival.indicator_p": (0.05, 0.01),
    "privacy.dcr_ratio": (0.95, 0.85), "privacy.nndr": (0.7, 0.5),
    "utility.classification_ratio": (0.9, 0.75), "utility.c_index_ratio": (0.9, 0.75),
}
_LOWER = {"privacy.ims": (0.01, 0.05), "privacy.leakage_coefficient": (0.05, 0.1)}
#: AUCs whose ideal is 0.5 (a classifier no better than a coin): judged by their distance from 0.5.
_HALF = {"fidelity.detection_auc": (0.1, 0.2), "privacy.mia_auc": (0.05, 0.1)}
_HALF_HINT = {
    "fidelity.detection_auc": "0.5 is ideal: a classifier cannot tell synthetic from real rows",
    "privacy.mia_auc": "0.5 is ideal: the attack does no better than chance",
}
#: What a weak score means, in words, for "what to be careful about".
_CAUTION = {
    "fidelity.overall": "the columns' distributions or their pairwise relations differ from the real cohort's",
    "fidelity.csf": "distributions, correlations or the overall shape of the rows differ from the real cohort's",
    "fidelity.gsf": "the shares and co-occurrence of the yes/no columns differ from the real cohort's",
    "fidelity.column_shapes": "some columns are distributed differently from the real ones",
    "fidelity.column_pair_trends": "some pairs of columns relate differently than in the real data",
    "fidelity.pca": "the rows' overall shape (their main directions of variation) differs",
    "fidelity.basic_statistics": "means, medians or spreads of some numeric columns differ",
    "fidelity.support_coverage": "some values or categories of the real data are rare or missing",
    "fidelity.log_correlation": "correlations between columns are weaker or stronger than in the real data",
    "fidelity.detection_auc": "a classifier can tell the synthetic rows from the real ones",
    "survival.km_divergence": "the survival curve differs from the real one",
    "survival.optimism": "the survival curve is more optimistic or pessimistic than the real one",
    "survival.short_sightedness": "follow-up is shorter or longer than in the real data",
    "survival.median_follow_up": "the median follow-up differs from the real one",
    "survival.cox_sign_agreement": "some hazard ratios point the other way than in the real data",
    "survival.cox_significance_agreement": "which hazard ratios are significant differs from the real data",
    "survival.logrank_p": "a log-rank test tells the synthetic survival curve from the real one",
    "survival.indicator_p": "a Cox model tells synthetic from real rows by their survival",
    "privacy.ims": "some synthetic rows are copies of training rows",
    "privacy.dcr_ratio": "synthetic rows lie closer to the training patients than to unseen ones",
    "privacy.nndr": "some synthetic rows sit unusually close to one training patient",
    "privacy.leakage_coefficient": "synthetic rows match training rows more often than unseen rows",
    "privacy.mia_auc": "an attacker can partly tell who was in the training data",
    "utility.classification_ratio": "a prediction model trained on these rows does worse than one trained on real rows",
    "utility.c_index_ratio": "a survival model trained on these rows ranks patients worse than one trained on real rows",
}


def _judge(metric: Mapping[str, Any]) -> str:
    """"good", "fair", "poor", "none" (no verdict for this kind of score) or "na" (not measured)."""
    key, value = metric.get("key"), metric.get("value")
    if not metric.get("applicable", True) or not isinstance(value, (int, float)) or isinstance(value, bool) \
            or not math.isfinite(value):
        return "na"
    if key in _HALF:
        good, fair = _HALF[key]
        distance = value - 0.5 if key == "privacy.mia_auc" else abs(value - 0.5)
        return "good" if distance <= good else "fair" if distance <= fair else "poor"
    if key in _HIGHER:
        good, fair = _HIGHER[key]
        return "good" if value >= good else "fair" if value >= fair else "poor"
    if key in _LOWER:
        good, fair = _LOWER[key]
        return "good" if value <= good else "fair" if value <= fair else "poor"
    return "none"


_VERDICT_WORDS = {"good": "good", "fair": "fair", "poor": "weak", "none": "", "na": "not measured"}


def binary_columns(metric: Mapping[str, Any]) -> list[str]:
    """The yes/no columns the binary-column score was computed on (from its public details)."""
    for part in ("details", "synthetic_details"):
        content = metric.get(part) or {}
        if isinstance(content, Mapping):
            if isinstance(content.get("binary_columns"), list):
                return [str(c) for c in content["binary_columns"]]
            if isinstance(content.get("positive_shares"), Mapping):
                return [str(c) for c in content["positive_shares"]]
    return []


def display_label(metric: Mapping[str, Any]) -> str:
    """The metric's name on the page. The JSON keeps its label; the page names the score from what its
    columns are (the binary-column score is not "genomic" on a cohort without genomic data)."""
    key = metric.get("key")
    if key == "fidelity.gsf":
        return "Yes/no-column fidelity (GSF)"
    if key == "fidelity.detection_auc":
        return "Detection AUC (real vs synthetic)"
    return str(metric.get("label") or key or "")


def _hint(metric: Mapping[str, Any]) -> str:
    key = metric.get("key")
    if key in _HALF:
        value = metric.get("value")
        hint = _HALF_HINT[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            hint += f"; this is {_number(abs(value - 0.5))} from 0.5"
        return hint
    if key == "fidelity.gsf":
        columns = binary_columns(metric)
        shown = ", ".join(columns[:12]) + (f" and {len(columns) - 12} more" if len(columns) > 12 else "")
        return (f"on the yes/no columns ({shown}); " if columns else "on the yes/no columns; ") + \
            f"{_better_words(metric)}"
    return _better_words(metric)


def _better_words(metric: Mapping[str, Any]) -> str:
    better = {"higher": "higher is better", "lower": "lower is better"}.get(metric.get("better"), "")
    bounds = _range(metric.get("range"))
    return f"{better}, range {bounds}" if better else f"range {bounds}"


def _summary(sections: Mapping[str, list]) -> str:
    metrics = {m.get("key"): m for ms in sections.values() for m in ms or ()}
    verdict = {key: _judge(m) for key, m in metrics.items()}

    def ok(*keys: str) -> bool:
        present = [k for k in keys if k in verdict]
        return bool(present) and all(verdict[k] == "good" for k in present)

    def value(key: str) -> str:
        return _number(metrics[key].get("value")) if key in metrics else "n/a"

    fit = []
    if ok("fidelity.overall", "fidelity.csf"):
        fit.append("Exploring the data, teaching, and writing and testing analysis code: the columns' distributions "
                   f"and their relations are close to the real cohort's (overall fidelity {value('fidelity.overall')} "
                   "of 1).")
    if ok("survival.km_divergence", "survival.cox_sign_agreement"):
        share = metrics.get("survival.cox_sign_agreement", {}).get("value")
        agree = f"; {share:.0%} of hazard ratios point the same way as in the real data" \
            if isinstance(share, (int, float)) else ""
        fit.append(f"Drafting survival analyses: the survival curve is close to the real one "
                   f"(agreement {value('survival.km_divergence')} of 1{agree}).")
    if ok("utility.classification_ratio", "utility.c_index_ratio") and (
            "utility.classification_ratio" in verdict or "utility.c_index_ratio" in verdict):
        fit.append("Prototyping prediction models: a model trained on the synthetic rows does about as well on real "
                   "patients as one trained on the real rows.")
    if ok("privacy.ims", "privacy.dcr_ratio", "privacy.mia_auc"):
        fit.append("Sharing within the terms of the release: no synthetic row copies a training row, and the rows "
                   "are no closer to the training patients than to patients the model never saw.")
    if not fit:
        fit.append("Code development and teaching only: the scores below are not strong enough to draft analyses "
                   "on these rows.")

    careful = []
    for key, metric in metrics.items():
        if verdict[key] in ("poor", "fair") and key in _CAUTION:
            careful.append(f"{display_label(metric)} is {_VERDICT_WORDS[verdict[key]]} "
                           f"({_number(metric.get('value'))}): {_CAUTION[key]}.")
    missing = [display_label(m) for k, m in metrics.items() if verdict[k] == "na"]
    if missing:
        careful.append("Not measured: " + ", ".join(missing) + " (the reasons are under each score).")
    careful.append("A finding on synthetic rows is a lead, not a result: check it on the real data with a "
                   "verification (a differentially private answer) before you report it.")

    counts = {word: sum(1 for v in verdict.values() if v == word) for word in ("good", "fair", "poor")}
    lead = (f"Of the {sum(counts.values())} scores with a verdict, {counts['good']} are good, {counts['fair']} fair "
            f"and {counts['poor']} weak.")
    parts = ['<section class="summary" id="summary" aria-label="Summary"><p class="kicker">Summary</p>',
             f'<p class="lead">{_e(lead)}</p>',
             "<h2>What this release is fit for</h2><ul>", *(f"<li>{_e(line)}</li>" for line in fit), "</ul>",
             "<h2>What to be careful about</h2><ul>", *(f"<li>{_e(line)}</li>" for line in careful), "</ul>"]
    return "".join(parts)


#: Stays after the gates marker; hidden by the CSS once :func:`with_gates` puts gate results before it (so the
#: stored page is the served page less the gates block).
NO_GATES = ('<div class="no-gates"><h2>Publication gates</h2>'
            '<p class="muted">No publication gate is set for this dataset.</p></div>')


# ------------------------------------------------------------------------------------- blocks
def _meta(meta: Mapping[str, Any]) -> str:
    return f"<h2>About this report</h2><details><summary>Run facts</summary>{_value(meta, 0)}</details>"


def _gates(gates: list[Mapping[str, Any]], labels: Mapping[str, Any]) -> str:
    failed = sum(1 for g in gates if not g.get("passed"))
    verdict = (f'<p class="pass">Every publication gate passed. <span class="muted">({len(gates)} of {len(gates)})</span></p>'
               if not failed
               else f'<p class="fail">{failed} of {len(gates)} publication gates failed.</p>')
    rows = []
    for gate in gates:
        metric = gate.get("metric", "")
        rule = f"{_COMPARISON.get(gate.get('comparison'), gate.get('comparison', ''))} {_plain(gate.get('threshold'))}"
        result = '<td class="pass">passed</td>' if gate.get("passed") else '<td class="fail">failed</td>'
        rows.append(f"<tr><td>{_e(labels.get(metric) or metric)} <span class=\"muted\">{_e(gate.get('gate', ''))}</span>"
                    f"</td>{_cell(gate.get('value'))}<td>{_e(rule)}</td>{result}"
                    f"<td>{_e(gate.get('reason', ''))}</td></tr>")
    return ('<h2>Publication gates</h2><div class="gates">' + verdict + "<table><thead><tr><th>Score (gate)</th>"
            "<th>Value</th><th>Rule</th><th>Result</th><th>Reason</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></div>")


def _override(override: Mapping[str, Any]) -> str:
    return ('<div class="override"><strong>Published by override</strong> of the failed gates'
            f" by {_e(override.get('by', ''))} at {_e(override.get('at', ''))}.<br>"
            f"Justification: {_e(override.get('justification', ''))}</div>")


def _section(metrics: list[Mapping[str, Any]], *, public: bool) -> str:
    """One line per metric (name, value, verdict), its description and breakdowns folded under it."""
    lines = []
    for metric in metrics:
        judged = _judge(metric)
        if judged == "na":
            value = '<span class="value na">n/a</span>'
        else:
            value = f'<span class="value">{_e(_number(metric.get("value")))}</span>'
        words = _VERDICT_WORDS[judged]
        verdict = f'<span class="verdict {judged}">{_e(words)}</span>' if words else '<span class="verdict"></span>'
        hint = _hint(metric)
        if judged == "na":
            hint = f'{hint}</span><span class="reason">{_e(metric.get("reason", ""))}'
        else:
            hint = _e(hint)
        summary = (f'<span class="name">{_e(display_label(metric))}<span class="hint">{hint}</span></span>'
                   f"{value}{verdict}")
        inner = []
        if metric.get("description"):
            inner.append(f'<p class="description">{_e(metric["description"])} '
                         f'<span class="muted">({_e(metric.get("key", ""))})</span></p>')
        parts = [("Scores", metric.get("details")), ("Synthetic rows", metric.get("synthetic_details"))]
        if not public:
            parts.append(("Real rows (custodian only)", metric.get("real_details")))
        inner.extend(f"<h4>{_e(name)}</h4>{_value(content, 0)}" for name, content in parts if content)
        lines.append(f'<li class="metric" id="metric-{_e(metric.get("key", ""))}"><details><summary>{summary}'
                     f'</summary><div class="body">{"".join(inner)}</div></details></li>')
    return '<ul class="metrics">' + "".join(lines) + "</ul>"


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
