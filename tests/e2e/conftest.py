"""Browser fixtures: Playwright (sync API) driving Debian's Chromium against pytest-django's
``live_server``. Tests that use them need ``transactional_db`` (the live server reads the
test database from another thread, as the Celery worker does from another process)."""

import os
import tempfile
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def _no_public_media():
    """MEDIA_URL is None (scans are never served publicly), which Django's live server
    media handler cannot parse; the live server must not serve media anyway."""
    from django.test import testcases

    testcases._MediaFilesHandler = lambda application: application


@pytest.fixture(scope="session")
def live_server(_no_public_media, live_server):
    return live_server


@pytest.fixture
def playwright_browser(monkeypatch):
    """Chromium for one test. Playwright's sync API keeps an asyncio loop running in this
    thread while it is open, so Django's async-safety check must be relaxed for the ORM
    calls the test makes beside it; both end with the test (function scope), so that no
    later test, and no subprocess it starts (workers, ``check --deploy``), inherits them."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        # ORM calls made while the loop ran used connections of that context: close them
        # here, or they would keep the test database open until the end of the session.
        from django.db import connections

        connections.close_all()
        browser.close()


@pytest.fixture
def page(playwright_browser, live_server, request):
    """A fresh browser context and page; a screenshot is kept if the test fails."""
    context = playwright_browser.new_context(base_url=live_server.url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        # not in NEUROAI_DATA_DIR, which goes when the run ends
        folder = Path(os.environ.get("SCREENSHOT_DIR") or Path(tempfile.gettempdir()) / "neuroai-test-failures")
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{request.node.name}.png"
        try:
            page.screenshot(path=str(out), full_page=True)
            print(f"screenshot: {out}")
        except Exception:
            pass
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
