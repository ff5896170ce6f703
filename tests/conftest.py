"""Shared fixtures; the test environment itself is set in tests/env.py."""

pytest_plugins = [
    "tests.fixtures.users",
    "tests.fixtures.worker",
    "tests.fixtures.images",
    "tests.fixtures.models",
    "tests.fixtures.s3",
    "tests.fixtures.shipped",
]


import os  # noqa: E402

import pytest  # noqa: E402

# Fixtures that start processes or a server for the tests that use them.
HEAVY_FIXTURES = {"celery_worker", "session_worker", "live_server"}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``manage.py runtests`` uses it; files are shared out whole, in this
    order), the files with slow tests go first, so that no worker process is left running one
    of them alone at the end while the other has finished. Without xdist the order stays
    pytest-django's (database tests, then transactional ones, then the rest)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def module(item):
        return item.nodeid.split("::")[0]

    slow = {module(item) for item in items if item.get_closest_marker("slow")}
    heavy = {
        module(item) for item in items
        if item.get_closest_marker("worker") or item.get_closest_marker("browser")
        or HEAVY_FIXTURES & set(item.fixturenames)
    }
    # Stable: within each group, pytest-django's order.
    items.sort(key=lambda item: 0 if module(item) in slow else 1 if module(item) in heavy else 2)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Before a transactional test's flush: the session's Celery worker done with its work."""
    if {"transactional_db", "live_server"} & set(item.fixturenames):
        from tests.fixtures.worker import wait_until_the_session_worker_is_idle

        wait_until_the_session_worker_is_idle()
    return (yield)


@pytest.fixture(autouse=True)
def fast_password_hasher(request):
    """Passwords hashed with MD5 in tests only: PBKDF2's million rounds cost about half a
    second per user made or login, which is most of a portal test's time. Production keeps
    Django's default hashers (settings.py sets none)."""
    if request.config.pluginmanager.hasplugin("django"):
        settings = request.getfixturevalue("settings")
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
