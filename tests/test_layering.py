"""Arrows point one way: portal -> classifier -> ml.

One exception, said in classifier/__init__.py: ``classifier`` knows the portal's ``cases``
models and the ``accounts`` models they belong to (its foreign keys point at them), and
nothing else of ``portal``: no views, forms, access or audit code."""

import ast
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[1]
FORBIDDEN = {"ml": {"django", "classifier", "portal"}, "classifier": {"portal"}}
ALLOWED = {"classifier": {"portal.cases.models", "portal.accounts.models"}}


def imported_modules(path):
    """(module, line) for each import of ``path``; ``from a import b`` gives ``a.b``, so that
    ``from portal.cases import models`` counts as ``portal.cases.models``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno


def allowed(module, package):
    return any(module == ok or module.startswith(ok + ".") for ok in ALLOWED.get(package, ()))


def offences(package):
    return [
        f"{path.relative_to(BASE_DIR)}:{line} imports {module}"
        for path in sorted((BASE_DIR / package).rglob("*.py"))
        for module, line in imported_modules(path)
        if module.split(".")[0] in FORBIDDEN[package] and not allowed(module, package)
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_never_imports_the_layers_above_it(package):
    found = offences(package)
    assert not found, "\n".join(found)


def test_classifier_may_import_only_the_portal_models_it_names(tmp_path, monkeypatch):
    """The exception is exactly the two models modules: a portal view, access helper or the
    portal.cases package itself is still an offence."""
    package = tmp_path / "classifier"
    package.mkdir()
    (package / "ok.py").write_text(
        "from portal.cases.models import Scan\nfrom portal.accounts.models import Clinic\n"
        "from portal.cases import models\n"
    )
    (package / "bad.py").write_text(
        "from portal.cases.views import case_detail\nfrom portal.accounts import access\n"
        "import portal.cases\n"
    )
    monkeypatch.setitem(globals(), "BASE_DIR", tmp_path)
    assert offences("classifier") == [
        "classifier/bad.py:1 imports portal.cases.views.case_detail",
        "classifier/bad.py:2 imports portal.accounts.access",
        "classifier/bad.py:3 imports portal.cases",
    ]
