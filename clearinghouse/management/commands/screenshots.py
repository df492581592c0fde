"""`make screenshots`: a full-page PNG of each main portal page, per role, into docs/screenshots/.

By default it builds its own world: a temporary ``DATA_DIR`` (SQLite), ``manage.py migrate`` and
``manage.py demo --model copula --epochs 1`` there (the demo's users, cohort, run, published release
and verifications), then runs itself again inside that directory (``--here``) with the demo's printed
logins on standard input (never written to a file or passed on a command line). That pass starts
``runserver`` on a free port, signs in as each role through the real login form in Debian's chromium
(Playwright with ``executable_path=/usr/bin/chromium``; no browser is ever downloaded) and saves
``docs/screenshots/<role>-<page>.png``.

The page list is resolved at run time by URL name in the ``portal`` namespace: a page that does
not exist yet (or whose object is missing) is skipped with a printed note. Not part of `make test`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import NoReverseMatch, reverse

ROOT = Path(__file__).resolve().parents[3]
MANAGE = ROOT / "manage.py"
DEFAULT_OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
DEMO_USERS = {"custodian": "demo-custodian", "researcher": "demo-researcher", "auditor": "demo-auditor"}

#: (role, URL name, the kind of object its one argument names, or None). "anonymous" is not signed in.
PAGES: list[tuple[str, str, str | None]] = [
    ("anonymous", "login", None),
    ("researcher", "home", None),
    ("researcher", "datasets", None),
    ("researcher", "dataset", "slug"),
    ("researcher", "release", "release"),
    ("researcher", "release-report", "release"),
    ("researcher", "verify", "release"),
    ("researcher", "verification", "verification"),
    ("researcher", "verifications", None),
    ("researcher", "budget", None),
    ("custodian", "home", None),
    ("custodian", "custody", None),
    ("custodian", "custody-upload", None),
    ("custodian", "custody-dataset", "slug"),
    ("custodian", "custody-run", "run"),
    ("custodian", "custody-release", "release"),
    ("custodian", "custody-budget", "slug"),
    ("custodian", "custody-researchers", None),
    ("auditor", "home", None),
    ("auditor", "audit-log", None),
    ("auditor", "audit-event", "seq"),
    ("auditor", "audit-chain", None),
]


@dataclass(frozen=True)
class Shot:
    role: str
    name: str
    path: str | None  # None: skipped
    note: str = ""

    @property
    def filename(self) -> str:
        return f"{self.role}-{self.name}.png"


def plan(objects: dict[str, object], resolve: Callable[..., str] | None = None) -> list[Shot]:
    """Each page of PAGES as a path, or skipped with the reason: its URL name is not in the portal yet,
    or the object it shows does not exist. ``objects`` maps an argument kind to its value (or None)."""
    resolve = resolve or (lambda name, args: reverse(f"portal:{name}", args=args))
    shots = []
    for role, name, kind in PAGES:
        args = []
        if kind is not None:
            if objects.get(kind) is None:
                shots.append(Shot(role, name, None, f"no {kind} in the demo data"))
                continue
            args = [objects[kind]]
        try:
            shots.append(Shot(role, name, resolve(name, args)))
        except NoReverseMatch:
            shots.append(Shot(role, name, None, f"no page named portal:{name} yet"))
    return shots


def demo_logins(output: str) -> dict[str, str]:
    """The demo's printed logins (``  <role> <username> <password>``) by username."""
    logins = {}
    for line in output.splitlines():
        match = re.fullmatch(r"  (\w+)\s+(demo-\w+)\s+([A-Za-z0-9_-]{16,})", line)
        if match and match.group(1) in DEMO_USERS and DEMO_USERS[match.group(1)] == match.group(2):
            logins[match.group(2)] = match.group(3)
    return logins


