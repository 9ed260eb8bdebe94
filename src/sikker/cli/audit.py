"""``sikker audit``: list, export, verify (offline, or against a live server), streams."""

from __future__ import annotations

import base64
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from sikker.cli.admin import parse_duration
from sikker.cli.client import Client
from sikker.cli.options import (
    DEFAULT_ADDR,
    addr_source,
    ca_cert_option,
    client_command,
    json_option,
    resolve_token,
    token_options,
)
from sikker.cli.output import console, emit_json, err_console, table, when
from sikker.cli.refs import SECRET, VAULT
from sikker.core import audit_verify
from sikker.errors import InvalidInput, VerificationFailed


def parse_time(text: str) -> int:
    """Epoch ms from ``1700000000000``, ``2026-11-29``, ``2026-11-29T10:00:00Z`` or ``2h`` (ago)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if re.fullmatch(r"\d{1,9}[smhd]", text):
        return int((time.time() - parse_duration(text)) * 1000)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidInput(
            f"times look like 2026-11-29, 2026-11-29T10:00:00Z, 2h or epoch ms; not {text!r}"
        ) from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@click.group()
def audit() -> None:
    """Read, export and verify the tamper-evident audit log; configure streams."""


@audit.command("list")
@click.option("--vault", "chain", required=True, help="Vault id (or 'system', root token only).")
@click.option("--actor", default=None, help="Actor id (token id or machine id).")
@click.option(
    "--action",
    default=None,
    help="Action, e.g. machine:secret:read, or a prefix with a trailing * as for streams ('admin:*').",
)
@click.option("--secret", type=SECRET, default=None, help="Secret id, or [VAULT/]PROJECT/NAME.")
@click.option("--severity", default=None, type=click.Choice(["info", "low", "medium", "high", "critical"]))
@click.option("--since", default=None, help="From this time (2026-11-29, 2h, epoch ms).")
@click.option("--until", default=None, help="Before this time.")
@click.option("--limit", default=100, show_default=True, help="Records to show (newest first).")
@client_command
def audit_list(
    client: Client,
    as_json: bool,
    chain: str,
    actor: str | None,
    action: str | None,
    secret: str | None,
    severity: str | None,
    since: str | None,
    until: str | None,
    limit: int,
) -> None:
    """List audit records, newest first, with filters."""
    params = {
        k: v
        for k, v in {
            "actor": actor,
            "action": action,
            "secret": secret,
            "severity": severity,
            "since": str(parse_time(since)) if since else None,
            "until": str(parse_time(until)) if until else None,
        }.items()
        if v
    }
    records: list[dict[str, Any]] = []
    before: int | None = None
    while len(records) < limit:
        page = client.get(
            f"/api/audit/{chain}",
            params
            | {"limit": str(min(limit - len(records), 1000))}
            | ({"before": str(before)} if before else {}),
        )
        records.extend(page["records"])
        before = page["next"]
        if not before:
            break
    if as_json:
        emit_json(records)
        return
    table(
        ["SEQ", "TIME", "ACTION", "ACTOR", "IP", "TARGET", "RESULT", "SEVERITY"],
        [
            (
                r["seq"],
                when(r["time_ms"]),
                r["action"],
                f"{r['actor_kind']}:{r['actor_id']}",
                r["source_ip"],
                "\n".join(f"{k}={v}" for k, v in r["target"].items()),
                r["result"] + (f" ({r['reason']})" if r["reason"] else ""),
                r["severity"],
            )
            for r in records
        ],
        ids=["ACTOR", "TARGET"],
    )


@audit.command("export")
@click.option("--vault", "chain", required=True, help="Vault id (or 'system', root token only).")
@click.option("--since", default=None, help="Only records from this time (chain checked from there).")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="Write to FILE (default: standard output).",
)
@client_command
def audit_export(client: Client, as_json: bool, chain: str, since: str | None, output: Path | None) -> None:
    """Export records and signed checkpoints as JSON lines, for 'sikker audit verify'."""
    del as_json  # the export is JSON lines either way
    out = output.open("wb") if output else sys.stdout.buffer
    try:
        for chunk in client.stream_lines(
            "GET", f"/api/audit/{chain}/export", {"since": str(parse_time(since))} if since else None
        ):
            out.write(chunk)
    finally:
        if output:
            out.close()


@audit.command("verify")
@click.argument("file", type=click.Path(path_type=Path, exists=True), required=False)
@click.option("--vault", "chain", default=None, help="Verify a live server's chain instead of a FILE.")
@click.option(
    "--public-key",
    default=None,
    help="Pin the audit public key (base64, from GET /api/audit/public-key, fetched out of band). "
    "Without it the key inside the export is trusted, with a warning showing its fingerprint.",
)
@click.option(
    "--checkpoint",
    "trusted",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="A checkpoint seen earlier (JSON); detects a truncated or rewritten log.",
)
@click.option(
    "--save-checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the newest verified checkpoint here, for the next --checkpoint.",
)
@click.option(
    "--partial", is_flag=True, help="The file was exported with --since: it need not start at record 1."
)
@click.option("--addr", envvar="SIKKER_ADDR", default=DEFAULT_ADDR, help="Server (with --vault).")
@token_options
@ca_cert_option
@json_option(help='Print the report as JSON; a failure also as {"error", "code"} on stderr.')
def audit_verify_cmd(
    file: Path | None,
    chain: str | None,
    public_key: str | None,
    trusted: Path | None,
    save_checkpoint: Path | None,
    partial: bool,
    addr: str,
    token: str | None,
    token_file: str | None,
    ca_cert: str | None,
    as_json: bool,
) -> None:
    """Check the hash chain, checkpoint signatures and consistency; names the first bad record.

    Pin the server's audit key with --public-key: without it, verify trusts the key inside the
    export (which whoever wrote the export chose) and warns, showing that key's fingerprint
    (sha256: and the hex SHA-256 of the raw key) to compare with one known out of band.
    """
    if (file is None) == (chain is None):
        raise click.UsageError("give a FILE or --vault, not both")
    if file is not None:
        raw = file.read_bytes().splitlines()
    else:
        client = Client(addr, resolve_token(token, token_file), addr_source=addr_source(), ca_cert=ca_cert)
        raw = b"".join(client.stream_lines("GET", f"/api/audit/{chain}/export")).splitlines()
    try:
        lines = [orjson.loads(line) for line in raw if line.strip()]
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"not a Sikker audit export (bad JSON line: {e})") from e
    pinned = base64.b64decode(public_key) if public_key else None
    checkpoint = orjson.loads(trusted.read_bytes()) if trusted else None
    report = audit_verify.verify(
        lines, trusted_public_key=pinned, trusted_checkpoint=checkpoint, from_start=not partial
    )
    if save_checkpoint and report.ok:
        latest = [line for line in lines if line.get("type") == "checkpoint"]
        if latest:
            save_checkpoint.write_bytes(orjson.dumps(max(latest, key=lambda c: c["treeSize"])))
    export_key = _export_key_fingerprint(lines)
    if pinned is None and export_key is not None and not as_json:  # --json: publicKeyPinned says it
        err_console.print(
            f"warning: the audit public key was not pinned (--public-key): trusted the key in the "
            f"export, fingerprint {export_key}. Compare it with the fingerprint of the key you got out "
            "of band (GET /api/audit/public-key): whoever rewrote an export can sign it with their own.",
            markup=False,
            highlight=False,
        )
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "records": report.records,
                "checkpoints": report.checkpoints,
                "firstBadSeq": report.first_bad_seq,
                "problem": report.problem,
                "notes": list(report.notes),
                "publicKeyPinned": pinned is not None,
                "publicKeyFingerprint": export_key,
            }
        )
    elif report.ok:
        console.print(f"OK: {report.records} records, {report.checkpoints} checkpoints verified.")
        for note in report.notes:
            err_console.print(f"note: {note}")
    if not report.ok:
        raise VerificationFailed(f"verification failed: {report.problem}")


def _export_key_fingerprint(lines: list[Any]) -> str | None:
    """The fingerprint of the key an export's header carries, if it has a readable one."""
    header = lines[0] if lines and isinstance(lines[0], dict) else {}
    if header.get("type") != "header":
        return None
    try:
        return audit_verify.fingerprint(base64.b64decode(str(header["publicKey"]), validate=True))
    except (TypeError, KeyError, ValueError):
        return None


