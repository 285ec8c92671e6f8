"""notebooks/conftest.py: nbval compares every output where the recorded numerics are this machine's
(exact mode), and skips the numerics-dependent cells' outputs elsewhere (findings mode), asserts kept."""

import shutil
from pathlib import Path

import nbformat
import pytest

from lessonlib.engine.numerics import identity_differences, numerics_identity

SLOW = pytest.mark.slow  # runs nbval in a pytest subprocess: left out of `make unit`
ROOT = Path(__file__).resolve().parent.parent
TAG = "numerics-dependent"
pytest_plugins = ["pytester"]


def cell(source, output, tagged=False):
    c = nbformat.v4.new_code_cell(source, execution_count=None)
    c.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)] if output else []
    c.metadata["tags"] = [TAG] if tagged else []
    return c


def write_notebook(folder: Path, identity: dict, data_out="3\n", trained_out="0.25\n", tagged_source=None):
    """A notebook whose stored outputs are `data_out` for an exact cell and `trained_out` for a tagged
    one (what the cells print: 3 and 0.25), recorded as written on `identity`."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell("print(1 + 2)", data_out),
                cell(tagged_source or "print(1 / 4)", trained_out, tagged=True)]
    for n, c in enumerate(nb.cells, 1):
        c.execution_count = n
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["lessonlib"] = {"numerics": identity}
    nbformat.write(nb, folder / "nb.ipynb")
    shutil.copy(ROOT / "notebooks" / "conftest.py", folder / "conftest.py")


def other_machine():
    return numerics_identity() | {"cpu_vendor": "SomeOtherVendor", "precision": "bf16"}


def run(pytester):
    return pytester.runpytest_subprocess("--nbval", "-p", "no:cacheprovider", "nb.ipynb")


@SLOW
def test_exact_mode_fails_on_a_changed_numerics_dependent_output(pytester):
    write_notebook(pytester.path, numerics_identity(), trained_out="0.24\n")
    result = run(pytester)
    result.stdout.fnmatch_lines(["*nb.ipynb: exact mode*"])
    result.assert_outcomes(passed=1, failed=1)


@SLOW
def test_exact_mode_passes_unchanged_outputs(pytester):
    write_notebook(pytester.path, numerics_identity())
    run(pytester).assert_outcomes(passed=2)


@SLOW
def test_findings_mode_skips_only_the_tagged_outputs(pytester):
    write_notebook(pytester.path, other_machine(), trained_out="0.24\n")
    result = run(pytester)
    result.stdout.fnmatch_lines(["*nb.ipynb: findings mode, 1 of 2 cells' outputs not compared*cpu_vendor*"])
    result.assert_outcomes(passed=2)


@SLOW
def test_findings_mode_still_fails_on_a_changed_exact_output(pytester):
    write_notebook(pytester.path, other_machine(), data_out="4\n")
    run(pytester).assert_outcomes(passed=1, failed=1)


@SLOW
def test_findings_mode_still_fails_on_a_failing_assert(pytester):
    write_notebook(pytester.path, other_machine(), tagged_source="x = 1 / 4\nassert x > 1\nprint(x)")
    run(pytester).assert_outcomes(passed=1, failed=1)


@SLOW
def test_a_notebook_without_a_recorded_identity_is_checked_in_findings_mode(pytester):
    write_notebook(pytester.path, None, trained_out="0.24\n")
    result = run(pytester)
    result.stdout.fnmatch_lines(["*findings mode*no machine identity recorded*"])
    result.assert_outcomes(passed=2)


def test_identity_differences_name_each_changed_field():
    here = {"cpu_vendor": "AuthenticAMD", "threads": 2}
    assert identity_differences(here, dict(here)) == []
    assert identity_differences(here, here | {"threads": 8}) == ["threads: 2 -> 8"]
    assert identity_differences(None, here) == ["no machine identity recorded with the outputs"]
