import sys

from django.db import transaction

from accounts.models import Role
from accounts.services import token_issue_for, user_create
from clearinghouse.management.base import AuditedCommand


class Command(AuditedCommand):
    help = (
        "Create a user with one or more roles. The password is read from standard input "
        "(first line) when it is piped, or generated and printed once. Prints an API token as its last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", action="append", required=True, choices=Role.values,
                            help="repeat for several roles")
        parser.add_argument("--verified", action="store_true", help="mark a researcher as verified")
        parser.add_argument("--email", default="")
        parser.add_argument("--token-days", type=int, default=None, help="token lifetime (default API_TOKEN_TTL_DAYS)")

    def handle(self, *args, **options):
        password = None
        if not sys.stdin.isatty():
            line = sys.stdin.readline().rstrip("\r\n")
            password = line or None
        with transaction.atomic():  # a refused token (bad --token-days) must not leave a user behind
            user, generated = user_create(
                username=options["username"], roles=options["role"], password=password,
                email=options["email"], verified=options["verified"],
            )
            _token, raw = token_issue_for(user=user, name="add_user", ttl_days=options["token_days"])
        self.stderr.write(f"Created {user.username} with roles {', '.join(user.roles)}"
                          + (" (verified)" if user.verified_at else " (not verified)"))
        if generated:
            self.stderr.write(f"Generated password (shown once): {generated}")
        self.stdout.write(raw)
