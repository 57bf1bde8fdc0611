# Two commands: `make serve` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= data
DEMO_TRIPS ?= 20000
DEMO_REGULAR ?= 300
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2

.PHONY: serve test install dev demo-data bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

demo-data: install
	@if [ ! -s "$(DATA)/trips.sqlite" ]; then \
		echo "Loading $(DEMO_TRIPS) demo trips and $(DEMO_REGULAR) regular trips of commuters into $(DATA)/ ..."; \
		$(VENV)/bin/tripsearch fixtures --trips $(DEMO_TRIPS) --regular $(DEMO_REGULAR) --seed 7 --start-date $$(date -d tomorrow +%F) --days 14 \
			| $(VENV)/bin/tripsearch index - --data $(DATA) --total $$(( $(DEMO_TRIPS) + $(DEMO_REGULAR) )); \
	fi

# A development secret, so that writes can be tried at once; never use it for a real deployment.
DEV_JWT_SECRET ?= development-secret-for-tripsearch-only

serve: demo-data
	@echo "tripsearch: a token for writes: TRIPSEARCH_JWT_SECRET=$${TRIPSEARCH_JWT_SECRET:-$(DEV_JWT_SECRET)} $(VENV)/bin/tripsearch token --scope trips:write"
	TRIPSEARCH_JWT_SECRET=$${TRIPSEARCH_JWT_SECRET:-$(DEV_JWT_SECRET)} $(VENV)/bin/tripsearch serve --host $(HOST) --port $(PORT) --data $(DATA) --workers $(WORKERS)

test: dev
	scripts/install-test-deps
	$(PY) -m pytest

bench: dev
	$(PY) -m pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
