"""Committed notebooks are a clean nbval baseline: executed in order, no errors, a narrow sanitiser."""

import importlib.util
import re
from pathlib import Path

import nbformat
import papermill
import pytest
from nbval.plugin import get_sanitize_patterns

from lessonlib.engine.numerics import numerics_identity

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
spec = importlib.util.spec_from_file_location("refresh_outputs", ROOT / "scripts" / "refresh_outputs.py")
refresh_outputs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(refresh_outputs)


def sanitise(text: str) -> str:
    """What nbval does with our sanitiser file (its own parser, its own order)."""
    for regex, replace in get_sanitize_patterns(SANITIZE.read_text()):
        text = re.sub(regex, replace, text)
    return text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_ran_top_to_bottom_without_errors(path):
    nb = nbformat.read(path, as_version=4)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert counts and None not in counts, f"{path.name}: cells never executed; run make refresh-outputs"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: execution counts out of order: {counts}"
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"{path.name}: stored error output {errors[0].ename}: {errors[0].evalue}"


FIGURE_CHECKED = ["00_datasets", "01_dropout", "02_rossmann_data", "03_rossmann_model",
                  "06_rossmann_leaderboard"]  # see below


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_axis_is_labelled(path):
    """`make refresh-outputs` names each unlabelled figure axis on stderr (scripts/ipython's startup file)
    and marks the notebook checked. Notebooks 00-03 and 06 have been refreshed so since the check exists;
    the others are held to it once they are refreshed again."""
    nb = nbformat.read(path, as_version=4)
    checked = nb.metadata.get("lessonlib", {}).get("figure_labels_checked", False)
    assert checked or path.stem not in FIGURE_CHECKED, f"{path.name}: refresh it (make refresh-outputs)"
    complaints = refresh_outputs.label_complaints(nb)
    assert not complaints, f"{path.name}: {complaints[0]}"


def test_sanitiser_masks_only_timings_progress_bars_and_addresses():
    sections = re.findall(r"^\[(.+)\]$", SANITIZE.read_text(), flags=re.MULTILINE)
    assert sections == ["timings", "wall-clock-seconds", "memory-addresses", "tqdm-progress"]
    assert len(get_sanitize_patterns(SANITIZE.read_text())) == len(sections)
    # a timing column's width changes with the number of digits: the padding goes with it
    for seconds in ("105.9s", "72.7s", "8.1s"):
        line = f"     0      6.2907      5.0345      0.2004 {seconds:>10}"
        assert sanitise(line) == "     0      6.2907      5.0345      0.2004 TIME"
    assert sanitise("<Learner at 0x7f01ac0f5290>") == "<Learner at 0xADDRESS>"
    assert sanitise("epoch 3: 45%|████▌     | 9/20 [00:01<00:02, 5.1it/s]") == "epoch 3: PROGRESS"
    for kept in ["exp-RMSPE 0.1029", "valid ppl 126.732", "50 stores", "500 pos / 500 neg", "p=0.5"]:
        assert sanitise(kept) == kept


def parameter_values(source: str) -> dict:
    """name -> value of a parameters cell, which must be plain literals: papermill injects its
    overrides after this cell, so a value computed here from another parameter would ignore them."""
    import ast

    values = {}
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if not isinstance(target, ast.Name):
            raise ValueError(f"line {node.lineno}: a parameters cell holds only `name = value` lines")
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ValueError(f"line {node.lineno}: {ast.unparse(node.value)!r} is not a plain value; "
                             "derive it in a later cell") from None
    return values


def test_parameter_values_rejects_derived_values():
    assert parameter_values('preset = "sample"\nseeds = (1, 2)  # note\nlr = -1e-3') == {
        "preset": "sample", "seeds": (1, 2), "lr": -1e-3}
    with pytest.raises(ValueError, match="not a plain value"):
        parameter_values('preset = "sample"\nmax_tokens = 160 if preset == "sample" else None')
    with pytest.raises(ValueError, match="not a plain value"):
        parameter_values("n = 3\nseeds = [n + i for i in range(n)]")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_holds_plain_values(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected one cell tagged 'parameters', found {len(cells)}"
    assert parameter_values(cells[0].source)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter(path, caplog):
    """papermill (what `make notebooks` runs) must see each parameter, or it cannot override it and
    prints a warning a newcomer takes for a problem (a comment it cannot parse, e.g. one with `=`)."""
    with caplog.at_level("WARNING", logger="papermill"):
        found = papermill.inspect_notebook(str(path))
    cells = nbformat.read(path, 4).cells
    source = next(c.source for c in cells if "parameters" in c.metadata.get("tags", []))
    assert not [r.getMessage() for r in caplog.records if "Unable to parse" in r.getMessage()]
    assert set(found) == set(parameter_values(source))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_record_the_numerics_that_wrote_them(path):
    """notebooks/conftest.py chooses nbval's mode by this record (`make refresh-outputs` writes it)."""
    recorded = nbformat.read(path, as_version=4).metadata.get("lessonlib", {}).get("numerics")
    assert recorded and set(recorded) == set(numerics_identity()), f"{path.name}: run make refresh-outputs"
