"""`make screenshots`' page list, without a browser: URL names resolved at run time, missing ones skipped."""

from django.urls import NoReverseMatch

from clearinghouse.management.commands import screenshots
from clearinghouse.management.commands.screenshots import PAGES, Shot, demo_logins, plan

OBJECTS = {"slug": "gbsg2", "release": 1, "run": 1, "verification": 2, "seq": 1}


def test_the_pages_that_exist_now_resolve_and_the_rest_are_skipped_with_a_note():
    shots = {(s.role, s.name): s for s in plan(OBJECTS)}
    assert len(shots) == len(PAGES)
    assert shots[("anonymous", "login")].path == "/login/"
    for role in ("researcher", "custodian", "auditor"):
        assert shots[(role, "home")] == Shot(role, "home", "/home/")
        assert shots[(role, "home")].filename == f"{role}-home.png"
    for shot in shots.values():
        assert shot.path is not None or shot.note == f"no page named portal:{shot.name} yet" or shot.note


def test_arguments_come_from_the_demo_objects_and_a_missing_object_skips_its_page():
    seen = []

    def resolve(name, args):
        seen.append((name, args))
        if name == "budget":
            raise NoReverseMatch(name)
        return f"/{name}/{'/'.join(map(str, args))}"

    shots = {(s.role, s.name): s for s in plan({**OBJECTS, "verification": None}, resolve)}
    assert shots[("researcher", "dataset")].path == "/dataset/gbsg2"
    assert shots[("researcher", "release-report")].path == "/release-report/1"
    assert shots[("custodian", "custody-run")].path == "/custody-run/1"
    assert shots[("auditor", "audit-event")].path == "/audit-event/1"
    assert shots[("researcher", "verification")] == Shot("researcher", "verification", None,
                                                         "no verification in the demo data")
    assert shots[("researcher", "budget")].path is None
    assert shots[("researcher", "budget")].note == "no page named portal:budget yet"
    assert ("verification", [2]) not in seen


def test_the_demos_printed_logins_are_read_back_by_role():
    output = ("  demo-custodian   cht_abc\n"
              "Logins (new passwords on every `make demo`, shown only here, stored hashed):\n"
              "  custodian  demo-custodian   Abcdefghijklmnop_qrstuvwx\n"
              "  researcher demo-researcher  Bbcdefghijklmnop-qrstuvwx\n"
              "  auditor    demo-auditor     Cbcdefghijklmnopqrstuvwx\n")
    assert demo_logins(output) == {"demo-custodian": "Abcdefghijklmnop_qrstuvwx",
                                   "demo-researcher": "Bbcdefghijklmnop-qrstuvwx",
                                   "demo-auditor": "Cbcdefghijklmnopqrstuvwx"}
    assert set(screenshots.DEMO_USERS.values()) == set(demo_logins(output))
