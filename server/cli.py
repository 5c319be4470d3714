"""The `koppi` command: serve, migrate, manage users and organisations, run the demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from client import cli as client_commands
from crypto.clock import OsRng, SystemClock
from crypto.errors import KoppiError
from crypto.identity import SUBJECT_ORG_KEY, OrgCert, Revocation
from crypto.keyfile import open_keyfile, seal_keyfile
from crypto.logentries import AuditHead
from crypto.primitives import SigningKey, check_ed25519_public, sha256
from crypto.treehead import key_id
from server.app import LOG_KEY_NAME
from server.audit import verify_chain
from server.config import Config, ConfigError, load_config
from server.consent_documents import LANGUAGES
from server.db.engine import make_engine
from server.db.migrate import SchemaOutdated, require_current_schema, upgrade
from server.db.tables import Organisation, Thread
from server.errors import ApiError
from server.logging import configure
from server.repositories.accounts import AccountRepository
from server.repositories.consents import ConsentRepository
from server.repositories.devices import DeviceRepository
from server.repositories.threads import ThreadRepository
from server.repositories.translog import LogRepository
from server.right_to_know import render_report
from server.services.admission import AdmissionService
from server.services.auth import AuthService
from server.services.organisations import OrganisationService
from server.services.right_to_know import RightToKnowService
from server.services.threads import CLIENT_REF
from server.services.translog import append_entry
from server.services.users import check_roles

DEMO_PASSWORD = "koppi-demo-2026"  # noqa: S105 - printed by `koppi demo`; demo database only
DEMO_ORGS = [
    ("Kela", "0246246-0", ["kela.expert", "kela.admin"]),
    ("Pirkanmaan hyvinvointialue", "3221308-6", ["sote.social", "sote.nurse"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="koppi", description="Koppi case-conference server")
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--database-url", help="SQLAlchemy URL (sqlite+aiosqlite / postgresql+asyncpg)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    db = sub.add_parser("db", help="database maintenance")
    db.add_subparsers(dest="db_command", required=True).add_parser(
        "upgrade", help="migrate to head"
    )
    org = sub.add_parser("org", help="organisations")
    org_commands = org.add_subparsers(dest="org_command", required=True)
    org_add = org_commands.add_parser("add")
    org_add.add_argument("name")
    org_add.add_argument("business_id", help="Y-tunnus")
    org_key = org_commands.add_parser(
        "key", help="create an organisation signing key (its admin's), sealed with a passphrase"
    )
    org_key.add_argument("key_file", type=Path)
    org_admit = org_commands.add_parser(
        "admit", help="operator: certify an organisation's key with the root and log it"
    )
    org_admit.add_argument("business_id", help="Y-tunnus")
    org_admit.add_argument("org_public_key", help="the organisation key's public key, hex")
    org_admit.add_argument("--root-key", type=Path, required=True)
    org_rotate = org_commands.add_parser(
        "rotate",
        help="operator: a new organisation key, signed by the root and by the previous key "
        "(certificates logged before stay valid). Without NEW_PUBLIC_KEY, completes the rotation "
        "request an admin made in the browser; with it, --previous-key is the current key's file",
    )
    org_rotate.add_argument("business_id", help="Y-tunnus")
    org_rotate.add_argument(
        "new_public_key", nargs="?", help="the new organisation key's public key, hex"
    )
    org_rotate.add_argument("--root-key", type=Path, required=True)
    org_rotate.add_argument("--previous-key", type=Path)
    org_suspend = org_commands.add_parser(
        "suspend", help="operator: revoke the organisation's current key with the root"
    )
    org_suspend.add_argument("business_id", help="Y-tunnus")
    org_suspend.add_argument("--root-key", type=Path, required=True)
    user = sub.add_parser("user", help="professionals")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    user_add = user_commands.add_parser("add")
    user_add.add_argument("business_id", help="the organisation's Y-tunnus")
    user_add.add_argument("username")
    user_add.add_argument("--role", action="append", default=[], help="repeat for several")
    user_add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    user_disable = user_commands.add_parser(
        "disable", help="operator: refuse the user's logins; their sessions and tokens end"
    )
    user_disable.add_argument("username")
    user_enable = user_commands.add_parser("enable", help="operator: let a disabled user log in")
    user_enable.add_argument("username")
    user_roles = user_commands.add_parser("roles", help="operator: replace a user's roles")
    user_roles.add_argument("username")
    user_roles.add_argument(
        "--roles", required=True, help="comma-separated, e.g. professional,org-admin ('' for none)"
    )
    root = sub.add_parser("root", help="the deployment root key (operator)")
    root_commands = root.add_subparsers(dest="root_command", required=True)
    root_init = root_commands.add_parser(
        "init", help="create the root key, sealed with a passphrase; prints what clients pin"
    )
    root_init.add_argument("key_file", type=Path)
    root_show = root_commands.add_parser(
        "fingerprint", help="print the root public key and key id that clients pin"
    )
    root_show.add_argument("key_file", type=Path)
    monitor = sub.add_parser(
        "monitor", help="an organisation's witness: check the log and cosign the heads it checked"
    )
    monitor.add_argument("--server", required=True, help="e.g. https://koppi.example.fi")
    monitor.add_argument("--log-public-key", required=True, help="hex, as `koppi log init` printed")
    monitor.add_argument(
        "--root-public-key", required=True, help="hex, as `koppi root init` printed (pinned)"
    )
    monitor.add_argument("--witness-key", type=Path, required=True, help="sealed (koppi org key)")
    monitor.add_argument("--org-id", required=True, help="the organisation's id (UUID)")
    monitor.add_argument("--state", type=Path, required=True)
    monitor.add_argument("--interval", type=float, default=60.0)
    monitor.add_argument("--once", action="store_true")
    client_commands.add_commands(sub)
    log_cmd = sub.add_parser("log", help="the transparency log")
    log_init = log_cmd.add_subparsers(dest="log_command", required=True).add_parser(
        "init", help="create the log's signing key, sealed with a passphrase"
    )
    log_init.add_argument("key_file", type=Path)
    audit = sub.add_parser("audit", help="the audit trail (operator)")
    audit.add_subparsers(dest="audit_command", required=True).add_parser(
        "verify", help="walk the audit trail's hash chain; exit 1 at the first broken event"
    )
    report = sub.add_parser(
        "report",
        help="operator: the client's right-to-know report (Act 703/2023, section 11) of every "
        "thread of a client reference: who processed the case data, disclosures, when, basis",
    )
    report.add_argument("--client-ref", required=True, help="64 lowercase hex digits")
    report.add_argument("--format", choices=("json", "html"), default="json")
    report.add_argument("--lang", choices=LANGUAGES, default="fi", help="for --format html")
    demo = sub.add_parser("demo", help="create a demo database and serve it")
    demo.add_argument("--host")
    demo.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    if args.command in ("client", "export"):  # a client: no server configuration or logging
        return client_commands.run(args)

    overrides: dict[str, Any] = {
        "database_url": args.database_url,
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
    }
    try:
        cfg = load_config(args.config, overrides=overrides)
    except ConfigError as e:
        print(f"koppi: {e}", file=sys.stderr)
        return 2
    configure(cfg.log_format)
    try:
        if args.command == "serve":
            return serve_command(cfg)
        if args.command == "db":
            asyncio.run(_upgrade(cfg))
            print("database is at the latest revision")
            return 0
        if args.command == "org" and args.org_command == "add":
            asyncio.run(_add_org(cfg, args.name, args.business_id))
            return 0
        if args.command == "org" and args.org_command == "key":
            return seal_new_key(args.key_file, ORG_KEY_NAME, "KOPPI_ORG_KEY_PASSPHRASE")
        if args.command == "org" and args.org_command == "admit":
            return asyncio.run(
                _admit_org(cfg, args.business_id, args.org_public_key, args.root_key)
            )
        if args.command == "org" and args.org_command == "rotate":
            rotate = _rotate_org(
                cfg, args.business_id, args.new_public_key, args.root_key, args.previous_key
            )
            return asyncio.run(rotate)
        if args.command == "org" and args.org_command == "suspend":
            return asyncio.run(_suspend_org(cfg, args.business_id, args.root_key))
        if args.command == "root" and args.root_command == "fingerprint":
            root_key = open_sealed_key(args.key_file, ROOT_KEY_NAME, "KOPPI_ROOT_KEY_PASSPHRASE")
            print_public(root_key.public)
            return 0
        if args.command == "root":
            return seal_new_key(args.key_file, ROOT_KEY_NAME, "KOPPI_ROOT_KEY_PASSPHRASE")
        if args.command == "user" and args.user_command == "add":
            password = (
                sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
            )
            return asyncio.run(_add_user(cfg, args.business_id, args.username, password, args.role))
        if args.command == "user" and args.user_command in ("disable", "enable"):
            disable = args.user_command == "disable"
            return asyncio.run(_set_disabled(cfg, args.username, disable))
        if args.command == "user" and args.user_command == "roles":
            roles = [r.strip() for r in args.roles.split(",") if r.strip()]
            return asyncio.run(_set_roles(cfg, args.username, roles))
        if args.command == "monitor":
            return asyncio.run(_monitor(args))
        if args.command == "log":
            return seal_new_key(args.key_file, LOG_KEY_NAME, "KOPPI_LOG_KEY_PASSPHRASE")
        if args.command == "audit":
            return asyncio.run(_verify_audit(cfg))
        if args.command == "report":
            return asyncio.run(_report(cfg, args.client_ref, args.format, args.lang))
        if args.command == "demo":
            return demo_command(cfg)
    except SchemaOutdated as e:
        print(f"koppi: {e}", file=sys.stderr)
        return 3
    except (KeyFileError, ConfigError) as e:
        print(f"koppi: {e}", file=sys.stderr)
        return 2
    return 2


class KeyFileError(Exception):
    """A sealed key file that cannot be read or opened: said plainly, no traceback."""


@contextlib.asynccontextmanager
async def _database(cfg: Config) -> AsyncIterator[AsyncEngine]:
    """The configured database for one command, refused unless it is at the latest migration."""
    engine = make_engine(cfg.database_url)
    try:
        await require_current_schema(engine)
        yield engine
    finally:
        await engine.dispose()


async def _verify_audit(cfg: Config) -> int:
    """Walk the chain from its start (the genesis, or the anchor a retention prune left, which
    must be a checkpoint in the transparency log), then hold it against the newest checkpoint
    there."""
    async with _database(cfg) as engine:
        repo = DeviceRepository(engine)
        found = await repo.audit_anchor()
        links = await repo.audit_chain()
        checkpoints = await repo.log_entries_of_kind("audit-head")
    start = None if found is None else found[0]
    anchored_at = None
    if start is not None:
        logged = {entry: index for index, entry in checkpoints}
        anchored_at = logged.get(AuditHead(start.events, start.last_id, start.head_hash).encode())
        if anchored_at is None:
            print(
                f"koppi: audit chain BROKEN: it starts after pruned event {start.last_id}"
                f" ({start.events} events, hash {start.head_hash.hex()[:16]}...), which is no"
                " checkpoint in the transparency log: its start was rewritten",
                file=sys.stderr,
            )
            return 1
    verdict = verify_chain(links, start)
    if verdict.broken_at is not None:
        print(
            f"koppi: audit chain BROKEN at event {verdict.broken_at}: {verdict.why}"
            f" ({verdict.events} events before it hold)",
            file=sys.stderr,
        )
        return 1
    if checkpoints:
        index, entry = max(checkpoints)
        head = AuditHead.decode(entry)
        if start is not None and head.last_id == start.last_id:
            holds = (head.events, head.head_hash) == (start.events, start.head_hash)
        else:
            pruned = 0 if start is None else start.events
            position = next((i for i, link in enumerate(links) if link.id == head.last_id), None)
            holds = position is not None and (
                pruned + position + 1,
                links[position].hash,
            ) == (head.events, head.head_hash)
        if not holds:
            print(
                f"koppi: audit chain BROKEN: it does not contain the checkpoint logged at index"
                f" {index} ({head.events} events, event {head.last_id} with hash"
                f" {head.head_hash.hex()[:16]}...): rewritten or cut short",
                file=sys.stderr,
            )
            return 1
    print(
        f"audit chain intact: {verdict.events} events, head {verdict.head.hex()}"
        + (
            f"; starts after pruned event {start.last_id} (the checkpoint at log index"
            f" {anchored_at}), {len(links)} kept"
            if start is not None
            else ""
        )
        + (f"; holds the checkpoint at log index {max(checkpoints)[0]}" if checkpoints else "")
    )
    return 0


async def _report(cfg: Config, client_ref: str, fmt: str, lang: str) -> int:
    """The right-to-know report of one client across the deployment, on stdout."""
    if not CLIENT_REF.fullmatch(client_ref):
        print("koppi: --client-ref must be 64 lowercase hex digits", file=sys.stderr)
        return 2
    async with _database(cfg) as engine:
        clock = SystemClock()
        threads, consents = ThreadRepository(engine), ConsentRepository(engine)
        trail, accounts = DeviceRepository(engine), AccountRepository(engine)
        admission = AdmissionService(threads, consents, trail, clock)
        service = RightToKnowService(threads, consents, trail, accounts, admission, clock)
        report = await service.of_client(client_ref)
    if not report["threads"]:
        print("koppi: no thread in this deployment has that client reference", file=sys.stderr)
    if fmt == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(render_report(report, lang))
    return 0


def serve_command(cfg: Config, banner: str = "") -> int:
    asyncio.run(_check_schema(cfg))
    from server.app import create_app

    # The SQLite writer thread re-takes the GIL after every sqlite call; while the event loop is
    # busy, the default 5 ms switch interval would add that much to each re-take.
    sys.setswitchinterval(0.0002)
    app = create_app(cfg, clock=SystemClock(), rng=OsRng())
    print(f"Koppi listening on http://{cfg.host}:{cfg.port}/{banner}", flush=True)
    web.run_app(app, host=cfg.host, port=cfg.port, print=None)
    return 0


async def _check_schema(cfg: Config) -> None:
    async with _database(cfg):
        pass


async def _upgrade(cfg: Config) -> None:
    engine = make_engine(cfg.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def _auth(engine: Any) -> AuthService:
    return AuthService(
        AccountRepository(engine),
        SystemClock(),
        OsRng(),
        session_lifetime_s=1,
        token_lifetime_s=1,
        attempts=1,
        window_s=1,
    )


async def _add_org(cfg: Config, name: str, business_id: str) -> uuid.UUID:
    async with _database(cfg) as engine:
        org = Organisation(
            id=uuid.uuid4(),
            name=name,
            business_id=business_id,
            status="active",
            created_at=SystemClock().now_ms(),
        )
        await AccountRepository(engine).add_organisation(org)
        print(f"organisation {name} ({business_id}) added: {org.id}")
        return org.id


async def _add_user(
    cfg: Config, business_id: str, username: str, password: str, roles: list[str]
) -> int:
    async with _database(cfg) as engine:
        accounts = AccountRepository(engine)
        org = await accounts.organisation_by_business_id(business_id)
        if org is None:
            print(f"koppi: no organisation with business id {business_id}", file=sys.stderr)
            return 2
        if await accounts.user_by_name(username) is not None:
            print(f"koppi: the username {username} is taken", file=sys.stderr)
            return 2
        try:
            await _auth(engine).create_user(org.id, username, password, check_roles(roles))
        except ApiError as e:
            print(f"koppi: {e.message}", file=sys.stderr)
            return 2
        print(f"user {username} added to {org.name}")
        return 0


async def _set_disabled(cfg: Config, username: str, disable: bool) -> int:
    """The operator's switch (an organisation's admin has the same in the admin console). The
    database is changed at once; a running server refuses the user's next request, but closes
    their open websockets only when the disabling goes through its API."""
    async with _database(cfg) as engine:
        accounts = AccountRepository(engine)
        user = await accounts.user_by_name(username)
        if user is None:
            print(f"koppi: no user {username}", file=sys.stderr)
            return 2
        if disable:
            await accounts.disable_user(user.id)
            print(f"user {username} disabled: sessions ended, API tokens revoked")
        else:
            await accounts.enable_user(user.id)
            print(f"user {username} enabled")
        return 0


async def _set_roles(cfg: Config, username: str, roles: list[str]) -> int:
    try:
        wanted = sorted(check_roles(roles))
    except ApiError as e:
        print(f"koppi: {e.message}", file=sys.stderr)
        return 2
    async with _database(cfg) as engine:
        accounts = AccountRepository(engine)
        user = await accounts.user_by_name(username)
        if user is None:
            print(f"koppi: no user {username}", file=sys.stderr)
            return 2
        await accounts.set_user_roles(user.id, wanted)
        print(f"user {username} roles: {', '.join(wanted) or '(none)'}")
        return 0


DEMO_THREAD = uuid.UUID("00000000-0000-4000-8000-00000000d3e0")


async def _seed_demo(cfg: Config) -> list[str]:
    """Two organisations, four professionals (those who are not admins may record consents),
    one case-conference thread waiting for the client's consent; idempotent."""
    engine = make_engine(cfg.database_url)
    try:
        await upgrade(engine)
        accounts, auth = AccountRepository(engine), _auth(engine)
        logins: list[str] = []
        if await accounts.organisation_by_business_id(DEMO_ORGS[0][1]) is not None:
            return [u for _, _, users in DEMO_ORGS for u in users]
        members: list[uuid.UUID] = []
        now = SystemClock().now_ms()
        for name, business_id, usernames in DEMO_ORGS:
            org = Organisation(
                id=uuid.uuid4(), name=name, business_id=business_id, status="active", created_at=now
            )
            await accounts.add_organisation(org)
            for username in usernames:
                roles = (
                    {"org-admin"}
                    if username.endswith("admin")
                    else {"professional", "consent-recorder"}
                )
                user = await auth.create_user(org.id, username, DEMO_PASSWORD, frozenset(roles))
                members.append(user.id)
                logins.append(username)
        thread = Thread(
            id=DEMO_THREAD,
            client_ref=sha256(b"asiakas-demo-0001").hex(),  # pseudonymous, 32 bytes
            purpose="rehabilitation-planning",
            next_seq=1,
            created_at=now,
        )
        await ThreadRepository(engine).add_thread(thread, members)
        return logins
    finally:
        await engine.dispose()


