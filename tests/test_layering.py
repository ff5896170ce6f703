"""Arrows point one way: portal -> classifier -> ml."""

import ast
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[1]
FORBIDDEN = {"ml": {"django", "classifier", "portal"}, "classifier": {"portal"}}


def imported_roots(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_never_imports_the_layers_above_it(package):
    offences = [
        f"{path.relative_to(BASE_DIR)}:{line} imports {root}"
        for path in sorted((BASE_DIR / package).rglob("*.py"))
        for root, line in imported_roots(path)
        if root in FORBIDDEN[package]
    ]
    assert not offences, "\n".join(offences)
