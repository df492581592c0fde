"""`make fuzz`: the service on loopback, attacked over HTTP for a bounded time; no answer may be a 5xx.

It migrates a temporary SQLite database under a temporary ``DATA_DIR``, builds a small world (GBSG2 as a
dataset, a copula release of it published, one answered verification; a user and token per role:
custodian, researcher (verified), unverified researcher, auditor, and an admin holding every role), starts
gunicorn (``manage.py runserver --noreload`` when gunicorn is not installed) on 127.0.0.1, then runs:

* the probes of issue 14's security tests: deeply nested JSON (``"[" * 100000 + "]" * 100000``) at every
  JSON entry point and in an upload's multipart ``schema`` (field and file part), each a 400
  ``malformed_request``; a CSV upload with 10^5 header columns, refused quickly with a small body; a
  formula-leading path (``/api/v1/datasets/=HYPERLINK("x","y")/``) and ``X-Request-ID: -A1.A1.A1``, after
  which the auditor's CSV export has no cell a spreadsheet would evaluate;
* schemathesis over HTTP against ``/api/v1/schema/``, every operation as every role, a few examples each
  of data the schema allows and of data it excludes, with the ``not_a_server_error`` check, until
  ``FUZZ_SECONDS`` (default 180; counted from the server's first answer, after the set-up) are spent;
* 300 anonymous GETs, among which 429s must appear (the anonymous rate is the default, 120/min).

Jobs are queued on an embedded broker no worker reads (a fuzzed training run or report would only burn
the time budget) and training epochs are capped at 2. Prints a table (requests, statuses, 5xx, time per
probe), writes ``bench/results/fuzz.json``, and exits 1 when any answer was a 5xx or a probe's expectation
failed. Loopback only; bounded in requests and time.

    python -m bench.fuzz [--seconds 180] [--examples 5] [--burst 300] [--port 0]

The probe functions take a ``send`` callable, so tests/test_fuzz_probes.py runs the same probes in-process
with Django's test client.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

from bench.common import ROOT, SCHEMA_FILE, gbsg2_csv, machine, report_mark_passing

RESULTS_FILE = ROOT / "bench" / "results" / "fuzz.json"
DEEP = "[" * 100_000 + "]" * 100_000
WIDE = 100_000
#: A refusal of the wide header must come back within this many seconds and this many bytes.
WIDE_SECONDS, WIDE_BODY_BYTES = 10.0, 8 * 1024
FORMULA_PATH = '/api/v1/datasets/=HYPERLINK("x","y")/'
FORMULA_REQUEST_ID = "-A1.A1.A1"
#: What a spreadsheet evaluates at the start of a cell.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
ROLES = ("anonymous", "unverified", "researcher", "auditor", "custodian", "admin")
#: Run last: they can revoke the tokens the other operations use.
LAST = ("POST /api/v1/auth/tokens/{token_id}/revoke/",)
SLUG = "fuzz-gbsg2"


# --------------------------------------------------------------------------- transport
@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes
    seconds: float


class Send(Protocol):
    def __call__(self, method: str, path: str, *, token: str | None = None, body: bytes | str | None = None,
                 content_type: str | None = None, headers: dict[str, str] | None = None) -> Answer: ...


def http_sender(base_url: str, *, timeout: float = 60.0) -> tuple[Send, Callable[[], None]]:
    """A ``send`` over HTTP to ``base_url`` (httpx, one connection pool), and its ``close``."""
    import httpx

    client = httpx.Client(base_url=base_url, timeout=timeout)

    def send(method, path, *, token=None, body=None, content_type=None, headers=None) -> Answer:
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if content_type:
            sent["Content-Type"] = content_type
        started = time.perf_counter()
        response = client.request(method, path, content=body.encode() if isinstance(body, str) else body,
                                  headers=sent)
        return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content,
                      time.perf_counter() - started)

    return send, client.close


def django_sender() -> Send:
    """A ``send`` through Django's test client (in this process; for the test suite)."""
    from django.test import Client

    client = Client()

    def send(method, path, *, token=None, body=None, content_type=None, headers=None) -> Answer:
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        response = client.generic(method.upper(), path, data=body if body is not None else b"",
                                  content_type=content_type or "application/octet-stream", headers=sent)
        content = b"".join(response.streaming_content) if response.streaming else response.content
        return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, content,
                      time.perf_counter() - started)

    return send


