# Every target sets up .venv by itself, so `make demo` and `make test` work on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-unit fuzz lint completions man bench peers clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,lint]'
	touch $(STAMP)

## demo: build a small example image, import it, list it, extract it, export it again
demo: $(STAMP)
	$(BIN)/python examples/demo.py

## peers: install skopeo, umoci, containerd and podman from Debian when missing (needs root)
peers:
	bash scripts/install-peers.sh

## test: unit, CLI and interop tests (installs the peers first)
test: $(STAMP) peers
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

## test-unit: everything but the interop tests, no peers needed
test-unit: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not interop" $(PYTEST_ARGS)

## fuzz: the fuzz targets of tests/fuzz with FUZZ_SCALE (default 100) times the examples `make test`
##       runs, random seeds; failures are kept in .hypothesis/ and replayed first next time
FUZZ_SCALE ?= 100
fuzz: $(STAMP)
	CTRPY_FUZZ_SCALE=$(FUZZ_SCALE) $(BIN)/python -m pytest -n 2 tests/fuzz --hypothesis-show-statistics $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check ctrpy tests bench examples
	$(BIN)/mypy

completions: $(STAMP)
	$(BIN)/python -m ctrpy.cli.completion_gen completions

## man: regenerate the man pages (ctrpy/man/man1/*.1) from the click commands
man: $(STAMP)
	$(BIN)/python -m ctrpy.cli.manpages ctrpy/man/man1

## bench: ctrpy against ctr, umoci, skopeo and the C limit (e.g. BENCH_ARGS="--tmpfs", "--case 'real-*'")
bench: $(STAMP) peers
	bash bench/install-tools.sh
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
