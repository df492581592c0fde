from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import ApiToken, User


def user_list(*, role: str | None = None, verified: bool | None = None) -> QuerySet[User]:
    qs = User.objects.all().order_by("id")
    if role:
        qs = qs.filter(**{f"is_{role}": True})
    if verified is True:
        qs = qs.filter(verified_at__isnull=False)
    elif verified is False:
        qs = qs.filter(verified_at__isnull=True)
    return qs


def token_list(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")
