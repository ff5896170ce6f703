"""Shared fixtures; the test environment itself is set in tests/env.py."""

pytest_plugins = [
    "tests.fixtures.users",
    "tests.fixtures.worker",
    "tests.fixtures.images",
    "tests.fixtures.models",
    "tests.fixtures.s3",
    "tests.fixtures.shipped",
]


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def fast_password_hasher(request):
    """Passwords hashed with MD5 in tests only: PBKDF2's million rounds cost about half a
    second per user made or login, which is most of a portal test's time. Production keeps
    Django's default hashers (settings.py sets none)."""
    if request.config.pluginmanager.hasplugin("django"):
        settings = request.getfixturevalue("settings")
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
