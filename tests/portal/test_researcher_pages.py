"""The researcher's pages through Django's test client: the verify form's refusals (re-shown with the service's
message at the field, 400, nothing stored, nothing charged, audited), the free preview, a charged verification
and its answer page, and downloads identical to the release's files on disk."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.budgets import allocation_set, policy_set
from accounts.models import LedgerEntry
from clearinghouse.models import AuditEvent
from portal.forms.researcher import field_for_error
from portal.views.researcher import forest_svg
from releases.storage import release_file
from tests.portal.conftest import session_client
from tests.test_permissions import REAL_MARKER, budget_state, events_after, head_seq, world  # noqa: F401 - fixture
from verification.models import Verification

#: A valid form: "the mean age is above 40", ε = 0.5.
MEAN_AGE = {"kind": "mean", "column": "age", "claim_direction": "greater", "claim_value": "40", "epsilon": "0.5",
            "where_op_0": "==", "where_op_1": "==", "where_op_2": "=="}


@pytest.fixture(autouse=True)
def _seeded(seeded_noise):
    """Fixed draws for the six-patient world's answers (tests/conftest.py seeded_noise)."""


@pytest.fixture
def fixed_noise(monkeypatch):
    """A fixed seed for the answers' noise (the service draws it from the operating system)."""
    monkeypatch.setattr("verification.services.secrets.randbits", lambda bits: 1)  # the preview's simulations (answers: seeded_noise)


@pytest.fixture
def released(world, fixed_noise):
    world.add_runs_and_releases()
    # the dataset's policy exists (a service makes it from the settings on first use); the cohort has six rows,
    # so the smallest subgroup answered is lowered to one: the answers are not withheld
    policy_set(dataset=world.dataset, changes={"min_subgroup": 1}, by=world.user("custodian"))
    return world


def _verify_url(world) -> str:
    return f"/releases/{world.release.pk}/verify/"


def _portal_events(seq):
    return [(e.action, e.outcome, e.actor_id, e.details.get("code")) for e in events_after(seq) if e.channel == "portal"]


