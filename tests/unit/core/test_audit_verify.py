from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sikker.core import audit, audit_verify, merkle

Line = dict[str, Any]
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
CHAIN = "vault_k3x9"
N, EVERY = 10_000, 1_000
T0 = 1_767_225_600_000
ACTORS = [
    audit.Actor("admin", "tok_a1", "10.0.0.7", "sikker-cli/0.1"),
    audit.Actor("machine", "mch_b2", "::1"),
    audit.Actor("root", "root"),
    audit.Actor("anonymous", "", "203.0.113.9", "curl/8 ø"),
]
ACTIONS = list(audit.Action)


def public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


@dataclass
class Export:
    lines: list[Line]
    canonical: list[bytes] = field(default_factory=list)  # record seq s at s - 1
    pos: list[int] = field(default_factory=list)  # line index of the k-th exported record at k
    checkpoint_lines: list[int] = field(default_factory=list)

    def checkpoint(self, size: int) -> Line:
        return next(ln for ln in self.lines if ln["type"] == "checkpoint" and ln["treeSize"] == size)


def header(key: Ed25519PrivateKey = KEY) -> Line:
    return {
        "type": "header",
        "format": audit_verify.FORMAT,
        "chain": CHAIN,
        "publicKey": base64.b64encode(public(key)).decode(),
    }


def entry(seq: int) -> audit.Entry:
    target = {"secret": f"sk_{seq % 97}", "project": "prj_1"} if seq % 3 else {}
    return audit.make_entry(
        CHAIN,
        seq,
        T0 + 37 * seq,
        ACTORS[seq % 4],
        ACTIONS[seq % len(ACTIONS)],
        target,
        "denied" if seq % 11 == 0 else "ok",
        "policy: no grant" if seq % 11 == 0 else "",
    )


def record(e: audit.Entry, prev: bytes) -> Line:
    return {
        "type": "record",
        **dataclasses.asdict(e),
        "prevHash": prev.hex(),
        "hash": audit.chain_hash(prev, e).hex(),
    }


def build(n: int = N, every: int = EVERY, checkpoints_last: bool = False, first: int = 1) -> Export:
    """A signed export: each checkpoint right after the record it ends at or, with
    ``checkpoints_last``, all of them at the end as the /export route writes them.
    ``first`` > 1 makes a partial export, like ``sikker audit export --since``."""
    export, later = Export([header()]), []
    prev, frontier = audit.GENESIS, merkle.Frontier()
    for seq in range(1, n + 1):
        e = entry(seq)
        export.canonical.append(audit.canonical(e))
        frontier.append(merkle.leaf_hash(export.canonical[-1]))
        line = record(e, prev)
        prev = bytes.fromhex(line["hash"])
        if seq >= first:
            export.pos.append(len(export.lines))
            export.lines.append(line)
        if seq % every == 0:
            cp = audit_verify.sign_checkpoint(KEY, CHAIN, seq, frontier.root(), T0 + 40 * seq)
            (later if checkpoints_last else export.lines).append(cp)
    export.lines += later
    export.checkpoint_lines = [j for j, ln in enumerate(export.lines) if ln["type"] == "checkpoint"]
    return export


@pytest.fixture(scope="module")
def export() -> Export:
    return build()


