"""What the browser app lists (issue #9): my threads with whether the client's consent admits me
now, who is in a conference (names, organisations, roles, admission), and the directory of an
organisation's professionals that an admitted member may invite from. Each is refused to anyone
outside the thread, and the directory to any organisation the consent does not cover."""

from __future__ import annotations

import uuid
from typing import Any

from server.appkeys import AUTH, ENGINE
from server.db.tables import Organisation
from server.repositories.accounts import AccountRepository
from server.repositories.threads import ThreadRepository
from tests.server.conftest import CLIENT_REF, PASSWORD, Cast


async def add_outsider(cast: Cast) -> uuid.UUID:
    """carl of organisation C, invited straight into the thread's members (as an earlier
    consent would have let him be) though the current consent does not cover C."""
    engine = cast.app[ENGINE]
    org = Organisation(id=uuid.uuid4(), name="TE-palvelut", business_id="2455538-5",
                       status="active", created_at=cast.clock.now_ms())  # fmt: skip
    await AccountRepository(engine).add_organisation(org)
    carl = await cast.app[AUTH].create_user(org.id, "carl", PASSWORD, frozenset({"professional"}))
    await ThreadRepository(engine).add_member(cast.thread, carl.id, cast.clock.now_ms())
    cast.users["carl"] = carl.id
    return org.id


async def get(cast: Cast, user: str | None, path: str) -> tuple[int, Any]:
    cast.client.session.cookie_jar.clear()
    if user is not None:
        await cast.login(user)
    r = await cast.client.get(path)
    return r.status, await r.json()


async def test_my_threads_say_whether_the_consent_admits_me(cast: Cast) -> None:
    await add_outsider(cast)
    status, body = await get(cast, "alice", "/api/threads")
    assert status == 200
    assert body["threads"] == [
        {
            "thread": str(cast.thread),
            "client_ref": CLIENT_REF.hex(),
            "purpose": "rehabilitation-planning",
            "created_at": cast.clock.now_ms(),
            "epoch": None,
            "closed": False,
            "admitted": True,
            "refusal": None,
        }
    ]
    # A member the consent does not cover sees the thread and why they cannot take part.
    status, body = await get(cast, "carl", "/api/threads")
    assert status == 200
    (only,) = body["threads"]
    assert (only["thread"], only["admitted"], only["refusal"]) == (
        str(cast.thread),
        False,
        "koppi.not_covered",
    )
    # Someone else's threads are not listed; nobody unauthenticated gets anything.
    assert await get(cast, "mallory", "/api/threads") == (200, {"threads": []})
    status, body = await get(cast, None, "/api/threads")
    assert (status, body["error"]["code"]) == (401, "koppi.unauthenticated")


async def test_members_with_names_organisations_and_admission(cast: Cast) -> None:
    org_c = await add_outsider(cast)
    path = f"/api/threads/{cast.thread}/members"
    status, body = await get(cast, "bob", path)
    assert status == 200
    assert body["members"] == [
        {"user": str(cast.users["bob"]), "username": "bob", "org": str(cast.org_b),
         "org_name": "Hyvinvointialue", "roles": ["professional"], "admitted": True,
         "refusal": None},
        {"user": str(cast.users["alice"]), "username": "alice", "org": str(cast.org_a),
         "org_name": "Kela", "roles": ["professional"], "admitted": True, "refusal": None},
        {"user": str(cast.users["carl"]), "username": "carl", "org": str(org_c),
         "org_name": "TE-palvelut", "roles": ["professional"], "admitted": False,
         "refusal": "koppi.not_covered"},
    ]  # fmt: skip
    # An invited member the consent does not admit still sees who is in it (as the consents).
    assert (await get(cast, "carl", path))[0] == 200
    for user, where in (("mallory", path), ("alice", "/api/threads/not-a-uuid/members"),
                        ("alice", f"/api/threads/{uuid.uuid4()}/members")):  # fmt: skip
        status, body = await get(cast, user, where)
        assert (status, body["error"]["code"]) == (403, "koppi.not_member"), where
    status, body = await get(cast, None, path)
    assert (status, body["error"]["code"]) == (401, "koppi.unauthenticated")


async def test_the_directory_lists_only_covered_organisations_for_admitted_members(
    cast: Cast,
) -> None:
    org_c = await add_outsider(cast)
    await cast.app[AUTH].create_user(cast.org_b, "berit", PASSWORD, frozenset({"consent-recorder"}))
    county = f"/api/organisations/{cast.org_b}/professionals?thread={cast.thread}"
    status, body = await get(cast, "alice", county)
    assert status == 200
    # The county's professionals (its admin bert is no professional), by username.
    assert [p["username"] for p in body["professionals"]] == ["berit", "bob"]
    assert body["professionals"][1] == {
        "user": str(cast.users["bob"]),
        "username": "bob",
        "roles": ["professional"],
    }
    # Refused: an organisation the consent does not cover (however the id is written), a member
    # the consent does not admit, a non-member, no thread named, no login.
    refusals = (
        ("alice", f"/api/organisations/{org_c}/professionals?thread={cast.thread}", 403,
         "koppi.not_covered"),
        ("alice", f"/api/organisations/nonsense/professionals?thread={cast.thread}", 403,
         "koppi.not_covered"),
        ("carl", county, 403, "koppi.not_covered"),
        ("mallory", county, 403, "koppi.not_member"),
        ("alice", f"/api/organisations/{cast.org_b}/professionals?thread={uuid.uuid4()}", 403,
         "koppi.not_member"),
        ("alice", f"/api/organisations/{cast.org_b}/professionals", 400, "koppi.bad_request"),
        ("alice", f"/api/organisations/{cast.org_b}/professionals?thread=x", 400,
         "koppi.bad_request"),
        (None, county, 401, "koppi.unauthenticated"),
    )  # fmt: skip
    for user, path, want_status, code in refusals:
        status, body = await get(cast, user, path)
        assert (status, body["error"]["code"]) == (want_status, code), (user, path)
