# inventium.logical_replication — the two commands a person needs:
#   make lab    build (or reconfigure) the lab on this machine
#   make test   run every check: lint, sanity, unit, integration, molecule
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
INVENTORY ?= inventory/lab
ANSIBLE_ARGS ?=
# The lab installs packages and starts services: as a non-root user, become
# root through sudo (asks for the sudo password; just press Enter when sudo
# needs none). Override with BECOME= to manage privileges yourself.
BECOME ?= $(if $(filter 0,$(shell id -u)),,--become --ask-become-pass)
# Stages of `make test` (comma separated); see tests/run_all.py.
STAGES ?=

VENV_STAMP := $(VENV)/.stamp-runtime
TEST_STAMP := $(VENV)/.stamp-test

.PHONY: help venv test-venv lab lab-down status workload test lint sanity unit integration molecule build clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/bin/python:
	@scripts/ensure-venv.sh "$(PYTHON)" "$(VENV)"

$(VENV_STAMP): requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	@touch $@

$(TEST_STAMP): requirements-test.txt requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r requirements-test.txt
	@touch $(VENV_STAMP) $@

venv: $(VENV_STAMP) ## create .venv with the lab's runtime requirements

test-venv: $(TEST_STAMP) ## add the test and lint tooling to .venv

lab: venv ## build or reconfigure the lab (ansible-playbook site.yml)
	$(VENV)/bin/ansible-playbook site.yml -i $(INVENTORY) $(BECOME) $(ANSIBLE_ARGS)

lab-down: venv ## tear the lab down (volumes kept; PURGE=1 removes them and .lab/)
	$(VENV)/bin/ansible-playbook playbooks/teardown.yml -i $(INVENTORY) $(BECOME) $(if $(PURGE),-e teardown_purge=true) $(ANSIBLE_ARGS)

.PHONY: rehearse-upgrade
rehearse-upgrade: venv ## rehearse a 15 -> 17 upgrade on the lab (15 -> 18: README): switchover + switchback under writes, downtime, proof
	$(VENV)/bin/ansible-playbook playbooks/upgrade_rehearsal.yml -i $(INVENTORY) $(BECOME) $(ANSIBLE_ARGS)

# scripts/status.sh exits 0 healthy, 1 warnings, 2 critical; make turns any non-zero exit of a
# recipe into its own exit 2, so `make status` exits 0 when healthy and 2 otherwise.
status: venv ## replication status of every node; exit 0 healthy, else 2 (scripts/status.sh: 0/1/2)
	ANSIBLE_PLAYBOOK=$(VENV)/bin/ansible-playbook scripts/status.sh -i $(INVENTORY) $(BECOME) $(ANSIBLE_ARGS)

# The workload names come from one place, the choices of workload_name in the role's argument
# spec; an unknown W= stops here with one line instead of Ansible's dump of the whole spec.
comma := ,
WORKLOADS := $(shell sed -n '/^      workload_name:/,/choices:/s/^ *choices: *\[\(.*\)\]/\1/p' roles/workload/meta/argument_specs.yml)
ifneq ($(filter workload,$(MAKECMDGOALS)),)
ifeq ($(filter $(W),$(subst $(comma),,$(WORKLOADS))),)
$(error unknown workload '$(W)': choose one of $(WORKLOADS) (make workload W=<name>))
endif
endif

workload: venv ## run a workload on the lab: make workload W=<name> (an unknown name lists them)
	$(VENV)/bin/ansible-playbook playbooks/workload.yml -i $(INVENTORY) -e workload=$(W) $(ANSIBLE_ARGS)

# Minutes of metrics `make report` covers.
MINUTES ?= 15
# make experiment E=<name> [REPEAT=N]: one experiment (experiments/<name>.yml);
# without E, the list of experiments with their questions.
E ?=
REPEAT ?=
.PHONY: experiment
experiment: venv ## run an experiment on the lab: make experiment E=<name> [REPEAT=N]; no E: list them
ifeq ($(strip $(E)),)
	@echo "Experiments (make experiment E=<name> [REPEAT=N]; results in .lab/experiments/<name>/latest/):"
	@$(VENV)/bin/python -c 'import glob, os, yaml; [print("  %-18s %s" % (os.path.basename(f)[:-4], yaml.safe_load(open(f))["question"])) for f in sorted(glob.glob("experiments/*.yml"))]'
else
	$(VENV)/bin/ansible-playbook playbooks/experiment.yml -i $(INVENTORY) -e experiment=$(E) $(if $(REPEAT),-e experiment_repeat=$(REPEAT)) $(BECOME) $(ANSIBLE_ARGS)
endif

.PHONY: report
report: venv ## PNG plots + markdown of the last MINUTES (default 15) minutes of metrics in .lab/report/
	$(VENV)/bin/python scripts/report.py --endpoints .lab/endpoints.json --minutes $(MINUTES) --out .lab/report

test: test-venv ## run all checks; ends with "N passed, N failed"
	$(VENV)/bin/python tests/run_all.py $(if $(STAGES),--stages $(STAGES))

lint: test-venv ## ruff, ansible-lint and ansible-test sanity only
	$(VENV)/bin/python tests/run_all.py --stages ruff,ansible-lint,sanity

unit: test-venv ## unit tests only
	$(VENV)/bin/python tests/run_all.py --stages unit

integration: test-venv ## integration tests only (real PostgreSQL servers)
	$(VENV)/bin/python tests/run_all.py --stages prepare,integration

.PHONY: test-lab18
test-lab18: test-venv ## opt-in: build the PostgreSQL 18 lab (inventory/lab18) and fail it over (tests marked lab18)
	$(VENV)/bin/python tests/run_all.py --stages integration-lab18

molecule: test-venv ## Molecule scenarios only
	$(VENV)/bin/python tests/run_all.py --stages prepare,molecule

build: venv ## build the collection tarball (ansible-galaxy collection build)
	$(VENV)/bin/ansible-galaxy collection build --force --output-path .build/dist .

clean: ## remove build artefacts and caches (keeps .venv and .lab)
	rm -rf .build tests/output .pytest_cache .ruff_cache