ROOT_KEY_NAME = "root-signing-key"
ORG_KEY_NAME = "org-signing-key"


def seal_new_key(path: Path, name: str, passphrase_env: str) -> int:
    """Create an Ed25519 key (the deployment root, an organisation's, or the log's), sealed with
    argon2id under the passphrase from `passphrase_env` or a prompt; print what others pin."""
    if path.exists():
        print(f"koppi: {path} exists; refusing to replace a key", file=sys.stderr)
        return 2
    passphrase = os.environ.get(passphrase_env) or getpass.getpass("Passphrase: ")
    if not passphrase:
        print("koppi: an empty passphrase is refused", file=sys.stderr)
        return 2
    key = SigningKey.generate(OsRng())
    blob = seal_keyfile({name: key.seed_bytes()}, passphrase, OsRng())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
    print_public(key.public)
    return 0


def print_public(public: bytes) -> None:
    print(f"public key: {public.hex()}")
    print(f"key id:     {key_id(public).hex()}")


def open_sealed_key(path: Path, name: str, passphrase_env: str) -> SigningKey:
    try:
        sealed = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read {path}: {e.strerror}") from None
    passphrase = os.environ.get(passphrase_env) or getpass.getpass("Passphrase: ")
    try:
        secrets = open_keyfile(sealed, passphrase)
    except KoppiError:
        raise KeyFileError(f"{path}: wrong passphrase, or not a key file Koppi sealed") from None
    if name not in secrets:
        raise KeyFileError(f"{path} holds no {name}")
    return SigningKey.from_seed(secrets[name])


