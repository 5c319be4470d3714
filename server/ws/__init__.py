"""The websocket endpoint `/ws` (docs/protocol.md §11)."""

import functools
import weakref

from aiohttp import web

from server.appkeys import ADMISSION, ORGS, THREADS, USERS
from server.ws.handler import (
    CONNECTIONS,
    admission_ended,
    admitted,
    device_revoked,
    member_changed,
    user_disabled,
    websocket,
)


def setup(app: web.Application) -> None:
    app[CONNECTIONS] = weakref.WeakSet()
    app.router.add_get("/ws", websocket)

    async def hook(app: web.Application) -> None:
        app[ORGS].on_revoked = functools.partial(device_revoked, app)
        app[USERS].on_disabled = functools.partial(user_disabled, app)
        app[USERS].on_changed = functools.partial(member_changed, app)
        app[ADMISSION].on_removed = functools.partial(admission_ended, app)
        app[ADMISSION].on_admitted = functools.partial(admitted, app)
        app[THREADS].on_joined = functools.partial(admitted, app)

    app.on_startup.append(hook)
