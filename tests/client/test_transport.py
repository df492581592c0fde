"""The client's transport rules with httpx.MockTransport (no server): GETs retried on 503/502/504, on
connection errors and on 429 after Retry-After; a POST or PUT is sent once, whatever happens; every request
carries a timeout; error bodies (and bodies that are not JSON) become ClearinghouseError; a download whose
SHA-256 differs from the datasheet's raises and leaves no file behind."""

from __future__ import annotations

import hashlib
import io
import json
from decimal import Decimal

import httpx
import pandas as pd
import pytest
from clearinghouse_client import Client, ClearinghouseError
from clearinghouse_client import client as client_module

BASE = "http://clearinghouse.test"


def client_with(handler, **options) -> tuple[Client, list[httpx.Request], list[float]]:
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request, len(seen))

    client = Client(BASE, token="cht_test", transport=httpx.MockTransport(recording), **options)
    slept: list[float] = []
    client._sleep = slept.append
    return client, seen, slept


def error(status: int, code: str, headers=None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": f"{code} said", "details": {"x": 1}}},
                          headers=headers)


def test_a_get_is_retried_on_503_then_answers():
    client, seen, slept = client_with(lambda request, n: error(503, "unavailable") if n < 3 else
                                      httpx.Response(200, json={"slug": "gbsg2", "name": "G"}), backoff=0.5)
    assert client.dataset("gbsg2").name == "G"
    assert [r.method for r in seen] == ["GET"] * 3 and slept == [0.5, 1.0]
    assert seen[0].url == f"{BASE}/api/v1/datasets/gbsg2/" and seen[0].headers["Authorization"] == "Bearer cht_test"


def test_a_get_gives_up_after_its_retries_with_the_servers_code():
    client, seen, _ = client_with(lambda request, n: error(502, "bad_gateway"), retries=2)
    with pytest.raises(ClearinghouseError) as caught:
        client.datasets()
    assert (caught.value.status, caught.value.code, caught.value.details) == (502, "bad_gateway", {"x": 1})
    assert len(seen) == 3


def test_a_get_is_retried_on_a_connection_error():
    def handler(request, n):
        if n == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"valid": True})

    client, seen, slept = client_with(handler)
    assert client.check_chain() == {"valid": True} and len(seen) == 2 and len(slept) == 1


def test_429_is_retried_after_retry_after_unless_it_is_too_long():
    client, seen, slept = client_with(lambda request, n: error(429, "throttled", {"Retry-After": "7"}) if n == 1 else
                                      httpx.Response(200, json={"budgets": []}))
    assert client.budget() == [] and slept == [7.0]
    client, seen, slept = client_with(lambda request, n: error(429, "throttled", {"Retry-After": "3600"}))
    with pytest.raises(ClearinghouseError) as caught:
        client.budget()
    assert caught.value.code == "throttled" and len(seen) == 1 and slept == []


@pytest.mark.parametrize("failure", ["503", "connect", "timeout"])
def test_a_post_or_put_is_never_retried(failure):
    def handler(request, n):
        if failure == "connect":
            raise httpx.ConnectError("refused", request=request)
        if failure == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        return error(503, "unavailable")

    client, seen, slept = client_with(handler, retries=5)
    calls = [lambda: client.verify(1, "mean", {"column": "age"}, claim={"direction": "greater", "value": 1},
                                   epsilon="0.5"),
             lambda: client.publish(3, override="x" * 30), lambda: client.set_allocation("gbsg2", 4, "1.5")]
    for call in calls:
        with pytest.raises(ClearinghouseError) as caught:
            call()
        expected = {"503": "unavailable", "connect": "connection_error", "timeout": "timeout"}[failure]
        assert caught.value.code == expected
    assert [r.method for r in seen] == ["POST", "POST", "PUT"] and slept == []
    assert json.loads(seen[0].content)["epsilon"] == "0.5" and json.loads(seen[2].content) == {"epsilon": "1.5"}
    assert json.loads(seen[1].content) == {"override": {"justification": "x" * 30}}


def test_every_request_carries_a_timeout():
    client, seen, _ = client_with(lambda request, n: httpx.Response(200, json={"count": 0, "next": None,
                                                                                "previous": None, "results": []}),
                                  timeout=12.5)
    client.datasets(), client.releases(), client.history(), client.accounts(role="researcher")
    client._post("runs/1/cancel/")
    assert len(seen) == 5
    for request in seen:
        assert request.extensions["timeout"] == {"connect": 12.5, "read": 12.5, "write": 12.5, "pool": 12.5}
    assert seen[3].url.params["role"] == "researcher"