async def _admit_org(cfg: Config, business_id: str, org_public_hex: str, root_file: Path) -> int:
    """The operator certifies an organisation's first key (generation 0) and logs it."""
    try:
        org_public = check_ed25519_public(bytes.fromhex(org_public_hex))
    except (ValueError, KoppiError):
        print(
            "koppi: the organisation public key must be 64 hex digits of an Ed25519 key",
            file=sys.stderr,
        )
        return 2
    root = open_sealed_key(root_file, ROOT_KEY_NAME, "KOPPI_ROOT_KEY_PASSPHRASE")
    async with _database(cfg) as engine:
        org = await AccountRepository(engine).organisation_by_business_id(business_id)
        if org is None:
            print(
                f"koppi: no organisation {business_id} (add it with `koppi org add`)",
                file=sys.stderr,
            )
            return 2
        now = SystemClock().now()
        cert = OrgCert.issue(
            root=root,
            org_id=org.id.bytes,
            name=org.name,
            business_id=org.business_id,
            org_public=org_public,
            issued_at=now,
        )
        index = await append_entry(
            LogRepository(engine), "org", cert.encode(), None, now=now * 1000
        )
        print(f"organisation {org.name} ({business_id}) admitted: log index {index}")
        return 0


async def _current_org_cert(engine: Any, org_id: uuid.UUID) -> tuple[OrgCert | None, bool]:
    """The organisation's newest key certificate in the log, and whether the root revoked it."""
    repo = DeviceRepository(engine)
    current = None
    for _, entry in await repo.log_entries_of_kind("org"):
        cert = OrgCert.decode(entry)
        if cert.org_id == org_id.bytes and (
            current is None or cert.generation > current.generation
        ):
            current = cert
    revoked = False
    for _, entry in await repo.log_entries_of_kind("revocation"):
        rev = Revocation.decode(entry)
        if (
            current is not None
            and rev.subject_kind == SUBJECT_ORG_KEY
            and rev.subject == current.key_id
        ):
            revoked = True
    return current, revoked


