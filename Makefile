# Two commands on a fresh machine: `make train` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install train test lint tensorboard clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes; torch comes from pip's usual sources.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

train: install
	$(PY) -m alexnet_lightning.train $(ARGS)

test: install
	$(PY) -m pytest $(ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

tensorboard: install
	$(VENV)/bin/tensorboard --logdir outputs

clean:
	rm -rf outputs multirun lightning_logs .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
