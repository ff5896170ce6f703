"""Shared fixtures; the test environment itself is set in tests/env.py."""

pytest_plugins = [
    "tests.fixtures.users",
    "tests.fixtures.worker",
    "tests.fixtures.images",
    "tests.fixtures.models",
]
