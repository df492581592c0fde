"""A hostile CSV header against a normal upload: the time to refuse a 10^5-column header (0.7 MB) beside the
time to accept GBSG2 (686 rows, 12 columns), both through ``read_csv_checked`` (the upload's parse-and-check
step, where issue 14 found ``header.count(h)`` per column: 347 s and a 789 kB refusal). Median of 5 runs
each after a warm-up, their ratio, and the refusal's size as the API would send it.

    python -m bench.upload_header      # prints the table, writes bench/results/upload_header.json and
                                       # the section of docs/benchmarks.md
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import datetime, timezone

from bench.common import ROOT, SCHEMA_FILE, gbsg2_csv, machine, replace_section

RESULTS_FILE = ROOT / "bench" / "results" / "upload_header.json"
RUNS = 5
WIDE = 100_000
START, END = "<!-- bench-upload-header:start -->", "<!-- bench-upload-header:end -->"


def _wide_csv(n: int = WIDE) -> bytes:
    return (",".join(f"c{i:06d}" for i in range(n)) + "\n" + ",".join("1" for _ in range(n)) + "\n").encode()


def _median(action) -> tuple[float, float, object]:
    times, outcome = [], None
    for run in range(RUNS + 1):  # the first is a warm-up
        started = time.perf_counter()
        outcome = action()
        if run:
            times.append(time.perf_counter() - started)
    return statistics.median(times), max(times), outcome


def main() -> None:
    from clearinghouse.schema import Schema
    from clearinghouse.tabular import TableError, _check_header, read_csv_checked

    schema = Schema.from_dict(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    normal, wide = gbsg2_csv(), _wide_csv()

    def refused(check, *args):
        """A call that must raise TableError: its error (timed like any other call)."""
        def call():
            try:
                check(*args)
            except TableError as exc:
                return exc
            raise AssertionError(f"{check.__name__} accepted the wide header")
        return call

    accepted_s, accepted_max, frame = _median(lambda: read_csv_checked(normal, schema))
    refused_s, refused_max, error = _median(refused(read_csv_checked, wide, schema))
    names = [f"c{i:06d}" for i in range(WIDE)]

    names_s, names_max, _ = _median(refused(_check_header, names, schema))
    body = json.dumps({"error": {"code": error.code, "message": error.message, "details": error.details()}})
    rows = [
        {"case": f"GBSG2 accepted ({len(frame)} rows, {len(normal):,} bytes)", "median_s": accepted_s,
         "max_s": accepted_max},
        {"case": f"{WIDE:,}-column header refused ({len(wide):,} bytes)", "median_s": refused_s, "max_s": refused_max},
        {"case": f"the schema check alone on {WIDE:,} names (width cap bypassed)", "median_s": names_s,
         "max_s": names_max},
    ]
    ratio = refused_s / accepted_s
    for row in rows:
        print(f"{row['case']:48s} median {row['median_s'] * 1000:8.2f} ms (max {row['max_s'] * 1000:.2f} ms)")
    print(f"ratio refused / accepted: {ratio:.2f}; refusal body {len(body.encode())} bytes ({error.code})")
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    info = machine(packages=("pandas",))
    RESULTS_FILE.write_text(json.dumps({"date": date, "machine": info, "runs": RUNS, "results": rows,
                                        "ratio": ratio, "refusal_body_bytes": len(body.encode()),
                                        "refusal_code": error.code}, indent=2) + "\n", encoding="utf-8")
    table = "\n".join(f"| {r['case']} | {r['median_s'] * 1000:.2f} ms | {r['max_s'] * 1000:.2f} ms |" for r in rows)
    replace_section(
        f"{START}\n{date}, {info['cpu']} ({info['cores']} cores), `make bench-header` (`python -m bench.upload_header`): "
        f"`read_csv_checked`, the upload's parse-and-check step, median of {RUNS} runs after a warm-up.\n\n"
        f"| case | median | max |\n|---|---|---|\n{table}\n\n"
        f"Refusing the wide header takes {ratio:.2f}× the time of accepting GBSG2; the refusal's body is "
        f"{len(body.encode())} bytes (`{error.code}`). Before the fix (issue 14, finding 4) the same refusal took "
        f"347 s with a 789 kB body: `header.count(h)` per column, every column listed.\n{END}",
        START, END)


if __name__ == "__main__":
    main()
