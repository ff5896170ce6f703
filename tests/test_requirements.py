"""Requirements are split: requirements.txt holds what the portal runs on (and the Docker image
installs), tests/requirements.txt adds the test and check tools, and code that ships never
imports a package that only the tests install."""

import ast
import importlib.metadata
import re
from pathlib import Path

from portal import bootstrap

BASE_DIR = Path(__file__).resolve().parents[1]
RUNTIME = BASE_DIR / "requirements.txt"
TESTS = BASE_DIR / "tests" / "requirements.txt"
SHIPPED_CODE = ("portal", "classifier", "ml", "manage.py")


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(path):
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def pinned(path):
    """{normalised name: line} for the file's own requirements (not the -r includes)."""
    found = {}
    for line in requirement_lines(path):
        if line.startswith("-r "):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[a-z0-9,]+\])?==[A-Za-z0-9.]+", line)
        assert match, f"{path.relative_to(BASE_DIR)}: {line!r} is not pinned exactly (name==version)"
        found[normalise(match.group(1))] = line
    return found


def test_every_requirement_is_pinned_and_listed_once():
    runtime, tests = pinned(RUNTIME), pinned(TESTS)
    assert not set(runtime) & set(tests), f"in both files: {sorted(set(runtime) & set(tests))}"
    assert requirement_lines(TESTS)[0] == "-r ../requirements.txt"
    assert {"pytest", "playwright", "ruff", "mypy", "django-stubs"} <= set(tests)


def test_the_docker_image_installs_the_runtime_requirements_only():
    dockerfile = (BASE_DIR / "portal" / "Dockerfile").read_text()
    installs = re.findall(r"pip install [^\n]*", dockerfile)
    assert installs == ["pip install --no-cache-dir -r requirements.txt"], installs
    assert "tests/" not in dockerfile


def test_shipped_code_imports_no_package_that_only_the_tests_install():
    test_only = set(pinned(TESTS))
    modules = {
        module for module, distributions in importlib.metadata.packages_distributions().items()
        if all(normalise(d) in test_only for d in distributions)
    }
    assert {"pytest", "yaml", "playwright", "pypdf", "mypy"} <= modules
    modules.add("tests")
    offences = []
    for root in SHIPPED_CODE:
        paths = [BASE_DIR / root] if root.endswith(".py") else sorted((BASE_DIR / root).rglob("*.py"))
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                offences += [f"{path.relative_to(BASE_DIR)}:{node.lineno} imports {name}"
                             for name in names if name.split(".")[0] in modules]
    assert not offences, "\n".join(offences)


def test_a_change_to_either_file_reinstalls_the_test_packages(tmp_path):
    runtime, tests = tmp_path / "requirements.txt", tmp_path / "tests.txt"
    runtime.write_text("Django==5.2.19\n")
    tests.write_text("-r requirements.txt\npytest==9.2.0\n")
    stamp = tmp_path / "stamp"
    stamp.write_text(bootstrap.requirements_hash(runtime, tests))
    assert bootstrap.is_installed(stamp, runtime, tests)
    runtime.write_text("Django==5.2.20\n")
    assert not bootstrap.is_installed(stamp, runtime, tests)
    stamp.write_text(bootstrap.requirements_hash(runtime, tests))
    tests.write_text("-r requirements.txt\npytest==9.2.1\n")
    assert not bootstrap.is_installed(stamp, runtime, tests)
