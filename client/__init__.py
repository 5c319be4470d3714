"""Python client for record systems: speaks the same wire protocol as the browser."""
