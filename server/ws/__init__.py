"""The websocket endpoint `/ws` (docs/protocol.md §11)."""

from aiohttp import web

from server.ws.handler import websocket


def setup(app: web.Application) -> None:
    app.router.add_get("/ws", websocket)
