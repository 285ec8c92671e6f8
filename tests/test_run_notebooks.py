"""The run-all command passes the preset to every notebook's parameters cell (dry run: no kernel)."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_notebooks)


def test_every_notebook_starts_with_a_tagged_parameters_cell():
    assert run_notebooks.notebooks(), "no notebooks found"
    for path in run_notebooks.notebooks():
        first = next(c for c in nbformat.read(path, 4).cells if c.cell_type == "code")
        assert "parameters" in first.metadata.get("tags", []), f"{path.name}: first code cell is not tagged"
        assert "preset" in first.source and "seed" in first.source, f"{path.name}: no preset/seed knob"


@pytest.mark.parametrize("preset", ["sample", "full"])
def test_dry_run_injects_the_preset_into_every_copy_and_leaves_originals(tmp_path, preset):
    originals = {p: p.read_bytes() for p in run_notebooks.notebooks()}
    assert run_notebooks.main(["--preset", preset, "--dry-run", "--out", str(tmp_path)]) == 0
    for path, before in originals.items():
        copy = nbformat.read(tmp_path / preset / path.name, 4)
        injected = [c for c in copy.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and f'preset = "{preset}"' in injected[0].source, path.name
        assert path.read_bytes() == before, f"{path.name} was modified"


def test_unknown_preset_is_refused():
    with pytest.raises(SystemExit):
        run_notebooks.main(["--preset", "huge", "--dry-run"])
