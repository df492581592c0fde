"""The report's figures and HTML page: which figures each audience gets, that public figures are
computed from the synthetic rows alone, that figures that do not apply are left out, and that the
page is self-contained, escaped and free of real-data statistics in its public form."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimage

from clearinghouse.schema import Schema
from generators.core.evaluation.html import _number, render_html
from generators.core.evaluation.plots import PUBLIC_PREFIX, _log_odds_ratios, _pearson, render_figures
from generators.core.evaluation.report import EvalContext, Metric, Report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCRIPT_NAME = "<script>alert(1)</script>"
#: Planted in real_details only: the public page must not show it in any form.
REAL_MARKER = 987654.321
SYNTHETIC_MARKER = 4242.5
CUSTODIAN_KINDS = ("km", "histograms_1", "correlation", "pca", "cooccurrence")


def _garbage(schema: Schema, rows: int, seed: int) -> pd.DataFrame:
    """Typed rows of uniform noise over the schema's bounds: nothing like the real cohort."""
    rng = np.random.default_rng(seed)
    data = {}
    for column in schema.kept:
        if column.is_numeric:
            values = rng.uniform(column.min, column.max, rows)
            data[column.name] = (pd.Series(np.round(values), dtype="Int64") if column.type == "integer"
                                 else pd.Series(values, dtype="float64"))
        elif column.type == "event":
            data[column.name] = pd.Series(rng.integers(0, 2, rows), dtype="Int8")
        else:
            codes = rng.integers(0, len(column.categories), rows)
            data[column.name] = pd.Categorical.from_codes(codes, categories=list(column.categories))
    return pd.DataFrame(data)


@pytest.fixture(scope="module")
def ctx(gbsg2_split, copula_synthetic, gbsg2_schema) -> EvalContext:
    train, holdout = gbsg2_split
    return EvalContext(train=train, holdout=holdout, synthetic=copula_synthetic, schema=gbsg2_schema,
                       target="cens", seed=0)


@pytest.fixture(scope="module")
def custodian_figures(ctx):
    return render_figures(ctx, "custodian")


@pytest.fixture(scope="module")
def public_figures(ctx):
    return render_figures(ctx, "public")


def _decoded(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_SIGNATURE)
    return mpimage.imread(io.BytesIO(png), format="png")


# ------------------------------------------------------------------------------------ figures
def test_custodian_gets_every_comparison(custodian_figures):
    keys = [f.key for f in custodian_figures]
    assert keys == list(CUSTODIAN_KINDS)  # 10 columns fit one grid figure
    assert not any(key.startswith(PUBLIC_PREFIX) for key in keys)
    for figure in custodian_figures:
        assert figure.title and figure.caption


def test_public_gets_the_synthetic_side_only(public_figures):
    assert [f.key for f in public_figures] == [PUBLIC_PREFIX + kind for kind in CUSTODIAN_KINDS]
    assert "real" not in " ".join(f.title + f.caption for f in public_figures).lower()


def test_pngs_decode_at_the_fixed_size(custodian_figures, public_figures):
    for figure in custodian_figures + public_figures:
        pixels = _decoded(figure.png)
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 200
        assert pixels[..., :3].std() > 0.05  # something is drawn, not a blank canvas
    km = _decoded(custodian_figures[0].png)
    # 7 inches wide; 3.2 for the plot, 1.35 for its labels and margins, 0.2 per row at risk (real and synthetic
    # by hormonal therapy no/yes: 4 rows), at 90 dpi, exactly
    assert km.shape[:2] == (481, 630)
    assert sum(len(f.png) for f in custodian_figures + public_figures) < 1_000_000  # 10 columns: well under 1 MB


def test_public_figures_never_read_a_real_row(ctx, custodian_figures, public_figures):
    garbage = EvalContext(train=_garbage(ctx.schema, 53, seed=1), holdout=_garbage(ctx.schema, 11, seed=2),
                          synthetic=ctx.synthetic, schema=ctx.schema, target=ctx.target, seed=ctx.seed)
    again = render_figures(garbage, "public")
    assert [f.key for f in again] == [f.key for f in public_figures]
    for before, after in zip(public_figures, again):
        assert before.png == after.png, before.key  # byte for byte: also shows the PNGs are deterministic
        assert before.caption == after.caption
    # The garbage does reach the custodian figures, so the equality above is not vacuous.
    changed = [a.key for a, b in zip(custodian_figures, render_figures(garbage, "custodian")) if a.png != b.png]
    assert changed == list(CUSTODIAN_KINDS)


