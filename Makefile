# make install | make test | make test-slow | make demo | make demo-history
# The demo runs offline: the exchanges are the bundled simulator on 127.0.0.1.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_SECONDS ?= 60
DEMO_HOURS ?= 24

.PHONY: install test test-slow demo demo-history

install: $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt

$(PY):
	$(PYTHON) -m venv $(VENV)

test:
	$(PY) -m pytest

test-slow:
	$(PY) -m pytest --run-slow

demo:
	$(PY) demo/run_demo.py --seconds $(DEMO_SECONDS) $(ARGS)

demo-history:
	$(PY) demo/run_demo.py --history-hours $(DEMO_HOURS) $(ARGS)
