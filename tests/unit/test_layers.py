"""Imports flow one way: core <- crypto <- storage <- service <- api / cli; api sees only the
services and the domain (core, config, errors); service sees no SQLAlchemy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "sikker"
ORDER = ["core", "crypto", "storage", "service", "api", "cli", "agent", "engines"]
# api and cli are siblings at the top: neither imports the other, nothing imports them.
FORBIDDEN = {layer: set(ORDER[i + 1 :]) for i, layer in enumerate(ORDER)}
# api talks to the services only: never to storage or crypto directly.
FORBIDDEN["api"] = {"cli", "agent", "storage", "crypto"}
FORBIDDEN["cli"] = set()
# The agent runs beside a database: it talks to the server over HTTP and imports only errors.
FORBIDDEN["agent"] = {"core", "crypto", "storage", "service", "api", "cli"}
# Database engines (providers) serve the agent and the server's services: they import only errors.
FORBIDDEN["engines"] = {"core", "crypto", "storage", "service", "api", "cli", "agent"}
# The services mint dynamic database credentials with them; nothing below service may.
FORBIDDEN["service"] = FORBIDDEN["service"] - {"engines"}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sikker."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("sikker.")}
    return found


@pytest.mark.parametrize("layer", ORDER)
def test_layers_import_only_downwards(layer: str) -> None:
    for path in (SRC / layer).rglob("*.py"):
        bad = imports_of(path) & FORBIDDEN[layer]
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_core_does_no_io() -> None:
    for path in (SRC / "core").rglob("*.py"):
        text = path.read_text()
        for banned in ("import sqlalchemy", "import httpx", "open(", "import socket"):
            assert banned not in text, f"{path.name} uses {banned}"


def test_service_does_not_import_sqlalchemy() -> None:
    """Storage owns transactions and savepoints and raises domain errors (e.g. Replayed)."""
    for path in (SRC / "service").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            bad = [n for n in names if n == "sqlalchemy" or n.startswith("sqlalchemy.")]
            assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_api_imports_only_service_core_config_and_errors() -> None:
    allowed = {"api", "service", "core", "config", "errors"}
    for path in (SRC / "api").rglob("*.py"):
        bad = imports_of(path) - allowed
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"
