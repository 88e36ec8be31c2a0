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
