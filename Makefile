# Two commands do everything on a fresh machine: `make run` and `make test`.
PY_SYS ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8501

.PHONY: run test test-fast bench lint format setup clean-cache model model-selection

$(STAMP): requirements.txt pyproject.toml setup.py
	test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py --server.address $(HOST) --server.port $(PORT)

test: $(STAMP)
	$(VENV)/bin/ruff format --check mrrp tests benchmarks tools setup.py app.py pages
	$(VENV)/bin/ruff check mrrp tests benchmarks tools setup.py app.py pages
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not e2e"

# Speed and memory targets: each script measures its baseline in the same run and appends to
# benchmarks/results.md (bench_model and bench_explain need data/cohort's cached features: make model).
bench: $(STAMP)
	$(PY) benchmarks/bench_slides.py
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_explain.py
	$(PY) benchmarks/bench_dashboard.py
	$(PY) benchmarks/bench_pcr.py

lint: $(STAMP)
	$(VENV)/bin/ruff format --check mrrp tests benchmarks tools setup.py app.py pages
	$(VENV)/bin/ruff check mrrp tests benchmarks tools setup.py app.py pages

format: $(STAMP)
	$(VENV)/bin/ruff format mrrp tests benchmarks tools setup.py app.py pages

clean-cache:
	rm -rf $${MRRP_CACHE_DIR:-$$HOME/.cache/mrrp}

# The bundled models: regenerate the synthetic cohort (if missing), train, evaluate, ablations, GBSG2,
# explanation faithfulness, and the pCR model; writes assets/models/* and docs/*_report.*
COHORT ?= data/cohort
model: $(STAMP)
	test -f $(COHORT)/manifest.csv || $(VENV)/bin/mrrp synth --n 800 --seed 7 --out $(COHORT) --progress
	$(PY) -m mrrp.train.report --cohort $(COHORT) --out assets/models/mrrp-demo
	$(PY) -m mrrp.train.ablations --manifest $(COHORT)/manifest.csv --out docs/ablations.json
	$(PY) -m mrrp.train.gbsg2 --out docs/gbsg2.json
	$(PY) -m mrrp.train.report --merge docs/ablations.json docs/gbsg2.json
	$(PY) -m mrrp.evaluate.faithfulness --model assets/models/mrrp-demo --cohort $(COHORT) --out docs/explanations.json
	$(PY) -m mrrp.pcr.build --out assets/models/pcr-demo --report docs/pcr_report

# How the bundled model's settings were chosen (out-of-fold C on the training split; ~20 min)
model-selection: $(STAMP)
	$(PY) -m mrrp.train.selection --manifest $(COHORT)/manifest.csv --out docs/model_selection.json
