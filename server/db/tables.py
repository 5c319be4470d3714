"""Koppi's tables. The server keeps ciphertext envelopes and the metadata it needs, nothing more.

Times are integer milliseconds since the Unix epoch (from the injected clock), so SQLite and
PostgreSQL store and compare them identically.
"""

from __future__ import annotations

import uuid

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    business_id: Mapped[str] = mapped_column(String(20), unique=True)  # Y-tunnus
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[int] = mapped_column(BigInteger)
    # The organisation's half of a key rotation (a RotationRequest), waiting for the root.
    rotation_request: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    rotation_requested_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class User(Base):
    """A professional (or an organisation's record-system account)."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Session(Base):
    """A browser login. Only the SHA-256 of the cookie value is stored."""

    __tablename__ = "sessions"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class ApiToken(Base):
    """A bearer token for the Python client. Only the SHA-256 of the token is stored."""

    __tablename__ = "api_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Thread(Base):
    """One thread per client reference and purpose; `next_seq` orders its envelopes."""

    __tablename__ = "threads"
    __table_args__ = (UniqueConstraint("client_ref", "purpose"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    client_ref: Mapped[str] = mapped_column(String(100))  # pseudonymous, never an identity code
    purpose: Mapped[str] = mapped_column(String(50))
    next_seq: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # The newest commit the server sequenced (docs/protocol.md §5): its epoch and hash, which
    # the next commit must name as its parent. None until the genesis commit (epoch 0).
    epoch: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=None)
    head_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True, default=None)
    genesis: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, default=None)
    # A device of the head's roster was revoked: no message until a commit without it.
    rekey_due: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    # Retention: when a member closed the thread, and when its messages were purged.
    closed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=None)
    # What a sender's storage label starts as (crypto.message.LABEL_POLICIES).
    label_policy: Mapped[str] = mapped_column(
        String(20), server_default="own-organisation", default="own-organisation"
    )
    purged_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=None)


class ThreadRosterDevice(Base):
    """The devices of a thread's head commit: whom a revocation fences the thread for."""

    __tablename__ = "thread_roster"

    thread_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("threads.id"), primary_key=True)
    device_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True, index=True)


class ThreadMember(Base):
    __tablename__ = "thread_members"

    thread_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("threads.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    added_at: Mapped[int] = mapped_column(BigInteger)


class Envelope(Base):
    """An opaque ciphertext with the header fields the server needs to order, route and filter."""

    __tablename__ = "envelopes"
    __table_args__ = (UniqueConstraint("thread_id", "msg_id"),)

    thread_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("threads.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    msg_id: Mapped[bytes] = mapped_column(LargeBinary(16))
    sender_device: Mapped[bytes] = mapped_column(LargeBinary(32))
    sender_user: Mapped[uuid.UUID] = mapped_column(Uuid)
    epoch: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str] = mapped_column(String(2000))  # canonical JSON: {"basis":..,"orgs":[..]}
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(BigInteger, index=True)  # retention purges by age
    kind: Mapped[str] = mapped_column(String(10), server_default="message")  # message | commit


class LogEntry(Base):
    """One leaf of the deployment's append-only transparency log (docs/protocol.md §4).

    `entry` is the leaf input clients hash; `payload` is what they fetch to verify it (the entry
    itself, or for a consent the full signed record whose hash the entry holds)."""

    __tablename__ = "log_entries"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(20))
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[int] = mapped_column(BigInteger)


class SignedTreeHead(Base):
    """Every tree head the log signed, with the cosignatures witnesses added since."""

    __tablename__ = "tree_heads"

    timestamp_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, index=True)
    head: Mapped[bytes] = mapped_column(LargeBinary)  # CosignedTreeHead encoding


class Device(Base):
    """A professional's device: enrolled with its public keys (its private keys never leave it),
    usable once its organisation's admin has certified it (the certificate goes to the log)."""

    __tablename__ = "devices"

    device_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    signing_public: Mapped[bytes] = mapped_column(LargeBinary(32))
    kem_public: Mapped[bytes] = mapped_column(LargeBinary(32))
    label: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))  # pending | approved | revoked
    cert_log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revocation_log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class AuditEvent(Base):
    """An organisation's audit trail: who enrolled, approved, revoked, rotated, and when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    # None: the server decided on its own (a consent reached its end on the scheduler).
    actor: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200))
    at: Mapped[int] = mapped_column(BigInteger)
    # The thread the event is about (`server.audit.thread_of`), for its participants' view.
    thread_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True,
                                                        default=None)  # fmt: skip
    # The hash chain (`server/audit.py`): the previous event's hash, and this one's.
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class ConsentVersion(Base):
    """One signed version of a client's consent, as recorded for a thread (docs/protocol.md §6).
    The server keeps the signed record (which it can read: it enforces admission from it) and
    where the log holds its hash; the human text travels end-to-end encrypted in the thread."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("consent_id", "version"),)

    record_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    consent_id: Mapped[bytes] = mapped_column(LargeBinary(16))
    version: Mapped[int] = mapped_column(Integer)
    thread_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("threads.id"), index=True)
    record: Mapped[bytes] = mapped_column(LargeBinary)
    log_index: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Disclosure(Base):
    """One export to an organisation's own records (issue: storage rights): who took which
    messages of which thread for which organisation, and when. Participants and the client's
    disclosure summary see these; they outlive the messages' retention, until
    `audit_retention_days` (server/services/retention.py)."""

    __tablename__ = "disclosures"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    thread_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    msg_ids: Mapped[list[str]] = mapped_column(JSON)  # base64url message ids, in thread order
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[int] = mapped_column(BigInteger)


class AuditAnchor(Base):
    """Where the audit chain starts once its oldest events were pruned (docs/operations.md
    "Retention"): the last pruned event's id and hash and the chain's length up to it, which
    equal an `audit-head` checkpoint in the transparency log (`log_index`). The newest row is
    the chain's start; older rows say when each prune happened."""

    __tablename__ = "audit_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    head_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    events: Mapped[int] = mapped_column(BigInteger)
    log_index: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[int] = mapped_column(BigInteger)
