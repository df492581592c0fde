"""Password authentication with failed-login lockout (used by the API and the admin site)."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from accounts import login_throttle
from clearinghouse import context


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        address = context.current().client_ip
        if login_throttle.locked_for(username, address):
            raise PermissionDenied("Too many failed logins.")  # stops the chain; admin shows a generic error
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            login_throttle.record_failure(username, address)
        else:
            login_throttle.clear(username)
        return user
