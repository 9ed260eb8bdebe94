"""Wire formats for audit streams (pure: no I/O, time passed in).

An audit record reaches a stream as a plain dict: the fields of
``sikker.core.audit.Entry`` plus ``hash`` (hex). Records never carry a secret
value, so every format may include the whole record.

Choices worth knowing:

* JSON is compact with sorted keys everywhere, so the same record always
  encodes to the same bytes (easy to diff, easy to dedupe downstream).
* Webhooks are signed like Stripe / Standard Webhooks: HMAC-SHA256 over
  ``"{timestamp}." + body``. The timestamp is inside the MAC so a captured
  request cannot be replayed outside the receiver's tolerance window.
* Syslog is RFC 5424 with facility 10 (authpriv): that facility is commonly
  routed to a restricted file, which is where security teams expect it.
  The structured-data ID uses enterprise number 32473, which RFC 5612
  reserves for documentation; swap ``SD_ID`` for a registered PEN if needed.
* A record whose severity we do not recognise is never filtered out: it is
  better to over-deliver than to hide an event a newer server invented.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson

Record = dict[str, Any]

TIMESTAMP_HEADER = "X-Sikker-Timestamp"
SIGNATURE_HEADER = "X-Sikker-Signature"
SIGNATURE_VERSION = "v1"

SEVERITIES = ("info", "low", "medium", "high", "critical")
_RANK = {name: i for i, name in enumerate(SEVERITIES)}

FACILITY_AUTHPRIV = 10
# RFC 5424 severities: 2 crit, 3 err, 4 warning, 5 notice, 6 info.
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
_UNKNOWN_SYSLOG_SEVERITY = 4  # unrecognised: worth a look, not a page
SD_ID = "sikker@32473"
BOM = b"\xef\xbb\xbf"
NIL = "-"
_SD_VALUE_MAX = 128  # chars per SD-PARAM before escaping; keeps the header bounded
# Kept when an oversized record must shrink to fit a datagram.
_ESSENTIAL = (
    "chain",
    "seq",
    "time_ms",
    "actor_kind",
    "actor_id",
    "source_ip",
    "action",
    "result",
    "severity",
    "hash",
)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


# --- webhooks ---------------------------------------------------------------


def webhook_body(records: list[Record]) -> bytes:
    """The POST body: compact JSON ``{"records": [...]}``."""
    return _json({"records": records})


def webhook_signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``b"{timestamp}." + body`` under ``secret``."""
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def webhook_headers(secret: bytes, timestamp: int, body: bytes) -> dict[str, str]:
    """The two signature headers a sender attaches to ``body``."""
    signature = webhook_signature(secret, timestamp, body)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: f"{SIGNATURE_VERSION}={signature}"}


