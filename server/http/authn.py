"""Reading credentials off a request: a session cookie, or `Authorization: Bearer <token>`."""

from __future__ import annotations

from aiohttp import web

from server.principal import Principal
from server.services.auth import AuthService

SESSION_COOKIE = "koppi_session"


class RequestAuthenticator:
    def __init__(self, auth: AuthService) -> None:
        self._auth = auth

    async def authenticate(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                return None
            return await self._auth.by_token(token.strip())
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return await self._auth.by_session(cookie)
        return None
