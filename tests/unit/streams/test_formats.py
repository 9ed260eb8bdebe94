from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from typing import Any

import pytest

from sikker.core import audit
from sikker.service.streams import formats

SECRET = b"whsec_test"
NOW = 1_700_000_000


def record(kind: audit.Action = audit.Action.ADMIN_SECRET_READ, **changes: Any) -> dict[str, Any]:
    actor = audit.Actor("admin", "tok_1", "10.0.0.7", "curl/8")
    entry = audit.make_entry("vault_x", 42, 1_700_000_000_123, actor, kind, {"secret": "sk_1"})
    out = dataclasses.asdict(entry) | {"hash": "ab" * 32}
    return out | changes


# RFC 5424: PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD SP MSG
LINE = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    rb"(?P<msgid>[!-~]{1,32}) (?P<sd>\[sikker@32473(?: [a-z]+=\"(?:[^\"\\\]]|\\[\"\\\]])*\")*\]) "
    rb"(?P<msg>\xef\xbb\xbf.*)$",
    re.DOTALL,
)
SD_PARAM = re.compile(r'([a-z]+)="((?:[^"\\\]]|\\["\\\]])*)"')


def parse(line: bytes) -> dict[str, Any]:
    m = LINE.match(line)
    assert m, line
    sd = m["sd"].decode()
    params = {k: re.sub(r"\\([\"\\\]])", r"\1", v) for k, v in SD_PARAM.findall(sd)}
    return {
        "pri": int(m["pri"]),
        "ts": m["ts"].decode(),
        "host": m["host"].decode(),
        "app": m["app"].decode(),
        "procid": m["procid"].decode(),
        "msgid": m["msgid"].decode(),
        "sd": params,
        "msg": m["msg"][3:],
    }


# --- webhooks -----------------------------------------------------------------


def test_webhook_body_is_compact_json_of_the_records() -> None:
    body = formats.webhook_body([record(), record(seq=43)])
    assert b" " not in body.replace(b"curl/8", b"")
    assert json.loads(body) == {"records": [record(), record(seq=43)]}


def test_signature_round_trips() -> None:
    body = formats.webhook_body([record()])
    headers = formats.webhook_headers(SECRET, NOW, body)
    assert headers[formats.SIGNATURE_HEADER].startswith("v1=")
    assert formats.verify_webhook(
        SECRET, headers[formats.TIMESTAMP_HEADER], body, headers[formats.SIGNATURE_HEADER], NOW + 5
    )


def test_signature_is_hmac_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"123.{}", hashlib.sha256).hexdigest()
    assert formats.webhook_signature(SECRET, 123, b"{}") == expected


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now"),
    [
        (b"other", NOW, b'{"records":[]}', NOW),  # wrong secret
        (SECRET, NOW + 1, b'{"records":[]}', NOW),  # timestamp changed
        (SECRET, NOW, b'{"records":[{}]}', NOW),  # body changed
        (SECRET, NOW, b'{"records":[]}', NOW + 301),  # too old: replay
        (SECRET, NOW, b'{"records":[]}', NOW - 301),  # from the future
    ],
)
def test_tampered_or_stale_webhook_is_rejected(secret: bytes, timestamp: int, body: bytes, now: int) -> None:
    header = "v1=" + formats.webhook_signature(SECRET, NOW, b'{"records":[]}')
    assert not formats.verify_webhook(secret, timestamp, body, header, now)


@pytest.mark.parametrize("header", ["", "v1=", "v0=abc", "deadbeef", "v1=zz\u00e9"])
def test_malformed_signature_header_is_rejected(header: str) -> None:
    assert not formats.verify_webhook(SECRET, NOW, b"{}", header, NOW)


def test_non_numeric_timestamp_is_rejected() -> None:
    sig = formats.webhook_signature(SECRET, NOW, b"{}")
    assert not formats.verify_webhook(SECRET, "soon", b"{}", f"v1={sig}", NOW)


def test_any_of_several_signatures_may_match_during_secret_rotation() -> None:
    good = formats.webhook_signature(SECRET, NOW, b"{}")
    old = formats.webhook_signature(b"old", NOW, b"{}")
    assert formats.verify_webhook(SECRET, NOW, b"{}", f"v1={old}, v1={good}", NOW)


def test_tolerance_boundary_is_inclusive() -> None:
    sig = f"v1={formats.webhook_signature(SECRET, NOW, b'{}')}"
    assert formats.verify_webhook(SECRET, NOW, b"{}", sig, NOW + 300)
    assert formats.verify_webhook(SECRET, NOW, b"{}", sig, NOW + 10, tolerance=10)
    assert not formats.verify_webhook(SECRET, NOW, b"{}", sig, NOW + 11, tolerance=10)


# --- syslog -------------------------------------------------------------------


def test_syslog_line_has_rfc5424_structure() -> None:
    rec = record()
    parsed = parse(formats.syslog_line(rec, "vault-1.example"))
    assert parsed["pri"] == 85  # authpriv (10) * 8 + notice (5): admin secret read is "low"
    assert parsed["ts"] == "2023-11-14T22:13:20.123Z"
    assert parsed["host"] == "vault-1.example"
    assert parsed["app"] == "sikker"
    assert parsed["procid"] == "-"
    assert parsed["msgid"] == "admin.secret.read"
    assert parsed["sd"] == {
        "seq": "42",
        "chain": "vault_x",
        "actor": "admin:tok_1",
        "ip": "10.0.0.7",
        "result": "ok",
    }
    assert json.loads(parsed["msg"]) == rec


