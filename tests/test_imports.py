"""Every module imports on its own, and imports run one way: down the layer table, never up or sideways.

``LAYERS`` is the architecture (docs/architecture.md is written from it): a package may import its own
modules and any package in a *lower* layer; never one in its own layer or above. Every import counts:
top-level, inside a function (lazy) and under ``TYPE_CHECKING``. No package cycle can then exist, and a
separate check refuses file-level cycles inside a package.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Top to bottom. Names are ``server.<name>`` packages or modules.
LAYERS: list[tuple[str, ...]] = [
    ("__main__",),
    ("cli",),                      # the `duet` command
    ("serve",),                    # `duet serve`: checks, then runs the app
    ("app",),                      # the aiohttp application factory
    ("web", "demo"),               # pages, API, the live session (web/live); the demo organisation
    ("services",),                 # the composition root: builds every service once, for the app and the CLI
    ("gdpr", "invitations", "schema"),  # features that combine domains; every table
    ("retention",),                # erase dates and the retention job
    ("plans",),                    # blended plans
    ("visits",),                   # home, studio and setting visits, lone working
    ("safeguarding",),             # concerns, suspensions
    ("recording",),                # the consent-gated recorder, sealed format, stores, holds, review
    ("chat", "checks", "consent", "links"),
    ("bookings",),
    ("storage_policies",),         # retention policies as data (storage_policies/*.toml), pure rules
    ("accounts", "people"),
    ("mail",),
    ("audit",),
    ("media",),                    # the relay: knows nothing of bookings or people
    ("db", "dates", "events", "keys", "subjects"),
    ("clock", "config", "errors"),
]
# Modules placed in a layer other than their package's (with the reason).
PLACED = {
    "server.db.migrations": "schema",  # Alembic's env needs every table
}
LAYER_OF = {name: depth for depth, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "server").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()
IMPORTABLE = sorted(m for m in MODULES if "migrations" not in m and m != "server.__main__")


def _imports(module: str) -> set[str]:
    """Every ``server`` module named by an import anywhere in the file (lazy and TYPE_CHECKING ones too)."""
    tree = ast.parse(MODULES[module].read_text())
    names: set[str] = set()
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import: resolve it against this module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            submodules = {f"{base}.{alias.name}" for alias in node.names} & MODULES.keys()
            names |= submodules
            if len(submodules) < len(node.names):  # a name from the module itself, not only its submodules
                names.add(base)
    return {name for name in names if name in MODULES and name != "server"}


def _unit(module: str) -> str:
    """The layer-table name a module belongs to (its package under ``server``)."""
    for prefix, name in PLACED.items():
        if module == prefix or module.startswith(prefix + "."):
            return name
    return module.split(".")[1]


def wrong_way_imports() -> list[str]:
    """Imports that run upward or sideways against ``LAYERS``, as ``importer -> imported``."""
    wrong = []
    for module in sorted(MODULES):
        if module == "server":
            continue
        here = _unit(module)
        for target in sorted(_imports(module)):
            there = _unit(target)
            if there != here and LAYER_OF[there] <= LAYER_OF[here]:
                wrong.append(f"{module} -> {target} ({here} may not import {there})")
    return wrong


def test_every_package_is_in_the_layer_table() -> None:
    missing = sorted({_unit(m) for m in MODULES if m != "server"} - set(LAYER_OF))
    assert not missing, f"add these to LAYERS (and docs/architecture.md): {missing}"


def test_imports_run_down_the_layers() -> None:
    wrong = wrong_way_imports()
    assert not wrong, "\n".join(wrong)


def test_no_file_imports_itself_through_others() -> None:
    graph = {m: _imports(m) - {m} for m in MODULES if "migrations" not in m}
    cycles = _cycles(graph)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_upward_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    """The check itself: an upward import hidden in a function or under TYPE_CHECKING is still an import."""
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from server.web.keys import DB\n"
              "def late():\n    from server.app import create_app\n")
    tree = ast.parse(source)
    seen = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {"server.web.keys", "server.app"} <= seen
    assert LAYER_OF["web"] < LAYER_OF["bookings"] and LAYER_OF["media"] > LAYER_OF["recording"]
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


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
    result = subprocess.run([sys.executable, "-c", FORK_EACH, *IMPORTABLE], cwd=ROOT, capture_output=True,
                            text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def package_graph() -> dict[str, set[str]]:
    """Which layer-table names import which (for docs/architecture.md and the issue note)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module in MODULES:
        if module == "server":
            continue
        for target in _imports(module):
            if _unit(target) != _unit(module):
                graph[_unit(module)].add(_unit(target))
    return graph


LOOP_TIME = re.compile(r"(asyncio\.sleep\(|(get_running_loop|get_event_loop)\(\)\.(call_later|call_at|time)\b"
                       r"|\bloop\.(call_later|call_at|time)\()")


def test_only_the_clock_waits() -> None:
    """Waiting and timers go through the injected Clock (server/clock.py; the media path may take an
    explicitly injected media clock). ruff's banned-api refuses ``asyncio.sleep``; this also finds the
    event loop's own timers and clock, which ruff cannot see."""
    offenders = []
    for module, path in MODULES.items():
        if module == "server.clock":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if LOOP_TIME.search(line.split("#", 1)[0]):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
