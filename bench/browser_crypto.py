"""The browser twin's costs in real Chromium, beside the WebCrypto primitives they are made of,
measured in the same page (issue: browser twin, "Proof").

    python -m bench.browser_crypto [--devices 40] [--body 1024]

Goals: <= 1 ms per message (seal+sign, verify+open) and <= 20 ms per 40-device rekey. Floors as
in bench/crypto_protocol.py: seal = HKDF + AES-256-GCM + SHA-256 + Ed25519 sign; open = strict
Ed25519 verify + SHA-256 + HKDF + AES-256-GCM; rekey = N HPKE seals + 4 HKDF + HMAC + AES-GCM +
sign + verify. Uses Debian's chromium (/usr/bin/chromium), never a downloaded browser.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import threading
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
    }

    def do_GET(self) -> None:
        if self.path == "/":
            body = b"<!doctype html><title>bench</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


def deployment(devices: int) -> dict[str, Any]:
    from crypto.vectors.world import World

    w = World("bench-browser")
    orgs = [w.add_org(n) for n in ("Kela", "County", "TE", "School")]
    devs = [w.add_device(orgs[i % len(orgs)]) for i in range(devices)]
    evidence = w.consent(orgs)
    cth = w.head()
    me = devs[0].secrets
    return {
        "root_public": w.root.public.hex(),
        "log_public": w.log_key.public.hex(),
        "witness_publics": [k.public.hex() for k in w.witnesses],
        "quorum": w.config.quorum,
        "now_ms": w.clock.now_ms(),
        "sync": {
            "tree_head": cth.encode().hex(),
            "entries": [
                {
                    "index": i,
                    "kind": kind,
                    "data": payload.hex(),
                    "proof": [p.hex() for p in w.tree.inclusion_proof(i, cth.head.size)],
                }
                for i, (kind, _, payload) in enumerate(w.entries)
            ],
        },
        "genesis": w.genesis(devs[0]).encode().hex(),
        "evidence": evidence.hex(),
        "me": {
            "device_id": me.device_id.hex(),
            "signing_seed": me.signing.seed_bytes().hex(),
            "cert_kem_private": me.cert_kem.private_bytes().hex(),
            "package_keys": {h.hex(): k.private_bytes().hex() for h, k in me.package_keys.items()},
        },
        "members": [
            {"device_id": d.device_id.hex(), "key_package": d.key_package.encode().hex()}
            for d in devs
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=40)
    parser.add_argument("--body", type=int, default=1024)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(ROOT))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    cfg = deployment(args.devices)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page()
            page.goto(url)
            run = "async ([fn, arg]) => (await import('/bench/browser_bench.js'))[fn](arg)"
            prim = page.evaluate(run, ["primitives", None])
            msg = page.evaluate(run, ["messages", args.body])
            rk = page.evaluate(run, ["rekey", cfg])
            version = browser.version
            browser.close()
    finally:
        server.shutdown()
    seal_floor = (
        prim["hkdf_32"] + prim["aes256gcm_seal_1k"] + prim["sha256_1k"] + prim["ed25519_sign"]
    )
    open_floor = (prim["ed25519_verify_strict"] + prim["sha256_1k"] + prim["hkdf_32"]
                  + prim["aes256gcm_open_1k"])  # fmt: skip
    rekey_floor = (rk["devices"] * prim["hpke_seal"] + 4 * prim["hkdf_32"] + prim["hmac_sha256"]
                   + prim["aes256gcm_seal_1k"] + prim["ed25519_sign"]
                   + prim["ed25519_verify_strict"])  # fmt: skip
    print(f"Chromium {version}, message body {args.body} B, {rk['devices']}-device rekey")
    print(f"{'operation':<32} {'ms':>8} {'floor ms':>9} {'ratio':>6}  goal")
    for name, ms, floor, goal in (
        ("message seal+sign", msg["seal"], seal_floor, 1.0),
        ("message verify+open", msg["open"], open_floor, 1.0),
        (f"rekey propose, {rk['devices']} devices", rk["propose"], rekey_floor, 20.0),
    ):
        verdict = "ok" if ms <= goal else "OVER"
        print(f"{name:<32} {ms:8.3f} {floor:9.3f} {ms / floor:6.2f}  <= {goal:g} ms {verdict}")
    print("WebCrypto primitives (ms/op):", ", ".join(f"{k}={v:.3f}" for k, v in prim.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
