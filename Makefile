# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make demo   create .venv, install, migrate, run the end-to-end demo (SQLite, no broker)
#   make serve  the portal and API on http://127.0.0.1:8000/ with a Celery worker (embedded broker)
#   make test   the whole suite on SQLite, then again on PostgreSQL + Redis when they answer (less the
#               tests that touch no database: tests/conftest.py BACKEND_FREE)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# The PostgreSQL pass of `make test` (a test_<name> database is created and dropped).
PG_TEST_URL    ?= postgres://postgres@127.0.0.1:5432/clearinghouse
REDIS_TEST_URL ?= redis://127.0.0.1:6379
DEMO_ENV := DJANGO_DEBUG=1

.PHONY: install demo serve worker screenshots test test-sqlite test-postgres clean client-check

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet -e './client[plot]'
	touch $(STAMP)

# `pip install ./client` in a fresh virtual environment (no Django, nothing of the server): the client
# installs on its own and imports. CI runs the same step (.ci/run).
CLIENT_VENV ?= /tmp/client-venv
client-check:
	rm -rf $(CLIENT_VENV)
	$(PYTHON) -m venv $(CLIENT_VENV)
	$(CLIENT_VENV)/bin/pip install --quiet ./client
	$(CLIENT_VENV)/bin/python -c "import clearinghouse_client, importlib.util, sys; \
		assert importlib.util.find_spec('django') is None, 'the client pulled in Django'; \
		print('clearinghouse-client', clearinghouse_client.__version__, 'installs and imports on Python', sys.version.split()[0])"

# `make demo PY=/path/to/python` uses that interpreter as it is: only .venv is ever installed into.
ifeq ($(PY),$(VENV)/bin/python)
install: $(STAMP)
else
install:
	@echo "PY=$(PY) is outside $(VENV): using it as installed (nothing is installed into it)"
endif

demo: install
	$(DEMO_ENV) $(PY) manage.py migrate --noinput -v 0
	$(DEMO_ENV) $(PY) manage.py demo

# The web server and a Celery worker (queues default and gpu, with beat), stopped together by Ctrl-C.
# Without CELERY_BROKER_URL they share the embedded broker (filesystem://, under DATA_DIR/broker/),
# so a training run answers 202 at once and trains in the worker. SERVE_ARGS="--no-beat" etc.
serve: install
	$(DEMO_ENV) $(PY) manage.py migrate --noinput -v 0
	$(DEMO_ENV) $(PY) manage.py serve 127.0.0.1:8000 $(SERVE_ARGS)

# A worker alone, on CELERY_BROKER_URL as given; without one, on the embedded broker with the
# development profile (another worker beside `make serve`).
worker: install
	if [ -z "$$CELERY_BROKER_URL" ]; then export CELERY_BROKER_URL=filesystem:// DJANGO_DEBUG=$${DJANGO_DEBUG:-1}; fi; \
		$(PY) -m celery -A clearinghouse worker -Q default,gpu -l INFO

# Full-page PNGs of the portal's pages per role into docs/screenshots/ (Debian chromium, Playwright);
# runs the demo on a temporary DATA_DIR first. Never part of `make test`.
screenshots: install
	$(DEMO_ENV) $(PY) manage.py screenshots $(SCREENSHOT_ARGS)

test: test-sqlite test-postgres

# Two pytest-xdist workers (the machines have two cores); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

test-sqlite: install
	$(PY) -m pytest -q -n $(TEST_WORKERS)

test-postgres: install
	@if $(PY) -c "import socket; [socket.create_connection(a, 2).close() for a in (('127.0.0.1', 5432), ('127.0.0.1', 6379))]" 2>/dev/null; then \
		echo "== again on PostgreSQL, with Redis as cache and broker (backend-free tests ran above: deselected) =="; \
		DATABASE_URL=$(PG_TEST_URL) REDIS_URL=$(REDIS_TEST_URL)/1 CELERY_BROKER_URL=$(REDIS_TEST_URL)/0 \
			$(PY) -m pytest -q -n $(TEST_WORKERS) --create-db; \
	else \
		echo "== PostgreSQL or Redis does not answer on 127.0.0.1: skipping the PostgreSQL pass =="; \
	fi

