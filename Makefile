# Two commands do everything on a fresh machine: `make run` and `make test`.
PY_SYS ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8501

.PHONY: run test test-fast bench lint setup clean-cache model

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py --server.address $(HOST) --server.port $(PORT)

test: $(STAMP)
	$(VENV)/bin/ruff check mrrp tests benchmarks app.py pages
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not e2e"

bench: $(STAMP)
	$(PY) benchmarks/bench_slides.py

lint: $(STAMP)
	$(VENV)/bin/ruff check mrrp tests benchmarks app.py pages

clean-cache:
	rm -rf $${MRRP_CACHE_DIR:-$$HOME/.cache/mrrp}

# The bundled model: regenerate the synthetic cohort (if missing), train, evaluate, write docs/model_report.*
COHORT ?= data/cohort
model: $(STAMP)
	test -f $(COHORT)/manifest.csv || $(VENV)/bin/mrrp synth --n 800 --seed 7 --out $(COHORT) --progress
	$(PY) -m mrrp.train.report --cohort $(COHORT) --out assets/models/mrrp-demo
	$(PY) -m mrrp.train.ablations --manifest $(COHORT)/manifest.csv --out docs/ablations.json
	$(PY) -m mrrp.train.gbsg2 --out docs/gbsg2.json
	$(PY) -m mrrp.train.report --merge docs/ablations.json docs/gbsg2.json
