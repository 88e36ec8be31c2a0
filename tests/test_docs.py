"""Every Markdown file the code, the notebooks, the README and the docs cite exists in the repository."""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MD_PATH = re.compile(r"(?<![\w/.-])((?:\.\./)*[\w.-]+(?:/[\w.-]+)*\.md)\b")


def cited(text: str) -> set[str]:
    return {m for m in MD_PATH.findall(text) if not m.startswith(("http", "www."))}


def sources() -> list[Path]:
    files = [*sorted((ROOT / "htsc_core").rglob("*.py")), *sorted((ROOT / "notebooks").glob("*.ipynb")),
             ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [f for f in files if f.exists()]


def _text(path: Path) -> str:
    if path.suffix == ".ipynb":  # cell sources only (outputs may quote anything)
        return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    return path.read_text()


def test_pattern_finds_paths():
    assert cited("see docs/DESIGN.md section 2 and [x](SYNTHETIC.md); not foo.mdx") == {"docs/DESIGN.md",
                                                                                         "SYNTHETIC.md"}


def test_every_cited_markdown_file_exists():
    missing = []
    for path in sources():
        for ref in cited(_text(path)):
            # a path is relative to the repository root, or (Markdown links) to the citing file's folder
            if not ((ROOT / ref).exists() or (path.parent / ref).exists()):
                missing.append(f"{path.relative_to(ROOT)} cites {ref}")
    assert not missing, "cited Markdown files missing from the repository:\n" + "\n".join(sorted(missing))


def test_synth_help_cites_a_repository_file():
    from htsc_core.cli import COMMANDS

    for _, help_text in COMMANDS.values():
        for ref in cited(help_text):
            assert (ROOT / ref).exists(), ref
