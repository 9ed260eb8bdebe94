"""The ``sikker`` command. Errors become exit codes here, and only here."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from sikker import __version__
from sikker.cli.admin import project, secret, token, vault
from sikker.cli.agent import agent
from sikker.cli.audit import audit
from sikker.cli.canaries import canary
from sikker.cli.machine import bootstrap_command, export_cmd, get_cmd, list_cmd, run_cmd
from sikker.cli.machines_admin import enroll_token, grant, machine
from sikker.cli.operator import operator, status
from sikker.cli.output import err_console
from sikker.cli.people import login, logout, require_mfa, role, user, whoami
from sikker.cli.rotation import rotation, secret_manage, secret_rotate
from sikker.cli.server import server
from sikker.errors import SikkerError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sikker")
def cli() -> None:
    """Sikker: a self-hosted secrets manager.

    Admins: start a dev server with 'sikker server --dev', then point the CLI at
    it with SIKKER_ADDR and SIKKER_TOKEN.

    Machines: 'sikker machine bootstrap' once, then 'sikker get', 'list',
    'export' and 'run' read with the identity in ~/.sikkerkey (SIKKERKEY_HOME).
    """


machine.add_command(bootstrap_command)
vault.add_command(require_mfa)
for sub in (secret_rotate, rotation, secret_manage):
    secret.add_command(sub)
for command in (
    server,
    operator,
    status,
    vault,
    project,
    secret,
    audit,
    canary,
    agent,
    token,
    user,
    role,
    login,
    logout,
    whoami,
    machine,
    grant,
    enroll_token,
    get_cmd,
    list_cmd,
    export_cmd,
    run_cmd,
):
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except SikkerError as e:
        # The message may hold brackets (a URL, an IPv6 address): never read it as markup.
        err_console.print(f"[red]Error:[/] {escape(e.message)}", highlight=False, markup=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        err_console.print("Aborted.")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
