"""Tests against a real PostgreSQL and a real SMTP server, through HTTP, the CLI and mail."""
