"""What the ``sikker`` command prints for people and for scripts, run as a user runs it against a
real server on loopback: data shown literally, whole ids at 80 columns, one word per secret
type, the frozen state, errors as JSON with ``--json``, shell completion."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sikker import errors
from tests.support import Server, init_and_unseal

# Markup, emoji codes and escapes that a table library might interpret; names may hold all of them.
HOSTILE = "[bold]x[/]:secret:a\\[b:smile:"
ID = re.compile(r"[a-z]+_[a-z0-9]{16}|[0-9a-f-]{36}")
DOCS_CLI = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


@dataclass
class World:
    server: Server
    root: str
    home: Path
    vault: str
    project: str
    canary_project: str
    secret: str
    structured: str
    canary: str
    machine: str


def run(
    world: World, *args: str, columns: int = 200, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "SIKKER_ADDR": world.server.url,
        "SIKKER_TOKEN": world.root,
        "COLUMNS": str(columns),
        "SIKKERKEY_HOME": str(world.home),
        "HOME": str(world.home.parent),
    }
    return subprocess.run(
        [sys.executable, "-m", "sikker", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(world: World, *args: str, columns: int = 200, stdin: str | None = None) -> str:
    result = run(world, *args, columns=columns, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("cli-output")
    server = Server(f"sqlite:///{base / 'sikker.db'}", base / "data").start()
    try:
        _, root = init_and_unseal(server.url)
        w = World(server, root, base / "home" / ".sikkerkey", "", "", "", "", "", "", "")
        w.vault = ok(w, "vault", "create", HOSTILE).strip()
        w.project = ok(w, "project", "create", "--vault", w.vault, HOSTILE).strip()
        w.canary_project = ok(w, "project", "create", "--vault", w.vault, "decoys").strip()
        w.secret = ok(
            w, "secret", "create", "--project", w.project, HOSTILE, "--value-file", "-", stdin="v"
        ).strip()
        w.structured = ok(
            w, "secret", "create", "--project", w.project, HOSTILE + "2", "--field", "user=app"
        ).strip()
        w.canary = ok(w, "secret", "create", "--project", w.canary_project, HOSTILE, "--canary").strip()
        ok(w, "token", "create", "--vault", w.vault, "--name", HOSTILE)
        enroll = json.loads(
            ok(
                w, "enroll-token", "create", "--vault", w.vault, "--project", w.project, "--secret", w.secret,
                "--secret", w.structured, "--name", HOSTILE, "--json",
            )
        )["token"]  # fmt: skip
        bootstrap = [
            "machine",
            "bootstrap",
            "--url",
            server.public_url,
            "--vault",
            w.vault,
            "--name",
            HOSTILE,
        ]
        w.machine = json.loads(ok(w, *bootstrap, "--token", enroll, "--json"))["machineId"]
        assert ok(w, "get", w.secret) == "v\n"  # audited as machine:secret:read
        ok(w, "secret", "get", w.canary)  # trips the canary: its project freezes
        yield w
    finally:
        server.stop()


# -- 1: data is printed literally ----------------------------------------------------------
TABLES = [
    ("vault", "list"),
    ("project", "list", "--vault", "{vault}"),
    ("secret", "list", "--project", "{project}"),
    ("token", "list"),
    ("machine", "list", "--vault", "{vault}"),
    ("enroll-token", "list", "--vault", "{vault}"),
    ("canary", "list", "--vault", "{vault}"),
    ("canary", "show", "{canary}"),
    ("list",),  # the machine's own view
]


@pytest.mark.parametrize("args", TABLES, ids=lambda a: " ".join(a[:2]))
def test_names_with_markup_emoji_codes_and_backslashes_are_printed_literally(
    world: World, args: tuple[str, ...]
) -> None:
    out = ok(world, *(a.format(**vars(world)) for a in args))
    assert HOSTILE in out, out


def test_audit_actions_are_not_turned_into_emoji(world: World) -> None:
    out = ok(world, "audit", "list", "--vault", world.vault, "--action", "machine:secret:read")
    assert "machine:secret:read" in out and "㊙" not in out, out


def test_error_messages_are_printed_literally(world: World) -> None:
    result = run(world, "secret", "get", world.secret, "[bold]nofield[/]")
    assert result.returncode == 2 and "'[bold]nofield[/]'" in result.stderr, result.stderr


# -- 2: ids are never cut -------------------------------------------------------------------
def test_tables_at_80_columns_show_every_id_whole(world: World) -> None:
    checks: list[tuple[list[str], list[str]]] = []
    for args, keys in [
        (["vault", "list"], ["id"]),
        (["project", "list", "--vault", world.vault], ["id"]),
        (["secret", "list", "--project", world.project], ["id"]),
        (["token", "list"], ["id", "vaultId"]),
        (["machine", "list", "--vault", world.vault], ["id"]),
        (["enroll-token", "list", "--vault", world.vault], ["id"]),
        (["canary", "list", "--vault", world.vault], ["id", "projectId"]),
        (["list"], ["id"]),
    ]:
        found = json.loads(ok(world, *args, "--json"))
        checks.append((args, [str(item[k]) for item in found for k in keys if item.get(k)]))
    # The same records for the table as for --json: those before a fixed time.
    until = ["--vault", world.vault, "--limit", "8", "--until", str(int(time.time() * 1000))]
    records = json.loads(ok(world, "audit", "list", *until, "--json"))
    targets = [str(v) for r in records for v in r["target"].values()]
    wanted = [r["actor_id"] for r in records] + [v for v in targets if ID.fullmatch(v)]
    checks.append((["audit", "list", *until], wanted))
    for args, ids in checks:
        assert ids, args
        out = ok(world, *args, columns=80)
        assert all(len(line) <= 80 for line in out.splitlines()), out
        missing = [i for i in ids if i not in out]
        assert not missing, f"{args}: {missing} cut in\n{out}"


# -- 13 and 18: what the columns say ----------------------------------------------------------
def test_project_list_shows_which_projects_are_frozen(world: World) -> None:
    lines = ok(world, "project", "list", "--vault", world.vault).splitlines()
    assert "FROZEN" in lines[0]
    decoys = next(line for line in lines if world.canary_project in line)
    assert "since 20" in decoys, decoys
    plain = next(line for line in lines if world.project in line)
    assert "no" in plain.split() and "since" not in plain, plain


def test_admin_and_machine_lists_name_secret_types_with_the_same_words(world: World) -> None:
    admin = ok(world, "secret", "list", "--project", world.project)
    machine = ok(world, "list")
    for out in (admin, machine):
        assert "structured" in out and " secret " in out and "standard" not in out, out
    # --json keeps the admin API's own value, for scripts written against it.
    types = {
        s["id"]: s["type"]
        for s in json.loads(ok(world, "secret", "list", "--project", world.project, "--json"))
    }
    assert types == {world.secret: "standard", world.structured: "structured"}


# -- 4: --json everywhere, errors included --------------------------------------------------
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("secret", "get", "sk_0123456789abcdef"), 4, "not found"),
        (("secret", "get", "sk_bad"), 2, "malformed secret id"),
        (("project", "list"), 2, "--vault"),  # a usage error from click
        (("vault", "list", "--bogus"), 2, "--bogus"),  # rejected before any option is read
        (("get", "sk_0123456789abcdef", "--vault", "vault_0123456789abcdef"), 2, "no identity"),
        (("export", "--vault", "vault_0123456789abcdef"), 2, "no identity"),
        (("run", "--vault", "vault_0123456789abcdef", "--all", "--", "true"), 2, "no identity"),
        (
            ("agent", "test", "--secret", "sk_0123456789abcdef", "--vault", "vault_0123456789abcdef"),
            2,
            "no identity",
        ),
        (
            ("agent", "start", "--secret", "sk_0123456789abcdef", "--vault", "vault_0123456789abcdef"),
            2,
            "no identity",
        ),
        (("server", "--listen", "not-an-address", "--data-dir", "{data}"), 2, "--listen"),
    ],
    ids=lambda v: " ".join(v[:2]) if isinstance(v, tuple) else str(v),
)
def test_with_json_an_error_is_one_json_object_on_stderr_with_the_documented_exit_code(
    world: World, args: tuple[str, ...], code: int, message: str
) -> None:
    args = tuple(a.format(data=world.home.parent / "server-data") for a in args)
    argv = (
        [*args[: args.index("--")], "--json", *args[args.index("--") :]]
        if "--" in args
        else [*args, "--json"]
    )
    result = run(world, *argv)
    assert result.returncode == code, result.stderr
    error = json.loads(result.stderr)
    assert error["code"] == code and message in error["error"], error
    assert set(error) == {"error", "code"}


def test_machine_get_and_export_print_json_with_json(world: World) -> None:
    assert json.loads(ok(world, "get", world.secret, "--json")) == {"id": world.secret, "value": "v"}
    assert json.loads(ok(world, "get", world.structured, "user", "--json")) == {"user": "app"}
    exported = json.loads(ok(world, "export", "--json"))
    assert sorted(exported.values()) == ["app", "v"], exported  # names become variable names
    refused = run(world, "export", "--json", "--format", "env")
    assert refused.returncode == 2 and "--format" in json.loads(refused.stderr)["error"]


def test_exit_codes_are_documented_in_help_and_docs(world: World) -> None:
    tree = [getattr(errors, name) for name in dir(errors)]
    codes = {c.exit_code for c in tree if isinstance(c, type) and issubclass(c, errors.SikkerError)}
    assert codes >= {1, 2, 3, 4, 5, 6, 7, 8}
    helped = ok(world, "--help")
    documented = DOCS_CLI.read_text()
    for code in codes:
        assert re.search(rf"^ +{code} \w", helped, re.M), helped
        assert f"| {code} |" in documented
    assert errors.VerificationFailed.exit_code == 8


# -- 17: shell completion -------------------------------------------------------------------
@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script_for_a_shell(world: World, shell: str) -> None:
    script = ok(world, "completion", shell)
    assert "_SIKKER_COMPLETE" in script and f"{shell}_complete" in script, script


def test_a_failed_audit_verify_with_json_gives_the_report_and_a_json_error(world: World) -> None:
    export = world.home.parent / "audit.jsonl"
    ok(world, "audit", "export", "--vault", world.vault, "-o", str(export))
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    first = next(i for i, line in enumerate(lines) if line["type"] == "record")
    lines[first]["source_ip"] = "10.6.6.6"
    export.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = run(world, "audit", "verify", str(export), "--json")
    assert result.returncode == 8, result.stderr
    assert json.loads(result.stdout)["ok"] is False
    assert json.loads(result.stderr)["code"] == 8
