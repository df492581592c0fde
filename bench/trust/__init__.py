"""Trust benchmark (``make bench-trust``; never part of ``make test``): do the engine's DP verdicts tell
true findings from artefacts of a synthetic release?

Cohorts: GBSG2, Rossi, kidney transplant and lung (lifelines; schemas in ``bench/trust/schemas/``
and ``clearinghouse/fixtures/``) and simulated cohorts of 500, 2,000 and 10,000 rows with known truth
(``cohorts.py``). Each gets a Gaussian-copula release; the battery (``battery.py``) reads hypotheses
and their claims off the release; the engine answers each on the real rows at ε = 0.5, 1 and 3,
R times with fresh noise (public API only: ``parse_hypothesis`` and ``answer``, so it measures
whatever mechanism is in place); ``reference.py`` gives the non-private verdict on the same rows;
``metrics.py`` compares them (agreement, false supported / contradicted, opposite verdicts, power,
coverage, CI width ratio, and the synthetic release's own verdicts); ``summary.py`` checks the
issue's targets at ε = 1 and writes the section of docs/benchmarks.md. Figures in
bench/results/trust.json. About 6 minutes on 2 cores with the default 20 draws (a third of it the
population values on 200k rows); ``--quick`` (3 draws, no 10k simulation, a 20k population) about 75 s,
into bench/results/trust-quick.json and without touching the docs.
"""
