"""The case-conference engine (web/static/conference.js) on its own, without the page or a
server: a scripted websocket and API show what it says and does on the wire. It says hello with
its device and, after a drop, resumes each thread from the last seq delivered; it reports
connecting, open, reconnecting and closed; a thread refused at hello, or cut off by `removed`,
carries the reason; a revoked device (close 4010) never reconnects. The cryptography of the same
engine runs against a real server in test_conference_app.py."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser

SCRIPT = """
async () => {
  const { Conference } = await import('/web/static/conference.js');
  const sockets = [];
  class FakeSocket {
    constructor(url) { this.url = url; this.sent = []; this.readyState = 0; sockets.push(this);
      setTimeout(() => { this.readyState = 1; this.onopen?.(); }, 0); }
    send(data) { this.sent.push(JSON.parse(data)); }
    close(code = 1000, reason = '') { this.shut(code, reason); }
    shut(code, reason = '') { if (this.readyState === 3) return; this.readyState = 3;
      setTimeout(() => this.onclose?.({ code, reason }), 0); }
    frame(f) { this.onmessage?.({ data: JSON.stringify(f) }); }
  }
  const T = '2b1f6f5c-0000-4000-8000-000000000001';
  const U = '2b1f6f5c-0000-4000-8000-000000000002';
  const calls = [];
  const api = async (method, path) => {
    calls.push(`${method} ${path}`);
    if (path === `/api/threads/${T}`) {
      return { thread: T, genesis: null, epoch: null, label_policy: 'none' };
    }
    if (path.endsWith('/consents')) return { consents: [] };
    throw Object.assign(new Error('unexpected'), { code: 'koppi.not_found' });
  };
  const follower = { follow: async () => [], trust: { now: () => 0 }, size: 0, refused: new Map() };
  const me = { deviceId: new Uint8Array(32).fill(7) };
  const engine = new Conference({ api, me, user: { user: 'u', org: 'o' }, follower, wsUrl: 'ws://test/ws',
    WebSocketImpl: FakeSocket, pollMs: 60000, backoffMs: [5], jitterMs: 0 });
  const states = [];
  const changed = [];
  engine.addEventListener('connection', (e) => states.push(e.detail.state));
  engine.addEventListener('thread', (e) => changed.push(e.detail.thread));
  const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));
  engine.start();
  await tick();
  const first = sockets[0];
  const hello = first.sent[0];
  first.frame({ type: 'ready', v: 1, threads: { [T]: 0 }, refused: { [U]: 'koppi.no_consent' } });
  for (const seq of [1, 2, 3]) {
    first.frame({ type: 'deliver', kind: 'message', thread: T, seq, id: 'x', epoch: 0, sender: 'y',
      label: { basis: 'consent', orgs: [] }, body: '', ts: 0 });
  }
  first.frame({ type: 'deliver', kind: 'message', thread: T, seq: 2, id: 'x', epoch: 0, sender: 'y',
    label: { basis: 'consent', orgs: [] }, body: '', ts: 0 });  // a repeat is skipped
  await tick();
  const buffered = engine.threads.get(T).buffer.map((f) => f.seq);
  // A request the server answers by id, then the socket drops.
  const answered = engine.request({ type: 'commit', id: 'c1', thread: T, body: '' });
  first.frame({ type: 'ack', id: 'c1', thread: T, seq: 4, duplicate: false });
  const ack = await answered;
  const lost = engine.request({ type: 'commit', id: 'c2', thread: T, body: '' })
    .catch((e) => e.code);
  first.shut(1006);
  await tick(60);
  const second = sockets[1];
  const resumed = second.sent[0];
  second.frame({ type: 'ready', v: 1, threads: { [T]: 3 }, refused: {} });
  second.frame({ type: 'removed', thread: T, reason: 'koppi.not_covered', consent: null });
  await tick();
  const removed = engine.threads.get(T).removed;
  second.shut(4010, 'koppi.device_revoked');
  await tick(60);
  return {
    hello, resumed, states, buffered, ack: ack.seq, lost: await lost, removed,
    refusal: engine.threads.get(U).refusal, sockets: sockets.length, calls: calls.slice(0, 1),
    changed: changed.includes(T) && changed.includes(U),
  };
}
"""


def test_the_engine_on_the_wire(page: Any) -> None:
    got = page.evaluate(SCRIPT)
    device = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc"
    assert got["hello"] == {"type": "hello", "v": 1, "resume": {}, "device": device}
    assert got["buffered"] == [1, 2, 3]  # not yet readable: kept until this device is added
    assert got["resumed"] == {
        "type": "hello",
        "v": 1,
        "resume": {"2b1f6f5c-0000-4000-8000-000000000001": 3},
        "device": device,
    }
    assert got["states"] == ["connecting", "open", "reconnecting", "open", "closed"]
    assert (got["ack"], got["lost"]) == (4, "koppi.offline")
    assert got["removed"] == {"reason": "koppi.not_covered", "consent": None}
    assert got["refusal"] == "koppi.no_consent"
    assert got["sockets"] == 2  # revoked: never again
    assert got["calls"] == ["GET /api/threads/2b1f6f5c-0000-4000-8000-000000000001"]
    assert got["changed"]
