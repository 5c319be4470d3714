"""The one jinja2 environment over web/templates (package data), autoescaping HTML: page shells,
the client's consent receipt and the right-to-know report all render through it."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape

TEMPLATES = Environment(loader=PackageLoader("web", "templates"), autoescape=select_autoescape())