def test_without_survival_there_is_no_km_figure(ctx, gbsg2_schema):
    schema = Schema(columns=gbsg2_schema.columns, survival=None)
    plain = EvalContext(train=ctx.train, holdout=ctx.holdout, synthetic=ctx.synthetic, schema=schema, seed=0)
    keys = [f.key for f in render_figures(plain, "custodian")]
    assert keys == [k for k in CUSTODIAN_KINDS if k != "km"]


def test_an_empty_release_draws_the_real_side_only(ctx):
    empty = EvalContext(train=ctx.train, holdout=ctx.holdout, synthetic=ctx.synthetic.iloc[:0], schema=ctx.schema)
    # No comparison can be drawn except the real columns and the real PCA; the public gets nothing.
    assert [f.key for f in render_figures(empty, "custodian")] == ["histograms_1", "pca"]
    assert render_figures(empty, "public") == []


def _small(columns: list[dict], frame: pd.DataFrame, synthetic: pd.DataFrame | None = None) -> EvalContext:
    schema = Schema.from_dict({"columns": columns})
    synthetic = frame if synthetic is None else synthetic
    names = [c["name"] for c in columns]
    return EvalContext(train=frame[names].iloc[:40], holdout=frame[names].iloc[40:], synthetic=synthetic[names],
                       schema=schema, seed=0)


def test_figures_that_do_not_apply_are_left_out(gbsg2_table):
    table = gbsg2_table.iloc[:60].reset_index(drop=True).copy()
    table["tsize"] = pd.Series(pd.NA, index=table.index, dtype="Int64")
    columns = [{"name": "age", "type": "integer", "min": 18, "max": 100},
               {"name": "tsize", "type": "integer", "min": 0, "max": 200, "nullable": True},
               {"name": "horTh", "type": "categorical", "categories": ["no", "yes"]},
               {"name": "tgrade", "type": "categorical", "categories": ["I", "II", "III"]}]
    figures = {f.key: f for f in render_figures(_small(columns, table), "custodian")}
    # one binary column: no co-occurrence; no survival pair: no KM; age and horTh still correlate
    assert list(figures) == ["histograms_1", "correlation", "pca"]
    assert "tsize (no values)" in figures["histograms_1"].caption
    assert "tsize (no values in the real rows)" in figures["correlation"].caption
    # A single usable numeric column: no heatmap at all.
    only = render_figures(_small(columns[:1] + columns[3:], table), "public")
    assert [f.key for f in only] == [PUBLIC_PREFIX + "histograms_1", PUBLIC_PREFIX + "pca"]


def test_awkward_column_names_are_drawn_as_text(gbsg2_table):
    """A user's column name is never parsed as mathtext (an odd "$" would raise) nor trusted."""
    table = gbsg2_table.iloc[:80].rename(columns={"age": SCRIPT_NAME, "pnodes": "cost $ (usd", "horTh": "a$b$c"})
    columns = [{"name": SCRIPT_NAME, "type": "integer", "min": 18, "max": 100},
               {"name": "cost $ (usd", "type": "integer", "min": 0, "max": 60},
               {"name": "a$b$c", "type": "categorical", "categories": ["no", "yes"]},
               {"name": "menostat", "type": "categorical", "categories": ["Pre", "Post"]}]
    figures = render_figures(_small(columns, table.reset_index(drop=True)), "custodian")
    assert [f.key for f in figures] == ["histograms_1", "correlation", "pca", "cooccurrence"]
    for figure in figures:
        _decoded(figure.png)


def test_many_columns_split_over_several_grids():
    rng = np.random.default_rng(0)
    columns = [{"name": f"x{i}", "type": "continuous", "min": 0, "max": 1} for i in range(30)]
    frame = pd.DataFrame(rng.random((120, 30)), columns=[c["name"] for c in columns])
    figures = render_figures(_small(columns, frame), "public")
    grids = [f.key for f in figures if "histograms" in f.key]
    assert grids == [PUBLIC_PREFIX + "histograms_1", PUBLIC_PREFIX + "histograms_2"]  # 16 panels per figure
    assert [f.title for f in figures if "histograms" in f.key] == ["Column distributions (1 of 2)",
                                                                   "Column distributions (2 of 2)"]


def test_log_odds_ratios_match_statsmodels(ctx):
    from statsmodels.stats.contingency_tables import Table2x2

    real = ctx.real
    positive = {"horTh": real["horTh"] == "yes", "menostat": real["menostat"] == "Post", "cens": real["cens"] == 1}
    arrays = {name: values.to_numpy(dtype="float64") for name, values in positive.items()}
    columns = [ctx.schema[name] for name in positive]
    ours = _log_odds_ratios(arrays, columns)
    assert np.isnan(np.diag(ours)).all()
    for i, a in enumerate(positive):
        for j, b in enumerate(positive):
            if i == j:
                continue
            table = pd.crosstab(positive[a], positive[b]).reindex(index=[True, False], columns=[True, False])
            expected = Table2x2(table.to_numpy() + 0.5).log_oddsratio  # Haldane: 0.5 in every cell
            assert ours[i, j] == pytest.approx(expected, abs=1e-12)  # the same closed form


