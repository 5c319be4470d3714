"""Logins, sessions and API tokens.

- Passwords are hashed with argon2id (libsodium via pynacl); an unknown user is verified against a
  dummy hash, so it costs the same time and returns the same error as a wrong password.
- Attempts are rate-limited per username and per client address on the injected clock.
- Session cookies and bearer tokens are 256-bit random values; only their SHA-256 is stored, and
  lookups are by that hash (no secret is ever compared byte by byte in Python).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from collections import deque
from dataclasses import dataclass

import nacl.exceptions
import nacl.pwhash

from crypto.clock import Clock, Rng
from server.db.tables import ApiToken, Session, User
from server.errors import ApiError
from server.principal import Principal
from server.repositories.accounts import AccountRepository
from server.repositories.devices import DeviceRepository


@dataclass(frozen=True)
class HashCost:
    """argon2id cost; INTERACTIVE in production, MIN only in tests."""

    opslimit: int = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
    memlimit: int = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE


TEST_HASH_COST = HashCost(nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)

BAD_LOGIN = ApiError(401, "koppi.login_failed", "wrong username or password")


def new_secret(rng: Rng) -> str:
    return base64.urlsafe_b64encode(rng.random_bytes(32)).rstrip(b"=").decode()


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def hash_password(password: str, cost: HashCost) -> str:
    return nacl.pwhash.argon2id.str(
        password.encode(), opslimit=cost.opslimit, memlimit=cost.memlimit
    ).decode()


def verify_password(stored: str, password: str) -> bool:
    try:
        return bool(nacl.pwhash.verify(stored.encode(), password.encode()))
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError):
        return False


class SlidingWindow:
    """At most `limit` failed attempts per key within `window_ms`, on the injected clock."""

    def __init__(self, clock: Clock, limit: int, window_ms: int) -> None:
        self._clock, self._limit, self._window = clock, limit, window_ms
        self._hits: dict[str, deque[int]] = {}

    def _recent(self, key: str) -> deque[int]:
        hits = self._hits.setdefault(key, deque())
        floor = self._clock.now_ms() - self._window
        while hits and hits[0] <= floor:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return deque()
        return hits

    def blocked(self, key: str) -> bool:
        return len(self._recent(key)) >= self._limit

    def hit(self, key: str) -> None:
        self._recent(key)
        self._hits.setdefault(key, deque()).append(self._clock.now_ms())

    def clear(self, key: str) -> None:
        self._hits.pop(key, None)


@dataclass(frozen=True)
class LoginResult:
    session_token: str
    principal: Principal


class AuthService:
    def __init__(
        self,
        accounts: AccountRepository,
        clock: Clock,
        rng: Rng,
        *,
        session_lifetime_s: int,
        token_lifetime_s: int,
        attempts: int,
        window_s: int,
        cost: HashCost = HashCost(),
        trail: DeviceRepository | None = None,
    ) -> None:
        self._accounts, self._clock, self._rng = accounts, clock, rng
        self._trail = trail  # logins go to the user's organisation's audit trail
        self._session_ms = session_lifetime_s * 1000
        self._token_ms = token_lifetime_s * 1000
        self._cost = cost
        self._dummy_hash = hash_password(new_secret(rng), cost)
        self._by_user = SlidingWindow(clock, attempts, window_s * 1000)
        self._by_address = SlidingWindow(clock, attempts * 4, window_s * 1000)

    async def create_user(
        self, org_id: uuid.UUID, username: str, password: str, roles: frozenset[str]
    ) -> User:
        if len(password) < 10:
            raise ApiError(400, "koppi.weak_password", "a password has at least 10 characters")
        user = User(
            id=uuid.UUID(bytes=self._rng.random_bytes(16), version=4),
            org_id=org_id,
            username=username,
            password_hash=await asyncio.to_thread(hash_password, password, self._cost),
            roles=sorted(roles),
            disabled=False,
            created_at=self._clock.now_ms(),
        )
        await self._accounts.add_user(user)
        return user

    async def login(self, username: str, password: str, address: str) -> LoginResult:
        """Same error, same work, for an unknown user, a disabled one and a wrong password."""
        user_key, addr_key = f"user:{username.lower()}", f"addr:{address}"
        if self._by_user.blocked(user_key) or self._by_address.blocked(addr_key):
            raise ApiError(429, "koppi.rate_limited", "too many login attempts; try again later")
        user = await self._accounts.user_by_name(username)
        stored = user.password_hash if user is not None else self._dummy_hash
        # argon2id takes tens of milliseconds: keep it off the event loop.
        verified = await asyncio.to_thread(verify_password, stored, password)
        ok = verified and user is not None and not user.disabled
        if not ok or user is None:
            self._by_user.hit(user_key)
            self._by_address.hit(addr_key)
            if user is not None and self._trail is not None:
                await self._trail.audit(user.org_id, user.id, "login.refused", "session",
                                        self._clock.now_ms())  # fmt: skip
            raise BAD_LOGIN
        self._by_user.clear(user_key)
        token = new_secret(self._rng)
        now = self._clock.now_ms()
        session = Session(
            token_hash=secret_hash(token),
            user_id=user.id,
            csrf_token=new_secret(self._rng),
            created_at=now,
            expires_at=now + self._session_ms,
        )
        await self._accounts.add_session(session)
        if self._trail is not None:
            await self._trail.audit(user.org_id, user.id, "login", "session", now)
        return LoginResult(token, _principal(user, "session", session.csrf_token))

    async def logout(self, session_token: str) -> None:
        await self._accounts.delete_session(secret_hash(session_token))

    async def by_session(self, session_token: str) -> Principal | None:
        found = await self._accounts.session_with_user(secret_hash(session_token))
        if found is None:
            return None
        session, user = found
        if session.expires_at <= self._clock.now_ms() or user.disabled:
            return None
        return _principal(user, "session", session.csrf_token)

    async def issue_token(self, principal: Principal, label: str) -> str:
        token = new_secret(self._rng)
        now = self._clock.now_ms()
        await self._accounts.add_token(
            ApiToken(
                token_hash=secret_hash(token),
                user_id=principal.user_id,
                label=label,
                created_at=now,
                expires_at=now + self._token_ms,
                revoked=False,
            )
        )
        return token

    async def revoke_token(self, principal: Principal, token: str) -> None:
        if not await self._accounts.revoke_token(secret_hash(token), principal.user_id):
            raise ApiError(404, "koppi.unknown_token", "no such token of yours")

    async def by_token(self, token: str) -> Principal | None:
        found = await self._accounts.token_with_user(secret_hash(token))
        if found is None:
            return None
        api_token, user = found
        if api_token.revoked or api_token.expires_at <= self._clock.now_ms() or user.disabled:
            return None
        return _principal(user, "bearer", "")


def _principal(user: User, via: str, csrf: str) -> Principal:
    return Principal(
        user_id=user.id,
        org_id=user.org_id,
        username=user.username,
        roles=frozenset(user.roles),
        via="session" if via == "session" else "bearer",
        csrf_token=csrf,
    )
