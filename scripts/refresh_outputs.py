"""Re-execute notebooks in place so their stored outputs become the new nbval baseline.

    make refresh-outputs                 # every notebook
    make refresh-outputs NB=notebooks/01_dropout.ipynb

Run with progress bars off (the Makefile sets LESSONLIB_PROGRESS=0), as nbval does. The kernels load
`scripts/ipython`'s startup file, which names every unlabelled figure axis on stderr; a notebook with
one is written (to be looked at) and the command fails. The notebook's metadata records the check, and
the numerics identity of this machine (notebooks/conftest.py compares it to choose nbval's mode).
"""

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from lessonlib.engine.numerics import numerics_identity
from lessonlib.plots import UNLABELLED_MARKER

ROOT = Path(__file__).resolve().parent.parent


def label_complaints(nb) -> list[str]:
    """The figure-label complaints the startup file wrote into `nb`'s stored stderr outputs."""
    return [line for cell in nb.cells for out in cell.get("outputs", []) if out.get("name") == "stderr"
            for line in out["text"].splitlines() if line.startswith(UNLABELLED_MARKER)]


def refresh(path: Path) -> list[str]:
    """Execute `path` in place; returns the figure-label complaints its outputs hold."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    resources = {"metadata": {"path": str(path.parent)}}
    os.environ["IPYTHONDIR"] = str(ROOT / "scripts" / "ipython")  # the kernel inherits it
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources=resources).execute()
    for cell in nb.cells:  # per-cell timestamps only churn the diff
        cell.metadata.pop("execution", None)
    # what wrote these outputs: nbval compares the numerics-dependent cells only on a machine like it
    nb.metadata["lessonlib"] = {"figure_labels_checked": True, "numerics": numerics_identity()}
    nbformat.write(nb, path)
    print(f"{path.name}: {time.perf_counter() - start:.0f}s")
    return label_complaints(nb)


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    problems = {p.name: refresh(p.resolve()) for p in paths}
    for name, lines in problems.items():
        for line in lines:
            print(f"{name}: {line}", file=sys.stderr)
    sys.exit(1 if any(problems.values()) else 0)