@audit.group("stream")
def stream() -> None:
    """Send audit records to webhooks, syslog or a JSON-lines file as they are written."""


@stream.command("add")
@click.argument("kind", type=click.Choice(["webhook", "syslog", "jsonl", "email"]))
@click.option(
    "--vault",
    "vault_id",
    type=VAULT,
    default=None,
    help="Only this vault, id or name (default: every vault; root).",
)
@click.option(
    "--url",
    default=None,
    help="webhook: https URL (http only to localhost). Internal addresses are refused unless "
    "the operator allows them (stream_allowed_networks).",
)
@click.option("--host", default=None, help="syslog: collector host; email: SMTP server.")
@click.option("--port", type=int, default=None, help="syslog: collector port; email: SMTP port.")
@click.option("--sender", default=None, help="email: From address.")
@click.option("--to", "recipients", multiple=True, help="email: a recipient (repeat).")
@click.option(
    "--starttls",
    is_flag=True,
    help="email: upgrade the SMTP connection with STARTTLS (the server's certificate is verified).",
)
@click.option("--protocol", type=click.Choice(["udp", "tcp"]), default="udp", show_default=True)
@click.option(
    "--path",
    default=None,
    help="jsonl (root token only): file name under the server's stream directory "
    "(DATA_DIR/audit-streams by default).",
)
@click.option("--action", "actions", multiple=True, help="Only these actions (repeat; 'machine:*' ok).")
@click.option(
    "--min-severity",
    default="info",
    show_default=True,
    type=click.Choice(["info", "low", "medium", "high", "critical"]),
    help="Route by severity.",
)
@client_command
def stream_add(
    client: Client,
    as_json: bool,
    kind: str,
    vault_id: str | None,
    url: str | None,
    host: str | None,
    port: int | None,
    sender: str | None,
    recipients: tuple[str, ...],
    starttls: bool,
    protocol: str,
    path: str | None,
    actions: tuple[str, ...],
    min_severity: str,
) -> None:
    """Add an audit stream; a webhook's signing secret is printed once. Alerts are streams
    filtered by action or severity, e.g. --action 'canary:*' to an email or a webhook."""
    body: dict[str, Any] = {
        "kind": kind,
        "vaultId": vault_id,
        "url": url,
        "host": host,
        "port": port,
        "path": path,
        "minSeverity": min_severity,
        "actions": list(actions) or None,
    }
    if kind == "syslog":
        body["protocol"] = protocol
    if kind == "email":
        body |= {"sender": sender, "recipients": list(recipients), "starttls": starttls}
    result = client.post("/api/audit-streams", {k: v for k, v in body.items() if v is not None})
    if as_json:
        emit_json({"id": result["id"]} | ({"secret": result["secret"]} if "secret" in result else {}))
        return
    click.echo(f"id:     {result['id']}")
    if "secret" in result:
        click.echo(f"secret: {result['secret']}   (verify X-Sikker-Signature with it; shown once)")


