"""nbval in two modes, chosen per notebook by the machine it runs on.

Each committed notebook records the numerics identity of the machine that wrote its outputs
(`metadata.lessonlib.engine.numerics`, written by `make refresh-outputs`; see `lessonlib.engine.numerics`).

- **exact**: this machine's identity is the recorded one, so every output is compared, as nbval does.
- **findings**: it differs (another CPU family, precision, thread count or torch), so the cells tagged
  `numerics-dependent` (training numbers, CPU-dependent reductions, the device in the banner) run but
  their outputs are not compared: the findings those cells assert are what is checked. Every other
  output (data, joins, tokens, vocabulary, counts, shapes) is still compared exactly.

The mode of each notebook, and why, is printed after collection.
"""

import pytest

from lessonlib.engine.numerics import identity_differences, numerics_identity

TAG = "numerics-dependent"
MODE_LINES = pytest.StashKey[list]()


def recorded_identity(nb) -> dict | None:
    return nb.metadata.get("lessonlib", {}).get("numerics")


def mode_line(name: str, differences: list[str], n_uncompared: int, n_cells: int) -> str:
    if not differences:
        return f"nbval {name}: exact mode (this machine's numerics are the ones that wrote the outputs)"
    return (f"nbval {name}: findings mode, {n_uncompared} of {n_cells} cells' outputs not compared (tagged "
            f"{TAG}), their asserts still run; because {'; '.join(differences)}")


def pytest_collection_modifyitems(config, items):
    here = numerics_identity()
    notebooks = {}  # notebook collector -> its cells
    for item in items:
        if hasattr(item, "cell") and hasattr(item.parent, "nb"):
            notebooks.setdefault(item.parent, []).append(item)
    lines = []
    for nb_file, cells in notebooks.items():
        differences = identity_differences(recorded_identity(nb_file.nb), here)
        tagged = [c for c in cells if TAG in c.cell.metadata.get("tags", [])]
        if differences:
            for cell in tagged:
                cell.options["check"] = False
        lines.append(mode_line(nb_file.path.name, differences, len(tagged), len(cells)))
    config.stash[MODE_LINES] = lines


def pytest_report_collectionfinish(config, start_path, items):
    return config.stash.get(MODE_LINES, [])
