"""Generator of `koppi-message.json`: message layout, keys, padding and every receiver rule (§7).

Keys, ids and secrets come from a seeded RNG and times are fixed, so the file is reproducible
(`python -m crypto.vectors.generate --check`). Each case names its `kind`; negative cases carry the
error code a receiver must raise. Epochs are described in full (secret, core hash, roster, coverage,
may-store, tree size) so another implementation rebuilds them without this repository's code.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crypto import message as m
from crypto.clock import SeededRng
from crypto.encoding import Encoder
from crypto.epoch import Epoch
from crypto.primitives import KemKey, SigningKey, aead_seal
from crypto.schedule import EpochKeys
from crypto.trust import VerifiedDevice, device_id_of

T0 = 1_790_000_000_000  # ms


def _flip(b: bytes, i: int = 0) -> bytes:
    out = bytearray(b)
    out[i] ^= 0x01
    return bytes(out)


def _device_json(d: VerifiedDevice) -> dict[str, Any]:
    return {
        "device_id": d.device_id.hex(),
        "user_id": d.user_id.hex(),
        "org_id": d.org_id.hex(),
        "roles": sorted(d.roles),
        "signing_public": d.signing_public.hex(),
        "kem_public": d.kem_public.hex(),
        "cert_hash": d.cert_hash.hex(),
        "cert_log_index": d.cert_log_index,
        "revoked_at_index": d.revoked_at_index,
    }


def _label_json(label: m.StorageLabel) -> dict[str, Any]:
    return {
        "organisations": sorted(o.hex() for o in label.organisations),
        "basis": label.basis,
        "retention_days": label.retention_days,
    }


def message_vectors() -> dict[str, Any]:
    rng = SeededRng("koppi-message-vectors")
    alice, bob, carol = (SigningKey.generate(rng) for _ in range(3))
    kela, county, te, outsider = (rng.random_bytes(16) for _ in range(4))
    thread = rng.random_bytes(16)
    epoch_secret = rng.random_bytes(32)
    core_hash = rng.random_bytes(32)
    epoch_id = rng.random_bytes(16)
    commit_hash = epoch_id + rng.random_bytes(16)
    head_hash = rng.random_bytes(32)

    def device(key: SigningKey, org: bytes, index: int, revoked: int | None) -> VerifiedDevice:
        return VerifiedDevice(
            device_id=device_id_of(key.public),
            user_id=rng.random_bytes(16),
            org_id=org,
            roles=frozenset({"professional"}),
            signing_public=key.public,
            kem_public=KemKey.generate(rng).public,
            cert_hash=rng.random_bytes(32),
            cert_log_index=index,
            revoked_at_index=revoked,
        )

    devices = {
        "alice": device(alice, kela, 2, None),
        "bob": device(bob, county, 3, 7),  # revocation logged at index 7
        "carol": device(carol, te, 4, None),
    }
    epoch_specs: dict[str, dict[str, Any]] = {
        "main": {
            "roster": ["alice", "bob"],
            "coverage": [kela, county, te],
            "may_store": [kela, county],
            "tree_size": 10,
        },
        "before-revocation": {
            "roster": ["alice", "bob"],
            "coverage": [kela, county, te],
            "may_store": [kela, county],
            "tree_size": 7,
        },
        "with-carol": {
            "roster": ["alice", "bob", "carol"],
            "coverage": [kela, county, te],
            "may_store": [kela, county],
            "tree_size": 10,
        },
        "lax-coverage": {
            "roster": ["alice", "bob"],
            "coverage": [kela, county, te, outsider],
            "may_store": [kela, county, te, outsider],
            "tree_size": 10,
        },
    }
    number = 3
    keys = EpochKeys.derive(epoch_secret, core_hash, thread, number)
    epochs = {
        name: Epoch(
            thread_id=thread,
            number=number,
            epoch_id=epoch_id,
            commit_hash=commit_hash,
            core_hash=core_hash,
            keys=keys,
            roster={devices[n].device_id: devices[n] for n in spec["roster"]},
            coverage=frozenset(spec["coverage"]),
            may_store=frozenset(spec["may_store"]),
            tree_size=spec["tree_size"],
        )
        for name, spec in epoch_specs.items()
    }
    signers = {"alice": alice, "bob": bob, "carol": carol}
    label = m.StorageLabel(frozenset({kela, county}), "consent", 365)

    def seal(
        epoch: str = "main",
        who: str = "alice",
        *,
        counter: int = 5,
        message_id: bytes | None = None,
        body: bytes = b"Asiakas soitti klo 9.",
        lab: m.StorageLabel = label,
    ) -> bytes:
        return m.seal(
            epochs[epoch],
            signers[who],
            counter=counter,
            message_id=message_id if message_id is not None else rng.random_bytes(16),
            timestamp_ms=T0 + counter,
            reuse_guard=rng.random_bytes(4),
            label=lab,
            content_type="text/plain",
            body=body,
            tree_size=epochs[epoch].tree_size,
            tree_head_hash=head_hash,
        )

    cases: list[dict[str, Any]] = []

    # -- encodings ------------------------------------------------------------------------------
    cases.append(
        {
            "name": "label-encoding",
            "kind": "label",
            **_label_json(label),
            "encoding": label.encode().hex(),
        }
    )
    no_orgs = m.StorageLabel(frozenset(), "vital-interests")
    cases.append(
        {
            "name": "label-encoding-no-orgs-no-hint",
            "kind": "label",
            **_label_json(no_orgs),
            "encoding": no_orgs.encode().hex(),
        }
    )
    bad_basis = Encoder("koppi/v1/storage-label").list([kela]).text("because").u32(0).finish()
    cases.append(
        {
            "name": "label-basis-outside-the-list",
            "kind": "label_decode",
            "encoding": bad_basis.hex(),
            "expected_error": m.BAD_LABEL,
        }
    )
    short_org = Encoder("koppi/v1/storage-label").list([kela[:15]]).text("consent").u32(0).finish()
    cases.append(
        {
            "name": "label-org-id-not-16-bytes",
            "kind": "label_decode",
            "encoding": short_org.hex(),
            "expected_error": m.BAD_LABEL,
        }
    )
    header = m.Header(
        thread,
        number,
        epoch_id,
        devices["alice"].device_id,
        5,
        rng.random_bytes(16),
        T0 + 5,
        rng.random_bytes(4),
        label,
    )
    cases.append(
        {
            "name": "header-encoding",
            "kind": "header",
            "version": 1,
            "suite": 1,
            "thread_id": thread.hex(),
            "epoch": number,
            "epoch_id": epoch_id.hex(),
            "sender": header.sender.hex(),
            "counter": header.counter,
            "message_id": header.message_id.hex(),
            "timestamp_ms": header.timestamp_ms,
            "reuse_guard": header.reuse_guard.hex(),
            "label": label.encode().hex(),
            "encoding": header.encode().hex(),
        }
    )
    v2 = Encoder("koppi/v1/msg-header").u16(2).u16(1).finish() + header.encode()[24:]
    cases.append(
        {
            "name": "header-version-2",
            "kind": "header_decode",
            "encoding": v2.hex(),
            "expected_error": m.UNSUPPORTED_VERSION,
        }
    )
    content = m.encode_content("text/plain", 10, head_hash, b"hei")
    cases.append(
        {
            "name": "content-encoding",
            "kind": "content",
            "content_type": "text/plain",
            "tree_size": 10,
            "tree_head_hash": head_hash.hex(),
            "body": b"hei".hex(),
            "encoding": content.hex(),
        }
    )

    # -- keys and padding -------------------------------------------------------------------------
    for who, counter, guard in (
        ("alice", 0, bytes(4)),
        ("alice", 5, bytes.fromhex("a1b2c3d4")),
        ("bob", 2**40 + 3, bytes.fromhex("ffffffff")),
    ):
        secret = m.sender_secret(epochs["main"], devices[who].device_id)
        key, nonce = m.message_key(secret, counter, guard)
        cases.append(
            {
                "name": f"keys-{who}-counter-{counter}",
                "kind": "keys",
                "epoch_sender_key": keys.sender.hex(),
                "device_id": devices[who].device_id.hex(),
                "counter": counter,
                "reuse_guard": guard.hex(),
                "sender_secret": secret.hex(),
                "key": key.hex(),
                "nonce": nonce.hex(),
            }
        )
    for n in (0, 3, 255, 256, 1023, 1024, 4095, 16383, 65535, 65536, 200_000, m.MAX_PADDED - 1):
        cases.append(
            {
                "name": f"pad-size-{n}",
                "kind": "pad_size",
                "content_length": n,
                "padded_length": len(m.pad(bytes(n))),
            }
        )
    cases.append(
        {
            "name": "pad-size-too-large",
            "kind": "pad_size",
            "content_length": m.MAX_PADDED,
            "expected_error": m.TOO_LARGE,
        }
    )
    cases.append(
        {
            "name": "pad-small",
            "kind": "pad",
            "content": content.hex(),
            "padded": m.pad(content).hex(),
        }
    )

    # -- open -----------------------------------------------------------------------------------
    def open_case(name: str, epoch: str, data: bytes, error: str | None = None) -> dict[str, Any]:
        case: dict[str, Any] = {"name": name, "kind": "open", "epoch": epoch, "message": data.hex()}
        if error:
            case["expected_error"] = error
            return case
        opened = m.open(epochs[epoch], data)
        h = opened.header
        case["expected"] = {
            "sender": h.sender.hex(),
            "counter": h.counter,
            "message_id": h.message_id.hex(),
            "timestamp_ms": h.timestamp_ms,
            "reuse_guard": h.reuse_guard.hex(),
            "label": _label_json(h.label),
            "content_type": opened.content_type,
            "tree_size": opened.tree_size,
            "tree_head_hash": opened.tree_head_hash.hex(),
            "body": opened.body.hex(),
            "padded": m.pad(
                m.encode_content(
                    opened.content_type, opened.tree_size, opened.tree_head_hash, opened.body
                )
            ).hex(),
        }
        return case

    good = seal()
    header_b, ct, sig = m.decode_message(good)
    h = m.Header.decode(header_b)

    def tampered(**changes: Any) -> bytes:
        return m.encode_message(replace(h, **changes).encode(), ct, sig)

    def resigned(**changes: Any) -> bytes:
        hb = replace(h, **changes).encode()
        return m.encode_message(hb, ct, alice.sign(m.signature_input(hb, ct)))

    def with_padding(padded: bytes) -> bytes:
        key, nonce = m.message_key(
            m.sender_secret(epochs["main"], h.sender), h.counter, h.reuse_guard
        )
        c = aead_seal(key, nonce, padded, header_b)
        return m.encode_message(header_b, c, alice.sign(m.signature_input(header_b, c)))

    inner = m.encode_content("text/plain", 10, head_hash, b"x")
    other_label = m.StorageLabel(frozenset({kela}), "consent", 365)
    cases += [
        open_case("open-alice", "main", good),
        open_case(
            "open-bob-before-revocation",
            "before-revocation",
            seal("before-revocation", "bob", counter=0, body=b""),
        ),
        open_case("open-4k-body", "main", seal(counter=6, body=bytes(range(256)) * 16)),
        open_case("tampered-label", "main", tampered(label=other_label), "koppi.auth_failed"),
        open_case(
            "tampered-label-resigned", "main", resigned(label=other_label), "koppi.auth_failed"
        ),
        open_case("tampered-epoch", "main", tampered(epoch=number + 1), m.WRONG_EPOCH),
        open_case("tampered-thread", "main", tampered(thread_id=_flip(thread)), m.WRONG_THREAD),
        open_case("tampered-counter", "main", tampered(counter=6), "koppi.auth_failed"),
        open_case("tampered-counter-resigned", "main", resigned(counter=6), "koppi.auth_failed"),
        open_case("unknown-epoch-id", "main", tampered(epoch_id=_flip(epoch_id)), m.FORK),
        open_case(
            "tampered-ciphertext",
            "main",
            m.encode_message(header_b, _flip(ct, 3), sig),
            "koppi.auth_failed",
        ),
        open_case(
            "tampered-signature",
            "main",
            m.encode_message(header_b, ct, _flip(sig, 40)),
            "koppi.auth_failed",
        ),
        open_case("sender-not-in-roster", "main", seal("with-carol", "carol"), m.NOT_IN_ROSTER),
        open_case("sender-revoked", "main", seal(who="bob"), m.SENDER_REVOKED),
        open_case(
            "non-zero-padding",
            "main",
            with_padding(inner + b"\x80" + bytes(256 - len(inner) - 2) + b"\x01"),
            m.BAD_PADDING,
        ),
        open_case(
            "no-padding-marker",
            "main",
            with_padding(inner + bytes(256 - len(inner))),
            m.BAD_PADDING,
        ),
        open_case(
            "padded-length-not-a-bucket",
            "main",
            with_padding(inner + b"\x80" + bytes(300 - len(inner) - 1)),
            m.BAD_PADDING,
        ),
        open_case(
            "label-names-uncovered-org",
            "main",
            seal("lax-coverage", lab=m.StorageLabel(frozenset({outsider}), "consent")),
            m.LABEL_NOT_COVERED,
        ),
        open_case(
            "label-names-org-without-may-store",
            "main",
            seal("lax-coverage", lab=m.StorageLabel(frozenset({te}), "public-task")),
            m.LABEL_NOT_COVERED,
        ),
        open_case("trailing-bytes", "main", good + b"\x00", "koppi.decode"),
        open_case("truncated", "main", good[:-1], "koppi.decode"),
    ]

    # -- replay -----------------------------------------------------------------------------------
    mid = rng.random_bytes(16)
    first = seal(counter=7, message_id=mid, body=b"a")
    reused = seal(counter=7, message_id=rng.random_bytes(16), body=b"b")
    reencrypted = seal(counter=8, message_id=mid, body=b"a")

    def replay_case(name: str, steps: list[tuple[bytes, bool | str]]) -> dict[str, Any]:
        out = []
        for data, result in steps:
            step: dict[str, Any] = {"message": data.hex()}
            if isinstance(result, str):
                step["expected_error"] = result
            else:
                step["is_duplicate_id"] = result
            out.append(step)
        return {"name": name, "kind": "replay", "epoch": "main", "steps": out}

    cases += [
        replay_case("replay", [(first, False), (first, m.REPLAY)]),
        replay_case("counter-reuse", [(first, False), (reused, m.COUNTER_REUSE)]),
        replay_case("same-message-id-new-counter", [(first, False), (reencrypted, True)]),
    ]

    kela, county, te = bytes([10]) * 16, bytes([11]) * 16, bytes([12]) * 16
    may_store = frozenset({kela, county})
    label_policies = []
    for policy in sorted(m.LABEL_POLICIES):
        for sender in (kela, te):
            label = m.default_label(policy, sender, may_store)
            label_policies.append({
                "policy": policy, "sender_org": sender.hex(),
                "may_store": sorted(o.hex() for o in may_store),
                "organisations": sorted(o.hex() for o in label.organisations),
            })  # fmt: skip
    label_policies.append({"policy": "everyone", "sender_org": kela.hex(),
                           "may_store": [kela.hex()], "expected_error": m.BAD_LABEL})  # fmt: skip

    return {
        "generated_by": "crypto/vectors/gen_message.py",
        "description": (
            "Messages (docs/protocol.md §7). `devices` are VerifiedDevices by name; each epoch in "
            "`epochs` is thread_id, number, epoch_id, commit_hash, core_hash and keys = "
            "EpochKeys.derive(epoch_secret, core_hash, thread_id, number), with its roster (device "
            "names), coverage, may_store and tree_size. kind=label/header/content: the encoding "
            "of the fields; label_decode/header_decode: decoding must fail. kind=keys: "
            "sender_secret, key and nonce from the epoch's sender key. kind=pad_size: the padded "
            "length of content_length bytes; kind=pad: padded bytes. kind=open: open(epoch, "
            "message) gives `expected` or fails with expected_error. kind=replay: open each step's "
            "message, then ReplayGuard.check it in order on one guard (is_duplicate_id or error). "
            "`label_policies`: default_label(policy, sender_org, may_store) names `organisations` "
            "(or fails with expected_error)."
        ),
        "label_policies": label_policies,
        "devices": {name: _device_json(d) for name, d in devices.items()},
        "epochs": {
            name: {
                "thread_id": thread.hex(),
                "number": number,
                "epoch_id": epoch_id.hex(),
                "commit_hash": commit_hash.hex(),
                "core_hash": core_hash.hex(),
                "epoch_secret": epoch_secret.hex(),
                "roster": spec["roster"],
                "coverage": sorted(o.hex() for o in spec["coverage"]),
                "may_store": sorted(o.hex() for o in spec["may_store"]),
                "tree_size": spec["tree_size"],
            }
            for name, spec in epoch_specs.items()
        },
        "sender_seeds": {name: k.seed_bytes().hex() for name, k in signers.items()},
        "cases": cases,
    }


VECTORS = {"koppi-message.json": message_vectors}
