"""Issue 14: a hypothesis the data cannot answer (no events in a group, an exposure constant within the filter,
a constant outcome, an empty 2x2 cell, a variable without spread) is answered with ``informative: false``, a
reason naming the cause and the cause's code in ``details["non_answer"]``; the verdict is inconclusive and the
ε stays charged (the real rows were read). The decision reads the mechanism's noisy outputs only.

The degenerate cohorts are GBSG2 (686 patients) edited: every event removed (``no_events``), the events of
horTh = yes removed (``no_events_yes``), horTh = yes for everyone (``all_yes``), age 50 for everyone
(``age_50``). Each case runs over several fixed seeds and must be a non-answer on every one; the same
hypothesis on GBSG2 itself (the control) stays informative. A seed sweep on GBSG2 bounds how often the new
rules fire on good data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clearinghouse.tabular import read_csv_checked
from verification.core import answer
from verification.core.kinds import FLAT_SPREAD_SDS, MIN_NOISY_COUNT, NON_ANSWER_SDS, TELLING_SHARE, looks_empty

from .conftest import hyp

HR = {"exposure": {"column": "horTh", "value": "yes"}}
HR_AGE = {"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": ["age"]}
HR_PER_YEAR = {"exposure": {"column": "age"}}
LOGRANK = {"group": {"column": "horTh", "a": "yes", "b": "no"}}
OR_TABLE = {"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "horTh", "value": "yes"}}
OR_PER_YEAR = {"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "age"}}
ODDS = {"a": {"column": "horTh", "value": "yes"}, "b": {"column": "cens", "value": 1}}
CORRELATION = {"x": "age", "y": "tsize"}
SEEDS = range(6)


def _edited(raw: pd.DataFrame, schema, edit) -> pd.DataFrame:
    frame = raw.copy()
    edit(frame)
    frame.insert(0, "pid", range(1, len(frame) + 1))
    return read_csv_checked(frame.to_csv(index=False).encode(), schema)


@pytest.fixture(scope="module")
def cohorts(gbsg2_raw, gbsg2_schema, gbsg2) -> dict[str, pd.DataFrame]:
    def no_events(f):
        f["cens"] = 0

    def no_events_yes(f):
        f.loc[f["horTh"] == "yes", "cens"] = 0

    def all_yes(f):
        f["horTh"] = "yes"

    def age_50(f):
        f["age"] = 50

    edits = {"no_events": no_events, "no_events_yes": no_events_yes, "all_yes": all_yes, "age_50": age_50}
    return {"good": gbsg2, **{name: _edited(gbsg2_raw, gbsg2_schema, edit) for name, edit in edits.items()}}


# kind, params, cohort, with the release (DP Newton / tuned paths) or not, the expected cause, words of the reason
CASES = [
    # (a) no events at all, or none in one group
    ("hazard_ratio", HR, "no_events", False, "no_events", "too few events"),
    ("hazard_ratio", HR, "no_events_yes", False, "no_events", "group horTh=yes"),
    ("hazard_ratio", HR, "no_events_yes", True, "no_events", "group horTh=yes"),
    ("hazard_ratio", HR_AGE, "no_events", True, "no_events", "too few events"),
    ("hazard_ratio", HR_PER_YEAR, "no_events", True, "no_events", "too few events"),
    ("logrank", LOGRANK, "no_events", False, "no_events", "too few events"),
    ("logrank", LOGRANK, "no_events_yes", False, "no_events", "group horTh=yes"),
    ("logrank", LOGRANK, "no_events_yes", True, "no_events", "group horTh=yes"),
    ("odds_ratio", ODDS, "no_events_yes", False, "empty_cell", "cens=1 and horTh=yes"),
    # (b) an exposure constant within the filter: a level, a numeric exposure with one value
    ("hazard_ratio", HR, "all_yes", False, "constant_exposure", "no rows with horTh≠yes"),
    ("hazard_ratio", HR_AGE, "all_yes", True, "constant_exposure", "no rows with horTh≠yes"),
    ("hazard_ratio", HR_PER_YEAR, "age_50", True, "constant_exposure", "no rows with age"),
    ("logistic_odds_ratio", OR_TABLE, "all_yes", False, "constant_exposure", "no rows with horTh≠yes"),
    ("logistic_odds_ratio", OR_PER_YEAR, "age_50", True, "constant_exposure", "no rows with age"),
    # (d) a constant outcome
    ("logistic_odds_ratio", OR_TABLE, "no_events", False, "constant_outcome", "too few rows with cens=1"),
    ("logistic_odds_ratio", OR_PER_YEAR, "no_events", True, "constant_outcome", "too few rows with cens=1"),
    # a constant margin empties two cells: the reason names the margin, or (when the noise lifts the margin's
    # total over the bar) one of its cells
    ("odds_ratio", ODDS, "no_events", False, ("constant_margin", "empty_cell"), "cens"),
]


def _answers(cohorts, gbsg2_schema, kind, params, cohort, with_release, *, epsilon=1.0, seeds=SEEDS, where=None):
    hypothesis = hyp(gbsg2_schema, kind, params, epsilon=epsilon, where=where)
    release = cohorts["good"] if with_release else None  # a public stand-in with the same columns
    return hypothesis, [answer(cohorts[cohort], gbsg2_schema, hypothesis, rng=np.random.default_rng(seed),
                               synthetic=release) for seed in seeds]


@pytest.mark.parametrize("kind,params,cohort,with_release,cause,words", CASES,
                         ids=[f"{c[0]}-{c[2]}-{'release' if c[3] else 'schema'}" for c in CASES])
def test_it_says_a_data_caused_non_answer_is_one(cohorts, gbsg2_schema, kind, params, cohort, with_release, cause,
                                                 words):
    hypothesis, answers = _answers(cohorts, gbsg2_schema, kind, params, cohort, with_release)
    for result in answers:
        assert not result.withheld
        assert result.informative is False and result.verdict == "inconclusive", (result.reason, result.estimate)
        assert result.details["non_answer"] in (cause if isinstance(cause, tuple) else (cause,)), result.reason
        assert words in result.reason and "noisy" in result.reason, result.reason
        assert result.epsilon == hypothesis.epsilon == 1.0  # charged: the real rows were read
        assert result.to_dict()["informative"] is False
    # the paid-for values are shown where the mechanism released some (a finite ratio and its CI)
    if kind in ("hazard_ratio", "logistic_odds_ratio", "odds_ratio"):
        assert all(r.estimate is not None and r.ci_low is not None and r.ci_high is not None for r in answers)


CONTROLS = sorted({(kind, repr(params), with_release) for kind, params, _c, with_release, _k, _w in CASES})


@pytest.mark.parametrize("kind,params,with_release", [(k, eval(p), w) for k, p, w in CONTROLS],
                         ids=[f"{k}-{'release' if w else 'schema'}" for k, _p, w in CONTROLS])
def test_the_same_hypothesis_on_good_data_stays_informative(cohorts, gbsg2_schema, kind, params, with_release):
    # at ε = 5 the older rules (noise dominance) are quiet too, so the whole answer must be informative
    _hypothesis, answers = _answers(cohorts, gbsg2_schema, kind, params, "good", with_release, epsilon=5.0)
    for result in answers:
        assert "non_answer" not in result.details, result.reason
        assert result.informative and result.reason == "", result.reason
        assert result.ci_low < result.estimate < result.ci_high


@pytest.mark.parametrize("with_release", [False, True], ids=["schema", "release"])
def test_a_correlation_of_a_constant_column_is_mostly_a_non_answer(cohorts, gbsg2_schema, with_release):
    # (e) a constant age: its noisy spread is at or below 0 in about half the draws (nothing to estimate), and
    # within FLAT_SPREAD_SDS noise sd of 0 in a quarter more; the rest give an r near 0 with its CI
    _h, answers = _answers(cohorts, gbsg2_schema, "correlation", CORRELATION, "age_50", with_release,
                           seeds=range(40))
    flagged = [r for r in answers if not r.informative]
    assert len(flagged) >= 0.6 * len(answers)
    assert any(r.estimate is None for r in flagged) and any(r.estimate is not None for r in flagged)
    for result in flagged:
        assert result.details["non_answer"] == "no_spread" and result.verdict == "inconclusive"
        assert result.epsilon == 1.0
        if result.estimate is None:  # nothing to estimate: no estimate, the whole range as the CI
            assert (result.ci_low, result.ci_high) == (-1.0, 1.0) and "not positive" in result.reason
        else:  # a positive noisy spread within the noise of 0: r computed, shown, not a finding
            assert "has no spread above the noise" in result.reason and "noisy spread" in result.reason
    for result in answers:
        if result.informative:  # the draws the rule lets through are not findings about r either way
            assert result.ci_low < 0.0 < result.ci_high or abs(result.estimate) < 0.5


def test_a_logrank_without_events_is_not_a_finding(cohorts, gbsg2_schema):
    _h, answers = _answers(cohorts, gbsg2_schema, "logrank", LOGRANK, "no_events", True)
    for result in answers:  # with the release's bins the statistics are degenerate: nothing is estimated
        assert not result.informative and result.details["non_answer"] == "no_events"
        assert result.verdict == "inconclusive" and result.epsilon == 1.0


def test_a_survival_ci_over_the_whole_range_says_why(cohorts, gbsg2_schema):
    _h, answers = _answers(cohorts, gbsg2_schema, "survival_at", {"time": 1000}, "no_events", False, seeds=range(20))
    flagged = [r for r in answers if not r.informative]
    assert flagged  # S ≈ 1 with a log(-log) band: some noisy tables give the CI [0, 1]
    for result in answers:
        whole = result.ci_low <= 1e-6 and result.ci_high >= 1 - 1e-6
        assert whole == (not result.informative)
        if whole:
            assert result.details["non_answer"] == "ci_whole_range" and "too few events before 1000" in result.reason
            assert result.verdict == "inconclusive"


def test_a_filter_that_selects_almost_nobody_is_never_a_finding(cohorts, gbsg2_schema):
    # (c) 24 patients, 3 of them on hormonal therapy: withheld (noisy size below the minimum), a non-answer, or
    # an answer whose CI is too wide to decide (the rules above claim nothing where the noise is too large to
    # tell an empty group from a small one: see TELLING_SHARE); charged every time
    where = [{"column": "age", "op": ">", "value": 78}]
    for kind, params in (("hazard_ratio", HR), ("logrank", LOGRANK), ("odds_ratio", ODDS), ("mean", {"column": "age"}),
                         ("correlation", CORRELATION), ("km_median", {})):
        _h, answers = _answers(cohorts, gbsg2_schema, kind, params, "good", False, where=where, seeds=range(4))
        for result in answers:
            if kind != "km_median":
                assert result.withheld or result.verdict == "inconclusive", (kind, result.reason)
            assert result.epsilon == 1.0


def test_the_rule_reads_noisy_numbers_against_public_constants():
    assert (MIN_NOISY_COUNT, NON_ANSWER_SDS, FLAT_SPREAD_SDS) == (1.0, 2.0, 0.5)
    assert looks_empty(0.8, 0.1) and looks_empty(5.0, 3.0) and not looks_empty(7.0, 3.0)
    assert not looks_empty(1.0, 0.01) and looks_empty(0.99, 0.01)
    # only tested where the bar (2 sds) is at most TELLING_SHARE of the rows the count is about
    assert TELLING_SHARE == pytest.approx(1 / 6)
    assert looks_empty(0.0, 3.0, rows=36.0) and not looks_empty(0.0, 3.0, rows=35.9)


# The sweep on a good cohort: the new rules must not make good hypotheses inconclusive. Over 50 seeds at ε = 1
# on GBSG2 (ε = 2 for the correlation of age and tsize: at ε = 1 tsize's spread on its tuned range is ~2 noise
# sds and the spread rule fires in ~4 % of draws, see FLAT_SPREAD_SDS), a hypothesis of each kind that a case
# above covers is a data-caused non-answer at most TOLERANCE of the time (expected: never; the bar leaves room
# for one seed in 50).
TOLERANCE = 0.02
SWEEP = [("hazard_ratio", HR, False), ("hazard_ratio", HR_AGE, True), ("hazard_ratio", HR_PER_YEAR, True),
         ("logrank", LOGRANK, True), ("logistic_odds_ratio", OR_TABLE, False), ("logistic_odds_ratio", OR_PER_YEAR, True),
         ("odds_ratio", ODDS, False), ("correlation", CORRELATION, True), ("survival_at", {"time": 1000}, False)]


@pytest.mark.parametrize("kind,params,with_release", SWEEP, ids=[f"{k}-{'release' if w else 'schema'}" for k, _p, w in SWEEP])
def test_good_hypotheses_are_rarely_non_answers(cohorts, gbsg2_schema, kind, params, with_release):
    epsilon = 2.0 if kind == "correlation" else 1.0
    _h, answers = _answers(cohorts, gbsg2_schema, kind, params, "good", with_release, epsilon=epsilon, seeds=range(50))
    rate = sum("non_answer" in r.details for r in answers) / len(answers)
    assert rate <= TOLERANCE, [r.reason for r in answers if "non_answer" in r.details][:3]


@pytest.mark.parametrize("params,with_release", [(HR, True), ({"exposure": {"column": "pnodes"}}, True)],
                         ids=["table", "newton"])
def test_a_small_subgroup_at_a_small_epsilon_is_not_called_empty(cohorts, gbsg2_schema, params, with_release):
    # 290 premenopausal patients, 59 on hormonal therapy with 22 events, at ε = 0.5: the noisy totals' bars
    # (28 events; 160 rows per side of the DP Newton's count) are above TELLING_SHARE of the rows they are
    # about, so the rule claims nothing (a 2-sd bar alone called 11 of 40 such HRs "too few events", and
    # pnodes "constant" in 39 of 40); what is left to say is the older rules' (noise, bounds). Without a
    # release (8 equal time bins, less noise per level) the level horTh=yes is tested and trips ~5 %: see
    # TELLING_SHARE
    where = [{"column": "menostat", "op": "==", "value": "Pre"}]
    _h, answers = _answers(cohorts, gbsg2_schema, "hazard_ratio", params, "good", with_release, epsilon=0.5,
                           where=where, seeds=range(30))
    assert not any("non_answer" in r.details for r in answers), [r.reason for r in answers if "non_answer" in r.details]
