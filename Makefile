# One entry point for people and CI. `make test` builds .venv from nothing when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: venv test lint typecheck unit demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples testbed
	$(BIN)/ruff format --check src tests bench examples testbed

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when it collected nothing; for this suite that means something is broken,
# so it is reported by name and fails the run instead of passing silently.
test: lint typecheck
	@d=$$(mktemp -d) && NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir "$$d"; rc=$$?; rm -rf "$$d"; exit $$rc
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: treating that as a failure" >&2; exit 1; fi; \
	exit $$rc

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

bench: $(STAMP)
	$(BIN)/python bench/request_overhead.py
	$(BIN)/python bench/import_time.py
	$(BIN)/python bench/cold_fetch.py
	$(BIN)/python bench/lifecycle.py
	$(BIN)/python bench/cli_time.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