async def _rotate_org(
    cfg: Config,
    business_id: str,
    new_public_hex: str | None,
    root_file: Path,
    previous_file: Path | None,
) -> int:
    """Either both halves here (the new public key and the previous key's file), or the root's
    half of a rotation request the organisation's admin signed in the browser."""
    if (new_public_hex is None) != (previous_file is None):
        print("koppi: give NEW_PUBLIC_KEY with --previous-key, or neither", file=sys.stderr)
        return 2
    async with _database(cfg) as engine:
        org = await AccountRepository(engine).organisation_by_business_id(business_id)
        orgs = OrganisationService(DeviceRepository(engine), None, SystemClock())
        current = None if org is None else await orgs.current_key(org.id)
        if org is None or current is None:
            print(f"koppi: {business_id} has no current key in the log", file=sys.stderr)
            return 2
        now = SystemClock().now()
        if new_public_hex is None or previous_file is None:
            try:
                request = await orgs.pending_rotation(org.id)
            except ApiError as e:
                print(f"koppi: {e.code}: {e.message}", file=sys.stderr)
                return 2
            new_public = request.cert.org_public
            print(f"new key {new_public.hex()}, requested by the organisation's admin")
            cert = request.sign(
                open_sealed_key(root_file, ROOT_KEY_NAME, "KOPPI_ROOT_KEY_PASSPHRASE")
            )
        else:
            try:
                new_public = check_ed25519_public(bytes.fromhex(new_public_hex))
            except (ValueError, KoppiError):
                print("koppi: the new public key must be 64 hex digits of an Ed25519 key",
                      file=sys.stderr)  # fmt: skip
                return 2
            root = open_sealed_key(root_file, ROOT_KEY_NAME, "KOPPI_ROOT_KEY_PASSPHRASE")
            previous = open_sealed_key(previous_file, ORG_KEY_NAME, "KOPPI_ORG_KEY_PASSPHRASE")
            if current[0].org_public != previous.public:
                print(
                    "koppi: --previous-key is not the organisation's current key", file=sys.stderr
                )
                return 2
            cert = OrgCert.issue(
                root=root,
                org_id=org.id.bytes,
                name=org.name,
                business_id=org.business_id,
                org_public=new_public,
                issued_at=now,
                previous=(current[0], previous),
            )
        index = await append_entry(
            LogRepository(engine), "org", cert.encode(), None, now=now * 1000
        )
        await orgs.rotation_logged(org.id, cert)
        print(
            f"organisation key of {business_id} rotated to generation {cert.generation}: "
            f"log index {index}"
        )
        return 0


