"""Messages: seal and open one message of an epoch (docs/protocol.md §7).

    header      = encode("koppi/v1/msg-header", ...)   (AEAD associated data; the server sees it)
    content     = encode("koppi/v1/msg-content", text type, u64 tree_size, bytes head_hash,
                         bytes body)
    padded      = content || 0x80 || 0x00*      (to a size bucket)
    ciphertext  = AES-256-GCM(key, nonce, padded, aad = header)
    signature   = Ed25519(sender, encode("koppi/v1/msg-sig", bytes header, bytes SHA-256(ct)))
    message     = encode("koppi/v1/message", bytes header, bytes ciphertext, bytes signature)

Keys are derived directly per sender and counter, so any message of an epoch can be opened on its
own (history paging) and no ratchet state can get out of step. The header's storage label is
bound as associated data: the server can read it but not change it.

This module checks one message against one `Epoch`. Which epoch a message belongs to, and whether
its sequence number lies in that epoch's window, is the thread state's business
(`crypto/group.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from crypto.encoding import DecodeError, Decoder, Encoder
from crypto.epoch import EPOCH_ID_LEN, Epoch
from crypto.errors import LocalProtocolError, RemoteProtocolError
from crypto.primitives import (
    AEAD_TAG_LEN,
    SigningKey,
    aead_open,
    aead_seal,
    constant_time_equal,
    ed25519_verify,
    hkdf,
    sha256,
)
from crypto.trust import VerifiedDevice, device_id_of

VERSION = 1
SUITE = 1
THREAD_ID_LEN = 16
DEVICE_ID_LEN = 32
MESSAGE_ID_LEN = 16
REUSE_GUARD_LEN = 4
ORG_ID_LEN = 16
SIG_LEN = 64
MAX_CONTENT_TYPE = 64
BUCKETS = (256, 1024, 4096, 16384, 65536)
BUCKET_STEP = 65536
MAX_PADDED = 1024 * 1024
MAX_LABEL_ORGS = 1000
MAX_HEADER = 64 * 1024
HEAD_HASH_LEN = 32

# A storage label's basis is a code from this fixed list (the server sees it: no free text).
BASIS_CODES = frozenset({"consent", "legal-obligation", "public-task", "vital-interests"})

BAD_LABEL = "koppi.bad_label"
# A thread's default storage label (docs/protocol.md §7.1): what a sender's label starts as.
LABEL_POLICIES = frozenset({"own-organisation", "all-may-store", "none"})
LABEL_NOT_COVERED = "koppi.label_not_covered"
UNSUPPORTED_VERSION = "koppi.unsupported_version"
WRONG_THREAD = "koppi.wrong_thread"
WRONG_EPOCH = "koppi.wrong_epoch"
FORK = "koppi.fork"
NOT_IN_ROSTER = "koppi.not_in_roster"
SENDER_REVOKED = "koppi.sender_revoked"
BAD_PADDING = "koppi.bad_padding"
TOO_LARGE = "koppi.message_too_large"
REPLAY = "koppi.replay"
COUNTER_REUSE = "koppi.counter_reuse"


class MessageError(RemoteProtocolError):
    """A message a receiver must refuse; `code` names the rule."""

    default_code = "koppi.message"


@dataclass(frozen=True)
class StorageLabel:
    """Which organisations may store this message's content in their own records, and on what
    basis. A policy tag, not access control: every roster device can decrypt the content.

    encode("koppi/v1/storage-label", list organisations (16-byte ids), text basis,
           u32 retention_days (0: no hint))
    """

    organisations: frozenset[bytes]
    basis: str
    retention_days: int = 0

    def __post_init__(self) -> None:
        if self.basis not in BASIS_CODES:
            raise MessageError("storage basis outside the fixed list", code=BAD_LABEL)
        if any(len(o) != ORG_ID_LEN for o in self.organisations):
            raise MessageError("organisation ids are 16 bytes", code=BAD_LABEL)
        if not 0 <= self.retention_days < 1 << 32:
            raise MessageError("retention days must fit a u32", code=BAD_LABEL)

    def encode(self) -> bytes:
        return self._encoded

    @cached_property
    def _encoded(self) -> bytes:
        # A sender reuses one label for many messages: encode it once.
        return (
            Encoder("koppi/v1/storage-label")
            .list(self.organisations)
            .text(self.basis)
            .u32(self.retention_days)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> StorageLabel:
        dec = Decoder(data, "koppi/v1/storage-label")
        orgs = frozenset(dec.list(max_items=MAX_LABEL_ORGS, item_max_len=ORG_ID_LEN))
        label = cls(orgs, dec.text(max_len=64), dec.u32())
        dec.finish()
        return label

    def allowed_in(self, epoch: Epoch) -> bool:
        """Only organisations the epoch's consent covers and lets store content."""
        return self.organisations <= (epoch.coverage & epoch.may_store)


