"""The custodian's pages in the portal's permission matrix (tests/portal/test_page_matrix.py).

The two ``progress.json`` addresses answer JSON polls and write no audit row per poll (see
``portal.views.custodian.RunProgressView``), so the custodian's cell is None here and their payload is
checked in tests/portal/test_custodian_pages.py; the refusals of everyone else are still checked.
"""

from tests.portal.pages import Page

P = Page
D = "/custody/datasets/{slug}"
PAGES: list[Page] = [
    #  name                     url name                       path                         anon unver resea audit custo  audit action
    P("custody",                "custody",                     "/custody/",                  302, 403, 403, 403, 200, "dataset.list"),
    P("upload form",            "custody-upload",              "/custody/upload/",           302, 403, 403, 403, 200, "dataset.upload.form"),
    P("custody dataset",        "custody-dataset",             D + "/",                      302, 403, 403, 403, 200, "dataset.read"),
    P("train",                  "custody-train",               D + "/train/",                302, 403, 403, 403, None, "run.create", "POST"),
    P("budget policy",          "custody-budget",              D + "/budget/",               302, 403, 403, 403, 200, "budget.policy.read"),
    P("run",                    "custody-run",                 "/custody/runs/{run}/",       302, 403, 403, 403, 200, "run.read"),
    P("run progress",           "custody-run-progress",        "/custody/runs/{run}/progress.json", 302, 403, 403, 403, None, ""),
    P("cancel a run",           "custody-run-cancel",          "/custody/runs/{queued_run}/cancel/", 302, 403, 403, 403, None, "run.cancel", "POST"),
    P("make a release",         "custody-release-create",      "/custody/runs/{run}/release/", 302, 403, 403, 403, None, "release.create", "POST"),
    P("custody release",        "custody-release",             "/custody/releases/{draft}/", 302, 403, 403, 403, 200, "release.read"),
    P("published release",      "custody-release",             "/custody/releases/{release}/", 302, 403, 403, 403, 200, "release.read"),
    P("report progress",        "custody-release-progress",    "/custody/releases/{draft}/progress.json", 302, 403, 403, 403, None, ""),
    P("publish",                "custody-release-publish",     "/custody/releases/{draft}/publish/", 302, 403, 403, 403, None, "release.publish", "POST"),
    P("custody report",         "custody-release-report",      "/custody/releases/{draft}/report/", 302, 403, 403, 403, 200, "report.read"),
    P("researchers",            "custody-researchers",         "/custody/researchers/",      302, 403, 403, 403, 200, "accounts.list"),
    P("verify a researcher",    "custody-researcher-verify",   "/custody/researchers/{pending}/verify/", 302, 403, 403, 403, None, "accounts.verify", "POST"),
    P("missing dataset",        "custody-dataset",             "/custody/datasets/no-such/", 302, 403, 403, 403, 404, "dataset.read"),
    P("missing run",            "custody-run",                 "/custody/runs/999999/",      302, 403, 403, 403, 404, "run.read"),
]
