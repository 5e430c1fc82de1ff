# The two commands of the README, and the pieces they are made of.
#   make study   set everything up, then run the main job
#   make test    set everything up, then run every check CI runs (CI calls exactly this)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LIB := vaecausal_nb
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup browser study test check-export check-clean check-readme lint nbtest pytest docs readme export slow clean help
help:
	@echo "The two commands:"
	@echo "  make study         set up .venv and run the quick study (study_runs/quick), with its report"
	@echo "  make test          set up .venv and run every check CI runs (about 10-15 min on 2 cores)"
	@echo "The pieces (each sets up .venv first if it is missing):"
	@echo "  make setup         create .venv and install the package with its dev extras (and chromium, if it can)"
	@echo "  make check-export  the library equals what nbdev_export writes from the notebooks"
	@echo "  make check-clean   the notebooks carry no noisy metadata (nbdev_clean changes nothing)"
	@echo "  make check-readme  README.md equals what nbs/index.ipynb generates"
	@echo "  make lint          ruff and the 120-character line limit on the library"
	@echo "  make nbtest        every notebook but its #| slow and #| cuda cells, longest first on 2 workers"
	@echo "  make docs          build the HTML docs site offline into _site/"
	@echo "  make pytest        the tests in tests/, two files at a time"
	@echo "  make export        nbdev_export, then nbdev_clean (after editing a notebook)"
	@echo "  make readme        regenerate README.md from nbs/index.ipynb"
	@echo "  make slow          re-run every notebook with its #| slow cells and store the outputs (hours; resumable)"
	@echo "  make browser       install Debian's chromium for the browser tests, where possible"
	@echo "  make clean         remove the built docs and caches (_site, _sphinx, ...)"

# -- set-up ------------------------------------------------------------------------------------------------
$(STAMP): setup.py settings.ini
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed: set PY=python3.1x")'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip "setuptools<82" wheel
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev,ray]"
	@touch $(STAMP)

setup: $(STAMP) browser

# Browser tests use Debian's chromium (never a downloaded browser build).
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null && command -v apt-get >/dev/null; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: no chromium and no way to install it: the browser tests will be skipped (CI=true fails them)"; fi

# -- the main job ------------------------------------------------------------------------------------------
study: setup
	$(BIN)/vaecausal study --preset quick --out study_runs/quick

# -- the checks --------------------------------------------------------------------------------------------
test: setup
	@$(MAKE) --no-print-directory check-export check-clean check-readme lint nbtest docs pytest

# nbdev_export must reproduce the committed library exactly (new, changed or deleted files all count). The modules are
# deleted first, so a notebook that stops exporting (say, its `#| default_exp` was lost) shows as a missing file.
check-export: $(STAMP)
	@snap() { find $(LIB) -name '*.py' -print0 | sort -z | xargs -0 sha1sum; }; before=$$(snap); \
	find $(LIB) -name '*.py' ! -name '__init__.py' -delete; \
	$(BIN)/nbdev_export; \
	if [ "$$before" != "$$(snap)" ]; then git status --short $(LIB); \
	  echo "FAIL: nbdev_export changed the library: edit the notebooks, export, and commit both"; exit 1; fi; \
	echo "export: the library matches the notebooks"

check-clean: $(STAMP)
	@snap() { find nbs -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 sha1sum; }; before=$$(snap); \
	$(BIN)/nbdev_clean; \
	if [ "$$before" != "$$(snap)" ]; then git status --short nbs; \
	  echo "FAIL: nbdev_clean changed notebooks: they carried noisy metadata; commit the cleaned notebooks"; exit 1; fi; \
	echo "clean: notebooks carry no noisy metadata"

check-readme: $(STAMP)
	@$(BIN)/python tools/nbdocs.py readme --check

# ruff on the exported library (configured in pyproject.toml); fix findings in the notebooks, then export.
lint: $(STAMP)
	$(BIN)/ruff check $(LIB) && echo "lint: ruff finds nothing in $(LIB)"
	$(BIN)/python tools/line_length.py $(LIB)

# Every notebook but its #| slow and #| cuda cells, the longest first (tools/nbtest.py) so both workers stay busy.
nbtest: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python tools/nbtest.py --n_workers 2

docs: setup
	$(BIN)/python tools/nbdocs.py site

readme: setup
	$(BIN)/python tools/nbdocs.py readme

export: setup
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

# Two test files at a time (pytest-xdist): many tests wait on subprocesses that use one core.
pytest: setup
	$(BIN)/python -m pytest tests -v --durations=10 -n 2 --dist loadfile

# The #| slow cells (long training, the pilot study) re-run and their outputs stored: hours on 2 cores, resumable
# (a notebook finished and unchanged since is skipped; models, probes and studies resume from their own caches).
slow: $(STAMP)
	$(BIN)/python tools/rerun_fast.py --slow nbs/*.ipynb nbs/findings/*.ipynb

clean:
	rm -rf _proc _sphinx _site _docs jupyter_execute .pytest_cache
