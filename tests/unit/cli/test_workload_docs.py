"""docs/operator/workload-identity.md stays in step with the CLI: every ``sikker`` command in
its examples (shell blocks, CI files, the pod spec) parses with the real command's options."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest

from sikker.cli.main import cli

DOC = Path(__file__).resolve().parents[3] / "docs" / "operator" / "workload-identity.md"


def documented_commands() -> list[list[str]]:
    text = DOC.read_text()
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    commands: list[list[str]] = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if line.startswith("sikker "):
                commands.append(shlex.split(line, comments=True))
        # A container's command as a YAML flow sequence of strings (JSON-compatible here).
        for array in re.findall(r"command: (\[.*?\])", block, flags=re.S):
            commands.append(json.loads(array))
    return commands


COMMANDS = documented_commands()


def test_the_doc_has_the_examples_the_brief_promises() -> None:
    heads = {" ".join(c[:3]) for c in COMMANDS}
    assert {"sikker jwt-role create", "sikker jwt-role test", "sikker machine bootstrap"} <= heads
    runs = [c for c in COMMANDS if c[:2] == ["sikker", "run"]]
    assert any("--github-actions" in c for c in runs)
    assert any("--jwt-env" in c for c in runs)
    assert any("--jwt-file" in c for c in runs)


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c[:3]) for c in COMMANDS])
def test_every_documented_command_parses(argv: list[str]) -> None:
    assert argv[0] == "sikker"
    command: click.Command = cli
    args = argv[1:]
    ctx = click.Context(cli, info_name="sikker")
    while isinstance(command, click.Group):
        found = command.get_command(ctx, args[0])
        assert found is not None, f"no command {args[0]!r} in {' '.join(argv)}"
        command, args = found, args[1:]
    # Parsing checks option names, choices and required options; nothing runs.
    env = {"SIKKERKEY_API_URL": "https://sikker.example.com"}  # set by the CI examples
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        command.make_context(argv[1], list(args))
