"""The researcher's pages in the portal's permission matrix (tests/portal/test_page_matrix.py).

Statuses mirror the API's matrix (tests/test_permissions.py) for the same resource: datasets for every verified
user, releases for custodians and verified researchers (a draft is a researcher's 404), verifications and budgets
for verified researchers only (another's verification is a 404).

A download's success is a file, not a page: its 200 cells are ``None`` here (the matrix checks the refusals), and
tests/portal/test_researcher_pages.py checks the bytes and the one ``release.download`` row for those roles.
"""

from tests.portal.pages import Page

P = Page
PAGES: list[Page] = [
    #  name                     url name                       path                         anon unver resea audit custo  audit action
    P("list datasets",          "datasets",                    "/datasets/",                  302, 403, 200, 200, 200, "dataset.list"),
    P("read a dataset",         "dataset",                     "/datasets/{slug}/",           302, 403, 200, 200, 200, "dataset.read"),
    P("read a release",         "release",                     "/releases/{release}/",        302, 403, 200, 403, 200, "release.read"),
    P("read a draft release",   "release",                     "/releases/{draft}/",          302, 403, 404, 403, 200, "release.read"),
    P("read a release's report", "release-report",             "/releases/{release}/report/", 302, 403, 200, 403, 200, "report.read"),
    P("read a draft's report",  "release-report",              "/releases/{draft}/report/",   302, 403, 404, 403, 200, "report.read"),
    P("download a CSV",         "release-data-csv",            "/releases/{release}/data.csv", 302, 403, None, 403, None, "release.download"),
    P("download a Parquet",     "release-data-parquet",        "/releases/{release}/data.parquet", 302, 403, None, 403, None, "release.download"),
    P("download a draft's CSV", "release-data-csv",            "/releases/{draft}/data.csv",  302, 403, 404, 403, None, "release.download"),
    P("download a draft's Parquet", "release-data-parquet",    "/releases/{draft}/data.parquet", 302, 403, 404, 403, None, "release.download"),
    P("verify form",            "verify",                      "/releases/{release}/verify/", 302, 403, 200, 403, 403, "verification.form"),
    P("verify form of a draft", "verify",                      "/releases/{draft}/verify/",   302, 403, 404, 403, 403, "verification.form"),
    P("post a verification",    "verify",                      "/releases/{release}/verify/", 302, 403, None, 403, 403, "verification.create",
      method="POST"),
    P("list own verifications", "verifications",               "/verifications/",             302, 403, 200, 403, 403, "verification.list"),
    P("read a verification",    "verification",                "/verifications/{verification}/", 302, 403, 200, 403, 403, "verification.read"),
    P("read another's verification", "verification",           "/verifications/{other_verification}/", 302, 403, 404, 403, 403, "verification.read"),
    P("read own ε budget",      "budget",                      "/budget/",                    302, 403, 200, 403, 403, "budget.read"),
]