def test_a_valid_export_verifies(export: Export) -> None:
    report = audit_verify.verify(export.lines, trusted_public_key=public(KEY))
    assert report == audit_verify.Report(True, N, N // EVERY, None, None, ())
    assert audit_verify.verify(build(2_500, checkpoints_last=True).lines).ok


def test_checkpoint_message_is_the_documented_text() -> None:
    message = audit_verify.checkpoint_message("system", 5000, bytes(range(32)), 1700000000000)
    assert message == (
        b"sikker-audit-checkpoint-v1\nsystem\n5000\n"
        b"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n1700000000000\n"
    )


def test_records_after_the_newest_checkpoint_are_noted() -> None:
    report = audit_verify.verify(build(2_300).lines)
    assert report.ok and report.notes == (
        "records 2001..2300 are newer than the newest checkpoint: only the hash chain protects them",
    )


def test_a_partial_export_checks_its_chain_and_notes_what_it_cannot_check() -> None:
    partial = build(3_000, first=1_501)
    report = audit_verify.verify(partial.lines, trusted_public_key=public(KEY))
    assert report.ok and report.records == 1_500
    assert report.notes == (
        "the export starts at record 1501: its link to record 1500 and 3 checkpoint root(s) "
        "cannot be checked (signatures were)",
    )
    partial.lines[partial.pos[500]]["reason"] = "edited"
    assert audit_verify.verify(partial.lines).first_bad_seq == 2_001


def test_a_wrong_public_key_fails(export: Export) -> None:
    report = audit_verify.verify(export.lines, trusted_public_key=public(OTHER_KEY))
    assert not report.ok and report.problem == "the export's public key is not the trusted key"
    swapped = [header(OTHER_KEY), *export.lines[1:]]
    assert audit_verify.verify(swapped).problem == "checkpoint at size 1000: bad signature"


def test_a_resigned_export_passes_only_when_the_key_is_not_pinned() -> None:
    forged = build(3_000)
    forged.lines[0] = header(OTHER_KEY)
    for i, line in enumerate(forged.lines):
        if line["type"] == "checkpoint":
            forged.lines[i] = audit_verify.sign_checkpoint(
                OTHER_KEY, CHAIN, line["treeSize"], bytes.fromhex(line["rootHash"]), line["timeMs"]
            )
    assert audit_verify.verify(forged.lines).ok
    assert not audit_verify.verify(forged.lines, trusted_public_key=public(KEY)).ok


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("rootHash", "ab" * 32),
        ("timeMs", T0),
        ("treeSize", 4_999),
        ("signature", base64.b64encode(bytes(64)).decode()),
    ],
)
def test_a_forged_checkpoint_fails(export: Export, change: str, value: object) -> None:
    lines = [ln | {change: value} if ln.get("treeSize") == 5_000 else ln for ln in export.lines]
    report = audit_verify.verify(lines)
    assert not report.ok and report.first_bad_seq is None
    assert report.problem == f"checkpoint at size {value if change == 'treeSize' else 5_000}: bad signature"


def test_a_checkpoint_signed_by_another_key_fails(export: Export) -> None:
    fake = audit_verify.sign_checkpoint(OTHER_KEY, CHAIN, 3_000, bytes(32), T0)
    assert audit_verify.verify([*export.lines, fake]).problem == "checkpoint at size 3000: bad signature"


def test_checkpoints_out_of_order_fail() -> None:
    lines = build(5_000, checkpoints_last=True).lines
    lines[-1], lines[-2] = lines[-2], lines[-1]
    report = audit_verify.verify(lines)
    assert report.problem == "checkpoint at size 4000 follows one at size 5000 (sizes must increase)"


def test_consistency_proofs_between_checkpoints_are_checked() -> None:
    full = build(5_000, checkpoints_last=True)
    leaves = [merkle.leaf_hash(c) for c in full.canonical]
    cps = [ln for ln in full.lines if ln["type"] == "checkpoint"]
    for older, newer in itertools.pairwise(cps):
        newer["consistencyProof"] = [
            p.hex() for p in merkle.consistency_proof(leaves, older["treeSize"], newer["treeSize"])
        ]
    assert audit_verify.verify(full.lines).ok
    partial = [full.lines[0], *full.lines[2_001:]]  # records 2001.., checkpoint roots not checkable
    assert audit_verify.verify(partial).ok
    cps[3]["consistencyProof"][0] = "00" * 32
    assert audit_verify.verify(partial).problem == "checkpoints at 3000 and 4000 are not consistent"


