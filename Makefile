# Two commands on a fresh machine: `make train` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
# where paths.cache_dir points (conf/paths/default.yaml): decoded-image caches and normalization statistics
CACHE_DIR := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/alexnet_lightning

.PHONY: install train samples test lint tensorboard clean clean-cache
.PHONY: browser

install: $(STAMP)

# Re-installs only when pyproject.toml changes; torch comes from pip's usual sources.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	-test -d .git && $(VENV)/bin/nbstripout --install  # notebooks are committed without outputs
	touch $(STAMP)

# Then a few held-out digits as PNG files (outputs/samples/digits/<class>/<n>.png) to try predict and serve on.
train: install
	$(PY) -m alexnet_lightning.train $(ARGS)
	@$(MAKE) --no-print-directory samples

samples: install
	$(PY) -m alexnet_lightning.samples

test: install browser
	$(PY) -m pytest $(ARGS)

# Debian's chromium for the page test (tests/test_serve_browser.py); best effort: without it that test skips.
browser:
	-@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1; } || \
		echo "chromium not installed: the browser test will skip"

# The pre-commit hooks (.pre-commit-config.yaml) on every tracked file, with .venv's tools first on PATH, then mypy.
lint: install
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/pre-commit run --all-files
	$(PY) -m mypy

# Every run under outputs/: training (train/), sweeps (sweep/), evaluations (eval/), ...
tensorboard: install
	$(VENV)/bin/tensorboard --logdir outputs

clean:
	rm -rf outputs multirun lightning_logs .pytest_cache .ruff_cache .mypy_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

# The next run decodes the images and computes the statistics again.
clean-cache:
	@if [ -d "$(CACHE_DIR)" ]; then \
		size=$$(du -sh "$(CACHE_DIR)" | cut -f1) && rm -rf "$(CACHE_DIR)" && echo "removed $(CACHE_DIR) ($$size)"; \
	else echo "no cache at $(CACHE_DIR): nothing to remove"; fi
