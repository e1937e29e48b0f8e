"""Fixtures of the integration tier beyond those of every tier (tests/conftest.py)."""

from tests.support.totp import browser, enabled  # noqa: F401  (two-factor tests' fixtures)
