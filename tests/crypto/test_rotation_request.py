"""A key rotation in two halves (protocol.md §3): the organisation signs a RotationRequest where
its key lives, the operator checks it against the current certificate and adds the root."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crypto.clock import SeededRng
from crypto.encoding import DecodeError, Encoder
from crypto.errors import AuthFailed, KoppiError, LocalProtocolError
from crypto.identity import OrgCert, RotationRequest
from crypto.primitives import SigningKey
from crypto.vectors.world import World

RNG = SeededRng("rotation-request")


def test_a_request_completed_by_the_root_is_a_rotation_clients_accept() -> None:
    world = World("rotation-request")
    kela = world.add_org("Kela")
    new = SigningKey.generate(RNG)
    request = RotationRequest.create(kela.cert, kela.key, new.public, issued_at=5)
    received = RotationRequest.decode(request.encode())
    received.verify(kela.cert)
    cert = received.sign(world.root)
    assert cert == OrgCert.issue(
        root=world.root,
        org_id=kela.org_id,
        name=kela.cert.name,
        business_id=kela.cert.business_id,
        org_public=new.public,
        issued_at=5,
        previous=(kela.cert, kela.key),
    )  # the same bytes as the one-step rotation (Ed25519 signatures are deterministic)
    world._log("org", cert.encode())
    by_new_key = world.add_device(kela, signed_by=new)
    store = world.client()  # accepts the rotation: root and previous key both signed it
    assert store.device(by_new_key.device_id) is not None
    world.add_device(kela, signed_by=kela.key)  # the old key, after its retirement
    with pytest.raises(KoppiError) as exc:
        world.sync(store)
    assert exc.value.code == "koppi.cert_after_retirement"


def test_a_request_that_does_not_continue_the_current_key_is_refused() -> None:
    world = World("rotation-request-bad")
    kela = world.add_org("Kela")
    other = world.add_org("Ouluhealth")
    new = SigningKey.generate(RNG)
    request = RotationRequest.create(kela.cert, kela.key, new.public, issued_at=5)
    with pytest.raises(KoppiError) as exc:
        request.verify(other.cert)  # another organisation's current certificate
    assert exc.value.code == "koppi.bad_rotation"
    replayed = RotationRequest(replace(request.cert, generation=request.cert.generation + 1))
    with pytest.raises(KoppiError) as exc:
        replayed.verify(kela.cert)
    assert exc.value.code == "koppi.bad_rotation"
    same_key = RotationRequest.create(kela.cert, kela.key, kela.key.public, issued_at=5)
    with pytest.raises(KoppiError) as exc:
        same_key.verify(kela.cert)
    assert exc.value.code == "koppi.bad_rotation"
    renamed = RotationRequest(replace(request.cert, name="Not Kela"))
    with pytest.raises(KoppiError):
        renamed.verify(kela.cert)
    forged = RotationRequest(replace(request.cert, prev_sig=bytes(64)))
    with pytest.raises(AuthFailed):
        forged.verify(kela.cert)
    with pytest.raises(LocalProtocolError):
        RotationRequest.create(kela.cert, new, new.public, issued_at=5)  # not the current key


def test_malformed_requests_do_not_decode() -> None:
    world = World("rotation-request-decode")
    kela = world.add_org("Kela")
    with pytest.raises(KoppiError):  # generation 0: an admission, not a rotation
        RotationRequest.decode(
            Encoder("koppi/v1/org-rotation-request")
            .bytes(kela.cert.core())
            .bytes(bytes(64))
            .finish()
        )
    request = RotationRequest.create(kela.cert, kela.key, SigningKey.generate(RNG).public, 5)
    for data in (request.encode() + b"\0", request.encode()[:-1], b"", kela.cert.encode()):
        with pytest.raises(DecodeError):
            RotationRequest.decode(data)
