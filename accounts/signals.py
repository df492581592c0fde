"""Admin-site logins happen in Django's own views; these receivers put them in the audit log.

(API logins are audited by ``accounts.services.token_issue``.)
"""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from clearinghouse import context


@receiver(user_logged_in)
def _audit_login(sender, request, user, **kwargs):
    if context.current().channel != "admin":
        return
    from clearinghouse.services.audit import audit_record

    audit_record(action="auth.admin_login", actor=user, object_type="user", object_id=user.pk)


@receiver(user_login_failed)
def _audit_login_failed(sender, credentials, request=None, **kwargs):
    if context.current().channel != "admin":
        return
    from clearinghouse.models import AuditEvent
    from clearinghouse.services.audit import audit_record

    audit_record(
        action="auth.admin_login",
        outcome=AuditEvent.Outcome.DENIED,
        details={"username": str(credentials.get("username", ""))[:150]},
    )
