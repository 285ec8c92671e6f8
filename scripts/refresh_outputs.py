"""Re-execute notebooks in place so their stored outputs become the new nbval baseline.

    make refresh-outputs                 # every notebook
    make refresh-outputs NB=notebooks/01_dropout.ipynb

Run with progress bars off (the Makefile sets LESSONLIB_PROGRESS=0), as nbval does.
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def refresh(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    resources = {"metadata": {"path": str(path.parent)}}
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources=resources).execute()
    for cell in nb.cells:  # per-cell timestamps only churn the diff
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    print(f"{path.name}: {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    for p in paths:
        refresh(p.resolve())
