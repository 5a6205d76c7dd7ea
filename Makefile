# The two README commands:
#   make demo   set up everything, then run the main job (the robustness report)
#   make test   set up everything, then lint and the whole test matrix: the built wheels and
#               sdist, each package alone in a fresh venv, the core at its oldest numpy, and
#               in the dev venv only what those venvs cannot run (noxfile.py)
# Both are idempotent: a second run reuses the venv and the compiled core.

VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench core clean

setup:
	bash tools/setup.sh

core:
	bash tools/build_core.sh

demo: setup
	$(VENV)/bin/nox -s demo

test: setup
	$(VENV)/bin/nox -s lint dist isolated min_deps dev_only

bench: setup
	$(VENV)/bin/nox -s bench

lint: setup
	$(VENV)/bin/nox -s lint

clean:
	rm -rf $(VENV) build .nox report
