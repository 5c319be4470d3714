"""`koppi client init` and `koppi export`: what a record system scripts.

    KOPPI_TOKEN=... KOPPI_KEY_PASSPHRASE=... koppi client init --key-file records.key \\
        --server https://koppi.example.fi --root-public HEX --log-public-key HEX --label records
    # the organisation's admin compares the printed fingerprint and approves the device;
    # a member adds it to the thread; then, as often as the record system likes:
    KOPPI_TOKEN=... KOPPI_KEY_PASSPHRASE=... koppi export --key-file records.key \\
        --thread UUID --org UUID --format json [--after SEQ] [--out FILE]

The token (`POST /api/tokens`) is the record-system user's; the key file holds the device's keys
and the pins (server, root key, log key, witnesses), sealed with the passphrase. The export's
`next_after` is what to pass as `--after` next time.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from client.device import enrol
from client.export import Exporter
from client.keystore import KeyStore, Pins
from client.transport import Http
from client.trust import LogFollower
from crypto.clock import OsRng, SystemClock
from crypto.errors import KoppiError
from crypto.identity import TrustStore

TOKEN_ENV = "KOPPI_TOKEN"  # noqa: S105 (the name of the variable)
PASSPHRASE_ENV = "KOPPI_KEY_PASSPHRASE"  # noqa: S105


def add_commands(sub: Any) -> None:
    client = sub.add_parser("client", help="a Python client device (e.g. a record system)")
    init = client.add_subparsers(dest="client_command", required=True).add_parser(
        "init", help="generate this device's keys, seal them with the pins, enrol the device"
    )
    init.add_argument("--key-file", type=Path, required=True)
    init.add_argument("--server", required=True, help="e.g. https://koppi.example.fi")
    init.add_argument("--root-public", required=True, help="hex, as `koppi root show` printed")
    init.add_argument("--log-public-key", required=True, help="hex, as `koppi log init` printed")
    init.add_argument("--witness", action="append", default=[], help="hex; repeat for each")
    init.add_argument("--quorum", type=int, default=0, help="cosignatures a head needs")
    init.add_argument("--label", default="record system", help="the device's name for admins")

    export = sub.add_parser(
        "export", help="export the messages an organisation may store, decrypted, as JSON"
    )
    export.add_argument("--key-file", type=Path, required=True)
    export.add_argument("--thread", type=uuid.UUID, required=True)
    export.add_argument("--org", type=uuid.UUID, required=True)
    export.add_argument("--format", choices=["json"], default="json")
    export.add_argument("--after", type=int, default=0, help="only what was sequenced after")
    export.add_argument("--out", type=Path, help="write here (mode 0600) instead of stdout")


def run(args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"koppi: set {TOKEN_ENV} to the user's API token (POST /api/tokens)",
              file=sys.stderr)  # fmt: skip
        return 2
    passphrase = os.environ.get(PASSPHRASE_ENV) or getpass.getpass("Key file passphrase: ")
    try:
        if args.command == "client":
            return asyncio.run(_init(args, token, passphrase))
        return asyncio.run(_export(args, token, passphrase))
    except KoppiError as e:
        print(f"koppi: {e.code}: {e}", file=sys.stderr)
        return 1


async def _init(args: argparse.Namespace, token: str, passphrase: str) -> int:
    try:
        pins = Pins(args.server, bytes.fromhex(args.root_public),
                    bytes.fromhex(args.log_public_key),
                    tuple(bytes.fromhex(w) for w in args.witness), args.quorum)  # fmt: skip
    except ValueError:
        print("koppi: keys are hex", file=sys.stderr)
        return 2
    pins.log_view(SystemClock())  # refuse bad pins before making keys
    store = KeyStore.create(args.key_file, passphrase, pins, OsRng())
    async with Http(pins.server, token) as http:
        device = await enrol(http, store.device(), args.label)
    print(f"device {device['device_id']} enrolled, waiting for an admin's approval")
    print(f"fingerprint: {device['fingerprint']}")
    print(f"             {' '.join(device['fingerprint_words'])}")
    return 0


async def _export(args: argparse.Namespace, token: str, passphrase: str) -> int:
    store = KeyStore.open(args.key_file, passphrase, OsRng())
    pins, clock = store.pins(), SystemClock()
    follower = LogFollower(TrustStore(pins.root_public, pins.log_view(clock)))
    async with Http(pins.server, token) as http:
        done = await Exporter(http.get, store.device(), follower, clock).export(
            args.thread, args.org, args.after
        )
    text = json.dumps(done.to_json(), ensure_ascii=False, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    print(
        f"koppi: exported {len(done.messages)} messages, refused {len(done.refused)};"
        f" next --after {done.next_after}",
        file=sys.stderr,
    )
    return 0 if not done.refused else 4
