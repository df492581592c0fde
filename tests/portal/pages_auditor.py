"""The auditor's pages in the portal's permission matrix (tests/portal/test_page_matrix.py)."""

from tests.portal.pages import Page

P = Page
PAGES: list[Page] = [
    #  name                     url name        path                    anon unver resea audit custo  audit action
    P("audit log",              "audit-log",    "/audit/",              302, 403,  403,  200,  403, "audit.events.list"),
    P("audit log filtered",     "audit-log",    "/audit/?action=auth.*&outcome=success",
                                                                        302, 403,  403,  200,  403, "audit.events.list"),
    P("audit event",            "audit-event",  "/audit/events/1/",     302, 403,  403,  200,  403, "audit.events.read"),
    P("audit event missing",    "audit-event",  "/audit/events/999999/", 302, 403, 403,  404,  403, "audit.events.read"),
    P("audit chain page",       "audit-chain",  "/audit/chain/",        302, 403,  403,  200,  403, "audit.chain.read"),
    P("audit chain check",      "audit-chain",  "/audit/chain/?run=1",  302, 403,  403,  200,  403, "audit.verify"),
    # the export answers CSV, not a page: the auditor's cell is checked in test_auditor_pages.py
    P("audit export",           "audit-export", "/audit/export.csv",    302, 403,  403,  None, 403, "audit.events.export"),
    P("audit export, JSONL",    "audit-export-jsonl", "/audit/export.jsonl", 302, 403, 403, None, 403, "audit.events.export"),
]
