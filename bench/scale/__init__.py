"""``make bench-scale``: the service at a million rows (issue 15, item 4).

Four parts, each a module with ``measure(quick=...) -> dict``, ``table(result) -> rows`` and ``NOTES``:

* ``upload``: a 1M × 30 CSV through the upload's streamed parse-and-check into custody (peak RSS);
* ``verification``: every verification kind's engine time at 1M rows (HR and OR ≤ 1 s);
* ``report``: the validation report at 1M real and 1M synthetic rows (< 5 min on 2 cores);
* ``generators``: ctgan's transformer fit and training throughput at 1M rows (GPU when one is lent).

``python -m bench.scale`` runs them in that order and prints one table; ``--write`` also writes
``bench/results/scale.json`` and the generated section of ``docs/benchmarks.md``.
"""

PARTS = ("upload", "verification", "report", "generators")
