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

.PHONY: run test lint install install-dev install-bench sample bench screenshot screenshot-html clean lock wheels test-docker

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py calo_polars/parse/_tokenize.c
	$(BIN)/pip install --quiet -e .
	@# Byte-compiled as a wheel install would be: an editable install is not, and where
	@# PYTHONDONTWRITEBYTECODE is set every run recompiled ~70 modules (0.15-0.3 s of a 20 MB run).
	$(BIN)/python -m compileall -q calo_polars
	touch $@

# Tests also run the benchmark script on a tiny archive, so they get its extra (pandas) too,
# and the Ray engine against a real local Ray runtime (the ray extra, ~650 MB).
# tests/test_html.py drives Debian's Chromium and tests/test_sheetdata.py LibreOffice: installed here when
# missing and we are root (CI is).
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,bench,ray]'
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y chromium chromium-driver || { apt-get update && apt-get install -y chromium chromium-driver; }; \
	fi
	@# tests/test_sheetdata.py opens the workbook in LibreOffice (a second reader of the fast writer's XML).
	@if ! command -v libreoffice >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y --no-install-recommends libreoffice-calc || { apt-get update && apt-get install -y --no-install-recommends libreoffice-calc; }; \
	fi
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

# Lint and types first (seconds), then the suite: pyproject's [tool.ruff] and [tool.mypy] say what is checked.
test: lint
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The Docker image's pinned dependencies (requirements.lock): pip freeze of a clean venv holding '.[s3]'.
lock: $(BIN)/python
	rm -rf build/lock && $(PYTHON) -m venv build/lock
	build/lock/bin/pip install --quiet '.[s3]'
	{ sed -n '/^#/p' requirements.lock; build/lock/bin/pip freeze --exclude calo-polars; } > build/requirements.lock
	mv build/requirements.lock requirements.lock && rm -rf build/lock

# The wheelhouse an offline `docker build --network none` installs from (wheels/README.md):
# every wheel of requirements.lock for the image's Python 3.11 on x86-64 Linux, and setuptools.
WHEEL_TARGET := --python-version 3.11 --implementation cp --abi cp311 --only-binary=:all: \
  $(foreach p,2_36 2_34 2_28 2_17 2_5,--platform manylinux_$(p)_x86_64) --platform manylinux2014_x86_64
wheels: $(BIN)/python
	$(BIN)/pip download --quiet --dest wheels $(WHEEL_TARGET) --requirement requirements.lock 'setuptools>=77'

# The image built from a clean checkout (git archive HEAD) with no network, and run for real:
# installs docker.io/debootstrap, starts dockerd and makes the base image when missing (.ci/docker-engine).
test-docker: install-dev
	.ci/docker-engine
	CALO_DOCKER=1 $(BIN)/python -m pytest -p no:cacheprovider tests/test_docker.py

# The throughput benchmark (not part of make test): 1 GB (every mode), 4 GB (floor and parse + checks),
# and the real archive end to end when ../shared is there; BENCH_ARGS="--raw-gb 4 --profile" etc.
BENCH_ARGS ?= --raw-gb 1 --also-gb 4 --profile
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

sample: install
	$(BIN)/calo-balance synth -o $(SAMPLE) $(SAMPLE_ARGS)

# docs/html-report.png: the top of report.html on the sample, in headless Chromium (make install-dev).
screenshot-html: install-dev
	rm -rf build/screenshot-html && $(BIN)/calo-balance report $(SAMPLE) -o build/screenshot-html -f html -q
	$(BIN)/python -m tests.browser build/screenshot-html/report.html docs/html-report.png

# The README's picture of the workbook's Overview (LibreOffice and poppler-utils: apt-get install libreoffice-calc poppler-utils).
screenshot: install
	rm -rf build/screenshot && $(BIN)/calo-balance report $(SAMPLE) -o build/screenshot -q
	cd build/screenshot && soffice --headless --convert-to pdf calo_balance_reports.xlsx >/dev/null
	pdftoppm -png -f 1 -l 1 -r 90 -x 28 -y 32 -W 1010 -H 660 -singlefile build/screenshot/calo_balance_reports.pdf docs/overview

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis .mypy_cache .ruff_cache
