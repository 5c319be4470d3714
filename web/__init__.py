"""Page templates and static ES modules, shipped as package data (importlib.resources)."""
