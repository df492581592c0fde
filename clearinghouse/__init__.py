"""The clearing-house Django project and its core domain app (custody, audit).

Kept import-light on purpose: ``clearinghouse.schema`` and ``clearinghouse.tabular``
are pure modules that the Django-free cores (``generators``, ``verification``) use.
The Celery app is loaded by the app config's ``ready()``.
"""
