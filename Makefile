# cartpulse — one source of truth for the everyday commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK := bash deploy/local/stack.sh
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $@

.PHONY: install
install: $(BIN)/.installed ## Create .venv and install cartpulse with test and dev extras

.PHONY: stack-up
stack-up: ## Start Kafka (KRaft, from Maven Central jars) and Redis on 127.0.0.1
	$(STACK) up

.PHONY: stack-down
stack-down: ## Stop the local stack
	$(STACK) down

.PHONY: stack-status
stack-status: ## Show whether Kafka and Redis accept clients
	$(STACK) status

.PHONY: test
test: install stack-up ## Install, start the real stack, run every test
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install ## Unit tests only (no services needed)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: lint
lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: format
format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: typecheck
typecheck: install ## mypy --strict on the package and the demo
	$(BIN)/mypy
	$(BIN)/mypy --follow-imports=silent deploy/local/demo.py

.PHONY: check-ops
check-ops: ## promtool: alert rules, scrape config, alert unit tests (installs promtool if missing)
	bash deploy/local/promtool.sh

.PHONY: demo
demo: install stack-up ## cartpulse end to end, live, against local Twilio and SMTP test servers
	PATH=$(CURDIR)/$(BIN):$$PATH bash deploy/local/demo.sh

.PHONY: bench
bench: install stack-up ## Run the benchmarks and write docs/BENCHMARKS.md
	$(BIN)/python bench/run.py

.PHONY: clean
clean: ## Remove the virtualenv and caches (the stack's data stays; see stack.sh down --purge)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .cartpulse
