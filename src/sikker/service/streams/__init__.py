"""Audit streams: deliver the audit log to webhooks, syslog and JSON-lines files.

``formats`` and ``retry`` are pure (no I/O, time and randomness passed in);
``sinks``, ``email`` and ``destination`` are the I/O edge: they wrap every
transport failure in ``DeliveryError``, refuse destinations that are not allowed
with ``DeliveryRefused``, and resolve-check-pin every network connection.
"""

from __future__ import annotations

from sikker.service.streams.formats import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Record,
    jsonl_line,
    matches,
    octet_counted,
    severity_at_least,
    syslog_line,
    verify_webhook,
    webhook_body,
    webhook_headers,
    webhook_signature,
)
from sikker.service.streams.retry import RetryState, backoff
from sikker.service.streams.sinks import (
    DeliveryError,
    DeliveryRefused,
    JsonlSink,
    Sink,
    SyslogSink,
    WebhookSink,
)

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryError",
    "DeliveryRefused",
    "JsonlSink",
    "Record",
    "RetryState",
    "Sink",
    "SyslogSink",
    "WebhookSink",
    "backoff",
    "jsonl_line",
    "matches",
    "octet_counted",
    "severity_at_least",
    "syslog_line",
    "verify_webhook",
    "webhook_body",
    "webhook_headers",
    "webhook_signature",
]