def verify_webhook(
    secret: bytes,
    timestamp: int | str,
    body: bytes,
    header: str,
    now: float,
    tolerance: int = 300,
) -> bool:
    """Check a received webhook; for receivers and tests.

    ``timestamp`` may be the raw ``X-Sikker-Timestamp`` header text. ``header``
    is the ``X-Sikker-Signature`` value; it may list several comma-separated
    ``v1=`` signatures (a sender rotating its secret signs with both), and any
    match is accepted. Requests older or newer than ``tolerance`` seconds are
    refused. Comparison is constant-time.
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - ts) > tolerance:
        return False
    expected = webhook_signature(secret, ts, body).encode()
    ok = False
    for part in header.split(","):
        version, _, value = part.strip().partition("=")
        if version == SIGNATURE_VERSION:
            # No early exit: check every candidate so timing reveals nothing.
            ok |= hmac.compare_digest(expected, value.encode("ascii", "replace"))
    return ok


# --- syslog (RFC 5424) ------------------------------------------------------


def _printable(value: str, max_len: int) -> str:
    """A header field: PRINTUSASCII (33..126) only, NILVALUE when empty."""
    cleaned = "".join(c if 33 <= ord(c) <= 126 else "_" for c in value)[:max_len]
    return cleaned or NIL


def _sd_value(value: object) -> str:
    """Escape a PARAM-VALUE (RFC 5424 6.3.3) and neutralise control characters.

    Only ``"``, ``\\`` and ``]`` need escaping by the RFC; control characters
    are replaced too so a line-oriented collector cannot be tricked into
    starting a forged record on a new line.
    """
    text = str(value)[:_SD_VALUE_MAX]
    text = "".join("\ufffd" if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _timestamp(time_ms: object) -> str:
    if not isinstance(time_ms, int) or isinstance(time_ms, bool) or time_ms < 0:
        return NIL
    seconds, millis = divmod(time_ms, 1000)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


def syslog_pri(severity: str) -> int:
    """PRI = facility * 8 + severity, with facility 10 (authpriv)."""
    return FACILITY_AUTHPRIV * 8 + SYSLOG_SEVERITY.get(severity, _UNKNOWN_SYSLOG_SEVERITY)


def _syslog_header(record: Record, hostname: str, app: str) -> bytes:
    actor = f"{record.get('actor_kind', '')}:{record.get('actor_id', '')}"
    params = {
        "seq": record.get("seq", ""),
        "chain": record.get("chain", ""),
        "actor": actor,
        "ip": record.get("source_ip", ""),
        "result": record.get("result", ""),
    }
    sd = " ".join(f'{name}="{_sd_value(value)}"' for name, value in params.items())
    fields = [
        f"<{syslog_pri(str(record.get('severity', '')))}>1",
        _timestamp(record.get("time_ms")),
        _printable(hostname, 255),
        _printable(app, 48),
        NIL,  # PROCID: meaningless across a server's workers
        _printable(str(record.get("action", "")).replace(":", "."), 32),
        f"[{SD_ID} {sd}]",
    ]
    return " ".join(fields).encode("utf-8", "replace") + b" "


def syslog_line(record: Record, hostname: str, app: str = "sikker", max_bytes: int | None = None) -> bytes:
    """One RFC 5424 message: ``<PRI>1 TIMESTAMP HOST APP - MSGID [SD] BOM+JSON``.

    With ``max_bytes`` the result never exceeds that size. An oversized record
    first sheds everything but the identifying fields (and gains
    ``"truncated": true``) so MSG stays valid JSON; only if that still does not
    fit is MSG cut at a UTF-8 character boundary. The SD element always
    carries ``chain`` and ``seq``, so the full record can be fetched from the
    audit export.
    """
    header = _syslog_header(record, hostname, app)
    line = header + BOM + _json(record)
    if max_bytes is None or len(line) <= max_bytes:
        return line
    if len(header) + len(BOM) > max_bytes:
        raise ValueError(f"max_bytes={max_bytes} cannot hold even the syslog header")
    reduced = {k: record[k] for k in _ESSENTIAL if k in record} | {"truncated": True}
    line = header + BOM + _json(reduced)
    if len(line) <= max_bytes:
        return line
    return line[:max_bytes].decode("utf-8", "ignore").encode()


def octet_counted(line: bytes) -> bytes:
    """RFC 6587 octet-counting frame for TCP: ``MSG-LEN SP SYSLOG-MSG``."""
    return b"%d " % len(line) + line


# --- JSON lines --------------------------------------------------------------


def jsonl_line(record: Record) -> bytes:
    """One record as a compact JSON line ending in ``\\n``."""
    return _json(record) + b"\n"


# --- filtering ---------------------------------------------------------------


def severity_at_least(record_severity: str, minimum: str) -> bool:
    """Whether ``record_severity`` reaches ``minimum`` (info < low < medium < high < critical).

    An unknown ``minimum`` is a configuration mistake and raises ValueError;
    an unknown record severity always passes (see module docstring).
    """
    if minimum not in _RANK:
        raise ValueError(f"unknown severity {minimum!r}; use one of {', '.join(SEVERITIES)}")
    rank = _RANK.get(record_severity)
    return rank is None or rank >= _RANK[minimum]


def action_matches(action: str, patterns: set[str]) -> bool:
    """Exact names, or prefixes written with a trailing ``*`` (``"machine:*"``, ``"*"``)."""
    if action in patterns:
        return True
    return any(p.endswith("*") and action.startswith(p[:-1]) for p in patterns)


def matches(record: Record, actions: set[str] | None, min_severity: str) -> bool:
    """Whether a stream configured with ``actions`` (None = all) and a floor wants ``record``."""
    if not severity_at_least(str(record.get("severity", "")), min_severity):
        return False
    return actions is None or action_matches(str(record.get("action", "")), actions)
