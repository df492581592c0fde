"""The researcher's pages in the portal's permission matrix (tests/portal/test_page_matrix.py)."""

from tests.portal.pages import Page

P = Page
PAGES: list[Page] = [
    #  name                     url name                       path                         anon unver resea audit custo  audit action
]
