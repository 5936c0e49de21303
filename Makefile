# One entry point for people and CI. `make test` builds .venv from nothing when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: venv test lint typecheck unit test-pythons dist demo bench clean

venv: $(STAMP)

# The development tools are the `dev` dependency group in pyproject.toml (PEP 735), which is
# never published. uv installs them: pip's download cache stays empty where the package index
# sends no cache headers, uv's does not, so the venvs of `make test-pythons` cost seconds after
# the first. It compiles the bytecode as pip would: where PYTHONDONTWRITEBYTECODE is set, every
# process (each MLflow server, CLI run and forked child in the tests) would otherwise compile
# MLflow from source again. Without uv, `pip install -e ".[all]" --group dev` (pip >= 25.1).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1" "uv>=0.9"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e ".[all]" --group dev
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples testbed tools
	$(BIN)/ruff format --check src tests bench examples testbed tools

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

# The unit tests and the `smoke` integration tests on every supported Python found here, each
# in its own .venv-3.X (reused when present). PYTHONS="3.10 3.12" picks some; JOBS=2 runs two
# at a time.
test-pythons: $(STAMP)
	$(BIN)/python tools/test_pythons.py $(if $(JOBS),--jobs $(JOBS)) $(PYTHONS)

# Builds the sdist and wheel into dist/, checks their metadata and contents, and installs the
# wheel with each extra into a fresh venv to check what a user gets.
dist: $(STAMP)
	$(BIN)/python tools/check_dist.py $(if $(JOBS),--jobs $(JOBS))

demo: $(STAMP)
	$(BIN)/python examples/demo.py

bench: $(STAMP)
	$(BIN)/python bench/request_overhead.py
	$(BIN)/python bench/import_time.py
	$(BIN)/python bench/cold_fetch.py
	$(BIN)/python bench/lifecycle.py
	$(BIN)/python bench/cli_time.py

clean:
	rm -rf $(VENV) .venv-3.* .pytest_cache .mypy_cache .ruff_cache build dist
