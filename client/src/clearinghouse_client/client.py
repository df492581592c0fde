"""The HTTP client: one :class:`Client` per base URL and token."""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import httpx

from clearinghouse_client import __version__
from clearinghouse_client.errors import ClearinghouseError, error_from_response
from clearinghouse_client.models import Answer, Budget, Dataset, Preview, Release, Run, Token, User, epsilon

#: GETs are retried on these statuses (and on connection errors); nothing else is ever retried.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: The longest Retry-After a GET waits for before giving up and raising.
MAX_RETRY_AFTER = 60.0
DOWNLOAD_FORMATS = ("parquet", "csv")
#: The audit log's export formats and the media type each is asked for with.
EXPORT_FORMATS = {"csv": "text/csv", "jsonl": "application/jsonl"}


def _decimal_text(value: Any) -> Any:
    """ε as its exact decimal string; anything that is not a decimal goes as it is, for the server to
    refuse with its own code (the client never second-guesses the API's validation)."""
    try:
        parsed = epsilon(value)
    except (TypeError, ValueError):
        return value
    return format(parsed.normalize(), "f") if parsed is not None and parsed.is_finite() else value


def _id(value: Any) -> int:
    """An object or its id."""
    return value if isinstance(value, int) else int(getattr(value, "id"))


class Client:
    """A session with the clearing-house API.

    ``base_url`` (the server, e.g. ``http://127.0.0.1:8000``; ``/api/v1`` may be included) and
    ``token`` default to ``CLEARINGHOUSE_URL`` and ``CLEARINGHOUSE_TOKEN``. Every request has a
    timeout (``timeout`` seconds for connect, read, write and pool). GETs are retried ``retries``
    times with exponential backoff on a connection error or a 502/503/504, and on 429 after its
    ``Retry-After`` (at most :data:`MAX_RETRY_AFTER` s); a POST or PUT is sent once, never again.
    Every 4xx/5xx raises :class:`ClearinghouseError` with the server's code.
    """

    def __init__(self, base_url: str | None = None, token: str | None = None, *, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.5, transport: httpx.BaseTransport | None = None):
        base_url = base_url or os.environ.get("CLEARINGHOUSE_URL")
        if not base_url:
            raise ClearinghouseError(None, "no_base_url", "Give base_url or set CLEARINGHOUSE_URL.")
        root = base_url.rstrip("/")
        if root.endswith("/api/v1"):
            root = root[: -len("/api/v1")]
        self.base_url = root
        self.api_url = f"{root}/api/v1"
        self.token = token if token is not None else os.environ.get("CLEARINGHOUSE_TOKEN")
        self.timeout = httpx.Timeout(timeout)
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self._sleep = time.sleep
        headers = {"User-Agent": f"clearinghouse-client/{__version__}", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._http = httpx.Client(headers=headers, timeout=self.timeout, transport=transport, follow_redirects=False)

    @classmethod
    def login(cls, base_url: str | None, username: str, password: str, *, name: str = "clearinghouse-client",
              expires_in_days: int | None = None, **options) -> "Client":
        """Exchange a password for a token (``POST /auth/token/``) and return a client that uses it;
        the issued token's metadata is ``client.issued`` (its secret is ``client.token``)."""
        anonymous = cls(base_url, token="", **options)
        body: dict[str, Any] = {"username": username, "password": password, "name": name}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        try:
            issued = Token.from_api(anonymous._request("POST", "auth/token/", json=body).json())
        finally:
            anonymous.close()
        client = cls(base_url, token=issued.token, **options)
        client.issued = issued
        return client

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, token={'set' if self.token else 'none'})"

    # ------------------------------------------------------------------ transport
    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/"):
            return f"{self.base_url}{path}"
        return f"{self.api_url}/{path}"

    def _delay(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry ``attempt`` (0-based), or None to give up."""
        if response is not None and response.status_code == 429:
            after = response.headers.get("Retry-After")
            if after is None:
                return self.backoff * 2 ** attempt
            try:
                seconds = float(after)
            except ValueError:
                when = email.utils.parsedate_to_datetime(after)
                seconds = when.timestamp() - time.time() if when else MAX_RETRY_AFTER + 1
            return max(0.0, seconds) if seconds <= MAX_RETRY_AFTER else None
        return min(self.backoff * 2 ** attempt, 30.0)

    def _request(self, method: str, path: str, *, stream: bool = False, accept: str | None = None,
                 **kwargs) -> httpx.Response:
        """Send one request (GETs retried as the class says); raise on any 4xx/5xx."""
        headers = {"Accept": accept} if accept else None
        request = self._http.build_request(method, self._url(path), headers=headers, timeout=self.timeout, **kwargs)
        attempts = 1 + (self.retries if method == "GET" else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                if last:
                    raise ClearinghouseError(None, "timeout", f"{method} {request.url}: no answer within the "
                                                              f"timeout ({exc})") from exc
                self._sleep(self._delay(attempt, None))
                continue
            except httpx.TransportError as exc:
                if last:
                    raise ClearinghouseError(None, "connection_error", f"{method} {request.url}: {exc}") from exc
                self._sleep(self._delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                delay = self._delay(attempt, response)
                if delay is not None:
                    response.close()
                    self._sleep(delay)
                    continue
            break
        if response.status_code >= 400:
            body = response.read()
            response.close()
            raise error_from_response(response.status_code, body, response.reason_phrase)
        return response

    def _get(self, path: str, **params) -> Any:
        return self._request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    def _post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self._request("POST", path, json=dict(body or {})).json()

    def _put(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._request("PUT", path, json=dict(body)).json()

    def _pages(self, path: str, **params) -> Iterator[dict]:
        """Every item of a paginated list, following ``next`` until there is none."""
        page = self._get(path, **params)
        while True:
            yield from page["results"]
            if not page.get("next"):
                return
            page = self._request("GET", page["next"]).json()

    # ------------------------------------------------------------------ anyone signed in
    def me(self) -> User:
        return User.from_api(self._get("accounts/me/"))

    # ------------------------------------------------------------------ researcher
    def datasets(self) -> list[Dataset]:
        return [Dataset.from_api(item) for item in self._pages("datasets/")]

    def dataset(self, slug: str) -> Dataset:
        return Dataset.from_api(self._get(f"datasets/{slug}/"))

    def releases(self, dataset: str | Dataset | None = None) -> list[Release]:
        """Releases you may see (custodians: all; researchers: published ones), optionally of one dataset."""
        slug = getattr(dataset, "slug", dataset)
        items = [Release.from_api(item) for item in self._pages("releases/")]
        return [r for r in items if slug is None or r.dataset == slug]

    def release(self, release: int | Release) -> Release:
        return Release.from_api(self._get(f"releases/{_id(release)}/"))

    def download(self, release: int | Release, *, format: str = "parquet", path: str | os.PathLike | None = None):
        """The release's rows as a pandas DataFrame, streamed and checked against the SHA-256 (and size)
        its ``files`` entry gives. ``path``: a folder (the file is named ``<dataset>-release-<id>.<format>``
        there) or a file name; without it nothing is kept. The file is written to a temporary name in the
        target folder and moved into place only once verified: on a mismatch it is deleted and
        ``ClearinghouseError(code="checksum_mismatch")`` is raised. The frame's ``attrs`` hold ``path`` and
        ``sha256``."""
        import pandas as pd

        if format not in DOWNLOAD_FORMATS:
            raise ClearinghouseError(None, "unknown_format", f"format must be one of {', '.join(DOWNLOAD_FORMATS)}, "
                                                             f"not {format!r}")
        release = release if isinstance(release, Release) else self.release(release)
        entry = (release.files or {}).get(format) or {}
        expected = entry.get("sha256")
        if not expected:
            raise ClearinghouseError(None, "checksum_missing", f"release {release.id} gives no sha256 for {format}")
        url = entry.get("url") or f"releases/{release.id}/data.{format}"
        keep = path is not None
        if keep:
            target = Path(path)
            if target.is_dir():
                target = target / f"{release.dataset}-release-{release.id}.{format}"
            folder = target.parent
            folder.mkdir(parents=True, exist_ok=True)
            scratch = None
        else:
            scratch = tempfile.TemporaryDirectory(prefix="clearinghouse-")
            folder = Path(scratch.name)
            target = folder / f"release-{release.id}.{format}"
        try:
            handle = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{target.name}.", suffix=".part", delete=False)
            partial = Path(handle.name)
            digest, size = hashlib.sha256(), 0
            try:
                with handle:
                    response = self._request("GET", url, stream=True, accept="*/*")
                    try:
                        for chunk in response.iter_bytes():
                            digest.update(chunk)
                            size += len(chunk)
                            handle.write(chunk)
                    finally:
                        response.close()
                if digest.hexdigest() != expected or (entry.get("bytes") is not None and size != entry["bytes"]):
                    raise ClearinghouseError(None, "checksum_mismatch",
                                             f"release {release.id} {format}: sha256 {digest.hexdigest()} ({size} bytes) "
                                             f"does not match the datasheet's {expected} ({entry.get('bytes')} bytes); "
                                             "nothing was kept",
                                             {"expected": expected, "actual": digest.hexdigest(),
                                              "expected_bytes": entry.get("bytes"), "actual_bytes": size})
                os.replace(partial, target)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            frame = pd.read_parquet(target) if format == "parquet" else pd.read_csv(target)
        finally:
            if scratch is not None:
                scratch.cleanup()
        frame.attrs.update({"path": str(target) if keep else None, "sha256": expected, "release": release.id})
        return frame

    def report(self, release: int | Release, *, wait: float = 0.0, poll: float = 1.0) -> dict:
        """The release's validation report (JSON; custodians get all of it, researchers the public part).
        With ``wait`` seconds, a report still being computed (409 ``report_not_ready``) is polled for."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._get(f"releases/{_id(release)}/report/")
            except ClearinghouseError as error:
                if error.code != "report_not_ready" or time.monotonic() >= deadline:
                    raise
            self._sleep(poll)

    def report_html(self, release: int | Release) -> str:
        """The report's self-contained HTML page."""
        return self._request("GET", f"releases/{_id(release)}/report/", params={"format": "html"},
                             accept="text/html").text

    @staticmethod
    def _hypothesis(release, kind: str, params: Mapping[str, Any], where: Iterable, claim: Mapping[str, Any],
                    epsilon_: Any, dataset: str | None) -> dict:
        body = {"release": _id(release), "kind": kind, "params": dict(params), "where": list(where),
                "claim": dict(claim), "epsilon": _decimal_text(epsilon_)}
        if dataset is not None:
            body["dataset"] = dataset
        return body

    def preview(self, release: int | Release, kind: str, params: Mapping[str, Any], *, where: Iterable = (),
                claim: Mapping[str, Any], epsilon: Decimal | str | float, dataset: str | None = None) -> Preview:
        """What the answer would likely look like, simulated on the synthetic release: free."""
        body = self._hypothesis(release, kind, params, where, claim, epsilon, dataset)
        return Preview.from_api(self._post("verifications/preview/", body))

    def verify(self, release: int | Release, kind: str, params: Mapping[str, Any], *, where: Iterable = (),
               claim: Mapping[str, Any], epsilon: Decimal | str | float, dataset: str | None = None) -> Answer:
        """The ε-DP answer on the real rows, charged to your budget (an identical earlier hypothesis is
        answered again at no charge: ``reused``). Sent once: a POST is never retried."""
        body = self._hypothesis(release, kind, params, where, claim, epsilon, dataset)
        return Answer.from_api(self._post("verifications/", body))

    def verification(self, verification_id: int) -> Answer:
        return Answer.from_api(self._get(f"verifications/{verification_id}/"))

    def budget(self) -> list[Budget]:
        return [Budget.from_api(item) for item in self._get("budget/")["budgets"]]

    def history(self) -> list[Answer]:
        """Your verifications, every page."""
        return [Answer.from_api(item) for item in self._pages("verifications/")]

    # ------------------------------------------------------------------ custodian
    def upload(self, slug: str, name: str, csv_path: str | os.PathLike, schema: Mapping[str, Any] | str,
               description: str = "") -> Dataset:
        """Upload a cohort (multipart ``file`` and ``schema``); it is validated and stored encrypted."""
        schema_text = schema if isinstance(schema, str) else json.dumps(schema)
        csv_path = Path(csv_path)
        with csv_path.open("rb") as handle:
            response = self._request("POST", "datasets/", data={"slug": slug, "name": name, "description": description,
                                                                  "schema": schema_text},
                                     files={"file": (csv_path.name, handle, "text/csv")})
        return Dataset.from_api(response.json())

    def runs(self, dataset: str | Dataset) -> list[Run]:
        return [Run.from_api(item) for item in self._pages(f"datasets/{getattr(dataset, 'slug', dataset)}/runs/")]

    def start_run(self, dataset: str | Dataset, model: str, *, epochs: int | None = None, seed: int = 0,
                  device: str = "auto", hyperparameters: Mapping[str, Any] | None = None) -> Run:
        """Queue a training run (202) and return it at once; ``epochs`` is sent only when given."""
        body: dict[str, Any] = {"model": model, "seed": seed, "device": device}
        if epochs is not None:
            body["epochs"] = epochs
        if hyperparameters:
            body["hyperparameters"] = dict(hyperparameters)
        return Run.from_api(self._post(f"datasets/{getattr(dataset, 'slug', dataset)}/runs/", body))

    def train(self, dataset: str | Dataset, model: str, *, epochs: int | None = None, seed: int = 0,
              device: str = "auto", hyperparameters: Mapping[str, Any] | None = None, progress: bool = True,
              poll: float = 1.0, timeout: float | None = None) -> Run:
        """Start a run and follow ``GET /runs/{id}/`` (a tqdm bar over its epochs, with the losses and
        ETA) until it succeeds; raise ``ClearinghouseError`` (``run_failed``, ``run_cancelled`` or
        ``run_timeout``) otherwise."""
        run = self.start_run(dataset, model, epochs=epochs, seed=seed, device=device, hyperparameters=hyperparameters)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=run.epochs or (run.progress or {}).get("epochs") or None, unit="epoch",
                       desc=f"run {run.id} ({run.model})")
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                if bar is not None:
                    shown = run.progress or {}
                    if shown.get("epochs") and bar.total != shown["epochs"]:
                        bar.total = shown["epochs"]
                    bar.n = shown.get("epoch") or 0
                    postfix = {k: round(v, 4) if isinstance(v, float) else v
                               for k, v in (shown.get("losses") or {}).items()} if isinstance(
                        shown.get("losses"), dict) else {}
                    if shown.get("eta_seconds") is not None:
                        postfix["eta_s"] = shown["eta_seconds"]
                    postfix["status"] = run.status
                    bar.set_postfix(postfix, refresh=False)
                    bar.refresh()
                if run.finished:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise ClearinghouseError(None, "run_timeout", f"run {run.id} is still {run.status} after "
                                                                  f"{timeout} s (it goes on; cancel({run.id}) stops it)",
                                             {"run": run.id})
                self._sleep(poll)
                run = self.run(run.id)
        finally:
            if bar is not None:
                bar.close()
        if run.status != "succeeded":
            raise ClearinghouseError(None, f"run_{run.status}", f"run {run.id} {run.status}: {run.error or ''}".strip(),
                                     {"run": run.id, "error": run.error})
        return run

    def run(self, run_id: int | Run) -> Run:
        return Run.from_api(self._get(f"runs/{_id(run_id)}/"))

    def cancel(self, run_id: int | Run) -> Run:
        return Run.from_api(self._post(f"runs/{_id(run_id)}/cancel/"))

    def make_release(self, run: int | Run, rows: int, seed: int = 0, conditions: Mapping[str, Any] | None = None
                     ) -> Release:
        body: dict[str, Any] = {"rows": rows, "seed": seed}
        if conditions is not None:
            body["conditions"] = dict(conditions)
        return Release.from_api(self._post(f"runs/{_id(run)}/releases/", body))

    def publish(self, release: int | Release, override: str | None = None) -> Release:
        """Publish; ``override`` is the written justification for publishing over failed gates."""
        body = {} if override is None else {"override": {"justification": override}}
        return Release.from_api(self._post(f"releases/{_id(release)}/publish/", body))

    @staticmethod
    def _policy(body: dict) -> dict:
        return {k: epsilon(v) if k in ("total_cap", "default_allocation", "max_epsilon_per_query", "total_spent",
                                       "total_left") and v is not None else v for k, v in body.items()}

    def budget_policy(self, slug: str) -> dict:
        """The dataset's verification policy; its ε figures as Decimals."""
        return self._policy(self._get(f"datasets/{slug}/budget-policy/"))

    def set_budget_policy(self, slug: str, **changes) -> dict:
        """Change some policy fields, e.g. ``total_cap="50", daily_limit=20`` (ε sent as decimal strings)."""
        body = {k: _decimal_text(v) if isinstance(v, (Decimal, float)) else v for k, v in changes.items()}
        return self._policy(self._put(f"datasets/{slug}/budget-policy/", body))

    def set_allocation(self, slug: str, user_id: int | User, epsilon: Decimal | str | float) -> dict:
        body = self._put(f"datasets/{slug}/allocations/{_id(user_id)}/", {"epsilon": _decimal_text(epsilon)})
        return {**body, "allocation": globals()["epsilon"](body["allocation"]),
                "spent": globals()["epsilon"](body["spent"])}

    def accounts(self, role: str | None = None, verified: bool | None = None) -> list[User]:
        verified_param = None if verified is None else ("true" if verified else "false")
        return [User.from_api(item) for item in self._pages("accounts/", role=role, verified=verified_param)]

    def verify_researcher(self, user_id: int | User) -> User:
        return User.from_api(self._post(f"accounts/{_id(user_id)}/verify/"))

    # ------------------------------------------------------------------ auditor
    def events(self, **filters):
        """The audit log (every page) as a pandas DataFrame; filters as the API's: ``user``, ``action``
        (exact or ``prefix*``), ``outcome``, ``object_type``, ``object_id``, ``since``, ``until``."""
        import pandas as pd

        rows = list(self._pages("audit/events/", **{"page_size": 200, **_filters(filters)}))
        columns = ["id", "seq", "created_at", "actor_id", "actor_username", "channel", "action", "outcome",
                   "object_type", "object_id", "details", "client_ip", "request_id", "prev_hash", "hash"]
        frame = pd.DataFrame(rows)
        return frame if rows else pd.DataFrame(columns=columns)

    def export_events(self, path: str | os.PathLike | None = None, *, format: str = "csv",
                      **filters) -> Path | list[dict]:
        """The filtered log's export, streamed; filters as :meth:`events`.

        ``format="csv"``: formula-leading cells escaped with a leading ``'`` (for a spreadsheet).
        ``format="jsonl"``: JSON Lines, one event per line with the exact stored values (the ones the hash
        chain is over, ``details`` as an object). With ``path`` the body is written to a temporary name
        beside it and moved into place once whole (the path is returned); without one, a JSON Lines
        export is returned as a list of dicts, oldest event first (a CSV export needs a ``path``)."""
        if format not in EXPORT_FORMATS:
            raise ClearinghouseError(None, "unknown_format", f"format must be one of {', '.join(EXPORT_FORMATS)}, "
                                                             f"not {format!r}")
        url, accept = f"audit/events/export.{format}", EXPORT_FORMATS[format]
        if path is not None:
            return self._stream_to(Path(path), url, params=_filters(filters), accept=accept)
        if format != "jsonl":
            raise ClearinghouseError(None, "path_required", "a CSV export is written to a file: pass path=")
        response = self._request("GET", url, params=_filters(filters), stream=True, accept=accept)
        events = []
        try:
            for number, line in enumerate(response.iter_lines(), start=1):
                if not line.strip():
                    continue
                try:
                    events.append(json.loads(line))
                except ValueError as exc:
                    raise ClearinghouseError(None, "malformed_export",
                                             f"line {number} of the JSON Lines export is not JSON ({exc})") from exc
        finally:
            response.close()
        return events

    def _stream_to(self, target: Path, url: str, *, params: Mapping[str, Any], accept: str) -> Path:
        """GET ``url`` streamed to a temporary file beside ``target``, moved into place once whole."""
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False)
        try:
            with handle:
                response = self._request("GET", url, params=params, stream=True, accept=accept)
                try:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
                finally:
                    response.close()
            os.replace(handle.name, target)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise
        return target

    def check_chain(self) -> dict:
        """Recompute the audit log's hash chain: ``valid``, ``events_checked``, ``head_seq``, ``head_hash``,
        ``first_broken``."""
        return self._get("audit/verify/")


def _filters(filters: Mapping[str, Any]) -> dict:
    out = {}
    for key, value in filters.items():
        if value is None:
            continue
        out[key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out