def test_a_trusted_checkpoint_catches_a_rewritten_history(export: Export) -> None:
    rewritten = build(6_000, every=N + 1)  # the attacker drops the checkpoints: they cannot re-sign them
    rewritten.lines[rewritten.pos[40]]["reason"] = "nothing to see"
    rechain(rewritten.lines, rewritten.pos[40])
    assert audit_verify.verify(rewritten.lines).ok  # the hash chain alone cannot tell
    report = audit_verify.verify(rewritten.lines, trusted_checkpoint=export.checkpoint(5_000))
    assert report.first_bad_seq == 1
    assert report.problem == (
        "trusted checkpoint at size 5000: root does not match records 1..5000 "
        "(altered within records 1..5000)"
    )


def test_a_trusted_checkpoint_with_a_bad_signature_fails(export: Export) -> None:
    trusted = export.checkpoint(5_000) | {"timeMs": 1}
    assert audit_verify.verify(export.lines, trusted_checkpoint=trusted).problem == (
        "trusted checkpoint at size 5000: bad signature"
    )


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ([], "the export is empty (no header)"),
        ([{"type": "record"}], "line 1: expected the export header"),
        ([header() | {"format": "v0"}], "line 1: not a sikker-audit-v1 header"),
        ([header(), {"type": "note"}], "line 2: unexpected line type 'note'"),
        ([header(), ["not", "an", "object"]], "line 2: unexpected line type None"),
        ([header(), header()], "line 2: unexpected line type 'header'"),
        (
            [header(), {"type": "checkpoint", "chain": "other"}],
            "line 2: chain 'other' is not this export's chain 'vault_k3x9'",
        ),
    ],
)
def test_malformed_exports_fail_with_the_line_number(lines: list[Any], problem: str) -> None:
    report = audit_verify.verify(lines)
    assert (report.ok, report.problem) == (False, problem)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ({"note": "ok"}, "record 3 (line 4): unexpected field 'note' (not covered by the hash)"),
        ({"seq": "3"}, "record 3 (line 4): field 'seq' must be a non-negative 64-bit integer"),
        ({"seq": True}, "record 3 (line 4): field 'seq' must be a non-negative 64-bit integer"),
        ({"target": {"a": 1}}, "record 3 (line 4): field 'target' must be an object of strings"),
        ({"hash": "AB" * 32}, "record 3 (line 4): field 'hash' must be 64 lower-case hex digits"),
        ({"chain": "vault_other"}, "record 3: belongs to chain 'vault_other'"),
    ],
)
def test_malformed_records_are_named(edit: Line, problem: str) -> None:
    lines = build(5).lines
    lines[3] = lines[3] | edit
    report = audit_verify.verify(lines)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 3, problem)


def test_the_documented_problem_texts(export: Export) -> None:
    lines = export.lines
    modified = [*lines[:57], lines[57] | {"actor_id": "tok_evil"}, *lines[58:]]
    deleted = lines[:58] + lines[59:]
    relinked = [*lines[:11], lines[11] | {"reason": "x"}, *lines[12:]]
    rechain(relinked, 11, stop=12)
    truncated = [*lines[: export.pos[4_000]], export.checkpoint(5_000)]  # records 1..4000
    assert problem_of(modified) == (57, "record 57: hash does not match its contents (modified)")
    assert problem_of(deleted) == (58, "record 58: expected seq 58, found 59 (deleted or reordered)")
    assert problem_of(relinked) == (11, "record 12: prevHash does not link to record 11")
    assert problem_of(truncated) == (
        4_001,
        "export ends at record 4000 but a checkpoint covers 5000 (truncated)",
    )
    assert problem_of(lines[:1]) == (None, None)
    assert problem_of([lines[0], export.checkpoint(1_000)]) == (
        1,
        "export ends at record 0 but a checkpoint covers 1000 (truncated)",
    )