@stream.command("list")
@click.option("--vault", "vault_id", type=VAULT, default=None, help="Only this vault's streams (id or name).")
@client_command
def stream_list(client: Client, as_json: bool, vault_id: str | None) -> None:
    """List audit streams and their delivery state."""
    found = client.get("/api/audit-streams", {"vault": vault_id} if vault_id else None)["streams"]
    if as_json:
        emit_json(found)
        return
    table(
        ["ID", "KIND", "VAULT", "TARGET", "MIN SEVERITY", "FAILURES", "LAST ERROR"],
        [
            (
                s["id"],
                s["kind"],
                s["vaultId"] or "(all)",
                " ".join(str(v) for v in s["config"].values()),
                s["minSeverity"],
                s["attempts"],
                s["lastError"],
            )
            for s in found
        ],
        ids=["ID", "VAULT"],
    )


@stream.command("remove")
@click.argument("stream_id", metavar="STREAM")
@client_command
def stream_remove(client: Client, as_json: bool, stream_id: str) -> None:
    """Remove an audit stream."""
    result = client.delete(f"/api/audit-streams/{stream_id}")
    emit_json(result) if as_json else console.print(f"Removed {stream_id}.")


@stream.command("deliveries")
@click.argument("stream_id", metavar="STREAM")
@client_command
def stream_deliveries(client: Client, as_json: bool, stream_id: str) -> None:
    """Show a stream's delivery log, newest first."""
    found = client.get(f"/api/audit-streams/{stream_id}/deliveries")["deliveries"]
    if as_json:
        emit_json(found)
        return
    table(
        ["TIME", "CHAIN", "SEQ", "COUNT", "RESULT", "ERROR"],
        [
            (
                when(d["time"]),
                d["chain"],
                f"{d['firstSeq']}-{d['lastSeq']}",
                d["count"],
                d["result"],
                d["error"],
            )
            for d in found
        ],
        ids=["CHAIN"],
    )