async def _suspend_org(cfg: Config, business_id: str, root_file: Path) -> int:
    root = open_sealed_key(root_file, ROOT_KEY_NAME, "KOPPI_ROOT_KEY_PASSPHRASE")
    async with _database(cfg) as engine:
        accounts = AccountRepository(engine)
        org = await accounts.organisation_by_business_id(business_id)
        current, revoked = (None, False) if org is None else await _current_org_cert(engine, org.id)
        if org is None or current is None or revoked:
            print(f"koppi: {business_id} has no current key in the log", file=sys.stderr)
            return 2
        now = SystemClock().now()
        rev = Revocation.issue(
            root,
            subject_kind=SUBJECT_ORG_KEY,
            org_id=org.id.bytes,
            subject=current.key_id,
            reason="other",
            issued_at=now,
        )
        index = await append_entry(
            LogRepository(engine), "revocation", rev.encode(), None, now=now * 1000
        )
        await accounts.set_organisation_status(org.id, "suspended")
        print(f"organisation {business_id} suspended: its key revoked at log index {index}")
        return 0


async def _monitor(args: argparse.Namespace) -> int:
    """Run `client.monitor.Monitor` against a server; its bearer token comes from
    KOPPI_MONITOR_TOKEN. Exit code 1 if a round raised an alert (with --once)."""
    import aiohttp

    from client.monitor import Forbidden, Monitor

    token = os.environ.get("KOPPI_MONITOR_TOKEN", "")
    if not token:
        print(
            "koppi: set KOPPI_MONITOR_TOKEN to the monitor account's bearer token", file=sys.stderr
        )
        return 2
    witness = open_sealed_key(args.witness_key, ORG_KEY_NAME, "KOPPI_ORG_KEY_PASSPHRASE")
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url=args.server, headers=headers) as http:

        async def get(path: str) -> Any:
            async with http.get(path) as r:
                if r.status == 403:
                    raise Forbidden(path)
                r.raise_for_status()
                return await r.json()

        async def get_bytes(path: str) -> bytes:
            async with http.get(path) as r:
                r.raise_for_status()
                return await r.read()

        async def post(path: str, body: dict[str, Any]) -> Any:
            async with http.post(path, json=body) as r:
                r.raise_for_status()
                return await r.json()

        monitor = Monitor(
            get,
            post,
            log_public=bytes.fromhex(args.log_public_key),
            root_public=bytes.fromhex(args.root_public_key),
            witness=witness,
            org_id=uuid.UUID(args.org_id).bytes,
            state=args.state,
            clock=SystemClock(),
            get_bytes=get_bytes,
        )
        while True:
            found = await monitor.check_once()
            for line in found.ours:
                print(f"entry naming our organisation: {line}", flush=True)
            for line in found.notes:
                print(f"note: {line}", flush=True)
            for line in found.alerts:
                print(f"ALERT: {line}", file=sys.stderr, flush=True)
            print(f"log size {found.size}: {'cosigned' if found.cosigned else 'NOT cosigned'}")
            if args.once:
                return 1 if found.alerts else 0
            await asyncio.sleep(args.interval)


