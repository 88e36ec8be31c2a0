"""The pins in requirements.txt and environment.yml must not drift apart; the CI script runs the README's command."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.txt: {line!r} is not pinned with =="
            pins[name.lower()] = version
    return pins


def test_environment_yml_mirrors_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pins = {}
    for item in pip_section:
        if item.startswith("-e"):
            continue
        name, _, version = item.partition("==")
        conda_pins[name.lower()] = version
    assert conda_pins == _requirements()


def test_core_packages_pinned():
    pins = _requirements()
    for pkg in ("torch", "torchvision", "jupyterlab", "papermill", "matplotlib", "seaborn", "scipy",
                "decord2", "nbval", "av", "opencv-contrib-python-headless", "scikit-image", "tqdm"):
        assert pkg in pins, f"{pkg} missing from requirements.txt"
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_ci_runs_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def test_pyproject_declares_every_pin_with_a_lower_bound_the_pin_meets():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    assert set(project["optional-dependencies"]) == {"notebooks", "test"}
    for extra in project["optional-dependencies"].values():
        declared += extra
    pins = _requirements()
    names = set()
    for spec in declared:
        name, sep, bound = spec.partition(">=")
        assert sep and bound, f"pyproject.toml: {spec!r} needs a lower bound (>=), exact pins go in requirements.txt"
        name = name.strip().lower()
        names.add(name)
        assert name in pins, f"pyproject.toml declares {name}, which requirements.txt does not pin"
        assert _version_tuple(pins[name]) >= _version_tuple(bound), f"{name}: pin {pins[name]} below bound {bound}"
    assert names == set(pins), f"pinned but not declared in pyproject.toml: {sorted(set(pins) - names)}"
    assert project["license"] and (ROOT / "LICENSE").exists() and project["urls"]
