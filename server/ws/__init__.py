"""The websocket endpoint `/ws` (docs/protocol.md §11)."""

import functools
import weakref

from aiohttp import web

from server.appkeys import ORGS
from server.ws.handler import CONNECTIONS, device_revoked, websocket


def setup(app: web.Application) -> None:
    app[CONNECTIONS] = weakref.WeakSet()
    app.router.add_get("/ws", websocket)

    async def hook(app: web.Application) -> None:
        app[ORGS].on_revoked = functools.partial(device_revoked, app)

    app.on_startup.append(hook)
