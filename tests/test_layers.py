"""The layering of ../shared/DESIGN.md, enforced: a layer imports only layers below it, and the
pure layers (model, engine, render) import nothing that touches processes, sockets or the kernel."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "kanal"

# Lower rank = lower layer. A module may import kanal packages of its own rank or below.
RANK = {
    "errors": 0,
    "model": 1,
    "engine": 2,
    "render": 3,
    "dataplane": 4,
    "flows": 4,
    "store": 4,
    "ipam": 4,
    "agent": 5,
    "lab": 5,
    "cni": 5,
    "cli": 6,
    "web": 6,
}
PURE = {"model", "engine", "render"}
IMPURE_MODULES = {
    "subprocess",
    "socket",
    "asyncio",
    "ctypes",
    "pyroute2",
    "argparse",
    "threading",
    "multiprocessing",
    "http",
    "urllib",
    "select",
    "signal",
    "sqlite3",
    "os",
}


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


MODULES = sorted(p for p in SRC.rglob("*.py") if _package_of(p) in RANK)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_imports_only_layers_below_it(path: Path) -> None:
    package = _package_of(path)
    for name in _imports(path):
        top = name.split(".")
        if top[0] == "kanal" and len(top) > 1:
            assert RANK[top[1]] <= RANK[package], f"{package} must not import {name}"
        if package in PURE:
            assert top[0] not in IMPURE_MODULES, f"pure layer {package} imports {name}"


def test_every_package_has_a_rank() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert packages <= set(RANK), packages - set(RANK)
