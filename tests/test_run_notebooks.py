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


def test_without_a_preset_each_notebook_keeps_its_own(tmp_path):
    assert run_notebooks.main(["--dry-run", "--out", str(tmp_path)]) == 0
    for path in run_notebooks.notebooks():
        copy = nbformat.read(tmp_path / "default" / path.name, 4)
        injected = [c for c in copy.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert all("preset" not in c.source for c in injected), path.name


def test_unknown_preset_is_refused():
    with pytest.raises(SystemExit):
        run_notebooks.main(["--preset", "huge", "--dry-run"])


def test_robustness_runs_each_seed_block_and_the_other_precision(monkeypatch):
    monkeypatch.setattr(run_notebooks, "native_amp", lambda device: "bf16")
    runs = run_notebooks.robustness_runs([100, 200])
    assert [r["parameters"] for r in runs] == [{"seed": 100}, {"seed": 200}, {}]
    assert runs[2]["env"] == {"LESSONLIB_PRECISION": "fp32"} and not runs[2]["skip"]
    assert all(nb.startswith(("04_", "05_")) for nb in runs[2]["only"])


def test_robustness_skips_emulated_bf16(monkeypatch):
    monkeypatch.setattr(run_notebooks, "native_amp", lambda device: False)
    other = run_notebooks.robustness_runs([100])[-1]
    assert other["env"] == {"LESSONLIB_PRECISION": "bf16"} and "no native bf16" in other["skip"]


def test_robustness_dry_run_gives_each_run_its_own_cache_and_a_table(tmp_path, monkeypatch):
    monkeypatch.setattr(run_notebooks, "native_amp", lambda device: False)
    seen = []
    monkeypatch.setattr(run_notebooks, "run", lambda nb, target, params, env, dry: seen.append((params, env)))
    assert run_notebooks.main(["--robustness", "--seeds", "100", "200", "--out", str(tmp_path)]) == 0
    caches = {env["LESSONLIB_DATA"] for _, env in seen}
    assert len(caches) == 2 and all(str(tmp_path) in c for c in caches)
    assert {p["seed"] for p, _ in seen} == {100, 200}
    table = (tmp_path / "robustness" / "table.md").read_text()
    assert "| 04_imdb_language_model | passed" in table and "skipped: no native bf16" in table


def test_a_failing_notebook_is_reported_with_the_line_that_raised(tmp_path, monkeypatch):
    monkeypatch.setattr(run_notebooks, "run", lambda *a: "AssertionError at `assert x > 1`")
    assert run_notebooks.main(["--robustness", "--seeds", "100", "--out", str(tmp_path)]) == 1
    assert "FAILED: AssertionError at `assert x > 1`" in (tmp_path / "robustness" / "table.md").read_text()


def test_failing_line_reads_the_marked_traceback_line():
    err = run_notebooks.papermill.PapermillExecutionError(
        cell_index=3, exec_count=3, source="x = 0\nassert x > 1", ename="AssertionError", evalue="",
        traceback=["\x1b[31m---------\x1b[39m", "Cell \x1b[32mIn[3], line 2\x1b[39m\n      1 x = 0\n"
                   "\x1b[32m----> 2\x1b[39m assert x > 1\n"])
    assert run_notebooks.failing_line(err) == "AssertionError at `assert x > 1`"
    err.traceback[1] = err.traceback[1].replace("----> 2", "---> 12")  # IPython's arrow for line 10 on
    assert run_notebooks.failing_line(err) == "AssertionError at `assert x > 1`"
