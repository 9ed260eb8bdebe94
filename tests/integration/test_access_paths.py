"""Differential test: every access case through the full path and through the read lane.

``GET /v1/secret/{id}`` is answered by the read lane when its cached plan allows the read, and
by the full path (MachinePlane.read) otherwise. Both must give the same status and body in
every case, including after the state changed under a warm plan. Each case runs twice on the
same store, in a fresh world each time: once through the real ASGI app (lane first), once with
the lane handing every request to the full path. Both decide with core/access.py.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import cast

import httpx
import pytest
from nacl.signing import SigningKey

from sikker.api.app import create_app
from sikker.config import Settings
from sikker.core import audit, signing, values
from sikker.core.model import Principal
from sikker.service.bootstrap import Services, bootstrap
from sikker.service.read_lane import ReadPlan
from sikker.storage.read_plans import Busy, read_plan

ROOT = Principal("root", "tok_test", None)
ACTOR = audit.Actor("root", "tok_test", "127.0.0.1", "pytest")
HOME = "10.0.0.1"  # where the machines enroll and read from
T0 = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Node:
    """One server: its services, the ASGI app over them, its clock and unseal share."""

    svc: Services
    app: object
    clock: Clock
    share: str


@dataclass
class World:
    node: Node
    vault: str
    project_a: str
    project_b: str
    secret_a: str  # granted, in A
    canary_a: str  # an enabled canary in A, granted
    canary_b: str  # an enabled canary in B, granted
    foreign: str  # a live secret of another vault
    machine: str
    key: SigningKey
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def svc(self) -> Services:
        return self.node.svc

    @property
    def clock(self) -> Clock:
        return self.node.clock

    def admin_machine(self, **token: object) -> tuple[str, SigningKey]:
        """Enroll another machine of this vault (member of A and B, granted everything)."""
        return enroll(self.svc, self.vault, [self.project_a, self.project_b], self.grants, **token)

    @property
    def grants(self) -> list[str]:
        return [self.secret_a, self.canary_a, self.canary_b]


def enroll(
    svc: Services, vault: str, projects: list[str], grants: list[str], **token: object
) -> tuple[str, SigningKey]:
    options: dict[str, object] = {
        "machine_ttl_s": None,
        "approval": "auto",
        "source_cidr": None,
    } | token
    _, plaintext = svc.machines.create_enrollment(
        ROOT,
        ACTOR,
        vault,
        name="t",
        project_ids=projects,
        secret_ids=grants,
        max_uses=1,
        token_ttl_s=3600,
        hostname_pattern=None,
        name_pattern=None,
        **options,  # type: ignore[arg-type]
    )
    key = SigningKey.generate()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    machine = svc.plane.enroll(vault, plaintext, public, "h", None, "standard", HOME, "t")
    return machine.id, key


def build(node: Node, **token: object) -> World:
    svc, n = node.svc, secrets.token_hex(4)
    vault = svc.vaults.create_vault(ROOT, ACTOR, f"v-{n}").id
    a = svc.vaults.create_project(ROOT, ACTOR, vault, "a").id
    b = svc.vaults.create_project(ROOT, ACTOR, vault, "b").id
    secret_a = svc.secrets.create(ROOT, ACTOR, a, "s", values.standard("value-a")).id
    canary_a = svc.canaries.create(ROOT, ACTOR, a, "canary-a", "password", None).id
    canary_b = svc.canaries.create(ROOT, ACTOR, b, "canary-b", "password", None).id
    other_vault = svc.vaults.create_vault(ROOT, ACTOR, f"o-{n}").id
    other = svc.vaults.create_project(ROOT, ACTOR, other_vault, "o").id
    foreign = svc.secrets.create(ROOT, ACTOR, other, "f", values.standard("value-foreign")).id
    named = {"a": a, "b": b, "secret_a": secret_a, "canary_a": canary_a, "canary_b": canary_b}
    projects = [named[p] for p in token.pop("projects", ["a", "b"])]  # type: ignore[attr-defined]
    grants = [named[g] for g in token.pop("grants", ["secret_a", "canary_a", "canary_b"])]  # type: ignore[attr-defined]
    machine, key = enroll(svc, vault, projects, grants, **token)  # type: ignore[arg-type]
    world = World(node, vault, a, b, secret_a, canary_a, canary_b, foreign, machine, key)
    world.labels = {
        vault: "<vault>",
        a: "<project a>",
        b: "<project b>",
        secret_a: "<secret a>",
        canary_a: "<canary a>",
        canary_b: "<canary b>",
        foreign: "<foreign>",
        machine: "<machine>",
    }
    return world


def read(world: World, secret_id: str, source_ip: str = HOME) -> tuple[int, str]:
    """One signed GET /v1/secret/{id} through the real ASGI app, ids replaced by labels."""
    path = f"/v1/secret/{secret_id}"
    ts, nonce = str(world.clock() // 1000), secrets.token_hex(16)
    sig = world.key.sign(signing.canonical("GET", path, ts, nonce, b"")).signature
    headers = {
        "X-Machine-Id": world.machine,
        "X-Timestamp": ts,
        "X-Nonce": nonce,
        "X-Signature": base64.b64encode(sig).decode(),
    }

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=world.node.app, client=(source_ip, 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://sikker") as client:
            return await client.get(path, headers=headers)

    response = asyncio.run(go())
    body = response.text
    if response.status_code == 200 and secret_id in (world.canary_a, world.canary_b):
        body = '{"value":"<decoy>"}'  # each world's decoy is random
    for value, label in world.labels.items():
        body = body.replace(value, label)
    return response.status_code, body


Step = Callable[[World], object]


def seal_and_read(world: World) -> object:
    world.svc.seal.seal(ACTOR)
    try:
        return read(world, world.secret_a)
    finally:
        world.svc.seal.submit_share(world.node.share, ACTOR)


def trip_by_other(project: str) -> Step:
    """Another machine of the vault reads the canary of ``project``: the project freezes."""

    def step(world: World) -> object:
        other, key = world.admin_machine()
        intruder = World(**{**world.__dict__, "machine": other, "key": key})
        canary = world.canary_a if project == "a" else world.canary_b
        return read(intruder, canary)

    return step


# name -> (token options, steps between the warm-up read of secret a and two final reads of
# it). A step's return value is part of the compared outcome; ``read(w, ...)`` steps are the
# machine's own reads.
CASES: dict[str, tuple[dict[str, object], list[Step]]] = {
    "allowed": ({}, [lambda w: read(w, w.secret_a)]),
    "pending": ({"approval": "manual"}, [lambda w: read(w, w.secret_a)]),
    "disabled": (
        {},
        [
            lambda w: w.svc.machines.change_state(ROOT, ACTOR, w.machine, "disable") and None,
            lambda w: read(w, w.secret_a),
        ],
    ),
    "cidr mismatch": (
        {"source_cidr": "10.0.0.0/8"},
        [lambda w: read(w, w.secret_a, "10.9.9.9"), lambda w: read(w, w.secret_a, "192.168.1.1")],
    ),
    "expired": (
        {"machine_ttl_s": 60},
        [lambda w: setattr(w.clock, "now", w.clock.now + 61_000), lambda w: read(w, w.secret_a)],
    ),
    "revoked": (
        {},
        [
            lambda w: w.svc.machines.change_state(ROOT, ACTOR, w.machine, "revoke") and None,
            lambda w: read(w, w.secret_a),
        ],
    ),
    "no membership": ({"projects": ["b"], "grants": ["canary_b"]}, [lambda w: read(w, w.secret_a)]),
    "no grant": ({"grants": ["canary_a"]}, [lambda w: read(w, w.secret_a)]),
    "membership removed": (
        {},
        [
            lambda w: w.svc.machines.set_membership(ROOT, ACTOR, w.machine, w.project_a, False),
            lambda w: read(w, w.secret_a),
        ],
    ),
    "grant removed": (
        {},
        [
            lambda w: w.svc.machines.set_grants(ROOT, ACTOR, w.machine, [w.secret_a], False),
            lambda w: read(w, w.secret_a),
        ],
    ),
    "frozen own project": ({}, [trip_by_other("a"), lambda w: read(w, w.secret_a)]),
    "frozen other project": ({}, [trip_by_other("b"), lambda w: read(w, w.secret_a)]),
    "canary, own project": ({}, [lambda w: read(w, w.canary_a), lambda w: read(w, w.secret_a)]),
    "canary, other project": ({}, [lambda w: read(w, w.canary_b), lambda w: read(w, w.secret_a)]),
    "deleted secret": (
        {},
        [lambda w: w.svc.secrets.delete(ROOT, ACTOR, w.secret_a), lambda w: read(w, w.secret_a)],
    ),
    "secret of another vault": ({}, [lambda w: read(w, w.foreign)]),
    "missing secret": ({}, [lambda w: read(w, "sk_0000000000000000")]),
    "sealed": ({}, [seal_and_read]),
}


@pytest.fixture(scope="module")
def node(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    clock = Clock()
    svc = bootstrap(Settings(database=module_database_url, data_dir=tmp_path_factory.mktemp("d")), clock)
    try:
        svc.deps.db.migrate()
        share = svc.seal.init(1, 1, ACTOR).shares[0]
        svc.seal.submit_share(share, ACTOR)
        yield Node(svc, create_app(svc), clock, share)
    finally:
        svc.close()


def outcomes(node: Node, case: str, lane: bool) -> list[object]:
    token, steps = CASES[case]
    node.clock.now = T0
    world = build(node, **dict(token))
    svc = node.svc
    served: list[ReadPlan] = []
    original = svc.reads.plan

    async def no_plan(machine_id: str, secret_id: str) -> ReadPlan | None:
        return None

    async def watched(machine_id: str, secret_id: str) -> ReadPlan | None:
        plan = await original(machine_id, secret_id)
        if plan is not None:
            served.append(plan)
        return plan

    # The lane's fill (on SQLite the driver's connection on the event loop, or on a fill thread
    # when that would wait: storage/read_plans.PlanReader) must read exactly what the
    # SQLAlchemy statement reads.
    reader = svc.reads._reader
    fill, fill_now = reader.read, reader.read_now
    filled: list[ReadPlan | None] = []

    def check(machine_id: str, secret_id: str, plan: object) -> None:
        with svc.deps.db.read() as conn:
            assert plan == read_plan(conn, machine_id, secret_id)
        filled.append(cast(ReadPlan | None, plan))

    def compared(machine_id: str, secret_id: str) -> ReadPlan | None:
        plan = fill(machine_id, secret_id)
        check(machine_id, secret_id, plan)
        return plan

    def compared_now(machine_id: str, secret_id: str) -> ReadPlan | Busy | None:
        plan = fill_now(machine_id, secret_id)
        if not isinstance(plan, Busy):
            check(machine_id, secret_id, plan)
        return plan

    reader.read = compared  # type: ignore[method-assign]
    reader.read_now = compared_now  # type: ignore[method-assign]
    svc.reads.plan = watched if lane else no_plan  # type: ignore[method-assign]
    try:
        results: list[object] = [read(world, world.secret_a)]  # warm-up: fills the lane's plan
        results += [step(world) for step in steps]
        # Twice more: the first read after a change meets a stale plan (the epoch moved); the
        # second meets the plan filled after the change.
        results += [read(world, world.secret_a), read(world, world.secret_a)]
    finally:
        svc.reads.plan = original  # type: ignore[method-assign]
        reader.read, reader.read_now = fill, fill_now  # type: ignore[method-assign]
    assert not lane or served, "the lane was never asked"
    assert not lane or filled, "no plan was filled"
    return results


@pytest.mark.parametrize("case", list(CASES))
def test_the_lane_and_the_full_path_answer_alike(node: Node, case: str) -> None:
    full = outcomes(node, case, lane=False)
    fast = outcomes(node, case, lane=True)
    assert fast == full


def test_the_lane_serves_a_plain_allowed_read_itself(node: Node) -> None:
    """Guard against a vacuous comparison: the lane really answers the allowed case."""
    world = build(node)
    services = node.svc
    assert read(world, world.secret_a) == (200, '{"value":"value-a"}')  # fills the plan
    full_path = services.plane.read

    def refuse(*_args: object) -> str:
        raise AssertionError("the full path was asked")

    services.plane.read = refuse  # type: ignore[method-assign]
    try:
        assert read(world, world.secret_a) == (200, '{"value":"value-a"}')
    finally:
        services.plane.read = full_path  # type: ignore[method-assign]


def test_expected_outcomes_of_the_key_cases(node: Node) -> None:
    """What both paths answer, pinned (a comparison alone would pass if both were wrong)."""
    full = {case: outcomes(node, case, lane=False) for case in CASES}
    assert full["allowed"] == [(200, '{"value":"value-a"}')] * 4
    locked = (423, '{"error":"a project of this machine is frozen (a canary was read)"}')
    assert full["frozen other project"][-2:] == [locked, locked]
    assert full["canary, other project"] == [
        (200, '{"value":"value-a"}'),
        (200, '{"value":"<decoy>"}'),
        locked,
        locked,
        locked,
    ]
    assert full["secret of another vault"][1] == (404, '{"error":"secret <foreign> not found"}')
    assert full["missing secret"][1] == (404, '{"error":"secret sk_0000000000000000 not found"}')
    assert full["pending"][-1][0] == 403 and full["disabled"][-1][0] == 403
    assert full["expired"][-1][0] == 401 and full["revoked"][-1][0] == 401
    assert full["cidr mismatch"][1:3] == [
        (200, '{"value":"value-a"}'),
        (403, '{"error":"requests from this address are not allowed for this machine"}'),
    ]
    assert full["sealed"][1][0] == 503 and full["sealed"][-1][0] == 200
