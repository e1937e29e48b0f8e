"""Tests that need no database: pure rules, formats and documents."""
