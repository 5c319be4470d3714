"""Migrations build the schema the code expects, on both databases; `serve` refuses an old one;
configuration precedence is file < environment < flags."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from server.config import ConfigError, load_config
from server.db import tables  # noqa: F401
from server.db.base import Base
from server.db.engine import make_engine
from server.db.migrate import (
    SchemaOutdated,
    current_revision,
    head_revision,
    require_current_schema,
    upgrade,
)

ROOT = Path(__file__).resolve().parents[2]


async def test_migrations_from_empty_match_the_tables(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with pytest.raises(SchemaOutdated):
            await require_current_schema(engine)
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        await require_current_schema(engine)

        def diff(conn: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
        await upgrade(engine)  # idempotent
    finally:
        await engine.dispose()


def _koppi(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_serve_refuses_an_unmigrated_database_with_a_clear_message(sqlite_url: str) -> None:
    result = _koppi("--database-url", sqlite_url, "serve", "--port", "0")
    assert result.returncode == 3
    assert "koppi db upgrade" in result.stderr and "not initialised" in result.stderr


def test_db_upgrade_then_user_add_then_serve_starts(sqlite_url: str) -> None:
    assert _koppi("--database-url", sqlite_url, "db", "upgrade").returncode == 0
    assert _koppi("--database-url", sqlite_url, "org", "add", "Kela", "0246246-0").returncode == 0
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "--database-url",
            sqlite_url,
            "user",
            "add",
            "0246246-0",
            "anna",
            "--role",
            "professional",
            "--password-stdin",
        ],
        input="a long enough password\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    assert "a long enough password" not in added.stdout + added.stderr
    refused = _koppi(
        "--database-url", sqlite_url, "user", "add", "9999999-9", "bob", "--password-stdin"
    )
    assert refused.returncode != 0


def test_config_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "koppi.toml"
    path.write_text('[koppi]\nport = 1111\nhost = "0.0.0.0"\nsecure_cookies = true\n')
    assert load_config(path, env={}).port == 1111
    assert load_config(path, env={"KOPPI_PORT": "2222"}).port == 2222
    cfg = load_config(path, env={"KOPPI_PORT": "2222"}, overrides={"port": 3333})
    assert (cfg.port, cfg.host, cfg.secure_cookies) == (3333, "0.0.0.0", True)


@pytest.mark.parametrize(
    ("content", "env"),
    [
        ("[koppi]\nprot = 1\n", {}),
        ("", {"KOPPI_PORT": "eighty"}),
        ('[koppi]\nlog_format = "xml"\n', {}),
        ('[koppi]\nroot_public_key = "abcd"\n', {}),
        ("", {"KOPPI_ROOT_PUBLIC_KEY": "zz" * 32}),
        ("[koppi]\nlog_quorum = 1\n", {}),
        ("[koppi]\nlog_quorum = -1\n", {}),
        ("", {"KOPPI_AUDIT_DELIVERY_FLUSH_S": "0"}),
        ("[koppi]\naudit_retention_days = 0\n", {}),
        ("", {"KOPPI_CONSENT_WARNING_DAYS": "-1"}),
    ],
    ids=[
        "unknown-key",
        "bad-env-type",
        "bad-choice",
        "short-root-key",
        "root-key-not-hex",
        "quorum-without-witnesses",
        "negative-quorum",
        "no-delivery-flush",
        "no-audit-retention",
        "negative-consent-warning",
    ],
)
def test_bad_configuration_is_an_error(tmp_path: Path, content: str, env: dict[str, str]) -> None:
    path = tmp_path / "koppi.toml"
    path.write_text(content)
    with pytest.raises(ConfigError):
        load_config(path, env=env)


def test_log_init_seals_a_log_key_that_serve_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.app import load_log_key

    key_file = tmp_path / "log.key"
    env = {"KOPPI_LOG_KEY_PASSPHRASE": "log key passphrase for tests"}
    made = _koppi("log", "init", str(key_file), env=env)
    assert made.returncode == 0, made.stderr
    public = made.stdout.split("public key:")[1].split()[0]
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert public.encode() not in key_file.read_bytes()
    again = _koppi("log", "init", str(key_file), env=env)
    assert again.returncode == 2 and "refusing" in again.stderr
    monkeypatch.setenv("KOPPI_LOG_KEY_PASSPHRASE", env["KOPPI_LOG_KEY_PASSPHRASE"])
    assert load_log_key(str(key_file)).public.hex() == public
    monkeypatch.setenv("KOPPI_LOG_KEY_PASSPHRASE", "wrong")
    with pytest.raises(ConfigError, match="wrong KOPPI_LOG_KEY_PASSPHRASE"):
        load_log_key(str(key_file))
    monkeypatch.setenv("KOPPI_LOG_KEY_PASSPHRASE", "")
    with pytest.raises(ConfigError):
        load_log_key(str(key_file))


def test_the_operator_admits_an_organisation_into_the_log(sqlite_url: str, tmp_path: Path) -> None:
    """root init -> (org admin) org key -> org add -> org admit: the log holds an OrgCert that
    chains to the printed root key."""
    import asyncio

    from crypto.identity import OrgCert
    from crypto.primitives import ed25519_verify
    from server.db.engine import make_engine as engine_for
    from server.repositories.translog import LogRepository

    env = {
        "KOPPI_ROOT_KEY_PASSPHRASE": "root passphrase for tests",
        "KOPPI_ORG_KEY_PASSPHRASE": "org passphrase for tests",
    }
    db = ["--database-url", sqlite_url]
    assert _koppi(*db, "db", "upgrade").returncode == 0
    root = _koppi("root", "init", str(tmp_path / "root.key"), env=env)
    org_key = _koppi("org", "key", str(tmp_path / "org.key"), env=env)
    root_public = root.stdout.split("public key:")[1].split()[0]
    shown = _koppi("root", "fingerprint", str(tmp_path / "root.key"), env=env)
    assert shown.returncode == 0 and shown.stdout == root.stdout  # what clients pin, any time
    wrong = _koppi("root", "fingerprint", str(tmp_path / "root.key"),
                   env={"KOPPI_ROOT_KEY_PASSPHRASE": "not the passphrase"})  # fmt: skip
    assert wrong.returncode == 2 and "wrong passphrase" in wrong.stderr
    assert "Traceback" not in wrong.stderr and root_public not in wrong.stdout
    log_key = _koppi("log", "init", str(tmp_path / "log.key"),
                     env={"KOPPI_LOG_KEY_PASSPHRASE": "log passphrase"})  # fmt: skip
    assert log_key.returncode == 0
    not_root = _koppi("root", "fingerprint", str(tmp_path / "log.key"),
                      env={"KOPPI_ROOT_KEY_PASSPHRASE": "log passphrase"})  # fmt: skip
    assert not_root.returncode == 2 and "holds no root-signing-key" in not_root.stderr
    missing = _koppi("root", "fingerprint", str(tmp_path / "nowhere.key"), env=env)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    wrong_log = {"KOPPI_LOG_KEY_FILE": str(tmp_path / "log.key"), "KOPPI_LOG_KEY_PASSPHRASE": "x"}
    locked = _koppi(*db, "serve", "--port", "0", env=wrong_log)
    assert locked.returncode == 2 and "wrong KOPPI_LOG_KEY_PASSPHRASE" in locked.stderr
    org_public = org_key.stdout.split("public key:")[1].split()[0]
    assert _koppi(*db, "org", "add", "Kela", "0246246-0").returncode == 0
    bad = _koppi(*db, "org", "admit", "9999999-9", org_public, "--root-key",
                 str(tmp_path / "root.key"), env=env)  # fmt: skip
    assert bad.returncode == 2 and "no organisation" in bad.stderr
    admitted = _koppi(*db, "org", "admit", "0246246-0", org_public, "--root-key",
                      str(tmp_path / "root.key"), env=env)  # fmt: skip
    assert admitted.returncode == 0, admitted.stderr
    assert "log index 0" in admitted.stdout

    async def first_entry() -> bytes:
        engine = engine_for(sqlite_url)
        try:
            (row,) = await LogRepository(engine).entries(0, 1)
            return bytes(row.entry)
        finally:
            await engine.dispose()

    cert = OrgCert.decode(asyncio.run(first_entry()))
    assert (cert.name, cert.business_id, cert.generation) == ("Kela", "0246246-0", 0)

    # The admin makes a new key; operator and admin rotate (root + previous key sign it).
    new_key = _koppi("org", "key", str(tmp_path / "org2.key"), env=env)
    new_public = new_key.stdout.split("public key:")[1].split()[0]
    wrong = _koppi(
        *db,
        "org",
        "rotate",
        "0246246-0",
        new_public,
        "--root-key",
        str(tmp_path / "root.key"),
        "--previous-key",
        str(tmp_path / "org2.key"),
        env=env,
    )
    assert wrong.returncode == 2 and "not the organisation's current key" in wrong.stderr
    rotated = _koppi(
        *db,
        "org",
        "rotate",
        "0246246-0",
        new_public,
        "--root-key",
        str(tmp_path / "root.key"),
        "--previous-key",
        str(tmp_path / "org.key"),
        env=env,
    )
    assert rotated.returncode == 0 and "generation 1: log index 1" in rotated.stdout, rotated.stderr
    suspended = _koppi(
        *db, "org", "suspend", "0246246-0", "--root-key", str(tmp_path / "root.key"), env=env
    )
    assert suspended.returncode == 0 and "log index 2" in suspended.stdout, suspended.stderr
    after = _koppi(
        *db, "org", "suspend", "0246246-0", "--root-key", str(tmp_path / "root.key"), env=env
    )
    assert after.returncode == 2 and "no current key" in after.stderr
    assert cert.org_public.hex() == org_public
    from crypto.encoding import Encoder

    ed25519_verify(bytes.fromhex(root_public),
                   Encoder("koppi/v1/org-cert-sig/root").bytes(cert.core()).finish(),
                   cert.root_sig)  # fmt: skip


def test_the_demo_runs_with_a_transparency_log_and_says_how_to_admit_an_organisation(
    tmp_path: Path,
) -> None:
    """`make demo` for a real user: the admin console works out of the box (it needs the log),
    and the printed admit command, run as printed, puts the organisation's key in the log."""
    import re
    import socket
    import time
    import urllib.request

    from crypto.clock import OsRng
    from crypto.primitives import SigningKey

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPI_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "demo", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = ""
        deadline = time.monotonic() + 60
        while "--root-key" not in banner and time.monotonic() < deadline:
            banner += proc.stdout.readline()
        command = re.search(r"KOPPI_ROOT_KEY_PASSPHRASE=(\S+) koppi (.*)", banner)
        assert command is not None, banner
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        org_public = SigningKey.generate(OsRng()).public.hex()
        args = command.group(2).replace("BUSINESS_ID", "0246246-0")
        args = args.replace("PUBLIC_KEY", org_public)
        admitted = _koppi(*args.split(), env={"KOPPI_ROOT_KEY_PASSPHRASE": command.group(1)})
        assert admitted.returncode == 0, admitted.stderr
        body = json.dumps({"username": "kela.admin", "password": "koppi-demo-2026"}).encode()
        request = urllib.request.Request(
            base + "/api/login", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request) as r:
            cookie = r.headers["Set-Cookie"].split(";")[0]
        for path in ("/api/log/head", "/api/org/key"):
            with urllib.request.urlopen(
                urllib.request.Request(base + path, headers={"Cookie": cookie})
            ) as r:
                answer = json.loads(r.read())
        assert answer["current"]["generation"] == 0
        panel = re.search(r"record it at (/threads/\S+/consent)", banner)
        assert panel is not None, banner
        with urllib.request.urlopen(
            urllib.request.Request(base + panel.group(1), headers={"Cookie": cookie})
        ) as r:
            assert r.status == 200 and b"consent-panel.js" in r.read()
        export = base + panel.group(1).replace("/consent", "/export")
        with urllib.request.urlopen(
            urllib.request.Request(export, headers={"Cookie": cookie})
        ) as r:
            page = r.read().decode()
        root = re.search(r"demo root key (\S+) \(passphrase", banner)
        assert root is not None, banner
        shown = _koppi("root", "fingerprint", root.group(1),
                       env={"KOPPI_ROOT_KEY_PASSPHRASE": command.group(1)})  # fmt: skip
        root_public = shown.stdout.split("public key:")[1].split()[0]
        assert f'data-root="{root_public}"' in page  # the export page pins the demo root
        assert bytes.fromhex(org_public) == base64.urlsafe_b64decode(
            answer["current"]["org_public"] + "="
        )
    finally:
        proc.terminate()
        proc.wait(10)


