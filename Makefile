# OpenLookout: `make demo` runs the main job, `make test` runs everything CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
PIP_QUIET := 2>&1 | grep -v -e "is ignored: it is neither" -e "^$$" || true
PY312 := .tools/py312/python3.12
SAM_ENV := PATH=$(CURDIR)/.tools/py312:$(CURDIR)/$(SAM_VENV)/bin:$$PATH SAM_CLI_TELEMETRY=0
DATA ?= ../shared/datasets/mvtec-bottle
PORT ?= 3000
# The training function is a container image: without a Docker daemon, build everything else.
SAM_BUILD_FLAGS ?= $(if $(shell docker info >/dev/null 2>&1 && echo yes),,--exclude TrainModelFunction)

.PHONY: help install requirements demo serve test lint typecheck template test-python integration bench bench-washers bench-suite bench-api reliability console console-test deploy-console clean distclean docker docker-stop lambda-images sam-build-local sam-local test-integration localstack-probe

help:
	@echo "make install      create .venv (openlookout, torch CPU, test tools), node_modules, SAM CLI"
	@echo "make demo         build the console, start the local service and run the boto3 walkthrough against it"
	@echo "make serve        run 'openlookout serve' on 127.0.0.1:$(PORT) (data in ./.openlookout); console at /console/"
	@echo "make console      build the web console (console/dist) after a change to console/"
	@echo "make deploy-console  publish the console to a deployed stack (STACK=openlookout REGION=...)"
	@echo "make test         lint, type-check, validate and build the template, run all tests"
	@echo "make requirements write the layers' and the training image's requirements from pyproject.toml"
	@echo "make integration  run the contract tests against a deployed stack (OPENLOOKOUT_ENDPOINT)"
	@echo "make docker       start a project-local Docker daemon (.docker/) unless one answers; make docker-stop"
	@echo "make lambda-images build the Lambda base images and the CPU training image (no registry)"
	@echo "make sam-local    the template in Lambda containers (sam local start-api/start-lambda) on 127.0.0.1:$(PORT)"
	@echo "make test-integration the boto3 integration suite against make sam-local (INTEGRATION_ARGS=-m smoke: CI's subset)"
	@echo "make bench        engine benchmark on DATA=$(DATA) (CONFIG='{...}' overrides EngineConfig)"
	@echo "make bench-washers engine benchmark on the generated washers (small defects)"
	@echo "make bench-suite  the engine on every data set, unsupervised and few-shot, beside a plain PatchCore"
	@echo "make bench-api    the whole flow through boto3 against openlookout serve, on DATA"
	@echo "make clean        remove build output and caches"
	@echo "make distclean    clean, plus everything install, the service and the README made (.venv*, .tools, node_modules, .openlookout, demo-output, scratch)"

# ------------------------------------------------------------------ installation
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip $(PIP_QUIET)
	# torch first and pinned: the CPU build; a bare `torch` would resolve a multi-GB CUDA build.
	$(VENV)/bin/pip install -q torch==2.13.0 $(PIP_QUIET)
	$(VENV)/bin/pip install -q -e '.[train,local,dev]' $(PIP_QUIET)
	$(PY) -c "import openlookout, torch, onnxruntime, moto, boto3; boto3.client('lookoutvision', region_name='us-east-1')"
	touch $@

node_modules/.installed: package.json package-lock.json
	@command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(SAM_VENV)/.installed:
	test -d $(SAM_VENV) || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q aws-sam-cli $(PIP_QUIET)
	$(SAM_VENV)/bin/sam --version
	touch $@

# The Lambda runtime is python3.12; `sam build` needs that interpreter on PATH (pyenv ships it).
$(PY312):
	mkdir -p $(dir $@)
	ln -sf "$$(pyenv prefix 3.12.1 2>/dev/null || dirname $$(dirname $$(command -v python3.12)))/bin/python3.12" $@
	$@ --version

java-runtime:
	@command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; }

# The web console: its own package.json and lock file; built output (console/dist) is not committed.
CONSOLE_SOURCES := $(wildcard console/src/* console/static/* console/test/*) console/build.mjs console/tsconfig.json
console/node_modules/.installed: console/package.json console/package-lock.json
	@command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	cd console && npm ci --no-audit --no-fund --loglevel=error
	touch $@

console/dist/index.html: console/node_modules/.installed $(CONSOLE_SOURCES)
	cd console && node build.mjs

console: console/dist/index.html

# The built console into a deployed stack's CloudFront bucket, with config.json (the stack's endpoint
# and buckets). STACK and REGION as given to `sam deploy`.
STACK ?= openlookout
deploy-console: console $(VENV)/.installed
	$(PY) -m openlookout.tools.publish_console --stack $(STACK) $(if $(REGION),--region $(REGION))

# A real browser for the console's end-to-end test (Playwright drives it through executable_path).
chromium-browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

install: $(VENV)/.installed node_modules/.installed $(SAM_VENV)/.installed $(PY312) java-runtime console chromium-browser

# The layers' and the training image's requirement files, from pyproject.toml (one source of versions).
requirements:
	$(PYTHON) scripts/requirements.py

# ------------------------------------------------------------------ running
# Both build the web console first (when console/ changed): `make serve` shows the demo's project at /console/.
demo: $(VENV)/.installed node_modules/.installed java-runtime console
	$(PY) examples/walkthrough.py --start-service

serve: $(VENV)/.installed node_modules/.installed java-runtime console
	$(VENV)/bin/openlookout serve --port $(PORT) --data-dir .openlookout

# ------------------------------------------------------------------ checks
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check openlookout

typecheck: $(VENV)/.installed console/node_modules/.installed
	$(VENV)/bin/mypy
	cd console && npx --no-install tsc --noEmit -p .

# The console's own unit tests (node:test); the browser test is tests/e2e, run by test-python.
console-test: console
	cd console && node --test dist-test/

template: install
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM_ENV) sam validate --lint
	for f in statemachines/*.asl.json; do [ -e "$$f" ] || continue; npx --no-install asl-validator --json-path "$$f" || exit 1; done
	$(SAM_ENV) sam build --parallel $(SAM_BUILD_FLAGS)

test-python: install
	$(PY) -m pytest -m "not slow and not integration" -rs -p no:cacheprovider $(PYTEST_ARGS)

test: lint typecheck template console-test test-python

# OPENLOOKOUT_ENDPOINT=https://<api-id>.execute-api.<region>.amazonaws.com/v1 (the stack's ApiEndpoint output)
integration: install
	$(PY) -m pytest tests/integration/test_deployed.py $(PYTEST_ARGS)

# ------------------------------------------------------------------ Docker and SAM (README, "Develop with SAM")
# The daemon to use: the caller's when one answers, else the project's own (docker/daemon.sh).
DOCKER_ENV = DOCKER_HOST="$$(docker/daemon.sh host)"

docker:
	docker/daemon.sh start

docker-stop:
	docker/daemon.sh stop

lambda-images: docker $(SAM_VENV)/.installed
	$(DOCKER_ENV) docker/lambda-base.sh 3.12
	$(DOCKER_ENV) docker/training-image.sh

# The zip functions and layers; the training function runs on the image lambda-images built.
sam-build-local: install
	$(SAM_ENV) sam build --parallel --exclude TrainModelFunction

sam-local: lambda-images sam-build-local
	$(DOCKER_ENV) $(SAM_ENV) $(PY) docker/sam_local.py --port $(PORT)

# What LocalStack (host mode, its own venv on Python 3.13) serves here: one line per service.
.venv-ls/.installed:
	"$$(pyenv prefix 3.13.0)/bin/python3.13" -m venv .venv-ls
	.venv-ls/bin/pip install -q 'localstack-core[runtime]==4.14.0' 'cbor2<6' 'pyopenssl==25.3.0' 'cryptography>=45.0.7,<47' service_identity $(PIP_QUIET)
	touch $@

localstack-probe: lambda-images .venv-ls/.installed
	$(DOCKER_ENV) $(PY) docker/localstack_probe.py

test-integration: lambda-images sam-build-local
	$(DOCKER_ENV) $(SAM_ENV) $(PY) -m pytest tests/integration/test_sam_local.py -p no:cacheprovider $(INTEGRATION_ARGS)

bench: $(VENV)/.installed
	$(PY) bench/engine.py --data $(DATA) $(if $(CONFIG),--config '$(CONFIG)')

# Small defects (2 px scratches, 10 px dents, stains on 256 px images): the built-in washers at benchmark size.
WASHERS := build/washers
bench-washers: $(VENV)/.installed
	rm -rf $(WASHERS)
	$(PY) -m openlookout.examples $(WASHERS) --normal 200 --test-normal 60 --per-defect 30 --train-per-defect 0 --seed 11
	$(PY) bench/engine.py --data $(WASHERS) $(if $(CONFIG),--config '$(CONFIG)')

# Every data set beside this repository (../shared/datasets) plus the washers, in three protocols
# (unsupervised; 10 labelled defects with masks; with image labels only), and the plain PatchCore
# reference (../shared/tools/baseline, run from its folder; it needs scikit-learn) in the same run.
bench-suite: $(VENV)/.installed
	$(VENV)/bin/pip install -q scikit-learn $(PIP_QUIET)
	$(PY) bench/suite.py $(if $(CONFIG),--config '$(CONFIG)')

# The product through boto3: import, CreateModel -> TRAINED, hosting, DetectAnomalies latency and AUROC.
bench-api: install
	$(PY) bench/api_flow.py --data $(DATA)

# The reliability suite (about 2 minutes on 2 cores; not in `make test`): one line per check.
reliability: install
	$(PY) bench/reliability.py --json build/reliability.json

# The edge agent's overhead: DetectAnomalies p50 over its Unix socket vs the graph alone, 512 px bitmaps.
.PHONY: bench-edge bench-devices
bench-edge: $(VENV)/.installed
	$(PY) bench/edge_agent.py --data $(DATA)

# On a CUDA machine: train DATA on the GPU and on the CPU and compare the two models.
bench-devices: $(VENV)/.installed
	$(PY) bench/devices.py --data $(DATA) --protocol unsupervised --protocol fewshot-mask

clean:
	rm -rf .aws-sam .mypy_cache .ruff_cache .pytest_cache build

# Everything `make install`, `make serve` and `make demo` made: back to a fresh clone (plus your own files).
.PHONY: distclean
distclean: clean
	rm -rf $(VENV) $(SAM_VENV) .venv-ls .tools node_modules .openlookout .sam-local demo-output scratch openlookout.egg-info
