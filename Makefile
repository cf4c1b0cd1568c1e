# nct-md: two set-up commands, `make demo` and `make test`; both build .venv on first use.
# TORCH pins the PyTorch build in one place: override for a CUDA build, e.g.
#   make test TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench browser clean

$(STAMP): setup.cfg pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[test,viz,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nct-md demo --data data --out demo-output

test: $(STAMP) browser
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow" tests
	cd tutorials && NCT_MD_QUICK=1 OMP_NUM_THREADS=1 ../$(BIN)/python -m pytest -q --nbmake .

# The HTML test drives headless Chromium (Debian package); installed here when we are root.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
	  || echo "chromium is not installed: the browser test will be skipped"

test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m slow tests

lint: $(STAMP)
	$(BIN)/ruff check nct_md tests bench tutorials

bench: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) demo-output .pytest_cache build *.egg-info
