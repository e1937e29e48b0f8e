"""The HTML pages of the portal, for customers and employees (no JavaScript needed)."""