def test_renumbering_the_first_record_is_caught() -> None:
    lines = build(5).lines
    lines[1] = lines[1] | {"seq": 2}  # without from_start this looks like an export from record 2
    assert problem_of(lines) == (2, "record 2: hash does not match its contents (modified)")
    assert problem_of(lines, from_start=True) == (
        1,
        "record 1: expected seq 1, found 2 (deleted or reordered)",
    )


def test_deleting_the_first_records_is_caught_when_a_full_export_is_expected(export: Export) -> None:
    headless = [export.lines[0], *export.lines[3:]]  # records 1 and 2 gone
    report = audit_verify.verify(headless)
    assert report.ok and report.notes[0].startswith("the export starts at record 3:")  # like --since
    assert problem_of(headless, from_start=True) == (
        1,
        "record 1: expected seq 1, found 3 (deleted or reordered)",
    )


def test_record_1_must_start_from_the_genesis_hash() -> None:
    lines = build(3).lines
    lines[1] = rehashed(lines[1] | {"prevHash": "11" * 32})
    rechain(lines, 2)
    assert problem_of(lines) == (1, "record 1: prevHash is not the genesis hash (32 zero bytes)")


def test_canonical_bytes_match_audit_canonical_for_awkward_content() -> None:
    odd = [
        dataclasses.replace(
            entry(1), reason='quote " backslash \\ newline \n tab \t nul \x00 ø 🔑', target={}
        ),
        dataclasses.replace(
            entry(2), target={"z": "1", "a": "", "É": "\u2028"}, time_ms=2**62, user_agent=""
        ),
    ]
    lines, prev = [header()], audit.GENESIS
    for e in odd:
        lines.append(record(e, prev))
        prev = audit.chain_hash(prev, e)
    assert audit_verify.verify(lines, from_start=True).ok


def test_a_fork_does_not_trust_a_checkpoint_it_was_not_shown(export: Export) -> None:
    verifier = audit_verify.Verifier(public(KEY))
    for line in export.lines[: export.pos[2_000]]:
        verifier.feed(line)
    twin = verifier.fork()
    twin.feed(export.checkpoint(2_000) | {"timeMs": 5})
    assert twin.finish().problem == "checkpoint at size 2000: bad signature"
    assert not verifier.failed and verifier.finish().ok