def demo_command(cfg: Config) -> int:
    logins = asyncio.run(_seed_demo(cfg))
    lines = "\n".join(f"  {u:<14} password: {DEMO_PASSWORD}" for u in logins)
    banner = f"\nDemo logins (database {cfg.database_url}):\n{lines}"
    banner += (
        f"\nThe demo case conference waits for the client's consent: enrol a device at /devices,"
        f" have it approved at /admin, then record it at /threads/{DEMO_THREAD}/consent"
        f" (the thread's export page, decrypted in the browser: /threads/{DEMO_THREAD}/export)"
    )
    if not cfg.log_key_file:  # the admin console needs the transparency log: demo keys
        cfg, root_file = _demo_keys(cfg)
        url = cfg.database_url
        if url.startswith("sqlite") and "///" in url:  # absolute, to run from anywhere
            url = f"sqlite+aiosqlite:///{Path(url.split('///', 1)[1]).resolve()}"
        banner += (
            f"\nTransparency log on; demo root key {root_file.resolve()} (passphrase"
            f" {DEMO_KEYS}).\nAdmit an organisation key created at /admin with:\n"
            f"  KOPPI_ROOT_KEY_PASSPHRASE={DEMO_KEYS} koppi --database-url {url}"
            f" org admit BUSINESS_ID PUBLIC_KEY --root-key {root_file.resolve()}"
        )
    return serve_command(cfg, banner)