def test_pearson_uses_pairwise_complete_rows():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(500)
    y = 0.6 * x + 0.8 * rng.standard_normal(500)
    y_missing = y.copy()
    y_missing[:100] = np.nan
    schema = Schema.from_dict({"columns": [{"name": n, "type": "continuous", "min": -9, "max": 9} for n in "xy"]})
    matrix = _pearson({"x": x, "y": y_missing}, list(schema.kept))
    assert matrix[0, 1] == pytest.approx(np.corrcoef(x[100:], y[100:])[0, 1], abs=1e-12)  # same estimator


# ----------------------------------------------------------------------------------------- HTML
def _report() -> Report:
    overall = Metric(
        "fidelity.overall", "Overall fidelity", 0.87654, 0.0, 1.0, "higher",
        description="Mean of column shapes and column-pair trends.",
        details={"per_column": {"age": 0.91, SCRIPT_NAME: 0.5}, "skipped": [{"column": SCRIPT_NAME,
                                                                             "reason": "a single value"}]},
        synthetic_details={"mean": {"age": SYNTHETIC_MARKER}},
        real_details={"mean": {"age": REAL_MARKER}, "curve": list(range(200))})
    km = Metric.not_applicable("survival.km_divergence", "KM divergence", "no survival pair in the schema",
                               low=0.0, high=1.0, better="lower", description="Area between the KM curves.")
    dcr = Metric("privacy.dcr_ratio", "DCR ratio", 1.0234, 0.0, None, "higher",
                 description="Median DCR to train over median DCR to holdout.")
    ims = Metric("privacy.ims", "Identical match share", 0.0, 0.0, 1.0, "lower",
                 description="Share of synthetic rows equal to a training row.")
    return Report(sections={"fidelity": [overall], "survival": [km], "privacy": [ims, dcr]},
                  meta={"rows": {"train": 549, "holdout": 137, "synthetic": 686}, "seed": 0})


def _with_gates(report: dict) -> dict:
    return {**report,
            "gates": [{"gate": "fidelity_min", "metric": "fidelity.overall", "value": 0.87654, "comparison": ">=",
                       "threshold": 0.85, "passed": True, "reason": ""},
                      {"gate": "mia_auc_max", "metric": "privacy.mia_auc", "value": None, "comparison": "<=",
                       "threshold": 0.6, "passed": False, "reason": "not measured"}],
            "override": {"justification": "reviewed by the board <b>ok</b>", "by": "custodian@example.org",
                         "at": "2026-01-02T03:04:05Z"}}


def _assert_safe(page: str, *, shows_breakdowns: bool = True) -> None:
    """``shows_breakdowns``: the page has the per-column details (where the awkward column name is)."""
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page
    assert SCRIPT_NAME not in page
    assert ("&lt;script&gt;alert(1)&lt;/script&gt;" in page) == shows_breakdowns


def test_custodian_page(custodian_figures):
    page = render_html(_with_gates(_report().to_dict("custodian")), custodian_figures, title="GBSG2 release 1",
                       audience="custodian")
    _assert_safe(page)
    assert "custodian view: includes statistics of the real data" in page
    for label in ("Overall fidelity", "KM divergence", "DCR ratio", "Identical match share"):
        assert label in page
    assert re.search(r'<span class="reason">no survival pair in the schema</span></span>'
                     r'<span class="value na">n/a</span><span class="verdict na">not measured</span>', page)
    assert ">0.877<" in page and ">1.02<" in page  # three significant digits
    assert "≥ 0" in page and "[0, 1]" in page  # an open and a closed range
    assert "9.88e+05" in page and "4242" in page  # custodians see both sides
    assert "200 items, not shown" in page  # a long curve is summarised
    assert page.count("data:image/png;base64,") == len(custodian_figures)
    assert "1 of 2 publication gates failed" in page and "not measured" in page
    assert "reviewed by the board &lt;b&gt;ok&lt;/b&gt;" in page
    assert len(page) < 3_000_000


