"""An organisation's professionals, managed by its admin (issue: organisations).

Deny by default: only an `org-admin` of the user's own organisation may list, add, disable,
enable or change the roles of a user, and never so as to lock themself out (disable themself or
drop their own `org-admin` role). Every change is written to the organisation's audit trail.
Disabling takes effect at once: the user's sessions are deleted, their API tokens revoked and
their open websockets closed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable

from sqlalchemy.exc import IntegrityError

from crypto.clock import Clock
from crypto.identity import ROLE_ORG_ADMIN, ROLES
from server.db.tables import User
from server.errors import ApiError
from server.principal import Principal
from server.repositories.accounts import AccountRepository
from server.repositories.devices import DeviceRepository
from server.services.auth import AuthService

FORBIDDEN = ApiError(403, "koppi.forbidden", "only an admin of the user's organisation may do that")
NO_USER = ApiError(404, "koppi.unknown_user", "no such user")
USER_EXISTS = ApiError(409, "koppi.user_exists", "that username is taken")


def check_roles(roles: Iterable[str]) -> frozenset[str]:
    """Roles come from the protocol's one fixed list (crypto.identity.ROLES, protocol §3): the
    same names the organisation's device certificates carry."""
    out = frozenset(roles)
    unknown = sorted(out - ROLES)
    if unknown:
        raise ApiError(
            400,
            "koppi.unknown_role",
            f"unknown role {unknown[0]!r}; roles are {', '.join(sorted(ROLES))}",
        )
    return out


class UserService:
    def __init__(
        self,
        accounts: AccountRepository,
        auth: AuthService,
        trail: DeviceRepository,
        clock: Clock,
    ) -> None:
        self._accounts, self._auth, self._trail, self._clock = accounts, auth, trail, clock
        # Called after a user is disabled: the websocket layer closes their open connections
        # (an upgrade is authenticated once, so refusing new requests alone is not enough).
        self.on_disabled: Callable[[uuid.UUID], Awaitable[None]] | None = None
        # Called with (user, admin) after a change that admission depends on (roles, disabled):
        # the user's threads decide again at once.
        self.on_changed: Callable[[uuid.UUID, uuid.UUID], Awaitable[None]] | None = None

    @staticmethod
    def _require_admin(admin: Principal) -> None:
        if ROLE_ORG_ADMIN not in admin.roles:
            raise FORBIDDEN

    async def _user_of(self, admin: Principal, user_id: uuid.UUID) -> User:
        """The user, if the caller administers their organisation. Non-admins learn nothing,
        not even whether the id exists."""
        self._require_admin(admin)
        user = await self._accounts.user_by_id(user_id)
        if user is None:
            raise NO_USER
        if user.org_id != admin.org_id:
            raise FORBIDDEN
        return user

    async def _audit(self, admin: Principal, action: str, subject: str) -> None:
        await self._trail.audit(admin.org_id, admin.user_id, action, subject, self._clock.now_ms())

    async def _reload(self, user_id: uuid.UUID) -> User:
        user = await self._accounts.user_by_id(user_id)
        assert user is not None  # users are never deleted
        return user

    async def users(self, admin: Principal) -> list[User]:
        self._require_admin(admin)
        return await self._accounts.users_of_org(admin.org_id)

    async def add(
        self, admin: Principal, username: str, password: str, roles: Iterable[str]
    ) -> User:
        """A new professional of the admin's own organisation, with an initial password (argon2id,
        the same length rule as everywhere)."""
        self._require_admin(admin)
        wanted = check_roles(roles)
        if await self._accounts.user_by_name(username) is not None:
            raise USER_EXISTS
        try:
            user = await self._auth.create_user(admin.org_id, username, password, wanted)
        except IntegrityError:  # taken meanwhile by a concurrent request
            raise USER_EXISTS from None
        await self._audit(admin, "user.added", str(user.id))
        return user

    async def disable(self, admin: Principal, user_id: uuid.UUID) -> User:
        """Disable a user and cut them off at once. Disabling a disabled user changes nothing."""
        user = await self._user_of(admin, user_id)
        if user.id == admin.user_id:
            raise ApiError(403, "koppi.forbidden", "you cannot disable yourself; ask another admin")
        if user.disabled:
            return user
        await self._accounts.disable_user(user.id)
        if self.on_disabled is not None:
            await self.on_disabled(user.id)
        await self._audit(admin, "user.disabled", str(user.id))
        await self._changed(admin, user.id)
        return await self._reload(user.id)

    async def enable(self, admin: Principal, user_id: uuid.UUID) -> User:
        """Let a disabled user log in again (their old sessions and tokens stay ended)."""
        user = await self._user_of(admin, user_id)
        if not user.disabled:
            return user
        await self._accounts.enable_user(user.id)
        await self._audit(admin, "user.enabled", str(user.id))
        await self._changed(admin, user.id)
        return await self._reload(user.id)

    async def set_roles(self, admin: Principal, user_id: uuid.UUID, roles: Iterable[str]) -> User:
        """Replace a user's roles. The audit subject is the user id followed by the new roles."""
        user = await self._user_of(admin, user_id)
        wanted = check_roles(roles)
        if user.id == admin.user_id and ROLE_ORG_ADMIN not in wanted:
            raise ApiError(
                403,
                "koppi.forbidden",
                "you cannot remove your own org-admin role; ask another admin",
            )
        if wanted == frozenset(user.roles):
            return user
        await self._accounts.set_user_roles(user.id, sorted(wanted))
        await self._audit(admin, "user.roles", f"{user.id} {','.join(sorted(wanted)) or '-'}")
        await self._changed(admin, user.id)
        return await self._reload(user.id)

    async def _changed(self, admin: Principal, user_id: uuid.UUID) -> None:
        if self.on_changed is not None:
            await self.on_changed(user_id, admin.user_id)