def test_lists_follow_next_until_done():
    pages = {1: {"count": 3, "next": f"{BASE}/api/v1/releases/?page=2", "previous": None,
                 "results": [{"id": 1, "dataset": "a"}, {"id": 2, "dataset": "b"}]},
             2: {"count": 3, "next": None, "previous": "x", "results": [{"id": 3, "dataset": "a"}]}}
    client, seen, _ = client_with(lambda request, n: httpx.Response(200, json=pages[n]))
    assert [r.id for r in client.releases(dataset="a")] == [1, 3] and len(seen) == 2


def test_a_body_that_is_not_json_still_raises_the_one_exception():
    client, _, _ = client_with(lambda request, n: httpx.Response(404, text="<html>nope</html>"))
    with pytest.raises(ClearinghouseError) as caught:
        client.release(9)
    assert (caught.value.status, caught.value.code, caught.value.details) == (404, "http_404", None)
    assert "nope" in caught.value.message


def test_epochs_is_sent_only_when_given():
    run = {"id": 5, "status": "succeeded", "epochs": None, "progress": {"epoch": 0, "epochs": None}}
    client, seen, _ = client_with(lambda request, n: httpx.Response(202 if request.method == "POST" else 200, json=run))
    assert client.train("gbsg2", "copula", progress=False).id == 5
    assert json.loads(seen[0].content) == {"model": "copula", "seed": 0, "device": "auto"}
    client.start_run("gbsg2", "ctgan", epochs=3, hyperparameters={"batch_size": 50})
    assert json.loads(seen[-1].content)["epochs"] == 3


def test_cancel_posts_once_and_returns_the_run():
    client, seen, _ = client_with(lambda request, n: httpx.Response(202, json={"id": 5, "status": "cancelled"}))
    assert client.cancel(5).status == "cancelled"
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/api/v1/runs/5/cancel/")]


def test_a_failed_run_raises_with_its_error():
    states = [{"id": 5, "status": "queued"}, {"id": 5, "status": "running"},
              {"id": 5, "status": "failed", "error": "CUDA out of memory"}]
    client, seen, _ = client_with(lambda request, n: httpx.Response(200, json=states[min(n - 1, 2)]))
    with pytest.raises(ClearinghouseError) as caught:
        client.train("gbsg2", "ctgan", epochs=2, progress=False, poll=0)
    assert (caught.value.code, caught.value.details) == ("run_failed", {"run": 5, "error": "CUDA out of memory"})


def _release_handler(payload: bytes, advertised: bytes):
    files = {"parquet": {"url": "/api/v1/releases/1/data.parquet", "bytes": len(advertised),
                         "sha256": hashlib.sha256(advertised).hexdigest()}}

    def handler(request, n):
        if request.url.path.endswith("data.parquet"):
            return httpx.Response(200, content=payload)
        return httpx.Response(200, json={"id": 1, "dataset": "gbsg2", "files": files})

    return handler


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_a_download_is_checked_and_moved_into_place(tmp_path):
    data = _parquet(pd.DataFrame({"age": [50, 61], "horTh": ["yes", "no"]}))
    client, seen, _ = client_with(_release_handler(data, data))
    frame = client.download(1, path=tmp_path)
    assert frame.to_dict("list") == {"age": [50, 61], "horTh": ["yes", "no"]}
    assert [p.name for p in tmp_path.iterdir()] == ["gbsg2-release-1.parquet"]
    assert (tmp_path / "gbsg2-release-1.parquet").read_bytes() == data
    assert seen[1].url == f"{BASE}/api/v1/releases/1/data.parquet"


def test_a_sha256_mismatch_raises_and_leaves_no_file(tmp_path):
    good = _parquet(pd.DataFrame({"age": [50, 61]}))
    tampered = _parquet(pd.DataFrame({"age": [50, 62]}))
    client, _, _ = client_with(_release_handler(tampered, good))
    target = tmp_path / "mine.parquet"
    with pytest.raises(ClearinghouseError) as caught:
        client.download(1, path=target)
    assert caught.value.code == "checksum_mismatch" and caught.value.details["expected"] == hashlib.sha256(good).hexdigest()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ClearinghouseError):
        client.download(1)  # to a scratch folder: nothing is kept either way
    with pytest.raises(ClearinghouseError) as caught:
        client.download(1, format="xlsx")
    assert caught.value.code == "unknown_format"