DEMO_KEYS = "koppi-demo-keys"


def _demo_keys(cfg: Config) -> tuple[Config, Path]:
    """A log key and a root key for the demo, sealed with a printed passphrase next to the
    database (made once): real deployments make them with `koppi log init` / `root init`."""
    url = cfg.database_url
    on_disk = url.startswith("sqlite") and "///" in url
    folder = Path(url.split("///", 1)[1]).parent if on_disk else Path("koppi-data")
    folder.mkdir(parents=True, exist_ok=True)
    keys = {"demo-log.key": LOG_KEY_NAME, "demo-root.key": ROOT_KEY_NAME}
    for file, name in keys.items():
        if not (folder / file).exists():
            key = SigningKey.generate(OsRng())
            blob = seal_keyfile({name: key.seed_bytes()}, DEMO_KEYS, OsRng())
            (folder / file).write_bytes(blob)
    os.environ["KOPPI_LOG_KEY_PASSPHRASE"] = DEMO_KEYS
    root = SigningKey.from_seed(
        open_keyfile((folder / "demo-root.key").read_bytes(), DEMO_KEYS)[ROOT_KEY_NAME]
    )
    # The browser pages that check the log (a thread's export page) pin the demo root.
    cfg = replace(cfg, log_key_file=str(folder / "demo-log.key"), root_public_key=root.public.hex())
    return cfg, folder / "demo-root.key"
