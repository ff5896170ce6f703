"""The code checks: the tree is ruff- and mypy-clean (configured in pyproject.toml), and
`python3 manage.py runtests` runs both before pytest and stops, naming them, when one fails."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portal import bootstrap

BASE_DIR = Path(__file__).resolve().parents[1]
# What the checks read: the code they check, ml/ (which classifier imports) and the config.
CHECKED = ["manage.py", "pyproject.toml", "requirements.txt", "tests/requirements.txt", "portal", "classifier", "ml"]


def test_the_tree_passes_ruff_and_mypy():
    assert bootstrap.run_checks(os.environ) == []


def copy_checked_files(target):
    listed = subprocess.run(["git", "ls-files", "-z", "--", *CHECKED], cwd=BASE_DIR,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (BASE_DIR / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(BASE_DIR / name, target / name)


@pytest.mark.timeout(300)
def test_runtests_names_the_failed_checks_and_runs_no_test(tmp_path):
    checkout = tmp_path / "checkout"
    copy_checked_files(checkout)
    (checkout / "portal" / "careless.py").write_text("import os\n\n\ndef untyped(value):\n    return value\n")
    venv = Path(os.path.realpath(BASE_DIR / ".venv"))
    env = {key: value for key, value in os.environ.items() if key not in ("DEBUG", "SECRET_KEY", "VIRTUAL_ENV")}
    # mypy starts from a copy of the checkout's cache when there is one (runtests has just made
    # it): the third-party stubs need no new analysis, only the copied and the careless files.
    mypy_cache = Path(os.environ.get("MYPY_CACHE_DIR", BASE_DIR / ".mypy_cache"))
    if mypy_cache.is_dir():
        shutil.copytree(mypy_cache, tmp_path / "mypy")
    env.update(NEUROAI_VENV=str(venv), NEUROAI_ENV_FILE=str(tmp_path / "none.env"),
               MYPY_CACHE_DIR=str(tmp_path / "mypy"))
    result = subprocess.run(
        [sys.executable, "manage.py", "runtests", "tests/test_layering.py"], cwd=checkout, env=env,
        capture_output=True, text=True, timeout=280,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "F401" in output and "portal/careless.py" in output  # ruff: the unused import
    assert "no-untyped-def" in output  # mypy: the untyped function
    assert "[neuroai] ruff check and mypy failed (see above); the tests were not run" in output
    assert "test session starts" not in output
