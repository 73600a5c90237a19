# The two commands a user needs: `make run` and `make test`. Both install what
# is missing (Debian packages, the Python venv, the tiny model) and are fast
# when everything is already there.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT := $(abspath .)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
TINY_MODEL := $(ROOT)/data/models/tiny-elixir
STAMPS := $(ROOT)/.make

# Debian's yaws lives outside the default code path; jiffy is on it already.
export ERL_LIBS := /usr/lib/yaws
export PYTHONDONTWRITEBYTECODE := 1
# The BEAM's schedulers spin while idle by default; on a small machine that spin
# takes CPU from the Python worker generating tokens beside it.
export ERL_FLAGS ?= +sbwt none +sbwtdcpu none +sbwtdio none

APT_PACKAGES := elixir erlang-dev erlang-yaws erlang-jiffy erlang-src chromium bubblewrap nodejs
# nodejs brings npm where it comes from NodeSource; with Debian's own nodejs, add npm.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help run test setup apt venv model assets compile proto lint bench test-python test-elixir test-e2e clean

help:
	@echo "make run    - install what is missing and start the host on http://127.0.0.1:4000"
	@echo "make test   - install what is missing and run every test suite"
	@echo "make proto  - regenerate code from proto/worker.proto"
	@echo "make lint   - ruff and mix format --check-formatted"
	@echo "make bench  - run the benchmarks under bench/ (one JSON line each)"

setup: apt venv model assets compile

# Installs only the Debian packages that are missing.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

venv: $(STAMPS)/venv

$(STAMPS)/venv: python_worker/requirements.txt
	@mkdir -p $(STAMPS)
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r python_worker/requirements.txt
	@touch $@

model: $(TINY_MODEL)/config.json

$(TINY_MODEL)/config.json: | $(STAMPS)/venv
	$(PY) scripts/make_tiny_model.py --out $(TINY_MODEL)

# The web UI's front-end libraries: npm installs exactly what
# elixir/assets/package-lock.json pins, and the files the pages load are
# copied to elixir/priv/static/vendor, which the host serves (never a CDN).
ASSETS := $(ROOT)/elixir/assets
VENDOR := $(ROOT)/elixir/priv/static/vendor

assets: $(VENDOR)/.stamp

$(VENDOR)/.stamp: $(ASSETS)/package.json $(ASSETS)/package-lock.json | apt
	cd $(ASSETS) && npm ci --no-audit --no-fund --loglevel=error
	rm -rf $(VENDOR).tmp && mkdir -p $(VENDOR).tmp/highlight
	cp $(ASSETS)/node_modules/htmx.org/dist/htmx.min.js $(VENDOR).tmp/
	cp $(ASSETS)/node_modules/htmx-ext-sse/dist/sse.min.js $(VENDOR).tmp/htmx-ext-sse.js
	cp $(ASSETS)/node_modules/markdown-it/dist/markdown-it.min.js $(VENDOR).tmp/
	cp $(ASSETS)/node_modules/dompurify/dist/purify.min.js $(VENDOR).tmp/
	cp $(ASSETS)/node_modules/@highlightjs/cdn-assets/highlight.min.js \
	   $(ASSETS)/node_modules/@highlightjs/cdn-assets/languages/elixir.min.js \
	   $(ASSETS)/node_modules/@highlightjs/cdn-assets/styles/github.min.css $(VENDOR).tmp/highlight/
	rm -rf $(VENDOR) && mv $(VENDOR).tmp $(VENDOR) && touch $@

compile: apt
	cd elixir && mix compile

proto: $(STAMPS)/venv
	scripts/gen_proto.sh
	$(PY) scripts/make_golden_vectors.py

run: setup
	@echo "devstral-elixir: open http://$${HTTP_HOST:-127.0.0.1}:$${HTTP_PORT:-4000}/ (the assistant; /jobs, /datasets, /adapters)"
	cd elixir && exec mix run --no-halt

test-python: setup
	$(PY) -m pytest python_worker/tests -q

test-elixir: setup
	cd elixir && mix test

test-e2e: setup
	$(PY) -m pytest tests -q

# Every suite runs even when an earlier one fails; the exit code says if any did.
test: setup
	@status=0; \
	$(MAKE) --no-print-directory test-python || status=1; \
	$(MAKE) --no-print-directory test-elixir || status=1; \
	$(MAKE) --no-print-directory test-e2e || status=1; \
	exit $$status

lint: $(STAMPS)/venv
	$(VENV)/bin/ruff check python_worker scripts tests bench
	$(VENV)/bin/ruff format --check python_worker scripts tests bench
	cd elixir && mix format --check-formatted

bench: setup
	@for b in bench/*.py; do case $$b in bench/results.py|bench/sse_client.py) continue;; esac; echo "== $$b" >&2; $(PY) $$b || exit 1; done

clean:
	rm -rf elixir/_build $(STAMPS) $(VENDOR) $(ASSETS)/node_modules
