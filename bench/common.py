"""What the three benchmarks (generators, report, verification) share: the machine they ran on,
GBSG2 as custody types it, the seeded 80/20 split, and the generated sections of docs/benchmarks.md."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DOCS_FILE = ROOT / "docs" / "benchmarks.md"
SCHEMA_FILE = ROOT / "clearinghouse" / "fixtures" / "gbsg2.schema.json"


def machine(*, packages: tuple[str, ...] = (), torch_device: str | None = None,
            load_average: bool = False) -> dict[str, Any]:
    """The CPU, cores, Python and platform; with ``torch_device`` torch's threads, version, the device
    (and the GPU's name on CUDA); with ``load_average`` the load average now; then each installed
    package's version."""
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count()}
    torch = None
    if torch_device is not None:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    info["python"] = platform.python_version()
    if torch is not None:
        info.update(torch=torch.__version__, device=torch_device)
    info["platform"] = platform.platform()
    if load_average:
        with contextlib.suppress(OSError):
            info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    from importlib.metadata import PackageNotFoundError, version

    for package in packages:
        with contextlib.suppress(PackageNotFoundError):
            info[package] = version(package)
    if torch is not None and torch_device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def gbsg2_csv() -> bytes:
    """GBSG2 as a custodian would upload it: CSV bytes with a ``pid`` identifier column first (the CSV
    ships inside lifelines: no download)."""
    from lifelines.datasets import load_gbsg2

    frame = load_gbsg2()
    frame.insert(0, "pid", range(1, len(frame) + 1))  # an identifier column: dropped on import
    return frame.to_csv(index=False).encode()


