"""Who is calling: the one type every handler and service receives after authentication."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal, Protocol

from aiohttp import web


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    org_id: uuid.UUID
    username: str
    roles: frozenset[str]
    via: Literal["session", "bearer"]
    csrf_token: str = ""  # the session's token; empty for bearer tokens (no ambient credential)

    def __repr__(self) -> str:
        return f"Principal(user={self.user_id}, org={self.org_id}, via={self.via}, ..)"


class Authenticator(Protocol):
    async def authenticate(self, request: web.Request) -> Principal | None: ...