def default_label(
    policy: str, sender_org: bytes, may_store: frozenset[bytes], basis: str = "consent"
) -> StorageLabel:
    """The label a sender starts from under the thread's policy: only its own organisation, every
    organisation the consent lets store, or none; always within the consent's may-store set."""
    if policy not in LABEL_POLICIES:
        raise MessageError("unknown label policy", code=BAD_LABEL)
    orgs = {"own-organisation": {sender_org}, "all-may-store": may_store, "none": set()}[policy]
    return StorageLabel(frozenset(orgs) & may_store, basis)


@dataclass(frozen=True)
class Header:
    """encode("koppi/v1/msg-header", u16 version, u16 suite, bytes thread_id(16), u64 epoch,
    bytes epoch_id(16), bytes sender(32), u64 counter, bytes message_id(16), u64 timestamp_ms,
    bytes reuse_guard(4), bytes storage_label)"""

    thread_id: bytes
    epoch: int
    epoch_id: bytes
    sender: bytes
    counter: int
    message_id: bytes
    timestamp_ms: int
    reuse_guard: bytes
    label: StorageLabel
    version: int = VERSION
    suite: int = SUITE

    def encode(self) -> bytes:
        return (
            Encoder("koppi/v1/msg-header")
            .u16(self.version)
            .u16(self.suite)
            .bytes(self.thread_id)
            .u64(self.epoch)
            .bytes(self.epoch_id)
            .bytes(self.sender)
            .u64(self.counter)
            .bytes(self.message_id)
            .u64(self.timestamp_ms)
            .bytes(self.reuse_guard)
            .bytes(self.label.encode())
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> Header:
        dec = Decoder(data, "koppi/v1/msg-header")
        version, suite = dec.u16(), dec.u16()
        if version != VERSION or suite != SUITE:
            raise MessageError("unsupported version or suite", code=UNSUPPORTED_VERSION)
        header = cls(
            thread_id=dec.bytes(length=THREAD_ID_LEN),
            epoch=dec.u64(),
            epoch_id=dec.bytes(length=EPOCH_ID_LEN),
            sender=dec.bytes(length=DEVICE_ID_LEN),
            counter=dec.u64(),
            message_id=dec.bytes(length=MESSAGE_ID_LEN),
            timestamp_ms=dec.u64(),
            reuse_guard=dec.bytes(length=REUSE_GUARD_LEN),
            label=StorageLabel.decode(dec.bytes(max_len=MAX_HEADER)),
        )
        dec.finish()
        return header


@dataclass(frozen=True)
class OpenedMessage:
    """A verified, decrypted message. The body is left out of the repr."""

    header: Header
    sender: VerifiedDevice
    content_type: str
    tree_size: int  # the sender's echoed tree head: members compare them to spot a split view
    tree_head_hash: bytes
    body: bytes = field(repr=False)
    wire_hash: bytes = field(repr=False)  # SHA-256 of the whole message, for deduplication

    @property
    def label(self) -> StorageLabel:
        return self.header.label


# --- keys and padding -----------------------------------------------------------------------------


def sender_secret(epoch: Epoch, device_id: bytes) -> bytes:
    """sender_secret = HKDF(ikm = epoch sender key, salt = empty,
    info = encode("koppi/v1/sender-secret", bytes device_id)); derived once per epoch and
    sender (the epoch keeps it)."""
    secret = epoch.sender_secrets.get(device_id)
    if secret is None:
        info = Encoder("koppi/v1/sender-secret").bytes(device_id).finish()
        secret = hkdf(ikm=epoch.keys.sender, salt=b"", info=info, length=32)
        epoch.sender_secrets[device_id] = secret
    return secret


def message_key(secret: bytes, counter: int, reuse_guard: bytes) -> tuple[bytes, bytes]:
    """key || nonce = HKDF(ikm = sender_secret, salt = empty, info = encode("koppi/v1/msg-key",
    u64 counter), L = 44); the reuse guard is XORed into the nonce's first 4 bytes."""
    info = Encoder("koppi/v1/msg-key").u64(counter).finish()
    okm = hkdf(ikm=secret, salt=b"", info=info, length=44)
    nonce = bytes(a ^ b for a, b in zip(okm[32:36], reuse_guard, strict=True)) + okm[36:]
    return okm[:32], nonce


def padded_size(n: int) -> int:
    """The smallest bucket that holds n bytes: 256 B, 1, 4, 16, 64 KiB, then multiples of 64 KiB."""
    for b in BUCKETS:
        if n <= b:
            return b
    return -(-n // BUCKET_STEP) * BUCKET_STEP


def pad(content: bytes) -> bytes:
    size = padded_size(len(content) + 1)
    if size > MAX_PADDED:
        raise LocalProtocolError("message too large", code=TOO_LARGE)
    return content + b"\x80" + bytes(size - len(content) - 1)


def unpad(padded: bytes) -> bytes:
    if padded_size(len(padded)) != len(padded):
        raise MessageError("padded length is not a bucket size", code=BAD_PADDING)
    end = len(padded.rstrip(b"\x00"))
    if end == 0 or padded[end - 1] != 0x80:
        raise MessageError("padding is not 0x80 then zeros", code=BAD_PADDING)
    return padded[: end - 1]


def encode_content(content_type: str, tree_size: int, head_hash: bytes, body: bytes) -> bytes:
    """The plaintext before padding; the echoed tree head rides inside, hidden from the server."""
    return (
        Encoder("koppi/v1/msg-content")
        .text(content_type)
        .u64(tree_size)
        .bytes(head_hash)
        .bytes(body)
        .finish()
    )


def signature_input(header: bytes, ciphertext: bytes) -> bytes:
    """What the sender signs: the header and a hash of the ciphertext, so anyone can check it."""
    return Encoder("koppi/v1/msg-sig").bytes(header).bytes(sha256(ciphertext)).finish()


def encode_message(header: bytes, ciphertext: bytes, signature: bytes) -> bytes:
    return Encoder("koppi/v1/message").bytes(header).bytes(ciphertext).bytes(signature).finish()


def decode_message(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Split a wire message strictly into (header encoding, ciphertext, signature)."""
    if len(data) > MAX_PADDED + MAX_HEADER + 1024:
        raise MessageError("message too large", code=TOO_LARGE)
    dec = Decoder(data, "koppi/v1/message")
    header = dec.bytes(max_len=MAX_HEADER)
    ciphertext = dec.bytes(max_len=MAX_PADDED + AEAD_TAG_LEN)
    signature = dec.bytes(length=SIG_LEN)
    dec.finish()
    return header, ciphertext, signature


def peek_header(data: bytes) -> Header:
    """Decode a message's header without verifying anything (to pick the epoch to open it with)."""
    dec = Decoder(data, "koppi/v1/message")
    return Header.decode(dec.bytes(max_len=MAX_HEADER))


# --- seal and open --------------------------------------------------------------------------------


def seal(
    epoch: Epoch,
    sender: SigningKey,
    *,
    counter: int,
    message_id: bytes,
    timestamp_ms: int,
    reuse_guard: bytes,
    label: StorageLabel,
    content_type: str,
    body: bytes,
    tree_size: int,
    tree_head_hash: bytes,
) -> bytes:
    """Seal one message. Pure: the caller picks counter, ids and guard (from its injected RNG) and
    persists counter + 1 before calling, so a counter is never used twice.

    The sender's device id is derived from its key, so it cannot name another device by mistake.
    """
    device_id = device_id_of(sender.public)
    if device_id not in epoch.roster:
        raise LocalProtocolError("sender not in the epoch's roster", code=NOT_IN_ROSTER)
    if not label.allowed_in(epoch):
        raise LocalProtocolError(
            "label names an organisation the consent does not let store", code=LABEL_NOT_COVERED
        )
    if len(content_type.encode("utf-8")) > MAX_CONTENT_TYPE:
        raise LocalProtocolError("content type longer than 64 bytes")
    if len(message_id) != MESSAGE_ID_LEN or len(reuse_guard) != REUSE_GUARD_LEN:
        raise LocalProtocolError("a message id is 16 bytes and a reuse guard 4")
    if len(tree_head_hash) not in (0, HEAD_HASH_LEN):
        raise LocalProtocolError("the echoed tree head hash is 32 bytes or empty")
    header = Header(
        epoch.thread_id,
        epoch.number,
        epoch.epoch_id,
        device_id,
        counter,
        message_id,
        timestamp_ms,
        reuse_guard,
        label,
    ).encode()
    key, nonce = message_key(sender_secret(epoch, device_id), counter, reuse_guard)
    padded = pad(encode_content(content_type, tree_size, tree_head_hash, body))
    ciphertext = aead_seal(key, nonce, padded, header)
    return encode_message(header, ciphertext, sender.sign(signature_input(header, ciphertext)))


@dataclass(frozen=True)
class ParsedMessage:
    """A message split and its header decoded, nothing verified: what a thread state needs to
    pick the epoch, parsed once."""

    data: bytes = field(repr=False)
    header_bytes: bytes = field(repr=False)
    header: Header
    ciphertext: bytes = field(repr=False)
    signature: bytes = field(repr=False)


def parse(data: bytes) -> ParsedMessage:
    header_bytes, ciphertext, signature = decode_message(data)
    return ParsedMessage(data, header_bytes, Header.decode(header_bytes), ciphertext, signature)


def open(epoch: Epoch, data: bytes | ParsedMessage) -> OpenedMessage:
    """Verify and decrypt one message of `epoch`, checks in the order of docs/protocol.md §7.4.

    Cheap, public checks come first; the signature is checked before any key is derived, so a
    forged message costs a receiver one verification and reveals nothing about the keys.
    """
    parsed = data if isinstance(data, ParsedMessage) else parse(data)
    header_bytes, header = parsed.header_bytes, parsed.header
    ciphertext, signature, data = parsed.ciphertext, parsed.signature, parsed.data
    if header.thread_id != epoch.thread_id:
        raise MessageError("message of another thread", code=WRONG_THREAD)
    if header.epoch != epoch.number:
        raise MessageError("message of another epoch", code=WRONG_EPOCH)
    if not constant_time_equal(header.epoch_id, epoch.epoch_id):
        raise MessageError("epoch_id differs from the applied commit", code=FORK)
    sender = epoch.roster.get(header.sender)
    if sender is None:
        raise MessageError("sender not in the epoch's roster", code=NOT_IN_ROSTER)
    if not sender.valid_at(epoch.tree_size):
        raise MessageError("sender not valid at this epoch's tree size", code=SENDER_REVOKED)
    ed25519_verify(sender.signing_public, signature_input(header_bytes, ciphertext), signature)
    if not header.label.allowed_in(epoch):
        raise MessageError(
            "label names an organisation the consent does not let store", code=LABEL_NOT_COVERED
        )
    secret = sender_secret(epoch, header.sender)
    key, nonce = message_key(secret, header.counter, header.reuse_guard)
    content = Decoder(
        unpad(aead_open(key, nonce, ciphertext, header_bytes)), "koppi/v1/msg-content"
    )
    content_type = content.text(max_len=MAX_CONTENT_TYPE)
    tree_size = content.u64()
    head_hash = content.bytes(max_len=HEAD_HASH_LEN)
    if len(head_hash) not in (0, HEAD_HASH_LEN):
        raise DecodeError("the echoed tree head hash is 32 bytes or empty")
    body = content.bytes(max_len=MAX_PADDED)
    content.finish()
    return OpenedMessage(header, sender, content_type, tree_size, head_hash, body, sha256(data))


class ReplayGuard:
    """Remembers what a receiver has opened, per (thread, epoch, sender, counter).

    - the same key with byte-identical bytes: `koppi.replay` (a resend; drop it quietly);
    - the same key with other bytes: `koppi.counter_reuse` (an alarm: a broken or malicious sender
      reused a key and nonce);
    - a new counter with a message id the same sender already used in this thread: allowed (an
      unacknowledged message re-encrypted for a new epoch keeps its id) and reported by `check`'s
      result so the UI shows it once.

    Memory is bounded by epochs: the thread state forgets an epoch once its sequence window is
    closed (`koppi.stale_epoch` then refuses that epoch's messages before they get here).
    """

    def __init__(self) -> None:
        # (thread, epoch) -> {(sender, counter): SHA-256 of the wire message}
        self._seen: dict[tuple[bytes, int], dict[tuple[bytes, int], bytes]] = {}
        # (thread, epoch) -> {(sender, message id)}
        self._ids: dict[tuple[bytes, int], set[tuple[bytes, bytes]]] = {}

    def __repr__(self) -> str:
        return f"ReplayGuard(epochs={len(self._seen)})"

    def check(self, opened: OpenedMessage) -> bool:
        """Record `opened`; returns True if its message id was seen before (a re-encryption)."""
        h = opened.header
        epoch_key = (h.thread_id, h.epoch)
        seen = self._seen.setdefault(epoch_key, {})
        known = seen.get((h.sender, h.counter))
        if known is not None:
            if constant_time_equal(known, opened.wire_hash):
                raise MessageError("message already received", code=REPLAY)
            raise MessageError("counter reused with different bytes", code=COUNTER_REUSE)
        seen[(h.sender, h.counter)] = opened.wire_hash
        id_key = (h.sender, h.message_id)
        duplicate = any(
            id_key in ids for (thread, _), ids in self._ids.items() if thread == h.thread_id
        )
        self._ids.setdefault(epoch_key, set()).add(id_key)
        return duplicate

    def forget_epoch(self, thread_id: bytes, epoch: int) -> None:
        """Drop one epoch the thread has moved past."""
        self._seen.pop((thread_id, epoch), None)
        self._ids.pop((thread_id, epoch), None)

    def forget_before(self, thread_id: bytes, epoch: int) -> None:
        """Drop every epoch of the thread numbered below `epoch`."""
        for key in [k for k in self._seen.keys() | self._ids.keys() if k[0] == thread_id]:
            if key[1] < epoch:
                self.forget_epoch(*key)