def test_token_and_url_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("CLEARINGHOUSE_URL", "http://env.test/api/v1/")
    monkeypatch.setenv("CLEARINGHOUSE_TOKEN", "cht_env")
    client = Client()
    assert (client.base_url, client.api_url, client.token) == ("http://env.test", "http://env.test/api/v1", "cht_env")
    monkeypatch.delenv("CLEARINGHOUSE_URL")
    with pytest.raises(ClearinghouseError) as caught:
        Client()
    assert caught.value.code == "no_base_url"


def test_login_exchanges_a_password_for_a_token():
    issued = {"token": "cht_new", "token_type": "Bearer", "id": 3, "hint": "cht_ne", "expires_at": None,
              "user": {"id": 2, "username": "rhea", "roles": ["researcher"]}}
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(201, json=issued)

    client = Client.login(BASE, "rhea", "pw", name="notebook", transport=httpx.MockTransport(handler))
    assert client.token == "cht_new" and client.issued.user.username == "rhea" and "cht_new" not in repr(client.issued)
    assert json.loads(seen[0].content) == {"username": "rhea", "password": "pw", "name": "notebook"}
    assert "Authorization" not in seen[0].headers
    assert Decimal("0.1") == __import__("clearinghouse_client").models.epsilon(0.1)


# --- the audit log's JSON Lines export -------------------------------------------------------------

JSONL = b'{"seq": 1, "object_id": "=HYPERLINK(1)", "details": {"a": 1}}\n{"seq": 2, "object_id": "", "details": {}}\n'


def test_the_jsonl_export_is_streamed_and_parsed_into_dicts_with_the_filters_sent():
    client, seen, _ = client_with(lambda request, n: httpx.Response(
        200, content=JSONL, headers={"Content-Type": "application/jsonl; charset=utf-8"}))
    events = client.export_events(format="jsonl", outcome="refused", action="dataset.*")
    assert events == [{"seq": 1, "object_id": "=HYPERLINK(1)", "details": {"a": 1}},
                      {"seq": 2, "object_id": "", "details": {}}]
    [request] = seen
    assert request.url.path == "/api/v1/audit/events/export.jsonl"
    assert dict(request.url.params) == {"outcome": "refused", "action": "dataset.*"}
    assert request.headers["Accept"] == "application/jsonl"


def test_the_jsonl_export_to_a_path_is_written_whole_and_byte_for_byte(tmp_path):
    client, seen, _ = client_with(lambda request, n: httpx.Response(200, content=JSONL))
    target = client.export_events(tmp_path / "audit" / "log.jsonl", format="jsonl")
    assert target == tmp_path / "audit" / "log.jsonl" and target.read_bytes() == JSONL
    assert [p.name for p in target.parent.iterdir()] == ["log.jsonl"]  # no .part left behind
    csv_target = client_with(lambda request, n: httpx.Response(200, content=b"seq\n1\n"))[0].export_events(
        tmp_path / "log.csv")
    assert csv_target.read_bytes() == b"seq\n1\n"


def test_a_refused_export_raises_the_servers_code_and_leaves_no_file(tmp_path):
    client, _, _ = client_with(lambda request, n: error(400, "invalid"))
    with pytest.raises(ClearinghouseError) as caught:
        client.export_events(tmp_path / "log.jsonl", format="jsonl", outcome="maybe")
    assert (caught.value.status, caught.value.code) == (400, "invalid") and list(tmp_path.iterdir()) == []
    with pytest.raises(ClearinghouseError) as caught:
        client.export_events(format="jsonl")
    assert caught.value.code == "invalid"


def test_an_unknown_format_or_a_csv_without_a_path_is_refused_before_any_request(tmp_path):
    client, seen, _ = client_with(lambda request, n: httpx.Response(200, content=b""))
    with pytest.raises(ClearinghouseError) as caught:
        client.export_events(tmp_path / "log.xml", format="xml")
    assert caught.value.code == "unknown_format" and "csv, jsonl" in str(caught.value)
    with pytest.raises(ClearinghouseError) as caught:
        client.export_events()
    assert caught.value.code == "path_required"
    assert seen == [] and list(tmp_path.iterdir()) == []


def test_a_line_that_is_not_json_is_a_malformed_export():
    client, _, _ = client_with(lambda request, n: httpx.Response(200, content=b'{"seq": 1}\n{"seq": 2, tru\n'))
    with pytest.raises(ClearinghouseError) as caught:
        client.export_events(format="jsonl")
    assert caught.value.code == "malformed_export" and "line 2" in str(caught.value)
