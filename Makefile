# Kervan — two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: install run test lint validate migrate demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## make run: install, validate the metadata, migrate, load demo data, serve on http://127.0.0.1:5000
run: install
	$(BIN)/kervan validate
	$(BIN)/kervan migrate
	$(BIN)/kervan demo
	$(BIN)/kervan serve --host $(HOST) --port $(PORT)

## make test: the whole suite (SQLite; PostgreSQL too when KERVAN_TEST_DATABASE_URL is set)
test: install
	$(BIN)/ruff check engine tests plugins bench
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check engine tests plugins bench

validate migrate demo: install
	$(BIN)/kervan $@

clean:
	rm -rf $(VENV) instance .pytest_cache