def demo_objects() -> dict[str, object]:
    """The ids the pages show, read from this DATA_DIR's database (the demo's world)."""
    from clearinghouse.models import AuditEvent, Dataset
    from generators.models import GeneratorRun
    from releases.models import Release
    from verification.models import Verification

    dataset = Dataset.objects.order_by("pk").first()
    release = Release.objects.exclude(published_at=None).order_by("pk").first()  # researchers see published ones
    run = GeneratorRun.objects.filter(status="succeeded").order_by("pk").first()
    verification = Verification.objects.filter(user__username=DEMO_USERS["researcher"]).order_by("pk").first()
    event = AuditEvent.objects.order_by("seq").first()
    return {"slug": dataset.slug if dataset else None, "release": release.pk if release else None,
            "run": run.pk if run else None, "verification": verification.pk if verification else None,
            "seq": event.seq if event else None}


class Command(BaseCommand):
    help = "Save a full-page PNG of each main portal page per role into docs/screenshots/ (Debian chromium)."

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
        parser.add_argument("--keep", action="store_true", help="keep the temporary DATA_DIR (its path is printed)")
        parser.add_argument("--here", action="store_true",
                            help="internal: this DATA_DIR already holds the demo; logins as JSON on stdin")

    def handle(self, *args, **options):
        if not Path(CHROMIUM).exists():
            raise CommandError(f"{CHROMIUM} is missing: install Debian's package (apt-get install chromium).")
        if options["here"]:
            self._shoot(json.loads(sys.stdin.read()), options["out"])
        else:
            self._prepare_and_shoot(options)

    def _prepare_and_shoot(self, options) -> None:
        data_dir = Path(tempfile.mkdtemp(prefix="clearinghouse-screenshots-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_BROKER_URL"))}
        env.update({"DJANGO_DEBUG": "1", "DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
        try:
            self.stdout.write(f"Demo data in a temporary DATA_DIR: {data_dir}")
            for argv in (["migrate", "--noinput", "-v", "0"], ["demo", "--model", "copula", "--epochs", "1"]):
                done = subprocess.run([sys.executable, str(MANAGE), *argv], cwd=ROOT, env=env,
                                      capture_output=True, text=True)
                if done.returncode:
                    raise CommandError(f"manage.py {' '.join(argv)} failed:\n{done.stderr[-4000:]}")
            logins = demo_logins(done.stdout)
            if sorted(logins) != sorted(DEMO_USERS.values()):
                raise CommandError("the demo did not print a login per role")
            shot = subprocess.run([sys.executable, str(MANAGE), "screenshots", "--here", "--out", str(options["out"])],
                                  cwd=ROOT, env=env, input=json.dumps(logins), text=True)
            if shot.returncode:
                raise CommandError("taking the screenshots failed (see above)")
        finally:
            if options["keep"]:
                self.stdout.write(f"Kept {data_dir}")
            else:
                shutil.rmtree(data_dir, ignore_errors=True)

    def _shoot(self, logins: dict[str, str], out: Path) -> None:
        from playwright.sync_api import sync_playwright

        shots = plan(demo_objects())
        for shot in shots:
            if shot.path is None:
                self.stdout.write(f"  skip {shot.filename}: {shot.note}")
        out.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}", "--noreload"],
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            _wait_until_up(f"{base}/login/", server)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
                try:
                    for role in ("anonymous", *DEMO_USERS):
                        todo = [s for s in shots if s.role == role and s.path is not None]
                        if not todo:
                            continue
                        context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
                        context.set_default_timeout(30_000)
                        page = context.new_page()
                        page.on("dialog", lambda dialog: dialog.dismiss())  # never confirm a form action
                        if role != "anonymous":
                            username = DEMO_USERS[role]
                            page.goto("/login/")
                            page.fill("input[name=username]", username)
                            page.fill("input[name=password]", logins[username])
                            page.click("button[type=submit]")
                            page.wait_for_url("**/home/")
                        for shot in todo:
                            response = page.goto(shot.path, wait_until="load")
                            target = out / shot.filename
                            page.screenshot(path=str(target), full_page=True)
                            status = response.status if response is not None else "?"
                            self.stdout.write(f"  saved {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}"
                                              f" ({shot.path}, HTTP {status})")
                        context.close()
                finally:
                    browser.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        saved = sum(1 for s in shots if s.path is not None)
        self.stdout.write(f"{saved} screenshot(s) in {out}; {len(shots) - saved} page(s) skipped.")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CommandError(f"runserver exited with status {server.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise CommandError(f"the server did not answer at {url} within {seconds:.0f} s")