def test_records_after_the_first_problem_are_counted_not_checked(export: Export) -> None:
    lines = [*export.lines[:5], export.lines[5] | {"reason": "x"}, *export.lines[6:]]
    lines[700] = lines[700] | {"action": "also edited"}
    report = audit_verify.verify(lines)
    assert (report.records, report.checkpoints, report.first_bad_seq) == (N, N // EVERY, 5)


def problem_of(lines: list[Line], from_start: bool = False) -> tuple[int | None, str | None]:
    report = audit_verify.verify(lines, from_start=from_start)
    return report.first_bad_seq, report.problem


def rechain(lines: list[Line], start: int, stop: int | None = None) -> None:
    """Recompute record hashes from line ``start`` on, as an attacker without the key would."""
    prev = next(ln["hash"] for ln in reversed(lines[:start]) if ln["type"] == "record")
    for i in range(start, stop or len(lines)):
        line = lines[i]
        if line["type"] == "record":
            line = lines[i] = line | {"prevHash": prev}
            e = audit.Entry(**{f.name: line[f.name] for f in dataclasses.fields(audit.Entry)})
            line["hash"] = prev = audit.chain_hash(bytes.fromhex(prev), e).hex()


# -- every single edit, at every record --------------------------------------------------------
# For each record i a Verifier is forked after the untouched prefix and fed the edited rest of
# the export; once it has failed, only the checkpoint lines are fed (record lines no longer
# count: see Verifier). test_full_runs_agree_with_the_forked_runs re-runs samples from scratch.

Tail = Iterator[tuple[int, Line]]  # (index of the original line, or -1 if forged; line)


def rest(lines: list[Line], start: int) -> Tail:
    return ((j, lines[j]) for j in range(start, len(lines)))


def cut(e: Export, i: int) -> int:
    return e.pos[i - 1]  # the line of record i


def window_start(i: int) -> int:
    """The first record after the newest checkpoint below ``i``."""
    return (i - 1) // EVERY * EVERY + 1


def edit(line: Line, i: int) -> Line:
    name = [
        "actor_id",
        "action",
        "target",
        "time_ms",
        "result",
        "reason",
        "source_ip",
        "user_agent",
        "severity",
        "actor_kind",
        "chain",
        "prevHash",
        "hash",
    ][i % 13]
    value: object
    if name == "time_ms":
        value = line[name] + 1
    elif name == "target":
        value = line[name] | {"secret": "sk_other"}
    elif name in ("prevHash", "hash"):
        value = ("1" if line[name][0] == "0" else "0") + line[name][1:]
    else:
        value = line[name] + "\u200b"  # an invisible edit
    return line | {name: value}


def rehashed(line: Line) -> Line:
    e = audit.Entry(**{f.name: line[f.name] for f in dataclasses.fields(audit.Entry)})
    return line | {"hash": audit.chain_hash(bytes.fromhex(line["prevHash"]), e).hex()}


def modify(e: Export, i: int) -> Tail:
    yield cut(e, i), edit(e.lines[cut(e, i)], i)
    yield from rest(e.lines, cut(e, i) + 1)


def modify_and_rehash(e: Export, i: int) -> Tail:
    yield cut(e, i), rehashed(e.lines[cut(e, i)] | {"reason": "approved by the auditor"})
    yield from rest(e.lines, cut(e, i) + 1)


def delete(e: Export, i: int) -> Tail:
    return rest(e.lines, cut(e, i) + 1)


def insert(e: Export, i: int) -> Tail:
    """A forged record i, correctly linked and hashed, before the genuine one."""
    fake = dataclasses.replace(entry(i), actor_id="tok_intruder", action=str(audit.Action.ADMIN_TOKEN_CREATE))
    yield -1, record(fake, bytes.fromhex(e.lines[cut(e, i)]["prevHash"]))
    yield from rest(e.lines, cut(e, i))


def swap(e: Export, i: int) -> Tail:
    between = [(j, e.lines[j]) for j in range(cut(e, i), cut(e, i + 1) + 1)]
    between[0], between[-1] = between[-1], between[0]  # a checkpoint line in between stays put
    yield from between
    yield from rest(e.lines, cut(e, i + 1) + 1)


def truncate(e: Export, i: int) -> Tail:
    """Records i.. and the checkpoints over them are gone: the export looks whole."""
    return ((j, e.lines[j]) for j in e.checkpoint_lines if j > cut(e, i) and e.lines[j]["treeSize"] < i)


def truncate_records(e: Export, i: int) -> Tail:
    return ((j, e.lines[j]) for j in e.checkpoint_lines if j > cut(e, i))


def rewrite(e: Export, i: int) -> Tail:
    """Edit record i and re-chain every later record (checkpoints cannot be re-signed)."""
    prev = e.lines[cut(e, i)]["prevHash"]
    for j, line in rest(e.lines, cut(e, i)):
        if line["type"] == "record":
            line = line | {"prevHash": prev}
            if line["seq"] == i:
                line = rehashed(line | {"reason": "approved by the auditor"})
            else:  # audit.chain_hash, with the canonical bytes kept from build()
                line["hash"] = hashlib.sha256(bytes.fromhex(prev) + e.canonical[line["seq"] - 1]).hexdigest()
            prev = line["hash"]
        yield j, line


@dataclass(frozen=True)
class Attack:
    name: str
    tail: Callable[[Export, int], Tail]  # replaces the export from record i on
    first_bad: Callable[[int], int]
    indices: range = range(1, N + 1)
    trusted: bool = False  # verify with the final checkpoint, saved from an earlier run


def at_or_window(i: int) -> int:
    """Record i, unless a checkpoint ends at i: its root fails first and names its window."""
    return i if i % EVERY else window_start(i)


ATTACKS = [
    Attack("modify a field", modify, lambda i: i),
    Attack("modify, fix its hash", modify_and_rehash, at_or_window),
    Attack("delete", delete, lambda i: i),
    Attack("insert a forged record", insert, at_or_window),
    Attack("swap with the next", swap, lambda i: i, range(1, N)),
    Attack("truncate (trusted cp)", truncate, lambda i: i, trusted=True),
    Attack("truncate, keep the cps", truncate_records, lambda i: i),
    Attack("rewrite all after it", rewrite, window_start, range(1, N + 1, 9)),
]


@dataclass
class Outcome:
    attempted: int = 0
    detected: int = 0
    named: int = 0
    misses: list[tuple[int, int | None, str | None]] = field(default_factory=list)
    reports: dict[int, audit_verify.Report] = field(default_factory=dict)


def samples(attack: Attack) -> set[int]:
    idx = attack.indices
    return {idx[0], idx[1], idx[len(idx) // 2], idx[-1], *(i for i in (999, 1000, 1001, 2000) if i in idx)}


def run(e: Export, attack: Attack) -> Outcome:
    out, keep = Outcome(), samples(attack)
    trusted = e.checkpoint(N) if attack.trusted else None
    main, fed = audit_verify.Verifier(public(KEY), trusted, from_start=True), 0
    for i in attack.indices:
        while fed < cut(e, i):
            main.feed(e.lines[fed])
            fed += 1
        verifier, seen = main.fork(), set()
        for j, line in attack.tail(e, i):
            verifier.feed(line)
            seen.add(j)
            if verifier.failed:
                for k in e.checkpoint_lines:  # all attacks but truncation keep every checkpoint
                    if k > cut(e, i) and k not in seen:
                        verifier.feed(e.lines[k])
                break
        report = verifier.finish()
        out.attempted += 1
        out.detected += not report.ok
        out.named += report.first_bad_seq == attack.first_bad(i)
        if report.ok or report.first_bad_seq != attack.first_bad(i):
            out.misses.append((i, report.first_bad_seq, report.problem))
        if i in keep:
            out.reports[i] = report
    return out


@pytest.fixture(scope="module")
def outcomes(export: Export) -> dict[str, Outcome]:
    return {attack.name: run(export, attack) for attack in ATTACKS}


def test_every_single_edit_is_detected_and_the_first_bad_record_named(outcomes: dict[str, Outcome]) -> None:
    print(f"\ntamper detection, {N:,}-record export, a signed checkpoint every {EVERY:,} records:")
    for name, out in outcomes.items():
        print(
            f"  {name:24} detected {out.detected:>6}/{out.attempted:<6} "
            f"first bad seq named {out.named:>6}/{out.attempted}"
        )
    for name, out in outcomes.items():
        assert out.detected == out.named == out.attempted, (name, out.misses[:5])
    assert sum(out.attempted for out in outcomes.values()) == 7 * N - 1 + len(range(1, N + 1, 9))


@pytest.mark.parametrize("checkpoints_last", [False, True], ids=["interleaved", "checkpoints-last"])
def test_full_runs_agree_with_the_forked_runs(
    export: Export, outcomes: dict[str, Outcome], checkpoints_last: bool
) -> None:
    e = build(checkpoints_last=True) if checkpoints_last else export
    for attack in ATTACKS:
        trusted = e.checkpoint(N) if attack.trusted else None
        for i, forked in outcomes[attack.name].reports.items():
            lines = e.lines[: cut(e, i)] + [line for _, line in attack.tail(e, i)]
            full = audit_verify.verify(lines, public(KEY), trusted, from_start=True)
            assert (full.ok, full.first_bad_seq) == (False, attack.first_bad(i)), (
                attack.name,
                i,
                full.problem,
            )
            if not checkpoints_last:
                assert full.problem == forked.problem, (attack.name, i)
