"""A fresh DP count over HTTP against a plain authenticated GET, with the custody cache on and off
(issue 15, item 3: target p50(count) ≤ 2 × p50(GET), same run, at 10k and 1M rows).

GBSG2 (686 rows, shipped with lifelines) is resampled with noise to the given sizes in memory,
uploaded through the service into a throwaway DATA_DIR (SQLite), a copula release of the same size
is published, and a live server in this process answers. Requests alternate in blocks of 10: GETs
of /api/v1/datasets/, then count POSTs with both caches off (CUSTODY_CACHE_BYTES=0,
RELEASE_CACHE_BYTES=0: as before), with the custody cache only, and with both on (each after one
uncounted request that fills the caches). Each count is a new hypothesis (its time threshold differs),
so none is answered from a stored answer. Also timed: ``custody_read`` alone, hit and miss, and the
release's synthetic rows (read on every verification too). Nothing is written to docs/.

    python bench/custody_cache.py                 # 10k rows
    python bench/custody_cache.py --rows 10000 1000000 --requests 50
    python bench/custody_cache.py --database-url postgres://postgres@127.0.0.1:5432/ch_custody_bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root must be importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.common import JsonClient, report_mark_passing, resampled_gbsg2  # noqa: E402

TARGET_RATIO = 2.0
BLOCK = 10


def ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


def setup(rows: int, log) -> tuple[object, object, str]:
    """A dataset of ``rows`` rows, a published copula release of as many rows, a researcher's token."""
    from django.utils import timezone

    from bench.common import SCHEMA_FILE
    from bench.verification import project

    api = project.service_api()
    custodian, _ = api.user_create(username=f"bench-custodian-{rows}", roles=["custodian"], verified=True)
    researcher, _ = api.user_create(username=f"bench-researcher-{rows}", roles=["researcher"], verified=True)
    _token, raw = api.token_issue_for(user=researcher, name="bench")
    t0 = time.perf_counter()
    table, _schema = resampled_gbsg2(rows)
    csv = table.to_csv(index=False).encode()
    dataset = api.dataset_create(slug=f"gbsg2-{rows}", name=f"GBSG2 resampled to {rows} rows",
                                 schema=json.loads(SCHEMA_FILE.read_text(encoding="utf-8")), data=csv, by=custodian)
    run = api.run_create(dataset=dataset, model="copula", epochs=1, seed=0, device="cpu", by=custodian, enqueue=False)
    api.enqueue(run)  # no broker: trains in-process now
    run.refresh_from_db()
    if run.status != "succeeded":
        raise RuntimeError(f"copula run {run.status}: {run.error}")
    release = api.release_create(run=run, rows=rows, seed=1, by=custodian, queue_report=False)
    report_mark_passing(release)
    release = api.release_publish(release=release, by=custodian)
    api.policy_set(dataset=dataset, changes={"total_cap": 1000, "default_allocation": 1, "daily_limit": None},
                   by=custodian)
    api.allocation_set(user=researcher, dataset=dataset, epsilon=1000, by=custodian)
    log(f"{rows} rows: dataset, copula release {release.pk} published in {time.perf_counter() - t0:.1f} s")
    return dataset, release, raw


def measure(rows: int, requests: int, client_for, log) -> dict:
    from django.conf import settings

    from clearinghouse.custody import custody_cache_clear, custody_cache_info, custody_read
    from clearinghouse.schema import Schema
    from releases.selectors import release_rows_cache_clear, release_synthetic_rows

    dataset, release, token = setup(rows, log)
    client = client_for(token)
    budget = settings.CUSTODY_CACHE_BYTES
    counter = [0]

    def count_body() -> dict:
        counter[0] += 1
        return {"release": release.pk, "kind": "count", "where": [
            {"column": "time", "op": ">", "value": round(500 + 0.01 * counter[0], 2)}],
            "claim": {"direction": "greater", "value": 10}, "epsilon": 0.01}

    def post() -> float:
        body = count_body()
        t = time.perf_counter()
        status, payload = client.call("POST", "/verifications/", body)
        elapsed = time.perf_counter() - t
        if status != 201 or payload.get("reused"):
            raise RuntimeError(f"count verification: {status} {str(payload)[:300]}")
        return elapsed

    def get() -> float:
        t = time.perf_counter()
        status, _payload = client.call("GET", "/datasets/")
        elapsed = time.perf_counter() - t
        if status != 200:
            raise RuntimeError(f"GET /datasets/: {status}")
        return elapsed

    times: dict[str, list[float]] = {"get": [], "count_cache_off": [], "count_custody_cache_only": [],
                                     "count_cache_on": []}
    cold_on: list[float] = []
    release_budget = settings.RELEASE_CACHE_BYTES

    def caches(custody: bool, release_rows: bool) -> None:
        settings.CUSTODY_CACHE_BYTES = budget if custody else 0
        settings.RELEASE_CACHE_BYTES = release_budget if release_rows else 0
        custody_cache_clear()
        release_rows_cache_clear()

    for _ in range(3):  # warm the server, the connection pool, the imports
        get()
    while len(times["get"]) < requests:
        n = min(BLOCK, requests - len(times["get"]))
        times["get"] += [get() for _ in range(n)]
        caches(False, False)  # as before this change: every verification reads both files
        times["count_cache_off"] += [post() for _ in range(n)]
        caches(True, False)
        post()  # fills the custody cache, not counted
        times["count_custody_cache_only"] += [post() for _ in range(n)]
        caches(True, True)
        cold_on.append(post())  # the misses that fill both caches (as costly as a read with them off)
        times["count_cache_on"] += [post() for _ in range(n)]
    held = custody_cache_info()

    # custody_read alone, and the synthetic rows each verification reads as well.
    reads: dict[str, list[float]] = {"custody_read_miss": [], "custody_read_hit": [], "release_synthetic_rows": []}
    schema = Schema.from_dict(dataset.schema)
    for _ in range(max(5, min(requests, 20))):
        custody_cache_clear()
        release_rows_cache_clear()
        t = time.perf_counter()
        custody_read(dataset.storage_name)
        reads["custody_read_miss"].append(time.perf_counter() - t)
        t = time.perf_counter()
        custody_read(dataset.storage_name)
        reads["custody_read_hit"].append(time.perf_counter() - t)
        t = time.perf_counter()
        release_synthetic_rows(release, schema)
        reads["release_synthetic_rows"].append(time.perf_counter() - t)

    out = {"rows": rows, "requests": requests, "cache_bytes_held": held["bytes"],
           **{f"{k}_p50_ms": round(ms(v), 2) for k, v in times.items()},
           "count_cache_on_first_p50_ms": round(ms(cold_on), 2),
           **{f"{k}_p50_ms": round(ms(v), 3) for k, v in reads.items()}}
    out["ratio_cache_off"] = round(out["count_cache_off_p50_ms"] / out["get_p50_ms"], 2)
    out["ratio_custody_cache_only"] = round(out["count_custody_cache_only_p50_ms"] / out["get_p50_ms"], 2)
    out["ratio_cache_on"] = round(out["count_cache_on_p50_ms"] / out["get_p50_ms"], 2)
    out["target_met"] = out["ratio_cache_on"] <= TARGET_RATIO
    return out


