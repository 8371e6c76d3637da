# Rapport: `make run` starts the help desk with demo data; `make test` runs every test.
# Both set up what they need on a fresh Debian machine (virtualenv, npm assets, and
# for the tests the Debian packages of the real servers they start).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi
STAMP := $(VENV)/.installed-stamp
VENDOR_STAMP := helpdesk/static/vendor/.built
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST ?= 127.0.0.1
PORT ?= 5000
# Debian packages the test suite starts real servers from.
TEST_PACKAGES := postgresql redis-server chromium dovecot-imapd
PYTEST := $(PY) -m pytest -p no:cacheprovider

MO_STAMP := helpdesk/translations/.compiled

.PHONY: run test translations extract test-fast test-sqlite test-postgres bench lint format venv assets system-deps migrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

$(VENDOR_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	npm run --silent build
	touch $(VENDOR_STAMP)

assets: $(VENDOR_STAMP)

$(MO_STAMP): $(wildcard helpdesk/translations/*/LC_MESSAGES/messages.po) | $(STAMP)
	@if ls helpdesk/translations/*/LC_MESSAGES/messages.po >/dev/null 2>&1; then \
	  $(VENV)/bin/pybabel --quiet compile -d helpdesk/translations; fi
	@mkdir -p helpdesk/translations && touch $(MO_STAMP)

translations: $(MO_STAMP)

## extract: refresh the message catalogue and merge it into el, hu and ar
extract: venv
	$(VENV)/bin/pybabel --quiet extract -F babel.cfg -k _l -k lazy_gettext -o helpdesk/translations/messages.pot .
	$(VENV)/bin/pybabel --quiet update -i helpdesk/translations/messages.pot -d helpdesk/translations

## run: set up, migrate, seed the demo once, serve on http://127.0.0.1:5000
run: venv assets translations
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	$(FLASK) run --host $(HOST) --port $(PORT) --with-threads

migrate: venv
	$(FLASK) db upgrade

system-deps:
	@missing=""; for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## test: the whole suite on SQLite, then everything that touches the database again on PostgreSQL
test: venv assets system-deps lint test-sqlite test-postgres

test-sqlite: venv assets translations
	$(PYTEST) -q tests

test-postgres: venv system-deps translations
	$(PYTEST) -q --db=postgresql -m "not browser" tests/integration

## test-fast: no real servers, no browser (for a quick loop while coding)
test-fast: venv
	$(PYTEST) -q -m "not slow" tests

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy helpdesk channels automation wsgi.py

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## bench: timing targets, written to bench/RESULTS.md
bench: venv system-deps
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) node_modules helpdesk/static/vendor
