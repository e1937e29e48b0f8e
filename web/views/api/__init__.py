"""The JSON API (SPEC §7) and the health and metrics endpoints: HTTP in, JSON (or a file) out."""
