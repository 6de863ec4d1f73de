"""Every module imports on its own (no import cycles), and imports go one way (STYLE.md #2)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts)
    for p in (ROOT / "server").rglob("*.py")
    if "migrations" not in p.parts and p.name != "__main__.py"
)


# One interpreter loads the heavy libraries once, then forks a child per module: each child starts with
# no ``server`` module loaded, so an import cycle inside Duet cannot hide behind import order. (A fresh
# interpreter per module found the same and took a minute; this takes seconds.)
FORK_EACH = """
import importlib, os, sys
for lib in ("aiohttp", "aiortc", "av", "sqlalchemy", "cryptography", "boto3", "pydantic", "alembic", "argon2"):
    importlib.import_module(lib)
assert not [m for m in sys.modules if m == "server" or m.startswith("server.")]
failures, running, waiting = [], {}, list(sys.argv[1:])


def reap():
    pid, status = os.wait()
    module, r = running.pop(pid)
    message = os.read(r, 4096).decode()
    os.close(r)
    if status:
        failures.append(message or f"{module}: the import crashed")


while waiting or running:
    if waiting and len(running) < 4:
        module = waiting.pop()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                importlib.import_module(module)
                os._exit(0)
            except BaseException as exc:
                os.write(w, f"{module}: {type(exc).__name__}: {exc}".encode()[:4000])
                os._exit(1)
        os.close(w)
        running[pid] = (module, r)
    else:
        reap()
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""


def test_every_module_imports_alone() -> None:
    result = subprocess.run([sys.executable, "-c", FORK_EACH, *MODULES], cwd=ROOT, capture_output=True, text=True,
                            check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


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
