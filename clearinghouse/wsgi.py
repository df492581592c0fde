import os

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clearinghouse.settings")
application = get_wsgi_application()

# gunicorn runs no system checks: refuse to serve here when several worker processes would each keep
# their own login-lockout and rate-limit counters (clearinghouse.E002; see docs/architecture.md).
from clearinghouse.checks import unshared_counters_problem  # noqa: E402  (needs the settings loaded)

if (_problem := unshared_counters_problem()) is not None:
    raise ImproperlyConfigured(_problem)
