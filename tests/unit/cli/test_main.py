"""The top-level ``sikker`` group imports its commands on first use."""

from __future__ import annotations

import subprocess
import sys

import click

from sikker.cli.main import COMMANDS, SUBCOMMANDS, cli


def test_every_lazy_command_loads_under_its_own_name() -> None:
    ctx = click.Context(cli, info_name="sikker")
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
    assert sorted(cli.list_commands(ctx)) == sorted(COMMANDS)


def test_subcommands_from_other_modules_are_attached() -> None:
    ctx = click.Context(cli, info_name="sikker")
    for group_name, subs in SUBCOMMANDS.items():
        group = cli.get_command(ctx, group_name)
        assert isinstance(group, click.Group)
        for module, attribute in subs:
            command = getattr(sys.modules[module], attribute)
            assert group.commands[command.name] is command


def test_the_server_command_imports_no_client_command() -> None:
    # A fresh interpreter: this test session has imported everything already.
    code = (
        "import sys, click\n"
        "from sikker.cli.main import cli\n"
        "cli.get_command(click.Context(cli), 'server')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('sikker.cli.', 'httpx')))))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(loaded.stdout.split())
    assert "sikker.cli.server" in modules
    assert not {"sikker.cli.admin", "sikker.cli.agent", "sikker.cli.machine", "httpx"} & modules