BAD_INPUT = [
    pytest.param({"column": "shoe_size"}, "column", "unknown_column", "unknown column 'shoe_size'", id="unknown-column"),
    pytest.param({"epsilon": "5"}, "epsilon", "epsilon_above_maximum", "above the per-query maximum", id="epsilon-over-max"),
    pytest.param({"claim_value": ""}, "claim_value", "bad_claim", "required", id="claim-missing"),
    pytest.param({"where_column_1": "tgrade", "where_value_1": "IV"}, "where_value_1", "unknown_category",
                 "'IV' is not a category of 'tgrade'", id="unknown-category-in-a-filter"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["verify", "preview"])
@pytest.mark.parametrize("change, field, code, words", BAD_INPUT)
def test_it_reshows_a_refused_hypothesis_with_the_services_message_at_its_field(released, action, change, field,
                                                                               code, words):
    user = released.user("researcher")
    before, seq = budget_state(), head_seq()
    posted = {**MEAN_AGE, **change, "action": action}
    response = session_client(user).post(_verify_url(released), posted)
    assert response.status_code == 400
    form = response.context["form"]
    assert list(form.errors) == [field], form.errors
    assert words in form.errors[field][0]
    html = response.content.decode()
    assert 'class="field-error"' in html and words.replace("'", "&#x27;") in html
    for name, value in posted.items():  # the input is shown again
        if value and name not in ("action",) and not name.startswith("where_op"):
            assert f'value="{value}"' in html or f'<option value="{value}" selected>' in html, name
    assert "Nothing was charged" in html
    assert budget_state() == before  # no verification, no ledger entry, no allocation or policy change
    assert not Verification.objects.filter(user=user).exists()
    audit = "verification.create" if action == "verify" else "verification.preview"
    assert _portal_events(seq) == [(audit, AuditEvent.Outcome.REFUSED, user.pk, code)]


@pytest.mark.django_db
def test_it_previews_for_free_and_shows_the_expected_width_the_chance_and_a_suggested_epsilon(released):
    user = released.user("researcher")
    before, seq = budget_state(), head_seq()
    response = session_client(user).post(_verify_url(released), {**MEAN_AGE, "action": "preview"})
    assert response.status_code == 200
    preview = response.context["preview"]
    assert preview["kind"] == "mean" and preview["epsilon"] == 0.5 and preview["expected_ci_width"] > 0
    html = response.content.decode()
    for text in ("Expected width of the 95 % interval", "Chance of a decisive answer", "Suggested ε",
                 "Nothing was charged", f"{preview['expected_ci_width']:.3f}"):
        assert text in html
    assert 'value="40"' in html  # the form stays filled in, ready to verify
    assert budget_state() == before
    [event] = [e for e in events_after(seq)]
    assert (event.action, event.outcome, event.actor_id, event.channel, event.details["charged"]) == (
        "verification.preview", "success", user.pk, "portal", "0")


@pytest.mark.django_db
def test_it_charges_exactly_epsilon_and_shows_the_answer_in_words(released):
    user = released.user("researcher")
    client = session_client(user)
    seq = head_seq()
    response = client.post(_verify_url(released), {**MEAN_AGE, "epsilon": "0.25", "action": "verify"})
    verification = Verification.objects.get(user=user)
    assert response.status_code == 302 and response["Location"] == f"/verifications/{verification.pk}/"
    assert (verification.kind, verification.status, verification.epsilon) == ("mean", "answered", Decimal("0.25"))
    assert verification.hypothesis["params"] == {"column": "age"}
    charges = LedgerEntry.objects.filter(user=user, kind=LedgerEntry.Kind.CHARGE)
    assert [(c.epsilon_micro, c.verification_id) for c in charges] == [(250_000, verification.pk)]
    assert [(e.action, e.outcome) for e in events_after(seq)] == [
        ("verification.charge", "success"), ("verification.answer", "success")]

    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    verdict = verification.answer["verdict"]
    words = {"supported": "The real data support the claim that the mean of age is greater than 40",
             "contradicted": "The real data contradict the claim that the mean of age is greater than 40",
             "inconclusive": "neither support nor contradict the claim that the mean of age is greater than 40"}
    if verification.answer.get("informative") is False:
        assert "not informative" in html and "Do not report it as a finding" in html
    else:
        assert words[verdict] in html
    assert '<svg' in html and 'class="ci"' in html and "claim 40" in html
    assert 'data-field="withheld">no<' in html
    informative = "no" if verification.answer.get("informative") is False else "yes"
    assert f'data-field="informative">{informative}<' in html
    assert 'data-field="epsilon-charged">0.25' in html
    assert 'data-field="budget-left">1.75<' in html  # the default allocation of 2, less 0.25
    assert REAL_MARKER not in html

    history = client.get("/verifications/").content.decode()
    assert f"/verifications/{verification.pk}/" in history and "The mean of age" in history and "0.25" in history


@pytest.mark.django_db
def test_a_withheld_answer_does_not_read_as_a_finding(released):
    user = released.user("researcher")
    policy_set(dataset=released.dataset, changes={"min_subgroup": 1000}, by=released.user("custodian"))
    client = session_client(user)
    response = client.post(_verify_url(released), {**MEAN_AGE, "epsilon": "0.2", "action": "verify"})
    verification = Verification.objects.get(user=user)
    assert verification.answer["withheld"] is True and verification.epsilon == Decimal("0.2")
    html = client.get(response["Location"]).content.decode()
    assert "No answer: the subgroup is too small" in html and "This is not a finding" in html
    assert "support the claim" not in html and "contradict the claim" not in html
    assert 'data-field="withheld">yes' in html
    assert 'class="ci"' not in html


@pytest.mark.django_db
def test_an_over_budget_verification_shows_what_is_left_and_charges_nothing(released):
    user = released.user("researcher")
    allocation_set(user=user, dataset=released.dataset, epsilon="0.3", by=released.user("custodian"))
    before, seq = budget_state(), head_seq()
    response = session_client(user).post(_verify_url(released), {**MEAN_AGE, "epsilon": "0.5", "action": "verify"})
    assert response.status_code == 403
    html = response.content.decode()
    assert "your allocation has 0.3 left; nothing was charged" in response.context["form"].errors["epsilon"][0]
    assert "you have ε = <strong>0.3</strong> left" in html
    assert budget_state() == before
    assert _portal_events(seq) == [("verification.create", "refused", user.pk, "budget_exhausted")]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("role, which", [("researcher", "release"), ("custodian", "release"), ("custodian", "draft")])
def test_a_download_is_the_release_file_byte_for_byte_and_is_audited(released, kind, role, which):
    user, release = released.user(role), getattr(released, which)
    seq = head_seq()
    response = session_client(user).get(f"/releases/{release.pk}/data.{kind}")
    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        f'attachment; filename="{released.dataset.slug}-release-{release.pk}.{kind}"')
    assert response["Content-Type"] == {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}[kind]
    assert b"".join(response.streaming_content) == release_file(release, kind).read_bytes()
    [event] = events_after(seq)
    assert (event.action, event.outcome, event.actor_id, event.channel, event.object_id, event.details) == (
        "release.download", "success", user.pk, "portal", str(release.pk), {"format": kind})


