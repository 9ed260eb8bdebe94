from __future__ import annotations

import dataclasses

from sikker.core import audit

ACTOR = audit.Actor("root", "tok_x", "127.0.0.1", "test")


def build_chain(n: int) -> list[tuple[audit.Entry, bytes]]:
    prev, out = audit.GENESIS, []
    for i in range(1, n + 1):
        entry = audit.make_entry(
            "vault_x", i, 1000 + i, ACTOR, audit.Action.ADMIN_SECRET_READ, {"secret": f"sk_{i}"}
        )
        prev = audit.chain_hash(prev, entry)
        out.append((entry, prev))
    return out


def recompute(entries: list[audit.Entry]) -> list[bytes]:
    prev, hashes = audit.GENESIS, []
    for e in entries:
        prev = audit.chain_hash(prev, e)
        hashes.append(prev)
    return hashes


def test_canonical_encoding_is_stable_and_sorted() -> None:
    entry = build_chain(1)[0][0]
    text = audit.canonical(entry).decode()
    assert text.startswith('{"action":"admin:secret:read","actor_id":"tok_x"')
    assert audit.canonical(entry) == audit.canonical(dataclasses.replace(entry))


def test_any_edit_changes_every_later_hash() -> None:
    chain = build_chain(5)
    entries = [e for e, _ in chain]
    entries[2] = dataclasses.replace(entries[2], actor_id="tok_evil")
    new = recompute(entries)
    assert new[:2] == [h for _, h in chain[:2]]
    assert all(a != b for a, (_, b) in zip(new[2:], chain[2:], strict=True))


def test_severity_follows_the_action_and_denials_are_raised() -> None:
    e = audit.make_entry("system", 1, 0, ACTOR, audit.Action.OPERATOR_SEAL, {})
    assert e.severity == "high"
    person = audit.Actor("user", "usr_x", "127.0.0.1", "test")
    d = audit.make_entry("system", 1, 0, person, audit.Action.ADMIN_PROJECT_CREATE, {}, "denied")
    assert d.severity == "low"


def test_action_names_are_source_subject_action() -> None:
    for action in audit.Action:
        assert len(action.value.split(":")) == 3


def test_canonical_bytes_are_those_of_every_field_sorted() -> None:
    """Chains written before canonical() was spelled out must still verify: same bytes."""
    import orjson

    actor = audit.Actor("machine", "m-\u00e9", "::1", 'ua "quoted" \\ \u2603')
    for action in audit.Action:
        for result, reason in (("ok", ""), ("denied", "why \u00fc")):
            entry = audit.make_entry(
                "c", 7, 1_700_000_000_000, actor, action, {"z": "1", "a": "\u00df"}, result, reason
            )
            expected = orjson.dumps(dataclasses.asdict(entry), option=orjson.OPT_SORT_KEYS)
            assert audit.canonical(entry) == expected


def test_every_use_of_the_root_token_is_high_severity() -> None:
    root = audit.Actor("root", "tok_root", "127.0.0.1")
    assert audit.make_entry("v", 1, 0, root, audit.Action.ADMIN_PROJECT_CREATE, {}).severity == "high"
    assert audit.make_entry("v", 1, 0, root, audit.Action.CANARY_TRIP, {}).severity == "critical"
    person = audit.Actor("user", "usr_x", "127.0.0.1")
    assert audit.make_entry("v", 1, 0, person, audit.Action.ADMIN_PROJECT_CREATE, {}).severity == "info"


def test_an_actor_built_while_serving_a_request_carries_its_id_into_the_record() -> None:
    outside = audit.Actor("admin", "tok_1")
    token = audit.REQUEST_ID.set("req-42")
    try:
        inside = audit.Actor("admin", "tok_1")
    finally:
        audit.REQUEST_ID.reset(token)
    assert outside.request_id == "" and inside.request_id == "req-42"
    plain = audit.make_entry("c", 1, 0, outside, audit.Action.ADMIN_VAULT_CREATE, {"vault": "v"})
    tagged = audit.make_entry("c", 1, 0, inside, audit.Action.ADMIN_VAULT_CREATE, {"vault": "v"})
    assert plain.target == {"vault": "v"}
    assert tagged.target == {"vault": "v", "request_id": "req-42"}
    assert b'"request_id":"req-42"' in audit.canonical(tagged)  # hashed with the record