def gbsg2() -> tuple[pd.DataFrame, Any]:
    """GBSG2 as custody types it, and its schema."""
    from clearinghouse.schema import Schema
    from clearinghouse.tabular import read_csv_checked

    schema = Schema.from_dict(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    return read_csv_checked(gbsg2_csv(), schema), schema


def resampled_gbsg2(rows: int, *, columns: int = 10, seed: int = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A big cohort made from a public one (issue 15: "resampling a public one with noise; never ship
    it"): ``rows`` GBSG2 patients drawn with replacement, every number jittered within the schema's
    bounds, as a custodian would upload it (a ``pid`` identifier first), and its schema.

    ``columns`` (≥ 10) is the number of kept columns: past GBSG2's ten, each extra one is a noisy copy
    of one of GBSG2's nine covariates, taken in turn (``age_2``, ``tsize_2`` ...): a number plus
    noise of a quarter of its spread, a category flipped to another one in 10 % of rows; every other
    extra column is nullable with 5 % of its cells blank. The frame is built in memory: at 1M × 30
    about 0.8 GB; write it out in chunks (``to_csv(chunksize=...)``) when the CSV is what matters."""
    from lifelines.datasets import load_gbsg2

    if columns < 10:
        raise ValueError("columns: at least GBSG2's ten")
    spec = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    by_name = {c["name"]: c for c in spec["columns"]}
    base = load_gbsg2()
    rng = np.random.default_rng(seed)
    picked = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    out: dict[str, Any] = {"pid": np.arange(1, rows + 1)}

    def numeric(name: str, values: np.ndarray, scale: float, column: dict) -> np.ndarray:
        noisy = np.clip(values + rng.normal(0.0, scale, rows), column["min"], column["max"])
        return np.rint(noisy).astype("int64") if column["type"] == "integer" else noisy.round(1)

    for column in spec["columns"][1:]:
        name, values = column["name"], picked[column["name"]]
        if column["type"] in ("integer", "continuous", "duration"):
            out[name] = numeric(name, values.to_numpy(dtype="float64"), 2.0 if column["type"] == "integer" else 5.0,
                                column)
        else:
            out[name] = values.to_numpy()
    covariates = [c["name"] for c in spec["columns"][1:] if c["name"] not in spec["survival"].values()]
    extra_columns = []
    for k in range(columns - 10):
        source = by_name[covariates[k % len(covariates)]]
        name = f"{source['name']}_{2 + k // len(covariates)}"
        values = picked[source["name"]]
        if source["type"] == "categorical":
            cats = source["categories"]
            codes = pd.Categorical(values.astype(str), categories=cats).codes.copy()
            flip = rng.random(rows) < 0.10
            codes[flip] = (codes[flip] + rng.integers(1, len(cats), int(flip.sum()))) % len(cats)
            column_values: Any = np.asarray(cats, dtype=object)[codes]
        else:
            spread = float(values.std()) or 1.0
            column_values = numeric(name, values.to_numpy(dtype="float64"), spread / 4, source)
        column = {**source, "name": name, "description": f"noisy copy of {source['name']}"}
        if (k + k // len(covariates)) % 2 == 1:  # alternate, and shift each round so categories get blanks too
            column["nullable"] = True
            blank = rng.random(rows) < 0.05
            column_values = pd.Series(column_values, dtype="object" if source["type"] == "categorical" else "Float64"
                                      if source["type"] != "integer" else "Int64")
            column_values[blank] = None
        out[name] = column_values
        extra_columns.append(column)
    schema = {**spec, "columns": spec["columns"] + extra_columns}
    return pd.DataFrame(out), schema


#: Gate metrics that pass every default gate (what tests/conftest.py's finish_report sets).
PASSING_METRICS = {"fidelity.overall": 0.9, "privacy.ims": 0.0, "privacy.leakage_coefficient": 0.01,
                   "privacy.dcr_ratio": 1.0, "privacy.mia_auc": 0.52}


def report_mark_passing(release) -> None:
    """Mark ``release``'s report finished with passing gate metrics, so it can be published (after
    ``django.setup()``). The report itself is benchmarked by `make bench-report`."""
    from django.utils import timezone

    from generators.core.evaluation.report import Metric, Report
    from releases.models import ReleaseReport

    sections: dict[str, list] = {"fidelity": [], "survival": [], "privacy": [], "utility": []}
    for key, value in PASSING_METRICS.items():
        sections[key.split(".")[0]].append(Metric(key=key, label=key, value=value, low=0.0, high=1.0,
                                                  better="higher", applicable=True, reason=""))
    report = Report(sections=sections, meta={"rows": {"synthetic": release.rows}})
    ReleaseReport.objects.filter(release=release).update(
        status=ReleaseReport.Status.SUCCEEDED, content=report.to_dict("custodian"), public=report.to_dict("public"),
        html="<!doctype html><title>bench</title>", public_html="<!doctype html><title>bench</title>",
        parts_done=6, parts_total=6, finished_at=timezone.now())


def proc_status_bytes(key: str) -> int | None:
    """A memory figure of this process from ``/proc/self/status`` (``VmRSS``: now, ``VmHWM``: its peak)
    in bytes; None where the file or the key is missing."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


def peak_rss_kib() -> int:
    """This process's peak resident memory in KiB: ``VmHWM`` (its own address space's high-water mark).
    ``ru_maxrss`` is only the fallback: a child started by a big parent begins with the parent's size
    at the fork, so it would report the parent's peak."""
    peak = proc_status_bytes("VmHWM")
    if peak is not None:
        return peak // 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def split(table: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seeded 80/20 split (train, holdout)."""
    order = np.random.default_rng(seed).permutation(len(table))
    cut = int(round(0.8 * len(table)))
    return (table.iloc[order[:cut]].reset_index(drop=True), table.iloc[order[cut:]].reset_index(drop=True))


def replace_section(block: str, start: str, end: str, path: Path = DOCS_FILE) -> None:
    """Put ``block`` (which begins with ``start`` and ends with ``end``) in place of the text between
    those markers, or append it when the file has no such section yet."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


class JsonClient:
    """A token-authenticated JSON client over urllib for the benches that time the live service
    (no dependency beyond the standard library, so the timing is the server's)."""

    def __init__(self, api: str, token: str, *, timeout: float = 300):
        self.api, self.token, self.timeout = api, token, timeout

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode("utf-8"), "application/json"
        request = urllib.request.Request(self.api + path, method=method, headers=headers, data=data)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                return exc.code, json.loads(payload)
            except ValueError:
                return exc.code, {"raw": payload[:300].decode("utf-8", "replace")}
