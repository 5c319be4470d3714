"""The worked examples in module docstrings run (STYLE: module docs open with an example)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "crypto.encoding",
    "crypto.fingerprint",
    "crypto.merkle",
    "crypto.treehead",
    "crypto.keyfile",
    "crypto.vectors.hpke_reference",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
