# Lockstep: every target creates the virtual environment when it is missing and installs
# the project into it (again when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lockstep-installed

.PHONY: install demo test test-fast lint bench up images clean

# uv installs the same pinned set as pip does (constraints.txt), its downloads side by side and
# its bytecode compiled in parallel: ~30 s against pip's ~65 s here; pip does it when uv cannot
EXTRAS := dev,postgres,celery,fab
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e ".[$(EXTRAS)]" \
	  || $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

## the main job: 12 regions, five days, faults injected, the gate deciding each day
demo: $(STAMP)
	$(BIN)/lockstep demo

# the suite in parallel (pytest-xdist): tests are independent but for those sharing an
# expensive fixture, which tests/conftest.py puts in one xdist group (the suite-wide Airflow
# is one group, so it starts once) and hands the longest first (--dist loadgroup, in pyproject's
# addopts); WORKERS=0 runs it in this process
WORKERS ?= 2
# the tests' temporary files (Delta tables, SQLite metadata DBs, Airflow homes and logs) on a
# RAM-backed tmpfs when the machine has one with 4 GiB free: the same suite, ~10% less CPU
# (no fsync or disk round trip per commit; README, "Tests"); else TMPDIR, else /tmp
TEST_TMPDIR ?= $(or $(shell df -Pk /dev/shm 2> /dev/null | awk 'NR == 2 && $$4 > 4194304 {print "/dev/shm"}'),$(TMPDIR),/tmp)
PYTEST = TMPDIR=$(TEST_TMPDIR) $(BIN)/python -m pytest -q -n $(WORKERS)

## the static checks, then the whole test suite, slow end-to-end tests included (CI runs exactly this)
test: lint
	$(PYTEST)

## everything but the slow end-to-end tests
test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

## the static checks: ruff, mypy and import-linter's layers contracts (CI runs them before the tests)
lint: $(STAMP)
	$(BIN)/ruff check pipelines tests dags plugins
	$(BIN)/mypy pipelines
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/lockstep bench

## embedded Airflow 3 (SQLite, LocalExecutor) on http://127.0.0.1:8080
up: $(STAMP)
	$(BIN)/lockstep airflow up

## the deployment's images (docker/compose.yaml): official bases where a registry answers,
## else built from Debian's packages (LOCKSTEP_OFFLINE_IMAGES=1 forces that)
images:
	docker/build-images.sh

clean:
	rm -rf lockstep-data .airflow .pytest_cache
