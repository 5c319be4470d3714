"""Persistence of organisations, users, sessions and API tokens (no decisions here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from server.db.base import Base
from server.db.tables import ApiToken, Organisation, Session, User

Credential = TypeVar("Credential", Session, ApiToken)
M = TypeVar("M", bound=Base)


class AccountRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add_organisation(self, org: Organisation) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(Organisation).values(**_row(org)))

    async def organisation_by_business_id(self, business_id: str) -> Organisation | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(Organisation).where(Organisation.business_id == business_id)
                )
            ).first()
        return Organisation(**row._mapping) if row else None

    async def active_organisations(self) -> list[Organisation]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(Organisation)
                .where(Organisation.status == "active")
                .order_by(Organisation.name)
            )
            return [Organisation(**r._mapping) for r in rows]

    async def organisation_names(self, org_ids: Iterable[bytes]) -> dict[bytes, str]:
        """Names of the organisations with these 16-byte ids (unknown ids are left out)."""
        wanted = [uuid.UUID(bytes=i) for i in org_ids]
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(Organisation.id, Organisation.name).where(Organisation.id.in_(wanted))
            )
            return {r.id.bytes: r.name for r in rows}

    async def set_organisation_status(self, org_id: uuid.UUID, status: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(Organisation).where(Organisation.id == org_id).values(status=status)
            )

    async def add_user(self, user: User) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(User).values(**_row(user)))

    async def user_by_name(self, username: str) -> User | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(User).where(User.username == username))).first()
        return User(**row._mapping) if row else None

    async def user_by_id(self, user_id: uuid.UUID) -> User | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(User).where(User.id == user_id))).first()
        return User(**row._mapping) if row else None

    async def users_by_id(self, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, User]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(User).where(User.id.in_(list(user_ids))))
            return {r.id: User(**r._mapping) for r in rows}

    async def organisations_by_id(self, org_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Names of the organisations with these ids (unknown ids are left out)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(Organisation.id, Organisation.name).where(Organisation.id.in_(list(org_ids)))
            )
            return {r.id: r.name for r in rows}

    async def users_of_org(self, org_id: uuid.UUID) -> list[User]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(User).where(User.org_id == org_id).order_by(User.username)
            )
            return [User(**r._mapping) for r in rows]

    async def set_user_roles(self, user_id: uuid.UUID, roles: list[str]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(update(User).where(User.id == user_id).values(roles=roles))

    async def enable_user(self, user_id: uuid.UUID) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(update(User).where(User.id == user_id).values(disabled=False))

    async def disable_user(self, user_id: uuid.UUID) -> None:
        """Mark the user disabled and end every credential they hold, in one transaction:
        sessions are deleted, API tokens revoked (re-enabling restores neither)."""
        async with self._engine.begin() as conn:
            await conn.execute(update(User).where(User.id == user_id).values(disabled=True))
            await conn.execute(delete(Session).where(Session.user_id == user_id))
            await conn.execute(
                update(ApiToken).where(ApiToken.user_id == user_id).values(revoked=True)
            )

    async def add_session(self, session: Session) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(Session).values(**_row(session)))

    async def session_with_user(self, token_hash: bytes) -> tuple[Session, User] | None:
        return await self._credential_with_user(Session, token_hash)

    async def delete_session(self, token_hash: bytes) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(Session).where(Session.token_hash == token_hash))

    async def add_token(self, token: ApiToken) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(ApiToken).values(**_row(token)))

    async def token_with_user(self, token_hash: bytes) -> tuple[ApiToken, User] | None:
        return await self._credential_with_user(ApiToken, token_hash)

    async def _credential_with_user(
        self, model: type[Credential], token_hash: bytes
    ) -> tuple[Credential, User] | None:
        """A session or API token, looked up by the hash of its secret, with its user."""
        table, users = model.__table__, User.__table__
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(table, users)
                    .join(users, users.c.id == table.c.user_id)
                    .where(table.c.token_hash == token_hash)
                )
            ).first()
        if row is None:
            return None
        return _load(model, row._mapping), _load(User, row._mapping)

    async def revoke_token(self, token_hash: bytes, user_id: uuid.UUID) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(ApiToken)
                .where(ApiToken.token_hash == token_hash, ApiToken.user_id == user_id)
                .values(revoked=True)
            )
        return bool(result.rowcount)


def _load(model: type[M], cols: Mapping[Any, Any]) -> M:
    """Build a model from a joined row, taking only the model's own columns."""
    table = model.__table__
    return model(**{c.name: cols[table.c[c.name]] for c in table.c})


def _row(obj: object) -> dict[str, object]:
    table = obj.__table__  # type: ignore[attr-defined]
    return {c.name: getattr(obj, c.name) for c in table.c}
