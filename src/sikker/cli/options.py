"""Options shared by every client command: --addr, --token / --token-file, --json; ids or names."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from sikker.cli import refs
from sikker.cli.output import Invocation
from sikker.errors import InvalidInput

DEFAULT_ADDR = "http://127.0.0.1:8300"
TOKEN_HELP = (
    "Root or admin token. Visible to other users in the process list (ps): prefer the "
    "environment (SIKKER_TOKEN) or --token-file."
)
TOKEN_FILE_HELP = "Read the token from this file ('-' for stdin; env SIKKER_TOKEN_FILE)."
JSON_HELP = 'Print JSON for scripts; an error too, as {"error", "code"} on stderr.'
JSON_ERRORS_HELP = 'Print an error as JSON ({"error", "code"} on stderr); other output is unchanged.'
CA_CERT_HELP = (
    "PEM file of the CA (or the self-signed certificate) that signed the server's TLS "
    "certificate (env SIKKER_CACERT; default: the system's CAs)."
)

# How the admin CLI found the server's address, for connection errors (see ``Client``).
ADDR_FROM_DEFAULT = (
    "(the default address: neither SIKKER_ADDR nor --addr is set; start the server there, or "
    "set SIKKER_ADDR or pass --addr with its address)"
)
ADDR_FROM_ENV = "(from SIKKER_ADDR; is the server running there? change SIKKER_ADDR or pass --addr)"
ADDR_FROM_FLAG = "(from --addr; is the server running there?)"


def read_text_input(path: str, what: str) -> str:
    """The whole of a file, or of stdin for '-', as text; InvalidInput if it cannot be read."""
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as e:
        raise InvalidInput(f"cannot read {what} from {path}: {e.strerror}") from e


def resolve_token(token: str | None, token_file: str | None, addr: str | None = None) -> str | None:
    """The token from --token (or SIKKER_TOKEN), or from --token-file; not both. Without
    either, the session ``sikker login`` saved for this server address, if any."""
    if token and token_file:
        raise InvalidInput("give --token or --token-file, not both")
    if token_file:
        return read_text_input(token_file, "the token").strip() or None
    if token is None and addr is not None:
        from sikker.cli.session import saved_token

        return saved_token(addr)
    return token


def token_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --token and --token-file (the command resolves them with ``resolve_token``)."""
    fn = click.option("--token-file", envvar="SIKKER_TOKEN_FILE", default=None, help=TOKEN_FILE_HELP)(fn)
    return click.option("--token", envvar="SIKKER_TOKEN", default=None, help=TOKEN_HELP)(fn)


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value and (invocation := ctx.find_object(Invocation)) is not None:
        invocation.json = True
    return value


def json_option(help: str = JSON_HELP, expose_value: bool = True) -> Callable[[Any], Any]:
    """``--json``; read first (eager), so that any later error of the command prints as JSON."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        is_eager=True,
        expose_value=expose_value,
        callback=_remember_json,
        help=help,
    )


def addr_source(name: str = "addr") -> str:
    """How the current command got its server address (default, SIKKER_ADDR or --addr)."""
    source = click.get_current_context().get_parameter_source(name)
    if source == click.core.ParameterSource.ENVIRONMENT:
        return ADDR_FROM_ENV
    if source == click.core.ParameterSource.COMMANDLINE:
        return ADDR_FROM_FLAG
    return ADDR_FROM_DEFAULT


def ca_cert_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --ca-cert (env SIKKER_CACERT): the CA that signed a private server's certificate."""
    return click.option(
        "--ca-cert",
        envvar="SIKKER_CACERT",
        type=click.Path(dir_okay=False),
        default=None,
        help=CA_CERT_HELP,
    )(fn)


def client_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --addr/--token/--token-file/--ca-cert/--json and pass ``client`` and ``as_json``.

    Options of type ``refs.VAULT``, ``PROJECT`` or ``SECRET`` reach the command as ids: names
    are looked up first (``refs.resolve``).
    """

    @click.option(
        "--addr",
        envvar="SIKKER_ADDR",
        default=DEFAULT_ADDR,
        show_default=True,
        help="Server address (env SIKKER_ADDR).",
    )
    @token_options
    @ca_cert_option
    @json_option()
    @functools.wraps(fn)
    def wrapper(
        addr: str,
        token: str | None,
        token_file: str | None,
        ca_cert: str | None,
        as_json: bool,
        **kwargs: Any,
    ) -> Any:
        from sikker.cli.client import Client  # httpx: not for commands that make no requests

        client = Client(
            addr, resolve_token(token, token_file, addr), addr_source=addr_source(), ca_cert=ca_cert
        )
        return fn(client=client, as_json=as_json, **refs.resolve(client, kwargs))

    return wrapper


def stacked(options: Sequence[Callable[[Any], Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One decorator for several click options, listed in the order ``--help`` shows them."""

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


# --database, --data-dir and --config of the commands that open a store directly (offline:
# restore, migrate-seal), chosen as 'sikker server' chooses its store.
offline_store_options = stacked(
    (
        click.option(
            "--database",
            default=None,
            help="The store: sqlite:///PATH or postgresql://... (env SIKKER_DATABASE).",
        ),
        click.option(
            "--data-dir",
            type=click.Path(path_type=Path),
            default=None,
            help="The store: DATA_DIR/sikker.db (SQLite).",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path, exists=True),
            default=None,
            help="TOML config file.",
        ),
    )
)


def hsm_options(module_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--hsm-module (with ``module_help``), --hsm-token, --hsm-key and --hsm-pin-file: the
    settings ``hsm_*`` of the PKCS#11 seal (docs/operator/seal-and-keys.md)."""
    return stacked(
        (
            click.option("--hsm-module", type=click.Path(path_type=Path), default=None, help=module_help),
            click.option("--hsm-token", default=None, help="The PKCS#11 token label (with --hsm-module)."),
            click.option(
                "--hsm-key", default=None, help="The label of the AES key on the token (with --hsm-module)."
            ),
            click.option(
                "--hsm-pin-file",
                type=click.Path(path_type=Path),
                default=None,
                help="File holding the token's user PIN (else env SIKKER_HSM_PIN).",
            ),
        )
    )
