#!/usr/bin/env python3
"""Django's command-line utility, plus two commands that need nothing installed first:

    python3 manage.py start      prepare everything and run the portal (web + worker)
    python3 manage.py runtests   prepare everything and run the whole test suite
"""

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _bootstrap():
    """Load portal/bootstrap.py by path: it is plain stdlib and must run before Django exists."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bootstrap", BASE_DIR / "portal" / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("start", "runtests"):
        sys.exit(_bootstrap().main(sys.argv[1], sys.argv[2:]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
