"""The API reference builds from the docstrings with Sphinx, warnings as errors (docs/api)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_has_its_page_in_the_api_reference() -> None:
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.rst"):
        documented |= {line.split("::")[1].strip() for line in page.read_text().splitlines() if "automodule::" in line}
    package = ROOT / "src" / "spherefer"
    modules = {
        ".".join(("spherefer", *path.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        for path in package.rglob("*.py")
        if path.name != "__main__.py"
    }
    assert modules - documented == set(), "add these modules to docs/api/<package>.rst"
    assert documented - modules == set(), "these documented modules do not exist"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("sphinx") is None, reason="needs sphinx: pip install -e .[test]")
def test_the_api_reference_builds_without_a_warning(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs/api", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    bank = (tmp_path / "bank.html").read_text()
    assert "CenterBank" in bank and "classify" in bank  # the docstrings are in, not only the titles
    pages = {path.name for path in tmp_path.glob("*.html")}
    assert {"core.html", "bank.html", "runtime.html", "training.html", "serve.html", "cli.html"} <= pages
