"""Reading credentials off a request: a session cookie, or `Authorization: Bearer <token>`."""

from __future__ import annotations

from aiohttp import web

from server.principal import Principal
from server.services.auth import AuthService

SESSION_COOKIE = "koppi_session"


def cookie_name(name: str, secure: bool) -> str:
    """Behind TLS (`secure_cookies`) a cookie is `__Host-` prefixed: the browser then takes it
    only if it is Secure, for path `/` and without a Domain, so no sibling host nor plain-HTTP
    page can set or shadow it."""
    return f"__Host-{name}" if secure else name


class RequestAuthenticator:
    def __init__(self, auth: AuthService, *, secure_cookies: bool = False) -> None:
        self._auth = auth
        self.session_cookie = cookie_name(SESSION_COOKIE, secure_cookies)

    async def authenticate(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                return None
            return await self._auth.by_token(token.strip())
        cookie = request.cookies.get(self.session_cookie)
        if cookie:
            return await self._auth.by_session(cookie)
        return None
