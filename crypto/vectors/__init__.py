"""Test vectors as data (JSON, hex for bytes), shared by the Python and the browser tests."""
