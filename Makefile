# labelloop — every target does its own set-up and can be run again at no cost.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_LS := .venv-labelstudio
BIN := $(VENV)/bin
UV := $(BIN)/uv
TOOLS_BIN := .cache/bin
KUBECONFIG_LOCAL := .cluster/kubeconfig
LABEL_STUDIO_VERSION := 1.23.2

.PHONY: help demo install install-labelstudio tools images lint format crds test e2e test-trainer test-fast cluster-up cluster-down operator bench bench-train bench-serve bench-al bench-tune bench-gpu bench-operator gpu-wheels clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

demo: install install-labelstudio ## the whole loop on one machine on DynaSent R1 (report in demo-report/)
	@$(BIN)/labelloop demo

# The stamp is newer than pyproject.toml once the environment matches it.
$(VENV)/.installed: pyproject.toml
	@echo "==> python environment ($(VENV)): labelloop with its dev, trainer and demo extras"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/pip install --quiet uv
	@$(UV) pip install --quiet --python $(BIN)/python -e '.[dev]'
	@touch $@

install: $(VENV)/.installed ## create .venv and install labelloop with its dev extras

# Label Studio pins its own Django stack, so it lives in an environment of its own.
$(VENV_LS)/.installed:
	@echo "==> Label Studio $(LABEL_STUDIO_VERSION) environment ($(VENV_LS))"
	@test -x $(VENV_LS)/bin/python || $(PYTHON) -m venv $(VENV_LS)
	@test -x $(VENV_LS)/bin/uv || $(VENV_LS)/bin/pip install --quiet uv
	@$(VENV_LS)/bin/uv pip install --quiet --python $(VENV_LS)/bin/python 'label-studio==$(LABEL_STUDIO_VERSION)'
	@touch $@

install-labelstudio: $(VENV_LS)/.installed ## install a local Label Studio server for tests and the demo

tools: ## build the local cluster's binaries (control plane, kubelet, kube-proxy, CoreDNS, kwok, helm) and install its Debian packages (once)
	@hack/build-cluster-tools.sh

images: install tools ## build every image from its Dockerfile with buildah (cached by content) and load it into the local cluster's node
	@hack/images.sh

lint: install ## ruff, mypy (strict on labelloop) and the import contract (pyproject's [tool.importlinter])
	@$(BIN)/ruff check operator trainer-image tests hack
	@$(BIN)/ruff format --check operator trainer-image tests hack
	@$(BIN)/mypy operator/labelloop trainer-image/labelloop_trainer tests
	@$(BIN)/lint-imports --no-cache

format: install ## apply ruff's fixes and formatting
	@$(BIN)/ruff check --fix operator trainer-image tests hack
	@$(BIN)/ruff format operator trainer-image tests hack

crds: install ## regenerate crds/ (and the chart's copy) from the API models
	@$(BIN)/labelloop crds --output crds --output charts/labelloop/crds

cluster-up: install tools images ## start the local cluster (control plane, kwok GPU nodes, a real node, the chart and examples/local/); kubeconfig in .cluster/kubeconfig
	@hack/cluster-up.sh

cluster-down: ## stop the local control plane
	@hack/cluster-down.sh

# Every namespace but labelloop-local, whose operator runs in its pod on the real node.
operator: cluster-up ## run the operator from the checkout against the local cluster (CRDs applied)
	@kubectl --kubeconfig $(KUBECONFIG_LOCAL) apply --server-side -f crds/ >/dev/null
	@KUBECONFIG=$(KUBECONFIG_LOCAL) $(BIN)/labelloop operator --log-format plain --namespace='!labelloop-local'

test: install install-labelstudio tools images ## the whole suite: unit, control plane, Label Studio, trainer, end to end on the real node
	@$(BIN)/pytest

e2e: install tools images ## the end-to-end scenario on the local cluster's real node: two rounds of the loop, rollouts, HA (table in bench-reports/e2e.json)
	@$(BIN)/pytest -m e2e

test-trainer: install ## trainer and prelabel-server tests on CPU (about 5 min)
	@$(BIN)/pytest tests/trainer tests/unit -k "trainer or serve"

test-fast: install ## unit tests only (no control plane, no Label Studio, no training, no fuzzing)
	@$(BIN)/pytest -m "not cluster and not labelstudio and not trainer and not fuzz"

bench: bench-train bench-serve bench-al bench-tune ## every benchmark; JSON reports in bench-reports/

bench-train: install ## trainer throughput and memory against a plain HF Trainer + peft (bench-reports/train.json)
	@$(BIN)/python trainer-image/benchmarks/bench_train.py

bench-tune: install ## held-out macro-F1 and wall time: the trainer's defaults, its search and the HF Trainer + peft recipe (bench-reports/tune.json)
	@$(BIN)/python trainer-image/benchmarks/bench_tune.py

bench-serve: install ## prelabel server at 8/64/256 clients and a 5,000-task request, batched against one by one; fast path's macro-F1 (bench-reports/serve.json)
	@$(BIN)/python trainer-image/benchmarks/bench_serve.py

# A GPU machine may have no .venv (torch, transformers and peft installed, the rest carried).
BENCH_GPU_PYTHON := $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))

bench-gpu: ## on a GPU: training MFU against a tuned HF Trainer, serving at 64/256 clients (bench-reports/gpu.json); without one a CPU smoke test
	@$(BENCH_GPU_PYTHON) trainer-image/benchmarks/bench_gpu.py

gpu-wheels: install ## download the wheels bench-gpu needs besides torch, transformers and peft into gpu-wheels/
	@$(BIN)/python trainer-image/benchmarks/bench_gpu.py --download-wheels gpu-wheels

# Needs the local cluster running (make cluster-up); everything it makes it deletes after.
bench-operator: install install-labelstudio ## the operator at 1,000 of each kind on the local cluster: convergence, RSS, API and Label Studio requests while idle (bench-reports/operator.json)
	@$(BIN)/python hack/bench_operator.py

bench-al: install ## accuracy against labels used: each active-learning strategy against random sampling, 10 seeds, with intervals (bench-reports/al.json)
	@$(BIN)/python trainer-image/benchmarks/bench_al.py

clean: cluster-down ## remove build outputs (keeps .venv and the Go tool cache)
	rm -rf .cluster bench-reports demo-report