# The service over HTTP on loopback (gunicorn, temporary DATA_DIR and SQLite), attacked for FUZZ_SECONDS
# (default 180, after a ~20 s set-up): issue 14's hostile requests (nested JSON, a 10^5-column header,
# formula cells, an anonymous burst), then schemathesis as every role (FUZZ_EXAMPLES per operation, role
# and mode: data the schema allows, data it excludes). Prints a table, writes bench/results/fuzz.json, fails on any 5xx. Never part of `make test`.
FUZZ_SECONDS ?= 180
FUZZ_EXAMPLES ?= 4
.PHONY: fuzz
fuzz: install
	$(PY) -m bench.fuzz --seconds $(FUZZ_SECONDS) --examples $(FUZZ_EXAMPLES)

# The API contract in-process, harder than in `make test`: more examples per operation and role,
# negative cases (data the schema excludes) and the response-header check; prints the summary.
CONTRACT_EXAMPLES ?= 25
.PHONY: fuzz-contract
fuzz-contract: install
	CONTRACT_FUZZ=1 CONTRACT_SUMMARY=1 CONTRACT_EXAMPLES=$(CONTRACT_EXAMPLES) $(PY) -m pytest -q -s \
		tests/test_api_contract.py::test_every_answer_is_what_the_openapi_document_says

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache client/build client/src/*.egg-info

# Generator benchmark (never part of `make test`): the reference `ctgan` package against our
# ctgan, flow and copula, on GBSG2 and a 10x table; figures in bench/results/ and docs/benchmarks.md.
# Several minutes on a CPU. Options pass through: make bench-generators BENCH_ARGS="--quick".
# Validation-report benchmark: the report's time on GBSG2 and on a 10k × 30 table (target < 60 s on
# 2 cores), and GBSG2's headline per generator. A few minutes on a CPU (ctgan and flow train 300 epochs).
.PHONY: bench-report
bench-report: install
	$(PY) -m bench.report $(BENCH_ARGS)

# Verification benchmark: engine latency per kind at 1k/10k/100k rows, the service's throughput with 20
# concurrent clients (in-process server, temporary SQLite), RMSE over the mechanism's stated noise at
# ε 0.1-5, CI coverage and GBSG2 verdict agreement. 5-7 minutes on 2 cores; BENCH_ARGS="--quick" under 1 min.
.PHONY: bench-verification
bench-verification: install
	$(PY) -m bench.verification $(BENCH_ARGS)

# Precision-preview benchmark: the free preview's time on GBSG2 per hypothesis (median of 5; target
# <= 2 s for the regression kinds). Under a minute; figures in bench/results/preview.json.
.PHONY: bench-preview
bench-preview: install
	$(PY) -m bench.preview

# Trust benchmark: do DP verdicts tell true findings from artefacts of a synthetic release? A battery
# read off a copula release of GBSG2, Rossi, kidney transplant, lung and simulated cohorts (500, 2k,
# 10k rows, known truth), answered at ε 0.5/1/3 against the non-private verdict; figures in
# bench/results/trust.json and docs/benchmarks.md. About 6 minutes on 2 cores; BENCH_ARGS="--quick" about 75 s
# (into bench/results/trust-quick.json, docs untouched).
.PHONY: bench-trust
bench-trust: install
	$(PY) -m bench.trust $(BENCH_ARGS)

# The demo's two findings (the horTh HR, true; the age HR, an artefact of the release) over 200 noise
# draws each, against the release `make demo` wrote; figures in bench/results/story.json. Under a minute.
.PHONY: bench-story
bench-story: demo
	$(PY) -m bench.story

# Upload header benchmark: the refusal of a 10^5-column header beside a normal GBSG2 upload (median of 5,
# ratio, refusal size); a few seconds. Figures in bench/results/upload_header.json and docs/benchmarks.md.
.PHONY: bench-header
bench-header: install
	$(PY) -m bench.upload_header

# Regression kinds' engine time per mechanism at 10k rows (target p50 <= 100 ms); under a minute.
.PHONY: bench-regression-latency
bench-regression-latency: install
	$(PY) -m bench.regression_latency

# The service at a million rows (issue 15): a 1M x 30 upload's peak memory, every verification kind's engine
# time (HR and OR <= 1 s), the report at 1M rows (< 5 min) and ctgan's throughput; about 20 minutes on 2 cores.
# Figures in bench/results/scale.json and docs/benchmarks.md; BENCH_ARGS="--parts report" runs one part.
.PHONY: bench-scale
bench-scale: install
	$(PY) -m bench.scale --write $(BENCH_ARGS)

.PHONY: bench-generators
bench-generators: install
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench.generators $(BENCH_ARGS)
