"""The project's own `crypto` package is the one imported (STYLE: the `crypto` name pitfall)."""

from pathlib import Path

import crypto

ROOT = Path(__file__).resolve().parent.parent


def test_crypto_is_this_repositorys_package() -> None:
    assert Path(crypto.__file__).resolve().parent == ROOT / "crypto"