@pytest.mark.django_db
def test_the_researcher_sees_the_public_report_and_the_custodian_the_whole_one(released):
    path = f"/releases/{released.release.pk}/report/"
    public = session_client(released.user("researcher")).get(path)
    whole = session_client(released.user("custodian")).get(path)
    assert b"<title>public</title>" in public.content and b"custodian" not in public.content
    assert b"<title>custodian</title>" in whole.content


@pytest.mark.django_db
def test_the_pages_show_public_metadata_and_no_real_statistic(released):
    client = session_client(released.user("researcher"))
    listing = client.get("/datasets/").content.decode()
    assert "GBSG2" in listing or released.dataset.name in listing
    assert f"<dd>{released.dataset.n_rows}</dd>" in listing and "<dd>1</dd>" in listing  # one published release
    dataset = client.get(f"/datasets/{released.dataset.slug}/").content.decode()
    assert "I, II, III" in dataset and "18 to 100" in dataset and "survival time" in dataset
    assert f"/releases/{released.release.pk}/" in dataset and f"/releases/{released.draft.pk}/" not in dataset
    release = client.get(f"/releases/{released.release.pk}/").content.decode()
    assert "Verify a finding" in release and "copula" in release and "Known limits" in release
    assert "Membership-inference AUC (0.5 is ideal" in release and "privacy.mia_auc" in release  # words, key as title
    assert f"/releases/{released.release.pk}/data.csv" in release and f"/releases/{released.release.pk}/report/" in release
    budget = client.get("/budget/").content.decode()
    assert released.dataset.slug in budget
    for html in (listing, dataset, release, budget):
        assert REAL_MARKER not in html


@pytest.mark.parametrize("code, message, where_rows, expected", [
    ("missing_param", "params.group.a: required; a group compares", [], "group_a"),
    ("missing_param", "params.exposure.value: required for the categorical column 'horTh'", [], "exposure_value"),
    ("bad_param", "params.adjust_for[1]: 'time' cannot be a covariate here", [], "adjust_for"),
    ("missing_param", "params.group: required", [], "group_column"),
    ("unknown_op", "where[0].op: unknown operator", [2], "where_op_2"),
    ("bad_claim", "claim.direction: 'up' is not one of", [], "claim_direction"),
    ("budget_exhausted", "This hypothesis asks for ε = 1 but your allocation has 0.5 left", [], "epsilon"),
    ("unknown_release", "There is no published release 9.", [], None),
])
def test_it_places_each_service_message_at_the_field_it_names(code, message, where_rows, expected):
    assert field_for_error(code, message, where_rows)[0] == expected


def test_the_forest_plot_draws_ratios_on_a_log_scale():
    svg = forest_svg(0.8, 0.5, 1.3, 1, 0.9, log=True)
    assert svg.startswith("<svg") and 'class="ci"' in svg and "claim 1" in svg and ">0.5<" in svg
    assert forest_svg(None, None, None, None) == ""


