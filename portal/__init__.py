"""The web portal: server-rendered pages for researchers, custodians and auditors.

The top layer of the flow, beside the API: each page parses a form, checks the caller's role, calls
the same services the API calls and renders a template. Nothing imports the portal.
"""
