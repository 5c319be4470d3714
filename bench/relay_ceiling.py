"""The ceiling: a minimal aiohttp websocket relay with no persistence, no auth and no checks.

It speaks the same frames as Koppi (hello/ready, send/ack, deliver) so `bench/ws_load.py` drives
both identically; Koppi's throughput is reported as a fraction of this relay's, measured in the
same run on the same machine.

    python -m bench.relay_ceiling --port 9001
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict

from aiohttp import WSMsgType, web

routes = web.RouteTableDef()
SUBS: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
SEQ: dict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))


@routes.get("/ws")
async def relay(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=1 << 20)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is not WSMsgType.TEXT:
            continue
        frame = json.loads(msg.data)
        if frame["type"] == "hello":
            threads = list(frame.get("resume", {}))  # the bench names each connection's threads
            for t in threads:
                SUBS[t].add(ws)
            await ws.send_str(
                json.dumps({"type": "ready", "v": 1, "threads": {t: 0 for t in threads}})
            )
        elif frame["type"] == "send":
            seq = next(SEQ[frame["thread"]])
            await ws.send_str(
                json.dumps(
                    {
                        "type": "ack",
                        "id": frame["id"],
                        "thread": frame["thread"],
                        "seq": seq,
                        "duplicate": False,
                    }
                )
            )
            out = json.dumps(
                {
                    "type": "deliver",
                    "thread": frame["thread"],
                    "seq": seq,
                    "id": frame["id"],
                    "epoch": frame["epoch"],
                    "sender": frame["sender"],
                    "label": frame["label"],
                    "body": frame["body"],
                    "ts": 0,
                }
            )
            for sub in list(SUBS[frame["thread"]]):
                if not sub.closed:
                    await sub.send_str(out)
    for subs in SUBS.values():
        subs.discard(ws)
    return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.add_routes(routes)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
