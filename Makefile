# The single entry point for people and CI.  `make run` and `make test` set
# everything up on a fresh machine: virtual environment, packages, database,
# demo data and the trained Rasa model.

PYTHON_SYS ?= python3.10
VENV       := .venv
PY         := $(VENV)/bin/python
PIP        := $(VENV)/bin/pip
RASA       := $(VENV)/bin/rasa
MODEL      := models/loyalty.tar.gz
# The API docs page's viewer (swagger-ui-dist, pinned in its package-lock.json), served from here.
API_DOCS   := loyalty/apps/apidocs
API_DOCS_JS := $(API_DOCS)/node_modules/swagger-ui-dist/swagger-ui-bundle.js
# The staff app's charts (chart.js, pinned in its package-lock.json), served from here.
STAFF_VENDOR := bot/staff/vendor
STAFF_CHART_JS := $(STAFF_VENDOR)/node_modules/chart.js/dist/chart.umd.min.js
RASA_SRC   := config.yml $(wildcard domain/*.yml) $(shell find data -name '*.yml' 2>/dev/null)
export LOYALTY_DATABASE_URL ?= sqlite:///var/loyalty.db
export PYTHONDONTWRITEBYTECODE := 1
# Rasa's telemetry would try to reach the internet.
export RASA_TELEMETRY_ENABLED := false

.PHONY: run run-cluster test install dev lint train shell db seed clean constraints bench api-docs staff-assets nlu-eval

run: install $(MODEL) db ## start the assistant, the action server, the loyalty API, web chat, console and staff app
	$(PY) -m bot.launcher

# The stories run through bot.rasa_run: the model as the server runs it, loaded without tracing a
# training step (89 s -> 34 s here, the same report).
test: lint $(MODEL) ## every test: lint and types, unit, database (SQLite and PostgreSQL), conversation, browser
	$(RASA) data validate --quiet --domain domain
	$(PY) -m pytest -q tests
	$(PY) -m bot.rasa_run test core --model $(MODEL) --stories tests/stories --fail-on-prediction-errors --out results/core

$(VENV)/.installed: requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	$(PIP) install -q -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PIP) install -q -r requirements-dev.txt -c constraints.txt
	touch $@

install: $(VENV)/.installed api-docs staff-assets

dev: $(VENV)/.dev-installed api-docs staff-assets

# Without Node the API still runs: /api/v1/docs answers 503 saying to run this target.
api-docs: $(API_DOCS_JS) ## the files of the API docs page (/api/v1/docs), from the npm registry, no install scripts

$(API_DOCS_JS): $(API_DOCS)/package.json $(API_DOCS)/package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --prefix $(API_DOCS) --ignore-scripts --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: install Node.js and run 'make api-docs' for the API docs page" >&2; fi

# Without Node the staff app still runs: its tables and CSVs work, the charts say to run this target.
staff-assets: $(STAFF_CHART_JS) ## the staff app's charting library, from the npm registry, no install scripts

$(STAFF_CHART_JS): $(STAFF_VENDOR)/package.json $(STAFF_VENDOR)/package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --prefix $(STAFF_VENDOR) --ignore-scripts --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: install Node.js and run 'make staff-assets' for the staff app's charts" >&2; fi

# OpenMP threads that wait asleep (as the launcher runs Rasa): the encoder featurises the training
# examples on two threads, and spinning ones slowed it 2.5 times whenever the other core was busy.
$(MODEL): $(RASA_SRC) | $(VENV)/.installed
	OMP_WAIT_POLICY=passive $(RASA) train --domain domain --fixed-model-name loyalty --out models
	touch $@

train: $(MODEL)

db: install ## migrate the database; on first start seed demo data, train the recommender, compute segments
	$(PY) -m loyalty db upgrade
	$(PY) -m loyalty seed --if-empty
	@ls var/models/recommender-*.npz >/dev/null 2>&1 || { \
	  $(PY) -m loyalty recommender train && $(PY) -m loyalty segments recompute; }
	$(PY) -m loyalty recommender train --if-stale  # a model of an older format is retrained

# Needs PostgreSQL and Redis: LOYALTY_DATABASE_URL, TRACKER_DB_*, REDIS_* and WEBCHAT_REDIS_URL (docs/scaling.md).
run-cluster: install $(MODEL) db ## two Rasa replicas and two action servers behind nginx on one port
	RASA_ENDPOINTS=endpoints.prod.yml $(PY) -m bot.launcher --replicas $(or $(REPLICAS),2)

shell: install $(MODEL) db ## talk to the bot in the terminal (the action server starts alongside)
	$(PY) -m bot.launcher --shell

lint: dev ## ruff on every Python file, mypy on loyalty, bot and actions (pyproject.toml configures both)
	$(VENV)/bin/ruff check loyalty bot actions tests bench
	$(VENV)/bin/mypy

nlu-eval: install ## (by hand) train an NLU model on data/ and score it on the held-out set tests/nlu_eval/
	$(PY) -m bench.nlu_eval --train --out results/nlu_eval

bench: dev $(VENV)/.bench-installed ## the benchmarks' own dependencies (the ALS baseline); then run them one by one
	@echo "Benchmarks are run one by one, e.g.: $(PY) -m bench.core_ops"

$(VENV)/.bench-installed: $(VENV)/.dev-installed requirements-bench.txt
	$(PIP) install -q -r requirements-bench.txt -c constraints.txt
	touch $@

constraints:
	$(PIP) freeze | grep -v '^-e' | sed '1i # Tested versions of every package; installs use -c constraints.txt.' > constraints.txt

clean:
	rm -rf var results models .pytest_cache $(API_DOCS)/node_modules $(STAFF_VENDOR)/node_modules
