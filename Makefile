# Two commands on a fresh machine: `make train` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install train test lint tensorboard clean
.PHONY: browser

install: $(STAMP)

# Re-installs only when pyproject.toml changes; torch comes from pip's usual sources.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	-test -d .git && $(VENV)/bin/nbstripout --install  # notebooks are committed without outputs
	touch $(STAMP)

train: install
	$(PY) -m alexnet_lightning.train $(ARGS)

test: install browser
	$(PY) -m pytest $(ARGS)

# Debian's chromium for the page test (tests/test_serve_browser.py); best effort: without it that test skips.
browser:
	-@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1; } || \
		echo "chromium not installed: the browser test will skip"

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

tensorboard: install
	$(VENV)/bin/tensorboard --logdir outputs

clean:
	rm -rf outputs multirun lightning_logs .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