def test_public_page_shows_no_real_statistic(custodian_figures, public_figures):
    report = _report().to_dict("public")
    assert "real_details" not in report["sections"]["fidelity"][0]
    # Custodian figures passed by mistake are dropped too.
    page = render_html(report, custodian_figures + public_figures, title="GBSG2 release 1", audience="public")
    _assert_safe(page, shows_breakdowns=False)  # the per-column breakdowns are custodian-only
    assert "public view: scores and synthetic-side plots only" in page
    for form in (str(REAL_MARKER), "9.88e+05", "987654", "Real rows"):
        assert form not in page
    assert "4242" in page  # synthetic statistics are public
    assert page.count("data:image/png;base64,") == len(public_figures)
    # Even a custodian dict rendered for the public loses its real_details.
    leaked = render_html(_report().to_dict("custodian"), [], title="t", audience="public")
    assert "9.88e+05" not in leaked and "4242" in leaked


def test_numbers_keep_three_significant_digits():
    assert [_number(v) for v in (0.87654, 1.0234, 12.345, 0.0001234, 12345.6, 0.0, -0.5, 7, None, True)] == [
        "0.877", "1.02", "12.3", "0.000123", "1.23e+04", "0", "-0.500", "7", "n/a", "yes"]


def test_unknown_audience_is_refused(ctx):
    with pytest.raises(ValueError):
        render_figures(ctx, "everyone")
    with pytest.raises(ValueError):
        render_html({}, [], title="t", audience="everyone")


# ------------------------------------------------------------------ the page reads well for a clinician
@pytest.fixture(scope="module")
def gbsg2_report(ctx) -> Report:
    from generators.core.evaluation import evaluate_context

    return evaluate_context(ctx)


@pytest.fixture(scope="module")
def gbsg2_pages(gbsg2_report, custodian_figures, public_figures) -> dict[str, str]:
    return {"custodian": render_html(gbsg2_report.to_dict("custodian"), custodian_figures, title="GBSG2 release 1",
                                     audience="custodian"),
            "public": render_html(gbsg2_report.to_dict("public"), public_figures, title="GBSG2 release 1",
                                  audience="public")}


def _gates_for(report: dict) -> dict:
    return {**report, "gates": [
        {"gate": "fidelity_min", "metric": "fidelity.overall", "value": 0.95, "comparison": ">=", "threshold": 0.85,
         "passed": True, "reason": ""},
        {"gate": "binary_min", "metric": "fidelity.gsf", "value": 0.90, "comparison": ">=", "threshold": 0.95,
         "passed": False, "reason": "below the threshold"}]}


@pytest.mark.parametrize("audience", ["custodian", "public"])
def test_a_plain_language_summary_comes_first(gbsg2_pages, audience):
    page = gbsg2_pages[audience]
    summary = page.index('<section class="summary" id="summary" aria-label="Summary">')
    assert summary < page.index('id="section-fidelity"') < page.index("<h2>Figures</h2>")
    section = page[summary:page.index("</section>", summary)]
    assert "What this release is fit for" in section and "What to be careful about" in section
    # the copula fits GBSG2 well: exploring and drafting survival analyses are named, in words
    assert "Exploring the data, teaching, and writing and testing analysis code" in section
    assert "Drafting survival analyses" in section
    assert "check it on the real data with a verification" in section
    assert "No publication gate is set for this dataset." in section  # until with_gates adds them


def test_the_gates_are_judged_in_the_summary(gbsg2_report):
    from generators.core.evaluation.html import with_gates

    content = gbsg2_report.to_dict("custodian")
    page = with_gates(render_html(content, [], title="t", audience="custodian"), _gates_for(content))
    section = page[page.index('id="summary"'):page.index("</section>")]
    assert "1 of 2 publication gates failed." in section
    assert "Overall fidelity" in section and "Yes/no-column fidelity (GSF)" in section
    assert page.index("1 of 2 publication gates failed.") < page.index('<div class="no-gates">')  # hidden by .gates ~
    passing = {**content, "gates": _gates_for(content)["gates"][:1]}
    page = with_gates(render_html(content, [], title="t", audience="custodian"), passing)
    assert "Every publication gate passed. <span class=\"muted\">(1 of 1)</span>" in page


@pytest.mark.parametrize("audience", ["custodian", "public"])
def test_one_folded_line_per_metric(gbsg2_report, gbsg2_pages, audience):
    page = gbsg2_pages[audience]
    metrics = [m for ms in gbsg2_report.to_dict(audience)["sections"].values() for m in ms]
    assert page.count('<li class="metric"') == len(metrics)
    for metric in metrics:
        line = page[page.index(f'<li class="metric" id="metric-{metric["key"]}">'):]
        line = line[:line.index("</li>")]
        assert line.startswith(f'<li class="metric" id="metric-{metric["key"]}"><details><summary>')
        assert "<details open" not in line  # folded: the description and breakdowns open on a click
        assert _number(metric["value"]) in line[:line.index("</summary>")]