def _fresh_database(url: str, *, create: bool = True) -> None:
    """Drop the URL's database and (with ``create``) create it empty, over the server's maintenance database."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing the database name {name!r}")
    with psycopg.connect(urlunsplit(parts._replace(scheme="postgresql", path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000])
    parser.add_argument("--requests", type=int, default=50, help="timed requests of each sort (default 50)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--database-url", help="a PostgreSQL URL whose database this bench creates afresh and drops "
                                               "(default: SQLite in the throwaway DATA_DIR)")
    parser.add_argument("--production", metavar="REDIS_URL",
                        help="run the server with the production profile (DJANGO_DEBUG off: no per-query debug "
                             "recording; fresh secret and encryption keys; Redis at REDIS_URL as the shared cache "
                             "the profile requires; HTTPS redirect off, as behind a TLS proxy) instead of the "
                             "development one")
    args = parser.parse_args(argv)
    if args.database_url:
        _fresh_database(args.database_url)

    data_dir = Path(tempfile.mkdtemp(prefix="bench-custody-cache-"))
    os.environ.update({"DJANGO_SETTINGS_MODULE": "clearinghouse.settings", "DJANGO_DEBUG": "1",
                       "DATA_DIR": str(data_dir), "THROTTLE_USER": "1000000/min",
                       "MAX_UPLOAD_BYTES": str(1 << 30), "RELEASE_MAX_ROWS": str(max(args.rows))})
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    if args.production:
        import secrets

        from cryptography.fernet import Fernet

        os.environ.update({"DJANGO_DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50),
                           "DATA_ENCRYPTION_KEY": Fernet.generate_key().decode(), "ALLOWED_HOSTS": "127.0.0.1",
                           "SECURE_SSL_REDIRECT": "0", "REDIS_URL": args.production})
    import django

    django.setup()
    import logging

    logging.disable(logging.WARNING)
    from django.conf import settings
    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, get_internal_wsgi_application

    from bench.common import machine

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    results = []
    server = None
    try:
        call_command("migrate", "--noinput", verbosity=0)
        server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet)
        server.set_app(get_internal_wsgi_application())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}/api/v1"
        for rows in args.rows:
            result = measure(rows, args.requests, lambda token: JsonClient(base, token, timeout=600), log)
            results.append(result)
            print(f"{rows:>9,} rows  GET /datasets/ p50 {result['get_p50_ms']:7.2f} ms | count p50: caches off "
                  f"{result['count_cache_off_p50_ms']:8.2f} ms ({result['ratio_cache_off']:5.2f}× GET), custody cache "
                  f"only {result['count_custody_cache_only_p50_ms']:7.2f} ms "
                  f"({result['ratio_custody_cache_only']:5.2f}× GET), both on "
                  f"{result['count_cache_on_p50_ms']:7.2f} ms ({result['ratio_cache_on']:4.2f}× GET, target ≤ "
                  f"{TARGET_RATIO:g}×: {'met' if result['target_met'] else 'missed'}); first after a clear "
                  f"{result['count_cache_on_first_p50_ms']:.1f} ms", flush=True)
            print(f"{'':>15}custody_read miss {result['custody_read_miss_p50_ms']:.2f} ms, hit "
                  f"{result['custody_read_hit_p50_ms']:.3f} ms; release_synthetic_rows "
                  f"{result['release_synthetic_rows_p50_ms']:.2f} ms; cache holds "
                  f"{result['cache_bytes_held'] / 2**20:.1f} MiB of real rows (budget "
                  f"{settings.CUSTODY_CACHE_BYTES / 2**20:.0f} MiB)",
                  flush=True)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        from django.db import connections

        connections.close_all()
        shutil.rmtree(data_dir, ignore_errors=True)
        if args.database_url:
            _fresh_database(args.database_url, create=False)
    summary = {"machine": machine(packages=("django", "pandas", "pyarrow", "cryptography"), load_average=True),
               "results": results}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r["target_met"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
