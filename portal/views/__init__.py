"""Portal pages, one module per role (``researcher``, ``custodian``, ``auditor``) plus sign-in (``auth``).

Each module exports ``urlpatterns``; :mod:`portal.urls` joins them.
"""
