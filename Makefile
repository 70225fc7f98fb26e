# cartpulse — one source of truth for the everyday commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# BROKERS=3: a three-node Kafka cluster (deploy/local/stack.sh, docs/operations.md); 1 by default.
BROKERS ?=
STACK := $(if $(BROKERS),CARTPULSE_KAFKA_BROKERS=$(BROKERS) )bash deploy/local/stack.sh
PYTEST_ARGS ?=
# The detection core (native/) is Rust: pip runs cargo to build it into streams/_native.
# rustup installs cargo in ~/.cargo/bin, which a non-login shell's PATH often lacks.
CARGO := $(or $(shell command -v cargo 2>/dev/null),$(wildcard $(or $(CARGO_HOME),$(HOME)/.cargo)/bin/cargo))
NATIVE_SOURCES := native/Cargo.toml $(wildcard native/Cargo.lock) $(wildcard native/src/*.rs)
REQUIRE_CARGO = @test -n "$(CARGO)" || { echo "cargo not found (PATH, ~/.cargo/bin): the native core needs Rust >= 1.85; install it with rustup: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" >&2; exit 1; }
WITH_CARGO = PATH="$(dir $(CARGO)):$$PATH"

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

# An editable install builds the core into the source tree, so editing native/ needs a re-run.
$(BIN)/.installed: pyproject.toml $(NATIVE_SOURCES)
	$(REQUIRE_CARGO)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@echo "building the native core (cargo, release) and installing cartpulse into $(VENV)"
	$(WITH_CARGO) $(BIN)/pip install -q -e '.[test,dev]'
	touch $@

.PHONY: install
install: $(BIN)/.installed ## Create .venv and install cartpulse with test and dev extras

# The wheel reuses the core cargo built for `make install` (pip builds in the source tree, into
# native/target); the sdist carries native/ and Cargo.lock, so it builds anywhere Rust is.
.PHONY: dist
dist: install ## Build the abi3 wheel (installs without Rust) and the sdist into dist/
	$(REQUIRE_CARGO)
	$(WITH_CARGO) $(BIN)/pip wheel -q --no-deps --wheel-dir dist .
	$(BIN)/python -m build -q --sdist --outdir dist .
	@ls -1 dist/cartpulse-$$($(BIN)/python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')[-.]*

.PHONY: stack-up
stack-up: ## Start Kafka (KRaft, from Maven Central jars) and Redis on 127.0.0.1; BROKERS=3 for three Kafka nodes
	$(STACK) up

.PHONY: stack-down
stack-down: ## Stop the local stack (BROKERS=3 if it was started so)
	$(STACK) down

.PHONY: stack-status
stack-status: ## Show whether Kafka and Redis accept clients (BROKERS=3: every node)
	$(STACK) status

.PHONY: test-native
test-native: ## The Rust core's own unit tests (cargo test)
	$(REQUIRE_CARGO)
	$(WITH_CARGO) cargo test --release --manifest-path native/Cargo.toml --lib

.PHONY: browser
browser: ## Install Debian's Chromium when missing (the email layout tests drive it)
	bash deploy/local/chromium.sh

.PHONY: test
test: install browser test-native stack-up ## Install, run the Rust tests, start the real stack, run every test
	$(BIN)/pytest $(PYTEST_ARGS)

FUZZ_SCALE ?= 50
.PHONY: fuzz
fuzz: install ## Fuzz longer than make test: the hypothesis fuzz tests and the Rust property tests, FUZZ_SCALE times the cases
	CARTPULSE_FUZZ_SCALE=$(FUZZ_SCALE) $(BIN)/pytest -m fuzz $(PYTEST_ARGS)
	$(REQUIRE_CARGO)
	PROPTEST_CASES=$$(( 256 * $(FUZZ_SCALE) )) $(WITH_CARGO) cargo test --release --manifest-path native/Cargo.toml --lib

.PHONY: test-unit
test-unit: install ## Every test that needs no service (no Kafka, Redis, Chromium or package build)
	$(BIN)/pytest tests --unit -n auto $(PYTEST_ARGS)

.PHONY: lint
lint: install ## ruff and cargo clippy lint, ruff and rustfmt format check, the import contracts (.importlinter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(REQUIRE_CARGO)
	$(WITH_CARGO) cargo fmt --manifest-path native/Cargo.toml --check
	$(WITH_CARGO) cargo clippy --release --manifest-path native/Cargo.toml -- -D warnings

.PHONY: format
format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(REQUIRE_CARGO)
	$(WITH_CARGO) cargo fmt --manifest-path native/Cargo.toml

.PHONY: typecheck
typecheck: install ## mypy --strict on the package and the demo
	$(BIN)/mypy
	$(BIN)/mypy --follow-imports=silent deploy/local/demo.py

.PHONY: check-ops
check-ops: ## promtool: alert rules, scrape config, alert unit tests (installs promtool if missing)
	bash deploy/local/promtool.sh

.PHONY: email-screenshots
email-screenshots: install browser ## Render one email per locale in Chromium into docs/img (README.md shows them)
	$(BIN)/python -m tests.support.email_browser docs/img

.PHONY: demo
demo: install stack-up ## cartpulse end to end, live, against local Twilio and SMTP test servers
	PATH=$(CURDIR)/$(BIN):$$PATH bash deploy/local/demo.sh

.PHONY: bench
bench: install stack-up ## Run the benchmarks and write docs/BENCHMARKS.md (adds the bench extra: Quix Streams)
	@# the bench extra's requirements as pyproject.toml lists them, without rebuilding cartpulse
	$(BIN)/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['bench'], sep='\n')" | xargs -d '\n' $(BIN)/pip install -q
	$(BIN)/python bench/run.py

.PHONY: clean
clean: ## Remove the virtualenv, caches and Rust build output (the stack's data stays; see stack.sh down --purge)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .cartpulse native/target streams/_native*.so build dist
