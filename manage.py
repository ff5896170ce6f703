#!/usr/bin/env python3
"""Django's command-line utility, plus two commands that need nothing installed first:

    python3 manage.py start      prepare everything and run the portal (web + worker)
    python3 manage.py runtests   prepare everything, run the code checks (ruff, mypy), then the test suite

Any other command runs in the project's virtual environment: started with a Python that lacks
Django (e.g. the system's python3), this script runs itself again with .venv/bin/python,
making the environment first if it is missing.
"""

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
BOOTSTRAP_COMMANDS = {
    "start": "prepare everything (virtualenv, packages, database, demo login, shipped models), "
    "then run the web server and a worker",
    "runtests": "prepare everything, run ruff and mypy, then the test suite (pytest arguments may follow)",
}


def _bootstrap():
    """Load portal/bootstrap.py by path: it is plain stdlib and must run before Django exists."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bootstrap", BASE_DIR / "portal" / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_in_venv():
    """Re-run this command with the virtual environment's Python when Django is missing here."""
    try:
        import django  # noqa: F401
    except ImportError:
        bootstrap = _bootstrap()
        if Path(sys.prefix).resolve() == bootstrap.VENV.resolve():
            raise  # already in the virtual environment: a broken install, say so
        bootstrap.ensure_venv()
        os.execv(str(bootstrap.PYTHON), [str(bootstrap.PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])


def _print_bootstrap_help():
    print("\n[bootstrap] (run with any python3; they install what is missing)")
    for name, text in BOOTSTRAP_COMMANDS.items():
        print(f"    {name:<10} {text}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] in BOOTSTRAP_COMMANDS:
        sys.exit(_bootstrap().main(sys.argv[1], sys.argv[2:]))
    _run_in_venv()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
    if sys.argv[1:] in ([], ["help"], ["--help"], ["-h"]):
        _print_bootstrap_help()


if __name__ == "__main__":
    main()
