# Duet: the two commands are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
NPM ?= npm
BIN := target/release/duet

.PHONY: bench-cluster all build web run cluster test test-suites test-rust test-e2e test-browser test-load fmt fmt-check lint bench clean

all: build

# npm installs only when the lock file changed.
web/node_modules/.package-lock.json: web/package-lock.json web/package.json
	cd web && $(NPM) ci --no-audit --no-fund --loglevel=error
e2e/node_modules/.package-lock.json: e2e/package-lock.json e2e/package.json
	cd e2e && $(NPM) ci --no-audit --no-fund --loglevel=error

web: web/node_modules/.package-lock.json
	cd web && $(NPM) run --silent build

build: web
	$(CARGO) build --release -p duet

run: build
	./$(BIN)

# Postgres, Redis and three nodes on 127.0.0.1:4001-4003 until Ctrl-C.
cluster: build
	./scripts/cluster.sh

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint: web
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# Unit and integration tests share the release build's artifacts. With the
# suite's Postgres up (`make test`), the integration tests run a second time
# with every test server on Postgres (the store's unit tests run on both).
test-rust: web
	$(CARGO) test --release --workspace
	@if [ -n "$$DUET_TEST_POSTGRES_URL" ]; then \
	  echo "integration tests again, on Postgres"; \
	  DUET_TEST_STORE=postgres $(CARGO) test --release -p duet --tests; \
	fi

# The cluster tests run whenever the suite's Postgres and Redis are up
# (`make test`); a binary that cannot run a cluster is then a failure.
test-e2e: build e2e/node_modules/.package-lock.json
	cd e2e && DUET_TEST_CLUSTER=require node --test --test-concurrency=1 tests/

test-browser: build e2e/node_modules/.package-lock.json
	./scripts/ensure-chromium.sh
	cd e2e && node --test --test-concurrency=1 browser/

test-load: build
	./scripts/load-smoke.sh

# The suites run with one throwaway Postgres and Redis for the whole run
# (scripts/services.sh: DUET_TEST_POSTGRES_URL, DUET_TEST_REDIS_URL, ...),
# stopped at the end whatever happens.
test: fmt-check lint
	./scripts/services.sh run -- $(MAKE) --no-print-directory test-suites
	@echo "make test: all suites passed"

test-suites: test-rust test-e2e test-browser test-load

bench: build e2e/node_modules/.package-lock.json
	$(CARGO) bench -p duet
	./scripts/load-bench.sh
	./scripts/cluster-bench.sh

# One node against three on Postgres and Redis (SCALE=full: the sizes of
# docs/BENCHMARKS.md "Many nodes", 50 000 sockets included).
bench-cluster: build e2e/node_modules/.package-lock.json
	./scripts/cluster-bench.sh

clean:
	$(CARGO) clean
	rm -rf web/dist
