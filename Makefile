# Two commands (see README.md):
#   make notebooks [PRESET=sample|full]   run every notebook top to bottom (copies in output/); without
#                                         PRESET each on the preset of its parameters cell
#   make test                             unit tests, ruff, and nbval over every notebook
#   make unit                             the unit tests alone: no nbval, no browser (a few minutes)
#   make robustness                       every notebook with other seeds and precision (findings hold?)
#   make lab                              JupyterLab on the notebooks, in the project's environment
# Each creates .venv with the pinned versions from requirements.lock on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PRESET ?=

.PHONY: notebooks test unit lint robustness lab refresh-outputs clean-venv

$(BIN)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

notebooks: $(BIN)/.installed
	$(BIN)/python scripts/run_notebooks.py $(if $(PRESET),--preset $(PRESET))

# Every notebook with seed blocks 100 and 200 (and 04/05 in the other precision), each in its own data
# cache under output/robustness/: do the asserted findings hold? Prints the table.
robustness: $(BIN)/.installed
	$(BIN)/python scripts/run_notebooks.py --robustness

# JupyterLab on notebooks/ (no news or update pop-ups). The browser test starts it with this target,
# with its own LAB_ROOT (a copy of the notebooks) and LAB_OPTS (port, token).
LAB_ROOT ?= notebooks
LAB_OPTS ?=
lab: $(BIN)/.installed
	$(BIN)/python -m jupyterlab --ServerApp.root_dir=$(LAB_ROOT) --LabApp.news_url= \
		--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate $(LAB_OPTS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .

# Notebooks first: the browser test's widget cells load the models they save.
test: lint
	LESSONLIB_PROGRESS=0 $(BIN)/python -m pytest notebooks tests \
		--nbval --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 1800 \
		-q -rs --durations=15

# The developers' loop: every test that needs neither nbval nor the browser (those are marked slow).
unit: $(BIN)/.installed
	LESSONLIB_PROGRESS=0 $(BIN)/python -m pytest tests -m "not slow" -q

# Re-execute the committed notebooks in place (the nbval baseline), with progress bars off.
refresh-outputs: $(BIN)/.installed
	LESSONLIB_PROGRESS=0 \
		$(BIN)/python scripts/refresh_outputs.py $(NB)

clean-venv:
	rm -rf $(VENV)
