"""Writes Koppi's own vector files, never silently over an existing one (docs/protocol.md, Vectors).

Each topic has a module `crypto/vectors/gen_<topic>.py` exposing
`VECTORS: dict[str, Callable[[], dict]]`, file name -> function returning the JSON document. Every
document names `generated_by` and holds `cases`; negative cases carry `expected_error`.

    python -m crypto.vectors.generate            # write files that do not exist yet
    python -m crypto.vectors.generate --check    # fail if any checked-in file differs
    python -m crypto.vectors.generate --force koppi-message.json   # rewrite one file, on purpose

Generation is deterministic (seeded RNG, fixed clock), so `--check` proves that the checked-in files
still come from the code that claims to produce them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def collect() -> dict[str, Callable[[], dict[str, Any]]]:
    generators: dict[str, Callable[[], dict[str, Any]]] = {}
    for mod in pkgutil.iter_modules([str(HERE)]):
        if not mod.name.startswith("gen_"):
            continue
        module = importlib.import_module(f"crypto.vectors.{mod.name}")
        for name, fn in module.VECTORS.items():
            if name in generators:
                raise SystemExit(f"two generators claim {name}")
            generators[name] = fn
    return generators


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument("--force", nargs="*", default=[], help="files to rewrite on purpose")
    args = parser.parse_args(argv)
    status = 0
    for name, fn in sorted(collect().items()):
        path = HERE / name
        text = render(fn())
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            print(f"DIFFERS: {name}", file=sys.stderr)
            status = 1
        elif path.exists() and name not in args.force:
            print(f"refusing to overwrite {name} (use --force {name})", file=sys.stderr)
            status = 1
        else:
            path.write_text(text)
            print(f"wrote {name}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