FORMS = [  # what the form posts → the params the service normalized
    pytest.param({"kind": "hazard_ratio", "exposure_column": "horTh", "exposure_value": "yes", "adjust_for": ["age"],
                  "claim_direction": "less", "claim_value": "1"},
                 {"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": ["age"]}, id="hazard_ratio"),
    pytest.param({"kind": "odds_ratio", "a_column": "horTh", "a_value": "yes", "b_column": "cens", "b_value": "1",
                  "claim_value": "1"},
                 {"a": {"column": "cens", "value": 1}, "b": {"column": "horTh", "value": "yes"}}, id="odds_ratio"),
    pytest.param({"kind": "km_median", "group_column": "horTh", "group_value": "no", "claim_value": "500"},
                 {"group": {"column": "horTh", "value": "no"}}, id="km_median"),
    pytest.param({"kind": "survival_at", "time": "1000", "claim_value": "0.5"}, {"time": 1000, "group": None},
                 id="survival_at"),
    pytest.param({"kind": "logrank", "group_column": "horTh", "group_a": "yes", "group_b": "no", "claim_value": "1",
                  "claim_direction": "less"}, {"group": {"column": "horTh", "a": "yes", "b": "no"}}, id="logrank"),
    pytest.param({"kind": "difference_in_means", "column": "tsize", "group_column": "menostat", "group_a": "Post",
                  "group_b": "Pre", "claim_value": "0"},
                 {"column": "tsize", "group": {"column": "menostat", "a": "Post", "b": "Pre"}}, id="difference_in_means"),
    pytest.param({"kind": "correlation", "x": "age", "y": "tsize", "claim_value": "0"}, None, id="correlation"),
    pytest.param({"kind": "count", "where_column_0": "tgrade", "where_op_0": "in", "where_value_0": "II, III",
                  "where_column_2": "age", "where_op_2": ">=", "where_value_2": "40", "claim_value": "2"}, {},
                 id="count-with-filters"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("posted, params", FORMS)
def test_the_form_asks_each_kind_as_the_api_takes_it(released, posted, params):
    user = released.user("researcher")
    before = budget_state()
    data = {"claim_direction": "greater", "epsilon": "0.5", "action": "preview", **posted}
    response = session_client(user).post(_verify_url(released), data)
    assert response.status_code == 200, response.context["form"].errors
    hypothesis = response.context["preview"]["hypothesis"]
    assert hypothesis["kind"] == posted["kind"]
    if params is not None:
        assert hypothesis["params"] == params
    if posted["kind"] == "count":
        assert hypothesis["where"] == [{"column": "age", "op": ">=", "value": 40},
                                       {"column": "tgrade", "op": "in", "value": ["II", "III"]}]
    assert budget_state() == before


@pytest.mark.django_db
def test_asking_the_same_question_again_reuses_the_answer_at_no_charge(released):
    user = released.user("researcher")
    client = session_client(user)
    first = client.post(_verify_url(released), {**MEAN_AGE, "action": "verify"})
    again = client.post(_verify_url(released), {**MEAN_AGE, "claim_value": "50", "action": "verify"})
    original, reuse = Verification.objects.filter(user=user).order_by("id")
    assert (first["Location"], again["Location"]) == (f"/verifications/{original.pk}/", f"/verifications/{reuse.pk}/")
    assert (reuse.status, reuse.reused_from_id, reuse.epsilon_micro) == ("reused", original.pk, 0)
    assert LedgerEntry.objects.filter(user=user, kind=LedgerEntry.Kind.CHARGE).count() == 1
    html = client.get(again["Location"]).content.decode()
    assert "an identical question was answered before: no charge" in html and "greater than 50" in html


@pytest.mark.django_db
def test_only_a_verified_researcher_gets_the_researcher_links_and_tiles(released):
    rhea = session_client(released.user("researcher")).get("/home/").content.decode()
    uma = session_client(released.user("unverified")).get("/home/").content.decode()
    for link in ('href="/datasets/"', 'href="/verifications/"', 'href="/budget/"'):
        assert link in rhea and link not in uma
    assert "Awaiting verification" in uma
