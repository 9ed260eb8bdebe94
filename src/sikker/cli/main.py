"""The ``sikker`` command. Errors become exit codes here, and only here."""

from __future__ import annotations

import sys

import click
from rich.text import Text

from sikker import __version__
from sikker.cli.admin import project, secret, token, vault
from sikker.cli.agent import agent
from sikker.cli.audit import audit
from sikker.cli.backup import backup_command, restore_command
from sikker.cli.canaries import canary
from sikker.cli.completion import completion
from sikker.cli.dynamic import dynamic
from sikker.cli.jwt_roles import jwt_role
from sikker.cli.leases import lease
from sikker.cli.machine import bootstrap_command, export_cmd, get_cmd, list_cmd, run_cmd
from sikker.cli.machines_admin import enroll_token, grant, machine
from sikker.cli.operator import operator, status
from sikker.cli.output import Invocation, emit_error_json, err_console
from sikker.cli.people import login, logout, require_mfa, role, user, whoami
from sikker.cli.rotation import rotation, secret_manage, secret_rotate
from sikker.cli.seal_migration import migrate_seal_command
from sikker.cli.server import server
from sikker.errors import SikkerError

EXIT_CODES = """\
Every command takes --json: JSON output, and an error as {"error": "...", "code": N}
on stderr. Names work where ids do: --vault acme, --project acme/payments.

\b
Exit codes:
  0 success
  1 internal error
  2 invalid input: a bad option or value, a malformed id, an ambiguous name
  3 not authenticated, or permission denied
  4 not found
  5 conflict, or the project is frozen by a canary
  6 rate limited: slow down and retry
  7 unavailable: sealed, or the database is down; retry
  8 verification failed (sikker audit verify, sikker jwt-role test)
  130 interrupted
'sikker run' exits with its command's exit code.
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="sikker")
def cli() -> None:
    """Sikker: a self-hosted secrets manager.

    Admins: start a dev server with 'sikker server --dev', then point the CLI at
    it with SIKKER_ADDR and SIKKER_TOKEN.

    Machines: 'sikker machine bootstrap' once, then 'sikker get', 'list',
    'export' and 'run' read with the identity in ~/.sikkerkey (SIKKERKEY_HOME).
    """


machine.add_command(bootstrap_command)
operator.add_command(backup_command)
operator.add_command(restore_command)
operator.add_command(migrate_seal_command)
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
    dynamic,
    lease,
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
    jwt_role,
    get_cmd,
    list_cmd,
    export_cmd,
    run_cmd,
    completion,
):
    cli.add_command(command)


def _asks_for_json(argv: list[str]) -> bool:
    """``--json`` among sikker's own arguments (those before ``--``), for usage errors found
    before any option is read."""
    own = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in own


def main() -> None:
    invocation = Invocation()
    try:
        cli.main(standalone_mode=False, obj=invocation)
    except SikkerError as e:
        _fail(invocation.json, e.message, e.exit_code)
    except click.exceptions.Abort:
        if invocation.json:
            _fail(True, "aborted", 130)
        err_console.print("Aborted.")
        sys.exit(130)
    except click.ClickException as e:
        if invocation.json or (isinstance(e, click.UsageError) and _asks_for_json(sys.argv[1:])):
            _fail(True, e.format_message(), e.exit_code)
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


def _fail(as_json: bool, message: str, code: int) -> None:
    if as_json:
        emit_error_json(message, code)
    else:
        # soft_wrap: a long path or URL in the message stays on one line, as given.
        err_console.print(Text.assemble(("Error:", "red"), " ", message), soft_wrap=True)
    sys.exit(code)