def multipart(fields: dict[str, str | tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type; a tuple is a file part (name, bytes, type)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, content, kind = value
            head = (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: {kind}\r\n\r\n")
        else:
            head, content = f'Content-Disposition: form-data; name="{name}"\r\n\r\n', value.encode()
        parts.append(f"--{boundary}\r\n".encode() + head.encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# --------------------------------------------------------------------------- results
@dataclass
class ProbeResult:
    """What one probe sent and got: requests, statuses, time, and the expectations that failed."""

    name: str
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    #: schemathesis: (operation, role, mode) left out because no such data exists
    skipped: int = 0

    def record(self, answer: Answer) -> Answer:
        self.requests += 1
        self.statuses[answer.status] += 1
        if answer.status >= 500:
            self.problems.append(f"{answer.status}: {answer.body[:200]!r}")
        return answer

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if isinstance(status, int) and status >= 500)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "requests": self.requests, "server_errors": self.server_errors,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items(), key=lambda kv: str(kv[0]))},
                "seconds": round(self.seconds, 3), "problems": self.problems[:20], "skipped": self.skipped}


def _error_code(answer: Answer) -> str | None:
    try:
        return json.loads(answer.body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def _timed(name: str):
    """Decorator: the probe's wall time into its result."""
    def wrap(probe):
        def run(*args, **kwargs) -> ProbeResult:
            result = ProbeResult(name)
            started = time.perf_counter()
            try:
                probe(result, *args, **kwargs)
            finally:
                result.seconds = time.perf_counter() - started
            return result
        run.__name__ = probe.__name__
        run.__doc__ = probe.__doc__
        return run
    return wrap


# --------------------------------------------------------------------------- the world
def world_create() -> dict[str, Any]:
    """Users and tokens per role, GBSG2 as a dataset, a published copula release (report marked passing)
    and one answered verification (after ``django.setup()``, on a migrated database). Returns ``tokens``
    (role → raw token; anonymous → None) and ``known`` (path parameters: slug, ids)."""
    from accounts.models import User
    from accounts.services import token_issue_for, user_create
    from clearinghouse.services.datasets import dataset_create
    from generators.services import run_create, run_execute
    from releases.services import release_create, release_publish
    from verification.openapi import hypothesis_examples
    from verification.services import verification_submit

    users, tokens = {}, {"anonymous": None}
    for role, roles, verified in (("custodian", ["custodian"], True), ("researcher", ["researcher"], True),
                                  ("unverified", ["researcher"], False), ("auditor", ["auditor"], True),
                                  ("admin", ["custodian", "researcher", "auditor"], True)):
        users[role], _ = user_create(username=f"fuzz-{role}", roles=roles, verified=verified)
        tokens[role] = token_issue_for(user=users[role], name="fuzz")[1]
    User.objects.filter(pk=users["admin"].pk).update(is_staff=True, is_superuser=True)
    custodian = users["custodian"]
    dataset = dataset_create(slug=SLUG, name="GBSG2 (fuzz)", schema=json.loads(SCHEMA_FILE.read_text("utf-8")),
                             data=gbsg2_csv(), by=custodian)
    run = run_create(dataset=dataset, model="copula", epochs=1, seed=0, device="cpu", by=custodian, enqueue=False)
    run_execute(run.pk, worker="fuzz")  # the task's body, in this process, now
    run.refresh_from_db()
    if run.status != "succeeded":
        raise RuntimeError(f"the world's copula run {run.status}: {run.error}")
    release = release_create(run=run, rows=200, seed=1, by=custodian, queue_report=False)
    report_mark_passing(release)
    release = release_publish(release=release, by=custodian)
    example = next(e.value for e in hypothesis_examples(release.pk) if e.name == "mean")
    asked = verification_submit(user=users["researcher"], raw=example)
    known = {"slug": SLUG, "release_id": release.pk, "run_id": run.pk, "user_id": users["researcher"].pk,
             "researcher_id": users["researcher"].pk, "token_id": 1, "sweep_id": 1, "verification_id": asked.pk}
    return {"tokens": tokens, "known": known}


def json_entry_points(known: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(role, method, path) of every endpoint that parses a JSON body (tests/test_hardening_json.py's list)."""
    slug, run, release, researcher = known["slug"], known["run_id"], known["release_id"], known["researcher_id"]
    return [
        ("anonymous", "POST", "/api/v1/auth/token/"),
        ("anonymous", "POST", "/api/v1/accounts/register/"),
        ("researcher", "POST", "/api/v1/verifications/"),
        ("researcher", "POST", "/api/v1/verifications/preview/"),
        ("custodian", "PUT", f"/api/v1/datasets/{slug}/budget-policy/"),
        ("custodian", "PUT", f"/api/v1/datasets/{slug}/gates/"),
        ("custodian", "PUT", f"/api/v1/datasets/{slug}/allocations/{researcher}/"),
        ("custodian", "POST", f"/api/v1/datasets/{slug}/runs/"),
        ("custodian", "POST", f"/api/v1/datasets/{slug}/sweeps/"),
        ("custodian", "POST", f"/api/v1/runs/{run}/releases/"),
        ("custodian", "POST", f"/api/v1/releases/{release}/publish/"),
    ]


# --------------------------------------------------------------------------- the probes
@_timed("deep JSON bodies")
def probe_deep_json(result: ProbeResult, send: Send, world: dict[str, Any]) -> None:
    """``[`` × 10^5 at every JSON entry point: a 400 ``malformed_request`` each."""
    for role, method, path in json_entry_points(world["known"]):
        answer = result.record(send(method, path, token=world["tokens"][role], body=DEEP,
                                    content_type="application/json"))
        if answer.status != 400 or _error_code(answer) != "malformed_request":
            result.problems.append(f"{method} {path} as {role}: {answer.status} {_error_code(answer)}, "
                                   "not 400 malformed_request")


@_timed("deep JSON upload schema")
def probe_deep_upload_schema(result: ProbeResult, send: Send, world: dict[str, Any]) -> None:
    """An upload whose multipart ``schema`` (a field, then a file part) is ``[`` × 10^5: 400 each."""
    cohort = ("cohort.csv", b"pid,horTh\n1,no\n", "text/csv")
    for schema in (DEEP, ("schema.json", DEEP.encode(), "application/json")):
        body, kind = multipart({"slug": "fuzz-deep", "name": "deep", "schema": schema, "file": cohort})
        answer = result.record(send("POST", "/api/v1/datasets/", token=world["tokens"]["custodian"], body=body,
                                    content_type=kind))
        if answer.status != 400 or _error_code(answer) != "malformed_request":
            result.problems.append(f"upload with a deep schema {'file' if isinstance(schema, tuple) else 'field'}: "
                                   f"{answer.status} {_error_code(answer)}, not 400 malformed_request")


def wide_csv(n: int = WIDE) -> bytes:
    return (",".join(f"c{i:06d}" for i in range(n)) + "\n" + ",".join("1" for _ in range(n)) + "\n").encode()


@_timed("10^5-column CSV header")
def probe_wide_header(result: ProbeResult, send: Send, world: dict[str, Any]) -> None:
    """A CSV upload with 10^5 header columns: a 400 ``bad_header`` within WIDE_SECONDS, its body small."""
    body, kind = multipart({"slug": "fuzz-wide", "name": "wide", "schema": SCHEMA_FILE.read_text("utf-8"),
                            "file": ("wide.csv", wide_csv(), "text/csv")})
    answer = result.record(send("POST", "/api/v1/datasets/", token=world["tokens"]["custodian"], body=body,
                                content_type=kind))
    if answer.status != 400 or _error_code(answer) != "bad_header":
        result.problems.append(f"the wide upload: {answer.status} {_error_code(answer)}, not 400 bad_header")
    if answer.seconds > WIDE_SECONDS:
        result.problems.append(f"the wide upload took {answer.seconds:.1f} s (more than {WIDE_SECONDS:.0f} s)")
    if len(answer.body) > WIDE_BODY_BYTES:
        result.problems.append(f"the wide upload's refusal is {len(answer.body)} bytes (more than {WIDE_BODY_BYTES})")


@_timed("formula cells in the audit CSV")
def probe_formula_cells(result: ProbeResult, send: Send, world: dict[str, Any]) -> None:
    """Plant a formula (an anonymous GET of a formula-leading path, a formula-leading X-Request-ID), then
    read the auditor's CSV export: no cell may begin with = + - @, a tab or a CR."""
    result.record(send("GET", FORMULA_PATH))
    planted = result.record(send("GET", "/api/v1/datasets/", headers={"X-Request-ID": FORMULA_REQUEST_ID}))
    if planted.headers.get("x-request-id") == FORMULA_REQUEST_ID:
        result.problems.append(f"the request id {FORMULA_REQUEST_ID} was kept")
    export = result.record(send("GET", "/api/v1/audit/events/export.csv", token=world["tokens"]["auditor"]))
    if export.status != 200:
        result.problems.append(f"the auditor's CSV export: {export.status} {_error_code(export)}")
        return
    rows = list(csv.reader(io.StringIO(export.body.decode("utf-8"), newline="")))
    unsafe = [cell for row in rows for cell in row if cell.startswith(FORMULA_LEADS)]
    if unsafe:
        result.problems.append(f"{len(unsafe)} CSV cells a spreadsheet would evaluate, e.g. {unsafe[0][:60]!r}")
    if not any(cell == "'" + FORMULA_PATH.split("/")[4] for row in rows for cell in row):
        result.problems.append("the planted formula is not in the export (escaped): the probe planted nothing")


@_timed("anonymous burst")
def probe_anonymous_burst(result: ProbeResult, send: Send, world: dict[str, Any], *, count: int = 300) -> None:
    """``count`` anonymous GETs from one address: the rate limit must answer 429 to some of them."""
    for _ in range(count):
        result.record(send("GET", "/api/v1/datasets/"))
    if not result.statuses[429]:
        result.problems.append(f"{count} anonymous GETs and no 429: {dict(result.statuses)}")


@_timed("schemathesis")
def probe_schemathesis(result: ProbeResult, schema, world: dict[str, Any], *, examples: int, deadline: float,
                       call: dict[str, Any] | None = None, only: Callable[[str], bool] | None = None) -> None:
    """Every operation of ``schema`` (a loaded schemathesis schema, over HTTP or WSGI) as every role,
    ``examples`` cases each of data the schema allows and of data it excludes (path parameters generated
    or the world's ids), with ``not_a_server_error``;
    stops starting operations at ``deadline`` (``time.monotonic()``). ``only`` keeps operations by label."""
    from hypothesis import HealthCheck, Phase, given, settings, strategies as st
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation.modes import GenerationMode

    operations = [r.ok() for r in schema.get_all_operations()]
    operations.sort(key=lambda op: (f"{op.method.upper()} {op.path}" in LAST, op.path, op.method))
    tokens, known = world["tokens"], world["known"]
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        if only is not None and not only(label):
            continue
        for role, mode in ((r, m) for r in ROLES for m in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
            if time.monotonic() > deadline:
                return
            headers = {"Authorization": f"Bearer {tokens[role]}"} if tokens[role] else {}

            @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode), use_known=st.booleans())
            def exercise(case, use_known):
                if time.monotonic() > deadline:
                    return
                if use_known and case.path_parameters:
                    case.path_parameters = {k: known.get(k, v) for k, v in case.path_parameters.items()}
                started = time.perf_counter()
                try:
                    response = case.call(headers=headers, **(call or {}))
                except Exception as exc:  # a dropped connection or a timeout is as bad as a 500
                    result.requests += 1
                    result.statuses["no answer"] += 1
                    result.problems.append(f"{label} as {role} ({mode.value}): no answer "
                                           f"({type(exc).__name__}: {exc})"[:300])
                    return
                result.requests += 1
                result.statuses[response.status_code] += 1
                try:
                    case.validate_response(response, checks=[not_a_server_error], headers=headers)
                except (AssertionError, BaseExceptionGroup) as exc:
                    seconds = time.perf_counter() - started
                    result.problems.append(f"{label} as {role} ({mode.value}, {seconds:.2f} s): "
                                           f"{str(exc)[:300]}\n    {case.as_curl_command()[:300]}")

            try:
                exercise()
            except Unsatisfiable:  # no data the schema excludes (e.g. only string path parameters)
                result.skipped += 1


# --------------------------------------------------------------------------- the run
def _environment(data_dir: Path) -> dict[str, str]:
    """The development profile on a temporary DATA_DIR and SQLite, no Redis; jobs queued, never run."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update({"DJANGO_SETTINGS_MODULE": "clearinghouse.settings", "DJANGO_DEBUG": "1", "DATA_DIR": str(data_dir),
                "DB_CONN_MAX_AGE": "0", "THROTTLE_USER": "1000000/min", "GENERATOR_MAX_EPOCHS": "2",
                "RELEASE_MAX_ROWS": "1000", "LOG_LEVEL": "ERROR", "PYTHONHASHSEED": "0"})
    return env


def _server_command(port: int) -> tuple[list[str], str]:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        return [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], "runserver"
    # One process (the cache is process memory, so the rate limits count in one place), four threads.
    return [sys.executable, "-m", "gunicorn", "clearinghouse.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--threads", "4", "--timeout", "120", "--log-level", "warning"], "gunicorn"


def summary_table(results: list[ProbeResult]) -> str:
    lines = [f"{'probe':34s} {'requests':>8s} {'5xx':>4s} {'seconds':>8s}  statuses",
             "-" * 100]
    for r in results:
        statuses = ", ".join(f"{k}×{v}" for k, v in sorted(r.statuses.items(), key=lambda kv: str(kv[0])))
        lines.append(f"{r.name:34s} {r.requests:8d} {r.server_errors:4d} {r.seconds:8.1f}  {statuses}")
    total = sum(r.requests for r in results)
    lines += ["-" * 100, f"{'total':34s} {total:8d} {sum(r.server_errors for r in results):4d} "
                         f"{sum(r.seconds for r in results):8.1f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", "180")),
                        help="the attack's time budget once the server answers (FUZZ_SECONDS; default 180); "
                             "the set-up (migrate, the world) comes before it")
    parser.add_argument("--examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", "4")),
                        help="schemathesis examples per operation, role and mode (positive, negative; "
                             "FUZZ_EXAMPLES; default 4)")
    parser.add_argument("--burst", type=int, default=300, help="anonymous GETs in the rate-limit probe")
    parser.add_argument("--port", type=int, default=0, help="the loopback port (default: a free one)")
    args = parser.parse_args(argv)
    started = time.monotonic()

    data_dir = Path(tempfile.mkdtemp(prefix="fuzz-"))
    env = _environment(data_dir)
    os.environ.update(env)
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    # The screenshots command starts and waits for a server on loopback the same way.
    from clearinghouse.management.commands.screenshots import _free_port, _wait_until_up

    call_command("migrate", "--noinput", verbosity=0)
    world = world_create()
    connections.close_all()
    setup_s = time.monotonic() - started
    print(f"world: migrated SQLite under {data_dir}, users per role, dataset {SLUG}, release "
          f"{world['known']['release_id']} published ({setup_s:.1f} s)", flush=True)

    port = args.port or _free_port()
    command, server = _server_command(port)
    # The server queues jobs on an embedded broker that no worker reads.
    server_env = {**env, "CELERY_BROKER_URL": "filesystem://"}
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    results: list[ProbeResult] = []
    send, close = http_sender(base_url)
    try:
        _wait_until_up(f"{base_url}/api/v1/schema/", process)
        print(f"server: {server} on {base_url}", flush=True)
        deadline = time.monotonic() + args.seconds  # the budget is the attack's, from the server's first answer
        for probe in (probe_deep_json, probe_deep_upload_schema, probe_wide_header, probe_formula_cells):
            results.append(probe(send, world))
            print(f"  {results[-1].name}: {results[-1].requests} requests, {dict(results[-1].statuses)}", flush=True)
        import schemathesis

        schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/schema/")
        # The burst needs a few seconds at the end of the budget.
        results.append(probe_schemathesis(schema, world, examples=args.examples, deadline=deadline - 15,
                                          call={"base_url": base_url, "timeout": 60}))
        print(f"  {results[-1].name}: {results[-1].requests} requests, {dict(results[-1].statuses)}", flush=True)
        results.append(probe_anonymous_burst(send, world, count=args.burst))
    finally:
        close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        server_log = (data_dir / "server.log").read_text("utf-8", errors="replace")[-4000:]
        shutil.rmtree(data_dir, ignore_errors=True)

    wall_s = time.monotonic() - started
    print("\n" + summary_table(results))
    problems = [(r.name, p) for r in results for p in r.problems]
    for name, problem in problems[:30]:
        print(f"  ! {name}: {problem}")
    server_errors = sum(r.server_errors for r in results)
    print(f"\n{sum(r.requests for r in results)} requests, {server_errors} answered 5xx, "
          f"{len(problems)} problems, {wall_s:.0f} s in all (setup {setup_s:.0f} s)")
    if server_errors and server_log:
        print("\nthe server's log (its end):\n" + server_log)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(packages=("django", "gunicorn", "schemathesis", "hypothesis")),
        "server": server, "budget_s": args.seconds, "examples": args.examples, "setup_s": round(setup_s, 1),
        "wall_s": round(wall_s, 1), "requests": sum(r.requests for r in results), "server_errors": server_errors,
        "problems": len(problems), "probes": [r.to_dict() for r in results]}, indent=2) + "\n", encoding="utf-8")
    print(f"written: {RESULTS_FILE.relative_to(ROOT)}")
    return 1 if server_errors or problems else 0


if __name__ == "__main__":
    sys.exit(main())
