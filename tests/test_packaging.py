"""The install story: pyproject, environment.yml and the lock agree."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"pytorch": "torch"}  # conda package name -> PyPI name


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {_name(r) for r in reqs}


def environment_names() -> set[str]:
    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = [r for d in deps if isinstance(d, dict) for r in d["pip"]]
    names = {CONDA_NAMES.get(_name(r), _name(r)) for r in conda + pip}
    return names - {"python", "pip"}


def lock_names() -> set[str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return {_name(line) for line in lines if line and not line.startswith("#")}


def test_pyproject_and_environment_list_the_same_packages():
    assert pyproject_names() == environment_names()


def test_lock_pins_every_declared_package_exactly():
    missing = pyproject_names() - lock_names()
    assert not missing, f"requirements.lock lacks {sorted(missing)}: run `pip freeze` into it"
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            assert "==" in line, f"unpinned line in requirements.lock: {line!r}"


def test_lock_pins_the_torch_this_environment_runs():
    import torch

    pins = dict(line.split("==", 1) for line in (ROOT / "requirements.lock").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["torch"] == torch.__version__.split("+")[0]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test  " in readme or "make test\n" in readme
    assert ci.strip().splitlines()[-1] == "make test"