@pytest.mark.parametrize("audience", ["custodian", "public"])
def test_names_fit_the_data_no_genomic_on_gbsg2(gbsg2_report, gbsg2_pages, audience):
    page = gbsg2_pages[audience]
    assert "genomic" not in page.lower()
    assert "Yes/no-column fidelity (GSF)" in page
    assert "on the yes/no columns (horTh, menostat, cens)" in page
    # the JSON report keeps its metric names and labels
    gsf = next(m for m in gbsg2_report.to_dict(audience)["sections"]["fidelity"] if m["key"] == "fidelity.gsf")
    assert gsf["label"] == "Genomic synthetic fidelity (GSF)"


def test_detection_auc_reads_with_half_as_ideal(gbsg2_report, gbsg2_pages):
    auc = gbsg2_report.metric("fidelity.detection_auc").value
    page = gbsg2_pages["public"]
    line = page[page.index('id="metric-fidelity.detection_auc"'):]
    line = line[:line.index("</summary>")]
    assert "0.5 is ideal: a classifier cannot tell synthetic from real rows" in line
    assert f"this is {_number(abs(auc - 0.5))} from 0.5" in line
    assert "lower is better" not in line and "lower ↓" not in page
    mia = page[page.index('id="metric-privacy.mia_auc"'):]
    assert "0.5 is ideal: the attack does no better than chance" in mia[:mia.index("</summary>")]


def test_km_curves_by_group_with_numbers_at_risk_and_time_unit(ctx, custodian_figures, public_figures):
    km, public_km = custodian_figures[0], public_figures[0]
    assert (km.title, public_km.title) == ("Kaplan–Meier: real vs synthetic", "Kaplan–Meier: synthetic")
    assert "for the real and synthetic rows by hormonal therapy (horTh);" in km.caption
    assert "for the synthetic rows by hormonal therapy (horTh);" in public_km.caption
    for figure in (km, public_km):
        assert "of recurrence-free survival time (days) (time), in days," in figure.caption
        assert "the number of rows still at risk at each marked time" in figure.caption
    by_grade = render_figures(ctx, "public", km_group="tgrade")[0]
    assert "for the synthetic rows by tumour grade (tgrade);" in by_grade.caption
    # the public KM has two curves (synthetic, no/yes): two rows at risk, 0.4 inches less than the custodian's
    assert _decoded(public_km.png).shape[:2] == (445, 630)


def test_km_groups_labels_and_units_come_from_the_schema(gbsg2_schema):
    from generators.core.evaluation.plots import column_label, km_group_column, time_unit

    assert km_group_column(gbsg2_schema).name == "horTh"  # the first categorical column
    assert km_group_column(gbsg2_schema, "tgrade").name == "tgrade"  # the column a release was conditioned on
    assert km_group_column(gbsg2_schema, "age").name == "horTh"  # not a grouping column: the default
    time = next(c for c in gbsg2_schema.columns if c.name == "time")
    assert (column_label(time), time_unit(time)) == ("recurrence-free survival time (days)", "days")
    bare = Schema.from_dict({"columns": [{"name": "t", "type": "duration", "min": 0, "max": 10},
                                         {"name": "e", "type": "event"},
                                         {"name": "site", "type": "categorical", "categories": list("abcdefg")}],
                             "survival": {"duration": "t", "event": "e"}})
    assert km_group_column(bare) is None  # seven sites are not "main groups"
    assert (column_label(bare.columns[0]), time_unit(bare.columns[0])) == ("t", "time units")


@pytest.mark.parametrize("audience", ["custodian", "public"])
def test_the_page_prints_cleanly(gbsg2_pages, audience):
    page = gbsg2_pages[audience]
    style = page[page.index("<style>"):page.index("</style>")]
    assert "@media print" in style and "@page" in style
    printed = style[style.index("@media print"):]
    assert "break-inside: avoid" in printed and "max-width: 100%" in printed
    assert '<link rel="stylesheet"' not in page  # inline CSS: a standalone document


def test_the_folded_details_print_open_in_a_real_browser(gbsg2_pages, chromium_browser):
    """On screen a metric's definition is folded; printed (or saved as PDF) it is there, without script."""
    page = chromium_browser.new_page()
    try:
        page.set_content(gbsg2_pages["public"])
        folded = page.locator("li.metric details:not([open]) > :not(summary)").first
        assert not folded.is_visible()
        page.emulate_media(media="print")
        assert folded.is_visible()
    finally:
        page.close()
