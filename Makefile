# sipwave: `make demo` runs the main job, `make test` runs every test. Both set up what they
# need on a fresh Debian machine (apt packages, a virtualenv, the lab image).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
LAB_ENV := . lab/env.sh && export PATH="$(CURDIR)/$(BIN):$$PATH"
BENCH ?=
MOLECULE_JOBS ?= 2
# Longest first (measured on the 2-CPU lab machine: provisioning 1,100 s, migration 650 s,
# asterisk 625 s), so that the short ones fill the other slot instead of waiting at the end.
# Any scenario not named here runs after these.
SCENARIOS_LONGEST_FIRST := provisioning migration asterisk
SCENARIOS_FOUND := $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
SCENARIOS ?= $(filter $(SCENARIOS_FOUND),$(SCENARIOS_LONGEST_FIRST)) \
	$(filter-out $(SCENARIOS_LONGEST_FIRST),$(SCENARIOS_FOUND))
# postgresql: the server binaries for the unit tests' throwaway cluster (engine and routing
# view on PostgreSQL; the tests start their own cluster on a Unix socket, no TCP).
# apache2-utils: ab, the load generator of the provisioning benchmark (loopback only).
# chromium: renders the cost report's page headless in its test (a file; no network).
HOST_PACKAGES := podman runc debootstrap sip-tester sqlite3 python3-venv postgresql apache2-utils \
	chromium

# promtool, for the unit tests of the alert rules (`promtool test rules`): taken out of Debian's
# prometheus package with apt-get download, so that the host runs no Prometheus server.
PROMTOOL := .cache/tools/usr/bin/promtool

.PHONY: help host-deps venv image lint unit molecule test lab-up lab-down demo bench ksr-api

help:
	@echo "make demo      deploy the lab platform and show what happened"
	@echo "make test      lint, unit tests and every Molecule scenario"
	@echo "make bench     benchmarks (ratios against a baseline measured in the same run);"
	@echo "               BENCH=\"register ...\" runs only those named"
	@echo "make lab-up / lab-down    start or remove the lab containers"

host-deps:
	@missing=""; for p in $(HOST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing host packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The project itself, editable (the `sipwave` command, .venv/bin/sipwave, runs this checkout's
# playbooks), with its development and test toolchain.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

image: host-deps
	bash lab/image/build.sh

# Containers left over from a crashed run hold their 127.x:5060 (host networking): remove
# the project's own of one kind (demo, molecule, bench), found by label.
lab-clean-%: host-deps
	@$(LAB_ENV) && ids=$$(podman ps -aq --filter label=io.sipwave.lab=$*); \
	if [ -n "$$ids" ]; then echo "removing stale $* containers"; podman rm -f $$ids >/dev/null; fi

lint: venv
	$(BIN)/yamllint -s .
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(LAB_ENV) && ansible-lint --profile production

$(PROMTOOL): | host-deps
	@d=$$(mktemp -d) && chmod 755 "$$d" && \
	{ (cd "$$d" && apt-get download -qq prometheus 2>/dev/null) || \
	  { apt-get update -qq && (cd "$$d" && apt-get download -qq prometheus); }; } && \
	mkdir -p .cache/tools && dpkg-deb -x "$$d"/prometheus_*.deb .cache/tools && rm -rf "$$d" && \
	test -x $@

unit: venv $(PROMTOOL)
	SIPWAVE_PROMTOOL=$(CURDIR)/$(PROMTOOL) $(BIN)/pytest -q tests/unit

# Scenarios run MOLECULE_JOBS at a time (each on its own 127.0.2x.0/24, so they never meet);
# each one's output goes to .cache/molecule/<scenario>.log and is shown when it fails. A lock
# per scenario keeps two checkouts from running the same scenario (same container names and
# addresses) at once; a scenario's leftovers from a crashed run are removed by name first.
# The failing tests of every scenario are repeated at the very end (what a CI page shows).
# The demo lab shares the host's network: scenarios that check which addresses their daemons
# listen on would see its daemons too.
molecule: venv image
	@$(LAB_ENV) && if [ -n "$$(podman ps -q --filter label=io.sipwave.lab=demo)" ]; then \
	  echo "the demo lab is running (its daemons share the host's network): make lab-down first" >&2; \
	  exit 1; fi
	@$(LAB_ENV) && mkdir -p .cache/molecule && \
	rc=0; printf '%s\n' $(SCENARIOS) | xargs -P $(MOLECULE_JOBS) -I{} bash tools/run_scenario.sh {} \
	  || rc=$$?; \
	for s in $(SCENARIOS); do cat .cache/molecule/$$s.failed 2>/dev/null || true; done; exit $$rc

test: host-deps venv lint unit molecule

lab-up: venv image lab-clean-demo
	$(LAB_ENV) && ansible-playbook playbooks/lab.yml

lab-down: venv
	$(LAB_ENV) && ansible-playbook playbooks/lab.yml -e lab_state=absent

# The lab's wave1 is on 2026-11-16: the demo sends its notice two weeks before, in the
# notice's window (notify_wave.yml refuses a notice on or after the wave date).
DEMO_NOTICE_DAY := 2026-11-02
demo: lab-up
	$(LAB_ENV) && ansible-playbook playbooks/site.yml
	$(LAB_ENV) && ansible-playbook playbooks/legacy_platform.yml playbooks/mail_server.yml
	$(LAB_ENV) && ansible-playbook playbooks/notify_wave.yml -e wave=wave1 -e notification=notice \
	  -e sipwave_today=$(DEMO_NOTICE_DAY)
	$(LAB_ENV) && ansible-playbook playbooks/migrate_wave.yml -e wave=wave1
	$(LAB_ENV) && ansible-playbook playbooks/record_consent.yml -e login=481200000 -e decision=migrate \
	  -e apply=true -e wave=wave1
	$(LAB_ENV) && ansible-playbook playbooks/notify_wave.yml -e wave=wave1 -e notification=phase2 \
	  -e account=481200000
	$(LAB_ENV) && ansible-playbook playbooks/rollback_wave.yml -e wave=wave1 -e account=481200002
	$(LAB_ENV) && $(PY) tools/demo_report.py

bench: venv image lab-clean-bench
	$(LAB_ENV) && $(PY) bench/run.py $(BENCH)
