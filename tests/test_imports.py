"""Every module imports on its own (no import cycles), and imports go one way (STYLE.md #2)."""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts)
    for p in (ROOT / "server").rglob("*.py")
    if "migrations" not in p.parts and p.name != "__main__.py"
)


def test_every_module_imports_alone() -> None:
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"

    def attempt(module: str) -> str | None:  # a fresh interpreter per module: cycles cannot hide behind order
        result = subprocess.run([sys.executable, "-c", code, module], cwd=ROOT, capture_output=True, text=True,
                                check=False)
        return f"{module}: {result.stderr.strip().splitlines()[-1]}" if result.returncode else None

    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [f for f in pool.map(attempt, MODULES) if f]
    assert failures == []


@pytest.mark.parametrize("module", MODULES)
def test_no_domain_module_imports_the_web_layer(module: str) -> None:
    if module.startswith(("server.web", "server.app", "server.serve", "server.cli", "server.signalling")):
        return
    tree = ast.parse((ROOT / Path(*module.split("."))).with_suffix(".py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(name.startswith("server.web") for name in imported)
    if module.startswith("server.media"):
        assert not any(name.startswith(("server.bookings", "server.links", "server.people")) for name in imported)
