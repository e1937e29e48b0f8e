"""Tests that drive a real headless chromium through Playwright."""
