"""The Django service in this process, called over HTTP: round trips and throughput."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import JsonClient, report_mark_passing
from bench.verification import project
from bench.verification.data import KIND_SPECS, SEED, SIM_SCHEMA_DICT, percentile, simulate


def _body(kind: str, i: int, release: int) -> dict[str, Any]:
    """Hypothesis number ``i`` of ``kind`` on the release: the where threshold makes each one distinct."""
    spec = KIND_SPECS[kind].hypothesis
    where = [{"column": "marker", "op": ">", "value": round(60 + 0.01 * i, 2)}]
    return {"release": release, "kind": kind, "params": spec.get("params", {}), "where": where,
            "claim": spec["claim"], "epsilon": 0.1}


def _cheap(i: int, release: int) -> dict[str, Any]:
    """A distinct cheap hypothesis: count, mean or proportion in turn."""
    return _body(("count", "mean", "proportion")[i % 3], i, release)


def _run_clients(client: JsonClient, bodies: list[list[dict]]) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    reused = 0
    lock = threading.Lock()
    barrier = threading.Barrier(len(bodies) + 1)

    def work(mine: list[dict]):
        nonlocal reused
        barrier.wait()
        for body in mine:
            t = time.perf_counter()
            status, payload = client.call("POST", "/verifications/", body)
            elapsed = time.perf_counter() - t
            with lock:
                latencies.append(elapsed)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                reused += status in (200, 201) and payload.get("reused") is True

    threads = [threading.Thread(target=work, args=(mine,)) for mine in bodies]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    total = sum(len(m) for m in bodies)
    ok = sum(c for s, c in statuses.items() if s in ("200", "201"))
    return {"clients": len(bodies), "requests": total, "wall_s": wall, "requests_per_s": total / wall,
            "ok": ok, "statuses": statuses, "reused": reused, "p50_ms": 1000 * percentile(latencies, 50),
            "p99_ms": 1000 * percentile(latencies, 99)}


def bench_service(rows: int, clients: int, per_client: int, sequential: int, log) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-verification-"))
    os.environ.update({"DJANGO_SETTINGS_MODULE": "clearinghouse.settings", "DJANGO_DEBUG": "1",
                       "DATA_DIR": str(data_dir), "DB_CONN_MAX_AGE": "0", "THROTTLE_USER": "1000000/min"})
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, get_internal_wsgi_application

    api = project.service_api()
    allocation_set, policy_set, token_issue_for, user_create = (api.allocation_set, api.policy_set,
                                                                api.token_issue_for, api.user_create)
    dataset_create, release_create = api.dataset_create, api.release_create
    release_publish, _enqueue, run_create = api.release_publish, api.enqueue, api.run_create

    t0 = time.perf_counter()
    call_command("migrate", "--noinput", verbosity=0)
    custodian, _ = user_create(username="bench-custodian", roles=["custodian"], verified=True)
    researcher, _ = user_create(username="bench-researcher", roles=["researcher"], verified=True)
    _token, raw = token_issue_for(user=researcher, name="bench")
    frame = simulate(rows, [SEED, 5])
    dataset = dataset_create(slug="bench-sim", name="bench (simulated)", schema=SIM_SCHEMA_DICT,
                             data=frame.to_csv(index=False).encode(), by=custodian)
    run = run_create(dataset=dataset, model="copula", epochs=1, seed=0, device="cpu", by=custodian, enqueue=False)
    _enqueue(run)  # no broker: trains in-process now
    run.refresh_from_db()
    if run.status != "succeeded":
        raise RuntimeError(f"copula run {run.status}: {run.error}")
    release = release_create(run=run, rows=rows, seed=1, by=custodian, queue_report=False)
    # The report is benchmarked by `make bench-report`; here it is marked finished with passing
    # metrics (what tests/conftest.py's finish_report does) so the release can be published.
    report_mark_passing(release)
    release = release_publish(release=release, by=custodian)
    policy_set(dataset=dataset, changes={"total_cap": 1000, "default_allocation": 1}, by=custodian)
    allocation_set(user=researcher, dataset=dataset, epsilon=1000, by=custodian)
    setup_s = time.perf_counter() - t0
    log(f"service: migrated, {rows}-row dataset, copula release {release.pk} published in {setup_s:.1f} s")

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet)
    server.set_app(get_internal_wsgi_application())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = JsonClient(f"http://127.0.0.1:{server.server_address[1]}/api/v1", raw)
    out: dict[str, Any] = {"rows": rows, "release_rows": rows, "setup_s": setup_s, "database": "SQLite (file)",
                           "server": "django ThreadedWSGIServer in the bench process, a thread per connection"}
    try:
        counter = 0
        round_trip = {}
        KINDS = project.registered()

        for kind, count in (("count", sequential), ("mean", sequential), ("hazard_ratio", max(sequential // 5, 3))):
            if kind not in KINDS:
                continue
            times, statuses = [], {}
            for _ in range(count):
                body = _body(kind, counter, release.pk)
                counter += 1
                t = time.perf_counter()
                status, payload = client.call("POST", "/verifications/", body)
                times.append(time.perf_counter() - t)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
            round_trip[kind] = {"reps": len(times), "p50_ms": 1000 * percentile(times, 50),
                                "p99_ms": 1000 * percentile(times, 99), "statuses": statuses}
            log(f"service: HTTP round trip {kind} at {rows} rows: p50 {round_trip[kind]['p50_ms']:.1f} ms, "
                f"p99 {round_trip[kind]['p99_ms']:.1f} ms ({len(times)} sequential, statuses {statuses})")
        out["round_trip"] = round_trip
        counter += 1000  # the throughput phase's thresholds do not repeat the round trips
        distinct = [[_cheap(counter + c * per_client + i, release.pk) for i in range(per_client)]
                    for c in range(clients)]
        out["distinct"] = _run_clients(client, distinct)
        log(f"service: {clients} clients, distinct hypotheses: {out['distinct']['requests_per_s']:.1f} req/s, "
            f"p50 {out['distinct']['p50_ms']:.0f} ms, p99 {out['distinct']['p99_ms']:.0f} ms, "
            f"statuses {out['distinct']['statuses']}")
        same = [_cheap(counter + i, release.pk) for i in range(5)]  # asked (and answered) in the distinct phase
        reused = [[same[(c + i) % len(same)] for i in range(per_client)] for c in range(clients)]
        out["reused"] = _run_clients(client, reused)
        log(f"service: {clients} clients, reused hypotheses: {out['reused']['requests_per_s']:.1f} req/s, "
            f"p50 {out['reused']['p50_ms']:.0f} ms, p99 {out['reused']['p99_ms']:.0f} ms, "
            f"statuses {out['reused']['statuses']}, {out['reused']['reused']} reused")
        status, budget = client.call("GET", "/budget/")
        out["budget_after"] = budget if status == 200 else {"status": status}
    finally:
        server.shutdown()
        server.server_close()
        from django.db import connections

        connections.close_all()
        shutil.rmtree(data_dir, ignore_errors=True)
    return out
