"""Enrol a device whose keys were generated here (`POST /api/devices`); an admin of the user's
organisation certifies it after comparing the fingerprint, which the caller shows (computed from
the keys themselves, not taken from the server's answer)."""

from __future__ import annotations

from typing import Any

from client.transport import Http, b64u
from crypto.errors import RemoteProtocolError
from crypto.fingerprint import fingerprint_hex, fingerprint_words
from crypto.identity import DeviceSecrets


async def enrol(http: Http, device: DeviceSecrets, label: str) -> dict[str, Any]:
    signing, kem = device.signing.public, device.cert_kem.public
    enrolled: dict[str, Any] = await http.post(
        "/api/devices",
        {"signing_public": b64u(signing), "kem_public": b64u(kem), "label": label},
    )
    if enrolled.get("device_id") != b64u(device.device_id):
        raise RemoteProtocolError("the server enrolled another device")
    return {
        **enrolled,
        "fingerprint": fingerprint_hex(signing, kem),
        "fingerprint_words": fingerprint_words(signing, kem),
    }
