"""Screenshots of the pages for people to look at, kept only on request: set SCREENSHOT_DIR
(e.g. `SCREENSHOT_DIR=/tmp/shots python3 manage.py runtests tests/e2e`). Full-page PNGs cost
the suite several seconds of CPU and assert nothing, so a plain run takes none (a failing
browser test still keeps one of its page: tests/e2e/conftest.py)."""

import os
from pathlib import Path


def keep_screenshot(page, name: str) -> None:
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