@pytest.mark.parametrize(
    ("severity", "pri"),
    [("critical", 82), ("high", 83), ("medium", 84), ("low", 85), ("info", 86), ("weird", 84)],
)
def test_pri_maps_severity_under_authpriv(severity: str, pri: int) -> None:
    assert parse(formats.syslog_line(record(severity=severity), "h"))["pri"] == pri


def test_timestamp_keeps_milliseconds_and_pads_them() -> None:
    assert parse(formats.syslog_line(record(time_ms=5), "h"))["ts"] == "1970-01-01T00:00:00.005Z"
    assert parse(formats.syslog_line(record(time_ms="bad"), "h"))["ts"] == "-"


@pytest.mark.parametrize("hostile", ['a"]\\b', "]", "\\", '"', 'x" evil="1', "line\nbreak]"])
def test_sd_values_are_escaped(hostile: str) -> None:
    rec = record(actor_id=hostile, source_ip=hostile, chain=hostile, result=hostile)
    line = formats.syslog_line(rec, "h")
    parsed = parse(line)
    assert b"\n" not in line
    expected = hostile.replace("\n", "\ufffd")
    assert parsed["sd"]["ip"] == expected
    assert parsed["sd"]["actor"] == f"admin:{expected}"
    assert set(parsed["sd"]) == {"seq", "chain", "actor", "ip", "result"}
    assert json.loads(parsed["msg"]) == rec


def test_hostile_escaping_is_exact() -> None:
    line = formats.syslog_line(record(source_ip='a"]\\b'), "h")
    assert b'ip="a\\"\\]\\\\b"' in line


def test_header_fields_are_printable_ascii_and_bounded() -> None:
    long_action = "x:" * 40
    parsed = parse(formats.syslog_line(record(action=long_action), "my host\u00e9", app=""))
    assert parsed["host"] == "my_host_"
    assert parsed["app"] == "-"
    assert parsed["msgid"] == ("x." * 16)
    assert len(parsed["msgid"]) == 32


def test_oversized_record_sheds_fields_but_stays_valid_json() -> None:
    rec = record(reason="r" * 5000, target={"k": "v" * 5000})
    line = formats.syslog_line(rec, "h", max_bytes=2048)
    assert len(line) <= 2048
    msg = json.loads(parse(line)["msg"])
    assert msg["truncated"] is True
    assert msg["seq"] == 42
    assert "reason" not in msg


def test_oversized_record_is_cut_on_a_character_boundary_as_last_resort() -> None:
    rec = record(actor_id="\u00e9" * 120)
    full = formats.syslog_line(rec, "h")
    line = formats.syslog_line(rec, "h", max_bytes=len(full) - 300)
    assert len(line) <= len(full) - 300
    line.decode("utf-8")  # no split character
    with pytest.raises(ValueError):
        formats.syslog_line(rec, "h", max_bytes=20)


def test_small_record_is_untouched_by_max_bytes() -> None:
    rec = record()
    assert formats.syslog_line(rec, "h", max_bytes=8192) == formats.syslog_line(rec, "h")


def test_octet_counting_prefixes_the_byte_length() -> None:
    assert formats.octet_counted(b"hello") == b"5 hello"
    line = formats.syslog_line(record(actor_id="\u00e9"), "h")
    framed = formats.octet_counted(line)
    length, _, rest = framed.partition(b" ")
    assert int(length) == len(rest) == len(line)


def test_jsonl_line_is_one_compact_line() -> None:
    line = formats.jsonl_line(record(reason="multi\nline"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == record(reason="multi\nline")


# --- filtering ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "minimum", "expected"),
    [
        ("info", "info", True),
        ("info", "low", False),
        ("low", "low", True),
        ("medium", "low", True),
        ("medium", "high", False),
        ("high", "high", True),
        ("critical", "high", True),
        ("high", "critical", False),
        ("newfangled", "critical", True),  # unknown record severity is never hidden
    ],
)
def test_severity_order(severity: str, minimum: str, expected: bool) -> None:
    assert formats.severity_at_least(severity, minimum) is expected


def test_unknown_minimum_severity_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="unknown severity"):
        formats.severity_at_least("info", "urgent")


@pytest.mark.parametrize(
    ("action", "actions", "expected"),
    [
        ("machine:secret:read", None, True),
        ("machine:secret:read", {"machine:*"}, True),
        ("machine:secret:read", {"machine:secret:*"}, True),
        ("machine:secret:read", {"machine:secret:read"}, True),
        ("machine:secret:read", {"machine:secret"}, False),  # no implicit prefix
        ("machine:secret:read", {"admin:*"}, False),
        ("machine:secret:read", {"*"}, True),
        ("machine:secret:read", set(), False),
        ("admin:auth:fail", {"machine:*", "admin:auth:fail"}, True),
        ("admin:auth:failure", {"admin:auth:fail"}, False),
    ],
)
def test_matches_actions(action: str, actions: set[str] | None, expected: bool) -> None:
    assert formats.matches(record(action=action, severity="info"), actions, "info") is expected


def test_matches_applies_the_severity_floor_before_actions() -> None:
    lockout = record(audit.Action.MACHINE_AUTH_LOCKOUT)
    read = record(audit.Action.MACHINE_SECRET_READ)
    assert lockout["severity"] == "high" and read["severity"] == "info"
    assert formats.matches(lockout, {"machine:*"}, "medium")
    assert not formats.matches(read, {"machine:*"}, "medium")
    assert not formats.matches(lockout, {"admin:*"}, "info")
