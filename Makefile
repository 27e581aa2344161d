# The course's commands. `make book` and `make test` are all a fresh clone needs (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY ?= $(VENV)/bin/python
# The stamp records that .venv holds requirements.txt and attnlib; it is rebuilt when either file changes.
# On a machine whose Python already has the toolchain (a GPU box), run e.g. `make test-gpu BOOTSTRAP= PY=python3`.
STAMP := $(VENV)/.installed
BOOTSTRAP ?= $(STAMP)
# Extra pip options for the first install, e.g. PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu".
PIP_ARGS ?=

JB_BUILD := $(PY) -c "import sys; from jupyter_book.cli.main import main; sys.exit(main())" build . -W -n --keep-going
NBVAL := $(PY) -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	--nbval-cell-timeout=600 -p no:cacheprovider notebooks

# The browser check of the built site (tests/site). `make test SITE_CHECK=skip` leaves it out and says so loudly.
SITE_CHECK ?= run

.PHONY: help book test lint unit nbval site-check execute test-gpu bench clean

help:
	@echo "make book      build the site into _build/html (creates .venv on first use)"
	@echo "make test      ruff, unit tests, nbval (strict) over notebooks/, the book build, then the site in a browser"
	@echo "make execute   re-run every notebook top to bottom on the CPU to refresh its stored outputs"
	@echo "make test-gpu  the notebook suite with ATTNLIB_DEVICE=cuda (fails at once without CUDA)"
	@echo "make lint      ruff over the package, the tests, the scripts and the notebooks"
	@echo "make unit      pytest over tests/ (all but the browser check)"
	@echo "make nbval     nbval (strict) over notebooks/ only"
	@echo "make site-check open the built site in headless Chromium and check every page (screenshots in _build/screenshots)"
	@echo "make bench     time and memory of attention, attnlib against torch and against itself (prints tables)"
	@echo "make clean     remove _build and the test caches"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(VENV)/bin/python || { echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_ARGS) -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_ARGS) -e .
	@touch $@

book: $(BOOTSTRAP)
	$(JB_BUILD)
	@echo
	@echo "The course is built. Open file://$(CURDIR)/_build/html/index.html"

lint: $(BOOTSTRAP)
	$(PY) -m ruff check .

unit: $(BOOTSTRAP)
	$(PY) -m pytest -p no:cacheprovider tests --ignore=tests/site

nbval: $(BOOTSTRAP)
	$(NBVAL)

site-check: $(BOOTSTRAP)
ifeq ($(SITE_CHECK),skip)
	@echo "=================================================================================================="
	@echo " THE BROWSER CHECK WAS SKIPPED (SITE_CHECK=skip): the site was built but no page was opened."
	@echo "=================================================================================================="
else
	$(PY) -m pytest -p no:cacheprovider tests/site
endif

test: lint unit nbval
	$(JB_BUILD)
	$(MAKE) --no-print-directory site-check

execute: $(BOOTSTRAP)
	ATTNLIB_DEVICE=cpu $(PY) scripts/execute_notebooks.py notebooks/*.ipynb

test-gpu: $(BOOTSTRAP)
	@$(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else \
	'make test-gpu: CUDA is not available to torch ' + torch.__version__ + ' on this machine; run it where a GPU is.')"
	ATTNLIB_DEVICE=cuda $(NBVAL)

bench: $(BOOTSTRAP)
	$(PY) benchmarks/bench.py

clean:
	rm -rf _build .pytest_cache .ruff_cache .hypothesis
