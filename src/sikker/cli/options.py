"""Options shared by every client command: --addr, --token, --json."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from sikker.cli.client import Client

DEFAULT_ADDR = "http://127.0.0.1:8300"


def client_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --addr/--token/--json and pass ``client`` and ``as_json`` to the command."""

    @click.option(
        "--addr",
        envvar="SIKKER_ADDR",
        default=DEFAULT_ADDR,
        show_default=True,
        help="Server address (env SIKKER_ADDR).",
    )
    @click.option(
        "--token", envvar="SIKKER_TOKEN", default=None, help="Root or admin token (env SIKKER_TOKEN)."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    @functools.wraps(fn)
    def wrapper(addr: str, token: str | None, as_json: bool, **kwargs: Any) -> Any:
        return fn(client=Client(addr, token), as_json=as_json, **kwargs)

    return wrapper
