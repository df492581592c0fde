"""``make bench-verification``: latency, throughput, accuracy and honesty of the DP verification engine.

Every kind registered in ``verification.core.KINDS`` when the run starts is benchmarked (the
submodules of ``verification.core`` are imported first, so a kind added by a new module is picked
up; the JSON says which kinds ``import verification.core`` alone registers). Five parts, one process:

* **latency**: the engine's ``answer()`` (pure, in-process, no synthetic release) per kind on
  simulated frames of 1k, 10k and 100k rows; p50/p99 over up to ``--reps`` repetitions or a time
  budget per cell (the JSON and the docs give the repetitions actually run). At 10k rows also
  ``answer()`` with a 10k-row synthetic release, as the service calls it.
* **service**: the Django service in this process, on a temporary ``DATA_DIR`` with a fresh SQLite
  database (environment set before ``django.setup()``: ``DJANGO_DEBUG=1`` (the development profile:
  SQLite, in-process jobs, generated secrets), ``DB_CONN_MAX_AGE=0`` (the threaded server starts a
  thread per connection, so persistent connections would only leak), a user throttle raised so the
  clients are not rate limited; then ``migrate``). A 10k-row simulated dataset is taken into custody,
  a copula (1 epoch) trained, a 10k-row release published (its validation report marked finished
  with passing metrics, as the test suite's ``finish_report`` does: the report is benchmarked by
  ``make bench-report``). The bench researcher gets a large allocation and the dataset a large cap
  (``allocation_set``/``policy_set``). Served by Django's ``ThreadedWSGIServer`` on 127.0.0.1 and
  called over HTTP (``urllib``): the round trip of count and mean one client at a time, then 20
  client threads with distinct hypotheses (count/mean/proportion with distinct ``where``
  thresholds: each is charged and computed), then 20 threads re-asking identical hypotheses
  (answered from the stored answer, ``reused``). SQLite serializes writers (every request writes
  its verification and audit rows), and the clients share the server's process (and GIL).
* **RMSE / theory** per kind at ε ∈ {0.1, 0.5, 1, 5} on one fixed 20k-row frame: the DP estimate
  minus the *noise-free twin* (the same ``answer()`` with the same seed while every discrete-Laplace
  draw is still made but returns 0: same rows, same block labels and rounding, no noise), divided
  by the noise sd the mechanism states (the count: the discrete Laplace sd at scale 1/ε; the others:
  the RMS over repetitions of the ``noise_sd…`` the kind reports, on the scale it reports it: log
  for ratios, r for the correlation, the block mean's log scale for sample-and-aggregate;
  km_median: the delta method, noise sd of S at the median over |dS/dt|); the quantile on the rank
  scale (the rank of the released value minus q·n, against the discrete Laplace of scale
  2/ε_estimate that the mechanism's own CI assumes). Each cell runs a minimum of repetitions, then
  more until a time budget is spent (the rule never looks at the errors). Target ≤ 1.2.
* **coverage** of the 95 % CI at ε = 1 on fresh simulated samples with known population values.
* **verdict agreement** on GBSG2: a fixed list of hypotheses, each asked 20 times at ε = 1 with
  different seeds, against the verdict of the same engine at ε = 1000 (noise negligible, the CI
  is then the non-private one).

Results go to ``bench/results/verification.json`` and a generated section of ``docs/benchmarks.md``.
``--quick`` is a smoke run (about a minute) that writes nothing unless ``--write``.
"""
