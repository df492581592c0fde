"""Admin-site and portal sign-ins happen in Django's own views; these receivers put them in the audit log.

(API logins are audited by ``accounts.services.token_issue``.)
"""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from clearinghouse import context

#: the audit action of a session sign-in, by the channel it came through
_ACTIONS = {"admin": "auth.admin_login", "portal": "auth.portal_login"}


@receiver(user_logged_in)
def _audit_login(sender, request, user, **kwargs):
    action = _ACTIONS.get(context.current().channel)
    if action is None:
        return
    from clearinghouse.services.audit import audit_record

    audit_record(action=action, actor=user, object_type="user", object_id=user.pk)


@receiver(user_login_failed)
def _audit_login_failed(sender, credentials, request=None, **kwargs):
    action = _ACTIONS.get(context.current().channel)
    if action is None:
        return
    from clearinghouse.models import AuditEvent
    from clearinghouse.services.audit import audit_record

    audit_record(
        action=action,
        outcome=AuditEvent.Outcome.DENIED,
        details={"username": str(credentials.get("username", ""))[:150]},
    )
