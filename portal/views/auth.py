"""Sign in, sign out, change password, and the home page.

Sign-in goes through the same backend as the API (:class:`accounts.backends.ThrottledModelBackend`):
after ``LOGIN_FAILURES_PER_USERNAME`` failures a username is locked out for
``LOGIN_FAILURE_WINDOW_SECONDS``, and after ``LOGIN_FAILURES_PER_ADDRESS`` so is the client address.
Each attempt is audited (``auth.portal_login``, by :mod:`accounts.signals`); a sign-out and a password
change are audited here.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.contrib.auth.views import LoginView
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.debug import sensitive_post_parameters
from django.utils.decorators import method_decorator

from rest_framework.throttling import AnonRateThrottle

from accounts import login_throttle
from clearinghouse import context
from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_record
from portal.access import PortalView, SignedIn, roles_of, throttle_refusal

__all__ = ["urlpatterns"]


class PortalLoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That username and password do not match an account.",
        "inactive": "This account is switched off; ask a custodian.",
        "locked": "Too many failed sign-ins for this account or address. Try again in %(minutes)d minutes.",
    }

    def clean(self):
        username = self.cleaned_data.get("username")
        if username:
            wait = login_throttle.locked_for(username, context.current().client_ip)
            if wait:
                audit_record(action="auth.portal_login", outcome=AuditEvent.Outcome.DENIED,
                             details={"username": username[:150], "reason": "locked out"})
                raise forms.ValidationError(self.error_messages["locked"], code="locked",
                                            params={"minutes": max(1, round(wait / 60))})
        return super().clean()


class PortalLoginView(LoginView):
    """Django's sign-in view with the API's lockout (the backend) and its rate limit for strangers (the same
    ``anon`` bucket as ``POST /api/v1/auth/token/``)."""

    template_name = "portal/login.html"
    authentication_form = PortalLoginForm
    redirect_authenticated_user = True
    audit_action = "auth.portal_login"

    def post(self, request, *args, **kwargs):
        refusal = throttle_refusal(request, self, (AnonRateThrottle,))
        return refusal if refusal is not None else super().post(request, *args, **kwargs)


class LogoutView(PortalView):
    """Sign out (POST only, so that a link on another site cannot sign anyone out)."""

    permission_classes = (SignedIn,)
    http_method_names = ["post"]

    def post(self, request):
        audit_record(action="auth.portal_logout", actor=request.user, object_type="user", object_id=request.user.pk)
        logout(request)
        return redirect("portal:login")


@method_decorator(sensitive_post_parameters(), name="dispatch")
class PasswordChangeView(PortalView):
    permission_classes = (SignedIn,)
    audit_action = "auth.password_change.read"
    template_name = "portal/password_change.html"

    def get(self, request):
        return render(request, self.template_name, {"form": PasswordChangeForm(request.user)})

    def post(self, request):
        form = PasswordChangeForm(request.user, request.POST)
        if not form.is_valid():
            audit_record(action="auth.password_change", outcome=AuditEvent.Outcome.REFUSED, actor=request.user,
                         object_type="user", object_id=request.user.pk,
                         details={"fields": sorted(form.errors)})
            return render(request, self.template_name, {"form": form}, status=400)
        user = form.save()
        update_session_auth_hash(request, user)  # stay signed in here; other sessions are signed out
        audit_record(action="auth.password_change", actor=user, object_type="user", object_id=user.pk)
        return render(request, self.template_name, {"form": PasswordChangeForm(user), "changed": True})


class HomeView(PortalView):
    """What the signed-in user can do, by role."""

    permission_classes = (SignedIn,)
    audit_action = "portal.home"
    template_name = "portal/home.html"

    def get(self, request):
        return render(request, self.template_name, {"roles": roles_of(request.user)})


def root(request):
    """``/``: the home page when signed in, else the sign-in page."""
    if request.user.is_authenticated:
        return redirect("portal:home")
    return redirect("portal:login")


urlpatterns = [
    path("", root, name="root"),
    path("login/", PortalLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("password/", PasswordChangeView.as_view(), name="password-change"),
    path("home/", HomeView.as_view(), name="home"),
]
