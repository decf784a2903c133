# xiuhua: the two commands a newcomer needs are `make demo` and `make test`.
# Both create (or reuse) .venv, install the project with the extras they need, and
# install missing system packages with apt-get (see scripts/system-deps.sh). The demo
# needs only what it runs (agent, hub, sound); the tests add training (torch) and tools.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= edge,hub,ocr,train,dev,audio
RUN_EXTRAS ?= edge,hub,audio
STAMP := $(VENV)/.xiuhua-installed
RUN_STAMP := $(VENV)/.xiuhua-run-installed
PYTEST_ARGS ?=
# Test files run on this many processes (pytest-xdist); a file's tests stay together on
# one, since they share fixtures and brokers. 2 fits the project's 2-core machines; 0 runs
# them in pytest's own process, one after another.
PYTEST_WORKERS ?= 2

.PHONY: demo test check format schemas system-deps venv venv-run model eval-model eval-real clean \
	bench-edge bench-outbox bench-hub bench-fleet bench-console bench-citizens bench-registry bench-notices bench-voice bench-live fuzz-api audit

demo: venv-run
	$(BIN)/xiuhua demo $(DEMO_ARGS)

test: venv check
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# schemathesis against a running hub for ten minutes with a fresh seed (`make test`
# runs the same test for a minute with a fixed one).
fuzz-api: venv
	XH_FUZZ_SECONDS=600 XH_FUZZ_SEED=random $(BIN)/pytest -q tests/security/test_api_fuzz.py

# Known vulnerabilities in the installed dependencies (pip-audit, Apache-2.0, installed
# on demand). It asks PyPI's per-release JSON or OSV: it needs a machine that reaches
# them (the project's build machines do not).
audit: venv
	$(BIN)/python -m pip install -q pip-audit
	$(BIN)/pip-audit --strict --skip-editable --progress-spinner off

check: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

system-deps:
	bash scripts/system-deps.sh

venv: system-deps $(STAMP)

venv-run: system-deps $(RUN_STAMP)

# torch==2.13.0 (the `train` extra) is pinned: on the project's machines pip takes
# a local CPU wheel for it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP) $(RUN_STAMP)

# What the demo runs, without torch (training) or the test tools.
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(RUN_EXTRAS)]'
	touch $(RUN_STAMP)

schemas: venv
	$(BIN)/python -m edge_agent.protocol docs/protocol

# Evaluate the shipped detector on 1,000 held-out scenes + 200 empty ones (one JSON line).
eval-model: venv
	$(BIN)/python bench/model_eval.py

# Score a model on real labelled footage (YOLO format: DATA/images, DATA/labels, DATA/data.yaml
# or classes.txt): make eval-real DATA=DIR [MODEL=DIR] [EVAL_ARGS="--labels person,car"].
MODEL ?= models/general-detector
eval-real: venv-run
	@test -n "$(DATA)" || { echo "usage: make eval-real DATA=DIR [MODEL=DIR]" >&2; exit 2; }
	$(BIN)/edge-agent eval --model $(MODEL) --data $(DATA) $(EVAL_ARGS)

# Regenerate data and retrain the detector from scratch on the CPU (hours on 2 cores;
# models/train/gpu_train.sh does the same on a CUDA machine in under 9 minutes).
model: venv
	rm -rf runs/data
	$(BIN)/python models/train/dataset.py runs/data --train 6000 --val 500
	$(BIN)/python models/train/train.py --data runs/data --out runs/street --max-minutes 240
	cp runs/street/model.onnx models/street-detector/
	$(BIN)/python models/train/evaluate.py --out runs/street/eval.json
	$(BIN)/python models/train/manifest.py models/street-detector \
		--train-log runs/street/train_log.json --eval runs/street/eval.json

# Benchmarks: each prints one JSON line with a baseline measured in the same run.
# Run them on a quiet machine; each takes a few minutes.
bench-edge: venv
	$(BIN)/python bench/edge_pipeline.py

bench-outbox: venv
	$(BIN)/python bench/outbox.py

bench-hub: venv
	$(BIN)/python bench/hub_ingest.py

bench-fleet: venv
	$(BIN)/python bench/fleet.py

bench-console: venv
	$(BIN)/python bench/console.py

# 1,000 Open311 reports to a served hub: all at once, then 25 in flight; SQLite and PostgreSQL.
bench-citizens: venv
	$(BIN)/python bench/citizens.py
	$(BIN)/python bench/citizens.py --concurrency 25
	$(BIN)/python bench/citizens.py --db postgresql
	$(BIN)/python bench/citizens.py --db postgresql --concurrency 25

# 25,935 service objects (~1% bad rows) imported from CSV and XLSX, and name searches;
# searches on PostgreSQL too.
bench-registry: venv
	$(BIN)/python bench/registry.py --pg

# 50,000 texts through a served hub to the stand-in SMS gateway, the hub SIGKILLed half
# way and restarted: none lost or duplicated, >= 200 a second; SQLite and PostgreSQL.
bench-notices: venv
	$(BIN)/python bench/notices.py
	$(BIN)/python bench/notices.py --db postgresql

# 高空喊话: release of the talk button to the unit's first sample, a 5 s message, p95
# <= 1.5 s (real Mosquitto, serve and the agent on loopback; baseline raw MQTT + HTTP).
bench-voice: venv
	$(BIN)/python bench/voice.py

# Live view: a frame captured on the unit to a viewer's MJPEG part, 3 viewers of one camera
# at 5 fps, p95 <= 700 ms and one unit stream (real Mosquitto, serve, the agent; loopback).
bench-live: venv
	$(BIN)/python bench/live.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
