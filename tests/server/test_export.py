"""Export to an organisation's own records (issue: storage rights): a record system gets the
thread's commits and exactly the messages whose storage label names its organisation, each export
is a disclosure record every participant sees, and it is in the organisation's audit trail."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from server.appkeys import ENGINE
from server.repositories.devices import DeviceRepository
from tests.server.conftest import Cast, b64u
from tests.server.test_commits import commit, devices, frame, genesis  # noqa: F401
from tests.server.test_ghost_device import Api
from tests.server.test_ws import connect, recv, send_frame


def label(*orgs: uuid.UUID) -> dict[str, Any]:
    return {"orgs": [str(o) for o in sorted(orgs, key=lambda o: o.bytes)], "basis": "consent"}


async def test_each_organisation_gets_exactly_what_its_label_names(cast: Cast) -> None:
    a, b = cast.org_a, cast.org_b
    alice = await connect(cast, "alice")
    sent = {}
    for name, orgs in (("a", (a,)), ("b", (b,)), ("both", (a, b)), ("nobody", ())):
        frame = send_frame(cast, "alice", name.encode(), label=label(*orgs))
        await alice.send_json(frame)
        sent[name] = (await recv(alice, "ack"))["seq"]
    path = f"/api/threads/{cast.thread}/export"
    for user, expected in (("alice", ["a", "both"]), ("bob", ["b", "both"])):
        api = await Api.of(cast, user)
        page = await api.get(path)
        assert [e["body"] for e in page["envelopes"]] == [b64u(n.encode()) for n in expected]
        assert [e["seq"] for e in page["envelopes"]] == [sent[n] for n in expected]
        assert all(e["kind"] == "message" for e in page["envelopes"])
        assert isinstance(page["disclosure"], int)
    # Paging: after the last one, nothing more and no disclosure.
    api = await Api.of(cast, "alice")
    rest = await api.get(f"{path}?after={sent['both']}")
    assert rest == {"envelopes": [], "disclosure": None}
    first = await api.get(f"{path}?limit=1")
    assert [e["seq"] for e in first["envelopes"]] == [sent["a"]]

    # Every participant sees who took what; the organisation's trail has it too.
    listed = await (await Api.of(cast, "bob")).get(f"/api/threads/{cast.thread}/disclosures")
    records = listed["disclosures"]
    assert [(r["org"], len(r["messages"])) for r in records] == [
        (str(a), 2), (str(b), 2), (str(a), 1),
    ]  # fmt: skip
    trail = await DeviceRepository(cast.app[ENGINE]).audit_trail(a)
    exports = [e for e in trail if e.action == "export.disclosed"]
    assert [e.subject.split(" ", 1)[1] for e in exports] == [
        f"2 seq {sent['a']}-{sent['both']}",
        f"1 seq {sent['a']}-{sent['a']}",
    ]


async def test_export_is_for_admitted_members_and_checks_its_parameters(cast: Cast) -> None:
    mallory = await Api.of(cast, "mallory")
    path = f"/api/threads/{cast.thread}/export"
    r = await cast.client.get(path, headers=mallory.headers)
    assert r.status == 403 and (await r.json())["error"]["code"] == "koppi.not_member"
    r = await cast.client.get(f"/api/threads/{cast.thread}/disclosures", headers=mallory.headers)
    assert r.status == 403
    alice = await Api.of(cast, "alice")
    for query in ("?after=x", "?after=-1", "?limit=0"):
        r = await cast.client.get(path + query, headers=alice.headers)
        assert r.status == 400 and (await r.json())["error"]["code"] == "koppi.bad_request"
    r = await cast.client.get(f"/api/threads/{uuid.uuid4()}/export", headers=alice.headers)
    assert r.status == 403


async def test_the_threads_default_label_policy(cast: Cast) -> None:
    alice = await Api.of(cast, "alice")
    thread = f"/api/threads/{cast.thread}"
    assert (await alice.get(thread))["label_policy"] == "own-organisation"
    r = await cast.client.put(f"{thread}/label-policy", json={"policy": "all-may-store"},
                              headers=alice.headers)  # fmt: skip
    assert r.status == 200
    assert (await (await Api.of(cast, "bob")).get(thread))["label_policy"] == "all-may-store"
    r = await cast.client.put(f"{thread}/label-policy", json={"policy": "everyone"},
                              headers=alice.headers)  # fmt: skip
    assert r.status == 400 and (await r.json())["error"]["code"] == "koppi.bad_label"
    mallory = await Api.of(cast, "mallory")
    r = await cast.client.put(f"{thread}/label-policy", json={"policy": "none"},
                              headers=mallory.headers)  # fmt: skip
    assert r.status == 403
    trail = await DeviceRepository(cast.app[ENGINE]).audit_trail(cast.org_a)
    assert [e.subject for e in trail if e.action == "thread.label_policy"] == [
        f"{cast.thread} all-may-store"
    ]


@pytest.mark.usefixtures("devices")
async def test_commits_alone_disclose_nothing(cast: Cast) -> None:
    """An exporter resuming after a sequence number fetches the commits before it to verify the
    chain: they carry no content, so the listing is no disclosure (and still needs admission)."""
    alice = await connect(cast, "alice")
    g = genesis(cast)
    c0 = commit(cast, 0, g.hash, ["alice", "bob"])
    await alice.send_json(frame(cast, c0, g))
    await recv(alice, "ack")
    await alice.send_json(send_frame(cast, "alice", b"for kela", label=label(cast.org_a)))
    await recv(alice, "ack")
    api = await Api.of(cast, "alice")
    page = await api.get(f"/api/threads/{cast.thread}/commits")
    assert [(e["kind"], e["seq"], e["body"]) for e in page["envelopes"]] == [
        ("commit", 1, b64u(c0.encode()))
    ]
    assert (await api.get(f"/api/threads/{cast.thread}/commits?after=1")) == {"envelopes": []}
    assert (await api.get(f"/api/threads/{cast.thread}/disclosures")) == {"disclosures": []}
    mallory = await Api.of(cast, "mallory")
    r = await cast.client.get(f"/api/threads/{cast.thread}/commits", headers=mallory.headers)
    assert r.status == 403 and (await r.json())["error"]["code"] == "koppi.not_member"
    r = await cast.client.get(f"/api/threads/{cast.thread}/commits?after=x", headers=api.headers)
    assert r.status == 400 and (await r.json())["error"]["code"] == "koppi.bad_request"
