"""pyproject.toml and environment.yml list the same packages (a drift fails here)."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import PROJECT_ROOT

# conda-forge names that differ from PyPI names
CONDA_TO_PYPI = {"python-kaleido": "kaleido", "brotli-python": "brotli"}
NOT_PACKAGES = {"python", "pip", "openjdk"}  # openjdk: the Java pyspark runs on (Debian: default-jre-headless)


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_names() -> set[str]:
    data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    extras = data["project"]["optional-dependencies"]
    requirements = data["project"]["dependencies"] + [r for group in extras.values() for r in group]
    return {_name(r) for r in requirements}


def environment_names() -> set[str]:
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    names = set()
    for item in env["dependencies"]:
        for requirement in item["pip"] if isinstance(item, dict) else [item]:
            name = _name(requirement)
            names.add(CONDA_TO_PYPI.get(name, name))
    return names - NOT_PACKAGES


def test_pyproject_and_environment_list_the_same_packages() -> None:
    assert pyproject_names() == environment_names()


def test_the_name_normalisation_sees_a_difference() -> None:
    assert _name("psycopg[binary]>=3.1") == "psycopg"
    assert pyproject_names() - {"duckdb"} != environment_names()


def test_every_extra_is_mirrored_in_the_environment() -> None:
    data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    extras = data["project"]["optional-dependencies"]
    assert set(extras) == {"dev", "spark"}
    assert {_name(r) for r in extras["spark"]} == {"pyspark"} <= environment_names()


def test_environment_pip_section_only_holds_packages_missing_from_conda_forge() -> None:
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip_items = [item["pip"] for item in env["dependencies"] if isinstance(item, dict)]
    assert pip_items and {_name(r) for r in pip_items[0]} <= {"libcachesim"}