async def test_the_audit_thread_migration_fills_in_the_thread_of_earlier_events(
    database_url: str,
) -> None:
    """Events written before 0014 name their thread in the subject only: the migration indexes
    them, so a thread's participants see its history from the start."""
    engine = make_engine(database_url)
    thread, org = uuid.uuid4(), uuid.uuid4()
    try:
        await upgrade(engine, "0013_label_policy")
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO organisations (id, name, business_id, status, created_at) "
                     "VALUES (:id, 'Kela', '0246246-0', 'active', 0)"),
                {"id": org.hex if conn.dialect.name == "sqlite" else org},
            )  # fmt: skip
            for n, (action, subject) in enumerate(
                [("thread.closed", str(thread)), ("login", "session"),
                 ("consent.given", f"{thread} 00v1"), ("thread.purged", "not-a-uuid 3")], 1
            ):  # fmt: skip
                await conn.execute(
                    text("INSERT INTO audit_events (id, org_id, actor, action, subject, at, "
                         "prev_hash, hash) VALUES (:id, :org, NULL, :action, :subject, 0, "
                         ":h, :h)"),
                    {"id": n, "org": org.hex if conn.dialect.name == "sqlite" else org,
                     "action": action, "subject": subject, "h": bytes(32)},
                )  # fmt: skip
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT id, thread_id FROM audit_events ORDER BY id"))
            found = {r.id: r.thread_id for r in rows}
        as_uuid = {k: None if v is None else uuid.UUID(str(v)) for k, v in found.items()}
        assert as_uuid == {1: thread, 2: None, 3: thread, 4: None}
    finally:
        await engine.dispose()
