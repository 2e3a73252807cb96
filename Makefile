# calo-polars: `make run` audits the default input into reports/, `make test` runs the suite.
# Everything is installed into .venv by these targets, so a clean checkout needs only python3.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= reports
REAL_ARCHIVE := ../shared/data/balance-sync-logs.zip
SAMPLE       := examples/sample-logs.zip
# The bundled sample when it exists, otherwise the real archive next to the checkout.
INPUT  ?= $(firstword $(wildcard $(SAMPLE)) $(REAL_ARCHIVE))

# How the bundled sample was made (examples/README.md says the same; tests/test_sample.py checks it).
SAMPLE_ARGS := --users 64 --days 42 --seed 2024 --overdraft-rate 0.003 --mismatch-rate 0.006 \
  --flow-break-rate 0.004 --anomaly-rate 0.004 --duplicate-rate 0.004 --refused-rate 0.01 --sent-again-rate 0.004 \
  --not-applied-rate 0.05 --not-in-sync-rate 0.004 --negative-amount-rate 0.004 --failed-rate 0.003 \
  --skipped-rate 0.003 --unknown-rate 0.003 --logs-missing-rate 0.025 --error-rate 0.01 --crash-rate 0.15

.PHONY: run test install install-dev install-bench sample bench screenshot clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# Tests also run the benchmark script on a tiny archive, so they get its extra (pandas) too,
# and the Ray engine against a real local Ray runtime (the ray extra, ~650 MB).
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,bench,ray]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
install-bench: $(VENV)/.installed-bench

run: install
	@if [ ! -e "$(INPUT)" ]; then \
	  echo "make run: no input found: $(INPUT) is absent (give one with: make run INPUT=path/to/logs.zip)" >&2; \
	  exit 2; \
	fi
	$(BIN)/calo-balance report "$(INPUT)" -o "$(OUT)"

test: install-dev
	$(BIN)/python -m pytest

# The throughput benchmark (not part of make test): BENCH_ARGS="--raw-gb 4 --profile" etc.
BENCH_ARGS ?= --raw-gb 1 --profile
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

sample: install
	$(BIN)/calo-balance synth -o $(SAMPLE) $(SAMPLE_ARGS)

# The README's picture of the workbook's Overview (LibreOffice and poppler-utils: apt-get install libreoffice-calc poppler-utils).
screenshot: install
	rm -rf build/screenshot && $(BIN)/calo-balance report $(SAMPLE) -o build/screenshot -q
	cd build/screenshot && soffice --headless --convert-to pdf calo_balance_reports.xlsx >/dev/null
	pdftoppm -png -f 1 -l 1 -r 90 -x 28 -y 32 -W 1010 -H 660 -singlefile build/screenshot/calo_balance_reports.pdf docs/overview

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis
