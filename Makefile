# The two commands a newcomer needs are `make demo` and `make test`; each sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint build validate deploy bench learn security chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nerloop demo

test: $(STAMP)
	$(BIN)/pytest

# Benchmarks (bench/README.md): each stage beside a bare reference, as ratios of medians; prints a
# table and writes bench/results.json. About 5 minutes on 2 quiet CPUs once the inputs are cached, plus
# about 5 for the latency rows (the stages at AWS's per-call latency; `python -m bench.run --latency none` skips them).
bench: build
	$(BIN)/python -m bench.run

# The learning benchmark (bench/README.md): the loop's selection beside random selection and full supervision,
# one demo run per seed, two at a time; writes bench/learning-<data set>.json (`nerloop report --learning` draws it).
# About a minute on the sample. DATASET: sample, conll2003-train-3000, conll2003-valid-3000 or a manifest's path.
DATASET ?= sample
SEEDS ?= 5
learn: $(STAMP)
	$(BIN)/python -m bench.learn --dataset $(DATASET) --seeds $(SEEDS) $(LEARN_ARGS)

# Duplicates, 20 % faults, 200 concurrent merges and a dead-letter redrive, each against a clean run.
chaos: $(STAMP)
	$(BIN)/nerloop chaos

# SAM CLI: no telemetry, and the venv first on PATH (sam build needs python3.11 there).
export SAM_CLI_TELEMETRY := 0
SAM := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sam
LAYER_PACKAGE := .aws-sam/build/CommonLayer/python/nerloop/__init__.py

lint: validate
	$(BIN)/ruff check .
	$(BIN)/mypy layers/common/nerloop local/nerloop_local bench

# The template: CloudFormation's linter, then SAM's own validation (which lints the transformed template).
validate: $(STAMP)
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint

# No container: the functions and the layer are built with the venv's Python 3.11 (samconfig.toml:
# cached, parallel). The layer must put the package at /opt/python/nerloop on Lambda.
# Then .pyc files: Lambda's file system is read-only, so without them every cold start compiles the
# layer from source. unchecked-hash: zip keeps file times to 2 s only, so time-stamped .pyc could be ignored.
build: $(STAMP)
	$(SAM) build
	$(BIN)/python -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build
	@test -f $(LAYER_PACKAGE) || { echo "sam build: $(LAYER_PACKAGE) is missing: the layer lacks the nerloop package" >&2; exit 1; }
	@echo "sam build: layer holds python/nerloop"

deploy: build
	$(SAM) deploy

# checkov on the template, bandit on the code. Their own venv: checkov pins dozens of packages
# (boto3 among them) that must not move the app's. Suppressions: .checkov.yaml and template.yaml
# Metadata (checkov), `# nosec <id> # reason` comments (bandit), each with its reason.
SECURITY_VENV := .venv-security
SECURITY_STAMP := $(SECURITY_VENV)/.installed

$(SECURITY_STAMP):
	$(PYTHON) -m venv $(SECURITY_VENV)
	$(SECURITY_VENV)/bin/pip install --quiet --upgrade pip
	$(SECURITY_VENV)/bin/pip install --quiet "checkov>=3.2,<4" "bandit[toml]>=1.7.9,<2"
	touch $(SECURITY_STAMP)

security: $(SECURITY_STAMP)
	$(SECURITY_VENV)/bin/checkov --config-file .checkov.yaml
	$(SECURITY_VENV)/bin/bandit --quiet -c pyproject.toml -r layers/common/nerloop functions local bench

clean:
	rm -rf $(VENV) $(SECURITY_VENV) .aws-sam .pytest_cache
