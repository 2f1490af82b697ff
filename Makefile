# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

HOST ?= 127.0.0.1
PORT ?= 8000
GALLERY ?= .signver/gallery.sqlite

.PHONY: run demo test install install-server install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-server: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[server]'

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

# The service and its web app on an embedded SQLite gallery; prints the URL to open.
run: install-server
	$(BIN)/signver serve --host $(HOST) --port $(PORT) --gallery $(GALLERY)

demo: install
	$(BIN)/signver demo

test: install-dev
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
