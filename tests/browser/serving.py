"""A real `koppi serve` for the end-to-end browser tests: a fresh SQLite deployment with the
organisation Kela, the given users, and (optionally) a transparency log and a sealed root key."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long enough password"


def koppi(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Deployment:
    url: str
    env: dict[str, str]
    root_key: str


@contextlib.contextmanager
def deployment(
    tmp_path: Path,
    users: dict[str, str],
    *,
    log: bool = True,
    settings: dict[str, str] | None = None,
    web_copy: Path | None = None,
) -> Iterator[Deployment]:
    """`users`: username -> role, all of Kela, all with PASSWORD; `settings`: more `KOPPI_*`;
    `web_copy`: a folder holding a copy of the `web` package, which the server then serves (and
    a test may change on disk) instead of the project's own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "KOPPI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'koppi.sqlite3'}",
        **(settings or {}),
    }
    if log:
        env |= {
            "KOPPI_LOG_KEY_FILE": str(tmp_path / "log.key"),
            "KOPPI_LOG_KEY_PASSPHRASE": "log passphrase",
            "KOPPI_ROOT_KEY_PASSPHRASE": "root passphrase",
        }
    koppi(env, "db", "upgrade")
    koppi(env, "org", "add", "Kela", "0246246-0")
    for username, role in users.items():
        koppi(env, "user", "add", "0246246-0", username, "--role", role, "--password-stdin",
              stdin=PASSWORD + "\n")  # fmt: skip
    if log:
        koppi(env, "log", "init", str(tmp_path / "log.key"))
        printed = koppi(env, "root", "init", str(tmp_path / "root.key"))
        env["KOPPI_ROOT_PUBLIC_KEY"] = printed.split("public key:")[1].split()[0]  # pages pin it
    serve_env = env
    if web_copy is not None:  # `python -m` puts its working folder first on the path
        paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        serve_env = {**env, "PYTHONPATH": os.pathsep.join(paths)}
    # The server's log goes to a file: a pipe nobody reads fills up and stalls the server.
    server_log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port)],
        cwd=web_copy or ROOT,
        env=serve_env,
        stdout=subprocess.DEVNULL,
        stderr=server_log,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield Deployment(f"http://127.0.0.1:{port}", env, str(tmp_path / "root.key"))
    finally:
        proc.terminate()
        proc.wait(10)
        server_log.close()
